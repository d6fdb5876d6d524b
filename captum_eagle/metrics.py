r"""Faithfulness and localisation metrics for any image attribution map.

Every metric here takes a plain attribution map, so Eagle's region maps and Captum's pixel maps
(IntegratedGradients, Saliency, FeatureAblation, ...) are scored by the same protocol
(``docs/method.md``, "Evaluation protocol"):

- :func:`insertion_curve` / :func:`deletion_curve`: reveal (or remove) pixels in decreasing
  attribution order in ``K`` equal-area steps and record the target tokens' probabilities after each
  step. The result is a :class:`Curve` (plot it, take its ``auc`` or ``highest``, restrict it to
  sensitive tokens or to one word of the answer).
- :func:`average_highest_score` and :func:`average_auc`: summaries over samples.
- :func:`sensitive_tokens`: tokens that the image supports (``p(full) − p(masked) > 0.2``, the
  authors' signed rule; ``rule="absolute"`` for ``|Δ|``).
- :func:`word_curves`: per-word curves sliced from one sentence-level run (no extra forwards).
- :func:`pointing_game`: does the map's maximum fall on the object (box or mask level)?
- :func:`amcr` and :func:`csr`: how few regions a hallucination mitigation had to remove
  (:mod:`captum_eagle.hallucination` runs it).

Accepted attribution shapes: ``(1, 3, H, W)``, ``(1, 1, H, W)``, ``(3, H, W)``, ``(1, H, W)`` and
``(H, W)``, with ``H, W`` those of ``sample.image``. Three-channel maps are summed over channels
(Captum's convention for pixel relevance). A region-level map is simply a pixel map that is constant
on each region.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from captum_eagle._deprecation import renamed_keywords
from captum_eagle.checks import check_bool, check_forward, check_real
from captum_eagle.maps import (
    baseline_image,
    box_mask,
    cumulative_area,
    pixel_ranks,
    pixel_scores,
)
from captum_eagle.masks import FeatureMask, as_feature_mask

__all__ = [
    "CORRECTION_UNITS",
    "CURVE_PROTOCOLS",
    "DEFAULT_STEPS",
    "SENSITIVITY_RULES",
    "SENSITIVITY_THRESHOLD",
    "Curve",
    "PointingResult",
    "amcr",
    "average_auc",
    "average_highest_score",
    "csr",
    "deletion_curve",
    "insertion_curve",
    "pointing_game",
    "sensitive_tokens",
    "word_curves",
]

DEFAULT_STEPS = 32
"""Steps of a curve when neither ``steps`` nor ``feature_mask`` is given."""

SENSITIVITY_THRESHOLD = 0.2
"""Probability change (full vs fully masked image) above which a token counts as sensitive."""

SENSITIVITY_RULES = ("signed", "absolute")
"""How a token's change is measured: ``"signed"`` (the authors' rule, ``p(full) − p(masked)``,
only tokens the image supports) or ``"absolute"`` (``|p(full) − p(masked)|``, tokens the image
supports or suppresses)."""

CURVE_PROTOCOLS = ("pixels", "paper")
"""How insertion/deletion curves step: ``"pixels"`` (default, one protocol for every map) or
``"paper"`` (the authors' evaluation, to reproduce their numbers); see :func:`insertion_curve`."""

CurveKind = Literal["insertion", "deletion"]
CurveProtocol = Literal["pixels", "paper"]
SensitivityRule = Literal["signed", "absolute"]
Baselines = float | torch.Tensor


@dataclass(frozen=True)
class Curve:
    r"""An insertion or deletion curve: target-token probabilities after each of ``K`` steps.

    Attributes:
        kind (str): ``"insertion"`` (from the all-baseline image to the full image) or
            ``"deletion"`` (from the full image to the all-baseline image).
        fractions (Tensor): ``(K + 1,)`` inserted (insertion) or deleted (deletion) fraction of the
            image area after each step; starts at 0 and ends at 1.
        token_probabilities (Tensor): ``(K + 1, T)`` probability of each target token after each
            step.
        target_tokens (list[str]): the ``T`` target tokens as text.
        target_indices (Tensor): ``(T,)`` positions of those tokens in the answer (as in
            ``sample.target_indices``), used by :meth:`restrict` and :func:`word_curves`.

    A curve restricted to no token at all (e.g. :meth:`sensitive` when no token is sensitive) has
    ``T = 0``; its ``probabilities``, ``auc`` and ``highest`` are NaN, meaning "undefined for this
    sample", and :func:`average_auc` / :func:`average_highest_score` leave it out.

    Examples::

        >>> import torch
        >>> from captum_eagle.metrics import Curve
        >>> curve = Curve(
        ...     "insertion",
        ...     fractions=torch.tensor([0.0, 0.5, 1.0]),
        ...     token_probabilities=torch.tensor([[0.1, 0.3], [0.7, 0.3], [0.9, 0.3]]),
        ...     target_tokens=["cat", "."],
        ...     target_indices=torch.tensor([0, 1]),
        ... )
        >>> round(curve.auc, 3), round(curve.highest, 3)
        (0.45, 0.6)
        >>> curve.sensitive().target_tokens
        ['cat']
    """

    kind: CurveKind
    fractions: torch.Tensor
    token_probabilities: torch.Tensor
    target_tokens: list[str]
    target_indices: torch.Tensor

    def __post_init__(self) -> None:
        if self.kind not in ("insertion", "deletion"):
            raise ValueError(f"kind must be 'insertion' or 'deletion'; got {self.kind!r}.")
        for name in ("fractions", "token_probabilities", "target_indices"):
            if not isinstance(getattr(self, name), torch.Tensor):
                raise TypeError(
                    f"{name} must be a tensor; got {type(getattr(self, name)).__name__}. Use "
                    "Curve.from_dict for plain lists."
                )
        steps = self.fractions.shape[0]
        if self.fractions.ndim != 1 or steps < 2:
            raise ValueError(
                f"fractions must be (K + 1,) with K >= 1; got {tuple(self.fractions.shape)}."
            )
        ends = (float(self.fractions[0]), float(self.fractions[-1]))
        if abs(ends[0]) > 1e-6 or abs(ends[1] - 1) > 1e-6 or (self.fractions.diff() < 0).any():
            raise ValueError(
                "fractions must rise from 0 to 1 (the changed area after each step); got "
                f"{self.fractions.tolist()}."
            )
        if self.token_probabilities.ndim != 2 or self.token_probabilities.shape[0] != steps:
            raise ValueError(
                f"token_probabilities must be ({steps}, T); "
                f"got {tuple(self.token_probabilities.shape)}."
            )
        n_tokens = self.token_probabilities.shape[1]
        if len(self.target_tokens) != n_tokens or self.target_indices.numel() != n_tokens:
            raise ValueError(
                f"The curve has {n_tokens} token columns but {len(self.target_tokens)} "
                f"target_tokens and {self.target_indices.numel()} target_indices."
            )

    # -- summaries ---------------------------------------------------------------------------
    @property
    def steps(self) -> int:
        """Number of steps ``K`` (the curve has ``K + 1`` points)."""
        return self.fractions.shape[0] - 1

    @property
    def n_tokens(self) -> int:
        """Number of target tokens ``T`` the curve averages over (0 after an empty restriction)."""
        return self.token_probabilities.shape[1]

    @property
    def probabilities(self) -> torch.Tensor:
        """Mean target-token probability after each step, ``(K + 1,)`` (NaN if ``T = 0``)."""
        if self.n_tokens == 0:
            return torch.full_like(self.fractions, math.nan)
        return self.token_probabilities.mean(dim=1)

    @property
    def auc(self) -> float:
        """Area under :attr:`probabilities` over :attr:`fractions` (trapezoid rule), in [0, 1]."""
        return float(torch.trapezoid(self.probabilities, self.fractions))

    @property
    def highest(self) -> float:
        """Maximum of :attr:`probabilities` (the per-sample term of the Average Highest Score)."""
        return float(self.probabilities.max())

    @property
    def full_image_probabilities(self) -> torch.Tensor:
        """Per-token probabilities on the unmasked image, ``(T,)``."""
        return self.token_probabilities[-1 if self.kind == "insertion" else 0]

    @property
    def baseline_probabilities(self) -> torch.Tensor:
        """Per-token probabilities on the all-baseline image, ``(T,)``."""
        return self.token_probabilities[0 if self.kind == "insertion" else -1]

    # -- restrictions ------------------------------------------------------------------------
    def restrict(self, tokens: torch.Tensor | Sequence[int]) -> Curve:
        r"""The same curve over a subset of its tokens (no forward is re-run).

        Args:
            tokens: either a ``(T,)`` boolean mask over this curve's tokens (e.g. the output of
                :func:`sensitive_tokens`), or positions in the *answer* (as in
                ``sample.word_spans()`` or ``sample.with_target_tokens(...).target_indices``),
                which must all be targets of this curve.

        Returns:
            Curve: with the selected token columns, in this curve's order. Selecting nothing gives
            a curve with ``T = 0`` (NaN summaries).
        """
        selection = torch.as_tensor(tokens)
        if selection.dtype == torch.bool:
            if selection.shape != (self.n_tokens,):
                raise ValueError(
                    f"A boolean token mask must have shape ({self.n_tokens},) for this curve; "
                    f"got {tuple(selection.shape)}."
                )
            columns = selection.nonzero().flatten()
        else:
            if selection.is_floating_point() or selection.is_complex():
                raise TypeError(
                    "tokens must be a boolean mask or integer answer positions; got "
                    f"{selection.dtype}."
                )
            wanted = selection.long().flatten().tolist()
            have = self.target_indices.tolist()
            missing = [i for i in wanted if i not in have]
            if missing:
                raise ValueError(
                    f"Answer positions {missing} are not targets of this curve (its targets are "
                    f"{have}); compute the curve on a sample whose targets include them, e.g. "
                    "sample.with_target_tokens(None)."
                )
            columns = torch.tensor(
                [column for column, index in enumerate(have) if index in wanted], dtype=torch.long
            )
        return Curve(
            kind=self.kind,
            fractions=self.fractions,
            token_probabilities=self.token_probabilities[:, columns],
            target_tokens=[self.target_tokens[i] for i in columns.tolist()],
            target_indices=self.target_indices[columns],
        )

    def sensitive(
        self,
        tokens: torch.Tensor | None = None,
        *,
        threshold: float = SENSITIVITY_THRESHOLD,
        rule: SensitivityRule = "signed",
    ) -> Curve:
        r"""The curve over sensitive tokens only (the protocol's "sensitive-token variant").

        Args:
            tokens (Tensor, optional): a ``(T,)`` boolean mask, e.g. from :func:`sensitive_tokens`.
                Default: read it from this curve's end points, which are exactly the full image
                and the all-baseline image (no forward needed).
            threshold (float): a token is sensitive if its probability changes by strictly more
                than this between the two end points, in ``[0, 1]``. Default: 0.2. Ignored if
                ``tokens`` is given.
            rule (str): ``"signed"`` (default, the authors' rule): ``p(full) − p(masked) >
                threshold``, only tokens that the image supports; ``"absolute"``:
                ``|p(full) − p(masked)| > threshold``, also tokens that the image suppresses.

        Returns:
            Curve: restricted to the sensitive tokens. If none is sensitive, ``T = 0`` and the
            curve's ``auc`` / ``highest`` are NaN: the sample has no image-dependent token and
            is left out of :func:`average_auc` / :func:`average_highest_score`.
        """
        if tokens is None:
            tokens = _is_sensitive(
                self.full_image_probabilities, self.baseline_probabilities, threshold, rule
            )
        tokens = torch.as_tensor(tokens)
        if tokens.dtype != torch.bool:
            raise TypeError(
                f"tokens must be a ({self.n_tokens},) boolean mask (sensitive_tokens(...)); got "
                f"{tokens.dtype}. To select answer positions use curve.restrict(positions)."
            )
        return self.restrict(tokens)

    # -- output ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-Python copy (lists and floats) for JSON; ``Curve.from_dict`` inverts it."""
        return {
            "kind": self.kind,
            "fractions": self.fractions.tolist(),
            "token_probabilities": self.token_probabilities.tolist(),
            "target_tokens": list(self.target_tokens),
            "target_indices": self.target_indices.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Curve:
        """Rebuild a curve saved with :meth:`to_dict`."""
        keys = ("kind", "fractions", "token_probabilities", "target_tokens", "target_indices")
        if not isinstance(data, dict):
            raise TypeError(
                f"Curve.from_dict needs a dict from to_dict(); got {type(data).__name__}."
            )
        missing = [key for key in keys if key not in data]
        if missing:
            raise ValueError(f"The saved curve lacks {missing}; is this a Curve.to_dict() output?")
        return cls(
            kind=data["kind"],
            fractions=torch.tensor(data["fractions"], dtype=torch.float32),
            token_probabilities=torch.tensor(data["token_probabilities"], dtype=torch.float32),
            target_tokens=list(data["target_tokens"]),
            target_indices=torch.tensor(data["target_indices"], dtype=torch.long),
        )

    def plot(self, ax: Any = None, *, label: str | None = None, tokens: bool = False) -> Any:
        r"""Draw the curve and return the axes (:func:`captum_eagle.viz.plot_curve`).

        Args:
            ax: matplotlib axes to draw on (default: a new figure).
            label (str, optional): legend label; default ``"<kind> (AUC …)"``.
            tokens (bool): also draw each token's probability as a thin line. Default: False.
        """
        from captum_eagle.viz import plot_curve

        return plot_curve(self, ax, label=label, tokens=tokens)[1]


@dataclass(frozen=True)
class PointingResult:
    r"""Outcome of the pointing game for one map and one object.

    Attributes:
        hit (bool): the authors' rule: the map's maximum inside the object equals its global
            maximum (any tied maximum inside counts, which favours coarse region maps).
        tie_aware (float): fraction of the globally maximal pixels that lie inside the object, i.e.
            the expected hit when ties are broken at random. Equals ``float(hit)`` without ties.
    """

    hit: bool
    tie_aware: float


# -- curves ------------------------------------------------------------------------------------
def _resolve_steps(steps: int | None, feature_mask: Any, image: torch.Tensor) -> int:
    n_pixels = image.shape[-2] * image.shape[-1]
    if steps is None:
        if feature_mask is None:
            steps = DEFAULT_STEPS
        else:
            steps = as_feature_mask(feature_mask, image).n_regions
    elif feature_mask is not None:
        as_feature_mask(feature_mask, image)
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer):
        raise TypeError(f"steps must be an int; got {type(steps).__name__}.")
    if steps < 1:
        raise ValueError(f"steps (K) must be >= 1; got {steps}. Use e.g. steps=32.")
    if steps > n_pixels:
        raise ValueError(
            f"steps (K) = {steps} exceeds the image's {n_pixels} pixels; each step must reveal at "
            f"least one pixel. Use steps <= {n_pixels}."
        )
    return int(steps)


def _curve(
    kind: CurveKind,
    wrapper: Any,
    sample: Any,
    attribution: Any,
    steps: int | None,
    feature_mask: FeatureMask | torch.Tensor | None,
    baselines: Baselines,
    protocol: CurveProtocol,
    show_progress: bool,
) -> Curve:
    if protocol not in CURVE_PROTOCOLS:
        raise ValueError(f"protocol must be one of {CURVE_PROTOCOLS}; got {protocol!r}.")
    check_bool("show_progress", show_progress)
    if protocol == "paper" and hasattr(attribution, "trajectories"):
        return _search_curve(kind, attribution, sample)
    check_forward(wrapper, sample)
    image = sample.image.detach().cpu()
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"sample.image must be (1, C, H, W); got {tuple(image.shape)}.")
    height, width = image.shape[-2:]
    rank = pixel_ranks(attribution, (height, width)).view(1, 1, height, width)
    n_steps = _resolve_steps(steps, feature_mask, image)
    masked = baseline_image(baselines, image)
    n_pixels = height * width
    # Equal-area steps: after step k the first round(k * P / K) pixels of the ranking are changed
    # ("pixels"), or floor(k * P / K) as in the authors' evaluation of pixel maps ("paper").
    steps_done = torch.arange(n_steps + 1, dtype=torch.float64) * n_pixels / n_steps
    counts = (torch.round(steps_done) if protocol == "pixels" else torch.floor(steps_done)).long()
    batch_size = max(1, int(getattr(wrapper, "batch_size", 16)))
    chunks = range(0, n_steps + 1, batch_size)
    if show_progress:
        chunks = tqdm(chunks, desc=f"{kind} curve", unit="batch")
    rows = []
    with torch.no_grad():
        for start in chunks:
            changed = rank < counts[start : start + batch_size].view(-1, 1, 1, 1)
            if kind == "insertion":
                images = torch.where(changed, image, masked)
            else:
                images = torch.where(changed, masked, image)
            rows.append(wrapper.token_probabilities(images, sample).detach().float().cpu())
    return Curve(
        kind=kind,
        fractions=(counts.double() / n_pixels).float(),
        token_probabilities=torch.cat(rows, dim=0),
        target_tokens=list(sample.target_tokens),
        target_indices=torch.as_tensor(sample.target_indices).long().cpu(),
    )


