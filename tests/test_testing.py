"""Tiny offline models: every family builds, processes, runs, generates and batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import BatchFeature, PreTrainedModel, ProcessorMixin
from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

from captum_eagle.families import family_for
from captum_eagle.registry import UnknownNameError
from captum_eagle.testing import TINY_MODELS, list_tiny_models, tiny_model, tiny_model_path

NAMES = list_tiny_models()
PROMPT = "describe the image ."
_CACHE: dict[str, tuple[PreTrainedModel, ProcessorMixin]] = {}


def _built(name: str) -> tuple[PreTrainedModel, ProcessorMixin]:
    if name not in _CACHE:
        _CACHE[name] = tiny_model(name)
    return _CACHE[name]


def _photo(height: int, width: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8))


def _prompt(processor: ProcessorMixin) -> str:
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]}]
    return processor.tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True
    )


def _inputs(processor: ProcessorMixin, images: list[Image.Image], **kwargs: object) -> BatchFeature:
    text = [_prompt(processor)] * len(images)
    # one image per prompt: a flat list for one prompt, one list per prompt for a batch
    # (Gemma 3, Idefics3 and SmolVLM read a flat list of two as two images of one prompt)
    batch = images if len(images) == 1 else [[image] for image in images]
    inputs = processor(images=batch, text=text, return_tensors="pt", **kwargs)
    inputs.pop("labels", None)
    return inputs


def _image_token_id(model: PreTrainedModel) -> int:
    config = model.config
    return getattr(config, "image_token_id", None) or config.image_token_index


def _last_logits(model: PreTrainedModel, inputs: BatchFeature) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits[:, -1]


def test_at_least_twelve_families_with_their_auto_classes() -> None:
    assert len(NAMES) >= 12
    for name in ("llava", "llava_next", "qwen2_vl", "qwen3_vl", "gemma3", "paligemma"):
        assert name in NAMES
    for name in NAMES:
        spec = TINY_MODELS.get(name)
        model, processor = _built(name)
        assert type(model).__name__ == spec.model_class
        assert (
            MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES[model.config.model_type] == spec.model_class
        )
        family_processor = PROCESSOR_MAPPING_NAMES[model.config.model_type]
        assert family_processor in [cls.__name__ for cls in type(processor).__mro__]
        assert type(processor.image_processor).__name__.endswith("ImageProcessorPil")
        assert spec.checkpoints and all("/" in checkpoint for checkpoint in spec.checkpoints)
        assert not model.training and model.dtype == torch.float32


@pytest.mark.parametrize("name", NAMES)
def test_forward_matches_image_tokens_and_sees_the_image(name: str) -> None:
    model, processor = _built(name)
    inputs = _inputs(processor, [_photo(32, 48, 0)])
    image_token = _image_token_id(model)
    assert (inputs["input_ids"] == image_token).sum() > 0
    logits = _last_logits(model, inputs)
    assert logits.shape == (1, model.config.get_text_config().vocab_size)
    assert torch.isfinite(logits).all()
    other = _last_logits(model, _inputs(processor, [_photo(32, 48, 1)]))
    assert not torch.allclose(logits, other)
    # one image token fewer than the processor made: the model must refuse the inputs
    ids = inputs["input_ids"].clone()
    ids[0, (ids[0] == image_token).nonzero()[0, 0]] = processor.tokenizer.pad_token_id
    with pytest.raises(ValueError, match="image tokens do not match"), torch.no_grad():
        model(**{**inputs, "input_ids": ids})


@pytest.mark.parametrize("name", NAMES)
def test_greedy_generate_starts_with_the_forward_argmax(name: str) -> None:
    model, processor = _built(name)
    inputs = _inputs(processor, [_photo(40, 40, 2)])
    generated = model.generate(**inputs, max_new_tokens=3, min_new_tokens=3, do_sample=False)
    length = inputs["input_ids"].shape[1]
    assert generated.shape == (1, length + 3)
    assert torch.equal(generated[:, :length], inputs["input_ids"])
    assert generated[0, length] == _last_logits(model, inputs).argmax(-1)[0]


@pytest.mark.parametrize("name", NAMES)
def test_both_aspect_ratios_run(name: str) -> None:
    model, processor = _built(name)
    for height, width in ((32, 48), (48, 32), (40, 120)):
        inputs = _inputs(processor, [_photo(height, width, 3)])
        assert torch.isfinite(_last_logits(model, inputs)).all()


@pytest.mark.parametrize("name", NAMES)
def test_batch_of_two_equals_singles(name: str) -> None:
    model, processor = _built(name)
    photos = [_photo(32, 48, 4), _photo(32, 48, 5)]
    batched = _last_logits(model, _inputs(processor, photos))
    singles = torch.cat([_last_logits(model, _inputs(processor, [photo])) for photo in photos])
    torch.testing.assert_close(batched, singles, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_processor_chat_template_equals_the_tokenizer_one(name: str) -> None:
    _, processor = _built(name)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]}]
    rendered = processor.apply_chat_template(messages, add_generation_prompt=True)
    assert rendered == _prompt(processor)
    assert PROMPT in rendered


@pytest.mark.parametrize(
    ("name", "tokens"),
    [
        ("llava_next", [44, 46]),
        ("llava_onevision", [44, 46]),
        ("idefics3", [20, 20]),
        ("internvl", [28, 28]),
        ("aya_vision", [12, 12]),
        ("qwen2_vl", [6, 6]),
    ],
)
def test_tiling_families_count_tokens_per_aspect_ratio(name: str, tokens: list[int]) -> None:
    model, processor = _built(name)
    counts = [
        int((_inputs(processor, [_photo(h, w, 6)])["input_ids"] == _image_token_id(model)).sum())
        for h, w in ((32, 48), (48, 32))
    ]
    assert counts == tokens


def test_gemma3_pan_and_scan_adds_crops() -> None:
    model, processor = _built("gemma3")
    wide = _photo(32, 96, 7)
    plain = _inputs(processor, [wide])
    panned = _inputs(processor, [wide], do_pan_and_scan=True)
    image_token = _image_token_id(model)
    assert panned["pixel_values"].shape[0] > plain["pixel_values"].shape[0] == 1
    assert (panned["input_ids"] == image_token).sum() == panned["pixel_values"].shape[0] * (
        plain["input_ids"] == image_token
    ).sum()
    assert torch.isfinite(_last_logits(model, panned)).all()
    torch.testing.assert_close(
        panned["token_type_ids"], (panned["input_ids"] == image_token).long()
    )


def test_paligemma_takes_the_answer_as_suffix() -> None:
    model, processor = _built("paligemma")
    inputs = processor(
        images=[_photo(32, 32, 8)],
        text=[_prompt(processor)],
        suffix=["a red cat"],
        return_tensors="pt",
    )
    suffix = inputs["token_type_ids"][0] == 1
    answer = processor.tokenizer.convert_tokens_to_ids(["a", "red", "cat", "</s>"])
    assert inputs["input_ids"][0, suffix].tolist() == answer
    assert (inputs["labels"][0, ~suffix] == -100).all()
    with torch.no_grad():
        loss = model(**inputs).loss
    assert torch.isfinite(loss)


def test_unknown_family_and_bad_image_size_raise() -> None:
    with pytest.raises(UnknownNameError, match="gemma3"):
        tiny_model("gemma-3")
    with pytest.raises(ValueError, match="multiple of 32"):
        tiny_model("qwen3_vl", image_size=48)
    with pytest.raises(ValueError, match="positive"):
        tiny_model("llava", image_size=0)


def test_internvl_gives_one_tile_when_asked() -> None:
    model, processor = _built("internvl")
    photo = _photo(32, 48, 9)
    tiled, single = _inputs(processor, [photo]), _inputs(processor, [photo], crop_to_patches=False)
    assert tiled["pixel_values"].shape == (7, 3, 32, 32)
    assert single["pixel_values"].shape == (1, 3, 32, 32)
    assert (single["input_ids"] == _image_token_id(model)).sum() == 4
    assert torch.isfinite(_last_logits(model, single)).all()


@pytest.mark.parametrize("name", NAMES)
def test_tiny_model_path_names_the_family_the_wrapper_picks(name: str) -> None:
    model, _ = _built(name)
    assert tiny_model_path(name) == family_for(model).name
    expected = name if name in ("llava", "qwen2_5_vl", "internvl") else "generic"
    assert tiny_model_path(name) == expected
