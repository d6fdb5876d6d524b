"""MLLMForwardWrapper: teacher-forced probabilities, batching, gradients, input validation."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

from captum_eagle import MLLMForwardWrapper
from captum_eagle.testing import tiny_model
from tests.conftest import PROMPT, TARGET


def _manual_probabilities(wrapper, sample, images):
    """Reference: one plain forward with full logits, softmax, read the answer tokens."""
    n_answer = sample.answer_ids.numel()
    input_ids = torch.cat([sample.prompt_ids[0], sample.answer_ids])[None]
    extras = {
        key: torch.cat([value[0], value.new_zeros(n_answer)])[None]
        for key, value in sample.token_inputs.items()
    }
    rows = []
    for image in images:
        pixels = wrapper.adapter.pixel_inputs(image[None])
        logits = wrapper.model(input_ids=input_ids, **extras, **pixels).logits[0]
        start = sample.prompt_ids.shape[1] - 1
        probs = logits[start : start + n_answer].softmax(-1)
        rows.append(probs.gather(-1, sample.answer_ids[:, None])[:, 0])
    return torch.stack(rows)[:, sample.target_indices]


def test_prepared_sample(wrapper, sample) -> None:
    assert sample.image.shape[:2] == (1, 3)
    assert sample.image.min() >= 0 and sample.image.max() <= 1
    assert sample.answer == TARGET
    assert "".join(sample.answer_tokens) == TARGET
    assert sample.target_tokens == sample.answer_tokens
    assert sample.prompt_text.count(wrapper.processor.image_token) == 1
    assert sample.family == wrapper.adapter.name


def test_token_probabilities_equal_manual_softmax(wrapper, sample, images) -> None:
    with torch.no_grad():
        ours = wrapper.token_probabilities(images, sample)
        reference = _manual_probabilities(wrapper, sample, images)
    assert ours.shape == (5, 4)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-4)


def test_subset_of_targets(wrapper, sample, images) -> None:
    word = sample.with_target_tokens("cat")
    span = sample.with_target_tokens(slice(1, 3))
    with torch.no_grad():
        full = wrapper.token_probabilities(images, sample)
        torch.testing.assert_close(wrapper.token_probabilities(images, word), full[:, 2:3])
        torch.testing.assert_close(wrapper.token_probabilities(images, span), full[:, 1:3])
        torch.testing.assert_close(wrapper(images, span), full[:, 1:3].mean(1))
    assert word.target_tokens == [" cat"]


def test_batched_scores_equal_single_scores(wrapper, sample, images) -> None:
    with torch.no_grad():
        batched = wrapper(images, sample)
        single = torch.cat([wrapper(image[None], sample) for image in images])
    assert batched.shape == (5,)
    torch.testing.assert_close(batched, single, atol=1e-6, rtol=1e-5)


def test_log_probability_score(tiny, sample, images) -> None:
    log_wrapper = MLLMForwardWrapper(*tiny, score_type="log_probability")
    with torch.no_grad():
        scores = log_wrapper(images, sample)
        expected = log_wrapper.token_probabilities(images, sample).log().mean(1)
    torch.testing.assert_close(scores, expected)
    assert (scores < 0).all()


def test_gradients_flow_to_the_image(wrapper, sample) -> None:
    image = sample.image.clone().requires_grad_(True)
    wrapper(image, sample).sum().backward()
    assert image.grad is not None and image.grad.shape == image.shape
    assert torch.isfinite(image.grad).all() and image.grad.abs().sum() > 0


def test_generation_fills_the_answer(wrapper, photo) -> None:
    sample = wrapper.prepare(photo, PROMPT, max_new_tokens=4)
    assert 1 <= sample.answer_ids.numel() <= 4
    assert wrapper.generate(sample.image, sample, max_new_tokens=4) == [sample.answer]


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((8, 8), dtype=np.uint8), r"must be \(H, W, 3\)"),
        (np.zeros((8, 8, 3), dtype=np.int32), "uint8, uint16 or float"),
        (torch.zeros(2, 3, 8, 8), r"\(3, H, W\) or \(1, 3, H, W\)"),
        (torch.full((3, 8, 8), 2.0), r"must lie in \[0, 1\]"),
        (torch.zeros(3, 8, 8, dtype=torch.uint8), "Divide by 255"),
        (torch.full((3, 8, 8), float("nan")), "NaN or infinite"),
        ("cat.png", "Unsupported image type str"),
    ],
)
def test_bad_images_are_clear_errors(wrapper, image, message) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        wrapper.prepare(image, PROMPT, TARGET)


def test_bad_text_is_a_clear_error(wrapper, photo, sample) -> None:
    with pytest.raises(ValueError, match="prompt is empty"):
        wrapper.prepare(photo, "  ", TARGET)
    with pytest.raises(ValueError, match="answer text is empty"):
        wrapper.prepare(photo, PROMPT, "")
    with pytest.raises(ValueError, match="cannot be tokenised"):
        wrapper.prepare(photo, PROMPT, "zebra")
    with pytest.raises(ValueError, match="no image slot"):
        wrapper.prepare(photo, PROMPT, TARGET, apply_chat_template=False)
    with pytest.raises(IndexError, match="out of range"):
        sample.with_target_tokens([7])
    with pytest.raises(ValueError, match="'dog' is not in the answer"):
        sample.with_target_tokens("dog")


def test_template_without_image_slot(tiny, photo) -> None:
    model, processor = tiny
    saved = processor.chat_template
    try:
        processor.chat_template = "{{ messages[0]['content'][1]['text'] }}"
        with pytest.raises(ValueError, match="no image slot"):
            MLLMForwardWrapper(model, processor).prepare(photo, PROMPT, TARGET)
        processor.chat_template = None
        with pytest.raises(ValueError, match="no chat template"):
            MLLMForwardWrapper(model, processor).prepare(photo, PROMPT, TARGET)
    finally:
        processor.chat_template = saved


def test_mismatched_image_batch(wrapper, sample) -> None:
    with pytest.raises(ValueError, match=r"perturb sample\.image"):
        wrapper(torch.zeros(2, 3, 7, 7), sample)


def test_from_pretrained_local_folder(tiny, tmp_path, photo) -> None:
    model, processor = tiny
    model.save_pretrained(tmp_path)
    processor.tokenizer.save_pretrained(tmp_path)
    processor.image_processor.save_pretrained(tmp_path)
    (tmp_path / "chat_template.jinja").write_text(processor.chat_template)
    extra = {
        k: getattr(processor, k)
        for k in ("patch_size", "image_seq_length")
        if hasattr(processor, k)
    }
    if extra:
        import json

        config = {
            **extra,
            "vision_feature_select_strategy": "default",
            "num_additional_image_tokens": 1,
        }
        (tmp_path / "processor_config.json").write_text(json.dumps(config))
    loaded = MLLMForwardWrapper.from_pretrained(tmp_path, device="cpu", local_files_only=True)
    assert type(loaded.model) is type(model)
    original = MLLMForwardWrapper(model, processor).prepare(photo, PROMPT, TARGET)
    again = loaded.prepare(photo, PROMPT, TARGET)
    assert torch.equal(again.prompt_ids, original.prompt_ids)
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(again.image, again),
            MLLMForwardWrapper(model, processor)(original.image, original),
        )


@pytest.mark.parametrize("name", ["qwen2_vl", "paligemma"])
def test_from_pretrained_local_folder_on_the_generic_path(name, tmp_path, photo) -> None:
    # Qwen2-VL's processor wants a (torchvision) video processor: from_pretrained must load the
    # model type's own processor class without it. PaliGemma's has none and takes suffix=.
    model, processor = tiny_model(name)
    model.save_pretrained(tmp_path)
    processor.tokenizer.save_pretrained(tmp_path)
    processor.image_processor.save_pretrained(tmp_path)
    (tmp_path / "chat_template.jinja").write_text(processor.chat_template)
    loaded = MLLMForwardWrapper.from_pretrained(tmp_path, device="cpu", local_files_only=True)
    assert type(loaded.model) is type(model)
    assert loaded.adapter.name == "generic"
    family_class = next(k for k in type(processor).__mro__ if "ImageOnly" not in k.__name__)
    assert isinstance(loaded.processor, family_class)  # the model type's own processor class
    assert "video_processor" not in loaded.processor.get_attributes()
    direct = MLLMForwardWrapper(model, processor)
    original = direct.prepare(photo, PROMPT, TARGET)
    again = loaded.prepare(photo, PROMPT, TARGET)
    assert torch.equal(again.prompt_ids, original.prompt_ids)
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.token_probabilities(again.image, again),
            direct.token_probabilities(original.image, original),
        )


def test_missing_checkpoint_says_how_to_get_it(tmp_path) -> None:
    with pytest.raises(OSError, match="huggingface-cli download"):
        MLLMForwardWrapper.from_pretrained("llava-hf/not-a-model", local_files_only=True)


def test_pil_and_array_inputs_agree(wrapper, photo) -> None:
    from_pil = wrapper.prepare(photo, PROMPT, TARGET)
    from_array = wrapper.prepare(np.asarray(photo), PROMPT, TARGET)
    assert torch.equal(from_pil.image, from_array.image)
    assert isinstance(photo, Image.Image)


# -- deprecated names (issue 16: one vocabulary) ---------------------------------------------------
def test_deprecated_prepare_keywords_warn_and_agree(wrapper, photo, sample) -> None:
    new = wrapper.prepare(photo, PROMPT, answer=TARGET, target_tokens="cat")
    with pytest.warns(
        DeprecationWarning, match=r"prepare\(target=\.\.\.\) is deprecated"
    ) as caught:
        old = wrapper.prepare(photo, PROMPT, target=TARGET, target_tokens="cat")
    assert torch.equal(old.answer_ids, new.answer_ids) and old.target_tokens == [" cat"]
    assert {w.filename for w in caught if "prepare(target=" in str(w.message)} == {__file__}
    with pytest.warns(
        DeprecationWarning, match=r"use MLLMForwardWrapper\.prepare\(target_tokens=\.\.\.\)"
    ) as caught:
        old = wrapper.prepare(photo, PROMPT, TARGET, targets="cat")
    assert torch.equal(old.target_indices, new.target_indices)
    assert {w.filename for w in caught} == {__file__}
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'answers'"):
        wrapper.prepare(photo, PROMPT, answers=TARGET)
    with pytest.raises(TypeError, match=r"both target= \(deprecated\) and answer=; pass only"):
        wrapper.prepare(photo, PROMPT, TARGET, target="a cat")


def test_deprecated_with_targets_warns_and_agrees(sample) -> None:
    with pytest.warns(DeprecationWarning, match="use PreparedSample.with_target_tokens"):
        old = sample.with_targets(slice(1, 3))
    assert torch.equal(old.target_indices, sample.with_target_tokens(slice(1, 3)).target_indices)


def test_deprecated_score_keyword_and_attribute(tiny) -> None:
    with pytest.warns(
        DeprecationWarning, match=r"use MLLMForwardWrapper\(score_type=\.\.\.\)"
    ) as caught:
        old = MLLMForwardWrapper(*tiny, score="log_probability")
    assert {w.filename for w in caught} == {__file__}
    assert old.score_type == "log_probability"
    with pytest.warns(DeprecationWarning, match="use MLLMForwardWrapper.score_type"):
        assert old.score == "log_probability"
    with pytest.raises(ValueError, match="score_type must be 'probability' or 'log_probability'"):
        MLLMForwardWrapper(*tiny, score_type="logit")


# -- issue 20: input validation --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda image: (image * 255).round().byte(), TypeError, "Divide a uint8 image by 255"),
        (lambda image: image * 255, ValueError, "looks like a 0-255 image"),
        (lambda image: (image - 0.5) / 0.25 - 3, ValueError, "model-normalised"),
        (lambda image: image.masked_fill(image > 0.5, float("nan")), ValueError, "NaN"),
        (lambda image: image[..., :-1], ValueError, r"perturb sample\.image"),
        (lambda image: image[0], ValueError, r"must be a \(B, 3, H, W\) tensor"),
    ],
    ids=["uint8", "0-255 float", "normalised", "nan", "size", "unbatched"],
)
def test_raw_images_reaching_the_model_are_refused(wrapper, sample, make, error, message) -> None:
    bad = make(sample.image)
    for call in (wrapper, wrapper.token_probabilities, wrapper.generate):
        with pytest.raises(error, match=message):
            call(bad, sample)


def test_noise_tunnel_pixels_slightly_outside_range_are_scored(wrapper, sample) -> None:
    from captum.attr import NoiseTunnel, Saliency

    noisy = (sample.image + 0.2 * torch.randn_like(sample.image).clamp(-1, 1)).clamp(-0.2, 1.2)
    assert noisy.min() < 0 and noisy.max() > 1
    with torch.no_grad():
        assert torch.isfinite(wrapper(noisy, sample)).all()
    smooth = NoiseTunnel(Saliency(wrapper)).attribute(
        sample.image,
        nt_type="smoothgrad",
        nt_samples=2,
        stdevs=0.05,
        additional_forward_args=(sample,),
    )
    assert smooth.shape == sample.image.shape and smooth.abs().sum() > 0


def test_special_tokens_in_the_answer_are_refused(wrapper, photo) -> None:
    for token in (wrapper.tokenizer.eos_token, wrapper.processor.image_token):
        with pytest.raises(ValueError, match=re.escape(f"special tokens [{token!r}]")):
            wrapper.prepare(photo, PROMPT, f"a red cat {token}")


def test_image_placeholder_in_the_prompt(wrapper, photo, sample) -> None:
    """A full prompt copied from a model card: refused with the template, used verbatim without."""
    with pytest.raises(
        ValueError, match=r"already contains special tokens.*apply_chat_template=False"
    ):
        wrapper.prepare(photo, sample.prompt_text, TARGET)
    with pytest.raises(ValueError, match="already contains special tokens"):
        wrapper.prepare(photo, f"{wrapper.processor.image_token} {PROMPT}", TARGET)
    verbatim = wrapper.prepare(photo, sample.prompt_text, TARGET, apply_chat_template=False)
    assert torch.equal(verbatim.prompt_ids, sample.prompt_ids)
    twice = sample.prompt_text.replace(
        wrapper.processor.image_token, wrapper.processor.image_token * 2
    )
    with pytest.raises(ValueError, match=r"image token .* 2 times"):
        wrapper.prepare(photo, twice, TARGET, apply_chat_template=False)


def test_over_long_prompt_or_answer_is_refused(wrapper, photo, sample) -> None:
    limit = wrapper.model.config.get_text_config().max_position_embeddings
    n_prompt = sample.prompt_ids.shape[1]
    long_prompt = " ".join(["cat"] * limit)
    with pytest.raises(ValueError, match=f"exceed the model's context of {limit} positions"):
        wrapper.prepare(photo, long_prompt)  # refused before generating
    answer = " ".join(["cat"] * (limit - n_prompt + 1))
    with pytest.raises(ValueError, match=rf"\({n_prompt} tokens .*\({limit - n_prompt + 1} tokens"):
        wrapper.prepare(photo, PROMPT, answer)
    fits = wrapper.prepare(photo, PROMPT, " ".join(["cat"] * (limit - n_prompt)))
    assert fits.answer_ids.numel() == limit - n_prompt


@pytest.mark.parametrize(
    ("value", "error"), [(2.5, TypeError), (True, TypeError), ("8", TypeError), (0, ValueError)]
)
def test_batch_size_and_max_new_tokens_are_positive_ints(
    tiny, wrapper, sample, value, error
) -> None:
    with pytest.raises(error, match="batch_size must be"):
        MLLMForwardWrapper(*tiny, batch_size=value)
    with pytest.raises(error, match="max_new_tokens must be"):
        wrapper.generate(sample.image, sample, max_new_tokens=value)
    with pytest.raises(error, match="max_new_tokens must be"):
        wrapper.prepare(sample.image, PROMPT, max_new_tokens=value)


def test_batch_size_and_max_new_tokens_accept_numpy_ints(tiny, wrapper, sample) -> None:
    numpy_batch = MLLMForwardWrapper(*tiny, batch_size=np.int64(4)).batch_size
    assert numpy_batch == 4 and type(numpy_batch) is int
    answer = wrapper.generate(sample.image, sample, max_new_tokens=np.int64(2))
    assert answer == wrapper.generate(sample.image, sample, max_new_tokens=2)


@pytest.mark.parametrize(
    ("model_family", "processor_family", "disagreement"),
    [
        ("qwen2_5_vl", "llava", "image token '<image>' has id 4 but the model config's .* is 8"),
        ("llava", "qwen2_5_vl", "the 'llava' family expects a LlavaProcessor"),
        (
            "internvl",
            "qwen2_5_vl",
            r"patch size is 14 but the vision config's patch_size is \[8, 8\]",
        ),
        (
            "qwen2_5_vl",
            "internvl",
            "expects a Qwen2_5_VLProcessor, not a ImageOnlyInternVLProcessor",
        ),
    ],
)
def test_processor_of_another_family_is_refused(model_family, processor_family, disagreement):
    from captum_eagle.testing import tiny_model

    model, _ = tiny_model(model_family)
    _, processor = tiny_model(processor_family)
    with pytest.raises(
        ValueError, match=rf"processor \(\w+\) does not match the model \(\w+\).*{disagreement}"
    ):
        MLLMForwardWrapper(model, processor)


def test_processor_of_another_checkpoint_is_refused(tiny, family) -> None:
    from captum_eagle.testing import tiny_model

    model, processor = tiny
    _, larger = tiny_model(family, image_size=112)
    if family != "qwen2_5_vl":  # Qwen2.5-VL has no fixed image size: its processors agree
        with pytest.raises(ValueError, match="image size is"):
            MLLMForwardWrapper(model, larger)
    small_vocab, _ = tiny_model(family)
    small_vocab.resize_token_embeddings(len(processor.tokenizer) - 5)
    with pytest.raises(ValueError, match=f"tokenizer has {len(processor.tokenizer)} tokens"):
        MLLMForwardWrapper(small_vocab, processor)


def test_words_outside_the_vocabulary_are_not_special_tokens() -> None:
    # A word-level tokenizer maps unknown words to <unk>; that is no placeholder typed by the user.
    wrapper = MLLMForwardWrapper(*tiny_model("llava"))
    sample = wrapper.prepare(
        Image.new("RGB", (32, 32)), "describe the zebra-like image .", answer="a cat"
    )
    assert wrapper.tokenizer.unk_token_id in sample.prompt_ids[0].tolist()
    with pytest.raises(ValueError, match="already contains special tokens"):
        wrapper.prepare(Image.new("RGB", (32, 32)), "describe </s> the image .", answer="a cat")
