"""Metrics on hand-made cases with known answers, and end to end on the tiny LLaVA model."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from captum_eagle import FeatureMask, MLLMForwardWrapper
from captum_eagle.metrics import (
    Curve,
    PointingResult,
    amcr,
    average_auc,
    average_highest_score,
    csr,
    deletion_curve,
    insertion_curve,
    pointing_game,
    sensitive_tokens,
    word_curves,
)
from captum_eagle.testing import tiny_model

SIZE = 8
OBJECT = (slice(0, 4), slice(0, 4))  # top-left quadrant: a quarter of the image


class ObjectForward:
    """A fake wrapper whose answer depends on one region only, with exactly known curves.

    Token 0 ("cat"): the visible fraction of the object (1 on the full image, 0 on black).
    Token 1 ("is"): 0.5 whatever the image (a language-prior token).
    Token 2 ("red"): 0.25 + 0.25 × the visible fraction (changes by exactly 0.25).
    """

    batch_size = 3

    def __init__(self) -> None:
        self.batches: list[torch.Tensor] = []

    def token_probabilities(self, images: torch.Tensor, sample: SimpleNamespace) -> torch.Tensor:
        self.batches.append(images.clone())
        visible = images[:, 0, OBJECT[0], OBJECT[1]].mean(dim=(1, 2))
        columns = [visible, torch.full_like(visible, 0.5), 0.25 + 0.25 * visible]
        return torch.stack(columns, dim=1)[:, sample.target_indices]


@pytest.fixture()
def fake() -> ObjectForward:
    return ObjectForward()


@pytest.fixture()
def fake_sample() -> SimpleNamespace:
    return SimpleNamespace(
        image=torch.ones(1, 3, SIZE, SIZE),
        target_indices=torch.tensor([0, 1, 2]),
        target_tokens=["cat", " is", " red"],
    )


def object_map() -> torch.Tensor:
    attribution = torch.zeros(SIZE, SIZE)
    attribution[OBJECT] = 1.0
    return attribution


def flat_curve(value: float, kind: str = "insertion") -> Curve:
    return Curve(
        kind,
        fractions=torch.tensor([0.0, 0.3, 0.5, 1.0]),
        token_probabilities=torch.full((4, 1), value),
        target_tokens=["cat"],
        target_indices=torch.tensor([0]),
    )


# -- curves on a forward with known answers ----------------------------------------------------
def test_auc_of_constant_curve_is_the_constant() -> None:
    for value in (0.0, 0.37, 1.0):
        curve = flat_curve(value)
        assert curve.auc == pytest.approx(value)
        assert curve.highest == pytest.approx(value)


def test_insertion_ranks_the_object_first(fake, fake_sample) -> None:
    correct = insertion_curve(fake, fake_sample, object_map(), steps=4)
    reversed_ = insertion_curve(fake, fake_sample, -object_map(), steps=4)
    assert correct.fractions.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert correct.token_probabilities[:, 0].tolist() == [0.0, 1.0, 1.0, 1.0, 1.0]
    assert reversed_.token_probabilities[:, 0].tolist() == [0.0, 0.0, 0.0, 0.0, 1.0]
    # trapezoid of the object token: 1 - 0.25 / 2 and 0.25 / 2; the prior token adds 0.5
    assert correct.restrict([0]).auc == pytest.approx(0.875)
    assert reversed_.restrict([0]).auc == pytest.approx(0.125)
    assert correct.auc == pytest.approx((0.875 + 0.5 + 0.25 + 0.25 * 0.875) / 3)
    assert correct.auc > reversed_.auc
    assert correct.highest == pytest.approx((1 + 0.5 + 0.5) / 3)


def test_deletion_ranks_the_object_first(fake, fake_sample) -> None:
    correct = deletion_curve(fake, fake_sample, object_map(), steps=4)
    reversed_ = deletion_curve(fake, fake_sample, -object_map(), steps=4)
    assert correct.token_probabilities[:, 0].tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert correct.restrict([0]).auc == pytest.approx(0.125)
    assert reversed_.restrict([0]).auc == pytest.approx(0.875)
    assert correct.auc < reversed_.auc


def test_images_are_batched_equal_area_and_ordered(fake, fake_sample) -> None:
    attribution = torch.arange(SIZE * SIZE, dtype=torch.float32).view(SIZE, SIZE)
    curve = insertion_curve(fake, fake_sample, attribution, steps=3)
    assert [batch.shape[0] for batch in fake.batches] == [3, 1]  # K + 1 = 4 images, batch 3
    images = torch.cat(fake.batches)
    revealed = images[:, 0].flatten(1).sum(dim=1)
    assert revealed.tolist() == [0, 21, 43, 64]  # round(k * 64 / 3)
    assert curve.fractions.tolist() == pytest.approx([0, 21 / 64, 43 / 64, 1])
    # decreasing attribution = highest pixel index first
    assert images[1, 0].flatten()[-21:].eq(1).all() and images[1, 0].flatten()[:-21].eq(0).all()


def test_ties_break_by_pixel_index_and_channels_are_summed(fake, fake_sample) -> None:
    attribution = torch.zeros(1, 3, SIZE, SIZE)
    attribution[0, 0, 7, 7] = 2.0
    attribution[0, 1, 7, 7] = -3.0  # summed: -1, so this pixel comes last
    insertion_curve(fake, fake_sample, attribution, steps=64)
    first = torch.cat(fake.batches)[1, 0]
    assert first.flatten().nonzero().flatten().tolist() == [0]  # tie: row-major first pixel
    assert torch.cat(fake.batches)[63, 0, 7, 7] == 0  # the negative pixel is the last one


def test_default_steps_follow_the_feature_mask(fake, fake_sample) -> None:
    mask = FeatureMask.grid((SIZE, SIZE), rows=2, cols=3)
    assert insertion_curve(fake, fake_sample, object_map(), feature_mask=mask).steps == 6
    assert insertion_curve(fake, fake_sample, object_map(), feature_mask=mask.mask).steps == 6
    assert insertion_curve(fake, fake_sample, object_map()).steps == 32
    assert deletion_curve(fake, fake_sample, object_map(), steps=5, feature_mask=mask).steps == 5


def test_baseline_value_and_progress(fake, fake_sample) -> None:
    curve = insertion_curve(
        fake, fake_sample, object_map(), steps=2, baselines=0.5, show_progress=True
    )
    assert curve.baseline_probabilities[0] == pytest.approx(0.5)
    assert curve.full_image_probabilities[0] == pytest.approx(1.0)
    colour = torch.tensor([0.0, 1.0, 1.0]).view(1, 3, 1, 1)
    curve = deletion_curve(fake, fake_sample, object_map(), steps=2, baselines=colour)
    assert curve.baseline_probabilities[0] == pytest.approx(0.0)


def test_deprecated_baseline_keyword_warns_and_agrees(fake, fake_sample) -> None:
    colour = torch.tensor([0.0, 1.0, 1.0]).view(1, 3, 1, 1)
    for curve_of in (insertion_curve, deletion_curve):
        new = curve_of(fake, fake_sample, object_map(), steps=2, baselines=colour)
        with pytest.warns(DeprecationWarning, match=r"baseline=\.\.\.\) is deprecated"):
            old = curve_of(fake, fake_sample, object_map(), steps=2, baseline=colour)
        assert torch.equal(old.token_probabilities, new.token_probabilities)
    with pytest.warns(DeprecationWarning, match=r"sensitive_tokens\(baseline=\.\.\.\)"):
        old_tokens = sensitive_tokens(fake, fake_sample, baseline=0.5)
    assert torch.equal(old_tokens, sensitive_tokens(fake, fake_sample, baselines=0.5))
    with pytest.raises(TypeError, match="pass only baselines="):
        insertion_curve(fake, fake_sample, object_map(), baselines=0.0, baseline=0.0)


# -- the paper's protocol ---------------------------------------------------------------------
def test_paper_protocol_scores_eagle_on_its_own_trajectory(fake, fake_sample) -> None:
    labels = torch.zeros(SIZE, SIZE, dtype=torch.long)  # region 0: columns 0-3, half the image
    labels[:, 4:] = 1  # region 1: columns 4-5, a quarter
    labels[:, 6:] = 2  # region 2: columns 6-7, a quarter
    result = SimpleNamespace(  # what EagleResult offers
        order=torch.tensor([2, 0, 1]),
        feature_mask=labels[None, None],
        trajectories=torch.tensor([[0.0, 0.7, 0.8, 1.0], [0.5] * 4, [0.2, 0.3, 0.4, 0.5]]),
        removal_trajectories=torch.tensor([[1.0, 0.4, 0.1, 0.0], [0.5] * 4, [0.5, 0.4, 0.3, 0.2]]),
        target_tokens=list(fake_sample.target_tokens),
    )
    insertion = insertion_curve(fake, fake_sample, result, protocol="paper")
    deletion = deletion_curve(fake, fake_sample, result, protocol="paper")
    assert not fake.batches  # no forward: the search already scored these images
    # x = cumulative superpixel area along the order: region 2 (16 px), 0 (32 px), 1 (16 px).
    assert insertion.fractions.tolist() == [0.0, 0.25, 0.75, 1.0]
    assert deletion.fractions.tolist() == [0.0, 0.25, 0.75, 1.0]
    assert torch.equal(insertion.token_probabilities, result.trajectories.T)
    assert torch.equal(deletion.token_probabilities, result.removal_trajectories.T)
    assert insertion.restrict([0]).auc == pytest.approx(0.25 * 0.35 + 0.5 * 0.75 + 0.25 * 0.9)
    with pytest.raises(ValueError, match="pass the sample the result was computed on"):
        insertion_curve(fake, SimpleNamespace(target_tokens=["dog"]), result, protocol="paper")


def test_paper_protocol_steps_pixel_maps_by_floor(fake, fake_sample) -> None:
    attribution = torch.arange(SIZE * SIZE, dtype=torch.float32).view(SIZE, SIZE)
    paper = insertion_curve(fake, fake_sample, attribution, steps=3, protocol="paper")
    assert paper.fractions.tolist() == pytest.approx([0, 21 / 64, 42 / 64, 1])  # floor(k·64/3)
    pixels = insertion_curve(fake, fake_sample, attribution, steps=3)
    assert pixels.fractions.tolist() == pytest.approx([0, 21 / 64, 43 / 64, 1])  # round
    with pytest.raises(ValueError, match="protocol must be one of"):
        deletion_curve(fake, fake_sample, attribution, protocol="authors")


# -- sensitive tokens ---------------------------------------------------------------------------
def test_sensitive_tokens_on_a_constructed_case(fake, fake_sample) -> None:
    assert sensitive_tokens(fake, fake_sample).tolist() == [True, False, True]
    # token 2 changes by exactly 0.25: sensitive only above a strictly smaller threshold
    assert sensitive_tokens(fake, fake_sample, threshold=0.25).tolist() == [True, False, False]
    curve = insertion_curve(fake, fake_sample, object_map(), steps=4)
    assert curve.sensitive().target_tokens == ["cat", " red"]
    only_cat = curve.sensitive(threshold=0.25)
    assert only_cat.target_tokens == ["cat"] and only_cat.auc == pytest.approx(0.875)
    given = curve.sensitive(sensitive_tokens(fake, fake_sample, threshold=0.25))
    assert torch.equal(given.token_probabilities, only_cat.token_probabilities)


def test_signed_rule_keeps_only_tokens_the_image_supports() -> None:
    # "dog" rises 0.1 -> 0.9 as the image is inserted; "blank" falls 0.8 -> 0.3 (the image
    # suppresses it: blacked out it reads 0.8, on the full image 0.3); "is" moves by 0.1 only.
    curve = Curve(
        "insertion",
        fractions=torch.tensor([0.0, 0.5, 1.0]),
        token_probabilities=torch.tensor([[0.1, 0.8, 0.5], [0.5, 0.6, 0.55], [0.9, 0.3, 0.6]]),
        target_tokens=["dog", " blank", " is"],
        target_indices=torch.tensor([0, 1, 2]),
    )
    assert curve.sensitive().target_tokens == ["dog"]
    assert curve.sensitive(rule="signed").target_tokens == ["dog"]
    assert curve.sensitive(rule="absolute").target_tokens == ["dog", " blank"]
    # A deletion curve reads its end points the other way round: same selection.
    deletion = Curve(
        "deletion",
        curve.fractions,
        curve.token_probabilities.flip(0),
        curve.target_tokens,
        curve.target_indices,
    )
    assert deletion.sensitive().target_tokens == ["dog"]
    assert deletion.sensitive(rule="absolute").target_tokens == ["dog", " blank"]
    with pytest.raises(ValueError, match="rule must be one of"):
        curve.sensitive(rule="abs")


def test_sensitive_tokens_rule_on_a_suppressed_token() -> None:
    class Suppressed:  # token 0 reads 0.3 on the full image and 0.8 blacked out
        def token_probabilities(self, images, sample):
            brightness = images.mean(dim=(1, 2, 3))
            return (0.8 - 0.5 * brightness)[:, None]

    sample = SimpleNamespace(image=torch.ones(1, 3, SIZE, SIZE))
    assert sensitive_tokens(Suppressed(), sample).tolist() == [False]
    assert sensitive_tokens(Suppressed(), sample, rule="absolute").tolist() == [True]
    with pytest.raises(ValueError, match="rule must be one of"):
        sensitive_tokens(Suppressed(), sample, rule="both")


def test_no_sensitive_token_gives_nan_and_is_left_out_of_averages(fake, fake_sample) -> None:
    curve = insertion_curve(fake, fake_sample, object_map(), steps=4)
    empty = curve.sensitive(threshold=1.0)
    assert empty.n_tokens == 0
    assert math.isnan(empty.auc) and math.isnan(empty.highest)
    assert average_highest_score([empty, flat_curve(0.4)]) == pytest.approx(0.4)
    assert average_auc([empty, flat_curve(0.4), flat_curve(0.2)]) == pytest.approx(0.3)
    assert math.isnan(average_highest_score([empty]))


def test_average_highest_score() -> None:
    rising = Curve(
        "insertion",
        torch.tensor([0.0, 0.5, 1.0]),
        torch.tensor([[0.1], [0.9], [0.7]]),
        ["cat"],
        torch.tensor([0]),
    )
    assert average_highest_score([rising, flat_curve(0.3)]) == pytest.approx(0.6)
    assert average_highest_score(rising) == pytest.approx(0.9)


# -- end to end on the tiny LLaVA model --------------------------------------------------------
@pytest.fixture(scope="module")
def llava() -> MLLMForwardWrapper:
    return MLLMForwardWrapper(*tiny_model("llava"), batch_size=4)


@pytest.fixture(scope="module")
def llava_sample(llava: MLLMForwardWrapper):
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    array[4:16, 8:24] = (220, 30, 30)
    return llava.prepare(Image.fromarray(array), "describe the image .", "a red cat sitting")


def test_curves_end_to_end(llava, llava_sample) -> None:
    sample = llava_sample
    mask = FeatureMask.grid(sample.image, rows=2, cols=2)
    values = torch.randn(mask.n_regions, generator=torch.Generator().manual_seed(0))
    region_map = values[mask.mask]  # (1, 1, H, W), constant per region
    pixel_map = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = llava.token_probabilities(sample.image, sample)[0]
        black = llava.token_probabilities(torch.zeros_like(sample.image), sample)[0]
    for attribution in (region_map, pixel_map):
        insertion = insertion_curve(llava, sample, attribution, feature_mask=mask)
        deletion = deletion_curve(llava, sample, attribution, feature_mask=mask)
        for curve in (insertion, deletion):
            assert curve.steps == 4 and curve.token_probabilities.shape == (5, 4)
            assert curve.fractions[0] == 0 and curve.fractions[-1] == 1
            assert (curve.fractions.diff() > 0).all()
            assert curve.target_tokens == ["a", " red", " cat", " sitting"]
            assert 0 <= curve.auc <= 1
        torch.testing.assert_close(insertion.token_probabilities[0], black, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(insertion.token_probabilities[-1], full, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(deletion.token_probabilities[0], full, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(deletion.token_probabilities[-1], black, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(
        sensitive_tokens(llava, sample, threshold=0.0, rule="absolute"), (full - black).abs() > 0
    )
    torch.testing.assert_close(sensitive_tokens(llava, sample, threshold=0.0), full - black > 0)


def test_curve_end_points_in_every_family(wrapper, sample) -> None:
    """The conftest fixtures run this once per model family (one step: two images per curve)."""
    attribution = torch.rand(sample.image.shape[-2:], generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ends = wrapper.token_probabilities(
            torch.cat([torch.zeros_like(sample.image), sample.image]), sample
        )
    curve = insertion_curve(wrapper, sample, attribution, steps=1)
    torch.testing.assert_close(curve.token_probabilities, ends, atol=1e-5, rtol=1e-4)
    curve = deletion_curve(wrapper, sample, attribution, steps=1)
    torch.testing.assert_close(curve.token_probabilities, ends.flip(0), atol=1e-5, rtol=1e-4)


def test_word_curves_equal_rerunning_each_word(llava, llava_sample) -> None:
    attribution = torch.rand(32, 32, generator=torch.Generator().manual_seed(2))
    sentence = insertion_curve(llava, llava_sample, attribution, steps=3)
    words = word_curves(sentence, llava_sample)
    assert [word for word, _ in words] == ["a", "red", "cat", "sitting"]
    for word, curve in words[1:3]:
        rerun = insertion_curve(llava, llava_sample.with_target_tokens(word), attribution, steps=3)
        assert curve.target_tokens == rerun.target_tokens
        torch.testing.assert_close(
            curve.token_probabilities, rerun.token_probabilities, atol=1e-5, rtol=1e-4
        )
    with pytest.raises(ValueError, match="not targets of this curve"):
        word_curves(words[2][1], llava_sample)


def test_curve_round_trip_and_plot(fake, fake_sample) -> None:
    import matplotlib

    matplotlib.use("Agg")
    curve = deletion_curve(fake, fake_sample, object_map(), steps=4)
    copy = Curve.from_dict(curve.to_dict())
    assert copy.kind == "deletion" and copy.auc == pytest.approx(curve.auc)
    assert torch.equal(copy.target_indices, curve.target_indices)
    assert Curve.from_dict(curve.sensitive(threshold=1.0).to_dict()).n_tokens == 0
    ax = curve.plot(tokens=True)
    assert len(ax.lines) == 4


# -- pointing game -----------------------------------------------------------------------------
def test_pointing_game_map_on_the_object_hits() -> None:
    box = (0, 0, 4, 4)
    mask = object_map().bool()
    for kwargs in ({"box": box}, {"mask": mask}):
        assert pointing_game(object_map(), **kwargs) == PointingResult(hit=True, tie_aware=1.0)
        assert pointing_game(-object_map(), **kwargs) == PointingResult(hit=False, tie_aware=0.0)


def test_pointing_game_tie_aware_fraction() -> None:
    grid = FeatureMask.grid((SIZE, SIZE), rows=2, cols=2)  # four 4×4 regions
    region_map = torch.tensor([1.0, 0.2, 0.3, 1.0])[grid.mask]  # regions 0 and 3 tie: 32 pixels
    assert pointing_game(region_map, box=(0, 0, 2, 2)) == PointingResult(True, 4 / 32)
    mask = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    mask[:4, :4] = True
    mask[4:6, 4:8] = True  # half of region 3
    assert pointing_game(region_map, mask=mask) == PointingResult(True, 24 / 32)
    assert pointing_game(region_map, box=(4, 0, 8, 4)) == PointingResult(False, 0.0)
    constant = pointing_game(torch.ones(SIZE, SIZE), box=(0, 0, 4, 2))
    assert constant == PointingResult(True, 8 / 64)


def test_pointing_game_box_convention_and_channels() -> None:
    attribution = torch.zeros(1, 3, SIZE, SIZE)
    attribution[0, :, 1, 6] = 1.0  # row 1, column 6
    attribution[0, 0, 2, 2] = 2.0  # larger in one channel, smaller in the sum
    attribution[0, 1, 2, 2] = -1.5
    assert pointing_game(attribution, box=(6, 1, 7, 2)).hit  # x = column, y = row
    assert not pointing_game(attribution, box=(1, 6, 2, 7)).hit
    assert not pointing_game(attribution, box=(0, 0, 6, 2)).hit  # x1 is exclusive
    assert pointing_game(attribution, box=(5.5, 0.5, 6.2, 1.1)).hit  # widened to pixels
    assert pointing_game(attribution, box=torch.tensor([6, 1, 7, 2])).hit


def test_pointing_game_clamps_boxes_to_the_map() -> None:
    big = torch.zeros(32, 32)
    big[31, 31] = 1.0  # the maximum sits in the corner pixel
    assert pointing_game(big, box=(0, 0, 32.000001, 32)).hit
    assert pointing_game(big, box=(-1e-9, -1e-9, 32, 32)) == PointingResult(True, 1.0)
    # A box reaching past the border covers the border pixels only.
    corner = pointing_game(big, box=(30, 30, 40, 40))
    assert corner == PointingResult(True, 1.0)
    assert not pointing_game(big, box=(-5, -5, 31, 31)).hit
    with pytest.raises(ValueError, match="does not lie inside"):
        pointing_game(big, box=(32, 0, 40, 8))


# -- bad input ---------------------------------------------------------------------------------
def test_bad_maps_and_steps_raise(fake, fake_sample) -> None:
    with pytest.raises(ValueError, match=r"is \(7, 8\).*attribute sample.image"):
        insertion_curve(fake, fake_sample, torch.zeros(7, 8))
    with pytest.raises(ValueError, match="one image at a time"):
        insertion_curve(fake, fake_sample, torch.zeros(2, 3, SIZE, SIZE))
    with pytest.raises(ValueError, match="NaN"):
        deletion_curve(fake, fake_sample, torch.full((SIZE, SIZE), math.nan))
    with pytest.raises(ValueError, match=r"must be >= 1"):
        insertion_curve(fake, fake_sample, object_map(), steps=0)
    with pytest.raises(ValueError, match="exceeds the image's 64 pixels"):
        insertion_curve(fake, fake_sample, object_map(), steps=65)
    with pytest.raises(TypeError, match="steps must be an int"):
        insertion_curve(fake, fake_sample, object_map(), steps=2.5)
    with pytest.raises(ValueError, match="feature mask is"):
        insertion_curve(
            fake, fake_sample, object_map(), feature_mask=FeatureMask.grid((4, 4), 2, 2)
        )
    with pytest.raises(ValueError, match="does not broadcast"):
        insertion_curve(fake, fake_sample, object_map(), baselines=torch.zeros(2, 3, 1, 1))
    assert not fake.batches  # all checked before any forward


def test_bad_objects_raise() -> None:
    attribution = object_map()
    with pytest.raises(ValueError, match="is empty"):
        pointing_game(attribution, box=(3, 3, 3, 5))
    with pytest.raises(ValueError, match="does not lie inside"):
        pointing_game(attribution, box=(10, 10, 12, 12))
    with pytest.raises(ValueError, match="does not lie inside"):
        pointing_game(attribution, box=(-3, 0, 0, 4))  # touches no pixel of the map
    with pytest.raises(ValueError, match="4 finite numbers"):
        pointing_game(attribution, box=(0, 0, 2))
    with pytest.raises(ValueError, match="mask is empty"):
        pointing_game(attribution, mask=torch.zeros(SIZE, SIZE, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask is \(4, 4\)"):
        pointing_game(attribution, mask=torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="got neither"):
        pointing_game(attribution)
    with pytest.raises(ValueError, match="got both"):
        pointing_game(attribution, box=(0, 0, 2, 2), mask=attribution.bool())


def test_bad_summaries_raise(fake, fake_sample) -> None:
    deletion = flat_curve(0.5, kind="deletion")
    with pytest.raises(ValueError, match="defined on insertion curves"):
        average_highest_score([flat_curve(0.5), deletion])
    with pytest.raises(ValueError, match="mixed"):
        average_auc([flat_curve(0.5), deletion])
    with pytest.raises(ValueError, match="No curves"):
        average_auc([])
    curve = insertion_curve(fake, fake_sample, object_map(), steps=2)
    with pytest.raises(ValueError, match=r"not targets of this curve"):
        curve.restrict([5])
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        curve.restrict(torch.tensor([True, False]))


# -- hallucination mitigation summaries --------------------------------------------------------
def test_amcr_and_csr_on_removed_fractions() -> None:
    fractions = [0.0625, 0.125, None, 0.03125]
    assert amcr(fractions) == pytest.approx((0.0625 + 0.125 + 1.0 + 0.03125) / 4)
    assert csr(fractions) == pytest.approx(2 / 4)
    assert csr(fractions, threshold=0.25) == pytest.approx(3 / 4)
    with pytest.raises(ValueError, match="No cases"):
        amcr([])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        csr([1.5])


# -- bad inputs: refused before the first forward, with the fix in the message (issue 20) ------
@pytest.mark.parametrize("curve_function", [insertion_curve, deletion_curve])
@pytest.mark.parametrize(
    "wrapper, sample, message",
    [
        (None, "sample", "wrapper must be an MLLMForwardWrapper"),
        ("wrapper", "sample", "wrapper must be an MLLMForwardWrapper"),
        ("fake", None, "sample must be a PreparedSample"),
        ("fake", "a prompt", "sample must be a PreparedSample"),
        ("fake", SimpleNamespace(image=np.ones((1, 3, SIZE, SIZE))), "with an image tensor"),
    ],
)
def test_curves_refuse_objects_that_are_no_wrapper_or_sample(
    curve_function, wrapper, sample, message, fake, fake_sample
) -> None:
    wrapper = fake if wrapper == "fake" else wrapper
    sample = fake_sample if sample == "sample" else sample
    with pytest.raises(TypeError, match=message):
        curve_function(wrapper, sample, object_map(), steps=2)
    assert fake.batches == []


@pytest.mark.parametrize("show_progress", ["no", 0, None])
def test_curves_refuse_a_show_progress_that_is_not_a_bool(show_progress, fake, fake_sample) -> None:
    with pytest.raises(TypeError, match="show_progress must be True or False"):
        insertion_curve(fake, fake_sample, object_map(), steps=2, show_progress=show_progress)
    assert fake.batches == []


@pytest.mark.parametrize(
    "attribution, error, message",
    [
        (object_map().bool(), TypeError, "must hold real scores"),
        (object_map().to(torch.complex64), TypeError, "must hold real scores"),
        (FeatureMask.grid((SIZE, SIZE), 2, 2), TypeError, "FeatureMask holds region ids"),
        (torch.zeros(0, 0), ValueError, "is empty"),
        ("map", TypeError, "tensor or numpy array"),
    ],
)
def test_maps_that_are_no_scores_are_refused_by_curves_and_pointing(
    attribution, error, message, fake, fake_sample
) -> None:
    with pytest.raises(error, match=message):
        insertion_curve(fake, fake_sample, attribution, steps=2)
    with pytest.raises(error, match=message):
        pointing_game(attribution, box=(0, 0, 2, 2))
    assert fake.batches == []


@pytest.mark.parametrize(
    "threshold, error",
    [
        (math.nan, ValueError),
        (math.inf, ValueError),
        (-0.1, ValueError),
        (1.5, ValueError),  # a probability never changes by more than 1: nothing could be selected
        (True, TypeError),
        ("0.2", TypeError),
        (None, TypeError),
    ],
)
def test_sensitivity_threshold_must_be_a_probability_change(
    threshold, error, fake, fake_sample
) -> None:
    with pytest.raises(error, match="threshold"):
        sensitive_tokens(fake, fake_sample, threshold=threshold)
    assert fake.batches == []
    with pytest.raises(error, match="threshold"):
        flat_curve(0.5).sensitive(threshold=threshold)
    # the bounds themselves are valid: 0 selects every changed token, 1 none
    assert sensitive_tokens(fake, fake_sample, threshold=0.0).tolist() == [True, False, True]
    assert sensitive_tokens(fake, fake_sample, threshold=1.0).tolist() == [False, False, False]


def test_sensitive_tokens_refuses_a_missing_sample(fake) -> None:
    with pytest.raises(TypeError, match="sample must be a PreparedSample"):
        sensitive_tokens(fake, None)
    assert fake.batches == []


@pytest.mark.parametrize(
    "value, error",
    [("0.1", TypeError), (True, TypeError), (math.nan, ValueError), (math.inf, ValueError),
     (1.5, ValueError), (-0.1, ValueError)],
)  # fmt: skip
def test_amcr_and_csr_refuse_values_that_are_no_fraction(value, error) -> None:
    with pytest.raises(error, match="removed fraction"):
        amcr([0.1, value])
    with pytest.raises(error, match="removed fraction"):
        csr([0.1, value])


@pytest.mark.parametrize(
    "threshold, error",
    [(True, TypeError), ("0.1", TypeError), (math.nan, ValueError), (2, ValueError)],
)
def test_csr_threshold_must_be_a_fraction(threshold, error) -> None:
    with pytest.raises(error, match="threshold"):
        csr([0.05], threshold=threshold)
    assert csr([0.05, 0.5], threshold=1) == 1.0


@pytest.mark.parametrize(
    "fractions, message",
    [
        (torch.tensor([0.0, 1.0, 0.5]), "rise from 0 to 1"),
        (torch.tensor([0.1, 0.5, 1.0]), "rise from 0 to 1"),
        (torch.tensor([0.0, 0.5, 0.9]), "rise from 0 to 1"),
        (torch.tensor([0.0, 50.0, 100.0]), "rise from 0 to 1"),  # percent instead of fractions
    ],
)
def test_curve_fractions_must_rise_from_zero_to_one(fractions, message) -> None:
    with pytest.raises(ValueError, match=message):
        Curve("insertion", fractions, torch.zeros(3, 1), ["cat"], torch.tensor([0]))


def test_curve_fields_must_be_tensors_and_from_dict_needs_a_saved_curve() -> None:
    with pytest.raises(TypeError, match="fractions must be a tensor"):
        Curve("insertion", [0.0, 1.0], torch.zeros(2, 1), ["cat"], torch.tensor([0]))
    saved = flat_curve(0.5).to_dict()
    for broken in (None, [saved], "curve.json"):
        with pytest.raises(TypeError, match="needs a dict from to_dict"):
            Curve.from_dict(broken)
    without = {key: value for key, value in saved.items() if key != "token_probabilities"}
    with pytest.raises(ValueError, match=r"lacks \['token_probabilities'\]"):
        Curve.from_dict(without)
    assert Curve.from_dict(saved).to_dict() == saved  # a full dict still round-trips


def test_restrict_and_sensitive_refuse_selections_of_the_wrong_kind(fake, fake_sample) -> None:
    curve = insertion_curve(fake, fake_sample, object_map(), steps=2)
    with pytest.raises(TypeError, match="integer answer positions"):
        curve.restrict([0.5])  # would have been truncated to position 0
    with pytest.raises(TypeError, match="boolean mask"):
        curve.sensitive(torch.tensor([0, 2]))  # positions, not a mask: use restrict
    assert curve.restrict([0, 2]).target_tokens == ["cat", " red"]
    assert curve.sensitive(torch.tensor([True, False, True])).target_tokens == ["cat", " red"]


def test_word_curves_refuses_swapped_or_missing_arguments(fake, fake_sample) -> None:
    curve = insertion_curve(fake, fake_sample, object_map(), steps=2)
    with pytest.raises(TypeError, match="curve must be a Curve"):
        word_curves(None, fake_sample)
    with pytest.raises(TypeError, match="curve must be a Curve"):
        word_curves(fake_sample, curve)
    with pytest.raises(TypeError, match="sample must be the PreparedSample"):
        word_curves(curve, None)
