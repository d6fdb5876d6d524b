r"""Plots of Eagle explanations: overlays, method grids, curves, token influence, hallucinations.

Every helper returns ``(fig, ax)`` or ``(fig, axes)`` and draws with matplotlib's object API on a
:class:`matplotlib.figure.Figure` that pyplot does not manage, so it works under any backend
(``Agg`` included), never opens a window and never leaks figures in a loop. Pass ``show=True`` to
draw on a pyplot figure and call ``plt.show()``. In a notebook, leave ``fig`` as the last expression
of a cell (or ``display(fig)``) to see it.

Colours are colour-blind safe: ``viridis`` for attribution maps (``PuOr`` for signed maps), and the
Okabe-Ito palette for bars and curves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from captum.attr import visualization as captum_visualization
from matplotlib import colormaps, patheffects
from matplotlib import colors as mcolors
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.figure import Figure, SubFigure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from PIL import Image
from skimage.segmentation import find_boundaries

from captum_eagle.maps import cumulative_area, pixel_scores

if TYPE_CHECKING:
    from captum_eagle.attribution import EagleResult
    from captum_eagle.joint import JointResult
    from captum_eagle.metrics import Curve
    from captum_eagle.wrapper import PreparedSample

__all__ = [
    "LANGUAGE_PRIOR_COLOUR",
    "OKABE_ITO",
    "PERCEPTION_COLOUR",
    "plot_attribution",
    "plot_curve",
    "plot_curves",
    "plot_explanation",
    "plot_hallucination",
    "plot_joint",
    "plot_methods",
    "plot_token_influence",
]

#: The Okabe-Ito colour-blind safe palette (black first), for bars, curves and markers.
OKABE_ITO: tuple[str, ...] = (
    "#000000",
    "#E69F00",
    "#56B4E9",
    "#009E73",
    "#F0E442",
    "#0072B2",
    "#D55E00",
    "#CC79A7",
)
#: Bar colour of perception-driven tokens (Okabe-Ito blue).
PERCEPTION_COLOUR = "#0072B2"
#: Bar colour of language-prior-driven tokens (Okabe-Ito orange).
LANGUAGE_PRIOR_COLOUR = "#E69F00"
_CURVE_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
_MARK_COLOUR = "#D55E00"
_MAP_CMAP = "viridis"
_SIGNED_CMAP = "PuOr"
_FONT = 10

ImageInput = torch.Tensor | np.ndarray | Image.Image


# -- input conversion ------------------------------------------------------------------------------
def _image_hwc(image: ImageInput) -> np.ndarray:
    """An image as an ``(H, W, 3)`` float array in ``[0, 1]``."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    if isinstance(image, torch.Tensor):
        tensor = image.detach().float().cpu()
        if tensor.ndim == 4 and tensor.shape[0] == 1:
            tensor = tensor[0]
        if tensor.ndim != 3 or tensor.shape[0] != 3:
            raise ValueError(
                f"An image tensor must be (1, 3, H, W) or (3, H, W); got {tuple(image.shape)}."
            )
        return tensor.permute(1, 2, 0).clamp(0, 1).numpy()
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"A numpy image must be (H, W, 3); got shape {image.shape}.")
        if image.dtype == np.uint8:
            return image.astype(np.float32) / 255.0
        return np.clip(image.astype(np.float32), 0.0, 1.0)
    raise TypeError(
        f"Unsupported image type {type(image).__name__}; pass a (1, 3, H, W) tensor in [0, 1] "
        "(e.g. sample.image), an (H, W, 3) array or a PIL image."
    )


def _labels_hw(mask: torch.Tensor | np.ndarray) -> np.ndarray:
    """A region-id or boolean mask as an ``(H, W)`` array."""
    array = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise ValueError(f"A mask must be (H, W) or (1, 1, H, W); got shape {array.shape}.")
    return array


# -- figure plumbing -------------------------------------------------------------------------------
def _new_figure(figsize: tuple[float, float], show: bool) -> Figure:
    if show:
        import matplotlib.pyplot as plt

        return plt.figure(figsize=figsize, layout="constrained")
    return Figure(figsize=figsize, layout="constrained")


def _finish(show: bool) -> None:
    if show:
        import matplotlib.pyplot as plt

        plt.show()


