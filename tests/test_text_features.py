"""Prompt features: words and spans of the user's prompt mapped to their prompt_ids positions."""

from __future__ import annotations

import doctest

import pytest
import torch
from PIL import Image
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast
from transformers.tokenization_python import PythonBackend

from captum_eagle import MLLMForwardWrapper
from captum_eagle.testing import tiny_model
from captum_eagle.text_features import (
    TextFeature,
    feature_positions,
    masked_prompt_ids,
    prompt_features,
    prompt_words,
    text_baseline_id,
)
from captum_eagle.wrapper import PreparedSample

QUESTION = "is there a red circle?"
WORDS = ["is", "there", "a", "red", "circle", "?"]


@pytest.fixture(scope="module", params=["llava", "qwen2_5_vl", "internvl", "shapes"])
def wrapper(request: pytest.FixtureRequest) -> MLLMForwardWrapper:
    if request.param == "shapes":
        from captum_eagle.zoo import load_default_model

        return MLLMForwardWrapper(*load_default_model())
    return MLLMForwardWrapper(*tiny_model(request.param))


@pytest.fixture(scope="module")
def llava() -> MLLMForwardWrapper:
    return MLLMForwardWrapper(*tiny_model("llava"))


@pytest.fixture(scope="module")
def llava_sample(llava: MLLMForwardWrapper) -> PreparedSample:
    return llava.prepare(Image.new("RGB", (32, 32), "red"), QUESTION, "yes")


def _tokens_at(wrapper: MLLMForwardWrapper, sample: PreparedSample, feature: TextFeature):
    ids = sample.prompt_ids[0, list(feature.positions)].tolist()
    return wrapper.tokenizer.convert_ids_to_tokens(ids)


def test_words_map_to_their_tokens_in_every_family(wrapper: MLLMForwardWrapper) -> None:
    sample = wrapper.prepare(Image.new("RGB", (32, 32), "red"), QUESTION, "yes")
    features = prompt_features(wrapper.tokenizer, sample)
    assert [f.text for f in features] == WORDS
    assert [(f.start, f.end) for f in features] == prompt_words(QUESTION)
    for feature in features:
        assert _tokens_at(wrapper, sample, feature) == [feature.text]
    # The positions come after the expanded image tokens (or before them, in the shapes
    # template): consecutive, and none of them is an image token.
    positions = [p for f in features for p in f.positions]
    assert positions == list(range(positions[0], positions[0] + len(WORDS)))
    image_id = wrapper.tokenizer.convert_tokens_to_ids(wrapper.processor.image_token)
    image_positions = (sample.prompt_ids[0] == image_id).nonzero().flatten().tolist()
    assert len(image_positions) > 1 and not set(image_positions) & set(positions)


def test_character_spans_and_word_ranges(llava, llava_sample) -> None:
    features = prompt_features(llava.tokenizer, llava_sample, [(0, 8), range(3, 5), (21, 22)])
    assert [f.text for f in features] == ["is there", "red circle", "?"]
    assert [_tokens_at(llava, llava_sample, f) for f in features] == [
        ["is", "there"],
        ["red", "circle"],
        ["?"],
    ]
    assert [(f.start, f.end) for f in features] == [(0, 8), (11, 21), (21, 22)]


@pytest.mark.parametrize(
    ("spans", "message"),
    [
        ([(0, 5), (3, 8)], "overlap"),
        ([(0, 99)], "outside the prompt"),
        ([(4, 2)], "outside the prompt"),
        ([range(4, 9)], "word range"),
        ([range(2, 2)], "word range"),
        ([], "empty list"),
        ([(0, 1), (1, 2)], "share a token"),
        ([(2, 3)], "holds no token"),
    ],
)
def test_bad_spans_raise_value_error(llava, llava_sample, spans, message) -> None:
    with pytest.raises(ValueError, match=message):
        prompt_features(llava.tokenizer, llava_sample, spans)


@pytest.mark.parametrize("spans", [[(0, "2")], [(True, 2)], [(0, 1, 2)], "sentences", 3])
def test_malformed_spans_raise_type_error(llava, llava_sample, spans) -> None:
    with pytest.raises(TypeError, match=r"text_features|span"):
        prompt_features(llava.tokenizer, llava_sample, spans)


