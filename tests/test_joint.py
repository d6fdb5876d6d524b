"""Joint search over image regions and prompt words: scorer, explanation, Captum forward."""

from __future__ import annotations

import doctest
from collections.abc import Iterator
from contextlib import contextmanager

import matplotlib
import numpy
import pytest
import torch
from captum.attr import FeatureAblation, ImageMaskInput, KernelShap
from PIL import Image

from captum_eagle import EagleAttribution, FeatureMask, MLLMForwardWrapper
from captum_eagle.joint import JointForward, JointResult, JointScorer, explain_joint
from captum_eagle.search import StochasticGreedy, get_search, list_searches, run_search
from captum_eagle.testing import tiny_model
from captum_eagle.text_features import prompt_features

matplotlib.use("Agg")

QUESTION = "is there a red cat?"
N_IMAGE, N_TEXT = 2, 6


@pytest.fixture(scope="module", params=["llava", "qwen2_5_vl", "internvl"])
def family_wrapper(request: pytest.FixtureRequest) -> MLLMForwardWrapper:
    return MLLMForwardWrapper(*tiny_model(request.param), batch_size=64)


@pytest.fixture(scope="module")
def llava() -> MLLMForwardWrapper:
    return MLLMForwardWrapper(*tiny_model("llava"), batch_size=64)


def _setup(wrapper: MLLMForwardWrapper):
    image = Image.new("RGB", (32, 32), "red")
    sample = wrapper.prepare(image, QUESTION, "yes a red cat")
    mask = FeatureMask.grid(sample.image, 2, 1)
    return sample, mask, prompt_features(wrapper.tokenizer, sample)


@contextmanager
def _model_calls(wrapper: MLLMForwardWrapper) -> Iterator[list[int]]:
    """Record one entry per call of the model's forward."""
    calls: list[int] = []
    handle = wrapper.model.register_forward_pre_hook(lambda module, args: calls.append(1))
    try:
        yield calls
    finally:
        handle.remove()


def test_scorer_equals_one_masked_input_at_a_time(family_wrapper: MLLMForwardWrapper) -> None:
    sample, mask, words = _setup(family_wrapper)
    scorer = JointScorer(family_wrapper, sample, mask, words, text_baseline="pad")
    assert scorer.n_regions == N_IMAGE + N_TEXT
    generator = torch.Generator().manual_seed(0)
    subsets = torch.rand(5, scorer.n_regions, generator=generator) < 0.5
    scores = scorer.score(subsets, terms=(True, False))
    pad = family_wrapper.tokenizer.pad_token_id
    pixel_region = mask.mask[0, 0]
    for row, subset in enumerate(subsets):
        for keep, batched in ((True, scores.kept[row]), (False, scores.removed[row])):
            shown = subset == keep
            visible = shown[:N_IMAGE][pixel_region]
            image = torch.where(visible, sample.image, torch.zeros_like(sample.image))
            prompt_ids = sample.prompt_ids.clone()
            for feature, present in zip(words, shown[N_IMAGE:], strict=True):
                if not present:
                    prompt_ids[0, list(feature.positions)] = pad
            single = family_wrapper.token_probabilities(image, sample, prompt_ids=prompt_ids)[0]
            torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-4)


def test_prompt_ids_keyword_of_the_wrapper(llava: MLLMForwardWrapper) -> None:
    sample, _, _ = _setup(llava)
    images = sample.image.repeat(2, 1, 1, 1)
    same = llava.token_probabilities(images, sample, prompt_ids=sample.prompt_ids.repeat(2, 1))
    torch.testing.assert_close(same, llava.token_probabilities(images, sample))
    with pytest.raises(ValueError, match="prompt_ids must be a"):
        llava.token_probabilities(images, sample, prompt_ids=sample.prompt_ids)
    with pytest.raises(TypeError, match=r"torch\.long"):
        llava.token_probabilities(images, sample, prompt_ids=sample.prompt_ids.repeat(2, 1) * 1.0)


