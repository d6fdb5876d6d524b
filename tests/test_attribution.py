"""EagleAttribution: exact engine vs the naive reference, saliency, results, Captum interop."""

from __future__ import annotations

import dataclasses
import itertools
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
from captum.attr import ImageMaskInput, LLMAttributionResult, NoiseTunnel
from PIL import Image

from captum_eagle import EagleAttribution, EagleResult, FeatureMask
from captum_eagle.attribution import saliency_from_gains
from captum_eagle.baselines import ForwardCounter
from captum_eagle.search import EarlyStop, StochasticGreedy

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


def test_forward_count_scores_each_distinct_image_once(result, mask) -> None:
    # N(N+1) images, less the 4 of the step with two candidates left (V \ {b} and {b} were
    # scored in step 1); F(∅) costs nothing: its images are F(V)'s (all baseline; full image).
    n = mask.n_regions
    assert result.forwards == n * (n + 1) - 4


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
    # The authors' rule: the empty image first, x = cumulative region area in insertion order.
    curves = result.trajectories.double()
    areas = result.feature_mask.flatten().bincount()[result.order].double()
    x = torch.cat([torch.zeros(1, dtype=torch.float64), areas.cumsum(0) / areas.sum()])
    auc = torch.trapezoid(curves, x, dim=1)
    above = (auc - curves.min(dim=1).values).float()
    below = (curves.max(dim=1).values - auc).float()
    torch.testing.assert_close(result.influence_area["above_min"], above)
    torch.testing.assert_close(result.influence_area["below_max"], below)
    torch.testing.assert_close(result.influence["above_min"], above / above.max())
    inserted = result.trajectories[:, 1:]
    equal = (inserted - inserted.min(dim=1, keepdim=True).values).mean(dim=1)
    torch.testing.assert_close(result.influence_area["equal_steps"], equal)


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


def _assert_same_result(loaded: EagleResult, result: EagleResult) -> None:
    for item in dataclasses.fields(EagleResult):
        if item.name == "inputs":
            continue
        value, expected = getattr(loaded, item.name), getattr(result, item.name)
        if isinstance(expected, torch.Tensor):
            assert value.dtype == expected.dtype and torch.equal(value, expected), item.name
        elif (
            isinstance(expected, dict)
            and expected
            and isinstance(next(iter(expected.values())), torch.Tensor)
        ):
            assert value.keys() == expected.keys(), item.name
            assert all(torch.equal(value[k], expected[k]) for k in expected), item.name
        else:
            assert value == expected, item.name


def test_save_and_load_round_trip(wrapper, sample, mask, tmp_path) -> None:
    result = EagleAttribution(wrapper).explain(
        sample.image,
        feature_mask=mask,
        additional_forward_args=(sample,),
        search=EarlyStop(StochasticGreedy(fraction=0.5, seed=3), tolerance=0.1),
    )
    path = tmp_path / "eagle.json"
    result.save(path)
    loaded = EagleResult.load(path)
    _assert_same_result(loaded, result)
    assert loaded.search_options == {
        "search": {"name": "stochastic", "fraction": 0.5, "min_candidates": 2, "seed": 3},
        "tolerance": 0.1,
    }
    _assert_same_result(EagleResult.from_dict(result.to_dict()), result)
    assert json.loads(path.read_text()) == result.to_dict()