def test_image_placeholder_in_a_raw_prompt_is_not_a_feature(llava) -> None:
    raw = "<image>\nis there a cat?"
    sample = llava.prepare(Image.new("RGB", (32, 32)), raw, "yes", apply_chat_template=False)
    features = prompt_features(llava.tokenizer, sample)
    assert [f.text for f in features] == ["is", "there", "a", "cat", "?"]
    assert [_tokens_at(llava, sample, f) for f in features] == [[f.text] for f in features]
    with pytest.raises(ValueError, match="special token"):
        prompt_features(llava.tokenizer, sample, [(0, 9)])


def test_prompt_with_nothing_left_raises(llava) -> None:
    sample = llava.prepare(Image.new("RGB", (32, 32)), "<image>", "yes", apply_chat_template=False)
    with pytest.raises(ValueError, match="no word left"):
        prompt_features(llava.tokenizer, sample)


def test_prompt_not_found_once_in_the_template_raises(llava, llava_sample) -> None:
    from dataclasses import replace

    with pytest.raises(ValueError, match="is not in"):
        prompt_features(llava.tokenizer, replace(llava_sample, prompt="a blue square"))
    with pytest.raises(ValueError, match="occurs 5 times"):
        prompt_features(llava.tokenizer, replace(llava_sample, prompt="e"))


class _SlowWords(PythonBackend):
    """A slow (pure Python) tokenizer: no character offsets."""

    def __init__(self) -> None:
        self.vocab = {w: i for i, w in enumerate(["<unk>", *WORDS])}
        super().__init__(unk_token="<unk>")

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def get_vocab(self) -> dict[str, int]:
        return dict(self.vocab)

    def _tokenize(self, text: str) -> list[str]:
        return text.replace("?", " ?").split()

    def _convert_token_to_id(self, token: str) -> int:
        return self.vocab.get(token, 0)


def test_slow_tokenizer_raises_type_error(llava_sample) -> None:
    with pytest.raises(TypeError, match="fast tokenizer"):
        prompt_features(_SlowWords(), llava_sample)


def _sample(tokenizer: PreTrainedTokenizerFast, prompt: str) -> PreparedSample:
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    return PreparedSample(
        image=torch.zeros(1, 3, 4, 4),
        prompt=prompt,
        prompt_text=prompt,
        prompt_ids=ids,
        answer="yes",
        answer_ids=torch.tensor([0]),
        answer_tokens=["yes"],
        target_indices=torch.tensor([0]),
    )


def test_words_sharing_a_token_become_one_feature() -> None:
    vocab = {"<unk>": 0, "is": 1, "there": 2, "a": 3, "cat?": 4, "cat": 5}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>")
    sample = _sample(tokenizer, "is there a cat?")
    features = prompt_features(tokenizer, sample)
    assert [(f.text, f.positions) for f in features] == [
        ("is", (0,)),
        ("there", (1,)),
        ("a", (2,)),
        ("cat?", (3,)),
    ]


def test_text_baseline_ids(llava) -> None:
    tokenizer = llava.tokenizer
    assert text_baseline_id(tokenizer, "pad") == tokenizer.pad_token_id
    assert text_baseline_id(tokenizer, "unk") == tokenizer.unk_token_id
    assert text_baseline_id(tokenizer, "the") == tokenizer.convert_tokens_to_ids("the")
    assert text_baseline_id(tokenizer, 7) == 7
    with pytest.raises(ValueError, match="one known token"):
        text_baseline_id(tokenizer, "the cat")
    with pytest.raises(ValueError, match="one known token"):
        text_baseline_id(tokenizer, "zebra")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        text_baseline_id(tokenizer, len(tokenizer))
    with pytest.raises(TypeError, match="text_baseline"):
        text_baseline_id(tokenizer, True)
    backend = Tokenizer(models.WordLevel(vocab={"<unk>": 0, "a": 1}, unk_token="<unk>"))
    no_pad = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>")
    with pytest.raises(ValueError, match="no pad token"):
        text_baseline_id(no_pad, "pad")


def test_masked_prompt_ids_replace_only_absent_features() -> None:
    features = [TextFeature("a", 0, 1, (1,)), TextFeature("b c", 2, 5, (2, 3))]
    positions = feature_positions(features, 5)
    prompt_ids = torch.tensor([[10, 11, 12, 13, 14]])
    present = torch.tensor([[True, True], [False, True], [True, False], [False, False]])
    assert masked_prompt_ids(prompt_ids, positions, present, 0).tolist() == [
        [10, 11, 12, 13, 14],
        [10, 0, 12, 13, 14],
        [10, 11, 0, 0, 14],
        [10, 0, 0, 0, 14],
    ]


def test_docstring_examples_run() -> None:
    import captum_eagle.text_features as module

    results = doctest.testmod(module)
    assert results.attempted > 0 and results.failed == 0