def test_exact_search_is_greedy_over_both_kinds_in_one_forward_per_step(llava) -> None:
    sample, mask, words = _setup(llava)
    with _model_calls(llava) as calls:
        result = explain_joint(llava, sample, mask)
    n = N_IMAGE + N_TEXT
    assert result.feature_kinds == ["image"] * N_IMAGE + ["text"] * N_TEXT
    assert result.eagle.forwards == n * (n + 1) - 4  # each distinct model input scored once
    # One batch of mixed subsets per step (step 1 includes the empty set); the last two steps
    # and the trajectories only meet model inputs scored before (cached): n - 1 calls in all.
    assert len(calls) == n - 1
    # The same greedy by hand on a fresh scorer.
    scorer = JointScorer(llava, sample, mask, words)
    order: list[int] = []
    for _ in range(n):
        remaining = [a for a in range(n) if a not in order]
        subsets = torch.zeros(len(remaining), n, dtype=torch.bool)
        subsets[:, order] = True
        subsets[torch.arange(len(remaining)), remaining] = True
        values = scorer.objective(scorer.score(subsets))
        order.append(remaining[int(torch.argmax(values))])
    assert result.order.tolist() == order


@pytest.mark.parametrize("name", list_searches())
def test_every_search_strategy_runs_on_the_joint_features(llava, name: str) -> None:
    sample, mask, words = _setup(llava)
    scorer = JointScorer(llava, sample, mask, words)
    order = run_search(get_search(name), scorer)
    assert sorted(order) == list(range(N_IMAGE + N_TEXT))


def test_result_scores_reliance_and_captum_plot(llava) -> None:
    sample, mask, _ = _setup(llava)
    result = explain_joint(llava, sample, mask, text_features=[range(0, 3), (11, 18)])
    assert result.feature_labels == ["region 0", "region 1", "is there a", "red cat"]
    assert result.image_scores.shape == (2,) and result.text_scores.shape == (2,)
    joint = torch.cat([result.image_scores, result.text_scores])
    assert joint[result.order[0]] == 1.0 and joint.min() == 0.0
    assert result.attribution_map().shape == (1, 1, 32, 32)
    defined = ~torch.isnan(result.reliance)
    assert ((result.reliance[defined] >= 0) & (result.reliance[defined] <= 1)).all()
    torch.testing.assert_close(result.text_reliance[defined], 1 - result.reliance[defined])
    captum = result.to_captum()
    assert captum.input_tokens == result.feature_labels
    assert captum.output_tokens == ["yes", " a", " red", " cat"]
    assert tuple(captum.token_attr.shape) == (4, 4)
    fig, _ = captum.plot_token_attr()
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == result.feature_labels
    matplotlib.pyplot.close(fig)


def test_result_saves_and_loads_field_by_field(llava, tmp_path) -> None:
    sample, mask, _ = _setup(llava)
    result = explain_joint(llava, sample, mask, search=StochasticGreedy(fraction=0.5, seed=4))
    path = tmp_path / "joint.json"
    result.save(path)
    loaded = JointResult.load(path)
    assert loaded.text_features == result.text_features
    assert isinstance(loaded.text_features[0].positions, tuple)
    assert loaded.feature_kinds == result.feature_kinds
    assert torch.equal(loaded.order, result.order) and loaded.order.dtype == torch.int64
    torch.testing.assert_close(loaded.reliance, result.reliance, equal_nan=True)
    torch.testing.assert_close(loaded.eagle.trajectories, result.eagle.trajectories)
    assert loaded.eagle.search_options == result.eagle.search_options
    assert loaded.eagle.search_options["seed"] == 4
    assert loaded.feature_labels == result.feature_labels
    with pytest.raises(ValueError, match="Unknown JointResult keys"):
        JointResult.from_dict({**result.to_dict(), "regions": 3})
    with pytest.raises(ValueError, match="lacks 'reliance'"):
        JointResult.from_dict({k: v for k, v in result.to_dict().items() if k != "reliance"})


def test_explain_with_text_features_from_an_image_mask_input(llava) -> None:
    photo = Image.new("RGB", (32, 32), "red")
    sample = llava.prepare(photo, QUESTION, "yes a red cat")
    labels = torch.zeros(32, 32, dtype=torch.long)
    labels[:, 16:] = 1
    eagle = EagleAttribution(llava)
    result = eagle.explain_joint(
        ImageMaskInput(image=photo, mask=labels),
        "words",
        additional_forward_args=(sample,),
        target=0,
    )
    assert isinstance(result, JointResult) and result.n_image_regions == 2
    same = explain_joint(llava, sample, FeatureMask.from_labels(labels[None, None]), target=0)
    assert torch.equal(result.order, same.order)
    torch.testing.assert_close(result.eagle.objective, same.eagle.objective)
    captum = result.to_captum()
    assert captum.input_tokens[2:] == ["is", "there", "a", "red", "cat", "?"]
    _, ax = captum.plot_image_heatmap(target_token_pos=0)
    shown = numpy.asarray(ax.images[1].get_array())
    assert shown.shape == (32, 32), shown.shape
    expected = result.eagle.token_attribution[0, :2]
    assert shown[0, 0] == pytest.approx(float(expected[0]), abs=1e-6)
    assert shown[0, -1] == pytest.approx(float(expected[1]), abs=1e-6)
    matplotlib.pyplot.close("all")
    with pytest.raises(TypeError, match="unexpected keyword argument 'text_baselines'"):
        eagle.explain_joint(sample.image, additional_forward_args=(sample,), text_baselines=0)
    with pytest.raises(ValueError, match="takes one image; got a batch of 2"):
        eagle.explain_joint(sample.image.expand(2, -1, -1, -1), additional_forward_args=(sample,))
    with pytest.raises(TypeError, match="text_features must be 'words'"):
        eagle.explain_joint(
            sample.image, 3, additional_forward_args=(sample,), feature_mask=labels[None, None]
        )


