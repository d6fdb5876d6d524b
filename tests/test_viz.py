"""Plotting helpers on a real Eagle attribution of the tiny LLaVA model; nothing is shown."""

from __future__ import annotations

import doctest

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from captum.attr import FeatureAblation
from matplotlib import colors as mcolors
from PIL import Image

from captum_eagle import EagleAttribution, FeatureMask, MLLMForwardWrapper
from captum_eagle.joint import explain_joint
from captum_eagle.metrics import deletion_curve, insertion_curve
from captum_eagle.testing import tiny_model
from captum_eagle.viz import (
    LANGUAGE_PRIOR_COLOUR,
    PERCEPTION_COLOUR,
    plot_attribution,
    plot_curve,
    plot_curves,
    plot_explanation,
    plot_hallucination,
    plot_joint,
    plot_methods,
    plot_token_influence,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def explained():
    wrapper = MLLMForwardWrapper(*tiny_model("llava"), batch_size=16)
    array = np.full((32, 32, 3), 20, dtype=np.uint8)
    array[4:14, 6:20] = (220, 30, 30)
    sample = wrapper.prepare(Image.fromarray(array), "describe the image .", "a red cat sitting")
    mask = FeatureMask.grid(sample.image, 2, 3)
    result = EagleAttribution(wrapper).explain(
        sample.image, additional_forward_args=(sample,), feature_mask=mask
    )
    return wrapper, sample, mask, result


class ShowSpy:
    """Stands in for plt.show and counts the calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.allowed = False

    def __call__(self, *args, **kwargs) -> None:
        self.calls += 1


@pytest.fixture(autouse=True)
def show_spy(monkeypatch: pytest.MonkeyPatch):
    """Fail on any plt.show() not asked for, and on figures left in pyplot's registry."""
    plt.close("all")
    spy = ShowSpy()
    monkeypatch.setattr(plt, "show", spy)
    yield spy
    if not spy.allowed:
        assert spy.calls == 0, "a helper called plt.show() without show=True"
        assert plt.get_fignums() == [], "a helper registered a figure with pyplot"
    plt.close("all")


def _png_bytes(fig, tmp_path) -> bytes:
    path = tmp_path / "figure.png"
    fig.savefig(path, dpi=40)
    return path.read_bytes()


def test_plot_attribution_overlay_boundaries_and_colorbar(explained, tmp_path) -> None:
    _, sample, mask, result = explained
    attribution = result.attribution_map()
    fig, ax = plot_attribution(attribution, sample.image)
    assert len(fig.axes) == 1 and len(ax.images) == 2  # grey image + heat map (Captum's blend)
    assert ax.images[1].get_cmap().name == "viridis"
    heat = np.asarray(ax.images[1].get_array())
    assert heat.shape == tuple(sample.image.shape[-2:])
    assert heat.max() == pytest.approx(1.0) and heat.min() >= 0.0
    fig, ax = plot_attribution(attribution, sample.image, feature_mask=mask.mask, colorbar=True)
    assert len(fig.axes) == 2 and len(ax.images) == 3
    assert _png_bytes(fig, tmp_path).startswith(PNG_SIGNATURE)


def test_plot_attribution_signed_zero_and_bad_shapes(explained) -> None:
    _, sample, _, _ = explained
    signed = torch.linspace(-1, 1, sample.image[0, 0].numel()).view(sample.image.shape[-2:])
    _, ax = plot_attribution(signed, sample.image, sign="all")
    assert ax.images[1].get_cmap().name == "PuOr"
    _, ax = plot_attribution(torch.zeros_like(sample.image), sample.image, title="saliency")
    assert len(ax.images) == 1 and "all-zero" in ax.get_title()
    with pytest.raises(ValueError, match=r"same sample\.image"):
        plot_attribution(torch.rand(1, 1, 5, 5), sample.image)
    with pytest.raises(ValueError, match="C = 1 or 3"):
        plot_attribution(torch.rand(1, 2, 32, 32), sample.image)


def test_plot_methods_grid_with_a_captum_baseline(explained) -> None:
    wrapper, sample, mask, result = explained
    ablation = FeatureAblation(wrapper).attribute(
        sample.image, additional_forward_args=(sample,), feature_mask=mask.mask
    )
    maps = {"Eagle": result.attribution_map(), "FeatureAblation": ablation}
    fig, axes = plot_methods(maps, sample.image)
    assert len(axes) == len(fig.axes) == 3
    assert [ax.get_title() for ax in axes] == ["image", "Eagle", "FeatureAblation"]
    assert [len(ax.images) for ax in axes] == [1, 2, 2]
    five = {f"method {i}": result.attribution_map() for i in range(4)}
    fig, axes = plot_methods(five, sample.image, ncols=2)
    assert len(axes) == len(fig.axes) == 5  # 3 rows x 2 columns, the empty slot removed
    assert axes[4].get_subplotspec().rowspan.start == 2


def test_plot_curves_one_panel_per_kind(explained) -> None:
    wrapper, sample, mask, result = explained
    attribution = result.attribution_map()
    insertion = insertion_curve(wrapper, sample, attribution, feature_mask=mask)
    deletion = deletion_curve(wrapper, sample, attribution, feature_mask=mask)
    curves = {"eagle": insertion, "eagle (deletion)": deletion, "random": insertion}
    fig, axes = plot_curves(curves, title="tiny model")
    assert len(axes) == len(fig.axes) == 2
    assert [len(ax.lines) for ax in axes] == [2, 1]
    assert axes[0].get_xlabel() == "inserted area fraction"
    np.testing.assert_allclose(axes[0].lines[0].get_ydata(), insertion.probabilities.numpy())
    assert axes[0].lines[0].get_color() == axes[1].lines[0].get_color()  # one colour per method
    assert f"{insertion.auc:.3f}" in axes[0].get_legend().get_texts()[0].get_text()
    fig, axes = plot_curves({"eagle": deletion})
    assert len(axes) == 1 and axes[0].get_title().startswith("deletion")
    with pytest.raises(ValueError, match="one per curve kind"):
        plot_curves(curves, axes=fig.axes)
    with pytest.raises(ValueError, match="empty"):
        plot_curves({})


def test_plot_token_influence_bars_and_colours(explained) -> None:
    _, _, _, result = explained
    scores = result.influence["above_min"]
    fig, ax = plot_token_influence(result, threshold=0.5)
    assert len(fig.axes) == 1 and len(ax.patches) == 4
    np.testing.assert_allclose([bar.get_height() for bar in ax.patches], scores.numpy())
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "red", "cat", "sitting"]
    expected = [PERCEPTION_COLOUR if s >= 0.5 else LANGUAGE_PRIOR_COLOUR for s in scores]
    assert [mcolors.to_hex(bar.get_facecolor()) for bar in ax.patches] == [
        c.lower() for c in expected
    ]
    assert [mcolors.to_hex(t.get_color()) for t in ax.get_xticklabels()] == [
        c.lower() for c in expected
    ]
    sentence = [t.get_text() for t in ax.texts]
    assert sentence == ["answer:", "a", "red", "cat", "sitting"]
    _, ax = plot_token_influence(result, "below_max", show_sentence=False)
    assert len(ax.texts) == 0 and ax.get_ylabel() == "influence (below_max)"
    with pytest.raises(ValueError, match="above_min"):
        plot_token_influence(result, "sideways")