def _search_curve(kind: CurveKind, result: Any, sample: Any) -> Curve:
    """An Eagle result's own trajectory along its order (no forward), x = cumulative area."""
    if list(result.target_tokens) != list(sample.target_tokens):
        raise ValueError(
            f"The Eagle result explains {list(result.target_tokens)} but the sample targets "
            f"{list(sample.target_tokens)}; pass the sample the result was computed on."
        )
    areas = torch.bincount(result.feature_mask.flatten(), minlength=len(result.order))
    trajectories = result.trajectories if kind == "insertion" else result.removal_trajectories
    return Curve(
        kind=kind,
        fractions=cumulative_area(areas[result.order]).float(),
        token_probabilities=trajectories.T.detach().float().cpu(),
        target_tokens=list(sample.target_tokens),
        target_indices=torch.as_tensor(sample.target_indices).long().cpu(),
    )


@renamed_keywords(baseline="baselines")
def insertion_curve(
    wrapper: Any,
    sample: Any,
    attribution: Any,
    *,
    steps: int | None = None,
    feature_mask: FeatureMask | torch.Tensor | None = None,
    baselines: Baselines = 0.0,
    protocol: CurveProtocol = "pixels",
    show_progress: bool = False,
) -> Curve:
    r"""Insertion curve: reveal pixels in decreasing attribution order, from the baseline image.

    Point 0 is the all-baseline image, point ``K`` the full image. The ``K + 1`` images are scored
    in batches of ``wrapper.batch_size``. Higher ``auc`` is better.

    Args:
        wrapper (MLLMForwardWrapper): the forward function; any object with
            ``token_probabilities(images, sample) -> (B, T)`` (and optionally ``batch_size``).
        sample (PreparedSample): the prompt, answer and target tokens; ``sample.image`` is the
            image the map explains.
        attribution (Tensor): the map to evaluate, ``(1, 3, H, W)``, ``(1, 1, H, W)``,
            ``(3, H, W)``, ``(1, H, W)`` or ``(H, W)`` with the spatial size of ``sample.image``,
            or an :class:`~captum_eagle.EagleResult` (its map). Three channels are summed. Pixels
            are ranked by decreasing value; ties go in row-major pixel order, so results are
            deterministic.
        steps (int, optional): number of equal-area steps ``K``; step ``k`` has changed
            ``round(k * H * W / K)`` pixels. Default: the number of regions of ``feature_mask``
            if given (the protocol's default), else 32.
        feature_mask (FeatureMask or Tensor, optional): only used for the default ``steps``.
        baselines (float or Tensor): value of masked pixels, a number or a tensor broadcastable
            to ``(1, 3, H, W)``, in [0, 1] (see :func:`captum_eagle.maps.baseline_image`).
            Default: 0.0 (black, as in the paper). The old keyword ``baseline=`` still works for
            one release, with a ``DeprecationWarning``.
        protocol (str): ``"pixels"`` (default): every map, Eagle's included, is ranked pixel by
            pixel and scored on ``K`` equal-area steps (``round(k·H·W/K)`` pixels), so all
            methods are compared on the same footing. ``"paper"`` reproduces the authors'
            evaluation: an :class:`~captum_eagle.EagleResult` passed as ``attribution`` is
            scored on its own search trajectory (``result.trajectories``, or
            ``result.removal_trajectories`` for deletion; no forward), step ``r`` inserting
            region ``π_r`` and ``x`` the cumulative superpixel area; any other map is scored on
            ``K`` pixel steps of ``floor(k·H·W/K)`` pixels. Under ``"paper"`` Eagle's steps follow
            its regions (unequal areas, teacher-forced probabilities from the search) while the
            baselines step by pixels, which is how the paper's tables were made; use
            ``"pixels"`` for a like-for-like comparison.
        show_progress (bool): show a tqdm bar over the forward batches. Default: False.

    Returns:
        Curve: ``kind="insertion"``; ``fractions`` is the revealed area fraction.

    Examples::

        >>> import torch
        >>> from PIL import Image
        >>> from captum_eagle import FeatureMask, MLLMForwardWrapper
        >>> from captum_eagle.metrics import insertion_curve
        >>> from captum_eagle.testing import tiny_model
        >>> wrapper = MLLMForwardWrapper(*tiny_model("llava"))
        >>> sample = wrapper.prepare(Image.new("RGB", (32, 32)), "describe the image .", "a cat")
        >>> mask = FeatureMask.grid(sample.image, rows=2, cols=2)
        >>> curve = insertion_curve(wrapper, sample, torch.rand(32, 32), feature_mask=mask)
        >>> curve.fractions.tolist(), tuple(curve.token_probabilities.shape)
        ([0.0, 0.25, 0.5, 0.75, 1.0], (5, 2))
        >>> 0.0 <= curve.auc <= 1.0
        True
    """
    options = (steps, feature_mask, baselines, protocol, show_progress)
    return _curve("insertion", wrapper, sample, attribution, *options)


