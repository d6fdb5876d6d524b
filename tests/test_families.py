"""Family adapters: the torch preprocessing equals each family's own processor."""

from __future__ import annotations

import pytest
import torch

from captum_eagle import list_families
from captum_eagle.families import family_for
from captum_eagle.images import to_pil


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


def test_unknown_model_class_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="No captum-eagle adapter for model class Linear"):
        family_for(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="Unknown model family 'gemma'"):
        family_for(torch.nn.Linear(2, 2), "gemma")
