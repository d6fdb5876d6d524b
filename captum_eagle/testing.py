r"""Tiny random-weight models of the supported families, for tests, tutorials and CPU benchmarks.

Real checkpoints are gigabytes; these are built from small configs of the *same classes* that
``AutoModelForImageTextToText`` loads for real checkpoints (:data:`TINY_MODELS` names the class and
example checkpoints of each family), with the family's own processor and PIL-backed image
processor, a word-level tokenizer trained on the spot and a minimal chat template, so every code
path the real models take (tiling and dynamic resolution included) runs in well under a second on
a CPU. Each builder's docstring says what its processor returns and what the model needs.

A batch of prompts takes one list of images per prompt (``images=[[a], [b]]``): Gemma 3,
Idefics3 and SmolVLM read a flat list of two images as two images of one prompt.

:data:`FAMILY_NAMES` are the families with a hand-written torch pixel layout in
:mod:`captum_eagle.families` (the wrapper tests run over them); :func:`list_tiny_models` lists
all. Not built, because their processors cannot be built here: Mistral 3 and Pixtral
(``PixtralProcessor`` requires torchvision), Gemma 4 (its processor passes ``video_processor``
on to ``ProcessorMixin``, so it cannot be built without one, and it needs an audio feature
extractor), Llama 4, LFM2-VL and Cohere2-Vision (no PIL-backed image processor).

Examples::

    >>> from captum_eagle.testing import tiny_model
    >>> model, processor = tiny_model("llava")
    >>> type(model).__name__
    'LlavaForConditionalGeneration'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    AyaVisionConfig,
    AyaVisionForConditionalGeneration,
    AyaVisionProcessor,
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    Cohere2Config,
    Gemma3Config,
    Gemma3ForConditionalGeneration,
    Gemma3ImageProcessorPil,
    Gemma3Processor,
    Gemma3TextConfig,
    GemmaConfig,
    Glm4vConfig,
    Glm4vForConditionalGeneration,
    Glm4vImageProcessorPil,
    GotOcr2ImageProcessorPil,
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3ImageProcessorPil,
    Idefics3Processor,
    InternVLConfig,
    InternVLForConditionalGeneration,
    InternVLVisionConfig,
    JanusConfig,
    JanusForConditionalGeneration,
    JanusImageProcessorPil,
    JanusProcessor,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaNextConfig,
    LlavaNextForConditionalGeneration,
    LlavaNextImageProcessorPil,
    LlavaNextProcessor,
    LlavaOnevisionConfig,
    LlavaOnevisionForConditionalGeneration,
    LlavaOnevisionImageProcessorPil,
    LlavaProcessor,
    PaliGemmaConfig,
    PaliGemmaForConditionalGeneration,
    PaliGemmaProcessor,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    ProcessorMixin,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2Config,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessorPil,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
    SiglipImageProcessorPil,
    SiglipVisionConfig,
    SmolVLMConfig,
    SmolVLMForConditionalGeneration,
    SmolVLMImageProcessorPil,
)

from captum_eagle.families import image_only_processor
from captum_eagle.families.base import FAMILIES
from captum_eagle.registry import Registry

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
# a CLIP tower: its CLS token is dropped ("default" strategy)
_LLAVA_PROCESSOR_OPTIONS = {
    "vision_feature_select_strategy": "default",
    "num_additional_image_tokens": 1,
    "chat_template": _LLAVA_TEMPLATE,
}
_QWEN_TEMPLATE = _CHATML_TEMPLATE.replace(
    "IMAGE_SLOT", "<|vision_start|><|image_pad|><|vision_end|>"
)
_INTERNVL_TEMPLATE = _CHATML_TEMPLATE.replace("IMAGE_SLOT", "<IMG_CONTEXT>\n")

FAMILY_NAMES = ("llava", "qwen2_5_vl", "internvl")


def _word_tokenizer(
    specials: list[str], chat_template: str, **extra: object
) -> PreTrainedTokenizerFast:
    vocab: dict[str, int] = {}
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
    r"""LLaVA-1.5: CLIP tower (patch 8, CLS dropped), 2-layer MLP projector, Llama text.

    Images are resized (shortest edge) and centre-cropped to ``s × s``: ``pixel_values``
    ``(B, 3, s, s)``; ``<image>`` becomes ``(s/8)²`` image tokens.
    """
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
        **_LLAVA_PROCESSOR_OPTIONS,
    )
    return model, processor


def _qwen_token_ids(tokenizer: PreTrainedTokenizerFast) -> dict[str, int]:
    ids = tokenizer.convert_tokens_to_ids
    return {
        "image_token_id": ids("<|image_pad|>"),
        "video_token_id": ids("<|video_pad|>"),
        "vision_start_token_id": ids("<|vision_start|>"),
        "vision_end_token_id": ids("<|vision_end|>"),
    }


def _tiny_qwen2_5_vl(image_size: int) -> tuple[PreTrainedModel, ProcessorMixin]:
    r"""Qwen2.5-VL: windowed ViT (patch 14, merge 2), M-RoPE, ChatML template.

    Same layout as ``"qwen2_vl"``: ``pixel_values`` ``(Σ t·h·w, 3·2·14·14)`` with
    ``image_grid_thw``; ``t·h·w / 4`` ``<|image_pad|>`` tokens; pass ``mm_token_type_ids``.
    Built without a video processor.
    """
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
        **_qwen_token_ids(tokenizer),
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
    r"""InternVL (-HF): InternViT-style tower, pixel-shuffle (0.5) + MLP projector, Qwen2 text.

    ``pixel_values`` is ``(Σ tiles, 3, s, s)`` (ImageNet mean/std); ``<IMG_CONTEXT>`` is expanded
    to ``(s/16)²`` tokens per tile between ``<img>`` and ``</img>``. The processor's class
    defaults turn ``crop_to_patches`` on whatever the image processor says (a 32 × 48 image
    gives 7 tiles: 6 crops and a thumbnail); pass ``crop_to_patches=False`` to the processor
    call for a single tile. Built without a video processor.
    """
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


def _user_turn_template(user_open: str, image: str, user_close: str, assistant_open: str) -> str:
    """A chat template with the image placeholder and the prompt in the user turn only."""
    return (
        "{% for m in messages %}{% if m['role'] == 'user' %}"
        + user_open
        + "{% for c in m['content'] %}{% if c['type'] == 'image' %}"
        + image
        + "{% else %}{{ c['text'] }}{% endif %}{% endfor %}"
        + user_close
        + "{% endif %}{% endfor %}{% if add_generation_prompt %}"
        + assistant_open
        + "{% endif %}"
    )


_CHATML_SPECIALS = ["<|im_start|>", "<|im_end|>", "user", "assistant"]
_QWEN_SPECIALS = [
    *_CHATML_SPECIALS,
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]


_TINY_VISION = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
}


_SIGLIP_NORMALISATION = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}


def _siglip_vision(image_size: int, patch: int) -> SiglipVisionConfig:
    return SiglipVisionConfig(image_size=image_size, patch_size=patch, **_TINY_VISION)


def _grid_pinpoints(tile: int) -> list[list[int]]:
    return [[tile, 2 * tile], [2 * tile, tile], [2 * tile, 2 * tile]]


def _tiny_llava_next(image_size: int) -> tuple[PreTrainedModel, ProcessorMixin]:
    r"""LLaVA-NeXT (v1.6): CLIP tower, Llama text, "anyres" tiling.

    The image is resized to the best of ``image_grid_pinpoints`` (``(s, 2s)``, ``(2s, s)``,
    ``(2s, 2s)`` for tile side ``s = image_size``), cut into ``s × s`` tiles plus one downscaled
    base tile: ``pixel_values`` is ``(B, tiles, 3, s, s)`` with ``image_sizes`` ``(B, 2)`` (original
    height, width). The ``<image>`` token is expanded to the base tile's patches plus the unpadded
    tile features with one newline embedding per row, so the count depends on the aspect ratio.
    """
    tokenizer = _word_tokenizer(["<image>", "USER", "ASSISTANT"], _LLAVA_TEMPLATE)
    patch = 8
    pinpoints = _grid_pinpoints(image_size)
    config = LlavaNextConfig(
        vision_config=CLIPVisionConfig(
            image_size=image_size, patch_size=patch, projection_dim=32, **_TINY_VISION
        ),
        text_config=LlamaConfig(**_text_kwargs(tokenizer)),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        image_grid_pinpoints=pinpoints,
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    image_processor = LlavaNextImageProcessorPil(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        image_grid_pinpoints=pinpoints,
    )
    processor = LlavaNextProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch,
        **_LLAVA_PROCESSOR_OPTIONS,
    )
    return LlavaNextForConditionalGeneration(config), processor


def _tiny_llava_onevision(image_size: int) -> tuple[PreTrainedModel, ProcessorMixin]:
    r"""LLaVA-OneVision: SigLIP tower, Qwen2 text, "anyres_max_9" tiling, ChatML template.

    Like LLaVA-NeXT (``pixel_values`` ``(B, tiles, 3, s, s)`` plus ``image_sizes``), but with the
    "full" feature strategy (no CLS to drop) and features bilinearly downscaled when the tiles
    exceed the ``anyres_max_9`` budget. The processor is built without a video processor.
    """
    template = _CHATML_TEMPLATE.replace("IMAGE_SLOT", "<image>\n")
    tokenizer = _word_tokenizer([*_CHATML_SPECIALS, "<image>", "<video>"], template)
    patch = 8
    pinpoints = _grid_pinpoints(image_size)
    config = LlavaOnevisionConfig(
        vision_config=_siglip_vision(image_size, patch),
        text_config=Qwen2Config(**_text_kwargs(tokenizer)),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        video_token_id=tokenizer.convert_tokens_to_ids("<video>"),
        image_grid_pinpoints=pinpoints,
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
    )
    image_processor = LlavaOnevisionImageProcessorPil(
        size={"height": image_size, "width": image_size}, image_grid_pinpoints=pinpoints
    )
    processor = image_only_processor(
        "LlavaOnevisionProcessor",
        image_processor,
        tokenizer,
        num_image_tokens=(image_size // patch) ** 2,
        vision_feature_select_strategy="full",
        chat_template=template,
    )
    return LlavaOnevisionForConditionalGeneration(config), processor


def _qwen_tokenizer() -> PreTrainedTokenizerFast:
    return _word_tokenizer(_QWEN_SPECIALS, _QWEN_TEMPLATE)


def _qwen_image_processor(image_size: int, patch: int) -> Qwen2VLImageProcessorPil:
    unit = 2 * patch
    return Qwen2VLImageProcessorPil(
        patch_size=patch,
        merge_size=2,
        size={"shortest_edge": 4 * unit * unit, "longest_edge": max(image_size, 4 * unit) ** 2},
    )


def _tiny_qwen2_vl(image_size: int) -> tuple[PreTrainedModel, ProcessorMixin]:
    r"""Qwen2-VL: native dynamic resolution, M-RoPE, ChatML template.

    Images are resized to multiples of 28 px (``patch_size`` 14 × ``merge_size`` 2) within the
    processor's pixel budget and flattened to patches: ``pixel_values`` is
    ``(Σ t·h·w, 3·2·14·14)`` with ``image_grid_thw`` ``(B, 3)``; each image gives
    ``t·h·w / 4`` ``<|image_pad|>`` tokens between ``<|vision_start|>`` and ``<|vision_end|>``.
    The processor also returns ``mm_token_type_ids`` (pass it to the model: it places the 3-D
    rotary positions). Built without a video processor.
    """
    tokenizer = _qwen_tokenizer()
    text = _text_kwargs(tokenizer)
    text["rope_parameters"] = {"rope_type": "default", "mrope_section": [2, 3, 3]}
    config = Qwen2VLConfig(
        text_config=text,
        vision_config={
            "depth": 2,
            "embed_dim": 32,
            "hidden_size": 64,
            "mlp_ratio": 2,
            "num_heads": 4,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        **_qwen_token_ids(tokenizer),
    )
    processor = image_only_processor(
        "Qwen2VLProcessor",
        _qwen_image_processor(image_size, 14),
        tokenizer,
        chat_template=_QWEN_TEMPLATE,
    )
    return Qwen2VLForConditionalGeneration(config), processor


def _tiny_qwen3_vl(image_size: int) -> tuple[PreTrainedModel, ProcessorMixin]:
    r"""Qwen3-VL: like Qwen2-VL with 16-px patches (sizes in multiples of 32), interleaved M-RoPE,
    learned position embeddings interpolated to the grid and DeepStack features injected into the
    first text layers.

    ``pixel_values`` is ``(Σ t·h·w, 3·2·16·16)`` with ``image_grid_thw``; pass
    ``mm_token_type_ids``. Built without a video processor.
    """
    tokenizer = _qwen_tokenizer()
    text = _text_kwargs(tokenizer)
    text["head_dim"] = 16
    text["rope_parameters"] = {
        "rope_type": "default",
        "mrope_section": [2, 3, 3],
        "mrope_interleaved": True,
    }
    config = Qwen3VLConfig(
        text_config=text,
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 4,
            "out_hidden_size": 64,
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "num_position_embeddings": 64,
            "deepstack_visual_indexes": [0],
        },
        **_qwen_token_ids(tokenizer),
    )
    processor = image_only_processor(
        "Qwen3VLProcessor",
        _qwen_image_processor(image_size, 16),
        tokenizer,
        chat_template=_QWEN_TEMPLATE,
    )
    return Qwen3VLForConditionalGeneration(config), processor


_GEMMA_TURNS = ["<start_of_turn>", "<end_of_turn>", "user", "model"]


def _gemma_text_kwargs(tokenizer: PreTrainedTokenizerFast) -> dict:
    return {**_text_kwargs(tokenizer), "head_dim": 16}


def _tiny_gemma3(image_size: int) -> tuple[PreTrainedModel, ProcessorMixin]:
    r"""Gemma 3: SigLIP tower, average-pooled to ``mm_tokens_per_image`` soft tokens, Gemma 3 text.

    Every image is resized to a fixed ``image_size`` square: ``pixel_values`` ``(crops, 3, s, s)``.
    The template's ``<start_of_image>`` is expanded by the processor to
    ``\n\n<start_of_image>`` + ``(s/16)²`` ``<image_soft_token>`` + ``<end_of_image>\n\n``.
    The processor returns ``token_type_ids`` (1 on image soft tokens): pass them to the model,
    whose attention is bidirectional inside each image. Pan-and-scan is off by default, as in
    the real processor; ``processor(..., do_pan_and_scan=True)`` crops images with an aspect
    ratio of at least 1.2 into up to 4 extra square crops of at least 16 px (``num_crops``),
    each with its own image sequence. Unlike a fresh ``Gemma3ForConditionalGeneration``, the
    image projection is random, not zero.
    """
    boi, image, eoi = "<start_of_image>", "<image_soft_token>", "<end_of_image>"
    template = _user_turn_template(
        "<start_of_turn>user\n", boi, "<end_of_turn>\n", "<start_of_turn>model\n"
    )
    tokenizer = _word_tokenizer(
        [*_GEMMA_TURNS, boi, image, eoi],
        template,
        extra_special_tokens={"boi_token": boi, "image_token": image, "eoi_token": eoi},
    )
    ids = tokenizer.convert_tokens_to_ids
    patch = 8
    tokens_per_image = (image_size // (2 * patch)) ** 2
    config = Gemma3Config(
        vision_config=_siglip_vision(image_size, patch),
        text_config=Gemma3TextConfig(
            **_gemma_text_kwargs(tokenizer), query_pre_attn_scalar=16, sliding_window=512
        ),
        mm_tokens_per_image=tokens_per_image,
        boi_token_index=ids(boi),
        eoi_token_index=ids(eoi),
        image_token_index=ids(image),
    )
    image_processor = Gemma3ImageProcessorPil(
        size={"height": image_size, "width": image_size},
        **_SIGLIP_NORMALISATION,
    )
    processor = Gemma3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_length=tokens_per_image,
        chat_template=template,
    )
    # the class-level defaults (which win over the image processor's own) ask for 256-px crops
    processor.images_kwargs = {**Gemma3Processor.images_kwargs, "pan_and_scan_min_crop_size": 16}
    model = Gemma3ForConditionalGeneration(config)
    # transformers zero-initialises this projection (so that random images have no effect); a
    # tiny model is only useful if the image changes the answer
    torch.nn.init.normal_(
        model.model.multi_modal_projector.mm_input_projection_weight, std=config.initializer_range
    )
    return model, processor


def _tiny_paligemma(image_size: int) -> tuple[PreTrainedModel, ProcessorMixin]:
    r"""PaliGemma: SigLIP tower, linear projector, Gemma text, prefix-LM attention.

    There is no chat template in the real checkpoints: the prompt is a task prefix
    (``"caption en"``). The tiny template only puts ``<image>`` before the user text; the
    processor expands it to ``(s/8)²`` image tokens and appends ``<bos>`` and ``"\n"`` after it.
    The answer is passed as ``suffix=`` (the processor appends ``<eos>`` and returns ``labels``);
    ``token_type_ids`` mark the suffix (1) against the prefix (0): the prefix, image included,
    is attended bidirectionally, the suffix causally. The processor adds 1,152 ``<locXXXX>`` /
    ``<segXXX>`` tokens to the tokenizer.
    """
    template = _user_turn_template("", "<image>", "", "")
    tokenizer = _word_tokenizer(["<image>"], template)
    patch = 8
    image_processor = SiglipImageProcessorPil(size={"height": image_size, "width": image_size})
    image_processor.image_seq_length = (image_size // patch) ** 2
    processor = PaliGemmaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=template
    )
    config = PaliGemmaConfig(
        vision_config=_siglip_vision(image_size, patch),
        text_config=GemmaConfig(**_gemma_text_kwargs(tokenizer)),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        projection_dim=64,
        hidden_size=64,
    )
    return PaliGemmaForConditionalGeneration(config), processor


_IDEFICS3_SPECIALS = [
    "<|im_start|>",
    "User:",
    "Assistant:",
    "<fake_token_around_image>",
    "<image>",
    "<end_of_utterance>",
    "<global-img>",
    *(f"<row_{row}_col_{col}>" for row in range(1, 7) for col in range(1, 7)),
]
_IDEFICS3_TEMPLATE = _user_turn_template(
    "<|im_start|>User:", "<image>", "<end_of_utterance>\n", "Assistant:"
)


def _idefics3_parts(
    image_size: int, image_processor_class: type
) -> tuple[PreTrainedTokenizerFast, dict, object, int]:
    tokenizer = _word_tokenizer(
        _IDEFICS3_SPECIALS,
        _IDEFICS3_TEMPLATE,
        extra_special_tokens={
            "fake_image_token": "<fake_token_around_image>",
            "image_token": "<image>",
            "end_of_utterance_token": "<end_of_utterance>",
            "global_image_token": "<global-img>",
        },
    )
    patch, scale = 8, 2
    config = {
        "vision_config": {"image_size": image_size, "patch_size": patch, **_TINY_VISION},
        "text_config": LlamaConfig(**_text_kwargs(tokenizer)),
        "scale_factor": scale,
        "image_token_id": tokenizer.convert_tokens_to_ids("<image>"),
    }
    image_processor = image_processor_class(
        do_image_splitting=True,
        size={"longest_edge": 2 * image_size},
        max_image_size={"longest_edge": image_size},
    )
    return tokenizer, config, image_processor, (image_size // patch) ** 2 // scale**2


def _tiny_idefics3(image_size: int) -> tuple[PreTrainedModel, ProcessorMixin]:
    r"""Idefics3: SigLIP-style tower, pixel-shuffle connector (scale 2), Llama text, tiling.

    Images are resized to a longest edge of ``2·s`` (a multiple of ``s``) and split into up to
    2 × 2 tiles of ``s × s`` plus one global ``s × s`` image: ``pixel_values`` is
    ``(B, tiles, 3, s, s)`` with a ``pixel_attention_mask`` ``(B, tiles, s, s)`` (tiles padded to
    the largest count in the batch). The template's ``<image>`` becomes, per tile,
    ``<fake_token_around_image><row_i_col_j>`` + ``(s/16)²`` ``<image>`` tokens, then
    ``<fake_token_around_image><global-img>`` + the global image's tokens.
    """
    tokenizer, config, image_processor, seq = _idefics3_parts(image_size, Idefics3ImageProcessorPil)
    processor = Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=seq,
        chat_template=_IDEFICS3_TEMPLATE,
    )
    return Idefics3ForConditionalGeneration(Idefics3Config(**config)), processor


def _tiny_smolvlm(image_size: int) -> tuple[PreTrainedModel, ProcessorMixin]:
    r"""SmolVLM: the Idefics3 architecture under its own classes (same layout, tiles and tokens as
    ``"idefics3"``). Its processor needs the ``num2words`` package and is built without a video
    processor.
    """
    tokenizer, config, image_processor, seq = _idefics3_parts(image_size, SmolVLMImageProcessorPil)
    processor = image_only_processor(
        "SmolVLMProcessor",
        image_processor,
        tokenizer,
        image_seq_len=seq,
        chat_template=_IDEFICS3_TEMPLATE,
    )
    return SmolVLMForConditionalGeneration(SmolVLMConfig(**config)), processor


def _tiny_aya_vision(image_size: int) -> tuple[PreTrainedModel, ProcessorMixin]:
    r"""Aya Vision: SigLIP tower, pixel-shuffle (factor 2) + SwiGLU adapter, Cohere 2 text, tiles.

    Images are cut into up to 4 ``s × s`` tiles plus a global thumbnail (``crop_to_patches``):
    ``pixel_values`` ``(Σ tiles, 3, s, s)`` with ``num_patches`` per image. ``<image>`` becomes
    ``<|START_OF_IMG|>``, then per tile ``TILE_i`` + ``(s/16)²`` ``<|IMG_PATCH|>`` tokens, then
    ``TILE_GLOBAL`` + the thumbnail's tokens and ``<|END_OF_IMG|>``; the model's image token is
    ``<|IMG_PATCH|>``.
    """
    specials = [
        "<|START_OF_TURN_TOKEN|>",
        "<|END_OF_TURN_TOKEN|>",
        "<|USER_TOKEN|>",
        "<|CHATBOT_TOKEN|>",
        "<image>",
        "<|START_OF_IMG|>",
        "<|END_OF_IMG|>",
        "<|IMG_PATCH|>",
        "<|IMG_LINE_BREAK|>",
        "TILE",
        "TILE_GLOBAL",
    ]
    template = _user_turn_template(
        "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>",
        "<image>",
        "<|END_OF_TURN_TOKEN|>",
        "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>",
    )
    tokenizer = _word_tokenizer(specials, template)
    patch = 8
    config = AyaVisionConfig(
        vision_config=_siglip_vision(image_size, patch),
        text_config=Cohere2Config(**_text_kwargs(tokenizer), sliding_window=512),
        downsample_factor=2,
        image_token_index=tokenizer.convert_tokens_to_ids("<|IMG_PATCH|>"),
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
    )
    image_processor = GotOcr2ImageProcessorPil(
        size={"height": image_size, "width": image_size},
        crop_to_patches=True,
        min_patches=1,
        max_patches=4,
        **_SIGLIP_NORMALISATION,
    )
    processor = AyaVisionProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch,
        img_size=image_size,
        downsample_factor=2,
        chat_template=template,
    )
    return AyaVisionForConditionalGeneration(config), processor


def _tiny_glm4v(image_size: int) -> tuple[PreTrainedModel, ProcessorMixin]:
    r"""GLM-4.1V: Qwen2-VL-style patches (14 px, merge 2) with an interpolated position table,
    GLM-4 text with partial M-RoPE.

    ``pixel_values`` ``(Σ t·h·w, 3·2·14·14)`` with ``image_grid_thw``; ``<|image|>`` (between
    ``<|begin_of_image|>`` and ``<|end_of_image|>``) becomes ``t·h·w / 4`` image tokens; pass
    ``mm_token_type_ids``. Built without a video processor.
    """
    specials = [
        "[gMASK]",
        "<sop>",
        "<|user|>",
        "<|assistant|>",
        "<|begin_of_image|>",
        "<|end_of_image|>",
        "<|image|>",
        "<|begin_of_video|>",
        "<|end_of_video|>",
        "<|video|>",
    ]
    template = _user_turn_template(
        "[gMASK]<sop><|user|>\n",
        "<|begin_of_image|><|image|><|end_of_image|>",
        "",
        "<|assistant|>\n",
    )
    tokenizer = _word_tokenizer(specials, template)
    ids = tokenizer.convert_tokens_to_ids
    text = _text_kwargs(tokenizer)
    text["rope_parameters"] = {
        "rope_type": "default",
        "mrope_section": [1, 1, 2],
        "partial_rotary_factor": 0.5,
    }
    config = Glm4vConfig(
        text_config=text,
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 4,
            "out_hidden_size": 64,
            "image_size": 56,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        image_token_id=ids("<|image|>"),
        video_token_id=ids("<|video|>"),
        image_start_token_id=ids("<|begin_of_image|>"),
        image_end_token_id=ids("<|end_of_image|>"),
        video_start_token_id=ids("<|begin_of_video|>"),
        video_end_token_id=ids("<|end_of_video|>"),
    )
    image_processor = Glm4vImageProcessorPil(
        patch_size=14,
        merge_size=2,
        size={"shortest_edge": 4 * 28 * 28, "longest_edge": max(image_size, 112) ** 2},
    )
    processor = image_only_processor(
        "Glm4vProcessor", image_processor, tokenizer, chat_template=template
    )
    return Glm4vForConditionalGeneration(config), processor


def _tiny_janus(image_size: int) -> tuple[PreTrainedModel, ProcessorMixin]:
    r"""Janus: SigLIP-style tower with a 2-layer MLP aligner, Llama text; the VQ-VAE image
    generation head is built (tiny) but unused for understanding.

    Images are padded to a square and resized to ``s × s``: ``pixel_values`` ``(B, 3, s, s)``.
    ``<image_placeholder>`` (between ``<begin_of_image>`` and ``<end_of_image>``) is expanded to
    ``(s/8)²`` tokens.
    """
    boi, image, eoi = "<begin_of_image>", "<image_placeholder>", "<end_of_image>"
    template = _user_turn_template("<|User|>: ", boi + image + eoi, "\n\n", "<|Assistant|>:")
    tokenizer = _word_tokenizer(
        ["<|User|>", "<|Assistant|>", boi, image, eoi],
        template,
        extra_special_tokens={"boi_token": boi, "image_token": image, "eoi_token": eoi},
    )
    patch = 8
    tokens = (image_size // patch) ** 2
    config = JanusConfig(
        text_config=LlamaConfig(**_text_kwargs(tokenizer)),
        vision_config={
            "image_size": image_size,
            "patch_size": patch,
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "mlp_ratio": 2.0,
            "projection_dim": 64,
            "num_image_tokens": tokens,
        },
        vq_config={
            "embed_dim": 8,
            "num_embeddings": 64,
            "latent_channels": 32,
            "base_channels": 32,
            "channel_multiplier": [1, 1],
            "num_res_blocks": 1,
            "num_patches": image_size // patch,
            "projection_dim": 64,
            "image_token_embed_dim": 64,
        },
        image_token_id=tokenizer.convert_tokens_to_ids(image),
    )
    image_processor = JanusImageProcessorPil(size={"height": image_size, "width": image_size})
    processor = JanusProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        num_image_tokens=tokens,
        chat_template=template,
    )
    return JanusForConditionalGeneration(config), processor


@dataclass(frozen=True)
class TinyModelSpec:
    r"""How to build one tiny family, and what it stands for.

    Attributes:
        build (Callable[[int], tuple]): ``build(image_size)`` → ``(model, processor)``.
        image_size (int): default ``image_size``.
        size_multiple (int): ``image_size`` must be a multiple of this.
        model_class (str): the model class, as ``AutoModelForImageTextToText`` loads it.
        checkpoints (tuple[str, ...]): example real checkpoints of that class.
    """

    build: Callable[[int], tuple[PreTrainedModel, ProcessorMixin]]
    image_size: int
    size_multiple: int
    model_class: str
    checkpoints: tuple[str, ...]


TINY_MODELS: Registry[TinyModelSpec] = Registry("tiny model")
for _name, _spec in {
    "llava": TinyModelSpec(
        _tiny_llava,
        32,
        8,
        "LlavaForConditionalGeneration",
        ("llava-hf/llava-1.5-7b-hf", "llava-hf/llava-1.5-13b-hf"),
    ),
    "qwen2_5_vl": TinyModelSpec(
        _tiny_qwen2_5_vl,
        56,
        1,
        "Qwen2_5_VLForConditionalGeneration",
        ("Qwen/Qwen2.5-VL-3B-Instruct", "Qwen/Qwen2.5-VL-7B-Instruct"),
    ),
    "internvl": TinyModelSpec(
        _tiny_internvl,
        32,
        16,
        "InternVLForConditionalGeneration",
        ("OpenGVLab/InternVL3-1B-hf", "OpenGVLab/InternVL3_5-2B-HF"),
    ),
    "llava_next": TinyModelSpec(
        _tiny_llava_next,
        32,
        8,
        "LlavaNextForConditionalGeneration",
        ("llava-hf/llava-v1.6-mistral-7b-hf", "llava-hf/llava-v1.6-vicuna-7b-hf"),
    ),
    "llava_onevision": TinyModelSpec(
        _tiny_llava_onevision,
        32,
        8,
        "LlavaOnevisionForConditionalGeneration",
        ("llava-hf/llava-onevision-qwen2-0.5b-ov-hf", "llava-hf/llava-onevision-qwen2-7b-ov-hf"),
    ),
    "qwen2_vl": TinyModelSpec(
        _tiny_qwen2_vl,
        56,
        28,
        "Qwen2VLForConditionalGeneration",
        ("Qwen/Qwen2-VL-2B-Instruct", "Qwen/Qwen2-VL-7B-Instruct"),
    ),
    "qwen3_vl": TinyModelSpec(
        _tiny_qwen3_vl,
        64,
        32,
        "Qwen3VLForConditionalGeneration",
        ("Qwen/Qwen3-VL-2B-Instruct", "Qwen/Qwen3-VL-8B-Instruct"),
    ),
    "gemma3": TinyModelSpec(
        _tiny_gemma3,
        32,
        16,
        "Gemma3ForConditionalGeneration",
        ("google/gemma-3-4b-it", "google/gemma-3-12b-it"),
    ),
    "paligemma": TinyModelSpec(
        _tiny_paligemma,
        32,
        8,
        "PaliGemmaForConditionalGeneration",
        ("google/paligemma-3b-mix-224", "google/paligemma2-3b-mix-448"),
    ),
    "idefics3": TinyModelSpec(
        _tiny_idefics3,
        32,
        16,
        "Idefics3ForConditionalGeneration",
        ("HuggingFaceM4/Idefics3-8B-Llama3",),
    ),
    "smolvlm": TinyModelSpec(
        _tiny_smolvlm,
        32,
        16,
        "SmolVLMForConditionalGeneration",
        ("HuggingFaceTB/SmolVLM-256M-Instruct", "HuggingFaceTB/SmolVLM2-2.2B-Instruct"),
    ),
    "glm4v": TinyModelSpec(
        _tiny_glm4v,
        56,
        1,
        "Glm4vForConditionalGeneration",
        ("zai-org/GLM-4.1V-9B-Thinking",),
    ),
    "janus": TinyModelSpec(
        _tiny_janus,
        32,
        8,
        "JanusForConditionalGeneration",
        ("deepseek-community/Janus-Pro-1B", "deepseek-community/Janus-Pro-7B"),
    ),
    "aya_vision": TinyModelSpec(
        _tiny_aya_vision,
        32,
        16,
        "AyaVisionForConditionalGeneration",
        ("CohereLabs/aya-vision-8b",),
    ),
}.items():
    TINY_MODELS.add(_name, _spec)


def list_tiny_models() -> list[str]:
    r"""Names of the tiny families :func:`tiny_model` builds, in registration order.

    Examples::

        >>> from captum_eagle.testing import TINY_MODELS, list_tiny_models
        >>> "gemma3" in list_tiny_models()
        True
        >>> TINY_MODELS.get("gemma3").model_class
        'Gemma3ForConditionalGeneration'
    """
    return TINY_MODELS.names()


def tiny_model_path(family: str) -> str:
    r"""The family adapter that serves a tiny family's model class, or ``"generic"``.

    Read from the class name (no model is built): the adapter whose ``model_classes`` lists it.

    Examples::

        >>> from captum_eagle.testing import tiny_model_path
        >>> tiny_model_path("qwen2_5_vl"), tiny_model_path("gemma3")
        ('qwen2_5_vl', 'generic')
    """
    model_class = TINY_MODELS.get(family).model_class
    served = [name for name, cls in FAMILIES.items() if model_class in cls.model_classes]
    return served[0] if served else "generic"


def tiny_model(
    family: str, image_size: int | None = None, seed: int = 0
) -> tuple[PreTrainedModel, ProcessorMixin]:
    r"""Build a tiny random model and a matching processor of one family.

    The model is of the class that ``AutoModelForImageTextToText`` loads for the family's real
    checkpoints; the processor is the family's own class with its PIL-backed image processor,
    a word-level tokenizer holding the family's special tokens and a minimal chat template
    (image placeholder and prompt in the user turn, then the assistant turn opened). Each
    builder's docstring (``TINY_MODELS.get(family).build.__doc__``) says what the processor
    returns and what the model needs besides ``input_ids`` and ``pixel_values``.

    Args:
        family (str): a name from :func:`list_tiny_models`.
        image_size (int, optional): side of the vision tower's square input (of one tile where
            the family tiles images; for Qwen-VL and GLM-4.1V, which take images at their own
            resolution, the square root of the largest pixel count). Defaults to
            ``TINY_MODELS.get(family).image_size``; must be a multiple of
            ``TINY_MODELS.get(family).size_multiple``.
        seed (int): seed of the random weights. Default: 0.

    Returns:
        (model, processor): the model in eval mode (float32, CPU) and its processor.

    Raises:
        UnknownNameError: ``family`` is not a tiny model name (a ``ValueError``).
        ValueError: ``image_size`` is not a positive multiple of the family's ``size_multiple``.

    Examples::

        >>> from captum_eagle.testing import tiny_model
        >>> model, processor = tiny_model("qwen2_vl")
        >>> type(model).__name__, type(processor.image_processor).__name__
        ('Qwen2VLForConditionalGeneration', 'Qwen2VLImageProcessorPil')
    """
    spec = TINY_MODELS.get(family)
    size = spec.image_size if image_size is None else image_size
    if (
        isinstance(size, bool)
        or not isinstance(size, int)
        or size <= 0
        or size % spec.size_multiple
    ):
        raise ValueError(
            f"image_size of the tiny {family!r} model must be a positive multiple of "
            f"{spec.size_multiple}; got {image_size!r}."
        )
    torch.manual_seed(seed)
    model, processor = spec.build(size)
    return model.eval(), processor
