"""images: every PIL mode and array dtype to a [0, 1] tensor; to_pil / to_hwc; check_pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from captum_eagle.images import check_pixels, to_hwc, to_image_tensor, to_pil

GREY = np.array([[0, 1000], [32768, 65535]], dtype=np.uint16)


def _grey_tensor(values: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(values.astype(np.float32)).expand(1, 3, *values.shape)


def _pil_16(mode: str) -> Image.Image:
    image = Image.new(mode, (2, 2))
    image.putdata(GREY.flatten().tolist())
    return image


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (Image.fromarray(np.array([[0, 51], [204, 255]], dtype=np.uint8)), [[0, 0.2], [0.8, 1]]),
        (
            Image.fromarray(np.array([[0, 255], [255, 0]], dtype=np.uint8)).convert("1"),
            [[0, 1], [1, 0]],
        ),
        (_pil_16("I;16"), GREY / 65535),
        (_pil_16("I;16B"), GREY / 65535),
        (Image.fromarray(GREY.astype(np.int32)), GREY / 65535),  # how PIL opens many 16-bit PNGs
        (Image.fromarray(np.array([[0, 0.25], [0.5, 1]], dtype=np.float32)), [[0, 0.25], [0.5, 1]]),
    ],
    ids=["L", "1", "I;16", "I;16B", "I", "F"],
)
def test_grey_modes_scale_by_their_depth(image, expected) -> None:
    torch.testing.assert_close(to_image_tensor(image), _grey_tensor(np.asarray(expected)))


def test_sixteen_bit_image_is_not_washed_out() -> None:
    """The reported bug: .convert("RGB") of a dark 16-bit image came out almost all white."""
    dark = Image.new("I;16", (4, 4), 3000)  # 4.6 % grey
    assert to_image_tensor(dark).max().item() == pytest.approx(3000 / 65535)
    assert np.asarray(dark.convert("RGB")).min() == 255  # what the old conversion saw


def test_rgb_cmyk_and_palette_modes() -> None:
    rgb = np.array([[[255, 0, 0], [0, 128, 255]]], dtype=np.uint8)
    expected = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    torch.testing.assert_close(to_image_tensor(Image.fromarray(rgb)), expected)
    palette = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE)
    torch.testing.assert_close(to_image_tensor(palette), expected)
    cmyk = Image.fromarray(rgb).convert("CMYK")
    torch.testing.assert_close(to_image_tensor(cmyk), expected)


def test_transparency_is_composited_over_black() -> None:
    rgba = np.array([[[200, 100, 50, 255], [200, 100, 50, 0], [200, 100, 50, 51]]], dtype=np.uint8)
    expected = torch.tensor([[200, 100, 50], [0, 0, 0], [40, 20, 10]]).T[:, None] / 255
    torch.testing.assert_close(to_image_tensor(Image.fromarray(rgba)), expected[None])
    la = Image.fromarray(np.array([[[100, 255], [100, 0]]], dtype=np.uint8), mode="LA")
    torch.testing.assert_close(to_image_tensor(la), _grey_tensor(np.array([[100 / 255, 0.0]])))
    two_colours = np.array([[[200, 100, 50], [0, 0, 255]]], dtype=np.uint8)
    palette = Image.fromarray(two_colours).convert("P", palette=Image.Palette.ADAPTIVE)
    palette.info["transparency"] = palette.getpixel((1, 0))
    out = to_image_tensor(palette)[0, :, 0]
    assert out[:, 1].tolist() == [0.0, 0.0, 0.0]  # the transparent blue is gone
    torch.testing.assert_close(out[:, 0], torch.tensor([200, 100, 50]) / 255)


def test_numpy_dtypes() -> None:
    deep = np.full((2, 3, 3), 65535, dtype=np.uint16)
    deep[0, 0] = 0
    out = to_image_tensor(deep)
    assert out.shape == (1, 3, 2, 3) and out.dtype == torch.float32
    assert out[0, :, 0, 0].tolist() == [0, 0, 0] and out[0, :, 1, 2].tolist() == [1, 1, 1]
    eight = np.full((2, 3, 3), 51, dtype=np.uint8)
    torch.testing.assert_close(to_image_tensor(eight), torch.full((1, 3, 2, 3), 0.2))
    half = np.full((2, 3, 3), 0.5, dtype=np.float16)
    torch.testing.assert_close(to_image_tensor(half), torch.full((1, 3, 2, 3), 0.5))


@pytest.mark.parametrize(
    ("image", "error", "message"),
    [
        (np.zeros((4, 4, 3), dtype=np.int64), ValueError, "uint8, uint16 or float"),
        (np.zeros((4, 4, 3), dtype=bool), ValueError, "uint8, uint16 or float"),
        (np.full((4, 4, 3), 255.0), ValueError, r"must lie in \[0, 1\]"),
        (np.zeros((4, 4)), ValueError, r"must be \(H, W, 3\)"),
        (Image.fromarray(np.full((2, 2), 2.0, dtype=np.float32)), ValueError, "mode 'F'"),
        (Image.fromarray(np.full((2, 2), 70000, dtype=np.int32)), ValueError, r"\[0, 65535\]"),
        (Image.new("La", (2, 2)), ValueError, "mode 'La'"),
        (torch.zeros(3, 4, 4, dtype=torch.uint8), ValueError, "Divide by 255"),
        ([[0.0]], TypeError, "Unsupported image type list"),
    ],
)
def test_bad_images_name_the_fix(image, error, message) -> None:
    with pytest.raises(error, match=message):
        to_image_tensor(image)


def test_to_pil_and_to_hwc_round_trip() -> None:
    array = np.random.default_rng(0).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    tensor = to_image_tensor(array)
    assert np.array_equal(np.asarray(to_pil(tensor)), array)
    assert np.array_equal(np.asarray(to_pil(tensor[0])), array)
    assert to_hwc(tensor).dtype == np.float64
    np.testing.assert_allclose(to_hwc(Image.fromarray(array)), array / 255, rtol=1e-6)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        to_pil(tensor * 2)


def test_check_pixels_tolerates_noise_but_not_other_scales() -> None:
    noisy = torch.rand(2, 3, 4, 4) + 0.3 * torch.randn(2, 3, 4, 4).clamp(-1, 1)
    check_pixels(noisy)  # slightly outside [0, 1]: a NoiseTunnel batch
    with pytest.raises(TypeError, match="Divide a uint8 image by 255"):
        check_pixels(torch.zeros(1, 3, 4, 4, dtype=torch.uint8))
    with pytest.raises(TypeError, match=r"must be a torch\.Tensor"):
        check_pixels(np.zeros((1, 3, 4, 4)))
    with pytest.raises(ValueError, match="0-255 image"):
        check_pixels(torch.full((1, 3, 4, 4), 255.0))
    with pytest.raises(ValueError, match="0-255 image or a model-normalised one"):
        check_pixels(torch.full((1, 3, 4, 4), -1.8))  # CLIP-normalised black
    with pytest.raises(ValueError, match="NaN or infinite"):
        check_pixels(torch.tensor([0.5, float("inf")]), name="pixels")
    check_pixels(torch.full((1, 3, 4, 4), 1.5))
    with pytest.raises(ValueError, match=r"outside \[-0.1, 1.1\]"):
        check_pixels(torch.full((1, 3, 4, 4), 1.2), tolerance=0.1)
