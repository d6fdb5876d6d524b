r"""Per-token influence: did a token come from the image (perception) or from language priors?

From the insertion trajectory ``p_t(π_:r)``, ``r = 1..N``, of each target token along the Eagle
order: a token whose probability moves a lot as evidence is inserted relies on the image; a flat
trajectory means the language prior drives it. Two variants from the paper:

- ``"above_min"`` (main text, Eq. 5): ``I_t = Σ_r (p_t(π_:r) − min_j p_t(π_:j))``;
- ``"below_max"`` (supplement, Algorithm 1): ``I_t = Σ_r (max_j p_t(π_:j) − p_t(π_:r))``.

Both are divided by ``N`` (an area in ``[0, 1]``); :func:`token_influence` further normalises
across the tokens of one answer so that the most image-driven token scores 1.
"""

from __future__ import annotations

import torch

INFLUENCE_VARIANTS = ("above_min", "below_max")


def influence_area(trajectories: torch.Tensor, variant: str = "above_min") -> torch.Tensor:
    r"""Per-token influence as an area in ``[0, 1]``.

    Args:
        trajectories (Tensor): ``(T, N)`` insertion probabilities ``p_t(π_:r)``, ``r = 1..N``.
        variant (str): ``"above_min"`` (Eq. 5) or ``"below_max"`` (supplement).

    Returns:
        Tensor ``(T,)``.

    Examples::

        >>> import torch
        >>> influence_area(torch.tensor([[0.1, 0.5, 0.9], [0.5, 0.5, 0.5]]))
        tensor([0.4000, 0.0000])
    """
    if trajectories.ndim != 2 or trajectories.shape[1] < 1:
        raise ValueError(
            f"trajectories must be (T, N) with N >= 1; got {tuple(trajectories.shape)}."
        )
    if variant == "above_min":
        gap = trajectories - trajectories.min(dim=1, keepdim=True).values
    elif variant == "below_max":
        gap = trajectories.max(dim=1, keepdim=True).values - trajectories
    else:
        raise ValueError(
            f"Unknown influence variant {variant!r}; choose one of {INFLUENCE_VARIANTS}."
        )
    return gap.mean(dim=1)


def token_influence(trajectories: torch.Tensor, variant: str = "above_min") -> torch.Tensor:
    r"""Influence normalised across the answer's tokens (largest = 1; all 0 if every token is flat).

    Args:
        trajectories (Tensor): ``(T, N)`` insertion probabilities along the Eagle order.
        variant (str): ``"above_min"`` or ``"below_max"``.

    Returns:
        Tensor ``(T,)`` in ``[0, 1]``; large = perception-driven, small = language-prior-driven.
    """
    area = influence_area(trajectories, variant)
    top = area.max()
    return area / top if top > 0 else torch.zeros_like(area)
