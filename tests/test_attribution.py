"""EagleAttribution: exact engine vs the naive reference, saliency, results, Captum interop."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
from captum.attr import ImageMaskInput, LLMAttributionResult

from captum_eagle import EagleAttribution, EagleResult, FeatureMask
from captum_eagle.attribution import saliency_from_gains
from captum_eagle.influence import token_influence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # make `benchmarks.reference` importable
    sys.path.insert(0, str(ROOT))

from benchmarks.reference import naive_greedy  # noqa: E402


@pytest.fixture(scope="module")
def mask(sample) -> FeatureMask:
    return FeatureMask.slico(sample.image, 9)


@pytest.fixture(scope="module")
def result(wrapper, sample, mask) -> EagleResult:
    return EagleAttribution(wrapper).explain(
        sample.image, feature_mask=mask, additional_forward_args=(sample,)
    )


@pytest.fixture(scope="module")
def reference(wrapper, sample, mask):
    return naive_greedy(wrapper, sample, mask)


def test_engine_order_equals_naive_reference(result, reference, mask) -> None:
    assert 8 <= mask.n_regions <= 16
    assert result.order.tolist() == reference.order
    torch.testing.assert_close(result.objective[1:], reference.objective, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        result.trajectories[:, 1:], reference.trajectories, atol=1e-5, rtol=0
    )
    gains = reference.objective[1:] - reference.objective[:-1]
    torch.testing.assert_close(result.gains[1:], gains, atol=1e-5, rtol=0)


def test_forward_count_is_n_times_n_plus_one_plus_empty_set(result, mask) -> None:
    n = mask.n_regions
    assert result.forwards == n * (n + 1) + 2


@pytest.mark.parametrize("batch_size", [1, 3, 1000])
def test_same_order_for_any_batch_size(wrapper, sample, mask, result, batch_size) -> None:
    again = EagleAttribution(wrapper).explain(
        sample.image, feature_mask=mask, additional_forward_args=(sample,), batch_size=batch_size
    )
    assert again.order.tolist() == result.order.tolist()
    torch.testing.assert_close(again.gains, result.gains, atol=1e-5, rtol=0)


def test_saliency_is_constant_per_region_and_ordered_like_the_order(
    wrapper, sample, mask, result
) -> None:
    eagle = EagleAttribution(wrapper)
    attribution = eagle.attribute(
        sample.image, feature_mask=mask, additional_forward_args=(sample,)
    )
    assert attribution.shape == sample.image.shape
    assert torch.equal(eagle.last_result.order, result.order)
    values = []
    for region in result.order.tolist():
        inside = attribution[0, :, mask.mask[0, 0] == region]
        assert inside.unique().numel() == 1
        values.append(inside[0, 0].item())
    assert values[0] == 1.0 and min(values) == 0.0
    assert all(a >= b for a, b in itertools.pairwise(values))


def test_saliency_walk_on_known_gains() -> None:
    order = torch.tensor([3, 1, 0, 2])
    values = saliency_from_gains(order, torch.tensor([0.5, 0.2, -0.2, 0.0]))
    # A = [0, -0.2, -0.4, -0.4] -> normalised [1, 0.5, 0, 0] placed at regions 3, 1, 0, 2
    torch.testing.assert_close(values, torch.tensor([0.0, 0.5, 0.0, 1.0]))


def test_influence_matches_direct_computation(result) -> None:
    curves = result.trajectories[:, 1:]
    n = curves.shape[1]
    above = torch.stack([(c - c.min()).sum() / n for c in curves])
    below = torch.stack([(c.max() - c).sum() / n for c in curves])
    torch.testing.assert_close(result.influence_area["above_min"], above)
    torch.testing.assert_close(result.influence_area["below_max"], below)
    torch.testing.assert_close(result.influence["above_min"], above / above.max())
    torch.testing.assert_close(token_influence(curves, "below_max"), below / below.max())


def test_result_curves_are_consistent(result, sample, wrapper) -> None:
    n = result.n_regions
    assert result.objective.shape == (n + 1,) and result.gains.shape == (n,)
    assert result.trajectories.shape == (sample.n_targets, n + 1)
    torch.testing.assert_close(result.objective, result.insight + result.necessity)
    with torch.no_grad():
        full = wrapper.token_probabilities(sample.image, sample)[0]
    torch.testing.assert_close(result.trajectories[:, -1], full, atol=1e-5, rtol=0)
    torch.testing.assert_close(result.removal_trajectories[:, 0], full, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        result.token_attribution.sum(0).sum(), result.gains.sum() * sample.n_targets
    )


def test_repeated_runs_are_identical(wrapper, sample, mask, result) -> None:
    again = EagleAttribution(wrapper).explain(
        sample.image, feature_mask=mask, additional_forward_args=(sample,)
    )
    assert torch.equal(again.order, result.order)
    assert torch.equal(again.region_attribution, result.region_attribution)


def test_objective_ablation_weights(wrapper, sample, mask) -> None:
    eagle = EagleAttribution(wrapper)
    insight = eagle.explain(
        sample.image, feature_mask=mask, additional_forward_args=(sample,), necessity_weight=0
    )
    reference = naive_greedy(wrapper, sample, mask, necessity_weight=0)
    assert insight.order.tolist() == reference.order
    torch.testing.assert_close(insight.objective, insight.insight)
    n = mask.n_regions
    # Search: one image per candidate; trajectories: the removed prefixes on top.
    assert insight.forwards <= n * (n + 1) // 2 + 2 * (n + 1)
    with pytest.raises(ValueError, match="not both 0"):
        eagle.attribute(
            sample.image,
            feature_mask=mask,
            additional_forward_args=(sample,),
            insight_weight=0,
            necessity_weight=0,
        )


def test_target_word_and_span(wrapper, sample, mask) -> None:
    eagle = EagleAttribution(wrapper)
    word = eagle.explain(
        sample.image, target="cat", feature_mask=mask, additional_forward_args=(sample,)
    )
    assert word.target_tokens == [" cat"]
    assert word.trajectories.shape == (1, mask.n_regions + 1)
    span = eagle.explain(
        sample.image, target=slice(0, 2), feature_mask=mask, additional_forward_args=(sample,)
    )
    assert span.target_tokens == sample.answer_tokens[:2]


def test_to_captum_plots(result) -> None:
    captum_result = result.to_captum()
    assert isinstance(captum_result, LLMAttributionResult)
    assert captum_result.token_attr.shape == (len(result.target_tokens), result.n_regions)
    fig, _ = captum_result.plot_token_attr(show=False)
    assert fig is not None
    matplotlib.pyplot.close("all")


def test_show_draws_the_summary(result, sample) -> None:
    fig, axes = result.show(sample)
    assert len(fig.axes) >= 3 and len(axes) >= 3
    matplotlib.pyplot.close("all")


def test_image_mask_input_heatmap(wrapper, photo, sample) -> None:
    labels = torch.zeros(photo.height, photo.width, dtype=torch.long)
    labels[:, photo.width // 2 :] = 1
    labels[: photo.height // 2, : photo.width // 2] = 2
    inputs = ImageMaskInput(image=photo, mask=labels)
    eagle = EagleAttribution(wrapper)
    attribution = eagle.attribute(inputs, additional_forward_args=(sample,))
    assert attribution.shape == sample.image.shape
    fig, _ = eagle.last_result.to_captum().plot_image_heatmap(show=False)
    assert fig is not None
    matplotlib.pyplot.close("all")


def test_save_and_load_round_trip(result, tmp_path) -> None:
    path = tmp_path / "eagle.json"
    result.save(path)
    loaded = EagleResult.load(path)
    assert torch.equal(loaded.order, result.order)
    torch.testing.assert_close(loaded.trajectories, result.trajectories)
    assert loaded.target_tokens == result.target_tokens and loaded.forwards == result.forwards


def test_bad_inputs_are_clear_errors(wrapper, sample, mask) -> None:
    eagle = EagleAttribution(wrapper)
    args = (sample,)
    with pytest.raises(ValueError, match="feature mask is"):
        eagle.attribute(
            sample.image, feature_mask=FeatureMask.grid((8, 8), 2, 2), additional_forward_args=args
        )
    with pytest.raises(ValueError, match="single region"):
        eagle.attribute(
            sample.image, feature_mask=torch.zeros_like(mask.mask), additional_forward_args=args
        )
    with pytest.raises(IndexError, match="out of range"):
        eagle.attribute(sample.image, target=[9], feature_mask=mask, additional_forward_args=args)
    bad = sample.image.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        eagle.attribute(bad, feature_mask=mask, additional_forward_args=args)
    with pytest.raises(ValueError, match="additional_forward_args"):
        eagle.attribute(sample.image, feature_mask=mask)
    with pytest.raises(ValueError, match="Unknown search strategy 'best'"):
        eagle.attribute(
            sample.image, feature_mask=mask, additional_forward_args=args, search="best"
        )
    with pytest.raises(TypeError, match="MLLMForwardWrapper"):
        EagleAttribution(lambda x: x)
