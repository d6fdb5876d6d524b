r"""Speed and memory of Eagle's search strategies on 7B-scale models (random weights).

The models are built in code from the architecture of LLaVA-1.5-7B and Qwen2.5-VL-7B (hidden
sizes, layers, heads, vocabularies and vision towers as in the released checkpoints), with random
weights in bf16 and SDPA attention: the timings and memory are those of the real models, the
explanations are meaningless. Nothing is downloaded; the tokenizer is the small word-level one of
``captum_eagle.testing`` (it only has to produce the prompt and a 20-token target).

For every model and strategy it prints seconds per explanation, forwards, forwards per second and
peak memory (``torch.cuda.max_memory_allocated``), and the naive reference (one forward per image,
as in the paper's Algorithm 1) timed for a few steps and extrapolated to ``N(N + 1)`` forwards.

The rows go to ``benchmarks/results/gpu/cuda.jsonl`` (``tiny_cpu.jsonl`` with ``--tiny``) after a
header (:mod:`benchmarks.results`); ``python benchmarks/report.py --write`` makes the tables.

Usage::

    python benchmarks/gpu.py                      # CUDA: both 7B models, N = 64
    python benchmarks/gpu.py --tiny               # CPU smoke run at toy size
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
)

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `benchmarks.reference` importable
    sys.path.insert(0, str(ROOT))

from benchmarks.reference import naive_greedy  # noqa: E402
from benchmarks.results import (  # noqa: E402
    RESULTS,
    header,
    markdown_table,
    read_results,
    results_file,
    write_record,
)
from captum_eagle import EagleAttribution, FeatureMask, MLLMForwardWrapper  # noqa: E402
from captum_eagle.baselines import ForwardCounter  # noqa: E402
from captum_eagle.search import get_search  # noqa: E402
from captum_eagle.testing import WORDS, tiny_model  # noqa: E402

MODELS = ("llava-1.5-7b", "qwen2.5-vl-7b")
PROMPT = "describe the image ."
GIB = 1024**3


def llava_7b(image_size: int, device: str = "cuda") -> tuple[torch.nn.Module, LlavaProcessor]:
    """LLaVA-1.5-7B: CLIP ViT-L/14-336 + 2-layer MLP projector + Vicuna-7B (Llama-2 7B)."""
    tokenizer = tiny_model("llava")[1].tokenizer
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            image_size=image_size,
            patch_size=14,
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=24,
            num_attention_heads=16,
            projection_dim=768,
            hidden_act="quick_gelu",
        ),
        text_config=LlamaConfig(
            vocab_size=32064,
            hidden_size=4096,
            intermediate_size=11008,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=32,
            max_position_embeddings=4096,
            rms_norm_eps=1e-5,
            **_special_ids(tokenizer),
        ),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
    )
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(
            size={"shortest_edge": image_size},
            crop_size={"height": image_size, "width": image_size},
        ),
        tokenizer=tokenizer,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=tokenizer.chat_template,
    )
    return _build(LlavaForConditionalGeneration, config, device), processor


def qwen2_5_vl_7b(image_size: int, device: str = "cuda") -> tuple[torch.nn.Module, object]:
    """Qwen2.5-VL-7B: 32-block windowed ViT (patch 14, merge 2) + Qwen2.5-7B text model."""
    processor = tiny_model("qwen2_5_vl", image_size=image_size)[1]
    ids = processor.tokenizer.convert_tokens_to_ids
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": 152064,
            "hidden_size": 3584,
            "intermediate_size": 18944,
            "num_hidden_layers": 28,
            "num_attention_heads": 28,
            "num_key_value_heads": 4,
            "max_position_embeddings": 128000,
            "rms_norm_eps": 1e-6,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 1_000_000.0,
                "mrope_section": [16, 24, 24],
            },
            **_special_ids(processor.tokenizer),
        },
        vision_config={
            "depth": 32,
            "hidden_size": 1280,
            "intermediate_size": 3420,
            "num_heads": 16,
            "out_hidden_size": 3584,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "fullatt_block_indexes": [7, 15, 23, 31],
            "hidden_act": "silu",
        },
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )
    return _build(Qwen2_5_VLForConditionalGeneration, config, device), processor


def _special_ids(tokenizer) -> dict[str, int]:
    return {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


def _build(cls: type, config: object, device: str) -> torch.nn.Module:
    with torch.device(device):
        model = cls._from_config(config, dtype=torch.bfloat16, attn_implementation="sdpa")
    return model.eval()


COLUMNS = [
    "model",
    "search",
    "batch",
    "forwards",
    "seconds / explanation",
    "forwards / s",
    "peak memory (GiB)",
]


def row(
    model: str, search: str, batch: str, forwards: int, seconds: float, peak: float | None
) -> dict[str, Any]:
    r"""One result record: an explanation's forwards, seconds and peak memory (``None`` on CPU)."""
    return {
        "type": "gpu",
        "model": model,
        "search": search,
        "batch": batch,
        "forwards": forwards,
        "seconds": seconds,
        "peak_gib": peak,
    }


