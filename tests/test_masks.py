"""FeatureMask: SLICO, grid, user labels, Captum ImageMaskInput."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import ImageMaskInput

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
