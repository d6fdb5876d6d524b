r"""Coalition tail: once forward gains vanish, order the rest by a fit on random coalitions."""

from __future__ import annotations

import torch

from captum_eagle.checks import check_int
from captum_eagle.objective import SubsetScorer
from captum_eagle.search.base import SearchState, StepDecision, register_search
from captum_eagle.search.forward_backward import ForwardBackwardGreedy


@register_search
class CoalitionTailGreedy(ForwardBackwardGreedy):
    r"""Exact greedy until no region gains; the tail ordered by a linear fit on random coalitions.

    **Forward phase** (the paper's Algorithm 1), exactly as in
    :class:`~captum_eagle.search.forward_backward.ForwardBackwardGreedy`: append the region with
    the largest ``F(front + a)`` (ties by lowest id) until the best gain
    ``F(front + a) − F(front)`` is at most ``tolerance``; that step still places its best region.

    **Tail**: with ``R`` the ``r`` regions left, draw ``K`` coalitions ``Z ⊆ R`` in complementary
    pairs (``Z`` with each region in it with probability 1/2, and ``R \ Z``; a
    ``torch.Generator`` seeded with ``seed``), score ``F(front ∪ Z)``, and fit
    ``F(front ∪ Z) ≈ c + Σ_{j ∈ Z} φ_j`` by least squares, together with ``Z = ∅`` and ``Z = R``
    (already scored: the front was a candidate, and ``front ∪ R = V``). The tail
    is placed in decreasing ``φ_j`` (ties by lowest id). With uniform coalitions, ``φ_j`` estimates
    ``j``'s average marginal contribution to ``F(front ∪ ·)`` over the subsets of ``R`` (its
    Banzhaf value), which sees an AND: when the evidence is duplicated (two copies of an object,
    or one split over several regions), ``necessity`` only rises once every piece is in ``Z``, and
    each piece shares that rise in its coefficient, though no single region gains on its own.

    Gains and the saliency map: as for every strategy, the gains are ``F(π_:r) − F(π_:r−1)`` of
    the final order, evaluated by the engine (the fit only orders the tail).

    Cost: the forward phase costs what the exact greedy's steps cost; then
    ``K = min(samples_per_region · r, budget)`` coalitions (two forwards each; rounded down to an
    even number), where ``budget`` keeps the total, with the tail's prefixes, within ``N(N + 1)``,
    the exact greedy's count. Below ``r + 1`` coalitions the tail is placed by the last forward
    scores. Use it where forward gains vanish early (duplicated evidence); with single evidence the
    tail carries little, and its order then matters little.

    Args:
        tolerance (float): the largest best gain (in units of ``F``) that counts as "no gain".
            Default: 0.01.
        samples_per_region (int): coalitions drawn per tail region (capped by the budget).
            Default: 8.
        seed (int): seed of the coalitions. Default: 0.

    Examples::

        >>> from captum_eagle.search import get_search
        >>> get_search("coalition_tail")
        CoalitionTailGreedy(tolerance=0.01, samples_per_region=8, seed=0)
    """

    name = "coalition_tail"

    def __init__(self, tolerance: float = 0.01, samples_per_region: int = 8, seed: int = 0) -> None:
        super().__init__(tolerance)
        check_int("samples_per_region", samples_per_region, least=1)
        check_int("seed", seed)
        self.samples_per_region = int(samples_per_region)
        self.seed = int(seed)

    def after_switch(self, state: SearchState, scorer: SubsetScorer) -> StepDecision:
        tail = state.remaining
        budget = state.n_regions * (state.n_regions + 1) - scorer.forwards - 2 * len(tail)
        pairs = min(self.samples_per_region * len(tail), max(budget, 0) // 2) // 2
        if len(tail) == 1 or 2 * pairs < len(tail) + 1:
            return StepDecision(front=tuple(self._ranked(tail, state.last_scores[tail])))
        generator = torch.Generator().manual_seed(self.seed)
        drawn = torch.rand(pairs, len(tail), generator=generator) < 0.5
        ends = torch.tensor([[False], [True]]).expand(2, len(tail))  # the front, and V: scored
        members = torch.cat([drawn, ~drawn, ends])
        subsets = torch.zeros(members.shape[0], state.n_regions, dtype=torch.bool)
        subsets[:, state.front] = True
        subsets[:, tail] = members
        values = scorer.objective(scorer.score(subsets)).double()
        design = torch.cat([torch.ones(members.shape[0], 1), members.double()], dim=1)
        fit = torch.linalg.lstsq(design, values[:, None], driver="gelsd").solution
        return StepDecision(front=tuple(self._ranked(tail, fit[1:, 0])))

    @staticmethod
    def _ranked(regions: list[int], values: torch.Tensor) -> list[int]:
        scores = values.nan_to_num(nan=float("-inf")).tolist()
        return [
            r for _, r in sorted(zip(scores, regions, strict=True), key=lambda x: (-x[0], x[1]))
        ]