@renamed_keywords(baseline="baselines")
def deletion_curve(
    wrapper: Any,
    sample: Any,
    attribution: Any,
    *,
    steps: int | None = None,
    feature_mask: FeatureMask | torch.Tensor | None = None,
    baselines: Baselines = 0.0,
    protocol: CurveProtocol = "pixels",
    show_progress: bool = False,
) -> Curve:
    r"""Deletion curve: set pixels to the baseline in decreasing attribution order.

    Point 0 is the full image, point ``K`` the all-baseline image; same order and steps as
    :func:`insertion_curve`. Lower ``auc`` is better.

    Args:
        wrapper, sample, attribution, steps, feature_mask, baselines, protocol, show_progress: as in
            :func:`insertion_curve` (same meanings and defaults).

    Returns:
        Curve: ``kind="deletion"``; ``fractions`` is the deleted area fraction.

    Examples::

        >>> import torch
        >>> from types import SimpleNamespace
        >>> from captum_eagle.metrics import deletion_curve
        >>> class Brightness:  # a toy forward: p("cat") = mean brightness of the image
        ...     def token_probabilities(self, images, sample):
        ...         return images.mean(dim=(1, 2, 3))[:, None]
        >>> sample = SimpleNamespace(
        ...     image=torch.ones(1, 3, 4, 4), target_tokens=["cat"], target_indices=[0]
        ... )
        >>> curve = deletion_curve(Brightness(), sample, torch.rand(4, 4), steps=4)
        >>> curve.probabilities.tolist()
        [1.0, 0.75, 0.5, 0.25, 0.0]
    """
    options = (steps, feature_mask, baselines, protocol, show_progress)
    return _curve("deletion", wrapper, sample, attribution, *options)


