r"""Storage of a run: one atomic ``.pt`` file per sample, one fsynced JSON line per sample and
rank, ``run.json`` with the settings; a rerun resumes from what is recorded."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from captum_eagle.attribution import EagleResult
from captum_eagle.run.config import RunnerError

__all__ = [
    "CONFIG_FILE",
    "RESULTS_PATTERN",
    "atomic_write",
    "check_config",
    "check_writable",
    "eagle_record",
    "load_results",
    "load_sample",
    "repair_tail",
    "sample_file_name",
]

RESULTS_PATTERN = "results-rank*.jsonl"
CONFIG_FILE = "run.json"


def eagle_record(result: EagleResult) -> dict[str, Any]:
    r"""How every Eagle result is written (run sample files, ``captum-eagle explain --json``):
    :meth:`EagleResult.to_dict`, the package's one serialiser."""
    return result.to_dict()


def sample_file_name(sample_id: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", sample_id)
    if safe != sample_id or len(safe) > 120 or safe.startswith("."):
        safe = f"{safe[:80]}-{hashlib.sha1(sample_id.encode()).hexdigest()[:10]}"
    return f"{safe}.pt"


def atomic_write(path: Path, write: Callable[[Any], None], prefix: str = ".tmp-") -> None:
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=path.suffix)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_sample(out: str | Path, sample_id: str) -> dict[str, Any]:
    r"""Load the saved explanation of one sample of a run.

    Args:
        out: the run's output folder.
        sample_id (str): the manifest id.

    Returns:
        dict: ``attribution`` ``(1, 1, H, W)``, ``feature_mask``, ``order``, ``answer``,
        ``target_tokens``, ``insertion`` / ``deletion`` curves (``Curve.from_dict``),
        ``word_maps`` ``{word: (1, 1, H, W)}``, ``record`` (the results line) and, for Eagle,
        ``eagle`` (order, objective, gains, trajectories, influence, ...).
    """
    path = Path(out) / "samples" / sample_file_name(sample_id)
    if not path.is_file():
        raise FileNotFoundError(f"No saved sample {sample_id!r} in {out} (looked for {path}).")
    return torch.load(path, weights_only=True)


def repair_tail(path: Path) -> None:
    """Cut a half-written last line (a run killed mid-append) so appends stay line-aligned."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as handle:
            handle.truncate(data.rfind(b"\n") + 1)


def load_results(out: str | Path) -> dict[str, dict[str, Any]]:
    r"""The latest results line of every sample in a run folder (all ranks' files).

    Lines that do not parse (a half-written line of a killed run) are ignored. If an id has several
    lines (``retry_errors``), a successful one wins over errors, and later wins over earlier.

    Args:
        out: the run's output folder.

    Returns:
        dict: ``{sample id: record}`` sorted by manifest line.
    """
    records: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(out).glob(RESULTS_PATTERN)):
        with path.open(encoding="utf-8") as handle:
            for text in handle:
                try:
                    record = json.loads(text)
                except json.JSONDecodeError:
                    continue
                if not isinstance(record, dict) or "id" not in record:
                    continue
                previous = records.get(record["id"])
                if previous is None or record["status"] == "ok" or previous["status"] != "ok":
                    records[record["id"]] = record
    return dict(sorted(records.items(), key=lambda item: (item[1].get("line", 0), item[0])))


def check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "samples").mkdir(exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out / "samples", prefix=".write-test-"):
            pass
    except OSError as error:
        raise RunnerError(
            f"The output folder {out} is not writable ({error.strerror or error}); pass a folder "
            "you can write to with --out."
        ) from error


def check_config(out: Path, settings: dict[str, Any], rank: int) -> None:
    path = out / CONFIG_FILE
    if not path.is_file() and any(out.glob(RESULTS_PATTERN)):
        raise RunnerError(
            f"{out} holds results but no {CONFIG_FILE}, so its settings are unknown; pass a new "
            "--out (or restore the run's run.json to resume it)."
        )
    if path.is_file():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            saved = None
        if not isinstance(saved, dict):
            raise RunnerError(
                f"{path} is not a settings file of a run (corrupt or edited); pass a new --out."
            )
        changed = {
            key: (saved.get(key), value)
            for key, value in settings.items()
            if saved.get(key) != value
        }
        if changed:
            described = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
            raise RunnerError(
                f"{out} holds a run with other settings ({described}); resume it with the same "
                "settings or pass a new --out."
            )
    elif rank == 0:
        text = json.dumps(settings, indent=2).encode()
        atomic_write(path, lambda handle: handle.write(text))