def _axes_or_new(
    ax: Axes | None, figsize: tuple[float, float], show: bool
) -> tuple[Figure | SubFigure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig = _new_figure(figsize, show)
    return fig, fig.add_subplot()


def _show_image(ax: Axes, image: np.ndarray, title: str | None = None) -> None:
    ax.imshow(image, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=_FONT)


def _draw_boundaries(
    ax: Axes, labels: np.ndarray, colour: str = "white", alpha: float = 0.2
) -> None:
    edges = find_boundaries(labels, mode="inner")
    overlay = np.zeros((*labels.shape, 4), dtype=np.float32)
    overlay[..., :3] = mcolors.to_rgb(colour)
    overlay[..., 3] = edges * alpha
    ax.imshow(overlay, interpolation="nearest")


def _outlined() -> list[Any]:
    """A black outline that keeps white text readable on any colour."""
    return [patheffects.withStroke(linewidth=2.5, foreground="black")]


def _token_label(token: str) -> str:
    stripped = token.strip()
    return stripped if stripped else repr(token)


# -- overlays --------------------------------------------------------------------------------------
def plot_attribution(
    attribution: torch.Tensor | np.ndarray,
    image: ImageInput,
    ax: Axes | None = None,
    method: str = "blended_heat_map",
    sign: str = "absolute_value",
    *,
    feature_mask: torch.Tensor | np.ndarray | None = None,
    colorbar: bool = False,
    title: str | None = None,
    cmap: str | mcolors.Colormap | None = None,
    outlier_perc: float = 2,
    alpha_overlay: float = 0.6,
    show: bool = False,
) -> tuple[Figure | SubFigure, Axes]:
    r"""Overlay an attribution map on its image with Captum's ``visualize_image_attr``.

    Args:
        attribution (Tensor or ndarray): ``(1, C, H, W)``, ``(C, H, W)`` or ``(H, W)`` map with
            ``C`` = 1 or 3 (three channels are summed, Captum's convention), e.g. the output of
            ``EagleAttribution.attribute`` or of any Captum method on ``sample.image``.
        image: the explained image: ``(1, 3, H, W)`` tensor in ``[0, 1]`` (``sample.image``),
            ``(H, W, 3)`` array or PIL image, of the attribution's size.
        ax (Axes, optional): where to draw. Default: a new figure.
        method (str): Captum's ``method``: ``"blended_heat_map"`` (default), ``"heat_map"``,
            ``"masked_image"`` or ``"alpha_scaling"``.
        sign (str): Captum's ``sign``: ``"absolute_value"`` (default), ``"positive"``,
            ``"negative"`` or ``"all"`` (drawn with the diverging ``PuOr`` map).
        feature_mask (Tensor, optional): region ids ``(1, 1, H, W)`` or ``(H, W)``; if given, the
            region boundaries are drawn on top.
        colorbar (bool): add a colour bar (one more axes). Default: False.
        title (str, optional): axes title.
        cmap: colour map. Default: ``viridis`` (``PuOr`` for ``sign="all"``).
        outlier_perc (float): Captum's percentage of the largest values that saturate.
            Default: 2. Use 0 for maps already scaled to ``[0, 1]`` (Eagle's).
        alpha_overlay (float): opacity of the heat map over the image. Default: 0.6.
        show (bool): call ``plt.show()``. Default: False.

    Returns:
        ``(fig, ax)``. An all-zero attribution draws the image alone and says so in the title.

    Examples::

        >>> import torch
        >>> from captum_eagle.viz import plot_attribution
        >>> image = torch.rand(1, 3, 8, 8)
        >>> attribution = torch.arange(64.0).view(1, 1, 8, 8)
        >>> fig, ax = plot_attribution(attribution, image)
        >>> len(ax.images)
        2
    """
    picture = _image_hwc(image)
    # Channels summed here, as visualize_image_attr would do itself.
    array = pixel_scores(attribution, picture.shape[:2]).float().numpy()[..., None]
    fig, ax = _axes_or_new(ax, (3.2, 3.2), show)
    if cmap is None:
        cmap = _SIGNED_CMAP if sign == "all" else _MAP_CMAP
    if not np.any(array):
        _show_image(ax, picture, f"{title}\n(all-zero attribution)" if title else "all zero")
    else:
        captum_visualization.visualize_image_attr(
            array,
            picture,
            method=method,
            sign=sign,
            plt_fig_axis=(fig, ax),
            outlier_perc=outlier_perc,
            cmap=cmap,
            alpha_overlay=alpha_overlay,
            title=title,
            use_pyplot=False,
        )
        ax.set_xticks([])
        ax.set_yticks([])
        if title:
            ax.set_title(title, fontsize=_FONT)
    if feature_mask is not None:
        _draw_boundaries(ax, _labels_hw(feature_mask))
    if colorbar:
        low = -1.0 if sign == "all" else 0.0
        mappable = ScalarMappable(mcolors.Normalize(low, 1.0), cmap)
        bar = fig.colorbar(mappable, ax=ax, shrink=0.8, pad=0.02)
        bar.set_label("attribution (scaled)", fontsize=_FONT - 1)
    _finish(show)
    return fig, ax


def plot_methods(
    attributions: Mapping[str, torch.Tensor | np.ndarray],
    image: ImageInput,
    *,
    ncols: int | None = None,
    method: str = "blended_heat_map",
    sign: str = "absolute_value",
    include_image: bool = True,
    panel_size: float = 2.6,
    show: bool = False,
) -> tuple[Figure, list[Axes]]:
    r"""Several attribution maps of one image side by side (e.g. Eagle next to Captum baselines).

    Each map is scaled on its own (Captum's ``outlier_perc=2``), so compare where the mass lies,
    not the absolute colours.

    Args:
        attributions (dict): method name → attribution map (shapes as in
            :func:`plot_attribution`).
        image: the explained image (``sample.image``).
        ncols (int, optional): panels per row. Default: all in one row up to 4, then wrap.
        method (str): Captum's overlay method. Default: ``"blended_heat_map"``.
        sign (str): Captum's sign. Default: ``"absolute_value"`` (signed methods such as
            IntegratedGradients are compared by magnitude).
        include_image (bool): first panel shows the plain image. Default: True.
        panel_size (float): inches per panel. Default: 2.6.
        show (bool): call ``plt.show()``. Default: False.

    Returns:
        ``(fig, axes)``: one axes per panel, the image first (if included), then the methods in
        the order given.

    Examples::

        >>> import torch
        >>> from captum_eagle.viz import plot_methods
        >>> image = torch.rand(1, 3, 8, 8)
        >>> maps = {"eagle": torch.rand(1, 1, 8, 8), "occlusion": torch.rand(1, 3, 8, 8)}
        >>> fig, axes = plot_methods(maps, image)
        >>> len(axes)
        3
    """
    if not attributions:
        raise ValueError("attributions is empty; pass {'method name': attribution map, ...}.")
    picture = _image_hwc(image)
    panels = len(attributions) + int(include_image)
    ncols = ncols or min(panels, 4)
    nrows = -(-panels // ncols)
    fig = _new_figure((panel_size * ncols, panel_size * nrows + 0.3), show)
    grid = fig.subplots(nrows, ncols, squeeze=False).flatten()
    for unused in grid[panels:]:
        unused.remove()
    axes = list(grid[:panels])
    if include_image:
        _show_image(axes[0], picture, "image")
    for ax, (name, attribution) in zip(
        axes[int(include_image) :], attributions.items(), strict=True
    ):
        plot_attribution(attribution, picture, ax=ax, method=method, sign=sign, title=name)
    _finish(show)
    return fig, axes


# -- curves ----------------------------------------------------------------------------------------
def plot_curves(
    curves: Mapping[str, Curve],
    axes: Axes | Sequence[Axes] | None = None,
    *,
    title: str | None = None,
    show: bool = False,
) -> tuple[Figure, list[Axes]]:
    r"""Insertion and/or deletion curves of several methods (:class:`captum_eagle.metrics.Curve`).

    Insertion curves go in one panel and deletion curves in another (one panel if only one kind
    is given); a method keeps its colour across panels, and the legend gives each curve's AUC
    (higher is better for insertion, lower for deletion).

    Args:
        curves (dict): label → curve, e.g. ``{"eagle": insertion_curve(...), ...}``; insertion and
            deletion curves may be mixed (use distinct labels, e.g. ``"eagle (deletion)"``).
        axes (Axes or list of Axes, optional): one axes per curve kind present. Default: new.
        title (str, optional): figure title.
        show (bool): call ``plt.show()``. Default: False.

    Returns:
        ``(fig, axes)``: the insertion panel first, then the deletion panel.

    Examples::

        >>> import torch
        >>> from captum_eagle.metrics import Curve
        >>> from captum_eagle.viz import plot_curves
        >>> curve = Curve("insertion", torch.tensor([0.0, 0.5, 1.0]),
        ...               torch.tensor([[0.1], [0.6], [0.9]]), ["cat"], torch.tensor([0]))
        >>> fig, axes = plot_curves({"eagle": curve})
        >>> len(axes), len(axes[0].lines)
        (1, 1)
    """
    if not curves:
        raise ValueError("curves is empty; pass {'method name': Curve, ...}.")
    kinds = [
        kind for kind in ("insertion", "deletion") if any(c.kind == kind for c in curves.values())
    ]
    if axes is None:
        fig = _new_figure((4.2 * len(kinds), 3.4), show)
        panels = list(np.atleast_1d(fig.subplots(1, len(kinds))))
    else:
        panels = [axes] if isinstance(axes, Axes) else list(axes)
        if len(panels) != len(kinds):
            raise ValueError(
                f"Pass {len(kinds)} axes (one per curve kind: {kinds}); got {len(panels)}."
            )
        fig = panels[0].figure
    names = list(dict.fromkeys(_method_name(label) for label in curves))
    for ax, kind in zip(panels, kinds, strict=True):
        for label, curve in curves.items():
            if curve.kind != kind:
                continue
            colour = _CURVE_COLOURS[names.index(_method_name(label)) % len(_CURVE_COLOURS)]
            _draw_curve(ax, curve, f"{label} (AUC {curve.auc:.3f})", colour)
        better = "higher" if kind == "insertion" else "lower"
        ax.set_title(f"{kind} ({better} AUC is better)", fontsize=_FONT)
        _curve_axes(ax, kind)
    if title:
        fig.suptitle(title, fontsize=_FONT + 1)
    _finish(show)
    return fig, panels


def plot_curve(
    curve: Curve,
    ax: Axes | None = None,
    *,
    label: str | None = None,
    tokens: bool = False,
    show: bool = False,
) -> tuple[Figure | SubFigure, Axes]:
    r"""One insertion or deletion curve (:class:`captum_eagle.metrics.Curve`), optionally with
    each target token's own probability.

    Args:
        curve (Curve): from :func:`~captum_eagle.metrics.insertion_curve` or
            :func:`~captum_eagle.metrics.deletion_curve`.
        ax (Axes, optional): where to draw. Default: a new figure.
        label (str, optional): legend label of the mean curve. Default: ``"<kind> (AUC …)"``.
        tokens (bool): also draw each token's probability as a thin line. Default: False.
        show (bool): call ``plt.show()``. Default: False.

    Returns:
        ``(fig, ax)``.

    Examples::

        >>> import torch
        >>> from captum_eagle.metrics import Curve
        >>> from captum_eagle.viz import plot_curve
        >>> probabilities = torch.tensor([[0.9, 0.5], [0.1, 0.5]])
        >>> curve = Curve("deletion", torch.tensor([0.0, 1.0]), probabilities, ["cat", " is"],
        ...               torch.tensor([0, 1]))
        >>> fig, ax = plot_curve(curve, tokens=True)
        >>> len(ax.lines), ax.get_xlabel()
        (3, 'deleted area fraction')
    """
    fig, ax = _axes_or_new(ax, (4.0, 3.0), show)
    if tokens:
        for column, token in enumerate(curve.target_tokens):
            ax.plot(
                curve.fractions.numpy(),
                curve.token_probabilities[:, column].numpy(),
                lw=0.7,
                alpha=0.6,
                label=repr(token.strip()),
            )
    _draw_curve(ax, curve, label or f"{curve.kind} (AUC {curve.auc:.3f})", _CURVE_COLOURS[0])
    _curve_axes(ax, curve.kind)
    _finish(show)
    return fig, ax


def _draw_curve(ax: Axes, curve: Curve, label: str, colour: str) -> None:
    ax.plot(curve.fractions.numpy(), curve.probabilities.numpy(), color=colour, lw=2, label=label)


def _curve_axes(ax: Axes, kind: str) -> None:
    """Labels, limits, grid and legend of a panel of ``kind`` curves over the area fraction."""
    ax.set_xlabel(
        f"{'inserted' if kind == 'insertion' else 'deleted'} area fraction", fontsize=_FONT
    )
    ax.set_ylabel("mean target-token probability", fontsize=_FONT)
    ax.set_xlim(0, 1)
    _probability_limits(ax)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=_FONT - 2, loc="best")


def _probability_limits(ax: Axes) -> None:
    """Y from 0 to 1, or to just above the highest value when all stay well below 1."""
    highest = max((float(np.nanmax(line.get_ydata())) for line in ax.lines), default=1.0)
    ax.set_ylim(0, 1.02 if highest > 0.5 else max(1.15 * highest, 1e-3))


def _method_name(label: str) -> str:
    """``"eagle (deletion)"`` → ``"eagle"``: a method keeps one colour across panels."""
    for suffix in (" (insertion)", " (deletion)"):
        if label.endswith(suffix):
            return label[: -len(suffix)]
    return label


def _region_fractions(result: EagleResult, x: str) -> np.ndarray:
    """Fraction of regions (``x="regions"``) or of the image area (``"area"``) after each step."""
    n = result.n_regions
    if x == "regions":
        return np.arange(n + 1) / n
    if x == "area":
        areas = torch.bincount(result.feature_mask.flatten(), minlength=n)
        return cumulative_area(areas[result.order]).numpy()
    raise ValueError(f"x must be 'regions' or 'area'; got {x!r}.")


def _draw_eagle_curves(ax: Axes, result: EagleResult, x: str) -> None:
    fractions = _region_fractions(result, x)
    insertion = result.trajectories.mean(dim=0).numpy()
    deletion = result.removal_trajectories.mean(dim=0).numpy()
    for values, kind, colour, style in (
        (insertion, "insertion", _CURVE_COLOURS[0], "-"),
        (deletion, "deletion", _CURVE_COLOURS[1], "--"),
    ):
        auc = float(np.trapezoid(values, fractions))
        ax.plot(fractions, values, style, color=colour, lw=2, label=f"{kind} (AUC {auc:.2f})")
    unit = "regions" if x == "regions" else "area"
    ax.set_xlabel(f"fraction of {unit}, in Eagle order", fontsize=_FONT)
    ax.set_ylabel("mean target-token probability", fontsize=_FONT)
    ax.set_xlim(0, 1)
    _probability_limits(ax)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=_FONT - 1, loc="best")


