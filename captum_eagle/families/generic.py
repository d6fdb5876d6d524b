r"""The processor-agnostic ("generic") path: any image-text-to-text model, via its own processor.

A hand-written adapter lays out pixels in torch for one family. The generic path instead asks the
model's own processor, so every family transformers ships works unchanged, dynamic resolution
(Qwen2/2.5/3-VL), tiling (LLaVA-NeXT "anyres", InternVL tiles, Idefics3 splitting) and pan-and-scan
included. Regions are defined on the image the user passed, at its own resolution.

Two ways to get the model's pixel inputs:

- :meth:`GenericFamily.pixel_inputs`: run the processor on every image of a batch (exact, one
  processor call per batch; used when Captum methods hand the wrapper arbitrary images);
- :meth:`GenericFamily.region_basis`: a processor's pixel pipeline (resize, rescale, normalise,
  tile, patchify) is affine in the pixel values, so for a partition into ``N`` regions
  ``P(image_S) = P(baseline) + Σ_{i∈S} Δ_i`` with ``Δ_i = P(region i over baseline) − P(baseline)``.
  ``N + 1`` processor calls once; then the pixel inputs of any batch of subsets are one
  ``(K, N) @ (N, D)`` product on the model's device (:class:`RegionSubsets`).

The PIL image processors resize 8-bit images, so when the processor resizes the image the affine
sum is not exact: each processor call rounds to 8 bits, and the resize's overshoot at a region's
border is clipped to ``[0, 255]``. Measured on the tiny families with a black baseline: mean error
below half an 8-bit level, up to ~30 levels at a few border pixels, token probabilities within
2e-4 of the processor's (tests/test_conformance.py states the bounds). Without a resize it is exact
up to float32 rounding. For exact pixels, score materialised images
(``wrapper(subsets.images(), sample)``), which runs the processor on every image.

:class:`~captum_eagle.EagleAttribution` uses the region basis by default (the scorer calls
:meth:`GenericFamily.region_basis` once per explanation). Chosen over "processor per masked image
by default" because it keeps the engine's speed (the processor's ``N + 1`` calls are a small share
of an explanation, ``benchmarks/speed.py --generic``) and the error above never changed an order
in our checks: the conformance kit asserts, on every tiny family and with a resizing processor,
that Eagle's order equals the reference that runs the processor on every masked image, and
without a resize the two are the same computation.

Gradients cannot flow through a processor: gradient methods (IntegratedGradients, Saliency,
Grad-CAM) need a family with a torch adapter, and the generic path says so instead of returning a
silent wrong map.

Examples::

    >>> import torch
    >>> from captum_eagle import FeatureMask, MLLMForwardWrapper
    >>> from captum_eagle.testing import tiny_model
    >>> wrapper = MLLMForwardWrapper(*tiny_model("qwen2_5_vl"), family="generic")
    >>> sample = wrapper.prepare(torch.rand(3, 60, 90), "describe the image .", "a red cat")
    >>> tuple(sample.image.shape)  # the user's resolution: regions are drawn on it
    (1, 3, 60, 90)
    >>> mask = FeatureMask.grid(sample.image, 2, 2)
    >>> basis = wrapper.adapter.region_basis(sample.image, mask.mask, baselines=0.0)
    >>> subsets = torch.tensor([[True, False, False, False], [True, True, True, False]])
    >>> images = basis.subsets(subsets, keep=True)  # a lazy batch of two masked images
    >>> wrapper.token_probabilities(images, sample).shape
    torch.Size([2, 3])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image
from transformers import PreTrainedModel, ProcessorMixin

from captum_eagle.families.base import FAMILIES, ModelFamily

_TOKEN_KEYS = ("input_ids", "attention_mask")


class GenericFamily(ModelFamily):
    r"""Any image-text-to-text model, fed exactly what its own processor makes of each image.

    Selected automatically for a model class without a hand-written adapter, or forced with
    ``MLLMForwardWrapper(model, processor, family="generic")``. The model's input size is the
    user's image size (no resize before masking: the processor resizes, tiles and patchifies).

    Args:
        model (PreTrainedModel): an image-text-to-text model (its config has a ``vision_config``
            and an image token id).
        processor (ProcessorMixin): the model's multimodal processor (with an image processor).

    Raises:
        TypeError: the model is text-only, or the processor has no image processor.
    """

    name: ClassVar[str] = "generic"
    model_classes: ClassVar[tuple[str, ...]] = ()
    processor_class: ClassVar[str] = "AutoProcessor"

    def __init__(self, model: PreTrainedModel, processor: ProcessorMixin) -> None:
        self.check_model(model)
        super().__init__(model, processor)
        self.prompt_text: str | None = None

    @classmethod
    def check_model(cls, model: Any) -> None:
        r"""Raise a ``TypeError`` naming what is missing if ``model`` cannot take images + text."""
        config = getattr(model, "config", None)
        name = type(model).__name__
        if getattr(config, "vision_config", None) is None:
            raise TypeError(
                f"{name} is not an image-text-to-text model: its config has no vision_config. "
                "captum-eagle explains models that AutoModelForImageTextToText loads (LLaVA, "
                "Qwen2.5-VL, InternVL, Gemma 3, Idefics3, ...), with their processor."
            )
        if getattr(config, "image_token_id", getattr(config, "image_token_index", None)) is None:
            raise TypeError(
                f"{name} has a vision tower but no image token (config.image_token_id), so its "
                "prompt has no slot for the image; captum-eagle cannot place the image tokens."
            )

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """The user's own size: regions and maps live on the image as passed."""
        return height, width

    def processor_inputs(self, image: Image.Image, text: str) -> dict[str, Any]:
        """Run the processor on the full image and remember the prompt for later pixel calls."""
        encoded = super().processor_inputs(image, text)
        self.prompt_text = text
        return encoded

    def pixel_inputs(self, images: torch.Tensor | RegionSubsets) -> dict[str, torch.Tensor]:
        r"""The processor's pixel keyword arguments for a batch of images (exact; no gradients).

        Args:
            images (Tensor or RegionSubsets): ``(B, 3, H, W)`` in ``[0, 1]`` (each image goes
                through the processor), or a lazy batch from :meth:`RegionBasis.subsets`.

        Returns:
            dict: what the processor returns for these images besides the tokens (``pixel_values``
            and any grid/tile/size metadata), batched as the processor batches them.

        Raises:
            TypeError: ``images`` requires a gradient (a gradient method needs a torch adapter).
        """
        if isinstance(images, RegionSubsets):
            return images.pixel_inputs()
        if images.requires_grad:
            adapters = sorted(name for name in FAMILIES if name != self.name)
            raise TypeError(
                f"Gradient methods need pixels laid out in torch, but {type(self.model).__name__} "
                "runs on the generic path, which feeds images through the processor (no gradient "
                f"flows). Use a model family with an adapter ({', '.join(adapters)}), or a "
                "perturbation method (EagleAttribution, FeatureAblation, Lime, KernelShap, ...)."
            )
        device = images.device
        encoded = self._run_processor([_to_pil(image) for image in images.detach().cpu()])
        return {
            key: value.to(device, self.dtype) if value.is_floating_point() else value.to(device)
            for key, value in encoded.items()
        }

    def region_basis(
        self,
        image: torch.Tensor,
        feature_mask: torch.Tensor,
        baselines: float | torch.Tensor = 0.0,
        *,
        chunk_size: int = 16,
    ) -> RegionBasis:
        r"""Processor outputs of every region over the baseline: ``N + 1`` processor calls, once.

        Args:
            image (Tensor): ``(1, 3, H, W)`` in ``[0, 1]`` (the prepared ``sample.image``).
            feature_mask (Tensor): region ids ``0..N-1`` of shape ``(H, W)``, ``(1, H, W)`` or
                ``(1, 1, H, W)``.
            baselines (float or Tensor): fill value of hidden pixels (a number, ``(3, H, W)`` or
                ``(1, 3, H, W)`` in ``[0, 1]``). Default: 0 (black).
            chunk_size (int): images per processor call. Default: 16.

        Returns:
            RegionBasis

        Raises:
            ValueError: bad shapes, or the processor's layout (grid, tiles, token count) changes
                with the image content, which the affine decomposition cannot represent.
        """
        if image.ndim != 4 or image.shape[:2] != (1, 3):
            raise ValueError(f"image must be (1, 3, H, W); got {tuple(image.shape)}.")
        regions = feature_mask.reshape(feature_mask.shape[-2:]).to(image.device).long()
        if feature_mask.numel() != regions.numel() or regions.shape != image.shape[-2:]:
            raise ValueError(
                f"feature_mask of shape {tuple(feature_mask.shape)} does not match the image "
                f"{tuple(image.shape[-2:])}; build it on sample.image."
            )
        n_regions = int(regions.max()) + 1
        if regions.min() < 0 or torch.unique(regions).numel() != n_regions:
            raise ValueError("feature_mask ids must be 0..N-1 without gaps; relabel the regions.")
        baseline = torch.broadcast_to(
            torch.as_tensor(baselines, dtype=image.dtype, device=image.device), image.shape
        )
        region_ids = torch.arange(n_regions, device=image.device)
        # image 0: all baseline; image i + 1: region i over the baseline.
        show = torch.cat([regions.new_full((1,), -1), region_ids])[:, None, None] == regions
        masked = torch.where(show[:, None], image, baseline)
        outputs = [
            self._run_processor([_to_pil(row) for row in masked[start : start + chunk_size].cpu()])
            for start in range(0, masked.shape[0], chunk_size)
        ]
        device = self.model.device
        pixels: dict[str, torch.Tensor] = {}
        layout: dict[str, torch.Tensor] = {}
        for key in outputs[0]:
            value = torch.cat([output[key] for output in outputs])
            per_image = value.reshape(n_regions + 1, -1, *value.shape[1:])
            if value.is_floating_point():
                pixels[key] = per_image.to(device, torch.float32)
                continue
            if not (per_image == per_image[:1]).all():
                raise ValueError(
                    f"The processor's {key!r} changes with the image content, so the affine "
                    "region decomposition does not hold for this processor; use "
                    "wrapper.pixel_inputs on masked images instead."
                )
            layout[key] = per_image[0].to(device)
        return RegionBasis(
            image=image,
            baseline=baseline,
            regions=regions,
            image_of_region=torch.zeros(n_regions, dtype=torch.long),
            empty={key: value[0] for key, value in pixels.items()},
            deltas={key: (value[1:] - value[:1]).flatten(1) for key, value in pixels.items()},
            layout=layout,
            dtype=self.dtype,
        )

    def _run_processor(self, images: list[Image.Image]) -> dict[str, torch.Tensor]:
        text = self.prompt_text or getattr(self.processor, "image_token", None)
        if text is None:
            raise ValueError(
                f"{type(self.processor).__name__} has no image_token; call wrapper.prepare(...) "
                "first so the generic path knows a prompt with the image slot."
            )
        encoded = self.processor(
            images=[[image] for image in images], text=[text] * len(images), return_tensors="pt"
        )
        input_shape = encoded["input_ids"].shape
        return {
            key: value
            for key, value in encoded.items()
            if key not in _TOKEN_KEYS
            and isinstance(value, torch.Tensor)
            and value.shape != input_shape
        }


