r"""The naive reference: Algorithm 1 as written, one model forward per image, no batching.

Kept for tests (the batched engine must reproduce its order exactly) and for the speed benchmark;
it lives beside the benchmarks, outside the package (it was ``captum_eagle.search.reference``).
Ties go to the lowest region id (a later candidate must score strictly higher), the engine's rule:
at batch 1 identical masked images score identically, so exact ties stay exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from captum_eagle.masks import FeatureMask
from captum_eagle.wrapper import MLLMForwardWrapper, PreparedSample


@dataclass(frozen=True)
class ReferenceResult:
    r"""Order ``π``, ``F(π_:i)`` for ``i = 1..N``, per-token ``p_t(π_:i)`` ``(T, N)``, forwards."""

    order: list[int]
    objective: torch.Tensor
    trajectories: torch.Tensor
    forwards: int


@torch.no_grad()
def naive_greedy(
    wrapper: MLLMForwardWrapper,
    sample: PreparedSample,
    feature_mask: FeatureMask,
    *,
    baselines: float = 0.0,
    insight_weight: float = 1.0,
    necessity_weight: float = 1.0,
    max_steps: int | None = None,
) -> ReferenceResult:
    r"""Greedy Eagle search with one forward per masked image (``max_steps`` limits the steps)."""
    image = sample.image.to(wrapper.device)
    fill = torch.full_like(image, baselines)
    regions = feature_mask.mask.to(image.device)
    forwards = 0

    def probabilities(kept: list[int], keep: bool) -> torch.Tensor:
        nonlocal forwards
        inside = torch.isin(regions, torch.tensor(kept, device=image.device))
        masked = torch.where(inside == keep, image, fill)
        forwards += 1
        return wrapper.token_probabilities(masked, sample)[0].float().cpu()

    order: list[int] = []
    objective, trajectory = [], []
    for _ in range(max_steps or feature_mask.n_regions):
        best = None
        for region in range(feature_mask.n_regions):
            if region in order:
                continue
            kept = probabilities([*order, region], True) if insight_weight else None
            value = insight_weight * kept.mean() if insight_weight else torch.tensor(0.0)
            if necessity_weight:
                removed = probabilities([*order, region], False)
                value = value + necessity_weight * (1 - removed).mean()
            if best is None or value > best[0]:
                best = (value, region, kept)
        order.append(best[1])
        objective.append(best[0])
        trajectory.append(
            best[2] if best[2] is not None else torch.full((sample.n_targets,), float("nan"))
        )
    return ReferenceResult(
        order=order,
        objective=torch.stack(objective),
        trajectories=torch.stack(trajectory, dim=1),
        forwards=forwards,
    )