def test_load_accepts_files_without_search_options(result, tmp_path) -> None:
    old = result.to_dict()
    del old["search_options"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    loaded = EagleResult.load(path)
    assert loaded.search_options == {} and torch.equal(loaded.order, result.order)
    assert loaded.order.dtype == torch.long and loaded.gains.dtype == torch.float32
    with pytest.raises(ValueError, match="Unknown EagleResult keys"):
        EagleResult.from_dict({**old, "colour": "red"})
    del old["order"]
    with pytest.raises(ValueError, match="lacks 'order'"):
        EagleResult.from_dict(old)


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


LLAVA_ONLY = pytest.mark.parametrize("family", ["llava"], indirect=True)


@pytest.fixture(scope="module")
def grid(sample) -> FeatureMask:
    return FeatureMask.grid(sample.image, 2, 3)


def _attribute(wrapper, inputs, sample, mask, **kwargs) -> torch.Tensor:
    return EagleAttribution(wrapper).attribute(
        inputs, feature_mask=mask, additional_forward_args=(sample,), **kwargs
    )


@LLAVA_ONLY
def test_noise_tunnel_runs_on_eagle(wrapper, sample, grid) -> None:
    torch.manual_seed(0)
    attribution = NoiseTunnel(EagleAttribution(wrapper)).attribute(
        sample.image,
        nt_type="smoothgrad",
        nt_samples=3,
        stdevs=0.01,
        feature_mask=grid.mask,
        additional_forward_args=(sample,),
    )
    assert attribution.shape == sample.image.shape
    assert torch.isfinite(attribution).all()
    # A mean of three saliency maps in [0, 1], constant on each region.
    assert attribution.min() >= 0 and attribution.max() <= 1
    for region in range(grid.n_regions):
        assert attribution[0, :, grid.mask[0, 0] == region].unique().numel() == 1


@LLAVA_ONLY
def test_noise_tunnel_takes_the_feature_mask_itself(wrapper, sample, grid) -> None:
    def smoothed(mask: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(0)
        return NoiseTunnel(EagleAttribution(wrapper)).attribute(
            sample.image,
            nt_type="smoothgrad",
            nt_samples=3,
            stdevs=0.01,
            feature_mask=mask,
            additional_forward_args=(sample,),
        )

    assert torch.equal(smoothed(grid), smoothed(grid.mask))


@LLAVA_ONLY
def test_out_of_range_pixels_fail_before_any_forward(wrapper, sample, grid) -> None:
    eagle = EagleAttribution(wrapper)
    with ForwardCounter(wrapper) as counter:
        with pytest.raises(ValueError, match="looks like a 0-255 image"):
            eagle.attribute(
                sample.image * 255, feature_mask=grid, additional_forward_args=(sample,)
            )
        with pytest.raises(ValueError, match="NaN or infinite"):
            eagle.explain(
                sample.image * float("nan"), feature_mask=grid, additional_forward_args=(sample,)
            )
    assert counter.calls == 0


@LLAVA_ONLY
def test_a_batch_of_images_equals_single_runs(wrapper, sample, grid) -> None:
    images = torch.cat([sample.image, sample.image.flip(-1)])
    batch = _attribute(wrapper, images, sample, grid)
    assert batch.shape == images.shape
    for i in range(2):
        single = _attribute(wrapper, images[i : i + 1], sample, grid)
        assert torch.equal(batch[i : i + 1], single)
    assert not torch.equal(batch[0], batch[1])
    with pytest.raises(ValueError, match="explain\\(\\) takes one image"):
        EagleAttribution(wrapper).explain(
            images, feature_mask=grid, additional_forward_args=(sample,)
        )


@LLAVA_ONLY
def test_per_image_masks_and_baselines(wrapper, sample, grid) -> None:
    images = torch.cat([sample.image, sample.image.flip(-1)])
    other = FeatureMask.grid(sample.image, 3, 2).mask
    baselines = torch.stack([torch.zeros(3, 1, 1), torch.full((3, 1, 1), 0.5)])  # (2, 3, 1, 1)
    batch = _attribute(wrapper, images, sample, torch.cat([grid.mask, other]), baselines=baselines)
    second = _attribute(wrapper, images[1:], sample, other, baselines=0.5)
    assert torch.equal(batch[1:], second)


@LLAVA_ONLY
def test_image_mask_input_of_another_image_is_an_error(wrapper, photo, sample) -> None:
    labels = torch.zeros(photo.height, photo.width, dtype=torch.long)
    labels[:, photo.width // 2 :] = 1
    other = photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)  # same size, other pixels
    with pytest.raises(ValueError, match="not the image the sample was prepared from"):
        EagleAttribution(wrapper).attribute(
            ImageMaskInput(image=other, mask=labels), additional_forward_args=(sample,)
        )


def test_multiplies_by_inputs_is_false(wrapper) -> None:
    assert EagleAttribution(wrapper).multiplies_by_inputs is False


@LLAVA_ONLY
def test_perturbations_per_eval_is_the_batch_size(wrapper, sample, grid, monkeypatch) -> None:
    eagle = EagleAttribution(wrapper)
    args = (sample,)
    by_alias = eagle.explain(
        sample.image, feature_mask=grid, additional_forward_args=args, batch_size=3
    )
    original = wrapper.model.forward
    seen: list[int] = []

    def forward(*a, **kw):
        seen.append(kw["input_ids"].shape[0])
        return original(*a, **kw)

    monkeypatch.setattr(wrapper.model, "forward", forward)
    captum_name = eagle.explain(
        sample.image, feature_mask=grid, additional_forward_args=args, perturbations_per_eval=3
    )
    assert max(seen) == 3
    assert torch.equal(captum_name.order, by_alias.order)
    torch.testing.assert_close(captum_name.objective, by_alias.objective, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="disagree"):
        eagle.attribute(
            sample.image,
            feature_mask=grid,
            additional_forward_args=args,
            perturbations_per_eval=3,
            batch_size=4,
        )


@LLAVA_ONLY
@pytest.mark.parametrize(
    "value, error, message",
    [
        (128, ValueError, r"\[0, 1\] pixel space; got 128"),
        (float("nan"), ValueError, "NaN"),
        (torch.full((1, 3, 1, 1), float("nan")), ValueError, "NaN"),
        (torch.full((3, 1, 1), 2.0), ValueError, r"\[0, 1\]"),
        (torch.zeros(2, 5, 5), ValueError, "do not broadcast"),
        (torch.zeros(3, 1, 1, dtype=torch.uint8), TypeError, "float tensor"),
        ("black", TypeError, "number or a tensor"),
    ],
)
def test_bad_baselines_raise_before_any_forward(
    wrapper, sample, grid, monkeypatch, value, error, message
) -> None:
    monkeypatch.setattr(wrapper.model, "forward", lambda *a, **k: pytest.fail("forward ran"))
    with pytest.raises(error, match=message):
        _attribute(wrapper, sample.image, sample, grid, baselines=value)


@LLAVA_ONLY
@pytest.mark.parametrize(
    "value, error",
    [(2.5, TypeError), (True, TypeError), (0, ValueError), (-1, ValueError), ("big", ValueError)],
)
def test_bad_batch_sizes_raise(wrapper, sample, grid, value, error) -> None:
    eagle = EagleAttribution(wrapper)
    for name in ("batch_size", "perturbations_per_eval"):
        with pytest.raises(error, match=f"{name} must be a positive int, 'auto' or None"):
            eagle.attribute(
                sample.image, feature_mask=grid, additional_forward_args=(sample,), **{name: value}
            )
    with pytest.raises(error, match="batch_size must be a positive int"):
        eagle.explain(
            sample.image, feature_mask=grid, additional_forward_args=(sample,), batch_size=value
        )


@LLAVA_ONLY
def test_fractional_mask_ids_are_an_error(wrapper, sample, grid) -> None:
    halves = grid.mask.float() / 2  # ids 0, 0.5, 1, ... would truncate to fewer regions
    with pytest.raises(ValueError, match="fractional region ids"):
        _attribute(wrapper, sample.image, sample, halves)
    whole = _attribute(wrapper, sample.image, sample, grid.mask.float())
    assert torch.equal(whole, _attribute(wrapper, sample.image, sample, grid.mask))


@LLAVA_ONLY
def test_raw_pixel_inputs_name_the_fix(wrapper, sample, grid) -> None:
    raw = (sample.image * 255).round().to(torch.uint8)
    with pytest.raises(TypeError, match="Divide 0-255 values by 255"):
        _attribute(wrapper, raw, sample, grid)
    with pytest.raises(ValueError, match="prepared sample's size"):
        _attribute(wrapper, sample.image[..., :-1], sample, grid)


@LLAVA_ONLY
def test_forward_budget_warns_with_the_estimate(wrapper, sample, grid) -> None:
    n = grid.n_regions
    with pytest.warns(
        UserWarning, match=rf"about {n * (n + 1)} forwards.*BudgetedGreedy\(forwards=10\)"
    ):
        result = EagleAttribution(wrapper).explain(
            sample.image, feature_mask=grid, additional_forward_args=(sample,), max_forwards=10
        )
    assert result.n_regions == n
    with pytest.raises(ValueError, match="max_forwards must be a positive int or None"):
        _attribute(wrapper, sample.image, sample, grid, max_forwards=0)


@LLAVA_ONLY
def test_tied_regions_give_one_order_for_any_batch_size(wrapper, sample, monkeypatch) -> None:
    # Regions 1, 3, 4 and 7 of a 3x3 grid equal the baseline (0): any of them added to a subset
    # gives the same two images, so they tie exactly at every step.
    mask = FeatureMask.grid(sample.image, 3, 3)
    blank = [1, 3, 4, 7]
    image = sample.image.clone()
    image[:, :, torch.isin(mask.mask[0, 0], torch.tensor(blank))] = 0.0
    # Identical images scored in different chunks differ in the last bits on real hardware;
    # make that visible here: shift the logits by a pattern of the position and the chunk size
    # (with the old per-subset cache this gave 4 different orders at batch sizes 1, 3, 5, 16).
    original = wrapper.model.forward
    generator = torch.Generator().manual_seed(0)
    shift = torch.randn(wrapper.model.config.text_config.vocab_size, generator=generator)

    def forward(*args, **kwargs):
        output = original(*args, **kwargs)
        position = torch.arange(output.logits.shape[0], dtype=output.logits.dtype)
        pattern = torch.sin(2.3 * position + 1.7 * position.numel())
        output.logits = output.logits + 1e-3 * pattern[:, None, None] * shift
        return output

    monkeypatch.setattr(wrapper.model, "forward", forward)
    orders = {}
    for batch_size in (1, 3, 5, 16):
        result = EagleAttribution(wrapper).explain(
            image, feature_mask=mask, additional_forward_args=(sample,), batch_size=batch_size
        )
        orders[batch_size] = result.order.tolist()
    assert all(order == orders[1] for order in orders.values()), orders
    assert [region for region in orders[1] if region in blank] == blank  # lowest id first


# -- bad inputs (issue 20): a missing, corrupt or foreign file is a clear error -----------------
@LLAVA_ONLY
def test_load_refuses_missing_corrupt_and_foreign_files(result, tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="No EagleResult file"):
        EagleResult.load(tmp_path / "missing.json")
    with pytest.raises(FileNotFoundError, match="No EagleResult file"):
        EagleResult.load(tmp_path)  # a folder (before: IsADirectoryError)
    text = json.dumps(result.to_dict())
    for name, content in [("empty", ""), ("truncated", text[: len(text) // 2])]:
        path = tmp_path / f"{name}.json"
        path.write_text(content)
        with pytest.raises(ValueError, match="is not a JSON file written by save"):
            EagleResult.load(path)
    for content, error in [
        ("[1, 2]", TypeError),
        ("3", TypeError),
        ('{"kind": "insertion"}', ValueError),
    ]:
        path = tmp_path / "foreign.json"
        path.write_text(content)
        with pytest.raises(error, match=r"EagleResult|Eagle result"):
            EagleResult.load(path)


@LLAVA_ONLY
@pytest.mark.parametrize(
    "change, message",
    [
        ({"order": "0123"}, "'order' is not a \\(nested\\) list of numbers"),
        ({"order": [[0], [1, 2]]}, "'order' is not a \\(nested\\) list of numbers"),
        ({"order": [0]}, "not a permutation"),
        ({"order": [0.5, 1.0]}, "not a permutation"),
        ({"feature_mask": None}, "'feature_mask' is not a \\(nested\\) list"),
        ({"feature_mask": [[[[0, 99]]]]}, "does not hold the"),  # ids beyond the order
        ({"influence": [1.0]}, "'influence' must be a dict"),
        ({"target_tokens": "cat"}, "target_tokens must be a list of strings"),
        ({"target_tokens": ["cat"] * 9}, "target_tokens but"),
    ],
)
def test_from_dict_refuses_fields_that_do_not_fit_together(result, change, message) -> None:
    # before: a short or fractional order loaded silently and gave a wrong map; others raised
    # RuntimeError or AttributeError from inside torch
    with pytest.raises(ValueError, match=message):
        EagleResult.from_dict({**result.to_dict(), **change})