@dataclass(frozen=True)
class RegionBasis:
    r"""Processor outputs of the baseline image and of every region over it.

    Built by :meth:`GenericFamily.region_basis`. Regions are keyed by the image they lie on
    (``image_of_region``; one image today), so a prompt with several images or video frames can
    share one basis later.

    Attributes:
        image (Tensor): ``(1, 3, H, W)`` the explained image.
        baseline (Tensor): ``(1, 3, H, W)`` the fill of hidden pixels.
        regions (Tensor): ``(H, W)`` region ids ``0..N-1``.
        image_of_region (Tensor): ``(N,)`` index of the image each region belongs to.
        empty (dict): per float key, the processor output of the all-baseline image.
        deltas (dict): per float key, ``(N, D)`` change made by showing each region.
        layout (dict): integer keys (grid, tile counts, sizes), the same for every subset.
        dtype (torch.dtype): dtype the model takes.
    """

    image: torch.Tensor
    baseline: torch.Tensor
    regions: torch.Tensor
    image_of_region: torch.Tensor
    empty: dict[str, torch.Tensor]
    deltas: dict[str, torch.Tensor]
    layout: dict[str, torch.Tensor]
    dtype: torch.dtype

    @property
    def n_regions(self) -> int:
        return int(self.image_of_region.numel())

    def subsets(self, subsets: torch.Tensor, keep: torch.Tensor | bool = True) -> RegionSubsets:
        r"""A lazy batch of masked images for region subsets (pass it to the wrapper like images).

        Args:
            subsets (Tensor): ``(K, N)`` bool, the regions of each subset.
            keep (Tensor or bool): per subset, ``True`` shows only the subset's regions,
                ``False`` hides them.
        """
        if subsets.ndim != 2 or subsets.shape[1] != self.n_regions:
            raise ValueError(
                f"subsets must be (K, {self.n_regions}) bool; got {tuple(subsets.shape)}."
            )
        subsets = subsets.bool()
        keep = torch.as_tensor(keep, dtype=torch.bool, device=subsets.device)
        return RegionSubsets(self, subsets, keep.expand(subsets.shape[0]))

    def pixel_inputs(self, visible: torch.Tensor) -> dict[str, torch.Tensor]:
        r"""Pixel keyword arguments for ``(K, N)`` bool visible-region rows: one matmul per key."""
        batch = visible.shape[0]
        inputs = {}
        for key, delta in self.deltas.items():
            empty = self.empty[key]
            values = empty.flatten() + visible.to(delta.device, torch.float32) @ delta
            inputs[key] = values.reshape(batch * empty.shape[0], *empty.shape[1:]).to(self.dtype)
        for key, value in self.layout.items():
            inputs[key] = value.repeat(batch, *([1] * (value.ndim - 1)))
        return inputs


