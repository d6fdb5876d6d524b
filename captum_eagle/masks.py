r"""``FeatureMask``: image partitions in Captum's ``feature_mask`` format.

A feature mask is a ``LongTensor`` of shape ``(1, 1, H, W)`` with region ids ``0 .. N-1``
(contiguous), broadcastable to a ``(1, 3, H, W)`` image: the format FeatureAblation, Lime,
KernelShap and ShapleyValueSampling take as ``feature_mask=``, and the one Eagle takes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from skimage.segmentation import slic


@dataclass(frozen=True)
class FeatureMask:
    r"""A partition of an image into ``n_regions`` regions.

    Attributes:
        mask (Tensor): ``(1, 1, H, W)`` long tensor, region ids ``0 .. n_regions - 1``.

    Examples::

        >>> import torch
        >>> from captum_eagle import FeatureMask
        >>> image = torch.rand(1, 3, 32, 32)
        >>> FeatureMask.grid(image, rows=2, cols=4).n_regions
        8
        >>> fm = FeatureMask.slico(image, n_segments=16)
        >>> fm.mask.shape, fm.areas.sum().item()
        (torch.Size([1, 1, 32, 32]), 1024)
    """

    mask: torch.Tensor

    def __post_init__(self) -> None:
        mask = self.mask
        if mask.ndim != 4 or mask.shape[:2] != (1, 1):
            raise ValueError(f"A feature mask must be (1, 1, H, W); got {tuple(mask.shape)}.")
        ids = torch.unique(mask)
        if ids.numel() < 2:
            raise ValueError(
                "The feature mask has a single region; an attribution over one region is "
                "meaningless. Use more segments (n_segments >= 2) or a finer grid."
            )
        if ids[0] != 0 or ids[-1] != ids.numel() - 1:
            raise ValueError("Region ids must be contiguous 0..N-1; use FeatureMask.from_labels.")

    # -- constructors ------------------------------------------------------------------------
    @classmethod
    def slico(cls, image: torch.Tensor, n_segments: int = 64) -> FeatureMask:
        r"""SLICO (zero-parameter SLIC) superpixels of an image, as in the Eagle paper.

        Args:
            image (Tensor): ``(1, 3, H, W)`` or ``(3, H, W)`` float image in ``[0, 1]``.
            n_segments (int): the requested number of regions; SLICO returns about that many.
                Default: 64.
        """
        if n_segments < 2:
            raise ValueError(f"n_segments must be >= 2; got {n_segments}.")
        array = _hwc(image)
        labels = slic(array, n_segments=n_segments, slic_zero=True, start_label=0)
        return cls.from_labels(labels)

    @classmethod
    def grid(cls, image: torch.Tensor | tuple[int, int], rows: int, cols: int) -> FeatureMask:
        r"""A regular ``rows × cols`` grid (row-major ids) over an image or an ``(H, W)`` size."""
        height, width = image if isinstance(image, tuple) else tuple(image.shape[-2:])
        if rows < 1 or cols < 1 or rows > height or cols > width:
            raise ValueError(f"A {rows}×{cols} grid does not fit a {height}×{width} image.")
        row_ids = torch.arange(height) * rows // height
        col_ids = torch.arange(width) * cols // width
        return cls((row_ids[:, None] * cols + col_ids[None, :])[None, None].long())

    @classmethod
    def from_labels(cls, labels: np.ndarray | torch.Tensor) -> FeatureMask:
        r"""From any integer label map ``(H, W)`` (ids are relabelled to ``0 .. N-1`` in order)."""
        tensor = torch.as_tensor(np.asarray(labels)).squeeze()
        if tensor.ndim != 2:
            raise ValueError(f"A label map must be (H, W); got shape {tuple(labels.shape)}.")
        if tensor.is_floating_point() and not torch.equal(tensor, tensor.round()):
            raise ValueError("A label map must hold integer region ids.")
        _, contiguous = torch.unique(tensor.long(), return_inverse=True)
        return cls(contiguous.reshape(tensor.shape)[None, None].long())

    @classmethod
    def from_image_mask_input(cls, inputs: object, wrapper: object) -> FeatureMask:
        r"""From a Captum ``ImageMaskInput``'s mask (or mask list), mapped to the model's grid.

        Args:
            inputs: a ``captum.attr.ImageMaskInput`` (its ``mask`` is ``(H, W)`` region ids of the
                original image).
            wrapper: the :class:`~captum_eagle.MLLMForwardWrapper` whose geometry is used.
        """
        labels = getattr(inputs, "mask", None)
        if labels is None:
            raise ValueError("This ImageMaskInput has no mask; build one with FeatureMask.slico.")
        return cls.from_labels(wrapper.resize_labels(labels))

    # -- properties --------------------------------------------------------------------------
    @property
    def n_regions(self) -> int:
        return int(self.mask.max()) + 1

    @property
    def areas(self) -> torch.Tensor:
        """Pixel count of each region, ``(N,)``."""
        return torch.bincount(self.mask.flatten(), minlength=self.n_regions)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.mask.shape[-2:])

    def region_masks(self) -> torch.Tensor:
        """One boolean map per region, ``(N, H, W)``."""
        return self.mask[0, 0][None] == torch.arange(self.n_regions)[:, None, None]

    def check_image(self, image: torch.Tensor) -> None:
        """Raise a clear error unless the mask covers ``image`` (``(..., H, W)``)."""
        if tuple(image.shape[-2:]) != self.shape:
            raise ValueError(
                f"The feature mask is {self.shape} but the image is {tuple(image.shape[-2:])}; "
                "build the mask from the prepared image (sample.image)."
            )


def as_feature_mask(mask: FeatureMask | torch.Tensor, image: torch.Tensor) -> FeatureMask:
    r"""Accept a :class:`FeatureMask` or a Captum-style tensor and check it against ``image``."""
    if not isinstance(mask, FeatureMask):
        if not isinstance(mask, torch.Tensor):
            raise TypeError(
                f"feature_mask must be a FeatureMask or a LongTensor; got {type(mask).__name__}."
            )
        mask = mask.long()
        while mask.ndim < 4:
            mask = mask[None]
        if mask.shape[1] == 3 and torch.equal(mask, mask[:, :1].expand_as(mask)):
            mask = mask[:, :1]
        mask = FeatureMask(mask)
    mask.check_image(image)
    return mask


def _hwc(image: torch.Tensor) -> np.ndarray:
    tensor = image.detach().cpu().float()
    if tensor.ndim == 4:
        if tensor.shape[0] != 1:
            raise ValueError(f"Expected one image; got a batch of {tensor.shape[0]}.")
        tensor = tensor[0]
    if tensor.ndim != 3 or tensor.shape[0] != 3:
        raise ValueError(f"Expected a (1, 3, H, W) image; got {tuple(image.shape)}.")
    return tensor.permute(1, 2, 0).numpy().astype(np.float64)