# -- token selections --------------------------------------------------------------------------
@renamed_keywords(baseline="baselines")
def sensitive_tokens(
    wrapper: Any,
    sample: Any,
    *,
    baselines: Baselines = 0.0,
    threshold: float = SENSITIVITY_THRESHOLD,
    rule: SensitivityRule = "signed",
) -> torch.Tensor:
    r"""Target tokens whose probability depends on the image (the protocol's sensitive tokens).

    Runs two forwards (full image, all-baseline image). An insertion or deletion curve already holds
    both, so ``curve.sensitive()`` gives the same selection without a forward.

    Args:
        wrapper (MLLMForwardWrapper): the forward function.
        sample (PreparedSample): the prompt, answer and target tokens.
        baselines (float or Tensor): value of masked pixels (see :func:`insertion_curve`).
            Default: 0.0.
        threshold (float): a token is sensitive if its probability changes by strictly more
            than this, in ``[0, 1]``. Default: 0.2.
        rule (str): ``"signed"`` (default, the authors' rule): ``p(full) − p(masked) >
            threshold``, only tokens that the image supports; ``"absolute"``:
            ``|p(full) − p(masked)| > threshold``.

    Returns:
        BoolTensor: ``(T,)``, one flag per target token. All ``False`` means no token is sensitive;
        curves restricted to it have NaN summaries (see :meth:`Curve.sensitive`).

    Examples::

        >>> import torch
        >>> from types import SimpleNamespace
        >>> from captum_eagle.metrics import sensitive_tokens
        >>> class Toy:  # token 0 reads the image, token 1 ignores it
        ...     def token_probabilities(self, images, sample):
        ...         brightness = images.mean(dim=(1, 2, 3))
        ...         return torch.stack([brightness, torch.full_like(brightness, 0.5)], dim=1)
        >>> sensitive_tokens(Toy(), SimpleNamespace(image=torch.ones(1, 3, 4, 4))).tolist()
        [True, False]
    """
    _check_sensitivity(threshold, rule)
    check_forward(wrapper, sample)
    image = sample.image.detach().cpu()
    images = torch.cat([image, baseline_image(baselines, image)], dim=0)
    with torch.no_grad():
        probabilities = wrapper.token_probabilities(images, sample).detach().float().cpu()
    return _is_sensitive(probabilities[0], probabilities[1], threshold, rule)


