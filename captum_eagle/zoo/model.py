"""Tokenizer, processor and model of the bundled "shapes" LLaVA model.

Everything is built locally (no download): a word-level tokenizer over the tiny scene language,
a real :class:`transformers.LlavaProcessor` (CLIP image processor, ``<image>`` expanded to 64
positions) and a :class:`transformers.LlavaForConditionalGeneration` with a tiny CLIP vision tower
and a tiny Llama language model (about 1 M parameters).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)

from .scenes import COLOURS, IMAGE_SIZE, SHAPES, Question

__all__ = [
    "CHAT_TEMPLATE",
    "DEFAULT_CAPTION_PROMPT",
    "WEIGHTS_DIR",
    "build_model",
    "build_processor",
    "build_tokenizer",
    "chat_prompt",
    "load_default_model",
    "question_prompt",
]

#: Folder holding the bundled weights, tokenizer and image processor.
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

#: Prompt asking the model for a caption.
DEFAULT_CAPTION_PROMPT = "describe the image."

PATCH_SIZE = 8
IMAGE_TOKEN = "<image>"
PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"

#: Jinja chat template: ``"<s>describe the image. <image> answer:"`` for one user turn with an
#: image and a generation prompt. The text comes before the image whatever the content order, so
#: that (in this causal model) every image token can already see what is asked about. An
#: assistant turn renders as ``" <text></s>"``.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}"
    "{% for item in message['content'] %}"
    "{% if item['type'] == 'text' %}{{ item['text'] + ' ' }}{% endif %}"
    "{% endfor %}"
    "{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}{{ '<image>' }}{% endif %}"
    "{% endfor %}"
    "{% endif %}"
    "{% else %}"
    "{% if message['content'] is string %}{{ ' ' + message['content'] + eos_token }}"
    "{% else %}"
    "{% for item in message['content'] %}"
    "{% if item['type'] == 'text' %}{{ ' ' + item['text'] + eos_token }}{% endif %}"
    "{% endfor %}"
    "{% endif %}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ ' answer:' }}{% endif %}"
)

_WORDS = [
    "a",
    "and",
    "is",
    "there",
    "describe",
    "the",
    "image",
    "answer",
    "yes",
    "no",
    *COLOURS,
    *SHAPES,
]
_PUNCT = [".", "?", ":", ","]


def build_tokenizer() -> PreTrainedTokenizerFast:
    """Build the word-level tokenizer of the scene language.

    Returns
    -------
    transformers.PreTrainedTokenizerFast
        Whitespace/punctuation pre-tokenizer, word-level vocabulary, special tokens ``<pad>``,
        ``<s>``, ``</s>``, ``<unk>`` and ``<image>``, and :data:`CHAT_TEMPLATE`. It adds no special
        tokens by itself (the chat template writes ``<s>``), and pads on the left.
    """
    specials = [PAD, BOS, EOS, UNK, IMAGE_TOKEN]
    vocab = {tok: i for i, tok in enumerate(specials + _WORDS + _PUNCT)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        extra_special_tokens={"image_token": IMAGE_TOKEN},
        padding_side="left",
        clean_up_tokenization_spaces=False,
        model_max_length=256,
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def build_image_processor() -> CLIPImageProcessorPil:
    """Build the CLIP image processor (64x64, mean/std 0.5, no torchvision needed).

    Returns
    -------
    transformers.CLIPImageProcessorPil
    """
    return CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        do_resize=True,
        do_center_crop=True,
        do_rescale=True,
        do_normalize=True,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        do_convert_rgb=True,
    )


def build_processor(
    tokenizer: PreTrainedTokenizerFast | None = None,
    image_processor: CLIPImageProcessorPil | None = None,
) -> LlavaProcessor:
    """Build the :class:`transformers.LlavaProcessor` of the shapes model.

    Parameters
    ----------
    tokenizer : PreTrainedTokenizerFast, optional
        Defaults to :func:`build_tokenizer`.
    image_processor : CLIPImageProcessorPil, optional
        Defaults to :func:`build_image_processor`.

    Returns
    -------
    transformers.LlavaProcessor
        Expands ``<image>`` to 64 image tokens (8x8 patches, CLS dropped).
    """
    return LlavaProcessor(
        image_processor=image_processor or build_image_processor(),
        tokenizer=tokenizer or build_tokenizer(),
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
        image_token=IMAGE_TOKEN,
    )


def build_model(tokenizer: PreTrainedTokenizerFast, seed: int = 0) -> LlavaForConditionalGeneration:
    """Build a freshly initialised tiny LLaVA model (about 1 M parameters).

    Parameters
    ----------
    tokenizer : PreTrainedTokenizerFast
        The tokenizer from :func:`build_tokenizer` (vocabulary and special token ids).
    seed : int, default 0
        Seed of the weight initialisation.

    Returns
    -------
    transformers.LlavaForConditionalGeneration
    """
    torch.manual_seed(seed)
    vision = CLIPVisionConfig(
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=3,
        num_attention_heads=4,
        projection_dim=128,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=320,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=cast(int, tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        projector_hidden_act="gelu",
        tie_word_embeddings=True,
    )
    model = LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def chat_prompt(processor: LlavaProcessor, prompt: str) -> str:
    """Render one user turn (image + ``prompt``) with the chat template and generation prompt.

    Parameters
    ----------
    processor : transformers.LlavaProcessor
        The shapes processor.
    prompt : str
        E.g. :data:`DEFAULT_CAPTION_PROMPT` or a question.

    Returns
    -------
    str
        E.g. ``"<s>describe the image. <image> answer:"``.
    """
    conversation: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}
    ]
    return processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)


def question_prompt(question: Question | str) -> str:
    """Return the user prompt for a yes/no question.

    Parameters
    ----------
    question : Question or str
        A :class:`~captum_eagle.zoo.scenes.Question` or its text.

    Returns
    -------
    str
        The question text itself, e.g. ``"is there a red circle?"`` (the chat template adds the
        image token and the answer cue).
    """
    return question if isinstance(question, str) else question.text


def save_all(
    model: LlavaForConditionalGeneration, processor: LlavaProcessor, out: str | Path
) -> None:
    """Save model (float16 safetensors), processor, tokenizer, image processor and chat template.

    Parameters
    ----------
    model : transformers.LlavaForConditionalGeneration
    processor : transformers.LlavaProcessor
    out : str or Path
        Destination folder (created if needed).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    half = LlavaForConditionalGeneration(model.config)
    half.load_state_dict(model.state_dict())
    half.generation_config = model.generation_config
    # transformers wraps PreTrainedModel.to with functools.wraps: mypy sees no bound method.
    half.to(torch.float16).save_pretrained(out, safe_serialization=True)  # type: ignore[arg-type]
    # The processor writes the tokenizer, chat_template.jinja and processor_config.json (patch
    # size, image token: the folder then loads with MLLMForwardWrapper.from_pretrained); the image
    # processor's own preprocessor_config.json is what load_default_model reads.
    processor.save_pretrained(out)
    processor.image_processor.save_pretrained(out)