def test_target_selects_the_explained_tokens(llava) -> None:
    sample, mask, _ = _setup(llava)
    result = explain_joint(llava, sample, mask, target=slice(0, 2), search="efficient")
    assert result.eagle.target_tokens == ["yes", " a"]
    assert tuple(result.eagle.trajectories.shape) == (2, N_IMAGE + N_TEXT + 1)
    assert result.reliance.shape == (2,)


def test_invalid_inputs_fail_before_any_forward(llava) -> None:
    sample, mask, _ = _setup(llava)
    with _model_calls(llava) as calls:
        with pytest.raises(ValueError, match="overlap"):
            explain_joint(llava, sample, mask, text_features=[(0, 5), (3, 8)])
        with pytest.raises(ValueError, match="one known token"):
            explain_joint(llava, sample, mask, text_baseline="zebra")
        with pytest.raises(ValueError, match="search strategy"):
            explain_joint(llava, sample, mask, search="nonsense")
        with pytest.raises(ValueError, match="batch_size"):
            explain_joint(llava, sample, mask, batch_size="many")
        with pytest.raises(TypeError, match="PreparedSample"):
            explain_joint(llava, "is there a cat?", mask)
    assert calls == []


def test_feature_ablation_equals_the_scorers_removal_drops(llava) -> None:
    sample, mask, words = _setup(llava)
    joint = JointForward(llava, sample, mask)
    n = joint.n_features
    attribution = FeatureAblation(joint).attribute(
        torch.ones(1, n), baselines=0.0, feature_mask=torch.arange(n)[None]
    )
    scorer = JointScorer(llava, sample, mask, words)
    full = scorer.score(torch.ones(1, n, dtype=torch.bool), terms=(True,)).kept.mean()
    removed = scorer.score(torch.eye(n, dtype=torch.bool), terms=(False,)).removed.mean(dim=1)
    torch.testing.assert_close(attribution[0], full - removed, atol=1e-5, rtol=1e-4)


def test_kernel_shap_runs_and_forward_checks_its_input(llava) -> None:
    sample, mask, _ = _setup(llava)
    joint = JointForward(llava, sample, mask)
    n = joint.n_features
    attribution = KernelShap(joint).attribute(
        torch.ones(1, n), baselines=0.0, feature_mask=torch.arange(n)[None], n_samples=12
    )
    assert attribution.shape == (1, n) and torch.isfinite(attribution).all()
    assert attribution.abs().sum() > 0
    with pytest.raises(ValueError, match="binary"):
        joint(torch.full((1, n), 0.5))
    with pytest.raises(ValueError, match="columns"):
        joint(torch.ones(1, n + 1))


def test_shapes_model_asked_colour_matters_more_than_filler_words() -> None:
    from captum_eagle.zoo import generate_scene, load_default_model

    wrapper = MLLMForwardWrapper(*load_default_model(), batch_size=32)
    question = generate_scene(0).questions[0]
    sample = wrapper.prepare(generate_scene(0).pil(), question.text, max_new_tokens=1)
    joint = JointForward(wrapper, sample, FeatureMask.grid(sample.image, 2, 2))
    n = joint.n_features
    drops = FeatureAblation(joint).attribute(
        torch.ones(1, n), baselines=0.0, feature_mask=torch.arange(n)[None]
    )[0]
    by_label = dict(zip(joint.feature_labels, drops.tolist(), strict=True))
    filler = max(abs(by_label[word]) for word in ("is", "there", "a", "?"))
    assert by_label[question.colour] > filler


def test_docstring_examples_run() -> None:
    import captum_eagle.joint as module

    results = doctest.testmod(module)
    assert results.attempted > 0 and results.failed == 0
