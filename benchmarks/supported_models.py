r"""The README's "Supported models" table, from an actual run of the conformance kit.

For every tiny family of :mod:`captum_eagle.testing` this runs ``tests/test_conformance.py``
(pytest, one process per family) and records, per family: the model class, whether a torch
adapter or the generic processor path serves it, whether gradient methods run on it, the
checkpoints it stands for, and the conformance result (tests passed / failed). The rows go to
``benchmarks/results/supported_models/conformance.jsonl`` after a header
(:mod:`benchmarks.results`), and ``python benchmarks/report.py --write`` makes the README's table
from them.

Usage::

    python benchmarks/supported_models.py && python benchmarks/report.py --write
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `benchmarks.*` importable
    sys.path.insert(0, str(ROOT))

from benchmarks.results import (  # noqa: E402
    RESULTS,
    header,
    markdown_table,
    results_file,
    write_record,
)
from captum_eagle.testing import TINY_MODELS, list_tiny_models, tiny_model_path  # noqa: E402

CONFORMANCE = RESULTS / "supported_models" / "conformance.jsonl"
KIT = "tests/test_conformance.py"


def run_kit(family: str) -> dict[str, object]:
    """Run the conformance kit on one family: ``{"passed", "failed", "seconds"}``."""
    started = time.perf_counter()
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            KIT,
            "-k",
            f"{family}- or {family}]",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    summary = completed.stdout.strip().splitlines()[-1] if completed.stdout.strip() else ""
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|error)", summary)}
    return {
        "passed": counts.get("passed", 0),
        "failed": counts.get("failed", 0) + counts.get("error", 0),
        "seconds": round(time.perf_counter() - started, 1),
    }


def family_row(family: str, conformance: dict[str, object]) -> dict[str, object]:
    """One table row: what serves the family and how its conformance run went."""
    spec = TINY_MODELS.get(family)
    path = tiny_model_path(family)
    return {
        "type": "family",
        "family": family,
        "model_class": spec.model_class,
        "path": "generic" if path == "generic" else f"adapter ({path}) + generic",
        "gradients": path != "generic",
        "checkpoints": list(spec.checkpoints),
        "conformance": conformance,
    }


def table(rows: list[dict[str, object]]) -> str:
    """The rows as a markdown table."""
    columns = ["model class", "path", "gradient methods"]
    columns += ["conformance kit (tiny random config)", "checkpoints it serves"]
    cells = []
    for row in rows:
        result = row["conformance"]
        verdict = "pass" if result["failed"] == 0 and result["passed"] > 0 else "FAIL"
        cells.append(
            [
                f"`{row['model_class']}`",
                row["path"],
                "yes" if row["gradients"] else "no",
                f"{verdict} ({result['passed']} passed, {result['failed']} failed)",
                ", ".join(f"`{c}`" for c in row["checkpoints"]),
            ]
        )
    return markdown_table(columns, cells)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", nargs="+", default=None, help="default: every tiny family")
    parser.add_argument("--out", type=Path, default=CONFORMANCE, help="results file")
    args = parser.parse_args(argv)
    rows = []
    with results_file(args.out, header("supported_models", "tiny", vars(args), argv)) as file:
        for name in args.families or list_tiny_models():  # written per family: a cut run keeps
            rows.append(family_row(name, run_kit(name)))
            write_record(file, rows[-1])
    print(table(rows))


if __name__ == "__main__":
    main()
