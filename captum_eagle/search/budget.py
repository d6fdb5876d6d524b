r"""Budgeted greedy: the exact greedy's steps while a forward budget lasts, then one ranking."""

from __future__ import annotations

import torch

from captum_eagle.checks import check_int, check_real
from captum_eagle.objective import SubsetScorer
from captum_eagle.search.base import SearchState, SearchStrategy, StepDecision, register_search


@register_search
class BudgetedGreedy(SearchStrategy):
    r"""Eagle's map within a fixed number of model forwards, trajectory not included.

    Step 1 scores every region alone and removed, ``F({a})`` (``2N`` images), as the exact greedy
    does, and then ``F(∅)`` (2 images) if the budget leaves room. Each later step is an exact
    greedy step (every remaining region against the current front) as long as its images fit in
    what is left of the budget; the step that does not fit ranks all remaining regions at once by
    their single-region objective ``F({a})`` from step 1 (ties: lowest id). With a budget of
    ``N(N + 1)`` or more the order is the exact greedy's.

    The rest is ranked by ``F({a})`` rather than by the objective against the last front: once
    the front explains the answer, gains against it are all close to 0 and order the rest by
    noise (measured on the frontier's shapes scenes, where it cost most at 64 regions).

    The map is the paper's saliency walk (:func:`~captum_eagle.attribution.saliency_from_gains`)
    over the gains the search measured: ``F(front + a) − F(front)`` for a region placed by a
    greedy step, ``F({a}) − F(∅)`` for the rest. If the budget left no room for ``F(∅)``, the
    lowest single-region objective stands in for it, which changes the spacing of the map, not its
    order.
    :meth:`EagleAttribution.attribute` therefore returns the map after at most ``forwards`` model
    forwards; :meth:`EagleAttribution.explain` also scores the insertion trajectory of the order
    for the result (up to ``2N + 2`` more), with the same map.

    Args:
        forwards (int, optional): the budget in model forwards (images); at least the ``2N``
            needed to score every region alone and removed. Default: ``per_region · N``.
        per_region (float): the budget per region when ``forwards`` is not given, at least 2.
            Default: 4 (KernelShap's ``n_samples = 4N``).

    Examples::

        >>> from captum_eagle.search import BudgetedGreedy, get_search
        >>> get_search("budget")
        BudgetedGreedy(forwards=None, per_region=4.0)
        >>> BudgetedGreedy(forwards=100).budget(16), BudgetedGreedy(per_region=2).budget(16)
        (100, 32)
    """

    name = "budget"

    def __init__(self, forwards: int | None = None, per_region: float = 4.0) -> None:
        if forwards is not None:
            check_int("forwards", forwards, least=1)
        check_real("per_region", per_region, low=2.0)
        self.forwards = None if forwards is None else int(forwards)
        self.per_region = float(per_region)

    def budget(self, n_regions: int) -> int:
        r"""The forwards this search may spend on ``n_regions`` regions."""
        if self.forwards is not None:
            return self.forwards
        return int(self.per_region * n_regions)

    def forward_estimate(self, n_regions: int) -> int:
        """The budget, at most the exact search's ``N(N + 1)``."""
        return min(self.budget(n_regions), n_regions * (n_regions + 1))

    def step(self, state: SearchState, scorer: SubsetScorer) -> StepDecision:
        start = state.memory.setdefault("start_forwards", scorer.forwards)
        budget = self.budget(state.n_regions)
        left = budget - (scorer.forwards - start)
        candidates = state.remaining
        rows = state.front_with(candidates)
        front = torch.zeros(1, state.n_regions, dtype=torch.bool)
        front[0, state.front] = True
        need = scorer.cost(rows)
        if state.step == 0:
            if need > left:
                raise ValueError(
                    f"The 'budget' search needs {need} forwards to score each of the "
                    f"{state.n_regions} regions alone and removed, but its budget is {budget}; "
                    f"pass forwards >= {need} (or per_region >= 2), or use fewer regions."
                )
            values = scorer.objective(scorer.score(rows))
            if scorer.cost(front) <= left - need:
                current = scorer.objective(scorer.score(front))[0]
            else:
                current = values.min()
            state.memory["alone"] = (values.clone(), values - current)
        elif need + scorer.cost(front) <= left:
            values = scorer.objective(scorer.score(rows))
            current = scorer.objective(scorer.score(front))[0]
        else:
            alone, alone_gains = state.memory["alone"]
            ranked = sorted(candidates, key=lambda region: (-float(alone[region]), region))
            state.last_gains[ranked] = alone_gains[ranked]
            return StepDecision(front=tuple(ranked))
        state.last_scores[candidates] = values
        state.last_gains[candidates] = values - current
        # argmax returns the first maximum: candidates are in increasing id order.
        return StepDecision(front=(candidates[int(values.argmax())],))

    def map_gains(self, state: SearchState, scorer: SubsetScorer) -> torch.Tensor:
        """The measured gain of each region (see the class), along the order."""
        return state.last_gains[torch.tensor(state.order)].clone()
