r"""Eagle and the Captum baselines of the faithfulness benchmark, as one registry of callables.

Every method has the signature ``method(wrapper, sample, feature_mask, budget=None) -> Tensor``:

- ``wrapper`` (:class:`captum_eagle.MLLMForwardWrapper`) is the forward function all methods share,
- ``sample`` (:class:`captum_eagle.wrapper.PreparedSample`) fixes the prompt, answer and targets,
- ``feature_mask`` (:class:`captum_eagle.FeatureMask`) gives the regions (the region methods use
  them; pixel methods ignore them),
- ``budget`` (int, optional) is a number of model forwards: the sampling methods (Lime, KernelShap,
  ShapleyValueSampling) size their sample count to it (equal-budget comparison); the other methods
  ignore it. ``None`` keeps each method's usual default.

The result is an attribution map shaped like ``sample.image`` (``(1, 3, H, W)``) or
``(1, 1, H, W)``; :mod:`captum_eagle.metrics` accepts both. Every method removes pixels to black
(0), the baseline Eagle uses, so all of them perturb the image the same way.

Settings (chosen once, before any result was seen):

- ``feature_ablation``: one region at a time (``N + 1`` forwards).
- ``shapley``: ``ShapleyValueSampling``, Captum's default 25 permutations (``25 N`` forwards);
  with a budget, ``budget // N`` permutations.
- ``lime``: Captum's ``Lime`` defaults (Lasso, cosine exponential kernel), 50 samples (Captum's
  default); with a budget, that many samples.
- ``kernel_shap``: Captum's ``KernelShap``, 25 samples (Captum's default); with a budget, that many.
- ``integrated_gradients``: black baseline, Captum's default 50 steps.
- ``saliency``: absolute input gradient (Captum's default).
- ``occlusion``: a black square of 1/8 of the image side, stride half a window.
- ``grad_cam``: LLaVA-CAM style: Captum ``LayerGradCam`` on the vision tower's last-layer patch
  tokens (the projector's input, laid out as the patch grid), upsampled bilinearly with
  ``LayerAttribution.interpolate``, smoothed with ``NoiseTunnel`` (SmoothGrad, 8 samples, noise
  standard deviation 0.1 of the pixel range). LLaVA-family models only.
- ``random``: a uniformly random value per region.
- ``eagle``: :class:`captum_eagle.EagleAttribution` with exact greedy search (``N (N + 1)``
  forwards).

Examples::

    >>> from captum_eagle import FeatureMask, MLLMForwardWrapper
    >>> from captum_eagle.testing import tiny_model
    >>> from PIL import Image
    >>> from benchmarks.baselines import get_method, list_methods
    >>> wrapper = MLLMForwardWrapper(*tiny_model("llava", image_size=64))
    >>> sample = wrapper.prepare(Image.new("RGB", (64, 64)), "describe the image .", "a cat")
    >>> mask = FeatureMask.grid(sample.image, 2, 2)
    >>> get_method("kernel_shap")(wrapper, sample, mask, budget=8).shape
    torch.Size([1, 3, 64, 64])
    >>> "eagle" in list_methods()
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from captum.attr import (
    FeatureAblation,
    IntegratedGradients,
    KernelShap,
    LayerAttribution,
    LayerGradCam,
    Lime,
    NoiseTunnel,
    Occlusion,
    Saliency,
    ShapleyValueSampling,
)
from torch import nn

from captum_eagle import EagleAttribution, FeatureMask, MLLMForwardWrapper
from captum_eagle.wrapper import PreparedSample

__all__ = [
    "BASELINE",
    "METHODS",
    "SAMPLING_METHODS",
    "Method",
    "get_method",
    "list_methods",
]

Method = Callable[[MLLMForwardWrapper, PreparedSample, FeatureMask, int | None], torch.Tensor]
"""``(wrapper, sample, feature_mask, budget) -> attribution map``."""

BASELINE = 0.0
"""Value of removed pixels for every method (black, as in the paper)."""

SHAPLEY_PERMUTATIONS = 25
LIME_SAMPLES = 50
KERNEL_SHAP_SAMPLES = 25
IG_STEPS = 50
GRAD_CAM_SAMPLES = 8
GRAD_CAM_NOISE = 0.1


def _region_args(wrapper: MLLMForwardWrapper, sample: PreparedSample, mask: FeatureMask) -> dict:
    return {
        "baselines": BASELINE,
        "additional_forward_args": (sample,),
        "feature_mask": mask.mask,
        "perturbations_per_eval": wrapper.batch_size,
    }


def _check_budget(budget: int | None, name: str) -> None:
    if budget is not None and (isinstance(budget, bool) or budget < 1):
        raise ValueError(f"{name}: budget must be a positive number of forwards or None.")


def eagle(
    wrapper: MLLMForwardWrapper,
    sample: PreparedSample,
    feature_mask: FeatureMask,
    budget: int | None = None,
) -> torch.Tensor:
    r"""Eagle, exact greedy search (``budget`` is ignored: the search fixes its cost)."""
    return EagleAttribution(wrapper).attribute(
        sample.image,
        baselines=BASELINE,
        additional_forward_args=(sample,),
        feature_mask=feature_mask,
        search="exact",
    )


def feature_ablation(
    wrapper: MLLMForwardWrapper,
    sample: PreparedSample,
    feature_mask: FeatureMask,
    budget: int | None = None,
) -> torch.Tensor:
    r"""Captum ``FeatureAblation`` over the regions (``budget`` is ignored)."""
    return FeatureAblation(wrapper).attribute(
        sample.image, **_region_args(wrapper, sample, feature_mask)
    )


def shapley(
    wrapper: MLLMForwardWrapper,
    sample: PreparedSample,
    feature_mask: FeatureMask,
    budget: int | None = None,
) -> torch.Tensor:
    r"""Captum ``ShapleyValueSampling``; ``budget`` forwards buy ``budget // N`` permutations."""
    _check_budget(budget, "shapley")
    permutations = (
        SHAPLEY_PERMUTATIONS if budget is None else max(1, budget // feature_mask.n_regions)
    )
    return ShapleyValueSampling(wrapper).attribute(
        sample.image, n_samples=permutations, **_region_args(wrapper, sample, feature_mask)
    )


def lime(
    wrapper: MLLMForwardWrapper,
    sample: PreparedSample,
    feature_mask: FeatureMask,
    budget: int | None = None,
) -> torch.Tensor:
    r"""Captum ``Lime`` with its defaults; ``budget`` sets the number of samples."""
    _check_budget(budget, "lime")
    return Lime(wrapper).attribute(
        sample.image,
        n_samples=LIME_SAMPLES if budget is None else budget,
        **_region_args(wrapper, sample, feature_mask),
    )


def kernel_shap(
    wrapper: MLLMForwardWrapper,
    sample: PreparedSample,
    feature_mask: FeatureMask,
    budget: int | None = None,
) -> torch.Tensor:
    r"""Captum ``KernelShap``; ``budget`` sets the number of samples."""
    _check_budget(budget, "kernel_shap")
    return KernelShap(wrapper).attribute(
        sample.image,
        n_samples=KERNEL_SHAP_SAMPLES if budget is None else budget,
        **_region_args(wrapper, sample, feature_mask),
    )


def integrated_gradients(
    wrapper: MLLMForwardWrapper,
    sample: PreparedSample,
    feature_mask: FeatureMask,
    budget: int | None = None,
) -> torch.Tensor:
    r"""Captum ``IntegratedGradients`` from the black image (pixel map; regions unused)."""
    return IntegratedGradients(wrapper).attribute(
        sample.image,
        baselines=BASELINE,
        additional_forward_args=(sample,),
        n_steps=IG_STEPS,
        internal_batch_size=wrapper.batch_size,
    )


def saliency(
    wrapper: MLLMForwardWrapper,
    sample: PreparedSample,
    feature_mask: FeatureMask,
    budget: int | None = None,
) -> torch.Tensor:
    r"""Captum ``Saliency`` (absolute input gradient; pixel map; regions unused)."""
    return Saliency(wrapper).attribute(sample.image, additional_forward_args=(sample,))


def occlusion(
    wrapper: MLLMForwardWrapper,
    sample: PreparedSample,
    feature_mask: FeatureMask,
    budget: int | None = None,
) -> torch.Tensor:
    r"""Captum ``Occlusion`` with a black square of 1/8 of the side, stride half a window."""
    height, width = sample.image.shape[-2:]
    window = (3, max(1, math.ceil(height / 8)), max(1, math.ceil(width / 8)))
    stride = (3, max(1, window[1] // 2), max(1, window[2] // 2))
    return Occlusion(wrapper).attribute(
        sample.image,
        sliding_window_shapes=window,
        strides=stride,
        baselines=BASELINE,
        additional_forward_args=(sample,),
        perturbations_per_eval=wrapper.batch_size,
    )


class _PatchGrid(nn.Module):
    """Identity on patch tokens that exposes them as a ``(B, D, rows, cols)`` grid for Grad-CAM."""

    def __init__(self, rows: int, cols: int) -> None:
        super().__init__()
        self.rows, self.cols = rows, cols

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        batch, _, dim = tokens.shape
        return tokens.transpose(1, 2).reshape(batch, dim, self.rows, self.cols)


class _GridProjector(nn.Module):
    """The model's projector, fed through a :class:`_PatchGrid` so the grid is a hookable layer."""

    def __init__(self, projector: nn.Module, grid: _PatchGrid) -> None:
        super().__init__()
        self.projector, self.grid = projector, grid

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        grid = self.grid(tokens)
        return self.projector(grid.flatten(2).transpose(1, 2))


@contextmanager
def _patch_grid_layer(wrapper: MLLMForwardWrapper) -> Iterator[_PatchGrid]:
    """Temporarily route the LLaVA projector's input through a spatial :class:`_PatchGrid`."""
    owner = getattr(wrapper.model, "model", wrapper.model)
    projector = getattr(owner, "multi_modal_projector", None)
    vision = getattr(wrapper.model.config, "vision_config", None)
    if projector is None or vision is None or not hasattr(vision, "patch_size"):
        raise ValueError(
            "grad_cam needs a LLaVA-family model (a vision tower with square patches feeding a "
            f"multi_modal_projector); {type(wrapper.model).__name__} has none. Use another method."
        )
    height, width = wrapper.adapter.input_size(vision.image_size, vision.image_size)
    grid = _PatchGrid(height // vision.patch_size, width // vision.patch_size)
    owner.multi_modal_projector = _GridProjector(projector, grid)
    try:
        yield grid
    finally:
        owner.multi_modal_projector = projector


def grad_cam(
    wrapper: MLLMForwardWrapper,
    sample: PreparedSample,
    feature_mask: FeatureMask,
    budget: int | None = None,
) -> torch.Tensor:
    r"""LLaVA-CAM-style Grad-CAM on the last vision layer's patch grid, NoiseTunnel-smoothed."""
    with _patch_grid_layer(wrapper) as grid:
        smoothed = NoiseTunnel(LayerGradCam(wrapper, grid))
        cam = smoothed.attribute(
            sample.image,
            nt_type="smoothgrad",
            nt_samples=GRAD_CAM_SAMPLES,
            nt_samples_batch_size=wrapper.batch_size,
            stdevs=GRAD_CAM_NOISE,
            additional_forward_args=(sample,),
            relu_attributions=True,
        )
    return LayerAttribution.interpolate(cam.detach(), tuple(sample.image.shape[-2:]), "bilinear")


def random_regions(
    wrapper: MLLMForwardWrapper,
    sample: PreparedSample,
    feature_mask: FeatureMask,
    budget: int | None = None,
) -> torch.Tensor:
    r"""A uniformly random value per region from torch's global generator (seed it first)."""
    values = torch.rand(feature_mask.n_regions, dtype=torch.float64)
    return values[feature_mask.mask].float()


METHODS: dict[str, Method] = {
    "eagle": eagle,
    "feature_ablation": feature_ablation,
    "shapley": shapley,
    "lime": lime,
    "kernel_shap": kernel_shap,
    "integrated_gradients": integrated_gradients,
    "saliency": saliency,
    "occlusion": occlusion,
    "grad_cam": grad_cam,
    "random": random_regions,
}
"""All methods by name (see the module docstring for their settings)."""

SAMPLING_METHODS: tuple[str, ...] = ("shapley", "lime", "kernel_shap")
"""Methods whose cost follows ``budget`` (run once at their default, once at Eagle's forwards)."""


def list_methods() -> list[str]:
    """Names accepted by :func:`get_method`."""
    return list(METHODS)


def get_method(name: str) -> Method:
    r"""The method registered under ``name``.

    Args:
        name (str): one of :func:`list_methods`.

    Returns:
        Method: ``(wrapper, sample, feature_mask, budget=None) -> attribution map``.
    """
    if name not in METHODS:
        raise KeyError(f"Unknown method {name!r}; choose one of {list_methods()}.")
    return METHODS[name]
