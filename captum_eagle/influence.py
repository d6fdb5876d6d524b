r"""Per-token influence: did a token come from the image (perception) or from language priors?

From the insertion trajectory of each target token along the Eagle order, starting from the
empty image: ``p_t(∅), p_t(π_:1), …, p_t(π_:N)``, with ``x_r`` the cumulative image-area fraction
of ``π_:r`` (``x_0 = 0``, ``x_N = 1``). A token whose probability moves as evidence is inserted
relies on the image; a flat trajectory means the language prior drives it. Variants:

- ``"above_min"`` (default, the authors' code): ``I_t = AUC_x(p_t) − min_r p_t``, the trapezoid
  area between the trajectory and its minimum over the inserted area, empty image included. A
  token that the very first region decides (``0.0003 → 0.9995``) scores near 1.
- ``"below_max"`` (the supplement's form on the same axis): ``I_t = max_r p_t − AUC_x(p_t)``.
- ``"equal_steps"`` (the paper's Eq. 5 as printed): ``I_t = (1/N) Σ_{r=1..N} (p_t(π_:r) −
  min_{j≥1} p_t(π_:j))`` — no empty image, equal steps. It reads a token decided by the first
  region as flat (language prior); kept for comparison with earlier results.

All are areas in ``[0, 1]``; :func:`token_influence` further normalises across the tokens of one
answer so that the most image-driven token scores 1 (for display: when every area is tiny, the
normalised values are noise, so report :func:`influence_area` too).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from captum_eagle.maps import cumulative_area

__all__ = ["INFLUENCE_VARIANTS", "influence_area", "token_influence"]

INFLUENCE_VARIANTS = ("above_min", "below_max", "equal_steps")


def influence_area(
    trajectories: torch.Tensor,
    variant: str = "above_min",
    *,
    areas: torch.Tensor | Sequence[float] | None = None,
) -> torch.Tensor:
    r"""Per-token influence as an area in ``[0, 1]``.

    Args:
        trajectories (Tensor): ``(T, N + 1)`` insertion probabilities ``p_t(π_:r)``,
            ``r = 0..N``, the empty image first (``EagleResult.trajectories``).
        variant (str): ``"above_min"`` (default), ``"below_max"`` or ``"equal_steps"``.
        areas (Tensor, optional): ``(N,)`` pixel counts of the regions in insertion order
            (``feature_mask.areas[order]``); they set the x axis. Default: equal areas.
            Ignored by ``"equal_steps"``.

    Returns:
        Tensor ``(T,)``.

    Examples::

        >>> import torch
        >>> from captum_eagle.influence import influence_area
        >>> decided_first = [0.0003, 0.9995, 0.9995, 0.9995]  # the first region decides
        >>> flat = [0.5, 0.5, 0.5, 0.5]
        >>> trajectories = torch.tensor([decided_first, flat])
        >>> areas = torch.tensor([1, 1, 2])  # pixels of the regions, in insertion order
        >>> [round(v, 4) for v in influence_area(trajectories, areas=areas).tolist()]
        [0.8743, 0.0]
        >>> influence_area(trajectories, "equal_steps").tolist()
        [0.0, 0.0]
    """
    if not isinstance(trajectories, torch.Tensor):
        raise TypeError(f"trajectories must be a tensor; got {type(trajectories).__name__}.")
    if trajectories.ndim != 2 or trajectories.shape[1] < 2:
        raise ValueError(
            "trajectories must be (T, N + 1) with the empty image first and N >= 1 regions "
            f"(EagleResult.trajectories); got {tuple(trajectories.shape)}."
        )
    if not trajectories.is_floating_point():
        raise TypeError(
            f"trajectories must hold probabilities as floats; got {trajectories.dtype}. "
            "Pass EagleResult.trajectories."
        )
    if not torch.isfinite(trajectories).all():
        raise ValueError("trajectories contain NaN or infinite values; pass probabilities.")
    if variant not in INFLUENCE_VARIANTS:
        raise ValueError(
            f"Unknown influence variant {variant!r}; choose one of {INFLUENCE_VARIANTS}."
        )
    n_regions = trajectories.shape[1] - 1
    if variant == "equal_steps":
        inserted = trajectories[:, 1:]
        return (inserted - inserted.min(dim=1, keepdim=True).values).mean(dim=1)
    if areas is None:
        areas = torch.ones(n_regions)
    x = cumulative_area(areas)
    if x.numel() != n_regions + 1:
        raise ValueError(
            f"areas has {x.numel() - 1} values but the trajectories cover {n_regions} regions; "
            "pass feature_mask.areas[order] (one area per region, in insertion order)."
        )
    auc = torch.trapezoid(trajectories.double(), x, dim=1)
    if variant == "above_min":
        area = auc - trajectories.double().min(dim=1).values
    else:
        area = trajectories.double().max(dim=1).values - auc
    return area.to(trajectories.dtype)


def token_influence(
    trajectories: torch.Tensor,
    variant: str = "above_min",
    *,
    areas: torch.Tensor | Sequence[float] | None = None,
) -> torch.Tensor:
    r"""Influence normalised across the answer's tokens (largest = 1; all 0 if every token is flat).

    Args:
        trajectories (Tensor): ``(T, N + 1)`` insertion probabilities, the empty image first.
        variant (str): ``"above_min"`` (default), ``"below_max"`` or ``"equal_steps"``.
        areas (Tensor, optional): ``(N,)`` region areas in insertion order (see
            :func:`influence_area`). Default: equal areas.

    Returns:
        Tensor ``(T,)`` in ``[0, 1]``; large = perception-driven, small = language-prior-driven.

    Examples::

        >>> import torch
        >>> from captum_eagle.influence import token_influence
        >>> influence = token_influence(torch.tensor([[0.0, 1.0, 1.0], [0.2, 0.3, 0.4]]))
        >>> [round(v, 3) for v in influence.tolist()]
        [1.0, 0.133]
    """
    area = influence_area(trajectories, variant, areas=areas)
    top = area.max()
    return area / top if top > 0 else torch.zeros_like(area)
