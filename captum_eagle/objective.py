r"""The Eagle objective: insight and necessity of region subsets, scored in batched forwards.

For a set ``S`` of kept regions, ``insight(S) = mean_t p_t(image restricted to S)`` and
``necessity(S) = mean_t (1 - p_t(image with S removed))``; the objective is their weighted sum
``F(S) = w_i · insight(S) + w_n · necessity(S)``. Both images of every subset are built on the
model's device with one ``torch.where`` per batch and go through the model together.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from captum_eagle.masks import FeatureMask
from captum_eagle.wrapper import MLLMForwardWrapper, PreparedSample


@dataclass(frozen=True)
class SubsetScores:
    r"""Per-token probabilities for a batch of subsets.

    Attributes:
        kept (Tensor): ``(K, T)`` ``p_t(image restricted to S)``; NaN when not evaluated.
        removed (Tensor): ``(K, T)`` ``p_t(image with S removed)``; NaN when not evaluated.
    """

    kept: torch.Tensor
    removed: torch.Tensor


class SubsetScorer:
    r"""Evaluates the Eagle objective on region subsets, with a cache and a forward counter.

    Args:
        wrapper (MLLMForwardWrapper): the model.
        sample (PreparedSample): prompt, answer and target tokens.
        feature_mask (FeatureMask): the regions.
        baseline (float or Tensor): fill value of removed pixels (scalar, ``(3, H, W)`` or
            ``(1, 3, H, W)``), in ``[0, 1]`` pixel space. Default: 0 (black).
        insight_weight (float): weight of the insight term. Default: 1.
        necessity_weight (float): weight of the necessity term. Default: 1.
        batch_size (int, optional): images per forward (default: the wrapper's).
    """

    def __init__(
        self,
        wrapper: MLLMForwardWrapper,
        sample: PreparedSample,
        feature_mask: FeatureMask,
        *,
        baseline: float | torch.Tensor = 0.0,
        insight_weight: float = 1.0,
        necessity_weight: float = 1.0,
        batch_size: int | None = None,
    ) -> None:
        if insight_weight < 0 or necessity_weight < 0 or insight_weight + necessity_weight == 0:
            raise ValueError(
                "insight_weight and necessity_weight must be >= 0 and not both 0; got "
                f"{insight_weight} and {necessity_weight}."
            )
        self.wrapper = wrapper
        self.sample = sample
        self.feature_mask = feature_mask
        self.n_regions = feature_mask.n_regions
        self.insight_weight = float(insight_weight)
        self.necessity_weight = float(necessity_weight)
        self.batch_size = batch_size or wrapper.batch_size
        device = wrapper.device
        self.image = sample.image.to(device)
        self.baseline = _baseline_image(baseline, self.image)
        self.pixel_region = feature_mask.mask.to(device).flatten()
        self.forwards = 0
        self._cache: dict[tuple[bytes, bool], torch.Tensor] = {}

    @property
    def n_targets(self) -> int:
        return self.sample.n_targets

    def images(self, subsets: torch.Tensor, keep: torch.Tensor | bool) -> torch.Tensor:
        r"""Masked images, ``(K, 3, H, W)``, built on the device with one ``torch.where``.

        Args:
            subsets (Tensor): ``(K, N)`` bool, the regions of each subset.
            keep (Tensor or bool): per subset, ``True`` keeps only the subset's regions (the rest
                is baseline), ``False`` removes them (they become baseline).
        """
        device = self.pixel_region.device
        inside = subsets.to(device)[:, self.pixel_region]
        keep = torch.as_tensor(keep, device=device).expand(subsets.shape[0])
        show = (inside == keep[:, None]).view(subsets.shape[0], 1, *self.image.shape[-2:])
        return torch.where(show, self.image, self.baseline)

    @property
    def terms(self) -> tuple[bool, ...]:
        """Which images the objective needs: ``True`` = kept, ``False`` = removed."""
        return tuple(
            keep
            for keep, weight in ((True, self.insight_weight), (False, self.necessity_weight))
            if weight
        )

    def score(self, subsets: torch.Tensor, terms: tuple[bool, ...] | None = None) -> SubsetScores:
        r"""Per-token probabilities of the kept and removed images of each subset ``(K, N)`` bool.

        Args:
            subsets (Tensor): ``(K, N)`` bool.
            terms (tuple[bool, ...], optional): which images to evaluate (``True`` = kept,
                ``False`` = removed). Default: those the objective weights need; the other one is
                NaN unless it is cached.

        (subset, image) pairs seen before come from the cache and cost no forward.
        """
        subsets = subsets.bool().cpu()
        terms = self.terms if terms is None else terms
        keys = [row.numpy().tobytes() for row in subsets]
        todo = [
            (i, keep)
            for i, key in enumerate(keys)
            for keep in terms
            if (key, keep) not in self._cache
        ]
        if todo:
            rows = torch.tensor([i for i, _ in todo])
            keep = torch.tensor([k for _, k in todo])
            probabilities = self._forward(subsets[rows], keep)
            for (i, k), value in zip(todo, probabilities, strict=True):
                self._cache[(keys[i], k)] = value
        nan = torch.full((self.n_targets,), float("nan"))
        kept = torch.stack([self._cache.get((key, True), nan) for key in keys])
        removed = torch.stack([self._cache.get((key, False), nan) for key in keys])
        return SubsetScores(kept=kept, removed=removed)

    def objective(self, scores: SubsetScores) -> torch.Tensor:
        r"""``F(S)`` per subset from its scores, ``(K,)``: per-token terms averaged over tokens."""
        return self.token_objective(scores).mean(dim=1)

    def token_objective(self, scores: SubsetScores) -> torch.Tensor:
        r"""Per-token objective ``w_i p_t(S) + w_n (1 - p_t(V \ S))``, ``(K, T)``."""
        value = torch.zeros_like(scores.kept)
        if self.insight_weight:
            value = value + self.insight_weight * scores.kept
        if self.necessity_weight:
            value = value + self.necessity_weight * (1.0 - scores.removed)
        return value

    @torch.no_grad()
    def _forward(self, subsets: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        outputs = []
        for start in range(0, subsets.shape[0], self.batch_size):
            index = slice(start, start + self.batch_size)
            images = self.images(subsets[index], keep[index])
            outputs.append(self.wrapper.token_probabilities(images, self.sample).float().cpu())
            self.forwards += images.shape[0]
        return torch.cat(outputs, dim=0)


def _baseline_image(baseline: float | torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    if isinstance(baseline, int | float):
        return torch.full_like(image, float(baseline))
    if not isinstance(baseline, torch.Tensor):
        raise TypeError(f"baselines must be a number or a tensor; got {type(baseline).__name__}.")
    tensor = baseline.to(image.device, image.dtype)
    if tensor.ndim == 3:
        tensor = tensor[None]
    try:
        return torch.broadcast_to(tensor, image.shape).contiguous()
    except RuntimeError as error:
        raise ValueError(
            f"baselines of shape {tuple(baseline.shape)} do not broadcast to the image "
            f"{tuple(image.shape)}."
        ) from error
