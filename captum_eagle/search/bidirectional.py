r"""Bidirectional greedy search: grow the most and the least important ends of the order."""

from __future__ import annotations

from typing import Literal

from captum_eagle.objective import SubsetScorer
from captum_eagle.search.base import (
    SearchState,
    SearchStrategy,
    StepDecision,
    register_search,
    score_front,
)

BackRule = Literal["gain", "removal"]


@register_search
class BidirectionalGreedy(SearchStrategy):
    r"""Place one region at each end of the order ``π`` per step.

    Let ``R`` be the regions not yet placed. Each step scores ``F(front + a)`` for every
    ``a ∈ R`` and appends the best to the front (ties by lowest id), as the exact greedy does.
    Then one region ``b`` of ``R`` (the front's pick excluded) goes to the back, i.e. just before
    the regions already at the back, by one of two rules:

    - ``back="gain"`` (default, no extra forwards): the ``b`` with the *lowest* ``F(front + b)``
      in the same scores, the region that helps the current front least (ties by highest id).
      Cost: about ``N²/2`` forwards, half of the exact greedy.
    - ``back="removal"``: the ``b`` whose removal from ``U = V \ back`` (the set that precedes
      the back in ``π``: the front and ``R``) hurts ``F`` least, i.e. the largest
      ``F(U \ {b})`` (ties by highest id). ``U \ {b}`` is exactly the prefix of ``π`` that ends
      before ``b``, so this is greedy backward elimination on the prefixes. It costs as many
      forwards as the front's scores, so the total is about ``N²``: no cheaper than exact, but
      the tail of ``π`` (what deletion curves and hallucination-prone regions use) is chosen
      by the objective on the prefixes it will actually end.

    Args:
        back (str): ``"gain"`` or ``"removal"``, the rule of the back end. Default: ``"gain"``.

    Examples::

        >>> from captum_eagle.search import BidirectionalGreedy, get_search
        >>> get_search("bidirectional")
        BidirectionalGreedy(back='gain')
        >>> BidirectionalGreedy(back="removal").back
        'removal'
    """

    name = "bidirectional"

    def __init__(self, back: BackRule = "gain") -> None:
        if back not in ("gain", "removal"):
            raise ValueError(f"back must be 'gain' or 'removal'; got {back!r}.")
        self.back = back

    def forward_estimate(self, n_regions: int) -> int:
        """``2|R|`` per step, ``|R| = N, N − 2, …`` (twice with ``"removal"``), plus ``F(∅)``."""
        per_candidate = 4 if self.back == "removal" else 2
        return per_candidate * sum(range(n_regions, 0, -2)) + 2

    def step(self, state: SearchState, scorer: SubsetScorer) -> StepDecision:
        remaining = state.remaining
        values = score_front(state, scorer, remaining)
        best = int(values.argmax())
        front = remaining[best]
        rest = [region for region in remaining if region != front]
        if len(rest) <= 1:
            return StepDecision(front=(front,), back=tuple(rest))
        if self.back == "removal":
            rest_values = scorer.objective(scorer.score(state.without_back(rest))).tolist()
            back = max(zip(rest_values, rest, strict=True))[1]
        else:
            rest_values = [float(values[i]) for i, region in enumerate(remaining) if i != best]
            back = max(zip([-v for v in rest_values], rest, strict=True))[1]
        return StepDecision(front=(front,), back=(back,))
