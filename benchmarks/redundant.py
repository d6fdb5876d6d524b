r"""Redundant-evidence benchmark (issue 21): Eagle's greedy order against KernelShap and Lime.

When the evidence for an answer appears twice (two copies of an object, or one object split over
several regions), removing any single region leaves the answer intact: the necessity term of
Eagle's objective only rises once *every* copy is gone, an AND that forward greedy steps cannot
see. This benchmark measures where that costs Eagle against the sampling methods, and whether a
search strategy or a saliency rule (``captum_eagle.saliency``) repairs it.

Scenes: ``captum_eagle.zoo.generate_scene`` on held-out seeds (``10**6 + 10**5 s + i``, disjoint
from the training seeds), kinds ``redundant`` (two identical objects) and ``crowded`` (4-6 objects,
repeated colours / shapes), ``plain`` as the control where nothing is duplicated. SLICO partitions
of 16 / 32 / 64 regions. Tasks (built by :func:`benchmarks.faithfulness.build_cases`): ``word``
(a colour / shape word of the model's caption, pointing game against every object with that
attribute) and ``qa`` (the first yes/no question, first answer token). Every case records
``copies``, the number of scene objects that carry the evidence (objects with the word's
attribute; objects matching the question when the model said "yes"): ``copies >= 2`` is
duplicated evidence.

Methods per case:

- ``eagle:<search>`` for every strategy of :func:`captum_eagle.search.list_searches` (among them
  ``forward_backward``, the strategy made for this case), plus
  ``eagle:bidirectional-removal`` (``BidirectionalGreedy(back="removal")``); with every saliency
  rule of :mod:`captum_eagle.saliency` but the paper's as ``eagle:<search>/<rule>`` (the same
  search, another map);
- ``kernel_shap`` and ``lime`` (settings of :mod:`benchmarks.baselines`) with ``n_samples`` equal
  to the forwards of each Eagle strategy on that case (one run per distinct forward count);
  ``--baselines`` runs only some of them.

Scores: deletion AUC ↓, insertion AUC ↑, AHS ↑, pointing game (mask level, the paper's rule and the
tie-aware one) ↑, from :func:`benchmarks.faithfulness.score_map` (``captum_eagle.metrics``).

``--hallucination N`` adds the hallucination check (``benchmarks/hallucination.py``'s cases:
false "yes" answers on partial-match scenes with an oracle cause; ``explain_hallucination`` with
each strategy): AMCR ↓, CSR@10% ↑ and cause@1 ↑.

Every record is one JSON line in ``--out`` (default ``benchmarks/results/redundant/``), after a
header line with the command, machine, package versions and weights hash; records are appended as
they are computed, so an interrupted run keeps its numbers. ``--report FILE...`` prints the tables
from saved files, pooling several (parallel runs with different ``--seed``): means per method, and
the paired differences Eagle − baseline at equal budget with bootstrap 95% intervals.

Usage::

    python benchmarks/redundant.py --kinds redundant crowded plain --regions 16 32 --scenes 6 \
        --seed 0 --out benchmarks/results/redundant/s0.jsonl
    python benchmarks/redundant.py --report benchmarks/results/redundant/*.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import zlib
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `benchmarks.*` importable
    sys.path.insert(0, str(ROOT))

from benchmarks.faithfulness import Case, build_cases, load_wrapper, score_map  # noqa: E402
from benchmarks.results import header, read_results, torch_threads  # noqa: E402
from captum_eagle import EagleAttribution, FeatureMask, MLLMForwardWrapper  # noqa: E402
from captum_eagle.baselines import ForwardCounter, attribute  # noqa: E402
from captum_eagle.hallucination import explain_hallucination  # noqa: E402
from captum_eagle.metrics import amcr, csr  # noqa: E402
from captum_eagle.saliency import get_saliency_rule, list_saliency_rules  # noqa: E402
from captum_eagle.search import (  # noqa: E402
    BidirectionalGreedy,
    SearchStrategy,
    get_search,
    list_searches,
)
from captum_eagle.zoo import COLOURS, Scene, generate_scene  # noqa: E402
from captum_eagle.zoo.evaluate import EVAL_SEED  # noqa: E402

KINDS: tuple[str, ...] = ("redundant", "crowded", "plain")
TASKS: tuple[str, ...] = ("word", "qa")
BASELINES: tuple[str, ...] = ("kernel_shap", "lime")
EXTRA_SEARCHES: dict[str, SearchStrategy] = {
    "bidirectional-removal": BidirectionalGreedy(back="removal")
}
"""Strategy settings measured beside the registered defaults."""
METRICS: tuple[str, ...] = ("deletion", "insertion", "ahs", "point_mask", "point_mask_tie")
LOWER_IS_BETTER = {"deletion"}
REFERENCE = "eagle:exact"
"""The paper's Eagle (exact greedy, the paper's saliency rule): every other variant is paired
with it too (insertion and pointing must not drop)."""
BOOTSTRAP = 2000
RESULTS = ROOT / "benchmarks" / "results" / "redundant"


def searches(names: Sequence[str] | None = None) -> dict[str, SearchStrategy]:
    r"""The strategies to run, by name: the registered ones and :data:`EXTRA_SEARCHES`."""
    available = {name: get_search(name) for name in list_searches()} | EXTRA_SEARCHES
    if names is None:
        return available
    unknown = sorted(set(names) - set(available))
    if unknown:
        raise ValueError(f"Unknown searches {unknown}; choose from {sorted(available)}.")
    return {name: available[name] for name in names}


def copies(scene: Scene, case: Case) -> int:
    r"""How many scene objects carry the evidence of ``case`` (0 when it has no ground truth).

    ``word``: the objects with the word's colour or shape; ``qa``: the objects matching the
    question when the model answered "yes" (``case.mask`` is set exactly then).
    """
    if case.task == "qa":
        return len(scene.questions[0].evidence) if case.mask is not None else 0
    word = case.label.split("#")[0]
    attribute = "colour" if word in COLOURS else "shape"
    return sum(getattr(item, attribute) == word for item in scene.objects)


def _seed(*parts: object) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode())


def explain_case(
    wrapper: MLLMForwardWrapper,
    counter: ForwardCounter,
    case: Case,
    feature_mask: FeatureMask,
    strategies: dict[str, SearchStrategy],
    rules: Sequence[str],
    baselines: Sequence[str] = BASELINES,
) -> Iterator[dict[str, Any]]:
    r"""Every Eagle strategy (and saliency rule), then ``baselines`` at each Eagle budget.

    Yields one partial record per method (task / kind / scene fields are added by the caller).
    """
    budgets: dict[int, list[str]] = defaultdict(list)
    for name, strategy in strategies.items():
        started = time.perf_counter()
        result = EagleAttribution(wrapper).explain(
            case.sample.image,
            baselines=0.0,
            additional_forward_args=(case.sample,),
            feature_mask=feature_mask,
            search=strategy,
        )
        seconds = time.perf_counter() - started
        budgets[result.forwards].append(name)
        for rule in rules:
            values = get_saliency_rule(rule)(result.order, result.gains)
            method = f"eagle:{name}" + ("" if rule == "paper" else f"/{rule}")
            yield {
                "method": method,
                "search": name,
                "rule": rule,
                "forwards": result.forwards,
                "seconds": seconds,
                **score_map(wrapper, case, values[feature_mask.mask], feature_mask),
            }
    for budget, names in sorted(budgets.items()):
        for method in baselines:
            torch.manual_seed(_seed(case.key, feature_mask.n_regions, method, budget))
            with counter.counting():
                started = time.perf_counter()
                attribution = attribute(method, wrapper, case.sample, feature_mask, budget=budget)
                seconds = time.perf_counter() - started
            yield {
                "method": method,
                "budget": budget,
                "budget_of": names,
                "forwards": counter.images,
                "seconds": seconds,
                **score_map(wrapper, case, attribution.detach(), feature_mask),
            }


def hallucination_records(
    wrapper: MLLMForwardWrapper,
    n_cases: int,
    first_seed: int,
    regions: Sequence[int],
    strategies: dict[str, SearchStrategy],
) -> Iterator[dict[str, Any]]:
    r"""Mitigation of false "yes" answers (``benchmarks/hallucination.py``'s cases) per strategy."""
    from benchmarks.hallucination import collect_cases, on_cause

    cases, _ = collect_cases(wrapper, n_cases, first_seed, scan_limit=40 * n_cases)
    for item in cases:
        for n_regions in regions:
            mask = FeatureMask.slico(item.case.image, n_segments=n_regions)
            for name, strategy in strategies.items():
                result = explain_hallucination(wrapper, item.case, mask, search=strategy)
                yield {
                    "type": "hallucination",
                    "scene": item.seed,
                    "regions": n_regions,
                    "actual_regions": mask.n_regions,
                    "method": f"eagle:{name}",
                    "fraction_removed": result.fraction_removed if result.corrected else None,
                    "on_cause": on_cause(result, item.cause_mask),
                    "forwards": result.explanation.forwards,
                }


# -- report ------------------------------------------------------------------------------------
def bootstrap_interval(
    differences: Sequence[float], resamples: int = BOOTSTRAP, seed: int = 0
) -> tuple[float, float, float]:
    r"""Mean of paired differences and its bootstrap 95% percentile interval.

    Examples::

        >>> mean, low, high = bootstrap_interval([0.1, 0.2, 0.3, 0.4])
        >>> round(mean, 2), low <= mean <= high
        (0.25, True)
    """
    values = np.asarray(differences, dtype=float)
    if values.size == 0:
        raise ValueError("bootstrap_interval needs at least one difference.")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(values.mean()), float(low), float(high)


def _group(record: dict[str, Any]) -> tuple:
    evidence = "duplicated" if record["copies"] >= 2 else "single"
    return (record["regions"], record["task"], record["kind"], evidence)


def paired_differences(
    records: Sequence[dict[str, Any]],
) -> dict[tuple, dict[str, list[float]]]:
    r"""``{(group, Eagle method, partner): {metric: [Eagle − partner per case]}}``.

    Partners: each baseline of :data:`BASELINES` whose ``budget`` equals the Eagle method's forwards
    on the same case (equal budget), and :data:`REFERENCE` (the paper's Eagle) on the same case.
    NaN values (no ground truth for the pointing game) are left out.
    """
    by_case: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        if record.get("type") == "explanation":
            key = (record["regions"], record["task"], record["kind"], record["scene"])
            by_case[(*key, record["label"])].append(record)
    pairs: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for group in by_case.values():
        partners = {(r["method"], r["budget"]): r for r in group if "budget" in r}
        reference = next((r for r in group if r["method"] == REFERENCE), None)
        for ours in (r for r in group if r["method"].startswith("eagle")):
            matched = {method: partners.get((method, ours["forwards"])) for method in BASELINES}
            if ours is not reference:
                matched[REFERENCE] = reference
            for name, theirs in matched.items():
                if theirs is None:
                    continue
                for metric in METRICS:
                    a, b = ours[metric], theirs[metric]
                    if not (math.isnan(a) or math.isnan(b)):
                        pairs[(_group(ours), ours["method"], name)][metric].append(a - b)
    return pairs


def _interval(differences: Sequence[float]) -> str:
    if not differences:
        return "—"
    mean, low, high = bootstrap_interval(differences)
    return f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]"


