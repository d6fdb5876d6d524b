r"""Speed of the exact Eagle engine against the naive reference and the authors' style, one run.

For N = 16, 32, 64 SLICO regions on one image, times:

- **engine**: :class:`captum_eagle.EagleAttribution` (batched, masked images built on the device);
- **naive**: Algorithm 1 as written (one forward per masked image, same scoring code);
- **authors' style**: every subset's masked image is painted as a PIL image and re-processed by
  the model's processor, then a full forward (full logits) is run, one image at a time.

The engine runs ``--repeats`` times per N (median time; the orders must agree). The naive and
authors' runs are timed for ``--steps`` greedy steps and extrapolated to the full
``N(N+1)`` forwards (per-forward cost is constant at batch 1); with ``--steps 0`` they run fully
and the orders are compared over the full search.

Two order checks are printed. "engine π = naive" must always be "yes": both score the same
tensors. "authors' π = naive" may be "NO": the authors' style rounds each masked image to 8-bit
PIL and re-runs the processor, so its probabilities differ in the last digits and near-ties can
break the other way; it is a speed reference, not a correctness check.

Usage::

    python benchmarks/speed.py --model shapes --regions 16 32 64 --steps 2

``--generic`` instead compares, in one run, the generic processor path (``family="generic"``:
the processor's region basis, ``N + 1`` processor calls, then one matmul per batch) with the
family's torch adapter on the same image (at the model's input size, so that the processor does
not resize and both paths see the same pixels): forwards per second, the processor's share of the
generic explanation's time, and whether the orders are identical. The rows go to
``benchmarks/results/speed/generic_vs_adapter.jsonl`` (after a header: command, machine,
versions) and the table to the README block ``<!-- report:speed-generic -->``::

    python benchmarks/speed.py --generic --model shapes tiny-llava tiny-qwen2_5_vl \
        tiny-internvl --regions 16 --readme README.md
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `benchmarks.reference` importable
    sys.path.insert(0, str(ROOT))

from benchmarks.reference import naive_greedy  # noqa: E402
from benchmarks.results_io import header, markdown_table, write_block, write_jsonl  # noqa: E402
from captum_eagle import EagleAttribution, EagleResult, FeatureMask, MLLMForwardWrapper  # noqa: E402
from captum_eagle.images import to_image_tensor, to_pil  # noqa: E402
from captum_eagle.wrapper import PreparedSample  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "speed" / "generic_vs_adapter.jsonl"


def load(model: str) -> tuple[MLLMForwardWrapper, np.ndarray, str]:
    """The wrapper, an image and a prompt for the chosen model."""
    if model == "shapes":
        from captum_eagle.zoo import DEFAULT_CAPTION_PROMPT, generate_scene, load_default_model

        scene = generate_scene(7, kind="crowded")
        return MLLMForwardWrapper(*load_default_model()), scene.image, DEFAULT_CAPTION_PROMPT
    from captum_eagle.testing import tiny_model

    family = model.removeprefix("tiny-")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    return MLLMForwardWrapper(*tiny_model(family, image_size=64)), image, "describe the image ."


@torch.no_grad()
def authors_style(
    wrapper: MLLMForwardWrapper, sample, mask: FeatureMask, steps: int
) -> tuple[float, int, list[int]]:
    """Greedy steps where each subset goes through PIL + the processor + a full-logit forward."""
    base = (sample.image[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    regions = mask.mask[0, 0].numpy()
    answer = sample.answer_ids
    n_prompt = sample.prompt_ids.shape[1]
    forwards, order = 0, []
    started = time.perf_counter()

    def probability(kept: list[int], keep: bool) -> float:
        nonlocal forwards
        inside = np.isin(regions, kept)
        painted = np.where((inside == keep)[..., None], base, 0).astype(np.uint8)
        inputs = wrapper.adapter.processor_inputs(Image.fromarray(painted), sample.prompt_text)
        input_ids = torch.cat([inputs.pop("input_ids")[0], answer])[None]
        extras = {
            k: v
            for k, v in inputs.items()
            if isinstance(v, torch.Tensor) and v.shape == sample.prompt_ids.shape
        }
        answer_inputs = wrapper.adapter.answer_token_inputs(extras, answer.numel())
        extras = {k: torch.cat([v[0], answer_inputs[k]])[None] for k, v in extras.items()}
        pixels = {k: v for k, v in inputs.items() if k not in extras and k != "attention_mask"}
        logits = wrapper.model(input_ids=input_ids, **extras, **pixels).logits[0]
        probs = logits[n_prompt - 1 : n_prompt - 1 + answer.numel()].float().softmax(-1)
        forwards += 1
        return probs.gather(-1, answer[:, None])[:, 0].mean().item()

    for _ in range(steps):
        best = None
        for region in range(mask.n_regions):
            if region in order:
                continue
            subset = [*order, region]
            value = probability(subset, True) + 1 - probability(subset, False)
            if best is None or value > best[0]:
                best = (value, region)
        order.append(best[1])
    return time.perf_counter() - started, forwards, order


def _timed_explains(
    paths: list[tuple[MLLMForwardWrapper, PreparedSample]], mask: FeatureMask, repeats: int
) -> list[tuple[float, int, list[int]]]:
    """Per path: median seconds, forwards and order of ``repeats`` exact Eagle runs.

    The paths take turns, so that a change of load on a shared machine hits them alike; the
    orders of one path's runs must agree.
    """
    runs: list[list[EagleResult]] = [[] for _ in paths]
    for _ in range(repeats):
        for path_runs, (wrapper, sample) in zip(runs, paths, strict=True):
            path_runs.append(
                EagleAttribution(wrapper).explain(
                    sample.image, feature_mask=mask, additional_forward_args=(sample,)
                )
            )
    timed = []
    for path_runs in runs:
        order = path_runs[0].order.tolist()
        if any(run.order.tolist() != order for run in path_runs):
            raise RuntimeError("the engine gave different orders on repeated runs")
        seconds = float(np.median([run.seconds for run in path_runs]))
        timed.append((seconds, path_runs[0].forwards, order))
    return timed


def generic_vs_adapter(
    model: str, regions: list[int], repeats: int, batch_size: int
) -> list[dict[str, object]]:
    r"""One row per N: the generic path against the family's adapter on the same image."""
    adapter, image, prompt = load(model)
    adapter.batch_size = batch_size
    # at the model's input size: the processor keeps the pixels, both paths see the same image
    resized = adapter.adapter.resize(to_pil(to_image_tensor(image)))
    generic = MLLMForwardWrapper(
        adapter.model, adapter.processor, family="generic", batch_size=batch_size
    )
    adapter_sample = adapter.prepare(resized, prompt)
    generic_sample = generic.prepare(resized, prompt, adapter_sample.answer)
    if not torch.equal(adapter_sample.image, generic_sample.image):
        raise RuntimeError("the two paths prepared different images")
    with torch.no_grad():  # warm-up: the first forward of a process is slower
        adapter(adapter_sample.image, adapter_sample)
        generic(generic_sample.image, generic_sample)
    rows = []
    for requested in regions:
        mask = FeatureMask.slico(adapter_sample.image, requested)
        (
            (adapter_s, adapter_forwards, adapter_order),
            (generic_s, generic_forwards, generic_order),
        ) = _timed_explains([(adapter, adapter_sample), (generic, generic_sample)], mask, repeats)
        basis_times = []
        for _ in range(repeats):
            started = time.perf_counter()
            generic.adapter.region_basis(generic_sample.image, mask.mask, 0.0)
            basis_times.append(time.perf_counter() - started)
        processor_s = float(np.median(basis_times))
        rows.append(
            {
                "model": model,
                "regions": mask.n_regions,
                "answer_tokens": adapter_sample.n_targets,
                "adapter_forwards": adapter_forwards,
                "adapter_seconds": round(adapter_s, 4),
                "adapter_forwards_per_s": round(adapter_forwards / adapter_s, 1),
                "generic_forwards": generic_forwards,
                "generic_seconds": round(generic_s, 4),
                "generic_forwards_per_s": round(generic_forwards / generic_s, 1),
                "generic_speed_ratio": round(adapter_s / generic_s, 3),
                "processor_seconds": round(processor_s, 4),
                "processor_share": round(processor_s / generic_s, 3),
                "same_order": adapter_order == generic_order,
            }
        )
    return rows


