"""The one registry of methods and the one forward counter (captum_eagle.baselines)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from captum_eagle import EagleAttribution, FeatureMask, MLLMForwardWrapper, list_methods
from captum_eagle.baselines import ForwardCounter, attribute, get_method, register_method
from captum_eagle.registry import UnknownNameError
from captum_eagle.testing import tiny_model


@pytest.fixture(scope="module")
def llava() -> MLLMForwardWrapper:
    return MLLMForwardWrapper(*tiny_model("llava", image_size=32), batch_size=8)


@pytest.fixture(scope="module")
def sample(llava):
    image = np.random.default_rng(0).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    return llava.prepare(image, "describe the image .", "a red cat")


@pytest.fixture(scope="module")
def mask(sample) -> FeatureMask:
    return FeatureMask.grid(sample.image, 2, 3)


def test_registry_lists_every_method_once_and_rejects_unknown_names() -> None:
    names = list_methods()
    assert names[0] == "eagle" and len(names) == len(set(names))
    assert {"feature_ablation", "shapley", "lime", "kernel_shap", "occlusion"} <= set(names)
    assert {"integrated_gradients", "saliency", "random"} <= set(names)
    with pytest.raises(UnknownNameError, match=r"Unknown attribution method 'limee'; valid names"):
        get_method("limee")


def test_one_default_budget_per_method_is_captums() -> None:
    import inspect

    from captum.attr import IntegratedGradients, KernelShap, Lime, ShapleyValueSampling

    for name, method in (
        ("lime", Lime),
        ("kernel_shap", KernelShap),
        ("shapley", ShapleyValueSampling),
        ("integrated_gradients", IntegratedGradients),
    ):
        entry = get_method(name)
        assert entry.method is method
        captum_default = inspect.signature(method.attribute).parameters[entry.budget].default
        assert entry.default_budget == captum_default, name
    assert get_method("occlusion").budget is None and get_method("eagle").budget is None


@pytest.mark.parametrize("name", [n for n in list_methods() if n != "grad_cam"])
def test_every_method_returns_a_finite_map_of_the_image(llava, sample, mask, name) -> None:
    torch.manual_seed(0)
    attribution = attribute(name, llava, sample, mask, budget=4)
    assert attribution.shape[-2:] == sample.image.shape[-2:]
    assert attribution.shape[1] in (1, 3)
    assert torch.isfinite(attribution).all()


def test_budget_sets_the_forward_count(llava, sample, mask) -> None:
    counts = {}
    for name, budget in (("kernel_shap", 10), ("lime", None), ("integrated_gradients", 7)):
        with ForwardCounter(llava) as counter:
            attribute(name, llava, sample, mask, budget=budget)
        counts[name] = counter.images
    assert counts == {"kernel_shap": 10, "lime": 25, "integrated_gradients": 7}
    permutations = get_method("shapley").budget_for(13, mask.n_regions)  # 13 // 6
    with ForwardCounter(llava) as counter:
        attribute("shapley", llava, sample, mask, budget=permutations)
    assert (permutations, counter.images) == (2, 2 * 6 + 1)
    assert (
        get_method("lime").budget_for(40, 6) == 40
        and get_method("saliency").budget_for(9, 6) is None
    )


def test_occlusion_window_is_an_eighth_of_the_side_with_half_strides(llava, sample, mask) -> None:
    settings = get_method("occlusion").settings(llava, sample, mask, 0.0)
    assert settings["sliding_window_shapes"] == (3, 4, 4) and settings["strides"] == (3, 2, 2)


def test_bad_arguments_are_refused_before_any_forward(llava, sample, mask) -> None:
    with ForwardCounter(llava) as counter:
        for budget, error in ((0, ValueError), (2.5, TypeError), (True, TypeError)):
            with pytest.raises(error, match="budget"):
                attribute("lime", llava, sample, mask, budget=budget)
        with pytest.raises(ValueError, match=r"baselines must lie in \[0, 1\]"):
            attribute("lime", llava, sample, mask, baselines=1.5)
    assert counter.images == 0


def test_register_method_and_options_override_settings(llava, sample, mask) -> None:
    def constant(wrapper, sample, feature_mask, value: float = 1.0) -> torch.Tensor:
        return torch.full(feature_mask.mask.shape, value)

    register_method("constant", constant, lambda w, s, m, b: {"value": 2.0})
    assert "constant" in list_methods()
    assert attribute("constant", llava, sample, mask).unique().tolist() == [2.0]
    assert attribute("constant", llava, sample, mask, value=3.0).unique().tolist() == [3.0]
    with pytest.raises(ValueError, match="already registered"):
        register_method("constant", constant)
    with pytest.raises(ValueError, match="default_budget needs budget="):
        register_method("other", constant, default_budget=3)


def test_forward_counter_counts_images_and_calls_of_every_caller(llava, sample, mask) -> None:
    images = sample.image.repeat(20, 1, 1, 1)
    counter = ForwardCounter(llava.model)
    with counter:
        llava(images, sample)  # batch size 8: calls of 8, 8 and 4 images
    assert (counter.images, counter.calls) == (20, 3)
    llava(images, sample)  # not counted outside the block
    assert counter.images == 20
    with counter.counting():  # re-entering resets
        result = EagleAttribution(llava).explain(
            sample.image, additional_forward_args=(sample,), feature_mask=mask
        )
    assert counter.images == result.forwards == 6 * 7 - 4  # each distinct image scored once


def test_forward_counter_counts_patch_flattened_images() -> None:
    wrapper = MLLMForwardWrapper(*tiny_model("qwen2_5_vl"), batch_size=4)
    sample = wrapper.prepare(np.zeros((56, 56, 3), np.uint8), "describe the image .", "a cat")
    with ForwardCounter(wrapper) as counter:
        wrapper(sample.image.repeat(6, 1, 1, 1), sample)
    assert (counter.images, counter.calls) == (6, 2)


def test_forward_counter_needs_a_vision_encoder_and_a_language_model() -> None:
    with pytest.raises(ValueError, match="needs a model with a vision encoder"):
        ForwardCounter(torch.nn.Linear(2, 2))


def test_forward_counter_counts_rows_of_calls_that_follow_an_image_encoding() -> None:
    class Text(torch.nn.Module):
        def forward(self, inputs_embeds: torch.Tensor) -> torch.Tensor:
            return inputs_embeds

    class Tiled(torch.nn.Module):  # Idefics3 / SmolVLM layout: vision_model + text_model
        def __init__(self) -> None:
            super().__init__()
            self.vision_model, self.text_model = torch.nn.Identity(), Text()

        def forward(self, pixels: torch.Tensor | None, embeds: torch.Tensor) -> torch.Tensor:
            if pixels is not None:
                self.vision_model(pixels)
            return self.text_model(inputs_embeds=embeds)

    model = Tiled()
    with ForwardCounter(model) as counter:
        model(torch.zeros(12, 3, 4, 4), torch.zeros(3, 5, 2))  # 3 images of 4 tiles each
        model(None, torch.zeros(3, 1, 2))  # a cached decoding step: no image
    assert (counter.images, counter.calls) == (3, 2)


# -- bad inputs (issue 20): attribute() checks everything before the first forward -------------
@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"baselines": True}, TypeError, "baselines must be a number or a tensor"),
        ({"baselines": "black"}, TypeError, "baselines must be a number or a tensor"),
        ({"baselines": float("nan")}, ValueError, "NaN or infinite"),
        ({"baselines": 128}, ValueError, r"baselines must lie in \[0, 1\]"),
        ({"baselines": torch.zeros(1, 3, 2, 2)}, ValueError, "do not broadcast to the image"),
        ({"feature_mask": "grid"}, TypeError, "feature_mask must be a FeatureMask"),
        ({"feature_mask": FeatureMask.grid((8, 8), 2, 2)}, ValueError, r"build the mask from"),
        ({"sample": None}, TypeError, "sample must be a PreparedSample"),
        ({"sample": "describe the image ."}, TypeError, "sample must be a PreparedSample"),
        ({"wrapper": None}, TypeError, "wrapper must be an MLLMForwardWrapper"),
    ],
)
@pytest.mark.parametrize("name", ["random", "feature_ablation"])
def test_attribute_refuses_bad_inputs_before_any_forward(
    llava, sample, mask, name, options, error, message
) -> None:
    # before: a mask of another size or a missing sample ran "random" silently, and a bool
    # baseline ran every method with baselines=1
    arguments = {"wrapper": llava, "sample": sample, "feature_mask": mask, **options}
    with ForwardCounter(llava) as counter, pytest.raises(error, match=message):
        attribute(
            name,
            arguments.pop("wrapper"),
            arguments.pop("sample"),
            arguments.pop("feature_mask"),
            **arguments,
        )
    assert counter.calls == 0


def test_attribute_takes_a_captum_mask_tensor_and_a_colour_baseline(llava, sample, mask) -> None:
    colour = torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1)
    as_tensor = attribute("feature_ablation", llava, sample, mask.mask, baselines=colour)
    as_mask = attribute("feature_ablation", llava, sample, mask, baselines=0.5)
    torch.testing.assert_close(as_tensor, as_mask)
