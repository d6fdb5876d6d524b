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

One row per N goes to ``benchmarks/results/speed/exact_engine.jsonl`` after a header
(:mod:`benchmarks.results`: command, machine, versions, weights); ``python benchmarks/report.py
--write`` makes the README's table (``<!-- report:speed-exact -->``) from it.

Usage::

    python benchmarks/speed.py --model shapes --regions 16 32 64 --steps 0 --threads 1 --repeats 3

``--generic`` instead compares, in one run, the generic processor path (``family="generic"``:
the processor's region basis, ``N + 1`` processor calls, then one matmul per batch) with the
family's torch adapter on the same image (at the model's input size, so that the processor does
not resize and both paths see the same pixels): forwards per second, the processor's share of the
generic explanation's time, and whether the orders are identical. The rows go to
``benchmarks/results/speed/generic_vs_adapter.jsonl`` (README section
``<!-- report:speed-generic -->``)::

    python benchmarks/speed.py --generic --model shapes tiny-llava tiny-qwen2_5_vl \
        tiny-internvl --regions 8 16 --repeats 5 --threads 1
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

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
from captum_eagle import EagleAttribution, EagleResult, FeatureMask, MLLMForwardWrapper  # noqa: E402
from captum_eagle.images import to_image_tensor, to_pil  # noqa: E402
from captum_eagle.wrapper import PreparedSample  # noqa: E402

EXACT_RESULTS = RESULTS / "speed" / "exact_engine.jsonl"
GENERIC_RESULTS = RESULTS / "speed" / "generic_vs_adapter.jsonl"


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


def exact_vs_naive(
    model: str, regions: list[int], steps: int, repeats: int, batch_size: int
) -> Iterator[dict[str, object]]:
    r"""One row per N: the engine's median time against the naive and authors'-style searches.

    With ``steps`` > 0 the naive and authors' searches run that many greedy steps and their time
    is extrapolated to the full ``N(N+1)`` forwards; with 0 they run fully.
    """
    wrapper, image, prompt = load(model)
    wrapper.batch_size = batch_size
    sample = wrapper.prepare(image, prompt)
    for requested in regions:
        mask = FeatureMask.slico(sample.image, requested)
        n = mask.n_regions
        full = n * (n + 1)
        engine_seconds, engine_forwards, engine_order = _timed_explains(
            [(wrapper, sample)], mask, repeats
        )[0]
        timed_steps = steps or n
        started = time.perf_counter()
        naive = naive_greedy(wrapper, sample, mask, max_steps=timed_steps)
        naive_seconds = (time.perf_counter() - started) / naive.forwards * full
        authors_seconds, authors_forwards, authors_order = authors_style(
            wrapper, sample, mask, timed_steps
        )
        yield {
            "type": "exact_vs_naive",
            "model": model,
            "answer": sample.answer,
            "answer_tokens": sample.n_targets,
            "image": list(sample.image.shape[-2:]),
            "requested": requested,
            "regions": n,
            "steps": timed_steps,
            "engine_forwards": engine_forwards,
            "engine_seconds": engine_seconds,
            "naive_seconds": naive_seconds,
            "authors_seconds": authors_seconds / authors_forwards * full,
            "engine_same_order": engine_order[: len(naive.order)] == naive.order,
            "authors_same_order": authors_order == naive.order,
        }


def exact_table(rows: list[dict[str, Any]]) -> str:
    r"""The engine against the naive and authors' searches: a markdown table and a summary.

    Examples::

        >>> row = {"regions": 4, "steps": 4, "engine_forwards": 16, "engine_seconds": 0.1}
        >>> row |= {"naive_seconds": 0.3, "authors_seconds": 0.4}
        >>> row |= {"engine_same_order": True, "authors_same_order": False}
        >>> print(exact_table([row]))
        | N | engine forwards | engine s | naive s | authors' s | ×naive | ×authors' | engine π = naive | authors' π = naive |
        |---|---|---|---|---|---|---|---|---|
        | 4 | 16 | 0.10 | 0.30 | 0.40 | 3.0 | 4.0 | yes | NO |
        <BLANKLINE>
        The engine reproduces the naive order at every N and is 3.0× faster than the naive search.
    """  # noqa: E501
    yes = {True: "yes", False: "NO"}
    cells, ratios = [], []
    for row in rows:
        note = "" if row["steps"] == row["regions"] else f" (first {row['steps']} steps)"
        ratios.append(row["naive_seconds"] / row["engine_seconds"])
        cells.append(
            [
                row["regions"],
                row["engine_forwards"],
                f"{row['engine_seconds']:.2f}",
                f"{row['naive_seconds']:.2f}",
                f"{row['authors_seconds']:.2f}",
                f"{ratios[-1]:.1f}",
                f"{row['authors_seconds'] / row['engine_seconds']:.1f}",
                yes[row["engine_same_order"]] + note,
                yes[row["authors_same_order"]] + note,
            ]
        )
    columns = ["N", "engine forwards", "engine s", "naive s", "authors' s", "×naive"]
    columns += ["×authors'", "engine π = naive", "authors' π = naive"]
    same = all(row["engine_same_order"] for row in rows)
    summary = (
        f"The engine {'reproduces' if same else 'does NOT reproduce'} the naive order at every N "
        f"and is {_spread(ratios, 1)}× faster than the naive search."
    )
    if any(row["steps"] != row["regions"] for row in rows):
        summary += " Naive and authors' times: the first steps timed, extrapolated to N(N+1)."
    return markdown_table(columns, cells) + "\n\n" + summary