def generic_table(rows: list[dict[str, object]]) -> str:
    """The comparison as a markdown table."""
    columns = ["model", "N", "adapter forwards/s", "generic forwards/s"]
    columns += ["generic speed (× adapter)", "processor share", "same order"]
    cells = [
        [
            row["model"],
            row["regions"],
            row["adapter_forwards_per_s"],
            row["generic_forwards_per_s"],
            f"{row['generic_speed_ratio']:.2f}",
            f"{100 * float(row['processor_share']):.1f}%",
            "yes" if row["same_order"] else "NO",
        ]
        for row in rows
    ]
    return markdown_table(columns, cells)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        nargs="+",
        default=["shapes"],
        help="shapes | tiny-<family> (several with --generic)",
    )
    parser.add_argument(
        "--generic", action="store_true", help="compare the generic path with the adapter"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="results file (--generic)")
    parser.add_argument("--readme", type=Path, help="README to update (--generic)")
    parser.add_argument("--regions", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--steps", type=int, default=2, help="timed steps (0 = full runs)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--repeats", type=int, default=3, help="engine runs per N; the median time is reported"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.generic:
        rows: list[dict[str, object]] = []
        for model in args.model:  # written after each model: a cut run keeps what it measured
            rows += generic_vs_adapter(model, args.regions, args.repeats, args.batch_size)
            write_jsonl(args.out, header(argv), rows)
        table = generic_table(rows)
        print(table)
        if args.readme is not None:
            write_block(args.readme, "speed-generic", table)
        return
    if len(args.model) != 1:
        parser.error("one --model at a time without --generic")
    wrapper, image, prompt = load(args.model[0])
    wrapper.batch_size = args.batch_size
    sample = wrapper.prepare(image, prompt)
    print(
        f"model={args.model[0]} answer={sample.answer!r} T={sample.n_targets} "
        f"image={tuple(sample.image.shape[-2:])} torch={torch.__version__} "
        f"cpu={platform.processor() or platform.machine()} threads={torch.get_num_threads()}"
    )
    print()
    print(
        "| N | engine forwards | engine s | naive s | authors' s | ×naive | ×authors' "
        "| engine π = naive | authors' π = naive |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    yes = {True: "yes", False: "NO"}
    for requested in args.regions:
        mask = FeatureMask.slico(sample.image, requested)
        n = mask.n_regions
        full = n * (n + 1)
        engine_seconds, engine_forwards, engine_order = _timed_explains(
            [(wrapper, sample)], mask, args.repeats
        )[0]
        steps = args.steps or n
        started = time.perf_counter()
        naive = naive_greedy(wrapper, sample, mask, max_steps=steps)
        naive_seconds = (time.perf_counter() - started) / naive.forwards * full
        engine_same = engine_order[: len(naive.order)] == naive.order
        authors_seconds, authors_forwards, authors_order = authors_style(
            wrapper, sample, mask, steps
        )
        authors_seconds = authors_seconds / authors_forwards * full
        note = "" if args.steps == 0 else f" (first {steps} steps)"
        print(
            f"| {n} | {engine_forwards} | {engine_seconds:.2f} | {naive_seconds:.2f} | "
            f"{authors_seconds:.2f} | {naive_seconds / engine_seconds:.1f} | "
            f"{authors_seconds / engine_seconds:.1f} | {yes[engine_same]}{note} | "
            f"{yes[authors_order == naive.order]}{note} |"
        )
    if args.steps:
        print(
            f"\nnaive and authors' times: {args.steps} greedy steps timed, extrapolated to N(N+1)."
        )


if __name__ == "__main__":
    main()