def _check_sensitivity(threshold: float, rule: str) -> None:
    if rule not in SENSITIVITY_RULES:
        raise ValueError(f"rule must be one of {SENSITIVITY_RULES}; got {rule!r}.")
    # A probability changes by at most 1: a larger threshold could never select a token.
    check_real("threshold", threshold, low=0.0, high=1.0)


def _is_sensitive(
    full: torch.Tensor, masked: torch.Tensor, threshold: float, rule: str
) -> torch.Tensor:
    _check_sensitivity(threshold, rule)
    change = full - masked
    return (change if rule == "signed" else change.abs()) > threshold


def word_curves(curve: Curve, sample: Any) -> list[tuple[str, Curve]]:
    r"""Split a curve into one curve per word of the answer, by slicing token columns.

    Equivalent to re-running the curve with ``sample.with_target_tokens(word)`` and the same map,
    without any forward. (When each word has its own map, e.g. Eagle run per object word, compute
    each word's curve with its map on ``sample.with_target_tokens(word)`` instead.)

    Args:
        curve (Curve): a curve computed on ``sample`` (or a sample with the same answer) whose
            targets include every token of every word, e.g. all answer tokens (the default).
        sample (PreparedSample): gives the words via ``sample.word_spans()``.

    Returns:
        list of (str, Curve): ``(word, curve over the word's tokens)`` in answer order; a repeated
        word appears once per occurrence.

    Examples::

        >>> import torch
        >>> from PIL import Image
        >>> from captum_eagle import MLLMForwardWrapper
        >>> from captum_eagle.metrics import insertion_curve, word_curves
        >>> from captum_eagle.testing import tiny_model
        >>> wrapper = MLLMForwardWrapper(*tiny_model("llava"))
        >>> sample = wrapper.prepare(Image.new("RGB", (32, 32)), "describe the image .", "a cat")
        >>> curve = insertion_curve(wrapper, sample, torch.rand(32, 32), steps=4)
        >>> [(word, c.target_tokens) for word, c in word_curves(curve, sample)]
        [('a', ['a']), ('cat', [' cat'])]
    """
    if not isinstance(curve, Curve):
        raise TypeError(
            f"curve must be a Curve (insertion_curve(...)); got {type(curve).__name__}."
        )
    if not callable(getattr(sample, "word_spans", None)):
        raise TypeError(
            "sample must be the PreparedSample the curve was computed on; got "
            f"{type(sample).__name__}."
        )
    return [(word, curve.restrict(indices)) for word, indices in sample.word_spans()]


