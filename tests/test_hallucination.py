"""Hallucination: answer matching, counterfactual cases, mitigation loop, AMCR/CSR, shapes model."""

from __future__ import annotations

import warnings

import matplotlib
import pytest
import torch
from PIL import Image

from captum_eagle import EagleAttribution, FeatureMask, MLLMForwardWrapper
from captum_eagle.baselines import ForwardCounter
from captum_eagle.hallucination import (
    HallucinationResult,
    answer_word,
    explain_hallucination,
    mitigate,
    prepare_case,
    region_order_from_map,
)
from captum_eagle.metrics import amcr, csr
from captum_eagle.testing import tiny_model

matplotlib.use("Agg")

QUESTION = "is there a cat ?"


@pytest.fixture(scope="module")
def llava() -> MLLMForwardWrapper:
    return MLLMForwardWrapper(*tiny_model("llava"), batch_size=4)


@pytest.fixture(scope="module")
def grey() -> Image.Image:
    return Image.new("RGB", (32, 32), (128, 128, 128))


@pytest.fixture(scope="module")
def case(llava, grey):
    return prepare_case(llava, grey, QUESTION, answer=" Yes.")


@pytest.fixture(scope="module")
def grid(case) -> FeatureMask:
    return FeatureMask.grid(case.image, 4, 4)


# -- answer matching ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "word"),
    [
        (" Yes.", "yes"),
        ("YES", "yes"),
        ("yes", "yes"),
        ("no,", "no"),
        ("  No there is not", "no"),
        ("\nNO!", "no"),
        ("maybe", None),
        ("yesterday", None),
        ("", None),
        ("...", None),
    ],
)
def test_answer_word_ignores_case_punctuation_and_spaces(text, word):
    assert answer_word(text) == word


def test_case_targets_the_counterfactual_first_token(llava, grey):
    case = prepare_case(llava, grey, QUESTION, answer=" Yes.")
    assert (case.wrong, case.correct) == ("yes", "no")
    assert case.sample.answer == "no"
    assert case.sample.target_tokens == ["no"]
    assert case.sample.target_indices.tolist() == [0]
    flipped = prepare_case(llava, grey, QUESTION, answer="NO", correct="Yes")
    assert (flipped.wrong, flipped.correct, flipped.sample.answer) == ("no", "yes", "yes")


def test_case_errors_name_the_fix(llava, grey):
    with pytest.raises(ValueError, match="not a yes/no answer"):
        prepare_case(llava, grey, QUESTION, answer="a red cat")
    with pytest.raises(ValueError, match="correct answer 'perhaps' is not a yes/no"):
        prepare_case(llava, grey, QUESTION, answer="yes", correct="perhaps")
    with pytest.raises(ValueError, match="which is correct"):
        prepare_case(llava, grey, QUESTION, answer="Yes.", correct="yes")
    # The tiny random model does not answer yes/no on its own: the generated answer is rejected.
    with pytest.raises(ValueError, match=r"model's answer .* is not a yes/no answer"):
        prepare_case(llava, grey, QUESTION, correct="no")


# -- metrics -----------------------------------------------------------------------------------
def test_amcr_and_csr_moved_to_metrics_warn_from_their_old_module():
    import captum_eagle.hallucination as hallucination

    for name, moved in (("amcr", amcr), ("csr", csr)):
        with pytest.warns(DeprecationWarning, match=f"captum_eagle.metrics.{name}"):
            assert getattr(hallucination, name) is moved


def test_amcr_and_csr_keep_uncorrected_cases_in_the_denominator():
    fractions = [0.0625, 0.125, None, 0.03125]
    assert amcr(fractions) == pytest.approx((0.0625 + 0.125 + 1.0 + 0.03125) / 4)
    assert csr(fractions) == pytest.approx(2 / 4)
    assert csr(fractions, threshold=0.25) == pytest.approx(3 / 4)
    assert csr([0.1, 0.1000001]) == pytest.approx(0.5)
    assert csr([None, None]) == 0.0
    assert amcr([None]) == 1.0


