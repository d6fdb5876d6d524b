r"""Modality reliance: how much of an answer token's probability came from the image vs the prompt.

A joint explanation orders image regions and prompt words together: ``π`` over ``N`` features.
For target token ``t`` its insertion trajectory is ``p_t(π_:r)``, ``r = 0..N`` (``r = 0``: blank
image and every prompt word replaced by the baseline token; ``r = N``: the full input), and the
gain of the ``r``-th feature is ``gain_t(r) = p_t(π_:r) − p_t(π_:r−1)``.

**Definition.** The image reliance of token ``t`` is the image features' share of the positive
gains along the order::

    image_reliance_t = Σ_{r : π_r is a region} max(gain_t(r), 0) / Σ_r max(gain_t(r), 0)

and the text reliance is ``1 − image_reliance_t``. Both lie in ``[0, 1]``.

Why positive parts: a feature with a negative gain made the token *less* likely when it appeared;
it is evidence against the token, not a source of it. With signed gains the denominator is
``p_t(V) − p_t(∅)``, which can be near zero or negative while both modalities moved the token a
lot (e.g. an image region +0.6, a word −0.6), and the "share" then leaves ``[0, 1]`` or explodes.
The positive part counts where the probability came from; what pushed against it is the
:attr:`~captum_eagle.joint.JointResult.eagle` ``token_attribution`` (signed gains), not reliance.

**Zero gain.** When the positive gains sum to at most ``min_gain`` (default ``1e-3``, a tenth of a
percentage point of probability), nothing along the order raised the token — a flat trajectory (the
token is as likely with nothing as with everything) or a falling one — and the share is
undefined: the result is NaN for that token, never a made-up 0.5.

Examples::

    >>> import torch
    >>> trajectory = torch.tensor([[0.1, 0.7, 0.9]])  # region 0 first (+0.6), then word 1 (+0.2)
    >>> modality_reliance(trajectory, torch.tensor([0, 1]), torch.tensor([True, False]))
    tensor([0.7500])
"""

from __future__ import annotations

import torch


def modality_reliance(
    trajectories: torch.Tensor,
    order: torch.Tensor,
    is_image: torch.Tensor,
    *,
    min_gain: float = 1e-3,
) -> torch.Tensor:
    r"""Per-token image reliance (the image features' share of the positive insertion gains).

    Args:
        trajectories (Tensor): ``(T, N + 1)`` insertion probabilities ``p_t(π_:r)``, ``r = 0..N``.
        order (Tensor): ``(N,)`` feature ids, the order ``π``.
        is_image (Tensor): ``(N,)`` bool by feature id: ``True`` for an image region, ``False``
            for a prompt feature.
        min_gain (float): total positive gain at or below which a token's reliance is undefined
            (NaN). Default: ``1e-3``.

    Returns:
        Tensor: ``(T,)`` image reliance in ``[0, 1]``, NaN where nothing raised the token; the
        text reliance is ``1 −`` it.
    """
    if trajectories.ndim != 2:
        raise ValueError(f"trajectories must be (T, N + 1); got {tuple(trajectories.shape)}.")
    n_features = trajectories.shape[1] - 1
    if order.shape != (n_features,) or is_image.shape != (n_features,):
        raise ValueError(
            f"order {tuple(order.shape)} and is_image {tuple(is_image.shape)} must both be "
            f"({n_features},) for trajectories of {n_features + 1} points."
        )
    if sorted(order.tolist()) != list(range(n_features)):
        raise ValueError(f"order must be a permutation of 0..{n_features - 1}; got {order}.")
    if min_gain < 0:
        raise ValueError(f"min_gain must be >= 0; got {min_gain}.")
    positive = (trajectories[:, 1:] - trajectories[:, :-1]).clamp(min=0).double()
    total = positive.sum(dim=1)
    from_image = positive[:, is_image.bool()[order]].sum(dim=1)
    share = torch.where(total > min_gain, from_image / total, torch.nan)
    return share.to(trajectories.dtype)
