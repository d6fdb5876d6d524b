"""Per-token influence on constructed trajectories: the authors' area rule and its variants."""

from __future__ import annotations

import pytest
import torch

from captum_eagle.influence import INFLUENCE_VARIANTS, influence_area, token_influence

# The "white" token of the issue: decided by the very first region (0.0003 -> 0.9995).
DECIDED_FIRST = [0.0003] + [0.9995] * 8
FLAT = [0.4] * 9
LATE = [0.1] * 8 + [0.9]  # only the last region moves it


def test_a_token_decided_by_the_first_region_is_perception_driven() -> None:
    trajectories = torch.tensor([DECIDED_FIRST, FLAT, LATE])
    area = influence_area(trajectories)  # equal areas: x = 0, 1/8, ..., 1
    # AUC = 0.5 * (0.0003 + 0.9995) / 8 + 0.9995 * 7 / 8; minus the minimum 0.0003.
    expected = 0.5 * (0.0003 + 0.9995) / 8 + 0.9995 * 7 / 8 - 0.0003
    assert area[0].item() == pytest.approx(expected, abs=1e-6)
    assert area[0].item() > 0.9
    assert area[1].item() == 0.0
    assert area[2].item() == pytest.approx(0.5 * 0.8 / 8, abs=1e-6)
    # The paper's Eq. 5 as printed (no empty image, equal steps) reads it as flat.
    old = influence_area(trajectories, "equal_steps")
    assert old[0].item() == pytest.approx(0.0, abs=1e-6)
    assert old[2].item() == pytest.approx(0.8 / 8, abs=1e-6)


def test_region_areas_set_the_x_axis() -> None:
    trajectories = torch.tensor([[0.0, 1.0, 1.0], [0.0, 0.0, 1.0]])
    # The first region covers 90% of the image.
    big_first = influence_area(trajectories, areas=torch.tensor([90, 10]))
    assert big_first.tolist() == pytest.approx([0.45 + 0.1, 0.05], abs=1e-6)
    small_first = influence_area(trajectories, areas=[10, 90])
    assert small_first.tolist() == pytest.approx([0.05 + 0.9, 0.45], abs=1e-6)
    # Equal steps are what equal areas give.
    torch.testing.assert_close(
        influence_area(trajectories), influence_area(trajectories, areas=[3, 3])
    )


def test_below_max_on_the_same_axis() -> None:
    trajectories = torch.tensor([[0.2, 0.8, 0.6], [0.5, 0.5, 0.5]])
    auc = 0.5 * (0.2 + 0.8) / 2 + 0.5 * (0.8 + 0.6) / 2
    area = influence_area(trajectories, "below_max")
    assert area.tolist() == pytest.approx([0.8 - auc, 0.0], abs=1e-6)


def test_token_influence_normalises_across_the_answer() -> None:
    trajectories = torch.tensor([DECIDED_FIRST, LATE, FLAT])
    area = influence_area(trajectories)
    torch.testing.assert_close(token_influence(trajectories), area / area[0])
    assert token_influence(torch.tensor([FLAT, FLAT])).tolist() == [0.0, 0.0]
    for variant in INFLUENCE_VARIANTS:
        scores = token_influence(trajectories, variant, areas=torch.ones(8))
        assert scores.shape == (3,) and scores.min() >= 0.0 and scores.max() <= 1.0


def test_bad_input_names_the_fix() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        influence_area(torch.zeros(2, 3), "sideways")
    with pytest.raises(ValueError, match=r"\(T, N \+ 1\) with the empty image first"):
        influence_area(torch.zeros(2, 1))
    with pytest.raises(ValueError, match=r"feature_mask\.areas\[order\]"):
        influence_area(torch.zeros(2, 4), areas=[1, 1])
    with pytest.raises(ValueError, match="non-negative"):
        influence_area(torch.zeros(2, 3), areas=[1, -1])
    with pytest.raises(ValueError, match="sum to 0"):
        influence_area(torch.zeros(2, 3), areas=[0, 0])
    with pytest.raises(TypeError, match="must be a tensor"):
        influence_area([[0.0, 1.0]])


# -- bad inputs (issue 20) ---------------------------------------------------------------------
def test_influence_area_refuses_trajectories_that_are_no_probabilities() -> None:
    with pytest.raises(TypeError, match="must hold probabilities as floats"):
        influence_area(torch.ones(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="NaN or infinite"):
        influence_area(torch.tensor([[0.0, float("nan"), 1.0]]))
    with pytest.raises(ValueError, match="NaN or infinite"):
        token_influence(torch.tensor([[0.0, float("inf"), 1.0]]))
