"""Family adapters: the torch preprocessing equals each family's own processor."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from captum.attr import FeatureAblation, IntegratedGradients
from transformers import LlamaConfig, LlamaForCausalLM

from captum_eagle import FeatureMask, MLLMForwardWrapper, list_families
from captum_eagle.families import GenericFamily, LlavaFamily, family_for
from captum_eagle.images import to_pil
from captum_eagle.testing import tiny_model


def test_registry_lists_the_three_families() -> None:
    families = list_families()
    assert set(families) >= {"llava", "qwen2_5_vl", "internvl"}
    assert "LlavaForConditionalGeneration" in families["llava"]


def test_torch_preprocessing_matches_processor(wrapper, sample) -> None:
    """The wrapper sees exactly what the model sees through the processor."""
    pil = to_pil(sample.image)
    kwargs = {"crop_to_patches": False} if wrapper.adapter.name == "internvl" else {}
    reference = wrapper.processor.image_processor(images=[pil], return_tensors="pt", **kwargs)
    ours = wrapper.adapter.pixel_inputs(sample.image)
    assert set(ours) <= set(reference)
    for key, value in ours.items():
        assert value.shape == reference[key].shape, key
        torch.testing.assert_close(value.float(), reference[key].float(), atol=1e-5, rtol=1e-5)


def test_resize_is_idempotent_for_processor(wrapper, photo) -> None:
    resized = wrapper.adapter.resize(photo)
    height, width = wrapper.adapter.input_size(photo.height, photo.width)
    assert (resized.height, resized.width) == (height, width)
    assert wrapper.adapter.input_size(height, width) == (height, width)


def test_unknown_family_name_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="Unknown model family 'gemma'"):
        family_for(torch.nn.Linear(2, 2), "gemma")


def test_models_without_adapter_take_the_generic_path() -> None:
    model, _ = tiny_model("llava")
    assert family_for(model) is LlavaFamily
    assert family_for(model, "generic") is GenericFamily

    class NoAdapterForConditionalGeneration(torch.nn.Module):
        config = model.config

    assert family_for(NoAdapterForConditionalGeneration()) is GenericFamily


def test_text_only_model_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="Linear is not an image-text-to-text model"):
        family_for(torch.nn.Linear(2, 2))
    text_only = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=16,
            hidden_size=8,
            intermediate_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
        )
    )
    _, processor = tiny_model("llava")
    with pytest.raises(TypeError, match=r"LlamaForCausalLM .*no vision_config"):
        MLLMForwardWrapper(text_only, processor)

    class NoImageToken(torch.nn.Module):
        config = SimpleNamespace(vision_config=object())

    with pytest.raises(TypeError, match="NoImageToken has a vision tower but no image token"):
        family_for(NoImageToken())


@pytest.mark.parametrize("family_name", [None, "generic"])
def test_processor_without_image_processor_is_a_clear_error(family_name) -> None:
    model, processor = tiny_model("qwen2_5_vl")
    tokenizer_class = type(processor.tokenizer).__name__
    with pytest.raises(TypeError, match=f"processor {tokenizer_class} has no image processor"):
        MLLMForwardWrapper(model, processor.tokenizer, family=family_name)


def test_generic_path_refuses_gradients_and_names_the_adapters() -> None:
    wrapper = MLLMForwardWrapper(*tiny_model("llava"), family="generic")
    sample = wrapper.prepare(torch.rand(3, 20, 30), "describe the image .", "a red cat")
    images = sample.image.clone().requires_grad_()
    with pytest.raises(TypeError, match="adapter \\(internvl, llava, qwen2_5_vl\\)"):
        wrapper(images, sample)
    with pytest.raises(TypeError, match="Gradient methods need pixels laid out in torch"):
        IntegratedGradients(wrapper).attribute(
            sample.image, additional_forward_args=(sample,), n_steps=2
        )


def test_generic_path_keeps_the_users_resolution() -> None:
    wrapper = MLLMForwardWrapper(*tiny_model("qwen2_5_vl"), family="generic")
    image = torch.rand(3, 37, 61)
    sample = wrapper.prepare(image, "describe the image .", "a red cat")
    assert sample.family == "generic"
    torch.testing.assert_close(sample.image[0], image)
    labels = torch.arange(37 * 61).reshape(37, 61)
    assert torch.equal(wrapper.resize_labels(labels), labels)


@pytest.fixture(scope="module")
def generic_basis():
    wrapper = MLLMForwardWrapper(*tiny_model("llava"), family="generic")
    sample = wrapper.prepare(torch.rand(3, 24, 36), "describe the image .", "a red cat")
    mask = FeatureMask.grid(sample.image, 2, 2)
    return wrapper, sample, mask, wrapper.adapter.region_basis(sample.image, mask.mask)


def test_region_subsets_stand_in_for_masked_images(generic_basis) -> None:
    _, sample, mask, basis = generic_basis
    subsets = torch.tensor([[True, False, True, False], [False, True, True, True]])
    removed = basis.subsets(subsets, keep=torch.tensor([True, False]))
    assert removed.shape == (2, 3, 24, 36)
    assert torch.equal(removed.visible(), torch.tensor([[1, 0, 1, 0], [1, 0, 0, 0]]).bool())
    images = removed.images()
    inside = torch.isin(mask.mask[0, 0], torch.tensor([0, 2]))
    torch.testing.assert_close(images[0], torch.where(inside, sample.image[0], 0.0))
    assert removed[1:].shape == (1, 3, 24, 36)
    assert torch.equal(removed[1:].images(), images[1:])


def test_region_basis_rejects_bad_masks_and_subsets(generic_basis) -> None:
    wrapper, sample, mask, basis = generic_basis
    with pytest.raises(ValueError, match="does not match the image"):
        wrapper.adapter.region_basis(sample.image, mask.mask[..., :-1])
    with pytest.raises(ValueError, match="without gaps"):
        wrapper.adapter.region_basis(sample.image, mask.mask * 2)
    with pytest.raises(ValueError, match="subsets must be \\(K, 4\\)"):
        basis.subsets(torch.ones(2, 3, dtype=torch.bool))


def test_captum_perturbation_methods_run_on_the_generic_path(generic_basis) -> None:
    wrapper, sample, mask, basis = generic_basis
    attribution = FeatureAblation(wrapper).attribute(
        sample.image, additional_forward_args=(sample,), feature_mask=mask.mask
    )
    full = wrapper(sample.image, sample)
    removed = wrapper(basis.subsets(torch.eye(4, dtype=torch.bool), keep=False).images(), sample)
    for region in range(4):
        value = attribution[mask.mask.expand_as(attribution) == region].unique()
        torch.testing.assert_close(value, (full - removed[region]).view(1), atol=1e-5, rtol=0)
