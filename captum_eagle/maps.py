r"""Attribution maps: from any map to pixel scores, region means and a region order; baselines.

Every consumer of an attribution map (the metrics, the hallucination mitigation, the plots, the
dataset runner) reads it through this module, so that one map means the same thing everywhere:

- :func:`pixel_scores`: a Captum map ``(1, C, H, W)``, ``(C, H, W)`` or ``(H, W)`` (``C`` = 1 or
  3), a numpy array, a Captum 1-tuple, or an :class:`~captum_eagle.EagleResult` → ``(H, W)``
  float64 scores. Three channels are summed (Captum's convention for pixel relevance).
- :func:`pixel_ranks`: the rank of every pixel, highest score first, ties in row-major order.
- :func:`region_means` and :func:`region_order`: the mean score of each region of a feature mask
  and the regions sorted by it, ties broken by the lowest region id.
- :func:`baseline_image`: the fully masked image built from Captum-style ``baselines`` (a number
  or a tensor in ``[0, 1]``), validated before any forward.
- :func:`cumulative_area`: the area fraction inserted after each region of an order.
- :func:`box_mask`: an object box ``(x0, y0, x1, y1)`` as a boolean pixel mask.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from numbers import Real
from typing import Any, TypeVar

import numpy as np
import torch

from captum_eagle.checks import check_bool
from captum_eagle.masks import FeatureMask, as_feature_mask

__all__ = [
    "baseline_image",
    "box_mask",
    "cumulative_area",
    "pixel_ranks",
    "pixel_scores",
    "region_means",
    "region_order",
]

Baselines = float | torch.Tensor
Function = TypeVar("Function", bound=Callable[..., Any])


def pixel_scores(attribution: Any, size: tuple[int, int] | None = None) -> torch.Tensor:
    r"""Validate an attribution map of one image and reduce it to ``(H, W)`` scores.

    Args:
        attribution: ``(1, C, H, W)``, ``(C, H, W)`` or ``(H, W)`` with ``C`` = 1 or 3, as a
            tensor or numpy array; a 1-tuple holding one (what Captum returns for tuple inputs);
            or an :class:`~captum_eagle.EagleResult` (its ``attribution_map()``). Three channels
            are summed.
        size (tuple, optional): the ``(H, W)`` the map must have (that of ``sample.image``).

    Returns:
        Tensor: ``(H, W)`` float64 scores on the CPU.

    Raises:
        TypeError: if ``attribution`` is not a tensor or array.
        ValueError: if its shape is not one of the above, its size is not ``size``, or it holds
            NaN or infinite values.

    Examples::

        >>> import torch
        >>> from captum_eagle.maps import pixel_scores
        >>> attribution = torch.ones(1, 3, 2, 2)
        >>> pixel_scores(attribution).tolist()
        [[3.0, 3.0], [3.0, 3.0]]
    """
    if isinstance(attribution, FeatureMask):
        raise TypeError(
            "A FeatureMask holds region ids, not attribution scores; pass the map of an "
            "attribution method (e.g. result.attribution_map()) and the mask as feature_mask=."
        )
    if callable(getattr(attribution, "attribution_map", None)):
        attribution = attribution.attribution_map()
    if isinstance(attribution, tuple | list) and len(attribution) == 1:
        attribution = attribution[0]
    if isinstance(attribution, np.ndarray):
        attribution = torch.from_numpy(attribution)
    if not isinstance(attribution, torch.Tensor):
        raise TypeError(
            f"The attribution must be a tensor or numpy array; got {type(attribution).__name__}."
        )
    if attribution.dtype == torch.bool or attribution.is_complex():
        raise TypeError(
            f"The attribution map must hold real scores; got a {attribution.dtype} map. Pass the "
            "float map an attribution method returned (an object mask goes to box= or mask=)."
        )
    scores = attribution.detach().cpu().double()
    shape = tuple(scores.shape)
    if scores.ndim == 4 and scores.shape[0] == 1:
        scores = scores[0]
    if scores.ndim == 3 and scores.shape[0] in (1, 3):
        scores = scores.sum(dim=0)
    if scores.ndim != 2:
        raise ValueError(
            "The attribution map must be (1, C, H, W), (C, H, W) or (H, W) with C = 1 or 3, for "
            f"one image; got {shape}. Attribute one image at a time."
        )
    if scores.numel() == 0:
        raise ValueError(f"The attribution map is empty (shape {shape}); pass the map of an image.")
    if size is not None and tuple(scores.shape) != tuple(size):
        raise ValueError(
            f"The attribution map is {tuple(scores.shape)} (from shape {shape}) but the image and "
            f"its regions are {tuple(size)}; attribute sample.image (the image at the model's "
            "input resolution) and score or plot the map with the same sample.image, or resize "
            "the map to it."
        )
    if not torch.isfinite(scores).all():
        raise ValueError("The attribution map contains NaN or infinite values.")
    return scores


def pixel_ranks(attribution: Any, size: tuple[int, int] | None = None) -> torch.Tensor:
    r"""The rank of every pixel, ``0`` for the highest score; ties go in row-major pixel order.

    Args:
        attribution: a map accepted by :func:`pixel_scores`.
        size (tuple, optional): the ``(H, W)`` the map must have.

    Returns:
        LongTensor: ``(H, W)`` ranks ``0 .. H·W − 1``.

    Examples::

        >>> import torch
        >>> from captum_eagle.maps import pixel_ranks
        >>> pixel_ranks(torch.tensor([[0.5, 2.0], [0.5, -1.0]])).tolist()
        [[1, 0], [2, 3]]
    """
    scores = pixel_scores(attribution, size)
    order = torch.sort(scores.flatten(), descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel())
    return rank.view(scores.shape)


def _regions(feature_mask: FeatureMask | torch.Tensor) -> FeatureMask:
    if isinstance(feature_mask, FeatureMask):
        return feature_mask
    if not isinstance(feature_mask, torch.Tensor):
        raise TypeError(
            f"feature_mask must be a FeatureMask or a tensor; got {type(feature_mask).__name__}."
        )
    return as_feature_mask(feature_mask, feature_mask)


def region_means(attribution: Any, feature_mask: FeatureMask | torch.Tensor) -> torch.Tensor:
    r"""The mean score of each region.

    Args:
        attribution: a map accepted by :func:`pixel_scores`, of the mask's size.
        feature_mask (FeatureMask or Tensor): the regions, ``(1, 1, H, W)`` or ``(H, W)`` ids.

    Returns:
        Tensor: ``(N,)`` float64, the mean of the (channel-summed) map over each region.

    Examples::

        >>> import torch
        >>> from captum_eagle import FeatureMask
        >>> from captum_eagle.maps import region_means
        >>> mask = FeatureMask.grid((2, 2), 1, 2)
        >>> region_means(torch.tensor([[1.0, 4.0], [3.0, 0.0]]), mask).tolist()
        [2.0, 2.0]
    """
    mask = _regions(feature_mask)
    scores = pixel_scores(attribution, mask.image_shape)
    sums = torch.zeros(mask.n_regions, dtype=torch.float64)
    sums.index_add_(0, mask.mask.flatten(), scores.flatten())
    return sums / mask.areas.double()


def region_order(
    attribution: Any, feature_mask: FeatureMask | torch.Tensor, *, descending: bool = True
) -> torch.Tensor:
    r"""Regions sorted by their mean score (:func:`region_means`); ties go to the lowest id.

    Args:
        attribution: a map accepted by :func:`pixel_scores`, of the mask's size.
        feature_mask (FeatureMask or Tensor): the regions.
        descending (bool): highest mean first (default), else lowest first. Either way, regions
            with equal means keep increasing id order, so the order is reproducible.

    Returns:
        LongTensor: ``(N,)`` region ids.

    Examples::

        >>> import torch
        >>> from captum_eagle import FeatureMask
        >>> from captum_eagle.maps import region_order
        >>> mask = FeatureMask.grid((4, 4), 2, 2)
        >>> attribution = torch.tensor([0.5, -1.0, 2.0, 0.5])[mask.mask]
        >>> region_order(attribution, mask).tolist()
        [2, 0, 3, 1]
        >>> region_order(attribution, mask, descending=False).tolist()
        [1, 0, 3, 2]
    """
    check_bool("descending", descending)
    means = region_means(attribution, feature_mask)
    return torch.sort(-means if descending else means, stable=True).indices


def cumulative_area(areas: torch.Tensor | Sequence[float]) -> torch.Tensor:
    r"""The image-area fraction covered after each step of a region order, starting at 0.

    Args:
        areas: ``(N,)`` pixel counts (or any non-negative weights) of the regions in the order
            they are inserted, e.g. ``feature_mask.areas[order]``.

    Returns:
        Tensor: ``(N + 1,)`` float64, ``x_0 = 0`` (nothing inserted) up to ``x_N = 1``.

    Examples::

        >>> from captum_eagle.maps import cumulative_area
        >>> cumulative_area([2, 1, 1]).tolist()
        [0.0, 0.5, 0.75, 1.0]
    """
    weights = torch.as_tensor(areas, dtype=torch.float64).detach().cpu()
    if (
        weights.ndim != 1
        or weights.numel() < 1
        or not torch.isfinite(weights).all()
        or (weights < 0).any()
    ):
        raise ValueError(
            "areas must be one finite, non-negative value per region (e.g. "
            f"feature_mask.areas[order]); got {weights.tolist()}."
        )
    total = weights.sum()
    if total <= 0:
        raise ValueError("areas sum to 0; pass the regions' pixel counts.")
    return torch.cat([weights.new_zeros(1), torch.cumsum(weights, dim=0) / total])


def check_baselines(baselines: object) -> None:
    r"""Raise unless ``baselines`` is a finite number or float tensor in ``[0, 1]`` pixel space.

    Whether a tensor broadcasts to the image is checked when the baseline image is built.

    Examples::

        >>> check_baselines(0.5)
        >>> check_baselines(128)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: baselines must lie in [0, 1] pixel space; got 128. Divide 8-bit ...
    """
    if isinstance(baselines, bool) or not isinstance(baselines, Real | torch.Tensor):
        raise TypeError(
            "baselines must be a number or a tensor in [0, 1] pixel space; got "
            f"{type(baselines).__name__}."
        )
    if isinstance(baselines, torch.Tensor):
        if not baselines.is_floating_point():
            raise TypeError(
                f"baselines must be a float tensor in [0, 1]; got {baselines.dtype}. Divide "
                "0-255 values by 255."
            )
        if baselines.numel() == 0:
            raise ValueError(
                "baselines is an empty tensor; pass a number or a (1, 3, 1, 1) colour."
            )
        finite = bool(torch.isfinite(baselines).all())
        low, high = (baselines.min().item(), baselines.max().item()) if finite else (0, 0)
    else:
        finite = math.isfinite(baselines)
        low = high = float(baselines)
    if not finite:
        raise ValueError("baselines contain NaN or infinite values; pass values in [0, 1].")
    if low < 0 or high > 1:
        shown = baselines if not isinstance(baselines, torch.Tensor) else f"[{low:.3g}, {high:.3g}]"
        raise ValueError(
            f"baselines must lie in [0, 1] pixel space; got {shown}. Divide 8-bit values by "
            "255, e.g. baselines=128 / 255."
        )


def baseline_image(baselines: Baselines, image: torch.Tensor) -> torch.Tensor:
    r"""The fully masked image: every pixel of ``image`` replaced by ``baselines``.

    Args:
        baselines (float or Tensor): Captum's ``baselines``: a number, or a tensor broadcastable
            to the image (``(1, 3, 1, 1)`` colour, ``(3, H, W)`` or ``(1, 3, H, W)`` image), with
            values in ``[0, 1]`` (the scale of the prepared image; black is 0, not 0 of 255).
        image (Tensor): ``(1, 3, H, W)`` the image the baseline replaces.

    Returns:
        Tensor: shaped, typed and placed like ``image``.

    Raises:
        TypeError: if ``baselines`` is neither a number nor a tensor.
        ValueError: if it holds NaN, infinite or out-of-range values, or does not broadcast.

    Examples::

        >>> import torch
        >>> from captum_eagle.maps import baseline_image
        >>> baseline_image(0.5, torch.zeros(1, 3, 2, 2)).unique().tolist()
        [0.5]
        >>> baseline_image(128, torch.zeros(1, 3, 2, 2))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: baselines must lie in [0, 1] ... e.g. baselines=128 / 255.
    """
    if not isinstance(image, torch.Tensor) or image.ndim != 4:
        got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise TypeError(f"image must be a (1, 3, H, W) tensor (sample.image); got {got}.")
    check_baselines(baselines)
    value = torch.as_tensor(baselines).detach().to(image.device, image.dtype)
    if value.ndim == 3:
        value = value[None]
    try:
        return torch.broadcast_to(value, image.shape).contiguous()
    except RuntimeError:
        raise ValueError(
            f"baselines of shape {tuple(value.shape)} do not broadcast to the image "
            f"{tuple(image.shape)}: a baseline that does not broadcast cannot fill its pixels; "
            "pass a number, a (1, 3, 1, 1) colour or a (1, 3, H, W) image."
        ) from None


def box_mask(box: Sequence[float] | torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    r"""An object box as a boolean pixel mask.

    Args:
        box (sequence of 4 numbers): ``(x0, y0, x1, y1)`` in pixel coordinates, ``x`` = column,
            ``y`` = row; ``x0, y0`` inclusive, ``x1, y1`` exclusive (the box covers
            ``map[y0:y1, x0:x1]``). Fractional coordinates are widened to the pixels they touch
            (floor of ``x0, y0``, ceil of ``x1, y1``), then clamped to the map. Must be
            non-empty and overlap the map.
        size (tuple): ``(H, W)`` of the map.

    Returns:
        BoolTensor: ``(H, W)``.

    Examples::

        >>> from captum_eagle.maps import box_mask
        >>> box_mask((1, 0, 3, 1), (2, 4)).int().tolist()
        [[0, 1, 1, 0], [0, 0, 0, 0]]
    """
    height, width = size
    values = [float(v) for v in (box.tolist() if isinstance(box, torch.Tensor) else box)]
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise ValueError(f"box must be 4 finite numbers (x0, y0, x1, y1); got {box!r}.")
    x0, y0 = math.floor(values[0]), math.floor(values[1])
    x1, y1 = math.ceil(values[2]), math.ceil(values[3])
    if x1 <= x0 or y1 <= y0:
        raise ValueError(
            f"The box {tuple(values)} is empty; boxes are (x0, y0, x1, y1) with x0 < x1 and "
            "y0 < y1 (x1, y1 exclusive)."
        )
    # Clamp to the map: a box drawn to the border in floating point (x1 = 32.000001 on a
    # 32-wide map, x0 = -1e-9) covers the border pixels, not an error.
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(
            f"The box {tuple(values)} does not lie inside the {width}×{height} (W×H) map at all; "
            "give pixel coordinates of sample.image (scale boxes of the original image to the "
            "model's input size)."
        )
    region = torch.zeros(height, width, dtype=torch.bool)
    region[y0:y1, x0:x1] = True
    return region