def verdict(metric: str, differences: Sequence[float]) -> str:
    r"""``"win"`` / ``"loss"`` when the bootstrap interval of Eagle − partner excludes 0 in Eagle's
    favour / against it (lower is better for deletion), ``"tie"`` otherwise, ``"?"`` below 2 cases.
    """
    if len(differences) < 2:
        return "?"
    _, low, high = bootstrap_interval(differences)
    if metric in LOWER_IS_BETTER:
        low, high = -high, -low
    return "win" if low > 0 else "loss" if high < 0 else "tie"


PAIRED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("deletion", "kernel_shap"),
    ("deletion", "lime"),
    ("insertion", "kernel_shap"),
    ("point_mask_tie", "kernel_shap"),
    ("deletion", REFERENCE),
    ("insertion", REFERENCE),
    ("point_mask_tie", REFERENCE),
)
SHORT = {"deletion": "del", "insertion": "ins", "point_mask_tie": "PG tie", REFERENCE: "exact"}


def _key(group: tuple) -> tuple:
    kinds = {kind: i for i, kind in enumerate(KINDS)}
    return (group[0], TASKS.index(group[1]), kinds.get(group[2], 9), group[3])


def markdown_report(records: Sequence[dict[str, Any]]) -> str:
    r"""Per group (regions, task, kind, single / duplicated evidence): means and paired intervals
    of every Eagle method, then the verdicts counted over the groups, then the hallucination
    table."""
    explanations = [r for r in records if r.get("type") == "explanation"]
    pairs = paired_differences(explanations)
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for record in explanations:
        groups[_group(record)].append(record)
    header = "| method | n | del ↓ | ins ↑ | PG tie ↑ | fwd | " + " | ".join(
        f"Δ{SHORT[metric]} vs {SHORT.get(partner, partner)}" for metric, partner in PAIRED_COLUMNS
    )
    blocks = [
        "Δ = Eagle method − partner, mean [bootstrap 95%] over the paired explanations; baselines "
        "at the Eagle method's own forward count; del: negative is better."
    ]
    for group in sorted(groups, key=_key):
        rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for record in groups[group]:
            if "budget" not in record:
                rows[record["method"]].append(record)
            elif "exact" in record["budget_of"]:
                rows[f"{record['method']} (exact's forwards)"].append(record)
        regions, task, kind, evidence = group
        scenes = len({r["scene"] for r in groups[group]})
        cases = len({(r["scene"], r["label"]) for r in groups[group]})
        lines = [
            f"**{task}**, {kind}, {evidence} evidence, {regions} regions requested: "
            f"{scenes} scenes, {cases} explanations",
            "",
            header + " |",
            "|---|" + "---:|" * (5 + len(PAIRED_COLUMNS)),
        ]
        for name in sorted(rows, key=lambda n: (not n.startswith("eagle"), n)):
            cells = [_mean([r[m] for r in rows[name]]) for m in SHORT if m in METRICS]
            cells_text = " | ".join("—" if math.isnan(c) else f"{c:.3f}" for c in cells)
            forwards = _mean([r["forwards"] for r in rows[name]])
            paired = [
                _interval(pairs.get((group, name, partner), {}).get(metric, []))
                for metric, partner in PAIRED_COLUMNS
            ]
            lines.append(
                f"| {name} | {len(rows[name])} | {cells_text} | {forwards:.0f} | "
                + " | ".join(paired)
                + " |"
            )
        blocks.append("\n".join(lines))
    blocks.append(markdown_verdicts(pairs))
    blocks.append(markdown_hallucination([r for r in records if r.get("type") == "hallucination"]))
    return "\n\n".join(block for block in blocks if block)