def test_plot_explanation_panels(explained, tmp_path) -> None:
    _, sample, _, result = explained
    fig, axes = plot_explanation(result, sample)
    assert list(axes) == ["image", "attribution", "curves", "influence"]
    assert len(fig.axes) == 5  # four panels and the map's colour bar
    assert len(axes["image"].images) == 1
    assert len(axes["attribution"].images) == 2  # Captum's blend: grey image and heat map
    assert [t.get_text() for t in axes["attribution"].texts] == ["1", "2", "3"]
    assert len(axes["attribution"].collections) == 3  # the outlines of those regions
    insertion, deletion = axes["curves"].lines
    np.testing.assert_allclose(insertion.get_xdata(), np.arange(7) / 6)
    np.testing.assert_allclose(insertion.get_ydata(), result.trajectories.mean(0).numpy())
    np.testing.assert_allclose(deletion.get_ydata(), result.removal_trajectories.mean(0).numpy())
    assert len(axes["influence"].patches) == result.trajectories.shape[0]
    assert _png_bytes(fig, tmp_path).startswith(PNG_SIGNATURE)
    _, axes = plot_explanation(result, sample, x="area", label_top=1)
    area = axes["curves"].lines[0].get_xdata()
    assert area[0] == 0 and area[-1] == pytest.approx(1.0) and np.all(np.diff(area) > 0)
    assert len(axes["attribution"].texts) == len(axes["attribution"].collections) == 1
    with pytest.raises(ValueError, match="'regions' or 'area'"):
        plot_explanation(result, sample, x="pixels")


