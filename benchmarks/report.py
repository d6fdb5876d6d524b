r"""Every benchmark table of ``benchmarks/README.md`` and ``README.md``, made from results files.

The tables live between marker comments, ``<!-- report:NAME -->`` … ``<!-- /report:NAME -->``;
this script recomputes each from ``benchmarks/results/<benchmark>/*.jsonl``
(:mod:`benchmarks.results`) and replaces the text between the markers. Sections: ``frontier``,
``frontier-verdicts``, ``hallucination``, ``faithfulness``, ``redundant-headline``, ``search``,
``gpu-tiny`` (benchmarks/README.md), ``redundant`` (benchmarks/results/redundant/README.md) and
``supported-models``, ``speed-generic``, ``headline``, ``joint``, ``speed-exact`` (README.md).

Statistics: paired differences Eagle − method over the same explanations, bootstrap intervals,
Holm-corrected within each table (:func:`benchmarks.results.paired_comparisons`); "better",
"tie" or "worse" is decided by the corrected interval.

Usage::

    python benchmarks/report.py           # print the sections
    python benchmarks/report.py --write   # rewrite the marked sections and docs/frontier.png
    python benchmarks/report.py --check   # exit 1 if a marked section is stale
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `benchmarks.*` importable
    sys.path.insert(0, str(ROOT))

from benchmarks.results import (  # noqa: E402
    RESULTS,
    TOO_FEW,
    Comparison,
    paired_comparisons,
    read_results,
)

Record = dict[str, Any]
LOWER_IS_BETTER = {"deletion", "amcr"}
FRONTIER_METRICS: tuple[tuple[str, str], ...] = (
    ("insertion", "ins ↑"),
    ("deletion", "del ↓"),
    ("point_mask_tie", "PG ↑"),
    ("amcr", "AMCR ↓"),
    ("csr", "CSR@10% ↑"),
)
SAMPLING = ("kernel_shap", "lime", "shapley")
TASKS = ("caption", "word", "qa")
DOCUMENTS = {
    ROOT / "benchmarks" / "README.md": (
        "frontier",
        "frontier-verdicts",
        "frontier-exact",
        "hallucination",
        "faithfulness",
        "redundant-headline",
        "search",
        "gpu-tiny",
    ),
    ROOT / "benchmarks" / "results" / "redundant" / "README.md": ("redundant",),
    ROOT / "README.md": ("supported-models", "speed-generic", "headline", "joint", "speed-exact"),
}
FIGURE = ROOT / "docs" / "frontier.png"


def load(benchmark: str, folder: Path | None = None) -> tuple[list[Record], list[Record]]:
    r"""Headers and records of every ``*.jsonl`` of ``folder/benchmark`` (empty if none)."""
    paths = sorted(((folder or RESULTS) / benchmark).glob("*.jsonl"))
    return read_results(paths) if paths else ([], [])


def load_file(name: str, folder: Path | None = None) -> tuple[list[Record], list[Record]]:
    r"""Header and records of the one results file ``folder/name`` (empty if it is missing)."""
    path = (folder or RESULTS) / name
    return read_results([path]) if path.is_file() else ([], [])


# -- per-case values ---------------------------------------------------------------------------
def value(record: Record, metric: str) -> float:
    r"""A record's value of ``metric``; NaN where it has none. ``amcr`` is the removed area at the
    flip (1 when never corrected), ``csr`` 1 if corrected with at most 10% of the area removed."""
    if metric in ("amcr", "csr"):
        if record.get("type") != "hallucination":
            return math.nan
        area = record["area_removed"]
        if metric == "amcr":
            return 1.0 if area is None else area
        return float(area is not None and area <= 0.10 + 1e-12)
    number = record.get(metric)
    return math.nan if number is None else float(number)


def _mean(values: Sequence[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return float(np.mean(kept)) if kept else math.nan


def _cell(number: float, digits: int = 3) -> str:
    return "—" if math.isnan(number) else f"{number:.{digits}f}"


def _case(record: Record) -> tuple:
    # The scenes of every kind share their seeds: the kind is part of the case.
    return (
        record.get("type"),
        record.get("task"),
        record.get("kind"),
        record["scene"],
        record.get("label"),
    )


def _differences(ours: Sequence[Record], theirs: Sequence[Record], metric: str) -> list[float]:
    r"""Paired ``ours − theirs`` over the cases both have a value for."""
    mine = {_case(r): value(r, metric) for r in ours}
    pairs = [(mine.get(_case(r), math.nan), value(r, metric)) for r in theirs]
    return [a - b for a, b in pairs if not (math.isnan(a) or math.isnan(b))]


def _verdict(comparison: Comparison) -> str:
    if comparison.verdict == TOO_FEW:
        return comparison.cell()  # "+0.010 (n = 2)": too few pairs for a verdict
    return f"{comparison.cell()} {comparison.verdict}"


def environment(headers: Sequence[Record]) -> str:
    r"""One paragraph: date, machine, versions, weights and the commands of the pooled runs."""
    if not headers:
        return ""
    first = headers[0]
    where, versions = first["machine"], first["versions"]
    sha = first["weights"].get("weights_sha256")
    model = (
        f"shapes weights sha256 `{sha[:8]}…{sha[-6:]}`"
        if sha
        else f"model {first['weights'].get('model', '?')} (random weights)"
    )
    commands = "; ".join(f"`{h['command']}`" for h in headers)
    dates = sorted({h["date"][:10] for h in headers})
    loads = [h["machine"].get("load_1min") for h in headers]
    if None in loads:  # headers written before the load was recorded
        share = "shared with other jobs"
    else:
        low, high = f"{min(loads):.1f}", f"{max(loads):.1f}"
        share = f"load average at the start {low if low == high else f'{low}–{high}'}"
    return (
        f"Run {', '.join(dates)} on {where['platform']}, {where['cpus']} CPUs, {share} "
        f"(torch threads per process: {where['torch_threads']}); torch {versions['torch']}, "
        f"transformers {versions['transformers']}, captum {versions['captum']}, captum-eagle "
        f"{versions['captum-eagle']}; {model}. Commands: {commands}."
    )


# -- frontier ----------------------------------------------------------------------------------
def _point(record: Record) -> str:
    budget = record.get("budget")
    return record["method"] if budget is None else f"{record['method']} @{budget}"


def _budget_rank(label: str) -> float:
    return math.inf if label == "N(N+1)" else float(label.rstrip("N"))


def _points(records: Sequence[Record]) -> dict[int, dict[str, list[Record]]]:
    groups: dict[int, dict[str, list[Record]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        if record.get("type") in ("explanation", "hallucination"):
            groups[record["regions"]][_point(record)].append(record)
    return groups


def _order(name: str) -> tuple:
    method, _, budget = name.partition(" @")
    family = 0 if method.startswith("eagle") else 1 if method in SAMPLING else 2
    return (family, method, _budget_rank(budget) if budget else 0)


def frontier_table(records: Sequence[Record]) -> str:
    r"""Per region count, every method point: forwards and the mean of each quality metric."""
    blocks = []
    for regions, points in sorted(_points(records).items()):
        words = {_case(r) for rows in points.values() for r in rows if r["type"] == "explanation"}
        cases = {_case(r) for rows in points.values() for r in rows if r["type"] == "hallucination"}
        actual = [r["actual_regions"] for rows in points.values() for r in rows]
        lines = [
            f"**N = {regions}** SLICO regions requested ({min(actual)}–{max(actual)} returned): "
            f"{len(words)} caption words, {len(cases)} hallucination cases",
            "",
            "| method | forwards | " + " | ".join(label for _, label in FRONTIER_METRICS) + " |",
            "|---|---:|" + "---:|" * len(FRONTIER_METRICS),
        ]
        for name in sorted(points, key=_order):
            rows = points[name]
            cells = [_cell(_mean([value(r, m) for r in rows])) for m, _ in FRONTIER_METRICS]
            forwards = _mean([float(r["forwards"]) for r in rows])
            lines.append(f"| {name} | {forwards:.0f} | " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _best(points: dict[str, list[Record]], names: Sequence[str], metric: str) -> str | None:
    sign = -1 if metric in LOWER_IS_BETTER else 1
    scored = [(sign * _mean([value(r, metric) for r in points[n]]), n) for n in names]
    scored = [(score, name) for score, name in scored if not math.isnan(score)]
    return (
        max(scored, key=lambda item: (item[0], -_forwards(points[item[1]])))[1] if scored else None
    )


def _forwards(rows: Sequence[Record]) -> float:
    return _mean([float(r["forwards"]) for r in rows])


DEFAULT_ROW = "N(N+1), exact only"


def frontier_comparisons(records: Sequence[Record]) -> dict[int, list[dict[str, Any]]]:
    r"""Per region count and sampling budget, per metric: the best Eagle mode whose mean forwards
    are at most the budget's against the best sampling method at that budget (both chosen by
    their mean), paired over the same cases, Holm-corrected over the region count's table. A last
    row (level :data:`DEFAULT_ROW`) compares the paper's exact greedy, the default, alone against
    the best sampling method at its budget ``N(N+1)``, so the choice of mode cannot flatter it."""
    result: dict[int, list[dict[str, Any]]] = {}
    for regions, points in sorted(_points(records).items()):
        eagle = [n for n in points if n.startswith("eagle")]
        levels = sorted(
            {
                r["budget"]
                for n, rows in points.items()
                for r in rows
                if n.split(" @")[0] in SAMPLING
            },
            key=_budget_rank,
        )
        rows: list[tuple[str, str, list[str] | None]] = [(level, level, None) for level in levels]
        if "eagle:exact" in points and "N(N+1)" in levels:
            rows.append((DEFAULT_ROW, "N(N+1)", ["eagle:exact"]))
        cells, differences, lower = [], {}, {}
        for level, budget, fixed in rows:
            samplers = [
                n for n in points if n.endswith(f" @{budget}") and n.split(" @")[0] in SAMPLING
            ]
            spent = max(_forwards(points[n]) for n in samplers)
            affordable = fixed or [n for n in eagle if _forwards(points[n]) <= spent]
            for metric, _ in FRONTIER_METRICS:
                theirs = _best(points, samplers, metric)
                ours = _best(points, affordable, metric)
                cell = {"level": level, "forwards": spent, "metric": metric}
                cell.update(ours=ours, theirs=theirs)
                if ours is not None and theirs is not None:
                    key = (level, metric)
                    differences[key] = _differences(points[ours], points[theirs], metric)
                    lower[key] = metric in LOWER_IS_BETTER
                cells.append(cell)
        comparisons = paired_comparisons(differences, lower)
        for cell in cells:
            cell["comparison"] = comparisons.get((cell["level"], cell["metric"]))
        result[regions] = cells
    return result


def frontier_verdicts(records: Sequence[Record]) -> str:
    r"""The markdown of :func:`frontier_comparisons`: a row per budget, a column per metric."""
    blocks = []
    for regions, cells in frontier_comparisons(records).items():
        lines = [
            f"**N = {regions}**: best Eagle mode within the budget − best sampling method at it",
            "",
            "| budget | forwards | " + " | ".join(label for _, label in FRONTIER_METRICS) + " |",
            "|---|---:|" + "---|" * len(FRONTIER_METRICS),
        ]
        by_level: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for cell in cells:
            by_level[cell["level"]].append(cell)
        for level, row in by_level.items():
            texts = []
            for cell in row:
                if cell["ours"] is None:
                    texts.append("no Eagle mode this cheap")
                elif cell["comparison"] is None:
                    texts.append("—")
                else:
                    names = f"{cell['ours'].split(':')[1]} vs {cell['theirs'].split(' @')[0]}"
                    texts.append(f"{_verdict(cell['comparison'])} ({names})")
            lines.append(f"| {level} | {row[0]['forwards']:.0f} | " + " | ".join(texts) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def frontier_against_exact(records: Sequence[Record]) -> str:
    r"""Per region count, every other Eagle mode against the paper's exact greedy on the same
    cases: mean forwards, how many times fewer than exact, and ``mode − exact`` per metric
    (paired bootstrap, Holm-corrected over the region count's table)."""
    blocks = []
    for regions, points in sorted(_points(records).items()):
        if "eagle:exact" not in points:
            continue
        modes = sorted(
            (n for n in points if n.startswith("eagle:") and n != "eagle:exact"),
            key=lambda n: _forwards(points[n]),
        )
        comparisons = _against_eagle(
            {name: points[name] for name in [*modes, "eagle:exact"]},
            "eagle:exact",
            [metric for metric, _ in FRONTIER_METRICS],
            reference_first=False,
        )
        exact = _forwards(points["eagle:exact"])
        lines = [
            f"**N = {regions}**: Eagle mode − exact greedy ({exact:.0f} forwards), same cases",
            "",
            "| mode | forwards | × fewer | "
            + " | ".join(label for _, label in FRONTIER_METRICS)
            + " |",
            "|---|---:|---:|" + "---|" * len(FRONTIER_METRICS),
        ]
        for name in modes:
            spent = _forwards(points[name])
            cells = []
            for metric, _ in FRONTIER_METRICS:
                comparison = comparisons.get((name, metric))
                cells.append("—" if comparison is None else _verdict(comparison))
            lines.append(
                f"| {name.split(':', 1)[1]} | {spent:.0f} | {exact / spent:.1f} | "
                + " | ".join(cells)
                + " |"
            )
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def plot_frontier(records: Sequence[Record], path: Path = FIGURE) -> Path:
    r"""Quality against forwards (log scale): a column per region count, a row per metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = _points(records)
    rows, columns = len(FRONTIER_METRICS), len(groups)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 2.6 * rows), squeeze=False)
    colours = {name: plt.get_cmap("tab10")(i) for i, name in enumerate(SAMPLING)}
    for column, (regions, points) in enumerate(sorted(groups.items())):
        for row, (metric, label) in enumerate(FRONTIER_METRICS):
            ax = axes[row][column]
            curves: dict[str, list[tuple[float, float]]] = defaultdict(list)
            for name in sorted(points, key=_order):
                method = name.split(" @")[0]
                x = max(_forwards(points[name]), 1.0)
                y = _mean([value(r, metric) for r in points[name]])
                if math.isnan(y):
                    continue
                if method in SAMPLING or " @" in name:  # samplers and Eagle's budget mode
                    curves[method].append((x, y))
                elif method.startswith("eagle"):
                    ax.scatter(x, y, marker="*", s=90, color="crimson", zorder=3)
                    ax.annotate(name.split(":")[1], (x, y), fontsize=6, xytext=(3, 3),
                                textcoords="offset points")  # fmt: skip
                else:
                    ax.scatter(x, y, marker="s", s=25, color="grey", zorder=2)
                    ax.annotate(method, (x, y), fontsize=6, xytext=(3, -8),
                                textcoords="offset points")  # fmt: skip
            for method, xy in curves.items():
                xs, ys = zip(*sorted(xy), strict=True)
                colour = colours.get(method, "crimson")
                ax.plot(xs, ys, "o-", color=colour, label=method, markersize=3)
            ax.set_xscale("log")
            ax.set_ylabel(label)
            if row == 0:
                ax.set_title(f"N = {regions}")
            if row == len(FRONTIER_METRICS) - 1:
                ax.set_xlabel("model forwards (log)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(
        "Eagle modes (red stars; `budget` as a red line), sampling methods (lines), fixed-cost"
        " methods (grey);"
        " random (0 forwards) drawn at 1"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# -- hallucination and faithfulness ------------------------------------------------------------
def _by_regions(records: Sequence[Record], kind: str) -> dict[int, dict[str, list[Record]]]:
    groups: dict[int, dict[str, list[Record]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        if record.get("type") == kind:
            groups[record["regions"]][record["method"]].append(record)
    return groups


def _against_eagle(
    groups: dict[str, list[Record]],
    reference: str,
    metrics: Sequence[str],
    *,
    reference_first: bool = True,
) -> dict[tuple[str, str], Comparison]:
    r"""Paired comparisons of ``reference`` with every other group, per metric, Holm-corrected
    together: ``reference − group`` (or ``group − reference`` with ``reference_first=False``)."""
    differences, lower = {}, {}
    for name, rows in groups.items():
        if name == reference or reference not in groups:
            continue
        for metric in metrics:
            pair = (groups[reference], rows) if reference_first else (rows, groups[reference])
            differences[(name, metric)] = _differences(*pair, metric)
            lower[(name, metric)] = metric in LOWER_IS_BETTER
    return paired_comparisons(differences, lower)


def hallucination_table(records: Sequence[Record]) -> str:
    r"""Per region count and method: AMCR, CSR@10%, cause@1, forwards, and Eagle − method."""
    groups = _by_regions(records, "hallucination")
    blocks = []
    for regions, methods in sorted(groups.items()):
        comparisons = _against_eagle(methods, "eagle", ("amcr", "csr"))
        lines = [
            f"**{regions} regions** requested",
            "",
            "| method | budget | cases | AMCR ↓ | CSR@10% ↑ | cause@1 ↑ | forwards "
            "| Eagle − method: AMCR | CSR@10% |",
            "|---|---:|---:|---:|---:|---:|---:|---|---|",
        ]
        for name, rows in methods.items():
            budget = rows[0].get("budget")
            cells = [
                name,
                "—" if budget is None else str(budget),
                str(len(rows)),
                _cell(_mean([value(r, "amcr") for r in rows])),
                _cell(_mean([value(r, "csr") for r in rows]), 2),
                _cell(_mean([float(r["on_cause"]) for r in rows]), 2),
                f"{_forwards(rows):.0f}",
            ]
            cells += [
                _verdict(comparisons[(name, m)]) if (name, m) in comparisons else "—"
                for m in ("amcr", "csr")
            ]
            lines.append("| " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


FAITHFULNESS_METRICS = ("insertion", "deletion", "point_mask_tie")


def faithfulness_table(records: Sequence[Record]) -> str:
    r"""Per region count and method, pooled over tasks and kinds: means and Eagle − method."""
    groups = _by_regions(records, "explanation")
    blocks = []
    for regions, methods in sorted(groups.items()):
        comparisons = _against_eagle(methods, "eagle", FAITHFULNESS_METRICS)
        eagle = methods.get("eagle", [])
        scenes = {(r["kind"], r["scene"]) for r in eagle}
        tasks = ", ".join(f"{task} {sum(r['task'] == task for r in eagle)}" for task in TASKS)
        lines = [
            f"**{regions} regions** requested: {len(scenes)} scenes, {len(eagle)} explanations "
            f"per method ({tasks})",
            "",
            "| method | budget | ins ↑ | del ↓ | PG ↑ | forwards "
            "| Eagle − method: ins | del | PG |",
            "|---|---:|---:|---:|---:|---:|---|---|---|",
        ]
        for name, rows in methods.items():
            budgets = sorted({r["budget"] for r in rows if r.get("budget") is not None})
            budget = "—" if not budgets else "equal" if name.endswith("@eagle") else str(budgets[0])
            cells = [name, budget]
            cells += [_cell(_mean([value(r, m) for r in rows])) for m in FAITHFULNESS_METRICS]
            cells.append(f"{_forwards(rows):.0f}")
            cells += [
                _verdict(comparisons[(name, m)]) if (name, m) in comparisons else "—"
                for m in FAITHFULNESS_METRICS
            ]
            lines.append("| " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


# -- headline ----------------------------------------------------------------------------------
def _counts(comparisons: Sequence[Comparison]) -> str:
    verdicts = [c.verdict for c in comparisons]
    return ", ".join(f"{verdicts.count(v)} {v}" for v in ("better", "tie", "worse", TOO_FEW))


def headline(folder: Path | None = None) -> str:
    r"""The benchmark lines of ``README.md``: one per benchmark, from its results."""
    lines = []
    _, frontier = load("frontier", folder)
    for regions, cells in frontier_comparisons(frontier).items():
        compared = [
            c["comparison"]
            for c in cells
            if c["comparison"] is not None and c["level"] != DEFAULT_ROW
        ]
        default = [
            c["comparison"]
            for c in cells
            if c["comparison"] is not None and c["level"] == DEFAULT_ROW
        ]
        missing = sorted({c["level"] for c in cells if c["ours"] is None}, key=_budget_rank)
        words = {
            _case(r) for r in frontier if r.get("regions") == regions and r["type"] == "explanation"
        }
        cases = {
            _case(r)
            for r in frontier
            if r.get("regions") == regions and r["type"] == "hallucination"
        }
        lines.append(
            f"- **Frontier, N = {regions}** ({len(words)} caption words, {len(cases)} "
            "hallucination cases): the best Eagle mode within each sampling budget against the "
            f"best of KernelShap / Lime / Shapley at it, over 5 metrics: {_counts(compared)}"
            + (f"; no Eagle mode is as cheap as {', '.join(missing)}" if missing else "")
            + (
                f"; the paper's exact greedy alone at N(N+1): {_counts(default)}."
                if default
                else "."
            )
        )
    _, hallucination = load("hallucination", folder)
    for block in _hallucination_lines(hallucination):
        lines.append(block)
    _, faithfulness = load("faithfulness", folder)
    groups = _by_regions(faithfulness, "explanation")
    for regions, methods in sorted(groups.items()):
        comparisons = _against_eagle(methods, "eagle", FAITHFULNESS_METRICS)
        lines.append(
            f"- **Faithfulness, {regions} regions** ({len(methods.get('eagle', []))} "
            f"explanations): Eagle against {len(methods) - 1} methods on insertion, deletion and "
            f"pointing: {_counts(list(comparisons.values()))}."
        )
    return "\n".join(lines)


def _hallucination_lines(records: Sequence[Record]) -> list[str]:
    groups = _by_regions(records, "hallucination")
    lines = []
    for regions, methods in sorted(groups.items()):
        if "eagle" not in methods:
            continue
        eagle = methods["eagle"]
        comparisons = _against_eagle(methods, "eagle", ("amcr",))
        verdicts = defaultdict(list)
        for (name, _), comparison in comparisons.items():
            verdicts[comparison.verdict].append(name)
        phrases = {"better": "better than", "tie": "tied with", "worse": "worse than"}
        summary = "; ".join(
            f"{phrases.get(verdict, 'too few cases to compare with')} {', '.join(sorted(names))}"
            for verdict, names in verdicts.items()
        )
        lines.append(
            f"- **Hallucination, {regions} regions** ({len(eagle)} cases): Eagle's AMCR "
            f"{_mean([value(r, 'amcr') for r in eagle]):.3f}, CSR@10% "
            f"{_mean([value(r, 'csr') for r in eagle]):.2f}; on AMCR it is {summary}."
        )
    return lines


# -- documents ---------------------------------------------------------------------------------
def sections(folder: Path | None = None) -> dict[str, str]:
    r"""Every marked section's text, from the results under ``folder``."""
    made: dict[str, str] = {}
    builders: dict[str, tuple[str, Callable[[Sequence[Record]], str]]] = {
        "frontier": ("frontier", frontier_table),
        "frontier-verdicts": ("frontier", frontier_verdicts),
        "frontier-exact": ("frontier", frontier_against_exact),
        "hallucination": ("hallucination", hallucination_table),
        "faithfulness": ("faithfulness", faithfulness_table),
    }
    for name, (benchmark, build) in builders.items():
        headers, records = load(benchmark, folder)
        text = build(records) if records else "No results yet."
        if name not in ("frontier-verdicts", "frontier-exact") and headers:
            text = environment(headers) + "\n\n" + text
        made[name] = text
    made["headline"] = headline(folder)
    made.update(redundant_tables(folder))
    made["joint"] = joint_tables(folder)
    made.update(speed_tables(folder))
    made["supported-models"] = supported_models_table(folder)
    made["gpu-tiny"] = gpu_tiny_table(folder)
    made["search"] = search_table(folder)
    return made


def _with_environment(
    headers: Sequence[Record], records: Sequence[Record], build: Callable[[list[Record]], str]
) -> str:
    r"""The runs' environment paragraph, then ``build(records)``; "No results yet." if none."""
    if not records:
        return "No results yet."
    return environment(headers) + "\n\n" + build(list(records))


def speed_tables(folder: Path | None = None) -> dict[str, str]:
    r"""``speed-exact`` (engine against the naive search) and ``speed-generic`` (generic path
    against the adapter), by :mod:`benchmarks.speed`'s tables."""
    from benchmarks import speed

    headers, rows = load_file("speed/exact_engine.jsonl", folder)

    def exact(rows: list[Record]) -> str:
        first, repeats = rows[0], headers[0]["config"]["repeats"]
        return (
            f"Model {first['model']}, image {first['image'][0]}×{first['image'][1]}, "
            f"{first['answer_tokens']}-token answer; engine time = median of {repeats} runs.\n\n"
            + speed.exact_table(rows)
        )

    made = {"speed-exact": _with_environment(headers, rows, exact)}
    headers, rows = load_file("speed/generic_vs_adapter.jsonl", folder)
    made["speed-generic"] = _with_environment(headers, rows, speed.generic_table)
    return made


def supported_models_table(folder: Path | None = None) -> str:
    r"""The README's supported-models table, by :mod:`benchmarks.supported_models`."""
    from benchmarks import supported_models

    _, rows = load_file("supported_models/conformance.jsonl", folder)
    return supported_models.table(rows) if rows else "No results yet."


def gpu_tiny_table(folder: Path | None = None) -> str:
    r"""The toy-size CPU run of :mod:`benchmarks.gpu` (it shows the script runs, not GPU speed)."""
    from benchmarks import gpu

    headers, rows = load_file("gpu/tiny_cpu.jsonl", folder)
    return _with_environment(headers, rows, gpu.table)


def search_table(folder: Path | None = None) -> str:
    r"""The search-strategy table of :mod:`benchmarks.search`, from every run pooled."""
    from benchmarks import search

    headers, records = load("search", folder)
    return _with_environment(headers, records, search.table)


def joint_tables(folder: Path | None = None) -> str:
    r"""The joint image + prompt ground-truth tables (README), by benchmarks.joint's report."""
    from benchmarks import joint

    paths = sorted(((folder or RESULTS) / "joint").glob("*.jsonl"))
    if not paths:
        return "No results yet."
    return joint.report(*joint.read_jsonl(paths)).strip()


def redundant_tables(folder: Path | None = None) -> dict[str, str]:
    r"""The redundant-evidence sections (issue 21), made by :mod:`benchmarks.redundant`'s report
    from one read of the files: ``redundant`` (every table) and ``redundant-headline`` (one row
    per group)."""
    from benchmarks import redundant

    paths = sorted(((folder or RESULTS) / "redundant").glob("*.jsonl"))
    if not paths:
        return dict.fromkeys(("redundant", "redundant-headline"), "No results yet.")
    _, records = read_results(paths)
    return {
        "redundant": redundant.markdown_report(records).strip(),
        "redundant-headline": redundant.markdown_headline(records),
    }


def replace_sections(text: str, made: dict[str, str], names: Sequence[str]) -> str:
    r"""``text`` with the content between each ``<!-- report:NAME -->`` pair replaced.

    Raises:
        ValueError: a section's markers are missing.

    Examples::

        >>> replace_sections("a <!-- report:x -->old<!-- /report:x --> b", {"x": "new"}, ["x"])
        'a <!-- report:x -->\nnew\n<!-- /report:x --> b'
    """
    for name in names:
        pattern = re.compile(
            rf"(<!-- report:{re.escape(name)} -->).*?(<!-- /report:{re.escape(name)} -->)", re.S
        )
        if not pattern.search(text):
            raise ValueError(
                f"No '<!-- report:{name} -->' … '<!-- /report:{name} -->' markers; add them where "
                "the section belongs."
            )
        content = made[name]
        text = pattern.sub(lambda m, c=content: f"{m.group(1)}\n{c}\n{m.group(2)}", text)
    return text


def stale(folder: Path | None = None) -> list[str]:
    r"""The documents whose marked sections differ from what the results give."""
    made = sections(folder)
    return [
        str(path.relative_to(ROOT))
        for path, names in DOCUMENTS.items()
        if replace_sections(path.read_text(), made, names) != path.read_text()
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the marked sections")
    mode.add_argument("--check", action="store_true", help="exit 1 if a section is stale")
    args = parser.parse_args(argv)
    if args.check:
        paths = stale()
        if paths:
            print(f"Stale tables in {', '.join(paths)}; run python benchmarks/report.py --write.")
            return 1
        print("Tables are up to date.")
        return 0
    made = sections()
    if not args.write:
        print("\n\n".join(f"<!-- {name} -->\n{text}" for name, text in made.items()))
        return 0
    for path, names in DOCUMENTS.items():
        path.write_text(replace_sections(path.read_text(), made, names))
    _, frontier = load("frontier")
    if frontier:
        plot_frontier(frontier, FIGURE)
    print(f"wrote {', '.join(str(p.relative_to(ROOT)) for p in DOCUMENTS)} and {FIGURE.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
