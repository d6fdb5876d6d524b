r"""Search-strategy benchmark: forwards, time and faithfulness of each strategy against exact.

On generated scenes of the bundled shapes model (``captum_eagle.zoo``), every strategy explains the
model's own caption (all answer tokens) over the same SLICO regions, N = 32 and 64 by default.
Per strategy and N it reports, averaged over scenes: model forwards and seconds per explanation
(``explain()``'s, so the insertion trajectory is included; ``budget`` spends at most its budget on
the map alone, which ``benchmarks/frontier.py`` measures),
insertion AUC (↑) and deletion AUC (↓) of :mod:`captum_eagle.metrics` (K = N equal-area steps), and
the pointing game of the sentence-level map against the union of the scene's object masks (the
paper's rule, where a tied maximum counts, and the tie-aware expected hit); each also as a ratio to
the exact greedy on the same scenes (forwards: how many times fewer). Captum's KernelShap
(``kernel_shap`` of :mod:`captum_eagle.baselines` with an explicit budget of 200 samples, forwards
counted by its ``ForwardCounter``) on the same regions is the reference row.

Strategies are named as in ``captum_eagle.search`` with options after a colon, e.g.
``stochastic:fraction=0.1`` or ``early_stop:search=lazy,tolerance=0.1``.

Every record goes to a JSONL results file after a header (:mod:`benchmarks.results`; default
``benchmarks/results/search/s<seed>-<first scene>.jsonl``).

Usage::

    python benchmarks/search.py --scenes 50 --regions 32 64 --seed 0
    python benchmarks/search.py --scenes 50 10 --regions 32 64   # 10 scenes at N = 64
    python benchmarks/search.py --model tiny --scenes 2 --regions 8   # smoke run, random model
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `benchmarks.*` importable
    sys.path.insert(0, str(ROOT))

from benchmarks.results import RESULTS, header, read_results, results_file, write_record  # noqa: E402
from captum_eagle import EagleAttribution, FeatureMask, MLLMForwardWrapper  # noqa: E402
from captum_eagle.baselines import ForwardCounter, attribute  # noqa: E402
from captum_eagle.metrics import deletion_curve, insertion_curve, pointing_game  # noqa: E402
from captum_eagle.search import SearchStrategy, get_search  # noqa: E402
from captum_eagle.zoo import DEFAULT_CAPTION_PROMPT, generate_scenes  # noqa: E402

DEFAULT_SEARCHES = (
    "exact",
    "lazy",
    "stochastic",
    "stochastic:fraction=0.1",
    "bidirectional",
    "early_stop",
    "early_stop:search=lazy",
    "efficient",
    "forward_backward",
    "budget",
    "budget:per_region=8",
)


def parse_search(spec: str) -> tuple[str, SearchStrategy]:
    r"""``"name:key=value,key=value"`` to a strategy (values parsed as int, float or text)."""
    name, _, options = spec.partition(":")
    kwargs: dict[str, Any] = {}
    for item in filter(None, options.split(",")):
        key, _, text = item.partition("=")
        for cast in (int, float):
            try:
                kwargs[key] = cast(text)
                break
            except ValueError:
                continue
        else:
            kwargs[key] = text
    return spec, get_search(name, **kwargs)


def load_wrapper(model: str, batch_size: int, weights: Path | None) -> MLLMForwardWrapper:
    if model == "tiny":
        from captum_eagle.testing import tiny_model

        return MLLMForwardWrapper(*tiny_model("llava", image_size=64), batch_size=batch_size)
    from captum_eagle.zoo import load_default_model

    return MLLMForwardWrapper(*load_default_model(path=weights), batch_size=batch_size)


def evaluate(wrapper, sample, mask, attribution, objects) -> dict[str, float]:
    insertion = insertion_curve(wrapper, sample, attribution, feature_mask=mask)
    deletion = deletion_curve(wrapper, sample, attribution, feature_mask=mask)
    union = torch.zeros(mask.mask.shape[-2:], dtype=torch.bool)
    for item in objects:
        union |= torch.as_tensor(item.mask)
    pointing = pointing_game(attribution, mask=union)
    return {
        "insertion": insertion.auc,
        "deletion": deletion.auc,
        "pointing": float(pointing.hit),
        "pointing_tie_aware": pointing.tie_aware,
    }


class Worker:
    r"""One process's model, scenes and strategies; explains one (scene, N) job at a time."""

    def __init__(self, args: argparse.Namespace) -> None:
        torch.set_num_threads(args.threads)
        torch.manual_seed(args.seed)
        self.args = args
        self.wrapper = load_wrapper(args.model, args.batch_size, args.weights)
        self.searches = [parse_search(spec) for spec in args.searches]
        self.eagle = EagleAttribution(self.wrapper)
        self.scenes = generate_scenes(
            args.first_scene + max(args.scenes), seed=args.seed, kind=args.kind
        )
        scene = self.scenes[args.first_scene]
        warm_up = self.wrapper.prepare(scene.image, DEFAULT_CAPTION_PROMPT, scene.caption)
        self.eagle.explain(
            warm_up.image,
            feature_mask=FeatureMask.grid(warm_up.image, 2, 2),
            additional_forward_args=(warm_up,),
            batch_size=args.batch_size,
        )

    def __call__(self, job: tuple[int, int]) -> tuple[str, list[dict[str, Any]]] | None:
        if self.args.deadline is not None and time.time() > self.args.deadline:
            return None
        index, n_regions = job
        args, wrapper, scene = self.args, self.wrapper, self.scenes[job[0]]
        caption = scene.caption if args.model == "tiny" else None
        sample = wrapper.prepare(scene.image, DEFAULT_CAPTION_PROMPT, caption)
        mask = FeatureMask.slico(sample.image, n_regions)
        base = {"scene": index, "regions": n_regions, "n": mask.n_regions}
        records = []
        for name, strategy in self.searches:
            result = self.eagle.explain(
                sample.image,
                feature_mask=mask,
                additional_forward_args=(sample,),
                search=strategy,
                batch_size=args.batch_size,
            )
            metrics = evaluate(wrapper, sample, mask, result.attribution_map(), scene.objects)
            records.append(
                {**base, "search": name, "forwards": result.forwards, "seconds": result.seconds}
                | metrics
            )
        if args.kernel_shap_samples:
            torch.manual_seed(args.seed + index)
            started = time.perf_counter()
            with ForwardCounter(wrapper) as counter:
                attribution = attribute(
                    "kernel_shap", wrapper, sample, mask, budget=args.kernel_shap_samples
                )
            seconds = time.perf_counter() - started
            metrics = evaluate(wrapper, sample, mask, attribution, scene.objects)
            records.append(
                {
                    **base,
                    "search": f"KernelShap ({args.kernel_shap_samples} samples)",
                    "forwards": counter.images,
                    "seconds": seconds,
                }
                | metrics
            )
        return sample.answer, records


