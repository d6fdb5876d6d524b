r"""Benchmark results as data: JSONL with a header line, and README blocks generated from them.

A results file starts with one header object (``{"header": {"command", "machine", "versions",
"date"}}``) followed by one object per row. A README block is the text between
``<!-- report:NAME -->`` and ``<!-- /report:NAME -->``; :func:`write_block` replaces it.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import shlex
import sys
from pathlib import Path
from typing import Any


def header(argv: list[str] | None = None) -> dict[str, Any]:
    """The command, machine and package versions of this run."""
    import captum
    import torch
    import transformers

    command = [Path(sys.argv[0]).name, *(sys.argv[1:] if argv is None else argv)]
    return {
        "command": "python " + shlex.join(["benchmarks/" + command[0], *command[1:]]),
        "machine": {
            "platform": platform.platform(),
            "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "captum": captum.__version__,
        },
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def write_jsonl(path: Path, head: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """Write the header line and the rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"header": head})] + [json.dumps(row) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def read_jsonl(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Return ``(header, rows)`` of a results file written by :func:`write_jsonl`."""
    if not path.is_file():
        raise FileNotFoundError(f"No results at {path}; run the benchmark that writes it first.")
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not records or "header" not in records[0]:
        raise ValueError(f"{path} does not start with a header line; rerun its benchmark.")
    return records[0]["header"], records[1:]


def write_block(path: Path, name: str, text: str) -> None:
    """Replace the text between ``<!-- report:name -->`` and ``<!-- /report:name -->``."""
    start, end = f"<!-- report:{name} -->", f"<!-- /report:{name} -->"
    content = path.read_text()
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(content):
        raise ValueError(f"{path} has no {start} ... {end} block; add the two markers first.")
    path.write_text(pattern.sub(lambda _: f"{start}\n{text.strip()}\n{end}", content, count=1))


def markdown_table(columns: list[str], rows: list[list[object]]) -> str:
    """A markdown table with one header line."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
