r"""Lazy greedy search (Minoux): re-score only the candidates whose stale gain is still on top."""

from __future__ import annotations

import torch

from captum_eagle.checks import check_int
from captum_eagle.objective import SubsetScorer
from captum_eagle.search.base import (
    SearchState,
    SearchStrategy,
    StepDecision,
    register_search,
    score_front,
)


@register_search
class LazyGreedy(SearchStrategy):
    r"""Greedy search that trusts stale gains as upper bounds and re-scores only the top ones.

    Step 1 scores every region (as :class:`~captum_eagle.search.ExactGreedy`). Afterwards the
    remaining regions are ranked by their last measured gain ``F(front' + a) − F(front')``
    (``front'`` the front when ``a`` was last scored; ties by lowest id). The top ``refresh`` of
    them are re-scored against the current front in one batch; if the best fresh gain is at least
    the largest stale gain among the regions not re-scored, that region is appended, otherwise the
    next ``refresh`` are re-scored, and so on.

    If ``F`` were submodular, gains could only shrink as the front grows, stale gains would be
    upper bounds and the order would equal the exact greedy's (ties aside). Eagle's objective is
    not submodular (a region can help more once its neighbours are in), so this is an
    approximation: a region whose gain grew since it was last scored can be passed over. Measure
    its quality against ``"exact"`` (``benchmarks/search.py``).

    Cost: ``2N + 2`` forwards for step 1, then ``2 · refresh`` per round (usually one round per
    step), so about ``2N(refresh + 1)`` instead of ``N(N + 1)``.

    Args:
        refresh (int): candidates re-scored together per round. Default: 4.

    Examples::

        >>> from captum_eagle.search import LazyGreedy, get_search
        >>> get_search("lazy")
        LazyGreedy(refresh=4)
        >>> LazyGreedy(refresh=8).refresh
        8
    """

    name = "lazy"

    def __init__(self, refresh: int = 4) -> None:
        check_int("refresh", refresh, least=1)
        self.refresh = int(refresh)

    def forward_estimate(self, n_regions: int) -> int:
        """About ``2N(refresh + 1)`` (one round per step), at most the exact ``N(N + 1)``."""
        return min(n_regions * (n_regions + 1), 2 * n_regions * (self.refresh + 1))

    def step(self, state: SearchState, scorer: SubsetScorer) -> StepDecision:
        remaining = state.remaining
        stale = state.last_gains[remaining]
        if torch.isnan(stale).any():
            values = score_front(state, scorer, remaining)
            return StepDecision(front=(remaining[int(values.argmax())],))
        stale_gain = dict(zip(remaining, stale.tolist(), strict=True))
        queue = sorted(remaining, key=lambda region: (-stale_gain[region], region))
        fresh: dict[int, float] = {}
        while True:
            batch = [region for region in queue if region not in fresh][: self.refresh]
            score_front(state, scorer, batch)
            fresh.update({region: float(state.last_gains[region]) for region in batch})
            best = min(fresh, key=lambda region: (-fresh[region], region))
            pending = [region for region in queue if region not in fresh]
            if not pending or fresh[best] >= stale_gain[pending[0]]:
                return StepDecision(front=(best,))