# -- summaries over samples --------------------------------------------------------------------
def _defined(values: list[float]) -> float:
    kept = [value for value in values if not math.isnan(value)]
    return float(np.mean(kept)) if kept else math.nan


def _as_curves(curves: Iterable[Curve] | Curve) -> list[Curve]:
    curves = [curves] if isinstance(curves, Curve) else list(curves)
    if not curves:
        raise ValueError("No curves given; pass one curve per sample.")
    for curve in curves:
        if not isinstance(curve, Curve):
            raise TypeError(f"Expected Curve objects; got {type(curve).__name__}.")
    return curves


def average_highest_score(curves: Iterable[Curve] | Curve) -> float:
    r"""Average Highest Score: the maximum of each insertion curve, averaged over samples.

    Args:
        curves (iterable of Curve): one insertion curve per sample (sentence level, per word, or
            restricted to sensitive tokens). Curves over no token (NaN) are left out.

    Returns:
        float: the mean; NaN if every curve is over no token. Higher is better.

    Examples::

        >>> import torch
        >>> from captum_eagle.metrics import Curve, average_highest_score
        >>> def curve(values):
        ...     return Curve("insertion", torch.tensor([0.0, 0.5, 1.0]),
        ...                  torch.tensor(values)[:, None], ["cat"], torch.tensor([0]))
        >>> round(average_highest_score([curve([0.1, 0.8, 0.6]), curve([0.2, 0.3, 0.4])]), 3)
        0.6
    """
    curves = _as_curves(curves)
    deletions = sum(curve.kind != "insertion" for curve in curves)
    if deletions:
        raise ValueError(
            f"The Average Highest Score is defined on insertion curves; {deletions} of the "
            f"{len(curves)} curves are deletion curves. Pass insertion_curve(...) results."
        )
    return _defined([curve.highest for curve in curves])


