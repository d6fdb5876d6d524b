r"""Merging the per-sample results of runs into the paper's tables (``tables.json`` / ``.md``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from captum_eagle.baselines import get_method, list_methods
from captum_eagle.run.store import CONFIG_FILE, atomic_write, load_results

__all__ = ["COLUMNS", "format_table", "merge"]


COLUMNS: tuple[tuple[str, str], ...] = (
    ("run", "run"),
    ("method", "method"),
    ("budget", "budget"),
    ("samples", "samples"),
    ("errors", "errors"),
    ("insertion_auc", "insertion ↑"),
    ("deletion_auc", "deletion ↓"),
    ("highest", "AHS ↑"),
    ("sensitive_insertion_auc", "sens. insertion ↑"),
    ("sensitive_deletion_auc", "sens. deletion ↓"),
    ("sensitive_highest", "sens. AHS ↑"),
    ("sensitive_samples", "sens. samples"),
    ("pointing_box", "pointing box ↑"),
    ("pointing_box_tie_aware", "box tie-aware ↑"),
    ("pointing_mask", "pointing mask ↑"),
    ("pointing_mask_tie_aware", "mask tie-aware ↑"),
    ("pointing_words", "words"),
    ("qa_accuracy", "QA accuracy"),
    ("hallucination_cases", "hallucinations"),
    ("amcr", "AMCR ↓"),
    ("csr_10", "CSR@10% ↑"),
    ("seconds", "seconds"),
    ("forwards", "forwards"),
)
"""Table columns: (key in ``tables.json`` rows, markdown header)."""


def _budget(settings: dict[str, Any]) -> int | None:
    """The budget a run's method spent (samples, permutations or steps; None: fixed cost)."""
    if settings.get("method") not in list_methods():
        return None
    entry = get_method(settings["method"])
    given = settings.get("ig_steps" if entry.budget == "n_steps" else "n_samples")
    return None if entry.budget is None else (given or entry.default_budget)


def _mean(values: list[float | None]) -> float | None:
    kept = [float(v) for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def _cases(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r["hallucination"] for r in records if r.get("hallucination")]


def _row(out: Path) -> dict[str, Any]:
    records = list(load_results(out).values())
    ok = [r for r in records if r["status"] == "ok"]
    config_path = out / CONFIG_FILE
    settings = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    method = settings.get("method", records[0]["method"] if records else None)
    row: dict[str, Any] = {
        "run": out.name,
        "method": method,
        "budget": _budget(settings),
        "samples": len(ok),
        "errors": len(records) - len(ok),
    }
    for key in (
        "insertion_auc",
        "deletion_auc",
        "highest",
        "sensitive_insertion_auc",
        "sensitive_deletion_auc",
        "sensitive_highest",
    ):
        row[key] = _mean([r["metrics"][key] for r in ok])
    row["sensitive_samples"] = sum(r["metrics"]["n_sensitive_tokens"] > 0 for r in ok)
    words = [w for r in ok for w in r["pointing"].values() if w.get("present")]
    for level in ("box", "mask"):
        results = [w[level] for w in words if level in w and w[level]["hit"] is not None]
        row[f"pointing_{level}"] = _mean([float(w["hit"]) for w in results])
        row[f"pointing_{level}_tie_aware"] = _mean([w["tie_aware"] for w in results])
    row["pointing_words"] = len(words)
    qa = [r["qa"] for r in ok if "qa" in r]
    row["qa_accuracy"] = _mean([float(q["correct"]) for q in qa])
    cases = [h["removed_fraction"] if h["corrected"] else None for h in _cases(ok)]
    if cases:
        from captum_eagle.metrics import amcr, csr

        row["amcr"], row["csr_10"] = amcr(cases), csr(cases, threshold=0.10)
    else:
        row["amcr"] = row["csr_10"] = None
    row["hallucination_cases"] = len(cases)
    row["seconds"] = _mean([r["seconds"] for r in ok])
    row["forwards"] = _mean([r["forwards"] for r in ok])
    return row


def merge(out_dirs: Sequence[str | Path], *, write_to: str | Path | None = None) -> dict[str, Any]:
    r"""Aggregate the per-sample results of one or more runs into the paper's tables.

    Each run folder gives one row: means over its successful samples of the sentence-level and
    sensitive-token insertion AUC, deletion AUC and Average Highest Score (samples without a
    sensitive token are left out of the sensitive columns), the pointing game (authors' rule and
    tie-aware) over all (sample, word) pairs whose word is in the answer, at box and mask level,
    the QA accuracy, AMCR / CSR@10% where hallucination results exist, and the mean seconds and
    forwards per explanation.

    Args:
        out_dirs: run folders (``--out`` of :func:`run`).
        write_to: folder for ``tables.json`` and ``tables.md``. Default: the run folder when one
            is given; nothing is written for several.

    Returns:
        dict: ``{"columns": [...], "rows": [{column: value}], "markdown": str}``.

    Examples::

        >>> from captum_eagle.runner import merge
        >>> print(merge(["runs/eagle", "runs/kernel_shap"])["markdown"])  # doctest: +SKIP
    """
    dirs = [Path(d) for d in out_dirs]
    missing = [str(d) for d in dirs if not d.is_dir()]
    if missing:
        raise FileNotFoundError(f"Run folder(s) not found: {missing}")
    rows = [_row(d) for d in dirs]
    tables: dict[str, Any] = {
        "columns": [key for key, _ in COLUMNS],
        "rows": rows,
        "markdown": format_table(rows),
    }
    target = Path(write_to) if write_to is not None else (dirs[0] if len(dirs) == 1 else None)
    if target is not None:
        target.mkdir(parents=True, exist_ok=True)
        data = json.dumps({k: tables[k] for k in ("columns", "rows")}, indent=2).encode()
        atomic_write(target / "tables.json", lambda handle: handle.write(data))
        markdown = tables["markdown"].encode()
        atomic_write(target / "tables.md", lambda handle: handle.write(markdown))
    return tables


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    r"""Markdown table of merged rows (columns with no value in any row are left out).

    Args:
        rows: rows from :func:`merge`.

    Returns:
        str: the table, floats with 3 decimals, ``–`` where a run has no value.
    """
    columns = [(k, h) for k, h in COLUMNS if any(row.get(k) is not None for row in rows)]

    def cell(value: Any) -> str:
        if value is None:
            return "–"
        if isinstance(value, float):
            return f"{value:.3f}"
        return str(value)

    lines = [
        "| " + " | ".join(h for _, h in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    lines += ["| " + " | ".join(cell(row.get(k)) for k, _ in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"
