"""FeatureMask: SLICO, grid, user labels, Captum ImageMaskInput."""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
import torch
from captum.attr import FeatureAblation, ImageMaskInput, KernelShap, Lime, ShapleyValueSampling
from PIL import Image

from captum_eagle import FeatureMask
from captum_eagle.masks import as_feature_mask


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("n_segments", [16, 32, 64])
def test_slico_is_contiguous_deterministic_and_close_to_request(image, n_segments) -> None:
    first = FeatureMask.slico(image, n_segments)
    second = FeatureMask.slico(image, n_segments)
    assert torch.equal(first.mask, second.mask)
    assert first.mask.shape == (1, 1, 64, 64) and first.mask.dtype == torch.long
    ids = torch.unique(first.mask)
    assert torch.equal(ids, torch.arange(first.n_regions))
    assert 0.6 * n_segments <= first.n_regions <= 1.2 * n_segments
    assert int(first.areas.sum()) == 64 * 64


def test_grid_is_exact() -> None:
    mask = FeatureMask.grid((4, 6), rows=2, cols=3).mask[0, 0]
    expected = torch.tensor(
        [[0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 2], [3, 3, 4, 4, 5, 5], [3, 3, 4, 4, 5, 5]]
    )
    assert torch.equal(mask, expected)
    assert FeatureMask.grid((4, 6), 2, 3).areas.tolist() == [4] * 6


def test_from_labels_relabels_to_contiguous_ids() -> None:
    labels = np.array([[5, 5, 9], [9, 2, 2]])
    mask = FeatureMask.from_labels(labels)
    assert mask.mask[0, 0].tolist() == [[1, 1, 2], [2, 0, 0]]
    assert mask.n_regions == 3
    assert mask.region_masks().sum().item() == 6


def test_one_region_and_mismatched_shape_are_clear_errors(image) -> None:
    with pytest.raises(ValueError, match="single region"):
        FeatureMask.from_labels(np.zeros((8, 8), dtype=int))
    with pytest.raises(ValueError, match="n_segments must be >= 2"):
        FeatureMask.slico(image, 1)
    with pytest.raises(ValueError, match=r"feature mask is \(32, 32\) but the image is \(64, 64\)"):
        as_feature_mask(FeatureMask.grid((32, 32), 2, 2), image)
    with pytest.raises(ValueError, match="must be \\(H, W\\)"):
        FeatureMask.from_labels(np.zeros((2, 3, 4, 5), dtype=int))


def test_captum_tensor_masks_are_accepted(image) -> None:
    grid = FeatureMask.grid(image, 2, 2)
    three_channel = grid.mask.expand(1, 3, 64, 64)
    assert torch.equal(as_feature_mask(three_channel, image).mask, grid.mask)
    assert torch.equal(as_feature_mask(grid.mask[0, 0], image).mask, grid.mask)


def test_image_mask_input_mask_maps_to_model_grid(wrapper, photo, sample) -> None:
    labels = torch.zeros(photo.height, photo.width, dtype=torch.long)
    labels[:, photo.width // 2 :] = 1
    inputs = ImageMaskInput(image=photo, mask=labels)
    mask = FeatureMask.from_image_mask_input(inputs, wrapper)
    assert mask.image_shape == tuple(sample.image.shape[-2:])
    assert mask.n_regions == 2
    left, right = mask.mask[0, 0, :, 0], mask.mask[0, 0, :, -1]
    assert (left == 0).all() and (right == 1).all()


def test_slico_follows_image_content() -> None:
    array = np.zeros((48, 48, 3), dtype=np.uint8)
    array[:, 24:] = 255
    image = torch.from_numpy(array).permute(2, 0, 1)[None].float() / 255
    mask = FeatureMask.slico(image, 4).mask[0, 0]
    assert set(mask[:, :22].unique().tolist()).isdisjoint(mask[:, 26:].unique().tolist())


# -- FeatureMask is the Captum feature_mask tensor itself (issue 16) -------------------------------
def test_feature_mask_is_the_id_tensor(image) -> None:
    mask = FeatureMask.grid(image, 2, 3)
    assert isinstance(mask, torch.Tensor) and mask.dtype == torch.long
    assert mask.shape == (1, 1, 64, 64) and mask.image_shape == (64, 64)
    assert type(mask.mask) is torch.Tensor and torch.equal(mask.mask, mask)
    for derived in (mask + 0, mask[0, 0], mask.clone(), mask == 1, mask.flatten()):
        assert type(derived) is torch.Tensor  # ops give plain tensors, not unchecked masks
    assert repr(mask) == "FeatureMask(n_regions=6, image_shape=(64, 64))"
    copied = copy.deepcopy(mask)
    assert type(copied) is FeatureMask and torch.equal(copied, mask)
    assert copied.data_ptr() != mask.data_ptr()
    buffer = io.BytesIO()
    torch.save(mask, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert type(loaded) is FeatureMask and loaded.n_regions == 6


@pytest.mark.parametrize(
    ("method", "options"),
    [
        (FeatureAblation, {}),
        (ShapleyValueSampling, {"n_samples": 2}),
        (KernelShap, {"n_samples": 12}),
        (Lime, {"n_samples": 12}),
    ],
)
def test_captum_methods_take_a_feature_mask_directly(image, method, options) -> None:
    weights = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))

    def forward(batch):
        return (batch * weights).sum(dim=(1, 2, 3))

    mask = FeatureMask.grid(image, 2, 3)
    torch.manual_seed(0)
    direct = method(forward).attribute(image, feature_mask=mask, **options)
    torch.manual_seed(0)
    plain = method(forward).attribute(image, feature_mask=mask.mask, **options)
    assert type(direct) is torch.Tensor and direct.shape == image.shape
    assert torch.equal(direct, plain)
    assert direct[0, 0, 0, 0] != direct[0, 0, -1, -1]  # region values, not a constant