def average_auc(curves: Iterable[Curve] | Curve) -> float:
    r"""Mean area under the curve over samples (insertion: higher is better; deletion: lower).

    Args:
        curves (iterable of Curve): one curve per sample, all of the same kind. Curves over no token
            (NaN) are left out.

    Returns:
        float: the mean AUC; NaN if every curve is over no token.

    Examples::

        >>> import torch
        >>> from captum_eagle.metrics import Curve, average_auc
        >>> flat = Curve("deletion", torch.tensor([0.0, 1.0]), torch.full((2, 1), 0.25),
        ...              ["cat"], torch.tensor([0]))
        >>> average_auc([flat, flat])
        0.25
    """
    curves = _as_curves(curves)
    kinds = {curve.kind for curve in curves}
    if len(kinds) > 1:
        raise ValueError(
            "Insertion and deletion curves are mixed; average each kind separately (higher "
            "insertion AUC is better, lower deletion AUC is better)."
        )
    return _defined([curve.auc for curve in curves])


# -- hallucination mitigation ------------------------------------------------------------------
CORRECTION_UNITS = ("area", "regions")
"""What AMCR and CSR measure the removal in: image ``"area"`` fraction (the authors' unit) or
fraction of ``"regions"``."""


def _removed_fractions(results: Iterable[Any], by: str) -> list[float | None]:
    if by not in CORRECTION_UNITS:
        raise ValueError(f"by must be one of {CORRECTION_UNITS}; got {by!r}.")
    values: list[float | None] = []
    for item in results:
        if item is None:
            values.append(None)
        elif hasattr(item, "corrected"):  # a captum_eagle.hallucination.HallucinationResult
            removed = item.area_removed if by == "area" else item.fraction_removed
            values.append(removed if item.corrected else None)
        else:
            check_real("A removed fraction", item, low=0.0, high=1.0)
            values.append(float(item))
    if not values:
        raise ValueError("No cases given; pass at least one HallucinationResult or fraction.")
    return values


def amcr(results: Iterable[Any], *, by: str = "area") -> float:
    r"""Average Minimum Correction Ratio: mean fraction removed when the answer first turned
    correct (lower is better).

    Cases never corrected count as 1.0. A case that only the fully blank image would correct
    (all ``N`` regions removed) is not corrected: removals ``0 … N − 1`` are tried, as in the
    authors' protocol (:func:`~captum_eagle.hallucination.mitigate` stops at ``N − 1``).

    Args:
        results: :class:`~captum_eagle.hallucination.HallucinationResult` objects, or removed
            fractions in ``[0, 1]`` (in the unit you chose) with ``None`` for a case that was
            never corrected.
        by (str): ``"area"`` (default, the authors' unit): fraction of the image area removed;
            ``"regions"``: fraction of the regions removed (report it as a second column). Plain
            fractions are taken as given.

    Returns:
        float

    Examples::

        >>> from captum_eagle.metrics import amcr
        >>> amcr([0.05, 0.1, None])
        0.3833333333333333
    """
    values = _removed_fractions(results, by)
    return sum(1.0 if value is None else value for value in values) / len(values)