# -- token influence -------------------------------------------------------------------------------
def plot_token_influence(
    result: EagleResult,
    variant: str = "above_min",
    ax: Axes | None = None,
    *,
    threshold: float = 0.5,
    show_sentence: bool = True,
    show: bool = False,
) -> tuple[Figure | SubFigure, Axes]:
    r"""Per-token influence bars: which words came from the image, which from language priors.

    One bar per explained token, in answer order, of height ``result.influence[variant]``
    (normalised so that the most image-driven token scores 1). Tokens at or above ``threshold``
    are drawn as perception-driven (blue), the others as language-prior-driven (orange); the
    answer text above the bars is coloured the same way.

    Args:
        result (EagleResult): from :meth:`EagleAttribution.explain`.
        variant (str): ``"above_min"`` (default, the authors' area rule), ``"below_max"`` or
            ``"equal_steps"`` (see :mod:`captum_eagle.influence`).
        ax (Axes, optional): where to draw. Default: a new figure.
        threshold (float): normalised influence from which a token counts as perception-driven.
            Default: 0.5.
        show_sentence (bool): write the colour-coded answer above the bars. Default: True.
        show (bool): call ``plt.show()``. Default: False.

    Returns:
        ``(fig, ax)``.

    Examples::

        >>> from captum_eagle.viz import plot_token_influence
        >>> fig, ax = plot_token_influence(result)  # doctest: +SKIP
        >>> len(ax.patches) == len(result.target_tokens)  # doctest: +SKIP
        True
    """
    if variant not in result.influence:
        raise ValueError(
            f"Unknown influence variant {variant!r}; choose one of {sorted(result.influence)}."
        )
    scores = result.influence[variant].detach().float().cpu().numpy()
    tokens = list(result.target_tokens)
    fig, ax = _axes_or_new(ax, (max(4.0, 0.55 * len(tokens) + 1.5), 2.8), show)
    perception = scores >= threshold
    colours = [PERCEPTION_COLOUR if p else LANGUAGE_PRIOR_COLOUR for p in perception]
    positions = np.arange(len(tokens))
    ax.bar(positions, scores, color=colours, edgecolor="black", linewidth=0.5)
    ax.axhline(threshold, color="0.4", lw=0.8, ls=":")
    ax.set_xticks(positions, [_token_label(t) for t in tokens], fontsize=_FONT)
    for tick, colour in zip(ax.get_xticklabels(), colours, strict=True):
        tick.set_color(colour)
        tick.set_fontweight("bold")
    ax.set_ylim(0, 1.12)
    ax.set_xlim(-0.6, len(tokens) - 0.4)
    ax.set_ylabel(f"influence ({variant})", fontsize=_FONT)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(
        handles=[
            Patch(color=PERCEPTION_COLOUR, label="perception (image)"),
            Patch(color=LANGUAGE_PRIOR_COLOUR, label="language prior"),
        ],
        fontsize=_FONT - 1,
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        frameon=False,
    )
    if show_sentence:
        _coloured_sentence(ax, tokens, colours)
    _finish(show)
    return fig, ax