def test_wrapper_score_with_feature_mask_directly(wrapper, sample) -> None:
    mask = FeatureMask.grid(sample.image, 2, 2)
    ablation = FeatureAblation(wrapper)
    with torch.no_grad():
        direct = ablation.attribute(
            sample.image, feature_mask=mask, additional_forward_args=(sample,)
        )
        plain = ablation.attribute(
            sample.image, feature_mask=mask.mask, additional_forward_args=(sample,)
        )
    torch.testing.assert_close(direct, plain)


def test_constructor_refuses_non_integer_ids() -> None:
    with pytest.raises(TypeError, match=r"integer region ids; got torch\.float32"):
        FeatureMask(torch.zeros(1, 1, 2, 2))
    with pytest.raises(TypeError, match="must be a tensor; got ndarray"):
        FeatureMask(np.zeros((1, 1, 2, 2), dtype=int))


# -- issue 20: what the constructors accept ----------------------------------------------------
def test_slico_accepts_pil_and_numpy_like_prepare(image) -> None:
    array = (image[0].permute(1, 2, 0) * 255).round().byte().numpy()
    as_uint8 = torch.from_numpy(array).permute(2, 0, 1)[None].float() / 255
    expected = FeatureMask.slico(as_uint8, 16)
    assert torch.equal(FeatureMask.slico(array, 16), expected)
    assert torch.equal(FeatureMask.slico(Image.fromarray(array), 16), expected)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        FeatureMask.slico(image * 255, 16)


@pytest.mark.parametrize(
    ("n_segments", "error", "message"),
    [
        (10_000, ValueError, "use at most 1024"),
        (1025, ValueError, r"smaller than 4 pixels on average in a 64×64 image"),
        (1, ValueError, "n_segments must be >= 2"),
        (16.5, TypeError, "n_segments must be an int"),
        (True, TypeError, "n_segments must be an int"),
        ("16", TypeError, "n_segments must be an int"),
    ],
)
def test_slico_refuses_impossible_region_counts(image, n_segments, error, message) -> None:
    with pytest.raises(error, match=message):
        FeatureMask.slico(image, n_segments)


def test_slico_at_the_region_count_limit() -> None:
    small = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert 2 <= FeatureMask.slico(small, 16).n_regions <= 16
    with pytest.raises(ValueError, match="use at most 16"):
        FeatureMask.slico(small, 17)


@pytest.mark.parametrize(
    ("rows", "cols", "error", "message"),
    [
        (0, 2, ValueError, "rows must be >= 1"),
        (2, -1, ValueError, "cols must be >= 1"),
        (65, 2, ValueError, "use at most 64 rows and 32 columns"),
        (2, 33, ValueError, "does not fit a 64×32 image"),
        (True, 2, TypeError, "rows must be an int"),
        (2, 2.0, TypeError, "cols must be an int"),
        (1, 1, ValueError, "single region"),
    ],
)
def test_grid_bounds(rows, cols, error, message) -> None:
    with pytest.raises(error, match=message):
        FeatureMask.grid((64, 32), rows, cols)


def test_as_feature_mask_checks_the_id_dtype(image) -> None:
    grid = FeatureMask.grid(image, 2, 2)
    assert torch.equal(as_feature_mask(grid.mask.double(), image), grid)
    with pytest.raises(ValueError, match="whole numbers"):
        as_feature_mask(grid.mask * 0.5, image)
    with pytest.raises(TypeError, match=r"got a torch\.bool tensor"):
        as_feature_mask(grid.mask == 1, image)
    with pytest.raises(TypeError, match=r"got a torch\.complex64 tensor"):
        as_feature_mask(grid.mask.to(torch.complex64), image)
    with pytest.raises(ValueError, match="whole numbers"):
        FeatureMask.from_labels(np.array([[0.0, 0.5], [1.0, 1.0]]))


# -- bad inputs (issue 20): FeatureMask.grid and check_image name the fix ----------------------
@pytest.mark.parametrize(
    "image, error, message",
    [
        (None, TypeError, "needs the image as a tensor"),
        (Image.new("RGB", (4, 4)), TypeError, "needs the image as a tensor"),
        (np.zeros((4, 4, 3)), TypeError, "needs the image as a tensor"),  # HWC: W would read 3
        ((4, 4, 4), TypeError, "needs the image as a tensor"),
        ((4.0, 4.0), TypeError, "height must be an int"),
        ((0, 4), ValueError, "height must be >= 1"),
        ((4, -2), ValueError, "width must be >= 1"),
    ],
)
def test_grid_refuses_what_is_no_image_tensor_or_size(image, error, message) -> None:
    with pytest.raises(error, match=message):
        FeatureMask.grid(image, 2, 2)


def test_grid_takes_a_size_as_tuple_or_list() -> None:
    assert torch.equal(FeatureMask.grid([4, 6], 2, 3), FeatureMask.grid((4, 6), 2, 3))
    assert FeatureMask.grid(torch.zeros(1, 3, 4, 6), 2, 3).image_shape == (4, 6)


@pytest.mark.parametrize("image", [None, [[0.0]], "image.png"])
def test_check_image_refuses_what_is_no_tensor(image) -> None:
    with pytest.raises(TypeError, match=r"must be a tensor \(\.\.\., H, W\)"):
        FeatureMask.grid((4, 4), 2, 2).check_image(image)