def load_default_model(
    device: str | torch.device = "cpu", path: str | Path | None = None
) -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    """Load the bundled shapes model and its processor, offline.

    Parameters
    ----------
    device : str or torch.device, default "cpu"
        Where to put the model.
    path : str or Path, optional
        Folder to load from; defaults to the weights shipped in the package.

    Returns
    -------
    model : transformers.LlavaForConditionalGeneration
        In float32 and eval mode.
    processor : transformers.LlavaProcessor

    Raises
    ------
    FileNotFoundError
        If the weights are missing (with the command that trains them).
    """
    folder = Path(path) if path is not None else WEIGHTS_DIR
    if not (folder / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"shapes model weights not found in {folder}. Train them (about 21 min on a 2-core "
            "CPU; the bundled weights add a 9-min second stage, see the docstring of "
            f"captum_eagle.zoo.train) with: python -m captum_eagle.zoo.train --out {folder}"
        )
    tokenizer = PreTrainedTokenizerFast.from_pretrained(folder, local_files_only=True)
    tokenizer.chat_template = CHAT_TEMPLATE
    image_processor = CLIPImageProcessorPil.from_pretrained(folder, local_files_only=True)
    processor = build_processor(tokenizer, image_processor)
    model = LlavaForConditionalGeneration.from_pretrained(
        folder, local_files_only=True, dtype=torch.float32
    )
    model.to(device).eval()  # type: ignore[arg-type]  # see save_all
    return model, processor