def _coloured_sentence(ax: Axes, tokens: Sequence[str], colours: Sequence[str]) -> None:
    """Write the tokens one after the other above the axes, each in its colour."""
    anchor: Any = ax.text(
        0.0, 1.04, "answer:", transform=ax.transAxes, fontsize=_FONT + 1, va="bottom", color="0.2"
    )
    for position, (token, colour) in enumerate(zip(tokens, colours, strict=True)):
        first = position == 0
        anchor = ax.annotate(
            token.strip() or token,
            xy=(1.0, 0.0),
            xycoords=anchor,
            xytext=(3.5 if token[:1].isspace() or first else 0, 0),
            textcoords="offset points",
            va="bottom",
            fontsize=_FONT + 1,
            fontweight="bold",
            color=colour,
        )


# -- the one-figure summary ------------------------------------------------------------------------
def plot_explanation(
    result: EagleResult,
    sample: PreparedSample,
    *,
    variant: str = "above_min",
    x: str = "regions",
    label_top: int = 3,
    threshold: float = 0.5,
    title: str | None = None,
    show: bool = False,
) -> tuple[Figure, dict[str, Axes]]:
    r"""One figure that summarises an Eagle explanation (the CLI's PNG).

    Panels: the image at model resolution; the Eagle map overlaid with Captum's
    ``visualize_image_attr`` (the first ``label_top`` regions of the order outlined and
    numbered); the insertion and deletion curves along the Eagle order (from the result's
    trajectories, no extra forward); and the per-token influence bars under them.

    Args:
        result (EagleResult): from :meth:`EagleAttribution.explain`.
        sample (PreparedSample): the explained sample (its ``image`` and ``prompt``).
        variant (str): influence variant for the bars. Default: ``"above_min"``.
        x (str): curve x-axis: ``"regions"`` (fraction of regions, default) or ``"area"``
            (fraction of image area).
        label_top (int): outline and number the first regions of the order. Default: 3.
        threshold (float): perception / language-prior split of the bars. Default: 0.5.
        title (str, optional): figure title. Default: the prompt and the answer.
        show (bool): call ``plt.show()``. Default: False.

    Returns:
        ``(fig, axes)`` with ``axes`` a dict: ``"image"``, ``"attribution"``, ``"curves"``,
        ``"influence"`` (the figure also holds the overlay's colour bar axes).

    Examples::

        >>> from captum_eagle.viz import plot_explanation
        >>> fig, axes = plot_explanation(result, sample)  # doctest: +SKIP
        >>> fig.savefig("explanation.png", dpi=110)  # doctest: +SKIP
    """
    if tuple(result.feature_mask.shape[-2:]) != tuple(sample.image.shape[-2:]):
        raise ValueError(
            f"The result's regions are {tuple(result.feature_mask.shape[-2:])} but the sample's "
            f"image is {tuple(sample.image.shape[-2:])}; pass the sample that was explained."
        )
    fig = _new_figure((10.0, 6.4), show)
    top, bottom = cast(np.ndarray, fig.subfigures(2, 1, height_ratios=(1.45, 1.0)))
    panels = top.subplots(1, 3, width_ratios=(1.0, 1.22, 1.25))
    axes = {
        "image": panels[0],
        "attribution": panels[1],
        "curves": panels[2],
        "influence": bottom.add_subplot(),
    }
    picture = _image_hwc(sample.image)
    _show_image(axes["image"], picture, "image")
    labels = _labels_hw(result.feature_mask)
    plot_attribution(
        result.attribution_map(),
        picture,
        ax=axes["attribution"],
        colorbar=True,
        outlier_perc=0,
        title=f"Eagle map ({result.n_regions} regions)",
    )
    _number_regions(axes["attribution"], labels, result.order[:label_top].tolist())
    _draw_eagle_curves(axes["curves"], result, x)
    axes["curves"].set_title(
        f"along the order ({result.search} search, {result.forwards} forwards)", fontsize=_FONT
    )
    plot_token_influence(result, variant, ax=axes["influence"], threshold=threshold)
    fig.suptitle(title or f"prompt: {sample.prompt!r}", fontsize=_FONT + 2)
    _finish(show)
    return fig, axes


