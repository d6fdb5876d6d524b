r"""The Eagle objective: insight and necessity of region subsets, scored in batched forwards.

For a set ``S`` of kept regions, ``insight(S) = mean_t p_t(image restricted to S)`` and
``necessity(S) = mean_t (1 - p_t(image with S removed))``; the objective is their weighted sum
``F(S) = w_i · insight(S) + w_n · necessity(S)``. Both images of every subset are built on the
model's device with one ``torch.where`` per batch and go through the model together.

Identical images are scored once: a masked image is determined by the regions it shows that
differ from the baseline, so the scorer caches by that set. The kept image of ``∅`` and the removed
image of ``V`` (all baseline) are one image, so are the removed image of ``∅`` and the kept image
of ``V`` (the full image), and subsets that differ only by regions equal to the baseline share
their images too: tied candidates get bit-identical scores whatever batch they were scored in.
"""

from __future__ import annotations

from dataclasses import dataclass
from time import perf_counter
from typing import Any, cast

import torch

from captum_eagle._deprecation import renamed_keywords
from captum_eagle.batching import AutoBatchSize
from captum_eagle.maps import baseline_image, check_baselines
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
        image (Tensor, optional): the ``(1, 3, H, W)`` image whose regions are kept or removed,
            at the sample's size (e.g. a noisy copy of ``sample.image``). Default:
            ``sample.image``.
        baselines (float or Tensor, optional): fill value of removed pixels (a number, or a
            tensor broadcastable to the image such as ``(3, 1, 1)`` or ``(1, 3, H, W)``), finite
            and in ``[0, 1]`` pixel space. Default: ``None``, i.e. 0 (black).
        baseline: deprecated spelling of ``baselines`` (warns; removed in the next release).
        insight_weight (float): weight of the insight term. Default: 1.
        necessity_weight (float): weight of the necessity term. Default: 1.
        batch_size (int, str or AutoBatchSize, optional): images per forward (a positive
            ``int``; ``bool`` is rejected). ``None``: the wrapper's ``batch_size``. ``"auto"``:
            measured while scoring (the largest batch that fits the memory budget on CUDA, the
            fastest on CPU), halved and retried on an out-of-memory error; pass an
            :class:`~captum_eagle.batching.AutoBatchSize` to set the budget. The scores do not
            depend on the batch size.

    Attributes:
        forwards (int): images scored by the model so far (an image seen before costs none).
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
        >>> empty_and_all = torch.tensor([[False] * 4, [True] * 4])
        >>> _ = scorer.score(empty_and_all)  # 2 distinct images: blank and full
        >>> scorer.forwards
        6
    """

    @renamed_keywords(baseline="baselines")
    def __init__(
        self,
        wrapper: MLLMForwardWrapper,
        sample: PreparedSample,
        feature_mask: FeatureMask,
        *,
        image: torch.Tensor | None = None,
        baselines: float | torch.Tensor | None = None,
        insight_weight: float = 1.0,
        necessity_weight: float = 1.0,
        batch_size: int | str | AutoBatchSize | None = None,
    ) -> None:
        baselines = 0.0 if baselines is None else baselines
        check_baselines(baselines)
        check_batch_size(batch_size)
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
        self.batch_size: int = (
            self.auto_batch.size
            if self.auto_batch
            else cast("int | None", batch_size) or wrapper.batch_size
        )
        image = sample.image if image is None else image
        if image.shape != sample.image.shape:
            raise ValueError(
                f"image {tuple(image.shape)} must have the prepared sample's shape "
                f"{tuple(sample.image.shape)}."
            )
        device = wrapper.device
        self.image = image.detach().to(device, torch.float32)
        self.baseline = baseline_image(baselines, self.image)
        self.pixel_region = feature_mask.mask.to(device).flatten()
        # Families without a torch pixel layout (the generic path) decompose the processor's
        # output over the regions once (N + 1 processor calls); subsets are then sums of it.
        region_basis = getattr(wrapper.adapter, "region_basis", None)
        self.basis = (
            region_basis(self.image, feature_mask.mask, self.baseline) if region_basis else None
        )
        self.forwards = 0
        same = (self.image == self.baseline).all(dim=1).flatten()
        differs = torch.bincount(self.pixel_region[~same], minlength=self.n_regions)
        # Regions equal to the baseline look the same shown or hidden: they do not change an image.
        self.visible = (differs > 0).cpu()
        self._cache: dict[bytes, torch.Tensor] = {}

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

    def feature_areas(self) -> torch.Tensor:
        r"""``(N,)`` pixel count of each region: the x axis of the per-token influence."""
        return self.feature_mask.areas

    def model_inputs(
        self, subsets: torch.Tensor, keep: torch.Tensor
    ) -> tuple[Any, torch.Tensor | None]:
        r"""What the wrapper scores for a batch of subsets: ``(images, prompt_ids)``.

        ``images`` are the masked images (:meth:`images`), or, on the generic path, the lazy
        :class:`~captum_eagle.families.RegionSubsets` that sum the processor's region basis;
        ``prompt_ids`` is ``None`` (the sample's prompt). Subclasses that perturb more than the
        image (joint image + prompt features) override this and :meth:`image_key`.
        """
        if self.basis is not None:
            return self.basis.subsets(subsets, keep), None
        return self.images(subsets, keep), None

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

        Images seen before (in this call or earlier) come from the cache and cost no forward; see
        :meth:`image_key`.
        """
        subsets = subsets.bool().cpu()
        keys, todo = self._missing(subsets, self.terms if terms is None else terms)
        if todo:
            rows = torch.tensor([i for i, _ in todo.values()])
            kept = torch.tensor([k for _, k in todo.values()])
            probabilities = self._forward(subsets[rows], kept)
            self._cache.update(zip(todo, probabilities, strict=True))
        nan = torch.full((self.n_targets,), float("nan"))

        def cached(keep: bool) -> torch.Tensor:
            return torch.stack([self._cache.get(key, nan) for key in keys[keep]])

        return SubsetScores(kept=cached(True), removed=cached(False))

    def cost(self, subsets: torch.Tensor, terms: tuple[bool, ...] | None = None) -> int:
        r"""The forwards :meth:`score` would spend on ``subsets`` now: images not yet cached.

        Examples::

            >>> import torch
            >>> from PIL import Image
            >>> from captum_eagle import FeatureMask, MLLMForwardWrapper
            >>> from captum_eagle.objective import SubsetScorer
            >>> from captum_eagle.testing import tiny_model
            >>> wrapper = MLLMForwardWrapper(*tiny_model("llava"))
            >>> sample = wrapper.prepare(Image.new("RGB", (32, 32), "red"), "describe", "a cat")
            >>> scorer = SubsetScorer(wrapper, sample, FeatureMask.grid(sample.image, 2, 2))
            >>> subsets = torch.eye(4, dtype=torch.bool)
            >>> scorer.cost(subsets), scorer.cost(subsets, terms=(True,))
            (8, 4)
            >>> _ = scorer.score(subsets)
            >>> scorer.cost(subsets), scorer.forwards
            (0, 8)
        """
        return len(self._missing(subsets.bool().cpu(), self.terms if terms is None else terms)[1])

    def _missing(
        self, subsets: torch.Tensor, terms: tuple[bool, ...]
    ) -> tuple[dict[bool, list[bytes]], dict[bytes, tuple[int, bool]]]:
        """Keys of each (row, image), and the requested images missing from the cache, once."""
        keys = {keep: [self.image_key(row, keep) for row in subsets] for keep in (True, False)}
        todo: dict[bytes, tuple[int, bool]] = {}
        for i in range(subsets.shape[0]):
            for keep in terms:
                if keys[keep][i] not in self._cache:
                    todo.setdefault(keys[keep][i], (i, keep))
        return keys, todo

    def image_key(self, subset: torch.Tensor, keep: bool) -> bytes:
        r"""Identifies the masked image of ``subset`` ``(N,)`` bool: kept (``True``) or removed.

        The image shows the regions where ``subset == keep`` and the baseline elsewhere, so it is
        determined by the shown regions that differ from the baseline: equal keys, equal images.
        """
        return ((subset == keep) & self.visible).numpy().tobytes()

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
            images, prompt_ids = self.model_inputs(subsets[index], keep[index])
            try:
                probabilities = self._measured_forward(images, prompt_ids)
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

    def _measured_forward(self, images: Any, prompt_ids: torch.Tensor | None) -> torch.Tensor:
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
        probabilities = self.wrapper.token_probabilities(
            images, self.sample, batch_size=images.shape[0], prompt_ids=prompt_ids
        ).float()
        if cuda:
            torch.cuda.synchronize(device)
        if measuring and self.auto_batch is not None:
            peak = torch.cuda.max_memory_allocated(device) - allocated if cuda else None
            self.auto_batch.measure(
                images.shape[0],
                perf_counter() - started,
                peak,
                free_bytes=free if cuda else None,
            )
        return probabilities


def check_batch_size(batch_size: object, name: str = "batch_size") -> None:
    r"""Raise unless ``batch_size`` is a positive ``int``, ``"auto"``, an AutoBatchSize or None.

    ``bool`` is not a batch size here (``True`` is an ``int`` in Python): it raises ``TypeError``,
    as do floats; ``0``, negative numbers and other strings raise ``ValueError``.

    Examples::

        >>> check_batch_size(8)
        >>> check_batch_size(2.5)
        Traceback (most recent call last):
        ...
        TypeError: batch_size must be a positive int, 'auto' or None; got 2.5 (float).
    """
    message = f"{name} must be a positive int, 'auto' or None; got {batch_size!r}"
    if batch_size is None or isinstance(batch_size, AutoBatchSize) or batch_size == "auto":
        return
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | str):
        raise TypeError(f"{message} ({type(batch_size).__name__}).")
    if isinstance(batch_size, str) or batch_size < 1:
        raise ValueError(f"{message}.")


def _auto_batch(batch_size: int | str | AutoBatchSize | None) -> AutoBatchSize | None:
    if isinstance(batch_size, AutoBatchSize):
        return batch_size
    return AutoBatchSize() if batch_size == "auto" else None
