"""The shared argument checks: what each accepts and refuses, and the messages' content."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from captum_eagle.checks import check_bool, check_forward, check_int, check_real


@pytest.mark.parametrize("value", [0, 7, np.int64(3), np.uint8(2)])
def test_check_int_accepts_integers_numpy_included(value) -> None:
    check_int("steps", value, least=0)


@pytest.mark.parametrize("value", [True, False, 2.0, 2.5, "2", None, np.float64(2.0), [2]])
def test_check_int_refuses_what_is_no_int(value) -> None:
    with pytest.raises(TypeError, match=r"steps must be an int; got .* \("):
        check_int("steps", value)


def test_check_int_names_the_lower_bound() -> None:
    with pytest.raises(ValueError, match=r"^steps must be >= 1; got 0\.$"):
        check_int("steps", 0, least=1)


@pytest.mark.parametrize("value", [True, "0.5", None, [0.5], torch.tensor(0.5), 1j])
def test_check_real_refuses_what_is_no_real_number(value) -> None:
    with pytest.raises(TypeError, match="fraction must be a number"):
        check_real("fraction", value)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, np.float32("nan")])
def test_check_real_refuses_nan_and_infinity(value) -> None:
    with pytest.raises(ValueError, match="fraction must be a finite number"):
        check_real("fraction", value)


@pytest.mark.parametrize(
    "value, options, message",
    [
        (0.0, {"low": 0.0, "high": 1.0, "open_low": True}, r"must be in \(0, 1\]; got 0.0"),
        (1.0, {"low": 0.0, "high": 1.0, "open_high": True}, r"must be in \[0, 1\); got 1.0"),
        (-0.5, {"low": 0.0, "high": 1.0}, r"must be in \[0, 1\]; got -0.5"),
        (0.5, {"low": 1.0}, r"must be >= 1; got 0.5"),
        (1.0, {"low": 1.0, "open_low": True}, r"must be > 1; got 1.0"),
        (3, {"high": 2.0}, r"must be <= 2; got 3"),
    ],
)
def test_check_real_names_the_interval(value, options, message) -> None:
    with pytest.raises(ValueError, match=message):
        check_real("fraction", value, **options)


@pytest.mark.parametrize("value", [0.0, 1, 0.5, np.float32(0.25)])
def test_check_real_accepts_numbers_inside_closed_bounds(value) -> None:
    check_real("fraction", value, low=0.0, high=1.0)


@pytest.mark.parametrize("value", ["no", 0, 1, None, np.bool_(True)])
def test_check_bool_refuses_what_is_no_bool(value) -> None:
    with pytest.raises(TypeError, match="show_progress must be True or False"):
        check_bool("show_progress", value)


def test_check_forward_duck_types_the_wrapper_and_needs_the_sample_image() -> None:
    wrapper = SimpleNamespace(token_probabilities=lambda images, sample: images)
    check_forward(wrapper, SimpleNamespace(image=torch.zeros(1, 3, 2, 2)))
    with pytest.raises(TypeError, match="wrapper must be an MLLMForwardWrapper"):
        check_forward(SimpleNamespace(token_probabilities=None), SimpleNamespace())
    with pytest.raises(TypeError, match=r"sample must be a PreparedSample \(wrapper.prepare"):
        check_forward(wrapper, SimpleNamespace(image=np.zeros((1, 3, 2, 2))))