def _number_regions(ax: Axes, labels: np.ndarray, regions: Sequence[int]) -> None:
    """Outline the given regions and write 1, 2, 3, ... on them (near each region's centroid)."""
    for rank, region in enumerate(regions, start=1):
        inside = labels == region
        rows, cols = np.nonzero(inside)
        if rows.size == 0:
            continue
        ax.contour(inside, levels=[0.5], colors=["white"], linewidths=1.2)
        nearest = np.argmin((rows - rows.mean()) ** 2 + (cols - cols.mean()) ** 2)
        ax.text(
            cols[nearest],
            rows[nearest],
            str(rank),
            ha="center",
            va="center",
            fontsize=_FONT + 1,
            fontweight="bold",
            color="white",
            path_effects=_outlined(),
        )


# -- hallucination ---------------------------------------------------------------------------------
def plot_hallucination(
    image: ImageInput,
    hallucination_map: torch.Tensor | np.ndarray,
    removed: torch.Tensor | np.ndarray,
    probabilities: torch.Tensor | np.ndarray | Sequence[float],
    flip_index: int | None,
    *,
    fractions: torch.Tensor | np.ndarray | Sequence[float] | None = None,
    question: str | None = None,
    answers: tuple[str, str] | None = None,
    feature_mask: torch.Tensor | np.ndarray | None = None,
    show: bool = False,
) -> tuple[Figure, dict[str, Axes]]:
    r"""The hallucination figure: where the wrong answer comes from, and removing it.

    Panels: the image; the hallucination map (high = hallucination-prone region, i.e. late in the
    Eagle order of the correct answer); the image with the removed regions blacked out and
    outlined; and the probability of the correct answer after each removal, the first flip to the
    correct answer marked.

    Args:
        image: the image (``sample.image``, ``(H, W, 3)`` array or PIL image).
        hallucination_map (Tensor or ndarray): ``(H, W)``-sized map (shapes as in
            :func:`plot_attribution`); higher = more hallucination-prone.
        removed (Tensor or ndarray): ``(H, W)`` boolean mask of the pixels removed up to the flip
            (or up to the end when the answer never flipped).
        probabilities: ``(K + 1,)`` probability of the correct answer after removing ``0..K``
            regions (index 0: the full image).
        flip_index (int or None): index into ``probabilities`` at which the answer first turned
            correct, or ``None`` if it never did.
        fractions (optional): ``(K + 1,)`` x values (e.g. removed area fraction). Default: the
            number of removed regions ``0..K``.
        question (str, optional): shown as the figure title.
        answers (tuple, optional): ``(wrong, correct)`` answer words, e.g. ``("yes", "no")``.
        feature_mask (Tensor, optional): region ids; boundaries drawn on the map if given.
        show (bool): call ``plt.show()``. Default: False.

    Returns:
        ``(fig, axes)`` with ``axes`` a dict: ``"image"``, ``"map"``, ``"removed"``, ``"curve"``.

    Examples::

        >>> import torch
        >>> from captum_eagle.viz import plot_hallucination
        >>> image = torch.rand(1, 3, 8, 8)
        >>> removed = torch.zeros(8, 8, dtype=torch.bool)
        >>> removed[:4, :4] = True
        >>> fig, axes = plot_hallucination(
        ...     image, torch.rand(8, 8), removed, [0.2, 0.4, 0.7], flip_index=2
        ... )
        >>> sorted(axes)
        ['curve', 'image', 'map', 'removed']
    """
    picture = _image_hwc(image)
    removed_mask = _labels_hw(removed).astype(bool)
    if removed_mask.shape != picture.shape[:2]:
        raise ValueError(
            f"removed is {removed_mask.shape} but the image is {picture.shape[:2]}; pass an "
            "(H, W) boolean mask of the removed pixels."
        )
    curve = np.asarray(
        probabilities.detach().cpu() if isinstance(probabilities, torch.Tensor) else probabilities,
        dtype=np.float64,
    ).ravel()
    steps = (
        np.arange(curve.size, dtype=np.float64)
        if fractions is None
        else np.asarray(
            fractions.detach().cpu() if isinstance(fractions, torch.Tensor) else fractions,
            dtype=np.float64,
        ).ravel()
    )
    if curve.size < 1 or steps.shape != curve.shape:
        raise ValueError(
            f"probabilities ({curve.size}) and fractions ({steps.size}) must be non-empty and of "
            "the same length (one value per number of removed regions, starting at 0)."
        )
    if flip_index is not None and not 0 <= flip_index < curve.size:
        raise ValueError(f"flip_index {flip_index} is outside the curve (0..{curve.size - 1}).")
    wrong, correct = answers or ("wrong", "correct")

    fig = _new_figure((11.5, 3.3), show)
    grid = fig.subplots(1, 4, width_ratios=(1, 1, 1, 1.4))
    axes = dict(zip(("image", "map", "removed", "curve"), grid, strict=True))
    _show_image(axes["image"], picture, f"model says {wrong!r}")
    plot_attribution(
        hallucination_map,
        picture,
        ax=axes["map"],
        sign="positive",
        feature_mask=feature_mask,
        outlier_perc=0,
        title="hallucination map",
    )
    cleaned = picture * ~removed_mask[..., None]
    state = f"now {correct!r}" if flip_index is not None else f"still {wrong!r}"
    _show_image(axes["removed"], cleaned, f"regions removed: {state}")
    axes["removed"].contour(removed_mask, levels=[0.5], colors=[_MARK_COLOUR], linewidths=1.5)

    ax = axes["curve"]
    ax.plot(steps, curve, "-o", color=_CURVE_COLOURS[0], lw=2, ms=3)
    ax.axhline(0.5, color="0.5", lw=0.8, ls=":")
    if flip_index is not None:
        ax.axvline(steps[flip_index], color=_MARK_COLOUR, lw=1.2, ls="--")
        ax.plot(steps[flip_index], curve[flip_index], "o", color=_MARK_COLOUR, ms=8)
    handles = [Line2D([], [], color=_CURVE_COLOURS[0], lw=2, label=f"p({correct!r})")]
    if flip_index is not None:
        handles.append(Line2D([], [], color=_MARK_COLOUR, ls="--", label="answer flips"))
    ax.legend(handles=handles, fontsize=_FONT - 1, loc="lower right")
    ax.set_xlabel("regions removed" if fractions is None else "removed fraction", fontsize=_FONT)
    ax.set_ylabel(f"probability of {correct!r}", fontsize=_FONT)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    if question:
        fig.suptitle(question, fontsize=_FONT + 2)
    _finish(show)
    return fig, axes


