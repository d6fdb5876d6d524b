"""Attribution maps: pixel scores, ranks, region means and orders, baselines and boxes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from captum_eagle import FeatureMask
from captum_eagle.maps import (
    baseline_image,
    box_mask,
    cumulative_area,
    pixel_ranks,
    pixel_scores,
    region_means,
    region_order,
)

GRID = FeatureMask.grid((4, 4), 2, 2)  # four 2×2 regions, ids row-major


def test_every_map_layout_gives_the_same_scores() -> None:
    values = torch.arange(16.0).view(4, 4)
    three = torch.stack([values, 2 * values, -values])[None]  # sums to 2 * values
    layouts = [
        2 * values,
        (2 * values)[None],
        (2 * values)[None, None],
        three,
        three[0],
        (three,),
        three.numpy(),
    ]
    for layout in layouts:
        scores = pixel_scores(layout, (4, 4))
        assert scores.dtype == torch.float64
        assert torch.equal(scores, 2 * values.double())


def test_an_eagle_result_is_read_through_its_map() -> None:
    class Result:  # what EagleResult offers
        def attribution_map(self) -> torch.Tensor:
            return torch.tensor([0.0, 1.0, 0.5, 0.25])[GRID.mask]

    assert region_order(Result(), GRID).tolist() == [1, 2, 3, 0]


def test_bad_maps_name_the_fix() -> None:
    with pytest.raises(TypeError, match="tensor or numpy array"):
        pixel_scores([[0.0, 1.0]])
    with pytest.raises(ValueError, match=r"C = 1 or 3.*one image at a time"):
        pixel_scores(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"is \(4, 5\).*same sample\.image"):
        pixel_scores(torch.zeros(4, 5), (4, 4))
    with pytest.raises(ValueError, match="NaN"):
        pixel_scores(torch.tensor([[math.inf, 0.0]]))


def test_pixel_ranks_are_decreasing_with_row_major_ties() -> None:
    scores = torch.tensor([[1.0, 3.0, 1.0], [3.0, -2.0, 0.0]])
    assert pixel_ranks(scores).tolist() == [[2, 0, 3], [1, 5, 4]]


def test_region_means_and_order_ties_go_to_the_lowest_id() -> None:
    attribution = torch.zeros(4, 4)
    attribution[0, 0] = 4.0  # region 0: mean 1
    attribution[:2, 2:] = 1.0  # region 1: mean 1 (tied with region 0)
    attribution[2:, :2] = -2.0  # region 2: mean -2
    assert region_means(attribution, GRID).tolist() == [1.0, 1.0, -2.0, 0.0]
    assert region_order(attribution, GRID).tolist() == [0, 1, 3, 2]
    assert region_order(attribution, GRID, descending=False).tolist() == [2, 3, 0, 1]
    # A Captum tensor mask (any of its layouts) is accepted like a FeatureMask.
    assert region_order(attribution, GRID.mask[0, 0]).tolist() == [0, 1, 3, 2]
    with pytest.raises(ValueError, match="regions are"):
        region_means(torch.zeros(5, 5), GRID)
    with pytest.raises(TypeError, match="FeatureMask or a tensor"):
        region_order(attribution, np.zeros((4, 4)))


def test_baseline_image_fills_like_captum_baselines() -> None:
    image = torch.rand(1, 3, 4, 4, dtype=torch.float64)
    grey = baseline_image(0.25, image)
    assert grey.shape == image.shape and grey.dtype == torch.float64
    assert torch.equal(grey, torch.full_like(image, 0.25))
    colour = torch.tensor([0.0, 0.5, 1.0])
    for layout in (colour.view(1, 3, 1, 1), colour.view(3, 1, 1)):
        filled = baseline_image(layout, image)
        assert filled[0, :, 2, 3].tolist() == [0.0, 0.5, 1.0]
    picture = torch.rand(3, 4, 4)
    assert torch.equal(baseline_image(picture, image)[0], picture.double())
    assert torch.equal(baseline_image(1, image), torch.ones_like(image))


@pytest.mark.parametrize(
    ("baselines", "error", "message"),
    [
        (128, ValueError, r"\[0, 1\].*128 / 255"),
        (-0.1, ValueError, r"\[0, 1\]"),
        (math.nan, ValueError, "NaN"),
        (torch.tensor([0.0, math.inf, 0.0]).view(1, 3, 1, 1), ValueError, "NaN or infinite"),
        (torch.zeros(2, 3, 1, 1), ValueError, "do not broadcast to the image"),
        ([0.0, 0.0, 0.0], TypeError, "number or a tensor"),
        (True, TypeError, "number or a tensor"),
    ],
)
def test_bad_baselines_raise_and_name_the_fix(baselines, error, message) -> None:
    with pytest.raises(error, match=message):
        baseline_image(baselines, torch.zeros(1, 3, 4, 4))


def test_box_mask_convention_and_errors() -> None:
    region = box_mask((1, 0, 3, 1), (2, 4))
    assert region.int().tolist() == [[0, 1, 1, 0], [0, 0, 0, 0]]
    assert box_mask(torch.tensor([0.5, 0.5, 1.2, 1.0]), (2, 4)).nonzero().tolist() == [
        [0, 0],
        [0, 1],
    ]
    with pytest.raises(ValueError, match="is empty"):
        box_mask((2, 0, 2, 1), (2, 4))
    with pytest.raises(ValueError, match="4 finite numbers"):
        box_mask((0, 0, math.nan, 1), (2, 4))


def test_box_mask_is_clamped_to_the_map() -> None:
    assert box_mask((0, 0, 32.000001, 32), (32, 32)).all()
    assert box_mask((-1e-9, 0, 2, 1), (2, 4)).int().tolist() == [[1, 1, 0, 0], [0, 0, 0, 0]]
    assert box_mask((3, 1, 9, 9), (2, 4)).int().tolist() == [[0, 0, 0, 0], [0, 0, 0, 1]]
    for outside in ((4, 0, 6, 2), (0, -3, 4, 0), (-2, -2, -1, -1)):
        with pytest.raises(ValueError, match="does not lie inside"):
            box_mask(outside, (2, 4))


# -- bad inputs (issue 20): each family refused with the fix in the message ---------------------
@pytest.mark.parametrize(
    "attribution, error, message",
    [
        (torch.ones(4, 4, dtype=torch.bool), TypeError, "must hold real scores"),
        (torch.ones(1, 3, 4, 4, dtype=torch.complex64), TypeError, "must hold real scores"),
        (np.ones((4, 4), dtype=bool), TypeError, "must hold real scores"),
        (FeatureMask.grid((4, 4), 2, 2), TypeError, "FeatureMask holds region ids"),
        (torch.zeros(1, 0), ValueError, "is empty"),
        (torch.zeros(1, 3, 0, 4), ValueError, "is empty"),
    ],
)
def test_pixel_scores_refuses_maps_that_hold_no_scores(attribution, error, message) -> None:
    with pytest.raises(error, match=message):
        pixel_scores(attribution)
    mask = FeatureMask.grid((4, 4), 2, 2)
    with pytest.raises(error, match=message):
        region_order(attribution, mask)


def test_integer_maps_are_scores() -> None:
    # An integer map (e.g. a rank map) is a valid map: only bool and complex are refused.
    ranks = torch.tensor([[3, 2], [1, 0]])
    assert pixel_scores(ranks).tolist() == [[3.0, 2.0], [1.0, 0.0]]


@pytest.mark.parametrize("descending", ["no", 0, None])
def test_region_order_descending_must_be_a_bool(descending) -> None:
    mask = FeatureMask.grid((4, 4), 2, 2)
    with pytest.raises(TypeError, match="descending must be True or False"):
        region_order(torch.rand(4, 4), mask, descending=descending)


@pytest.mark.parametrize("areas", [[[1, 2], [3, 4]], torch.ones(2, 2), []])
def test_cumulative_area_needs_one_area_per_region(areas) -> None:
    with pytest.raises(ValueError, match="one finite, non-negative value per region"):
        cumulative_area(areas)


@pytest.mark.parametrize("image", [None, np.zeros((1, 3, 2, 2)), torch.zeros(3, 2, 2)])
def test_baseline_image_needs_the_prepared_image_tensor(image) -> None:
    with pytest.raises(TypeError, match=r"image must be a \(1, 3, H, W\) tensor"):
        baseline_image(0.0, image)


def test_an_empty_baselines_tensor_is_refused() -> None:
    with pytest.raises(ValueError, match="baselines is an empty tensor"):
        baseline_image(torch.zeros(0), torch.zeros(1, 3, 2, 2))