def test_plot_hallucination_marks_the_flip(explained) -> None:
    _, sample, mask, result = explained
    removed = (mask.mask[0, 0] == result.order[-1]) | (mask.mask[0, 0] == result.order[-2])
    probabilities = torch.tensor([0.1, 0.35, 0.8])
    fig, axes = plot_hallucination(
        sample.image,
        1 - result.attribution_map(),
        removed,
        probabilities,
        flip_index=2,
        question="is there a red cat?",
        answers=("yes", "no"),
        feature_mask=mask.mask,
    )
    assert list(axes) == ["image", "map", "removed", "curve"] and len(fig.axes) == 4
    assert [len(axes[k].images) for k in ("image", "map", "removed")] == [1, 3, 1]
    cleaned = np.asarray(axes["removed"].images[0].get_array())
    assert np.all(cleaned[removed.numpy()] == 0) and np.any(cleaned[~removed.numpy()] > 0)
    flip_line = [line for line in axes["curve"].lines if line.get_linestyle() == "--"]
    assert len(flip_line) == 1 and list(flip_line[0].get_xdata()) == [2, 2]
    assert "now 'no'" in axes["removed"].get_title()
    assert fig.get_suptitle() == "is there a red cat?"
    _, axes = plot_hallucination(
        sample.image, result.attribution_map(), removed, [0.1, 0.2], None, fractions=[0, 0.5]
    )
    assert "still 'wrong'" in axes["removed"].get_title()
    assert len(axes["curve"].get_legend().get_texts()) == 1
    with pytest.raises(ValueError, match="outside the curve"):
        plot_hallucination(sample.image, result.attribution_map(), removed, [0.1, 0.2], 5)
    with pytest.raises(ValueError, match="boolean mask"):
        plot_hallucination(sample.image, result.attribution_map(), removed[:4], [0.1], None)


def test_show_true_calls_pyplot_show_once(explained, show_spy: ShowSpy) -> None:
    _, _, _, result = explained
    show_spy.allowed = True
    fig, _ = plot_token_influence(result, show=True)
    assert show_spy.calls == 1 and plt.get_fignums() == [fig.number]


def test_plot_curve_draws_one_curve_and_its_tokens(explained) -> None:
    wrapper, sample, mask, result = explained
    curve = insertion_curve(wrapper, sample, result.attribution_map(), feature_mask=mask)
    _, ax = plot_curve(curve, tokens=True)
    assert len(ax.lines) == curve.n_tokens + 1
    np.testing.assert_allclose(ax.lines[-1].get_ydata(), curve.probabilities.numpy())
    assert ax.get_xlabel() == "inserted area fraction"
    assert f"AUC {curve.auc:.3f}" in ax.get_legend().get_texts()[-1].get_text()
    assert curve.plot(ax=ax) is ax and len(ax.lines) == curve.n_tokens + 2


def test_plot_joint_panels_words_and_reliance(tmp_path) -> None:
    wrapper = MLLMForwardWrapper(*tiny_model("llava"), batch_size=16)
    sample = wrapper.prepare(Image.new("RGB", (32, 32), "red"), "is there a red cat?", "yes a cat")
    result = explain_joint(wrapper, sample, FeatureMask.grid(sample.image, 2, 2))
    result.reliance = torch.tensor([0.25, float("nan"), 1.0])  # one of each kind of bar
    fig, axes = plot_joint(result, sample, label_top=2)
    assert list(axes) == ["image", "prompt", "reliance"]
    words = axes["prompt"].texts[1:]
    assert [t.get_text() for t in words] == ["is", "there", "a", "red", "cat", "?"]
    viridis = plt.get_cmap("viridis")
    for text, score in zip(words, result.text_scores.tolist(), strict=True):
        shade = text.get_bbox_patch().get_facecolor()
        np.testing.assert_allclose(shade[:3], viridis(score)[:3], atol=1e-6)
    assert [t.get_text() for t in axes["image"].texts] == ["1", "2"]
    image, prompt, undefined = (
        [p.get_height() for p in container] for container in axes["reliance"].containers
    )
    np.testing.assert_allclose(image, [0.25, 0.0, 1.0])
    np.testing.assert_allclose(prompt, [0.75, 0.0, 0.0])
    np.testing.assert_allclose(undefined, [0.0, 1.0, 0.0])
    assert _png_bytes(fig, tmp_path).startswith(PNG_SIGNATURE)
    fig, _ = result.show(sample)
    assert len(fig.axes) == 4  # three panels and the map's colour bar
    other = wrapper.prepare(Image.new("RGB", (32, 32), "red"), "is there a dog?", "yes")
    with pytest.raises(ValueError, match="pass the sample that was explained"):
        plot_joint(result, other)
    globs = {"__name__": "captum_eagle.viz"}
    failures = doctest.DocTestRunner().run(doctest.DocTestFinder().find(plot_joint, globs=globs)[0])
    assert failures.failed == 0