def _result(flip_point: int | None, n_regions: int = 16) -> HallucinationResult:
    mask = FeatureMask.grid((8, 8), 4, 4).mask
    return HallucinationResult(
        question=QUESTION,
        answer="yes",
        wrong="yes",
        correct="no",
        method="hand-made",
        removal_order=torch.arange(n_regions),
        flip_point=flip_point,
        probabilities=torch.zeros(n_regions + 1),
        answers=["yes"],
        hallucination_map=torch.zeros(1, 1, 8, 8),
        feature_mask=mask,
        image=torch.zeros(1, 3, 8, 8),
    )


def test_metrics_on_results():
    results = [_result(1), _result(2), _result(None), _result(8)]
    assert [r.fraction_removed for r in results] == [1 / 16, 2 / 16, 1.0, 0.5]
    assert results[2].removed_regions == list(range(16))
    assert results[1].removed_regions == [0, 1]
    assert results[1].removed_mask().sum().item() == 8
    assert amcr(results) == pytest.approx((1 / 16 + 2 / 16 + 1.0 + 0.5) / 4)
    assert csr(results) == pytest.approx(0.25)
    assert csr(results, threshold=0.25) == pytest.approx(0.5)
    # A case that only the fully blank image corrects is not corrected (removals 0 .. N - 1).
    blank_only = _result(16)
    assert not blank_only.corrected and blank_only.fraction_removed == 1.0
    assert blank_only.area_removed == 1.0 and blank_only.removed_regions == list(range(16))
    assert csr([blank_only], threshold=1.0) == 0.0 and amcr([blank_only]) == 1.0
    assert csr([_result(15)], threshold=1.0) == 1.0
    assert csr([_result(None)], threshold=1.0) == 0.0


def test_amcr_and_csr_measure_area_by_default():
    # Regions of 8, 8 and 48 pixels; the big one is removed first and fixes the answer.
    labels = torch.full((8, 8), 2)
    labels[0] = 0
    labels[1] = 1
    big_first = _result(1, n_regions=3)
    big_first.feature_mask = labels[None, None]
    big_first.removal_order = torch.tensor([2, 0, 1])
    small_first = _result(1, n_regions=3)
    small_first.feature_mask = labels[None, None]
    small_first.removal_order = torch.tensor([0, 2, 1])
    assert big_first.area_removed == 0.75 and small_first.area_removed == 0.125
    assert big_first.fraction_removed == small_first.fraction_removed == pytest.approx(1 / 3)
    assert amcr([big_first, small_first]) == pytest.approx((0.75 + 0.125) / 2)
    assert amcr([big_first, small_first], by="regions") == pytest.approx(1 / 3)
    assert csr([big_first, small_first], threshold=0.2) == 0.5
    assert csr([big_first, small_first], threshold=0.2, by="regions") == 0.0
    with pytest.raises(ValueError, match="by must be one of"):
        amcr([big_first], by="pixels")


def test_metric_errors():
    with pytest.raises(ValueError, match="No cases"):
        amcr([])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        csr([1.5])
    with pytest.raises(ValueError, match="threshold"):
        csr([0.1], threshold=2)


# -- region orders -----------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:region_order_from_map is deprecated:DeprecationWarning")
def test_region_order_from_map_both_ends():
    mask = FeatureMask.grid((4, 4), 2, 2)
    values = torch.tensor([0.5, -1.0, 2.0, 0.0])
    with pytest.warns(DeprecationWarning, match="use captum_eagle.maps.region_order"):
        order, scores = region_order_from_map(values[mask.mask].expand(1, 3, 4, 4), mask)
    assert order.tolist() == [1, 3, 0, 2]
    assert scores.tolist() == pytest.approx([0.5, 1.0, 0.0, 2 / 3])
    high, _ = region_order_from_map(values[mask.mask][0, 0], mask.mask, "high")
    assert high.tolist() == [2, 0, 3, 1]
    tied, _ = region_order_from_map(torch.zeros(4, 4), mask)
    assert tied.tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="hallucination_end"):
        region_order_from_map(torch.zeros(4, 4), mask, "end")
    with pytest.raises(ValueError, match="regions are"):
        region_order_from_map(torch.zeros(5, 5), mask)


# -- the mitigation loop -----------------------------------------------------------------------
class _FlipsAfter:
    """A fake generate: the answer turns "No." once ``k`` regions are blacked out."""

    def __init__(self, k: int | None, region_area: int) -> None:
        self.k = k
        self.region_area = region_area
        self.calls: list[int] = []

    def __call__(self, images, sample, max_new_tokens=32):
        self.calls.append(images.shape[0])
        removed = (images == 0).all(dim=1).flatten(1).sum(dim=1) // self.region_area
        return ["No." if self.k is not None and r >= self.k else " Yes" for r in removed.tolist()]