def generic_vs_adapter(
    model: str, regions: list[int], repeats: int, batch_size: int
) -> Iterator[dict[str, object]]:
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
        yield {
            "type": "generic_vs_adapter",
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


def generic_table(rows: list[dict[str, Any]]) -> str:
    r"""The generic path against the adapter: a markdown table and a summary.

    Examples::

        >>> row = {"model": "tiny-llava", "regions": 9, "adapter_forwards_per_s": 1000.0}
        >>> row |= {"generic_forwards_per_s": 1050.0, "generic_speed_ratio": 1.05}
        >>> row |= {"processor_share": 0.05, "same_order": True}
        >>> print(generic_table([row]))
        | model | N | adapter forwards/s | generic forwards/s | generic speed (× adapter) | processor share | same order |
        |---|---|---|---|---|---|---|
        | tiny-llava | 9 | 1000.0 | 1050.0 | 1.05 | 5.0% | yes |
        <BLANKLINE>
        The generic path runs at 1.05× the adapter's speed, within 10% of it (≥ 0.90×) on every row, with identical orders on every row.
    """  # noqa: E501
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
    ratios = [float(row["generic_speed_ratio"]) for row in rows]
    close = sum(ratio >= 0.9 for ratio in ratios)
    same = sum(bool(row["same_order"]) for row in rows)
    summary = (
        f"The generic path runs at {_spread(ratios, 2)}× the adapter's speed, "
        + ("within 10% of it (≥ 0.90×) on every row" if close == len(rows) else
           f"within 10% of it (≥ 0.90×) on {close} of {len(rows)} rows")
        + (", with identical orders on every row." if same == len(rows) else
           f", with identical orders on {same} of {len(rows)} rows.")
    )  # fmt: skip
    return markdown_table(columns, cells) + "\n\n" + summary


def _spread(values: list[float], digits: int) -> str:
    r"""``"1.03–1.15"``: the smallest and largest value (one number when they print alike)."""
    low, high = f"{min(values):.{digits}f}", f"{max(values):.{digits}f}"
    return low if low == high else f"{low}–{high}"


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
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"results file (default: {EXACT_RESULTS.relative_to(ROOT)}, with --generic "
        f"{GENERIC_RESULTS.relative_to(ROOT)})",
    )
    parser.add_argument("--regions", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--steps", type=int, default=2, help="timed steps (0 = full runs)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--repeats", type=int, default=3, help="engine runs per N; the median time is reported"
    )
    args = parser.parse_args(argv)
    if not args.generic and len(args.model) != 1:
        parser.error("one --model at a time without --generic")
    torch.set_num_threads(args.threads)
    out = args.out or (GENERIC_RESULTS if args.generic else EXACT_RESULTS)
    weights = "shapes" if "shapes" in args.model else args.model[0]
    # each row is written as it is measured: a cut run keeps what it measured
    with results_file(out, header("speed", weights, vars(args), argv)) as file:
        if args.generic:
            for model in args.model:
                for row in generic_vs_adapter(model, args.regions, args.repeats, args.batch_size):
                    write_record(file, row)
        else:
            for row in exact_vs_naive(
                args.model[0], args.regions, args.steps, args.repeats, args.batch_size
            ):
                write_record(file, row)
    rows = read_results([out])[1]
    print(generic_table(rows) if args.generic else exact_table(rows))


if __name__ == "__main__":
    main()