class RegionSubsets:
    r"""A batch of masked images given by region subsets, not materialised.

    It stands in for a ``(K, 3, H, W)`` image tensor where the wrapper takes one (``shape``,
    ``ndim``, ``device``, slicing, ``.to``), so ``wrapper.token_probabilities(subsets, sample)``
    runs the model on the processor's output for each masked image at the cost of one matmul.
    :meth:`images` materialises the pixels (for checks and plots).
    """

    def __init__(self, basis: RegionBasis, subsets: torch.Tensor, keep: torch.Tensor) -> None:
        self.basis = basis
        self.subsets = subsets
        self.keep = keep

    @property
    def shape(self) -> torch.Size:
        return torch.Size([self.subsets.shape[0], *self.basis.image.shape[1:]])

    @property
    def ndim(self) -> int:
        return 4

    @property
    def device(self) -> torch.device:
        return self.basis.image.device

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def requires_grad(self) -> bool:
        return False

    def __len__(self) -> int:
        return self.subsets.shape[0]

    def __getitem__(self, index: slice) -> RegionSubsets:
        if not isinstance(index, slice):
            raise TypeError(f"RegionSubsets take slices only; got {type(index).__name__}.")
        return RegionSubsets(self.basis, self.subsets[index], self.keep[index])

    def to(self, *args: Any, **kwargs: Any) -> RegionSubsets:
        """No-op: the basis already lives on the model's device."""
        return self

    def visible(self) -> torch.Tensor:
        """``(K, N)`` bool: the regions shown in each image."""
        return self.subsets == self.keep[:, None]

    def pixel_inputs(self) -> dict[str, torch.Tensor]:
        """The model's pixel keyword arguments for these images (see :class:`RegionBasis`)."""
        return self.basis.pixel_inputs(self.visible())

    def images(self) -> torch.Tensor:
        """The masked images themselves, ``(K, 3, H, W)`` in ``[0, 1]``."""
        visible = self.visible().to(self.device)
        show = visible[:, self.basis.regions][:, None]
        return torch.where(show, self.basis.image, self.basis.baseline)


def _to_pil(image: torch.Tensor) -> Image.Image:
    array = (image.permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return Image.fromarray(np.ascontiguousarray(array))


FAMILIES.add(GenericFamily.name, GenericFamily)
