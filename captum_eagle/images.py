r"""Image conversion in one place: PIL / numpy / tensor images to and from ``[0, 1]`` tensors.

Every entry point of captum-eagle that takes an image goes through :func:`to_image_tensor`, which
returns a ``(1, 3, H, W)`` float tensor in ``[0, 1]`` and refuses anything it would have to guess
about. The rules:

- PIL images are converted by mode: ``"RGB"``, ``"L"``, ``"1"``, ``"CMYK"``, ``"YCbCr"`` through
  PIL's own RGB conversion (8 bits, divided by 255); 16-bit modes (``"I;16"``, ``"I;16B"``,
  ``"I;16L"``) divided by 65535; mode ``"I"`` (32-bit integers, how PIL often opens 16-bit PNGs)
  must hold values in ``[0, 65535]`` and is divided by 65535; mode ``"F"`` (32-bit floats) must
  already lie in ``[0, 1]`` (no guessing of its range). Grey levels are repeated on the three
  channels. Transparent modes (``"RGBA"``, ``"LA"``, ``"PA"``, palette images with transparency)
  are composited over black, the baseline colour of the Eagle method: a transparent pixel carries
  no information, like a removed one.
- numpy arrays are ``(H, W, 3)``: ``uint8`` (divided by 255), ``uint16`` (divided by 65535) or
  floating in ``[0, 1]``.
- tensors are ``(3, H, W)`` or ``(1, 3, H, W)``, floating, in ``[0, 1]``.

:func:`check_pixels` is the lenient check of a *batch* a Captum method hands to the model: floating,
finite and within ``[-tolerance, 1 + tolerance]``, so noise-based methods (``NoiseTunnel``) work
while 0-255 or model-normalised images are refused.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

ImageLike = Image.Image | np.ndarray | torch.Tensor

_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
_TRANSPARENT_MODES = ("RGBA", "LA", "PA")


def to_image_tensor(image: ImageLike) -> torch.Tensor:
    r"""Validate an image and return it as a ``(1, 3, H, W)`` float32 CPU tensor in ``[0, 1]``.

    Args:
        image: a PIL image of any usual mode, an ``(H, W, 3)`` ``uint8`` / ``uint16`` / float
            array, or a ``(3, H, W)`` / ``(1, 3, H, W)`` float tensor in ``[0, 1]`` (see the
            module docstring for the conversion rules).

    Returns:
        Tensor: ``(1, 3, H, W)`` float32 in ``[0, 1]``.

    Examples::

        >>> import numpy as np
        >>> from PIL import Image
        >>> from captum_eagle.images import to_image_tensor
        >>> deep = Image.fromarray(np.full((4, 6), 65535, dtype=np.uint16))  # 16-bit grey
        >>> to_image_tensor(deep).shape, to_image_tensor(deep).max().item()
        (torch.Size([1, 3, 4, 6]), 1.0)
    """
    if isinstance(image, Image.Image):
        return _from_pil(image)
    if isinstance(image, np.ndarray):
        return _from_array(image)
    if isinstance(image, torch.Tensor):
        return _from_tensor(image)
    raise TypeError(
        f"Unsupported image type {type(image).__name__}; pass a PIL image, an (H, W, 3) uint8 "
        "numpy array or a (3, H, W) float tensor in [0, 1]."
    )


def to_pil(image: torch.Tensor) -> Image.Image:
    r"""A ``(1, 3, H, W)`` or ``(3, H, W)`` float image in ``[0, 1]`` as an 8-bit RGB PIL image.

    Values are rounded to the nearest of 256 levels (the processors' own input format).

    Examples::

        >>> import torch
        >>> from captum_eagle.images import to_pil
        >>> to_pil(torch.ones(1, 3, 2, 5)).size
        (5, 2)
    """
    array = (to_image_tensor(image)[0].permute(1, 2, 0) * 255).round().byte().numpy()
    return Image.fromarray(array)


def to_hwc(image: ImageLike) -> np.ndarray:
    r"""An image (any input :func:`to_image_tensor` takes) as an ``(H, W, 3)`` float64 array.

    Examples::

        >>> import torch
        >>> from captum_eagle.images import to_hwc
        >>> to_hwc(torch.zeros(3, 4, 5)).shape
        (4, 5, 3)
    """
    return to_image_tensor(image)[0].permute(1, 2, 0).numpy().astype(np.float64)


def check_pixels(images: torch.Tensor, *, name: str = "images", tolerance: float = 0.5) -> None:
    r"""Check a batch of images that is about to reach the model: pixels in ``[0, 1]``, loosely.

    The wrapper normalises pixels itself, so what it receives must be in ``[0, 1]``. A batch built
    by a Captum method may leave that range a little (``NoiseTunnel`` adds Gaussian noise), so
    values within ``[-tolerance, 1 + tolerance]`` are accepted unchanged; a 0-255 image or a
    model-normalised one lies far outside and is refused.

    Args:
        images (Tensor): the batch, any shape.
        name (str): how the error message calls it. Default: ``"images"``.
        tolerance (float): how far outside ``[0, 1]`` a value may lie. Default: 0.5.

    Raises:
        TypeError: not a tensor, or not floating point (e.g. ``uint8``).
        ValueError: NaN / infinite values, or values outside the tolerated range.

    Examples::

        >>> import torch
        >>> from captum_eagle.images import check_pixels
        >>> check_pixels(torch.rand(2, 3, 8, 8) + 0.1 * torch.randn(2, 3, 8, 8).clamp(-3, 3))
        >>> check_pixels(torch.full((1, 3, 8, 8), 255.0))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: images lie in [255, 255], outside [-0.5, 1.5]: this looks like a 0-255 image...
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(images).__name__}.")
    if not images.is_floating_point():
        raise TypeError(
            f"{name} must be floating point in [0, 1]; got {images.dtype}. Divide a uint8 image "
            "by 255 (or pass sample.image)."
        )
    values = images.detach()
    if not torch.isfinite(values).all():
        raise ValueError(f"{name} contain NaN or infinite values.")
    low, high = float(values.min()), float(values.max())
    if low < -tolerance or high > 1 + tolerance:
        raise ValueError(
            f"{name} lie in [{low:.3g}, {high:.3g}], outside [{-tolerance:g}, {1 + tolerance:g}]: "
            "this looks like a 0-255 image or a model-normalised one; pass pixels in [0, 1], the "
            "wrapper normalises itself."
        )


