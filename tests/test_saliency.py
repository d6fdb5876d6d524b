"""Saliency rules: the paper's walk is the default rule, the gain rule ranks by own gain."""

from __future__ import annotations

import pytest
import torch

from captum_eagle.attribution import saliency_from_gains
from captum_eagle.registry import UnknownNameError
from captum_eagle.saliency import (
    get_saliency_rule,
    list_saliency_rules,
    saliency_from_own_gains,
)


def test_registry() -> None:
    assert list_saliency_rules() == ["gain", "paper"]
    assert get_saliency_rule("paper") is saliency_from_gains
    with pytest.raises(UnknownNameError, match=r"Unknown saliency rule 'group'.*'gain'"):
        get_saliency_rule("group")


def test_gain_rule_ranks_a_late_necessity_gain_high() -> None:
    # The traced case of issue 21: the last piece of duplicated evidence comes 4th of 5 with a
    # large gain; the paper's walk ranks it 4th, the gain rule 2nd.
    order = torch.tensor([3, 0, 4, 1, 2])
    gains = torch.tensor([0.99, 0.001, -0.005, 0.98, -0.004])
    paper = saliency_from_gains(order, gains)
    assert paper.argsort(descending=True).tolist() == order.tolist()
    own = saliency_from_own_gains(order, gains)
    assert own.argsort(descending=True).tolist() == [3, 1, 0, 2, 4]
    torch.testing.assert_close(own[[3, 4]], torch.tensor([1.0, 0.0]))


def test_gain_rule_constant_gains_and_bad_shapes() -> None:
    values = saliency_from_own_gains(torch.tensor([1, 0]), torch.tensor([0.2, 0.2]))
    assert values.tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="same length"):
        saliency_from_own_gains(torch.tensor([1, 0]), torch.tensor([0.2, 0.2, 0.1]))