HEADLINE: tuple[str, ...] = ("eagle:exact", "eagle:forward_backward")
"""The methods of :func:`markdown_headline`: the paper's greedy and the shipped repair."""


def markdown_headline(records: Sequence[dict[str, Any]]) -> str:
    r"""One row per group: deletion of the paper's greedy and of ``forward_backward`` against
    KernelShap at each one's own forward count, and what ``forward_backward`` changes in insertion
    and pointing against the paper's greedy (mean [bootstrap 95%], n pairs)."""
    explanations = [r for r in records if r.get("type") == "explanation"]
    pairs = paired_differences(explanations)
    groups = sorted({_group(r) for r in explanations}, key=_key)
    exact, repair = HEADLINE
    lines = [
        "| N | task | kind | evidence | n | del exact | del forward_backward | "
        "Δdel exact − KernelShap | Δdel forward_backward − KernelShap | "
        "Δins forward_backward − exact | ΔPG tie forward_backward − exact |",
        "|---:|---|---|---|---:|---:|---:|---|---|---|---|",
    ]
    for group in groups:
        rows = [r for r in explanations if _group(r) == group and r["method"] in HEADLINE]
        if not rows:
            continue
        means = {
            name: _mean([r["deletion"] for r in rows if r["method"] == name]) for name in HEADLINE
        }
        cells = [
            pairs.get((group, exact, "kernel_shap"), {}).get("deletion", []),
            pairs.get((group, repair, "kernel_shap"), {}).get("deletion", []),
            pairs.get((group, repair, REFERENCE), {}).get("insertion", []),
            pairs.get((group, repair, REFERENCE), {}).get("point_mask_tie", []),
        ]
        texts = [f"{_interval(c)} (n = {len(c)})" if c else "—" for c in cells]
        regions, task, kind, evidence = group
        n = len({(r["scene"], r["label"]) for r in rows})
        deletion = " | ".join("—" if math.isnan(v) else f"{v:.3f}" for v in means.values())
        lines.append(
            f"| {regions} | {task} | {kind} | {evidence} | {n} | {deletion} | "
            + " | ".join(texts)
            + " |"
        )
    return "\n".join(lines) if len(lines) > 2 else ""