def csr(results: Iterable[Any], threshold: float = 0.10, *, by: str = "area") -> float:
    r"""Correction Success Rate: share of ALL cases corrected with at most ``threshold`` removed
    (higher is better).

    Uncorrected cases stay in the denominator. (The authors' code drops them, which inflates the
    rate; we do not.) As in :func:`amcr`, a flip on the fully blank image is no correction.

    Args:
        results: :class:`~captum_eagle.hallucination.HallucinationResult` objects, or removed
            fractions with ``None`` for a case that was never corrected.
        threshold (float): the largest removed fraction that counts. Default: 0.10.
        by (str): ``"area"`` (default) or ``"regions"``, as in :func:`amcr`.

    Returns:
        float

    Examples::

        >>> from captum_eagle.metrics import csr
        >>> csr([0.05, 0.1, 0.5, None])
        0.5
    """
    check_real("threshold", threshold, low=0.0, high=1.0)
    values = _removed_fractions(results, by)
    hits = sum(1 for value in values if value is not None and value <= threshold + 1e-12)
    return hits / len(values)


# -- pointing game -----------------------------------------------------------------------------
def _object_region(
    size: tuple[int, int],
    box: Sequence[float] | torch.Tensor | None,
    mask: torch.Tensor | np.ndarray | None,
) -> torch.Tensor:
    height, width = size
    if (box is None) == (mask is None):
        raise ValueError(
            "Pass exactly one of box=(x0, y0, x1, y1) (box level) or mask=(H, W) bool (mask "
            f"level); got {'neither' if box is None else 'both'}."
        )
    if mask is not None:
        region = torch.as_tensor(np.asarray(mask.cpu() if isinstance(mask, torch.Tensor) else mask))
        region = region.squeeze() if region.ndim > 2 else region
        if tuple(region.shape) != (height, width):
            raise ValueError(
                f"The object mask is {tuple(region.shape)} but the map is {(height, width)}; "
                "draw the mask on sample.image (wrapper.resize_labels maps a mask of the "
                "original image to it)."
            )
        if region.dtype != torch.bool:
            if not ((region == 0) | (region == 1)).all():
                raise ValueError("The object mask must be boolean (or 0/1 values).")
            region = region.bool()
        if not region.any():
            raise ValueError("The object mask is empty; the object has no pixel in this image.")
        return region
    assert box is not None, "exactly one of box and mask was given"
    return box_mask(box, size)


def pointing_game(
    attribution: Any,
    *,
    box: Sequence[float] | torch.Tensor | None = None,
    mask: torch.Tensor | np.ndarray | None = None,
) -> PointingResult:
    r"""Pointing game for one object: does the map's maximum fall on the object?

    Args:
        attribution (Tensor): the map, ``(1, 3, H, W)``, ``(1, 1, H, W)``, ``(3, H, W)``,
            ``(1, H, W)`` or ``(H, W)``; three channels are summed. Maxima are compared exactly
            (a region map's pixels share their region's value bit for bit).
        box (sequence of 4 numbers, optional): box level: ``(x0, y0, x1, y1)`` in pixel
            coordinates of the map, ``x`` = column, ``y`` = row; ``x0, y0`` inclusive, ``x1, y1``
            exclusive (so the box covers ``map[y0:y1, x0:x1]``). Fractional coordinates are widened
            to the pixels they touch (floor of ``x0, y0``, ceil of ``x1, y1``) and the box is
            clamped to the map. Must be non-empty and overlap the map.
        mask (Tensor or ndarray, optional): mask level: ``(H, W)`` boolean object mask.
            Give exactly one of ``box`` and ``mask``.

    Returns:
        PointingResult: ``hit`` by the authors' rule (a maximal pixel inside; ties count) and
        ``tie_aware``, the fraction of maximal pixels inside. A constant map is maximal everywhere:
        ``hit`` is True and ``tie_aware`` is the object's area fraction.

    Examples::

        >>> import torch
        >>> from captum_eagle.metrics import pointing_game
        >>> attribution = torch.zeros(4, 4)
        >>> attribution[0, 0] = attribution[3, 3] = 1.0  # two tied maxima
        >>> pointing_game(attribution, box=(0, 0, 2, 2))
        PointingResult(hit=True, tie_aware=0.5)
    """
    scores = pixel_scores(attribution)
    region = _object_region((scores.shape[-2], scores.shape[-1]), box, mask)
    maxima = scores == scores.max()
    inside = int((maxima & region).sum())
    return PointingResult(hit=inside > 0, tie_aware=inside / int(maxima.sum()))
