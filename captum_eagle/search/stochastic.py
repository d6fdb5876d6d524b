r"""Stochastic greedy search (Mirzasoleiman et al., 2015): score a random fraction per step."""

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
class StochasticGreedy(SearchStrategy):
    r"""Greedy search over a seeded random sample of the remaining regions at each step.

    At each step ``max(min_candidates, ceil(fraction · |remaining|))`` of the remaining regions are
    drawn without replacement (a ``torch.Generator`` seeded with ``seed`` at the start of every
    search, so a seed always gives the same order), scored against the current front, and the best
    one is appended (ties by lowest id). Cost: about ``fraction · N(N + 1)`` forwards.

    Args:
        fraction (float): share of the remaining regions scored per step, in ``(0, 1]``.
            Default: 0.2.
        min_candidates (int): score at least this many regions per step (all if fewer remain).
            Default: 2.
        seed (int): seed of the sampling. Default: 0.

    Examples::

        >>> from captum_eagle.search import StochasticGreedy, get_search
        >>> get_search("stochastic")
        StochasticGreedy(fraction=0.2, min_candidates=2, seed=0)
        >>> StochasticGreedy(fraction=0.3, seed=1).fraction
        0.3
    """

    name = "stochastic"

    def __init__(self, fraction: float = 0.2, min_candidates: int = 2, seed: int = 0) -> None:
        check_real("fraction", fraction, low=0.0, high=1.0, open_low=True)
        check_int("min_candidates", min_candidates, least=1)
        check_int("seed", seed)
        self.fraction = float(fraction)
        self.min_candidates = int(min_candidates)
        self.seed = int(seed)

    def forward_estimate(self, n_regions: int) -> int:
        """The drawn candidates of every step (2 images each), plus ``F(∅)``."""
        drawn = [
            min(remaining, max(self.min_candidates, math.ceil(self.fraction * remaining)))
            for remaining in range(1, n_regions + 1)
        ]
        return 2 * sum(drawn) + 2

    def step(self, state: SearchState, scorer: SubsetScorer) -> StepDecision:
        if "generator" not in state.memory:
            state.memory["generator"] = torch.Generator().manual_seed(self.seed)
        remaining = state.remaining
        size = max(self.min_candidates, math.ceil(self.fraction * len(remaining)))
        drawn = torch.randperm(len(remaining), generator=state.memory["generator"])[:size]
        candidates = [remaining[i] for i in drawn.sort().values.tolist()]
        values = score_front(state, scorer, candidates)
        return StepDecision(front=(candidates[int(values.argmax())],))
