r"""The benchmarks' extra baseline, Grad-CAM, registered in :mod:`captum_eagle.baselines`.

Every benchmark runs its methods through the package's one registry
(:func:`captum_eagle.baselines.attribute`, settings and budgets documented there) and counts
forwards with :class:`captum_eagle.baselines.ForwardCounter`, so a benchmark table and a
``captum-eagle run --merge`` table mean the same thing by a method name. Importing this module adds:

- ``grad_cam``: LLaVA-CAM style: Captum ``LayerGradCam`` on the vision tower's last-layer patch
  tokens (the projector's input, laid out as the patch grid), upsampled bilinearly with
  ``LayerAttribution.interpolate``, smoothed with ``NoiseTunnel`` (SmoothGrad, 8 samples, noise
  standard deviation 0.1 of the pixel range). LLaVA-family models only; fixed cost.

Examples::

    >>> from captum_eagle import FeatureMask, MLLMForwardWrapper
    >>> from captum_eagle.baselines import attribute, list_methods
    >>> from captum_eagle.testing import tiny_model
    >>> from PIL import Image
    >>> import benchmarks.baselines
    >>> wrapper = MLLMForwardWrapper(*tiny_model("llava", image_size=64))
    >>> sample = wrapper.prepare(Image.new("RGB", (64, 64)), "describe the image .", "a cat")
    >>> mask = FeatureMask.grid(sample.image, 2, 2)
    >>> attribute("grad_cam", wrapper, sample, mask).shape
    torch.Size([1, 1, 64, 64])
    >>> "grad_cam" in list_methods()
    True
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from captum.attr import LayerAttribution, LayerGradCam, NoiseTunnel
from torch import nn

from captum_eagle import FeatureMask, MLLMForwardWrapper
from captum_eagle.baselines import register_method
from captum_eagle.wrapper import PreparedSample

__all__ = ["GRAD_CAM_NOISE", "GRAD_CAM_SAMPLES", "grad_cam"]

GRAD_CAM_SAMPLES = 8
GRAD_CAM_NOISE = 0.1


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
    wrapper: MLLMForwardWrapper, sample: PreparedSample, feature_mask: FeatureMask
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


register_method("grad_cam", grad_cam, replace=True)  # idempotent if imported twice