def test_mitigation_stops_at_the_first_flip(llava, case, grid, monkeypatch):
    fake = _FlipsAfter(5, region_area=64)
    monkeypatch.setattr(llava, "generate", fake)
    order = torch.arange(16).flip(0)
    result = mitigate(llava, case, grid, removal_order=order, generate_batch_size=4)
    assert result.flip_point == 5
    assert result.corrected
    assert result.removed_regions == [15, 14, 13, 12, 11]
    assert result.fraction_removed == pytest.approx(5 / 16)
    # Batches of removals 1-4 and 5-8; nothing after the batch holding the flip.
    assert fake.calls == [4, 4]
    assert result.answers == [" Yes."] + [" Yes"] * 4 + ["No."] * 4
    assert result.removed_mask().sum().item() == 5 * 64
    # Teacher-forced p("no") after k removals, batched over all 17 images.
    assert result.probabilities.shape == (17,)
    images = case.image.repeat(2, 1, 1, 1)
    images[1, :, 16:, :] = 0.0  # the bottom half = regions 8..15
    expected = llava.token_probabilities(images, case.sample)[:, 0]
    assert result.probabilities[[0, 8]] == pytest.approx(expected.tolist(), abs=1e-5)


def test_mitigation_without_flip_removes_everything(llava, case, grid, monkeypatch):
    fake = _FlipsAfter(None, region_area=64)
    monkeypatch.setattr(llava, "generate", fake)
    result = mitigate(llava, case, grid, removal_order=list(range(16)), generate_batch_size=5)
    assert result.flip_point is None
    assert not result.corrected
    assert result.fraction_removed == 1.0
    assert result.removed_regions == list(range(16))
    assert fake.calls == [5, 5, 5]  # removals 1 .. 15: the blank image is not tried
    assert len(result.answers) == 16
    assert result.probabilities.shape == (17,)  # the curve still ends on the blank image


def test_a_flip_on_the_blank_image_only_is_not_a_correction(llava, case, grid, monkeypatch):
    monkeypatch.setattr(llava, "generate", _FlipsAfter(16, region_area=64))
    result = mitigate(llava, case, grid, removal_order=list(range(16)), generate_batch_size=4)
    assert result.flip_point is None and not result.corrected
    assert result.area_removed == 1.0


def test_mitigation_accepts_any_attribution_map(llava, case, grid, monkeypatch):
    fake = _FlipsAfter(2, region_area=64)
    monkeypatch.setattr(llava, "generate", fake)
    scores = torch.arange(16, dtype=torch.float32)
    attribution = scores[grid.mask].expand(1, 3, 32, 32)  # a Captum-style map
    low = mitigate(llava, case, grid, attribution=attribution, method="captum")
    assert low.removal_order[:3].tolist() == [0, 1, 2]
    assert low.removed_regions == [0, 1]
    assert low.method == "captum"
    high = mitigate(llava, case, grid.mask, attribution=attribution, hallucination_end="high")
    assert high.removed_regions == [15, 14]
    assert high.hallucination_map[0, 0, 0, 0] == 0.0 and high.hallucination_map.max() == 1.0


def test_mitigation_errors(llava, case, grid):
    with pytest.raises(ValueError, match="exactly one"):
        mitigate(llava, case, grid)
    with pytest.raises(ValueError, match="exactly one"):
        mitigate(llava, case, grid, removal_order=range(16), attribution=torch.zeros(32, 32))
    with pytest.raises(ValueError, match="every region id"):
        mitigate(llava, case, grid, removal_order=[0, 0, 1])
    with pytest.raises(ValueError, match="one value per region"):
        mitigate(llava, case, grid, removal_order=range(16), hallucination_map=torch.zeros(3))


