r"""Saliency rules: how an Eagle order ``π`` and its marginal gains become region values.

A rule maps ``(order, gains)`` (both ``(N,)``, as in :class:`~captum_eagle.EagleResult`) to the
saliency of each region id, in ``[0, 1]``. Insertion and deletion curves only see the ranking of
the values, the pointing game only their maximum.

- ``"paper"`` (default): the paper's walk ``A_i = A_{i−1} − |gain_i|``
  (:func:`captum_eagle.attribution.saliency_from_gains`). The values never increase along ``π``,
  so the ranking is ``π`` itself.
- ``"gain"``: each region's own marginal gain ``gain_i = F(π_:i) − F(π_:i−1)``, min-max
  normalised. A region placed late that completes a necessity gain (the last piece of duplicated
  evidence, issue 21) ranks by that gain instead of by its position. Measured in
  ``benchmarks/redundant.py`` (``benchmarks/results/redundant/``), it lowers insertion against the
  paper's rule in half of the groups and repairs deletion less than the ``forward_backward``
  search (:mod:`captum_eagle.search.forward_backward`): kept for comparison, not recommended.

Examples::

    >>> import torch
    >>> from captum_eagle.saliency import get_saliency_rule, list_saliency_rules
    >>> list_saliency_rules()
    ['gain', 'paper']
    >>> order, gains = torch.tensor([2, 0, 1]), torch.tensor([0.9, 0.0, 0.8])
    >>> get_saliency_rule("paper")(order, gains)
    tensor([1., 0., 1.])
    >>> get_saliency_rule("gain")(order, gains)
    tensor([0.0000, 0.8889, 1.0000])
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from captum_eagle.attribution import saliency_from_gains
from captum_eagle.registry import Registry

SaliencyRule = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``(order, gains) -> (N,)`` saliency per region id, in ``[0, 1]``."""

SALIENCY_RULES: Registry[SaliencyRule] = Registry("saliency rule")


def saliency_from_own_gains(order: torch.Tensor, gains: torch.Tensor) -> torch.Tensor:
    r"""Each region's own marginal gain along ``π``, per region id, min-max normalised.

    Region ``π_i`` gets ``gain_i``; a constant gain gives every region 1.

    Args:
        order (Tensor): ``(N,)`` region ids, ``π``.
        gains (Tensor): ``(N,)`` marginal gains ``F(π_:i) − F(π_:i−1)``.

    Returns:
        Tensor: ``(N,)`` saliency of each region id, in ``[0, 1]``.

    Examples::

        >>> import torch
        >>> saliency_from_own_gains(torch.tensor([1, 0]), torch.tensor([0.5, 1.0]))
        tensor([1., 0.])
    """
    if order.shape != gains.shape or order.ndim != 1:
        raise ValueError(
            f"order and gains must be 1-D of the same length; got {tuple(order.shape)} and "
            f"{tuple(gains.shape)}."
        )
    span = gains.max() - gains.min()
    normalised = (gains - gains.min()) / span if span > 0 else torch.ones_like(gains)
    values = torch.empty_like(normalised)
    values[order] = normalised
    return values


SALIENCY_RULES.add("paper", saliency_from_gains)
SALIENCY_RULES.add("gain", saliency_from_own_gains)


def list_saliency_rules() -> list[str]:
    """Names accepted by :func:`get_saliency_rule`."""
    return sorted(SALIENCY_RULES)


def get_saliency_rule(name: str) -> SaliencyRule:
    r"""The saliency rule registered under ``name`` (an unknown name lists the valid ones)."""
    return SALIENCY_RULES.get(name)
