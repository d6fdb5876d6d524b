r"""Tiny random-weight models of the supported families, for tests, tutorials and CPU benchmarks.

Real checkpoints are gigabytes; these are built from small configs of the *same classes*
(``LlavaForConditionalGeneration``, ``Qwen2_5_VLForConditionalGeneration``,
``InternVLForConditionalGeneration``) with a word-level tokenizer trained on the spot, so every code
path the real models take runs in well under a second on a CPU.

Examples::

    >>> from captum_eagle.testing import tiny_model
    >>> model, processor = tiny_model("llava")
    >>> type(model).__name__
    'LlavaForConditionalGeneration'
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    GotOcr2ImageProcessorPil,
    InternVLConfig,
    InternVLForConditionalGeneration,
    InternVLVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    ProcessorMixin,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2Config,
    Qwen2VLImageProcessorPil,
)

from captum_eagle.families import image_only_processor

WORDS = [
    "a",
    "an",
    "the",
    "of",
    "in",
    "on",
    "and",
    "with",
    "is",
    "there",
    "image",
    "describe",
    "picture",
    "what",
    "photo",
    "yes",
    "no",
    "cat",
    "dog",
    "red",
    "blue",
    "green",
    "yellow",
    "white",
    "black",
    "circle",
    "square",
    "triangle",
    "cross",
    "one",
    "two",
    "sitting",
    "standing",
    "next",
    "to",
    "left",
    "right",
    "top",
    "bottom",
    "small",
    "large",
    "colour",
    "shape",
    "question",
    "answer",
    "user",
    "assistant",
    "system",
    "you",
    "are",
    "helpful",
    ".",
    ",",
    "?",
    ":",
    "!",
]

_LLAVA_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'user' %}USER: "
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>\n{% else %}{{ c['text'] }}"
    "{% endif %}{% endfor %} {% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
_CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}IMAGE_SLOT{% else %}{{ c['text'] }}"
    "{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_QWEN_TEMPLATE = _CHATML_TEMPLATE.replace(
    "IMAGE_SLOT", "<|vision_start|><|image_pad|><|vision_end|>"
)
_INTERNVL_TEMPLATE = _CHATML_TEMPLATE.replace("IMAGE_SLOT", "<IMG_CONTEXT>\n")

FAMILY_NAMES = ("llava", "qwen2_5_vl", "internvl")


def _word_tokenizer(
    specials: list[str], chat_template: str, **extra: object
) -> PreTrainedTokenizerFast:
    vocab = {}
    for token in ["<pad>", "<unk>", "<s>", "</s>", *specials, *WORDS]:
        vocab.setdefault(token, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    backend.add_special_tokens(["<pad>", "<unk>", "<s>", "</s>", *specials])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        additional_special_tokens=specials,
        clean_up_tokenization_spaces=False,
        **extra,
    )
    tokenizer.chat_template = chat_template
    return tokenizer


def _text_kwargs(tokenizer: PreTrainedTokenizerFast, hidden: int = 64) -> dict:
    return {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "hidden_size": hidden,
        "intermediate_size": 2 * hidden,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 1024,
    }


def _tiny_llava(image_size: int) -> tuple[PreTrainedModel, ProcessorMixin]:
    tokenizer = _word_tokenizer(["<image>", "USER", "ASSISTANT"], _LLAVA_TEMPLATE)
    patch = 8
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            image_size=image_size,
            patch_size=patch,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            projection_dim=32,
        ),
        text_config=LlamaConfig(**_text_kwargs(tokenizer)),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    model = LlavaForConditionalGeneration(config)
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=_LLAVA_TEMPLATE,
    )
    return model, processor


def _tiny_qwen2_5_vl(image_size: int) -> tuple[PreTrainedModel, ProcessorMixin]:
    specials = [
        "<|im_start|>",
        "<|im_end|>",
        "<|vision_start|>",
        "<|vision_end|>",
        "<|image_pad|>",
        "<|video_pad|>",
        "user",
    ]
    tokenizer = _word_tokenizer(specials, _QWEN_TEMPLATE)
    ids = tokenizer.convert_tokens_to_ids
    text = _text_kwargs(tokenizer)
    text["rope_scaling"] = {"type": "mrope", "mrope_section": [2, 3, 3]}
    config = Qwen2_5_VLConfig(
        text_config=text,
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 4,
            "out_hidden_size": 64,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 56,
            "fullatt_block_indexes": [1],
        },
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )
    model = Qwen2_5_VLForConditionalGeneration(config)
    image_processor = Qwen2VLImageProcessorPil(
        size={"shortest_edge": 56 * 56, "longest_edge": max(image_size, 112) ** 2}
    )
    processor = image_only_processor(
        "Qwen2_5_VLProcessor", image_processor, tokenizer, chat_template=_QWEN_TEMPLATE
    )
    return model, processor


def _tiny_internvl(image_size: int) -> tuple[PreTrainedModel, ProcessorMixin]:
    specials = ["<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>", "<video>", "user"]
    tokenizer = _word_tokenizer(
        specials,
        _INTERNVL_TEMPLATE,
        extra_special_tokens={
            "start_image_token": "<img>",
            "end_image_token": "</img>",
            "context_image_token": "<IMG_CONTEXT>",
            "video_token": "<video>",
        },
    )
    patch = 8
    config = InternVLConfig(
        vision_config=InternVLVisionConfig(
            image_size=[image_size, image_size],
            patch_size=[patch, patch],
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
        ),
        text_config=Qwen2Config(**_text_kwargs(tokenizer)),
        image_token_id=tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>"),
        downsample_ratio=0.5,
    )
    model = InternVLForConditionalGeneration(config)
    image_processor = GotOcr2ImageProcessorPil(
        size={"height": image_size, "width": image_size},
        crop_to_patches=False,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    )
    seq = (image_size // patch) ** 2 // 4
    processor = image_only_processor(
        "InternVLProcessor",
        image_processor,
        tokenizer,
        image_seq_length=seq,
        chat_template=_INTERNVL_TEMPLATE,
    )
    return model, processor


_BUILDERS = {"llava": _tiny_llava, "qwen2_5_vl": _tiny_qwen2_5_vl, "internvl": _tiny_internvl}
_DEFAULT_SIZES = {"llava": 32, "qwen2_5_vl": 56, "internvl": 32}


def tiny_model(
    family: str, image_size: int | None = None, seed: int = 0
) -> tuple[PreTrainedModel, ProcessorMixin]:
    r"""Build a tiny random model and a matching processor of one supported family.

    Args:
        family (str): one of ``"llava"``, ``"qwen2_5_vl"``, ``"internvl"``.
        image_size (int, optional): square input resolution of the vision tower. Defaults to
            32 (LLaVA, InternVL) or 56 (Qwen2.5-VL, a multiple of 28).
        seed (int): seed of the random weights. Default: 0.

    Returns:
        (model, processor): the model in eval mode (float32, CPU) and its processor.
    """
    if family not in _BUILDERS:
        raise ValueError(f"Unknown tiny family {family!r}; choose one of {sorted(_BUILDERS)}.")
    torch.manual_seed(seed)
    model, processor = _BUILDERS[family](image_size or _DEFAULT_SIZES[family])
    return model.eval(), processor
