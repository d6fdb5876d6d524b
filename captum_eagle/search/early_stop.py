r"""Early stop: end the search once the insertion curve has saturated."""

from __future__ import annotations

import torch

from captum_eagle.checks import check_real
from captum_eagle.objective import SubsetScorer
from captum_eagle.search.base import (
    SearchState,
    SearchStrategy,
    StepDecision,
    get_search,
    register_search,
)


@register_search
class EarlyStop(SearchStrategy):
    r"""Run another strategy until the front explains the answer, then rank the rest at once.

    Saturation is measured on the insertion curve, i.e. the insight ``I(S) = mean_t p_t(S)`` of
    the image restricted to ``S``: the search stops scoring when the front recovers all but
    ``tolerance`` of what the full image adds over the blank image,

    ``I(front) − I(∅) ≥ (1 − tolerance) · (I(V) − I(∅))``,

    checked before every step after the first (``I(∅)`` and ``I(V)`` cost one forward each, and
    the result's trajectories need both anyway). The regions left are then appended after the
    front in decreasing order of their last objective ``state.last_scores`` (from the last step
    that scored them; never scored: last, by id), ahead of any back of the inner strategy. If the
    full image does not raise the answer above the blank one (``I(V) ≤ I(∅)``), the first step's
    scores rank everything.

    With the exact greedy inside, the front is exactly the exact greedy's front, and the forward
    count never exceeds the exact search's.

    Args:
        search (str or SearchStrategy): the strategy run until saturation. Default: ``"exact"``.
        tolerance (float): the share of the full image's insight gain that may be missing, in
            ``[0, 1)``. Default: 0.05.

    Examples::

        >>> from captum_eagle.search import EarlyStop, get_search
        >>> get_search("early_stop")
        EarlyStop(search=ExactGreedy(), tolerance=0.05)
        >>> EarlyStop("lazy", tolerance=0.1).search
        LazyGreedy(refresh=4)
    """

    name = "early_stop"

    def __init__(self, search: str | SearchStrategy = "exact", tolerance: float = 0.05) -> None:
        check_real("tolerance", tolerance, low=0.0, high=1.0, open_high=True)
        self.search = get_search(search)
        if isinstance(self.search, EarlyStop):
            raise ValueError("EarlyStop cannot wrap another EarlyStop; pass its inner search.")
        self.tolerance = float(tolerance)

    def forward_estimate(self, n_regions: int) -> int:
        """The inner strategy's estimate: an upper bound, reached if the curve never saturates."""
        return self.search.forward_estimate(n_regions)

    def step(self, state: SearchState, scorer: SubsetScorer) -> StepDecision:
        if state.step > 0 and self.saturated(state, scorer):
            remaining = state.remaining
            last = state.last_scores[remaining].nan_to_num(nan=float("-inf")).tolist()
            ranked = sorted(zip(remaining, last, strict=True), key=lambda item: (-item[1], item[0]))
            return StepDecision(front=tuple(region for region, _ in ranked))
        return self.search.step(state, scorer)

    def saturated(self, state: SearchState, scorer: SubsetScorer) -> bool:
        r"""Whether the front's insight reached ``1 − tolerance`` of the full image's gain."""
        subsets = torch.zeros(3, state.n_regions, dtype=torch.bool)
        subsets[1] = True
        subsets[2, state.front] = True
        blank, full, front = scorer.score(subsets, terms=(True,)).kept.mean(dim=1).tolist()
        return bool(front - blank >= (1 - self.tolerance) * (full - blank))
