r"""The Eagle objective: insight and necessity of region subsets, scored in batched forwards.

For a set ``S`` of kept regions, ``insight(S) = mean_t p_t(image restricted to S)`` and
``necessity(S) = mean_t (1 - p_t(image with S removed))``; the objective is their weighted sum
``F(S) = w_i · insight(S) + w_n · necessity(S)``. Both images of every subset are built on the
model's device with one ``torch.where`` per batch and go through the model together.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from time import perf_counter

import torch

from captum_eagle.batching import AutoBatchSize
from captum_eagle.maps import baseline_image as _baseline_image
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
        batch_size (int, str or AutoBatchSize, optional): images per forward. ``None``: the
            wrapper's ``batch_size``. ``"auto"``: measured while scoring (the largest batch that
            fits the memory budget on CUDA, the fastest on CPU), halved and retried on an
            out-of-memory error; pass an :class:`~captum_eagle.batching.AutoBatchSize` to set
            the budget. The scores do not depend on the batch size.

    Attributes:
        forwards (int): images scored by the model so far (cached subsets cost none).
        batch_size (int): the batch size in use (with ``"auto"``: the current choice).
        auto_batch (AutoBatchSize or None): the automatic batch sizer, if any.

    Examples::

        >>> import torch
        >>> from PIL import Image
        >>> from captum_eagle import FeatureMask, MLLMForwardWrapper
        >>> from captum_eagle.objective import SubsetScorer
        >>> from captum_eagle.testing import tiny_model
        >>> wrapper = MLLMForwardWrapper(*tiny_model("llava"))
        >>> sample = wrapper.prepare(Image.new("RGB", (32, 32), "red"), "describe", "a red cat")
        >>> scorer = SubsetScorer(wrapper, sample, FeatureMask.grid(sample.image, 2, 2))
        >>> subsets = torch.tensor([[True, False, False, False], [True, True, False, False]])
        >>> scores = scorer.score(subsets)
        >>> scores.kept.shape, scorer.objective(scores).shape, scorer.forwards
        (torch.Size([2, 3]), torch.Size([2]), 4)
        >>> _ = scorer.score(subsets[:1])  # cached: no forward
        >>> scorer.forwards
        4
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
        batch_size: int | str | AutoBatchSize | None = None,
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
        self.auto_batch = _auto_batch(batch_size)
        self.batch_size = (
            self.auto_batch.size if self.auto_batch else batch_size or wrapper.batch_size
        )
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
        start = 0
        while start < subsets.shape[0]:
            size = self.auto_batch.size if self.auto_batch else self.batch_size
            index = slice(start, start + size)
            images = self.images(subsets[index], keep[index])
            try:
                probabilities = self._measured_forward(images)
            except torch.OutOfMemoryError:
                if not self.auto_batch or not self.auto_batch.out_of_memory(images.shape[0]):
                    raise
                if images.is_cuda:
                    torch.cuda.empty_cache()
                continue
            outputs.append(probabilities)
            self.forwards += images.shape[0]
            start += images.shape[0]
        if self.auto_batch:
            self.batch_size = self.auto_batch.size
        # One device-to-host copy per request: no host sync between the chunks.
        return torch.cat(outputs, dim=0).cpu()

    def _measured_forward(self, images: torch.Tensor) -> torch.Tensor:
        measuring = self.auto_batch is not None and not self.auto_batch.settled
        cuda = measuring and images.is_cuda
        if cuda:
            device = images.device
            torch.cuda.synchronize(device)
            allocated = torch.cuda.memory_allocated(device)
            free = torch.cuda.mem_get_info(device)[0]
            free += torch.cuda.memory_reserved(device) - allocated
            torch.cuda.reset_peak_memory_stats(device)
        started = perf_counter()
        with _forward_batch(self.wrapper, images.shape[0]):
            probabilities = self.wrapper.token_probabilities(images, self.sample).float()
        if cuda:
            torch.cuda.synchronize(device)
        if measuring:
            peak = torch.cuda.max_memory_allocated(device) - allocated if cuda else None
            self.auto_batch.measure(
                images.shape[0],
                perf_counter() - started,
                peak,
                free_bytes=free if cuda else None,
            )
        return probabilities


@contextmanager
def _forward_batch(wrapper: MLLMForwardWrapper, size: int) -> Iterator[None]:
    """Let the wrapper run ``size`` images in one model forward (it splits by its own size)."""
    previous = wrapper.batch_size
    wrapper.batch_size = size
    try:
        yield
    finally:
        wrapper.batch_size = previous


def _auto_batch(batch_size: int | str | AutoBatchSize | None) -> AutoBatchSize | None:
    if isinstance(batch_size, AutoBatchSize):
        return batch_size
    if batch_size == "auto":
        return AutoBatchSize()
    if batch_size is None or (isinstance(batch_size, int) and batch_size >= 1):
        return None
    raise ValueError(f"batch_size must be a positive int, 'auto' or None; got {batch_size!r}.")