_WORKER: Worker | None = None


def _start_worker(args: argparse.Namespace) -> None:
    global _WORKER
    _WORKER = Worker(args)


def _run_job(job: tuple[int, int]) -> tuple[str, list[dict[str, Any]]] | None:
    return _WORKER(job)


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    r"""Explain every (scene, N) job, in ``args.workers`` processes; return all records.

    Each record is also appended to ``args.out`` (JSONL after a header, see
    :mod:`benchmarks.results`) as soon as its job is done.
    """
    jobs = [
        (index, n_regions)
        for index in range(args.first_scene, args.first_scene + max(args.scenes))
        for n_regions, n_scenes in zip(args.regions, args.scenes, strict=True)
        if index < args.first_scene + n_scenes
    ]
    if args.workers > 1:
        pool = multiprocessing.get_context("fork").Pool(
            args.workers, initializer=_start_worker, initargs=(args,)
        )
        results = pool.imap_unordered(_run_job, jobs)
    else:
        pool, results = None, map(Worker(args), jobs)
    records: list[dict[str, Any]] = []
    done = 0
    out = args.out or RESULTS / "search" / f"s{args.seed}-{args.first_scene}.jsonl"
    with results_file(out, header("search", args.model, vars(args))) as file:
        for result in results:
            if result is None:
                continue
            answer, job_records = result
            done += 1
            records += job_records
            for record in job_records:
                write_record(file, {"type": "explanation", **record})
            first = job_records[0]
            print(
                f"job {done}/{len(jobs)}: scene {first['scene']}, N = {first['regions']} "
                f"({first['n']} regions): {answer!r}",
                flush=True,
            )
            if done % 10 == 0 and done < len(jobs):
                print(table(records), flush=True)
    if pool is not None:
        pool.close()
        pool.join()
    if done < len(jobs):
        print(f"time limit reached: {done} of {len(jobs)} jobs done", flush=True)
    return records