def test_eagle_rules_and_plot(llava, case, monkeypatch):
    monkeypatch.setattr(llava, "generate", _FlipsAfter(3, region_area=256))
    mask = FeatureMask.grid(case.image, 2, 2)
    by_order = explain_hallucination(llava, case, mask)
    eagle = by_order.explanation
    assert by_order.method == "eagle"
    assert by_order.removal_order.tolist() == eagle.order.flip(0).tolist()
    assert by_order.flip_point == 3
    # The hallucination map is high at the end of the Eagle order.
    region_values = torch.stack(
        [by_order.hallucination_map[0, 0][m].mean() for m in mask.region_masks()]
    )
    assert region_values[eagle.order[-1]] == 1.0 and region_values[eagle.order[0]] == 0.0
    by_gain = explain_hallucination(llava, case, mask, rule="gain", explanation=eagle)
    gains = torch.empty(4)
    gains[eagle.order] = eagle.gains
    assert by_gain.method == "eagle-gain"
    assert gains[by_gain.removal_order].tolist() == sorted(gains.tolist())
    with pytest.raises(ValueError, match="rule"):
        explain_hallucination(llava, case, mask, rule="middle", explanation=eagle)
    fig, axes = by_order.plot()
    assert sorted(axes) == ["curve", "image", "map", "removed"]
    matplotlib.pyplot.close(fig)


# -- the bundled shapes model: a real hallucination --------------------------------------------
def _shapes_wrapper() -> MLLMForwardWrapper:
    from captum_eagle.zoo import WEIGHTS_DIR, load_default_model

    if not (WEIGHTS_DIR / "model.safetensors").is_file():
        pytest.skip("the shapes model weights are not trained yet")
    return MLLMForwardWrapper(*load_default_model(), batch_size=32)


def _first_hallucination(wrapper: MLLMForwardWrapper, seeds: range):
    """The first partial-match scene the model answers "yes" although the object is absent, and
    whose answer flips when one distractor object alone is removed (the oracle cause)."""
    from captum_eagle.zoo import generate_scene, question_prompt

    for seed in seeds:
        scene = generate_scene(seed, kind="partial_match")
        question = scene.questions[0]
        probe = wrapper.prepare(scene.image, question_prompt(question), "no")
        answer = wrapper.generate(probe.image, probe, max_new_tokens=4)[0]
        if answer_word(answer) != "yes":
            continue
        masks = torch.stack([torch.from_numpy(obj.mask) for obj in scene.objects])
        removed = torch.where(masks[:, None], torch.zeros(()), probe.image)
        flips = [answer_word(text) == "no" for text in wrapper.generate(removed, probe)]
        causes = [i for i, flip in enumerate(flips) if flip]
        if causes:
            return scene, question, answer, masks[causes].any(0)
    pytest.skip(f"the shapes model makes no single-cause hallucination on seeds {seeds}")


def test_shapes_model_hallucination_is_fixed_by_removing_its_distractor():
    wrapper = _shapes_wrapper()
    scene, question, answer, cause = _first_hallucination(wrapper, range(40))
    case = prepare_case(wrapper, scene.image, question.text, answer=answer, correct="no")
    assert case.sample.target_tokens == ["no"]
    result = explain_hallucination(wrapper, case, n_segments=16, generate_batch_size=4)
    assert result.corrected
    assert result.answers[result.flip_point].strip().startswith("no")
    assert result.probabilities[result.flip_point] > result.probabilities[0]
    first = result.feature_mask[0, 0] == result.removal_order[0]
    assert (first & cause).sum() >= 0.25 * first.sum()


# -- names that moved --------------------------------------------------------------------------
def test_prepare_case_uses_no_deprecated_keyword(llava, grey) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        case = prepare_case(llava, grey, QUESTION, answer=" Yes.")
    assert case.sample.target_tokens[0].strip().lower() == "no"


def test_moved_names_warn_and_still_work(llava, case, grid, monkeypatch):
    import captum_eagle.hallucination as hallucination
    from captum_eagle import metrics

    with pytest.warns(DeprecationWarning, match=r"use captum_eagle\.metrics\.amcr"):
        assert hallucination.amcr is metrics.amcr
    with pytest.warns(DeprecationWarning, match=r"captum_eagle\.metrics\.csr"):
        assert hallucination.csr is metrics.csr
    with pytest.raises(AttributeError, match="no attribute 'cmar'"):
        hallucination.cmar  # noqa: B018
    with pytest.warns(DeprecationWarning, match="region_order_from_map is deprecated"):
        region_order_from_map(torch.zeros(4, 4), FeatureMask.grid((4, 4), 2, 2))
    monkeypatch.setattr(llava, "generate", _FlipsAfter(None, region_area=64))
    with pytest.warns(DeprecationWarning, match=r"mitigate\(baseline=...\) is deprecated"):
        old = mitigate(llava, case, grid, removal_order=range(16), baseline=0.5)
    new = mitigate(llava, case, grid, removal_order=range(16), baselines=0.5)
    assert torch.equal(old.probabilities, new.probabilities)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        mitigate(llava, case, grid, removal_order=range(16), baselines=255)
    with (
        pytest.warns(DeprecationWarning, match=r"explain_hallucination\(baseline=...\)"),
        pytest.raises(ValueError, match=r"\[0, 1\]"),
    ):
        explain_hallucination(llava, case, grid, baseline=255)