def cells(record: dict[str, Any]) -> list[str]:
    r"""A record's table cells: forwards per second from forwards and seconds.

    Examples::

        >>> cells(row("llava-1.5-7b", "exact", "auto", 274, 5.7, None))
        ['llava-1.5-7b', 'exact', 'auto', '274', '5.70', '48.1', 'n/a (CPU)']
    """
    peak = "n/a (CPU)" if record["peak_gib"] is None else f"{record['peak_gib']:.2f}"
    seconds = record["seconds"]
    rate = record["forwards"] / seconds if seconds > 0 else float("nan")
    return [
        record["model"],
        record["search"],
        record["batch"],
        str(record["forwards"]),
        f"{seconds:.2f}",
        f"{rate:.1f}",
        peak,
    ]


def table(records: list[dict[str, Any]]) -> str:
    r"""The records as a markdown table, one row per model and search."""
    return markdown_table(COLUMNS, [cells(record) for record in records])


def _reset_peak(cuda: bool) -> None:
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _peak(cuda: bool) -> float | None:
    if not cuda:
        return None
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / GIB


def benchmark_model(name: str, model, processor, args: argparse.Namespace) -> list[dict[str, Any]]:
    cuda = next(model.parameters()).is_cuda
    wrapper = MLLMForwardWrapper(model, processor, batch_size=1)
    rng = np.random.default_rng(args.seed)
    image = Image.fromarray(rng.integers(0, 256, (args.image_size, args.image_size, 3), np.uint8))
    target = " ".join(WORDS[17 + i % 14] for i in range(args.target_tokens))
    sample = wrapper.prepare(image, PROMPT, target)
    mask = FeatureMask.slico(sample.image, args.regions)
    label = f"{name} (tiny)" if args.tiny else name
    weights = torch.cuda.memory_allocated() / GIB if cuda else None
    print(
        f"{label}: image {tuple(sample.image.shape[-2:])}, {sample.n_targets} target tokens, "
        f"{mask.n_regions} regions" + (f", weights {weights:.2f} GiB" if cuda else ""),
        flush=True,
    )
    rows = []
    n = mask.n_regions
    _reset_peak(cuda)
    started = time.perf_counter()
    with ForwardCounter(wrapper) as counter:
        naive_greedy(wrapper, sample, mask, max_steps=args.naive_steps)
    seconds = time.perf_counter() - started
    full = n * (n + 1)
    naive = f"naive (batch 1, {args.naive_steps} steps extrapolated)"
    rows.append(row(label, naive, "1", full, seconds / counter.images * full, _peak(cuda)))
    eagle = EagleAttribution(wrapper)
    for search in args.searches:
        strategy = get_search(search)
        _reset_peak(cuda)
        with ForwardCounter(wrapper) as counter:
            result = eagle.explain(
                sample.image,
                feature_mask=mask,
                additional_forward_args=(sample,),
                search=strategy,
                batch_size=args.batch_size,
            )
        batch = str(args.batch_size) if args.batch_size != "auto" else "auto"
        rows.append(row(label, search, batch, counter.images, result.seconds, _peak(cuda)))
        print("  " + " | ".join(cells(rows[-1])), flush=True)
    return rows


def _batch_size(text: str) -> int | str:
    return text if text == "auto" else int(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="toy-size models on the CPU")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--regions", type=int, default=64, help="SLICO regions N")
    parser.add_argument("--image-size", type=int, default=None, help="default 336 (tiny: 56)")
    parser.add_argument("--target-tokens", type=int, default=20)
    parser.add_argument(
        "--searches",
        nargs="+",
        default=["exact", "lazy", "stochastic", "bidirectional", "early_stop", "efficient"],
    )
    parser.add_argument("--batch-size", type=_batch_size, default="auto")
    parser.add_argument("--naive-steps", type=int, default=2, help="naive steps to time")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results file (default: benchmarks/results/gpu/cuda.jsonl, --tiny: tiny_cpu.jsonl)",
    )
    args = parser.parse_args(argv)
    args.image_size = args.image_size or (56 if args.tiny else 336)
    if not args.tiny and not torch.cuda.is_available():
        parser.error("no CUDA device: 7B models need a GPU; use --tiny for a CPU run.")
    torch.manual_seed(args.seed)
    cuda = torch.cuda.is_available() and not args.tiny
    device = torch.cuda.get_device_name() if cuda else f"CPU ({platform.machine()})"
    print(f"device: {device}; torch {torch.__version__}; {torch.get_num_threads()} CPU threads")
    out = args.out or RESULTS / "gpu" / ("tiny_cpu.jsonl" if args.tiny else "cuda.jsonl")
    first = header(
        "gpu", "tiny" if args.tiny else "7b-random", {**vars(args), "device": device}, argv
    )
    with results_file(out, first) as file:
        for name in args.models:
            if args.tiny:
                family = "llava" if name.startswith("llava") else "qwen2_5_vl"
                size = args.image_size if family == "qwen2_5_vl" else 32
                model, processor = tiny_model(family, image_size=size)
            else:
                build = llava_7b if name.startswith("llava") else qwen2_5_vl_7b
                model, processor = build(args.image_size)
            for record in benchmark_model(name, model, processor, args):
                write_record(file, record)
            del model
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    print()
    print(table(read_results([out])[1]))


if __name__ == "__main__":
    main()