def markdown_verdicts(pairs: dict[tuple, dict[str, list[float]]]) -> str:
    r"""Per Eagle method and paired column: groups won / tied / lost (``"?"``: fewer than 2)."""
    counts: dict[str, dict[tuple, dict[str, int]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(int))
    )
    for (_, ours, partner), metrics in pairs.items():
        for metric, column_partner in PAIRED_COLUMNS:
            if partner == column_partner and metric in metrics:
                counts[ours][(metric, partner)][verdict(metric, metrics[metric])] += 1
    if not counts:
        return ""
    columns = [f"{SHORT[m]} vs {SHORT.get(p, p)}" for m, p in PAIRED_COLUMNS]
    lines = [
        "Groups (regions × task × kind × evidence) won / tied / lost by each Eagle method:",
        "",
        "| method | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for ours in sorted(counts):
        cells = []
        for column in PAIRED_COLUMNS:
            c = counts[ours].get(column, {})
            cells.append(f"{c.get('win', 0)} / {c.get('tie', 0)} / {c.get('loss', 0)}")
        lines.append(f"| {ours} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_hallucination(records: Sequence[dict[str, Any]]) -> str:
    r"""AMCR ↓ (never corrected = 1), CSR@10% ↑ and cause@1 ↑ per region count and strategy."""
    if not records:
        return ""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        groups[(record["regions"], record["method"])].append(record)
    lines = [
        "Hallucination mitigation (false 'yes' on partial-match scenes):",
        "",
        "| regions | method | cases | AMCR ↓ | CSR@10% ↑ | cause@1 ↑ | fwd |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for (regions, method), group in sorted(groups.items()):
        fractions = [r["fraction_removed"] for r in group]
        lines.append(
            f"| {regions} | {method} | {len(group)} | {amcr(fractions):.3f} | "
            f"{csr(fractions):.2f} | {np.mean([r['on_cause'] for r in group]):.2f} | "
            f"{_mean([r['forwards'] for r in group]):.0f} |"
        )
    return "\n".join(lines)


def _mean(values: Sequence[float]) -> float:
    kept = [float(v) for v in values if not math.isnan(float(v))]
    return float(np.mean(kept)) if kept else math.nan


# -- main --------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=6, help="scenes per kind")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--regions", nargs="+", type=int, default=[16, 32])
    parser.add_argument("--seed", type=int, default=0, help="scene seeds start at 10**6 + 10**5 s")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--searches", nargs="+", help="Eagle strategies (default: all)")
    parser.add_argument(
        "--baselines", nargs="+", default=list(BASELINES), choices=BASELINES, help="at equal budget"
    )
    parser.add_argument(
        "--rules", nargs="+", default=list_saliency_rules(), choices=list_saliency_rules()
    )
    parser.add_argument(
        "--words-per-scene", type=int, default=2, help="caption words explained per scene"
    )
    parser.add_argument(
        "--all-evidence",
        action="store_true",
        help="also explain redundant / crowded cases whose evidence is a single object",
    )
    parser.add_argument("--hallucination", type=int, default=0, help="hallucination cases")
    parser.add_argument("--max-minutes", type=float, help="stop starting new scenes after this")
    parser.add_argument("--model", choices=("shapes", "tiny"), default="shapes")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", type=Path, help="JSONL file (default: results/redundant/s<seed>)")
    parser.add_argument(
        "--report", type=Path, nargs="+", help="print the tables of saved JSONL files and exit"
    )
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> Path:
    r"""Run the benchmark described by ``args``; return the JSONL file written."""
    with torch_threads(args.threads):
        return _run(args)


def _run(args: argparse.Namespace) -> Path:
    started = time.perf_counter()
    deadline = None if args.max_minutes is None else started + 60 * args.max_minutes
    out = args.out or RESULTS / f"s{args.seed}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    strategies = searches(args.searches)
    wrapper = load_wrapper(args.model, args.batch_size)
    counter = ForwardCounter(wrapper.model)
    rng = np.random.default_rng(args.seed)
    base = EVAL_SEED + 100_000 * args.seed
    first = {
        **header("redundant", args.model, {**vars(args), "out": str(out)}),
        "searches": {name: repr(strategy) for name, strategy in strategies.items()},
    }
    with out.open("w") as file:

        def write(record: dict[str, Any]) -> None:
            file.write(json.dumps(record, default=float) + "\n")
            file.flush()

        write(first)
        if args.hallucination:
            for record in hallucination_records(
                wrapper, args.hallucination, base, args.regions, strategies
            ):
                write(record)
        for index in range(args.scenes):
            if deadline is not None and time.perf_counter() > deadline:
                break
            for kind in args.kinds:
                scene = generate_scene(base + index, kind)
                cases, _ = build_cases(wrapper, scene, args.tasks, args.words_per_scene, rng)
                for case in cases:
                    count = copies(scene, case)
                    if kind != "plain" and count < 2 and not args.all_evidence:
                        continue
                    for n_regions in args.regions:
                        feature_mask = FeatureMask.slico(case.sample.image, n_regions)
                        for record in explain_case(
                            wrapper,
                            counter,
                            case,
                            feature_mask,
                            strategies,
                            args.rules,
                            args.baselines,
                        ):
                            write(
                                {
                                    "type": "explanation",
                                    "task": case.task,
                                    "kind": kind,
                                    "scene": scene.seed,
                                    "label": case.label,
                                    "copies": count,
                                    "regions": n_regions,
                                    "actual_regions": feature_mask.n_regions,
                                    **record,
                                }
                            )
            minutes = (time.perf_counter() - started) / 60
            print(f"[{minutes:.1f} min] scene {index + 1}/{args.scenes} of each kind", flush=True)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.report is not None:
        _, records = read_results(args.report)
        print(markdown_report(records))
        return
    out = run(args)
    _, records = read_results([out])
    print(markdown_report(records))


if __name__ == "__main__":
    main()