def pool_records(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    r"""Concatenate saved runs of the same scenes seed; the first record of a (scene, N, search)
    wins, so a run that completes a stopped one may overlap it."""
    seen: set[tuple[int, int, str]] = set()
    pooled = []
    for record in (record for run in runs for record in run):
        key = (record["scene"], record["regions"], record["search"])
        if key not in seen:
            seen.add(key)
            pooled.append(record)
    return pooled


def table(records: list[dict[str, Any]]) -> str:
    r"""Markdown table: per N and strategy, means over scenes and ratios to exact."""
    groups: dict[tuple[int, str], list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        groups[(record["regions"], record["search"])].append(record)

    def mean(rows, key):
        return sum(row[key] for row in rows) / len(rows)

    header = (
        "| N | search | scenes | forwards | × fewer | seconds | insertion AUC ↑ | ins. / exact | "
        "deletion AUC ↓ | del. / exact | pointing ↑ | tie-aware ↑ | point. / exact |"
    )
    lines = [header, "|" + "---|" * 13]
    for n_regions in sorted({key[0] for key in groups}):
        exact = groups.get((n_regions, "exact"))
        names = [name for regions, name in groups if regions == n_regions]
        for name in names:
            rows = groups[(n_regions, name)]
            values = {k: mean(rows, k) for k in ("forwards", "seconds", "insertion", "deletion")}
            values["pointing"] = mean(rows, "pointing")
            values["tie"] = mean(rows, "pointing_tie_aware")
            if exact:
                fewer = mean(exact, "forwards") / values["forwards"]
                ratios = [
                    values["insertion"] / mean(exact, "insertion"),
                    values["deletion"] / mean(exact, "deletion"),
                    _ratio(values["pointing"], mean(exact, "pointing")),
                ]
            else:
                fewer, ratios = math.nan, [math.nan] * 3
            actual = sorted({row["n"] for row in rows})
            label = f"{n_regions} ({actual[0]}–{actual[-1]})"
            lines.append(
                f"| {label} | {name} | {len(rows)} | {values['forwards']:.0f} | {fewer:.1f} | "
                f"{values['seconds']:.2f} | {values['insertion']:.4f} | {ratios[0]:.3f} | "
                f"{values['deletion']:.4f} | {ratios[1]:.3f} | {values['pointing']:.2f} | "
                f"{values['tie']:.2f} | {ratios[2]:.3f} |"
            )
    return "\n".join(lines)


def _ratio(value: float, reference: float) -> float:
    return value / reference if reference else math.nan


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scenes",
        type=int,
        nargs="+",
        default=[50],
        help="scenes per explanation size: one number for all, or one per --regions value",
    )
    parser.add_argument("--regions", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated scenes")
    parser.add_argument(
        "--first-scene",
        type=int,
        default=0,
        help="index of the first scene (to complete a run stopped by --time-limit)",
    )
    parser.add_argument("--kind", default="plain", help="scene kind (captum_eagle.zoo)")
    parser.add_argument("--searches", nargs="+", default=list(DEFAULT_SEARCHES))
    parser.add_argument("--kernel-shap-samples", type=int, default=200, help="0: no KernelShap")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--model", choices=("shapes", "tiny"), default="shapes")
    parser.add_argument(
        "--weights", type=Path, default=None, help="shapes model folder (default: the bundled)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSONL results file (default: benchmarks/results/search/s<seed>-<first scene>.jsonl)",
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=None,
        help="minutes: start no new (scene, N) job after this; the table shows what was done",
    )
    parser.add_argument(
        "--table-from",
        type=Path,
        nargs="+",
        default=None,
        help="print the table of saved JSONL results (pooled; a (scene, N, search) record seen "
        "twice is counted once)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="processes, each explaining whole scenes"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (1 is fastest on a shared, busy CPU: no spin-waiting)",
    )
    args = parser.parse_args(argv)
    if len(args.scenes) == 1:
        args.scenes = args.scenes * len(args.regions)
    if len(args.scenes) != len(args.regions):
        parser.error("--scenes takes one number or one per --regions value.")
    if args.table_from:
        print(table(pool_records([read_results([path])[1] for path in args.table_from])))
        return
    args.deadline = time.time() + 60 * args.time_limit if args.time_limit else None
    torch.set_num_threads(args.threads)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({args.workers} workers x {args.threads} threads); model: {args.model}",
        flush=True,
    )
    started = time.perf_counter()
    records = run(args)
    print(f"\ntotal {time.perf_counter() - started:.0f} s\n")
    print(table(records))


if __name__ == "__main__":
    main()