# -- joint image + prompt explanations -------------------------------------------------------------
def plot_joint(
    result: JointResult,
    sample: PreparedSample,
    *,
    label_top: int = 3,
    title: str | None = None,
    show: bool = False,
) -> tuple[Figure, dict[str, Axes]]:
    r"""The joint figure: image heatmap, prompt words shaded by score, reliance per answer token.

    Panels: the image regions' saliency overlaid on the image (the first ``label_top`` image
    regions of the order outlined and numbered by rank among the regions); the prompt's words,
    each on a box shaded by its saliency on the same ``[0, 1]`` scale as the regions (``viridis``);
    and per answer token a bar split into the image's share and the prompt's share of the
    positive insertion gains (:mod:`captum_eagle.reliance`; a hatched grey bar where nothing raised
    the token and the share is undefined).

    Args:
        result (JointResult): from :func:`captum_eagle.joint.explain_joint`.
        sample (PreparedSample): the explained sample (its ``image`` and ``prompt``).
        label_top (int): outline and number the first image regions of the order. Default: 3.
        title (str, optional): figure title. Default: the prompt and the answer.
        show (bool): call ``plt.show()``. Default: False.

    Returns:
        ``(fig, axes)`` with ``axes`` a dict: ``"image"``, ``"prompt"``, ``"reliance"``.

    Examples::

        >>> from PIL import Image
        >>> from captum_eagle import FeatureMask, MLLMForwardWrapper
        >>> from captum_eagle.joint import explain_joint
        >>> from captum_eagle.testing import tiny_model
        >>> from captum_eagle.viz import plot_joint
        >>> wrapper = MLLMForwardWrapper(*tiny_model("llava"))
        >>> sample = wrapper.prepare(Image.new("RGB", (32, 32), "red"), "is there a cat?", "yes")
        >>> result = explain_joint(wrapper, sample, FeatureMask.grid(sample.image, 2, 1))
        >>> fig, axes = plot_joint(result, sample)
        >>> [text.get_text() for text in axes["prompt"].texts][1:]
        ['is', 'there', 'a', 'cat', '?']
    """
    mask = result.eagle.feature_mask
    if tuple(mask.shape[-2:]) != tuple(sample.image.shape[-2:]) or any(
        sample.prompt[f.start : f.end] != f.text for f in result.text_features
    ):
        raise ValueError(
            "The result's regions or prompt words do not match the sample (image "
            f"{tuple(sample.image.shape[-2:])}, prompt {sample.prompt!r}); pass the sample that "
            "was explained."
        )
    fig = _new_figure((10.0, 4.6), show)
    left, right = cast(np.ndarray, fig.subfigures(1, 2, width_ratios=(1.0, 1.35)))
    prompt_ax, reliance_ax = right.subplots(2, 1, height_ratios=(0.5, 1.0))
    axes = {"image": left.add_subplot(), "prompt": prompt_ax, "reliance": reliance_ax}
    picture = _image_hwc(sample.image)
    plot_attribution(
        result.attribution_map(),
        picture,
        ax=axes["image"],
        colorbar=True,
        outlier_perc=0,
        title=f"image regions ({result.n_image_regions})",
    )
    image_order = [r for r in result.order.tolist() if r < result.n_image_regions]
    _number_regions(axes["image"], _labels_hw(mask), image_order[:label_top])
    _shaded_words(axes["prompt"], result.text_features, result.text_scores.tolist())
    _draw_reliance(axes["reliance"], result.eagle.target_tokens, result.reliance)
    fig.suptitle(title or f"{sample.prompt!r} → {sample.answer!r}", fontsize=_FONT + 2)
    _finish(show)
    return fig, axes