# -- bad inputs (issue 20): refused before the first forward, the fix in the message -----------
ORDER = list(range(16))


@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"removal_order": [float(i) for i in ORDER]}, TypeError, "integer region ids"),
        ({"removal_order": [True] * 16}, TypeError, "integer region ids"),
        ({"generate_batch_size": 0}, ValueError, "generate_batch_size must be >= 1"),
        ({"generate_batch_size": 1.5}, TypeError, "generate_batch_size must be an int"),
        ({"generate_batch_size": True}, TypeError, "generate_batch_size must be an int"),
        ({"max_new_tokens": 0}, ValueError, "max_new_tokens must be >= 1"),
        ({"max_new_tokens": 2.0}, TypeError, "max_new_tokens must be an int"),
        ({"hallucination_map": [float("nan")] * 16}, ValueError, "NaN or infinite"),
        ({"method": None}, TypeError, "method must be a str"),
        ({"explanation": "eagle"}, TypeError, "explanation must be an EagleResult"),
        ({"removal_order": None, "attribution": FeatureMask.grid((32, 32), 4, 4)},
         TypeError, "FeatureMask holds region ids"),
    ],
)  # fmt: skip
def test_mitigate_refuses_bad_options_before_any_forward(
    llava, case, grid, options, error, message
) -> None:
    options = {"removal_order": ORDER, **options}
    with ForwardCounter(llava) as counter, pytest.raises(error, match=message):
        mitigate(llava, case, grid, **options)
    assert counter.calls == 0


@pytest.mark.parametrize("function", [mitigate, explain_hallucination])
def test_mitigation_needs_a_prepared_case_and_a_wrapper(llava, case, grid, function) -> None:
    options = {"removal_order": ORDER} if function is mitigate else {}
    with ForwardCounter(llava) as counter:
        with pytest.raises(TypeError, match="case must be a HallucinationCase"):
            function(llava, case.sample, grid, **options)  # a PreparedSample is not a case
        with pytest.raises(TypeError, match="case must be a HallucinationCase"):
            function(llava, None, grid, **options)
        with pytest.raises(TypeError, match="wrapper must be an MLLMForwardWrapper"):
            function(llava.model, case, grid, **options)
    assert counter.calls == 0


@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"rule": "gains"}, ValueError, r"rule must be one of \('order', 'gain'\)"),
        ({"generate_batch_size": 0}, ValueError, "generate_batch_size must be >= 1"),
        ({"max_new_tokens": 1.5}, TypeError, "max_new_tokens must be an int"),
        ({"explanation": "eagle"}, TypeError, "explanation must be an EagleResult"),
    ],
)
def test_explain_hallucination_checks_options_before_the_search(
    llava, case, grid, options, error, message
) -> None:
    # before: a bad rule or generation setting failed only after the whole Eagle search
    with ForwardCounter(llava) as counter, pytest.raises(error, match=message):
        explain_hallucination(llava, case, grid, **options)
    assert counter.calls == 0


def test_explain_hallucination_refuses_an_explanation_of_another_answer(llava, case) -> None:
    halves = FeatureMask.grid(case.image, 1, 2)
    other = llava.prepare(case.image, QUESTION, "cat", target_tokens=0)
    explanation = EagleAttribution(llava).explain(
        other.image, additional_forward_args=(other,), feature_mask=halves
    )
    with ForwardCounter(llava) as counter, pytest.raises(ValueError, match=r"explain case\.sample"):
        explain_hallucination(llava, case, halves, explanation=explanation)
    assert counter.calls == 0
