r"""``FeatureMask``: image partitions in Captum's ``feature_mask`` format.

A feature mask is a ``LongTensor`` of shape ``(1, 1, H, W)`` with region ids ``0 .. N-1``
(contiguous), broadcastable to a ``(1, 3, H, W)`` image: the format FeatureAblation, Lime,
KernelShap and ShapleyValueSampling take as ``feature_mask=``, and the one Eagle takes. A
:class:`FeatureMask` *is* that tensor, so it passes to them directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from skimage.segmentation import slic

from captum_eagle.checks import check_int
from captum_eagle.images import ImageLike, to_hwc

if TYPE_CHECKING:
    from captum_eagle.wrapper import MLLMForwardWrapper

#: The smallest mean region area (pixels) :meth:`FeatureMask.slico` may be asked for.
MIN_REGION_AREA = 4


class FeatureMask(torch.Tensor):
    r"""A partition of an image into ``n_regions`` regions: the ``(1, 1, H, W)`` id tensor itself.

    A ``FeatureMask`` is a ``torch.Tensor`` subclass holding long region ids ``0 .. n_regions - 1``,
    so it goes straight into Captum's ``feature_mask=`` (FeatureAblation, Lime, KernelShap,
    ShapleyValueSampling) and :class:`~captum_eagle.EagleAttribution`. Torch operations on it
    (indexing, arithmetic, ``.to(device)``) return plain tensors; ``.mask`` is the same ids as a
    plain tensor. Its ``shape`` is the tensor's ``(1, 1, H, W)``; :attr:`image_shape` is
    ``(H, W)``.

    Args:
        mask (Tensor): ``(1, 1, H, W)`` integer tensor with contiguous ids ``0 .. N-1``, ``N >= 2``
            (use :meth:`from_labels` to relabel any label map).

    Examples::

        >>> import torch
        >>> from captum.attr import FeatureAblation
        >>> from captum_eagle import FeatureMask
        >>> image = torch.rand(1, 3, 32, 32)
        >>> FeatureMask.grid(image, rows=2, cols=4).n_regions
        8
        >>> fm = FeatureMask.slico(image, n_segments=16)
        >>> fm.shape, fm.image_shape, fm.areas.sum().item()
        (torch.Size([1, 1, 32, 32]), (32, 32), 1024)
        >>> ablation = FeatureAblation(lambda x: x.mean(dim=(1, 2, 3)))
        >>> ablation.attribute(image, feature_mask=fm).shape
        torch.Size([1, 3, 32, 32])
    """

    # torch's documented way to make operations return plain tensors; its stub types it apart.
    __torch_function__ = torch._C._disabled_torch_function_impl  # type: ignore[assignment]

    def __new__(cls, mask: torch.Tensor) -> FeatureMask:
        if not isinstance(mask, torch.Tensor):
            raise TypeError(
                f"A feature mask must be a tensor; got {type(mask).__name__}. Use "
                "FeatureMask.from_labels for arrays."
            )
        if mask.is_floating_point() or mask.is_complex() or mask.dtype == torch.bool:
            raise TypeError(
                f"A feature mask holds integer region ids; got {mask.dtype}. Use "
                "FeatureMask.from_labels (it checks and relabels any label map)."
            )
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
        return mask.detach().long().as_subclass(cls)

    def __repr__(self) -> str:  # type: ignore[override]  # torch's stub names no real argument
        return f"FeatureMask(n_regions={self.n_regions}, image_shape={self.image_shape})"

    def __deepcopy__(self, memo: dict[int, Any]) -> FeatureMask:
        return FeatureMask(self.mask.clone())

    # -- constructors ------------------------------------------------------------------------
    @classmethod
    def slico(cls, image: ImageLike, n_segments: int = 64) -> FeatureMask:
        r"""SLICO (zero-parameter SLIC) superpixels of an image, as in the Eagle paper.

        Args:
            image: the image to partition, usually ``sample.image``: a ``(1, 3, H, W)`` or
                ``(3, H, W)`` float tensor in ``[0, 1]``, a PIL image or an ``(H, W, 3)`` array
                (converted like :meth:`MLLMForwardWrapper.prepare` does).
            n_segments (int): the requested number of regions, at least 2 and at most
                ``H * W // 4`` (regions of 4 pixels on average); SLICO returns about that many.
                Default: 64.

        Returns:
            FeatureMask
        """
        array = to_hwc(image)
        height, width = array.shape[:2]
        check_int("n_segments", n_segments, 2)
        most = height * width // MIN_REGION_AREA
        if n_segments > most:
            raise ValueError(
                f"n_segments={n_segments} asks for regions smaller than {MIN_REGION_AREA} pixels "
                f"on average in a {height}×{width} image; use at most {most}."
            )
        labels = slic(array, n_segments=n_segments, slic_zero=True, start_label=0)
        return cls.from_labels(labels)

    @classmethod
    def grid(cls, image: torch.Tensor | tuple[int, int], rows: int, cols: int) -> FeatureMask:
        r"""A regular ``rows × cols`` grid (row-major ids) over an image or an ``(H, W)`` size.

        Args:
            image: a tensor whose last two dimensions are ``(H, W)`` (e.g. ``sample.image``), or
                the size ``(H, W)`` itself.
            rows (int): rows of regions, ``1 <= rows <= H``.
            cols (int): columns of regions, ``1 <= cols <= W`` (``rows * cols >= 2``).

        Returns:
            FeatureMask
        """
        if isinstance(image, torch.Tensor) and image.ndim >= 2:
            height, width = image.shape[-2:]
        elif isinstance(image, tuple | list) and len(image) == 2:
            height, width = image
            check_int("height", height, 1)
            check_int("width", width, 1)
        else:
            raise TypeError(
                "FeatureMask.grid needs the image as a tensor (..., H, W), e.g. sample.image, or "
                f"its size (H, W); got {type(image).__name__}. Convert a PIL image or array with "
                "captum_eagle.images.to_image_tensor first."
            )
        check_int("rows", rows, 1)
        check_int("cols", cols, 1)
        if rows > height or cols > width:
            raise ValueError(
                f"A {rows}×{cols} grid does not fit a {height}×{width} image; use at most "
                f"{height} rows and {width} columns."
            )
        row_ids = torch.arange(height) * rows // height
        col_ids = torch.arange(width) * cols // width
        return cls((row_ids[:, None] * cols + col_ids[None, :])[None, None].long())

    @classmethod
    def from_labels(cls, labels: np.ndarray | torch.Tensor) -> FeatureMask:
        r"""From any integer label map ``(H, W)`` (ids are relabelled to ``0 .. N-1`` in order)."""
        tensor = torch.as_tensor(np.asarray(labels)).squeeze()
        if tensor.ndim != 2:
            raise ValueError(f"A label map must be (H, W); got shape {tuple(labels.shape)}.")
        _check_integral(tensor)
        _, contiguous = torch.unique(tensor.long(), return_inverse=True)
        return cls(contiguous.reshape(tensor.shape)[None, None].long())

    @classmethod
    def from_image_mask_input(cls, inputs: object, wrapper: MLLMForwardWrapper) -> FeatureMask:
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
    def mask(self) -> torch.Tensor:
        """The region ids as a plain ``(1, 1, H, W)`` long tensor (a view of this mask)."""
        return self.as_subclass(torch.Tensor)

    @property
    def n_regions(self) -> int:
        return int(self.mask.max()) + 1

    @property
    def areas(self) -> torch.Tensor:
        """Pixel count of each region, ``(N,)``."""
        return torch.bincount(self.mask.flatten(), minlength=self.n_regions)

    @property
    def image_shape(self) -> tuple[int, int]:
        """The ``(H, W)`` of the image the mask partitions."""
        height, width = self.mask.shape[-2:]
        return height, width

    def region_masks(self) -> torch.Tensor:
        """One boolean map per region, ``(N, H, W)``."""
        return self.mask[0, 0][None] == torch.arange(self.n_regions)[:, None, None]

    def check_image(self, image: torch.Tensor) -> None:
        """Raise a clear error unless the mask covers ``image`` (``(..., H, W)``)."""
        if not isinstance(image, torch.Tensor):
            raise TypeError(f"The image must be a tensor (..., H, W); got {type(image).__name__}.")
        if tuple(image.shape[-2:]) != self.image_shape:
            raise ValueError(
                f"The feature mask is {self.image_shape} but the image is "
                f"{tuple(image.shape[-2:])}; build the mask from the prepared image (sample.image)."
            )


def as_feature_mask(mask: FeatureMask | torch.Tensor, image: torch.Tensor) -> FeatureMask:
    r"""Accept a :class:`FeatureMask` or a Captum-style tensor and check it against ``image``.

    A tensor may be ``(H, W)``, ``(1, H, W)``, ``(1, 1, H, W)`` or ``(1, 3, H, W)`` with the same
    ids on every channel; its ids must be integers (an integer dtype, or a float tensor holding
    whole numbers) and contiguous ``0 .. N-1``.
    """
    if not isinstance(mask, FeatureMask):
        if not isinstance(mask, torch.Tensor):
            raise TypeError(
                f"feature_mask must be a FeatureMask or a LongTensor; got {type(mask).__name__}."
            )
        _check_integral(mask)
        mask = mask.long()
        while mask.ndim < 4:
            mask = mask[None]
        if mask.shape[1] == 3 and torch.equal(mask, mask[:, :1].expand_as(mask)):
            mask = mask[:, :1]
        mask = FeatureMask(mask)
    mask.check_image(image)
    return mask


def _check_integral(ids: torch.Tensor) -> None:
    if ids.dtype == torch.bool or ids.is_complex():
        raise TypeError(
            f"Region ids must be integers; got a {ids.dtype} tensor. Pass a long tensor of ids "
            "(for a boolean object mask: mask.long() gives regions 0 and 1)."
        )
    if ids.is_floating_point() and not torch.equal(ids, ids.round()):
        raise ValueError(
            "Region ids must be whole numbers; the mask holds fractional values. Pass integer "
            "ids, e.g. FeatureMask.from_labels(labels)."
        )
