r"""The authors' efficient variant: restrict the candidates and place several regions per step."""

from __future__ import annotations

import math

import torch

from captum_eagle.checks import check_int, check_real
from captum_eagle.objective import SubsetScorer
from captum_eagle.search.base import (
    SearchState,
    SearchStrategy,
    StepDecision,
    register_search,
    score_front,
)


@register_search
class EfficientGreedy(SearchStrategy):
    r"""Greedy search over the most promising candidates, appending several regions per step.

    Step 1 scores every region. Each later step scores only the
    ``max(min_candidates, ceil(fraction · |remaining|))`` remaining regions with the highest last
    objective (``state.last_scores``; ties by lowest id) against the current front, and appends
    the best ``regions_per_step`` of them in decreasing order of their fresh scores (ties by
    lowest id). The second and later regions of a step are chosen by ``F(front + a)``, not
    ``F(front + first + a)``: that saves the steps in between and is an approximation.

    Cost: ``2N`` for step 1, then about ``fraction · N² / regions_per_step`` forwards.

    Args:
        fraction (float): share of the remaining regions re-scored per step, in ``(0, 1]``.
            Default: 0.25.
        regions_per_step (int): regions appended per step. Default: 2.
        min_candidates (int): re-score at least this many regions per step. Default: 4.

    Examples::

        >>> from captum_eagle.search import get_search
        >>> get_search("efficient")
        EfficientGreedy(fraction=0.25, regions_per_step=2, min_candidates=4)
    """

    name = "efficient"

    def __init__(
        self, fraction: float = 0.25, regions_per_step: int = 2, min_candidates: int = 4
    ) -> None:
        check_real("fraction", fraction, low=0.0, high=1.0, open_low=True)
        check_int("regions_per_step", regions_per_step, least=1)
        check_int("min_candidates", min_candidates, least=1)
        self.fraction = float(fraction)
        self.regions_per_step = int(regions_per_step)
        self.min_candidates = int(min_candidates)

    def forward_estimate(self, n_regions: int) -> int:
        """Every region in step 1, then the re-scored candidates; plus ``F(front)`` per step."""
        subsets, remaining = n_regions + 1, n_regions - self.regions_per_step
        while remaining > 0:
            size = max(self.min_candidates, math.ceil(self.fraction * remaining))
            subsets += min(remaining, size) + 1
            remaining -= self.regions_per_step
        return 2 * subsets

    def step(self, state: SearchState, scorer: SubsetScorer) -> StepDecision:
        remaining = state.remaining
        last = state.last_scores[remaining]
        if torch.isnan(last).any():
            candidates = remaining
        else:
            size = max(self.min_candidates, math.ceil(self.fraction * len(remaining)))
            ranked = sorted(zip(remaining, last.tolist(), strict=True), key=lambda x: (-x[1], x[0]))
            candidates = sorted(region for region, _ in ranked[:size])
        values = score_front(state, scorer, candidates).tolist()
        best = sorted(zip(candidates, values, strict=True), key=lambda x: (-x[1], x[0]))
        return StepDecision(front=tuple(region for region, _ in best[: self.regions_per_step]))