def _shaded_words(ax: Axes, features: Sequence[Any], scores: Sequence[float]) -> None:
    """Write the prompt features left to right, each on a box coloured by its score."""
    ax.set_axis_off()
    cmap = colormaps[_MAP_CMAP]
    anchor: Any = ax.text(
        0.0, 0.5, "prompt:", transform=ax.transAxes, fontsize=_FONT + 1, va="center", color="0.2"
    )
    for feature, score in zip(features, scores, strict=True):
        red, green, blue, _ = cmap(float(score))
        light = 0.299 * red + 0.587 * green + 0.114 * blue > 0.5
        anchor = ax.annotate(
            feature.text,
            xy=(1.0, 0.5),
            xycoords=anchor,
            xytext=(6, 0),
            textcoords="offset points",
            va="center",
            fontsize=_FONT + 1,
            color="black" if light else "white",
            bbox={"boxstyle": "round,pad=0.3", "facecolor": (red, green, blue), "linewidth": 0},
        )
    ax.set_title("prompt words, shaded by saliency (same scale as the regions)", fontsize=_FONT)


def _draw_reliance(ax: Axes, tokens: Sequence[str], reliance: torch.Tensor) -> None:
    """Per token, a bar of height 1 split into the image's and the prompt's share."""
    values = reliance.double().numpy()
    positions = np.arange(len(tokens))
    undefined = np.isnan(values)
    image = np.where(undefined, 0.0, values)
    ax.bar(positions, image, color=PERCEPTION_COLOUR, label="image", width=0.6)
    ax.bar(
        positions,
        np.where(undefined, 0.0, 1 - image),
        bottom=image,
        color=LANGUAGE_PRIOR_COLOUR,
        label="prompt",
        width=0.6,
    )
    ax.bar(
        positions,
        undefined.astype(float),
        color="0.85",
        hatch="//",
        label="undefined (no gain)",
        width=0.6,
    )
    ax.set_xticks(
        positions, [_token_label(t) for t in tokens], rotation=45 if len(tokens) > 6 else 0
    )
    ax.set_ylim(0, 1)
    ax.set_xlim(-0.75, max(len(tokens), 3) - 0.25)
    ax.set_ylabel("share of positive gains", fontsize=_FONT)
    ax.set_title("modality reliance per answer token", fontsize=_FONT)
    ax.legend(fontsize=_FONT - 1, loc="upper right", framealpha=0.9)
