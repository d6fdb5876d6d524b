"""Modality reliance on constructed insertion trajectories."""

from __future__ import annotations

import doctest
import math

import pytest
import torch

from captum_eagle.reliance import modality_reliance

# Features 0, 1 are image regions, 2, 3 prompt words.
IS_IMAGE = torch.tensor([True, True, False, False])


def _reliance(points: list[float], order: list[int], **kwargs: float) -> float:
    trajectory = torch.tensor([points])
    return float(modality_reliance(trajectory, torch.tensor(order), IS_IMAGE, **kwargs)[0])


def test_all_gain_from_the_image_is_one() -> None:
    assert _reliance([0.1, 0.5, 0.9, 0.9, 0.9], [0, 1, 2, 3]) == pytest.approx(1.0)


def test_all_gain_from_the_prompt_is_zero() -> None:
    assert _reliance([0.1, 0.1, 0.1, 0.6, 0.9], [0, 1, 2, 3]) == pytest.approx(0.0)


def test_half_split() -> None:
    # Order interleaves kinds: word 2 (+0.2), region 1 (+0.2), word 3 (0), region 0 (0).
    assert _reliance([0.3, 0.5, 0.7, 0.7, 0.7], [2, 1, 3, 0]) == pytest.approx(0.5)


def test_kinds_follow_feature_ids_not_positions() -> None:
    # Same trajectory, the gain now comes from words 2 and 3 placed first.
    assert _reliance([0.1, 0.5, 0.9, 0.9, 0.9], [2, 3, 0, 1]) == pytest.approx(0.0)


def test_negative_gains_are_not_counted() -> None:
    # Region 0 +0.6, word 2 −0.5, region 1 +0.2, word 3 +0.2: share = 0.8 / 1.0.
    assert _reliance([0.1, 0.7, 0.2, 0.4, 0.6], [0, 2, 1, 3]) == pytest.approx(0.8)


def test_flat_and_falling_trajectories_are_undefined() -> None:
    assert math.isnan(_reliance([0.4, 0.4, 0.4, 0.4, 0.4], [0, 1, 2, 3]))
    assert math.isnan(_reliance([0.9, 0.6, 0.5, 0.2, 0.1], [0, 2, 1, 3]))
    # Below the noise floor: 0.0005 of gain in total.
    assert math.isnan(_reliance([0.4, 0.4005, 0.4005, 0.4005, 0.4005], [0, 1, 2, 3]))
    assert _reliance([0.4, 0.4005, 0.4005, 0.4005, 0.4005], [0, 1, 2, 3], min_gain=0.0) == 1.0


def test_tokens_are_independent_rows() -> None:
    trajectories = torch.tensor([[0.1, 0.5, 0.9, 0.9, 0.9], [0.3, 0.3, 0.3, 0.3, 0.3]])
    reliance = modality_reliance(trajectories, torch.tensor([0, 1, 2, 3]), IS_IMAGE)
    assert reliance[0] == pytest.approx(1.0) and torch.isnan(reliance[1])


@pytest.mark.parametrize(
    ("trajectories", "order", "message"),
    [
        (torch.zeros(5), torch.arange(4), "trajectories"),
        (torch.zeros(1, 4), torch.arange(4), "must both be"),
        (torch.zeros(1, 5), torch.tensor([0, 0, 1, 2]), "permutation"),
    ],
)
def test_bad_shapes_raise(trajectories, order, message) -> None:
    with pytest.raises(ValueError, match=message):
        modality_reliance(trajectories, order, IS_IMAGE)


def test_docstring_examples_run() -> None:
    import captum_eagle.reliance as module

    results = doctest.testmod(module)
    assert results.attempted > 0 and results.failed == 0