def _from_pil(image: Image.Image) -> torch.Tensor:
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES or mode == "I":
        array = np.asarray(image).astype(np.float64)
        if array.min() < 0 or array.max() > 65535:
            raise ValueError(
                f"A mode 'I' image must hold 16-bit values in [0, 65535]; got "
                f"[{array.min():g}, {array.max():g}]. Scale it to [0, 1] and pass a float array."
            )
        return _grey(array, 65535.0)
    if mode == "F":
        array = np.asarray(image).astype(np.float64)
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise ValueError(
                f"A mode 'F' (float) image must lie in [0, 1]; got [{array.min():g}, "
                f"{array.max():g}]. Scale it to [0, 1] first; its range is not guessed."
            )
        return _grey(array, 1.0)
    if mode in _TRANSPARENT_MODES or "transparency" in image.info:
        rgba = _scaled(np.asarray(image.convert("RGBA")), 255.0)
        return rgba[:, :3] * rgba[:, 3:]
    try:
        rgb = image.convert("RGB")
    except (ValueError, OSError) as error:
        raise ValueError(
            f"Cannot convert a PIL image of mode {mode!r} to RGB ({error}); convert it yourself "
            "and pass an RGB image."
        ) from error
    return _scaled(np.asarray(rgb), 255.0)


def _from_array(image: np.ndarray) -> torch.Tensor:
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(
            f"A numpy image must be (H, W, 3); got shape {image.shape}. "
            "Convert grayscale with np.stack([img] * 3, -1)."
        )
    if image.dtype == np.uint8:
        return _scaled(image, 255.0)
    if image.dtype == np.uint16:
        return _scaled(image, 65535.0)
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(
            f"A numpy image must be uint8, uint16 or float in [0, 1]; got {image.dtype}. "
            "Cast it to one of these (e.g. image.astype(np.uint8) for 0-255 values)."
        )
    return _from_tensor(torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1))


def _from_tensor(image: torch.Tensor) -> torch.Tensor:
    tensor = image.detach()
    if tensor.ndim == 3:
        tensor = tensor[None]
    if tensor.ndim != 4 or tensor.shape[:2] != (1, 3):
        raise ValueError(
            f"A tensor image must be (3, H, W) or (1, 3, H, W); got shape {tuple(image.shape)}."
        )
    if not tensor.is_floating_point():
        raise ValueError(
            f"A tensor image must be float in [0, 1]; got {tensor.dtype}. Divide by 255."
        )
    if not torch.isfinite(tensor).all():
        raise ValueError("The image contains NaN or infinite values.")
    if tensor.min() < 0 or tensor.max() > 1:
        raise ValueError(
            f"A float image must lie in [0, 1]; got [{tensor.min():.3g}, {tensor.max():.3g}]. "
            "Undo the model normalisation: the wrapper normalises itself."
        )
    return tensor.float().cpu()


def _grey(array: np.ndarray, scale: float) -> torch.Tensor:
    return _scaled(np.repeat(array[..., None], 3, axis=-1), scale)


def _scaled(array: np.ndarray, scale: float) -> torch.Tensor:
    """``(H, W, C)`` array divided by ``scale`` in float32, as a ``(1, C, H, W)`` tensor."""
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    return (tensor / scale).permute(2, 0, 1)[None]
