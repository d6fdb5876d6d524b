r"""Argument checks shared by the public entry points (raised before any model forward).

Python's ``bool`` is an ``int`` and numpy scalars are not Python numbers; these checks accept
numbers as a user means them (``numbers.Integral`` / ``numbers.Real``, numpy scalars included)
and refuse ``bool``, strings, ``None`` and NaN with a message that names the argument.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch

__all__ = ["check_bool", "check_forward", "check_int", "check_real"]


def check_int(name: str, value: object, least: int | None = None) -> None:
    r"""Raise unless ``value`` is an integer (not a bool) and at least ``least``.

    Examples::

        >>> check_int("steps", 4, least=1)
        >>> check_int("steps", 2.5, least=1)
        Traceback (most recent call last):
        ...
        TypeError: steps must be an int; got 2.5 (float).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int; got {value!r} ({type(value).__name__}).")
    if least is not None and value < least:
        raise ValueError(f"{name} must be >= {least}; got {value}.")


def check_real(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    open_low: bool = False,
    open_high: bool = False,
) -> None:
    r"""Raise unless ``value`` is a finite real number (not a bool) in the given interval.

    Args:
        name (str): the argument's name, for the message.
        value: the value to check.
        low, high (float, optional): the bounds; ``None`` leaves that side unbounded.
        open_low, open_high (bool): exclude the bound itself. Default: bounds are included.

    Examples::

        >>> check_real("threshold", 0.2, low=0.0, high=1.0, open_high=True)
        >>> check_real("threshold", float("nan"))
        Traceback (most recent call last):
        ...
        ValueError: threshold must be a finite number; got nan.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number; got {value!r} ({type(value).__name__}).")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number; got {value}.")
    too_low = low is not None and (number <= low if open_low else number < low)
    too_high = high is not None and (number >= high if open_high else number > high)
    if not (too_low or too_high):
        return
    if low is not None and high is not None:
        bounds = f"in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
    elif low is not None:
        bounds = f"{'>' if open_low else '>='} {low:g}"
    else:
        bounds = f"{'<' if open_high else '<='} {high:g}"
    raise ValueError(f"{name} must be {bounds}; got {value}.")


def check_bool(name: str, value: object) -> None:
    r"""Raise unless ``value`` is a ``bool`` (a string such as ``"no"`` would read as True).

    Examples::

        >>> check_bool("show_progress", "no")
        Traceback (most recent call last):
        ...
        TypeError: show_progress must be True or False; got 'no' (str).
    """
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False; got {value!r} ({type(value).__name__}).")


def check_forward(wrapper: Any, sample: Any) -> None:
    r"""Raise unless ``wrapper`` scores images and ``sample`` is a prepared sample with its image.

    Duck-typed, so a test double with ``token_probabilities(images, sample)`` passes too.

    Examples::

        >>> check_forward(None, None)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        TypeError: wrapper must be an MLLMForwardWrapper ...; got NoneType.
    """
    if not callable(getattr(wrapper, "token_probabilities", None)):
        raise TypeError(
            "wrapper must be an MLLMForwardWrapper (an object with token_probabilities(images, "
            f"sample)); got {type(wrapper).__name__}."
        )
    if not isinstance(getattr(sample, "image", None), torch.Tensor):
        raise TypeError(
            "sample must be a PreparedSample (wrapper.prepare(image, prompt, ...)) with an image "
            f"tensor; got {type(sample).__name__}."
        )
