r"""Benchmark results as data: JSONL files with a header record, and paired statistics.

Every benchmark writes one JSON object per line: first a header (``{"type": "header", ...}``:
the command line, the machine, package versions, the bundled weights' sha256, the date and the
run's configuration), then one record per explanation, appended as it is computed so that an
interrupted run keeps its numbers. :func:`read_results` pools several files (parallel runs with
different ``--seed``) and refuses files made with different weights.

Statistics: paired differences (Eagle − method on the same explanations) with bootstrap
percentile intervals, corrected for multiple comparisons by Holm's step-down procedure
(:func:`paired_comparisons`). A comparison's verdict is ``"better"`` / ``"worse"`` when its
Holm-adjusted interval excludes 0 in Eagle's favour / against it, else ``"tie"``.

Examples::

    >>> comparisons = paired_comparisons(
    ...     {"a": [0.2, 0.3, 0.25, 0.28, 0.22, 0.3], "b": [0.01, -0.02, 0.0, 0.02, -0.01, 0.0]}
    ... )
    >>> comparisons["a"].verdict, comparisons["b"].verdict
    ('better', 'tie')
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import shlex
import sys
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, TextIO

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PACKAGES = ("captum-eagle", "torch", "transformers", "captum", "scikit-learn", "scikit-image")
ALPHA = 0.05
RESAMPLES = 10_000
MIN_PAIRS = 6
"""Fewer paired explanations get no verdict: below 6 pairs even differences that all share one
sign are not significant by an exact sign test (2 / 2**5 > 0.05), while the bootstrap, which
cannot resample beyond the few values it has, would call them significant."""
TOO_FEW = f"n<{MIN_PAIRS}"
DIGITS = 5
"""Floats are rounded to this many decimals in the files (they are means of probabilities)."""


def machine() -> dict[str, Any]:
    r"""Where the numbers were measured: platform, processor, cores, torch threads, Python, and the
    1-minute load average when the run started (other jobs on the same cores slow it)."""
    import torch

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "cuda": torch.cuda.is_available(),
        "load_1min": round(os.getloadavg()[0], 2),
    }


def versions() -> dict[str, str]:
    r"""Versions of the packages the numbers depend on."""
    return {name: version(name) for name in PACKAGES}


def weights_info(model: str) -> dict[str, Any]:
    r"""Which model was benchmarked: for ``"shapes"`` the bundled weights' sha256 and the
    training script's summary; otherwise just the name (e.g. ``"tiny"``, random weights)."""
    if model != "shapes":
        return {"model": model}
    from captum_eagle.zoo import WEIGHTS_DIR

    weights = (WEIGHTS_DIR / "model.safetensors").read_bytes()
    info: dict[str, Any] = {"model": model, "weights_sha256": hashlib.sha256(weights).hexdigest()}
    training = WEIGHTS_DIR / "training_info.json"
    if training.is_file():
        info["training_info"] = json.loads(training.read_text())
    return info


def header(
    benchmark: str, model: str, config: Mapping[str, Any], argv: Sequence[str] | None = None
) -> dict[str, Any]:
    r"""The first record of a results file.

    Args:
        benchmark (str): the benchmark's name (its folder under ``benchmarks/results/``).
        model (str): ``"shapes"`` (the bundled weights, hashed) or another model name.
        config (mapping): the run's settings (e.g. ``vars(args)``); values that are not JSON
            types are stored as text.
        argv (sequence of str, optional): the arguments the script's ``main(argv)`` was given,
            for the command line. Default: ``sys.argv[1:]``.

    Returns:
        dict: ``type``, ``benchmark``, ``command``, ``date``, ``machine``, ``versions``,
        ``weights`` and ``config``.
    """
    return {
        "type": "header",
        "benchmark": benchmark,
        "command": "python " + shlex.join([_script(), *(sys.argv[1:] if argv is None else argv)]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "versions": versions(),
        "weights": weights_info(model),
        "config": {key: _plain(value) for key, value in config.items()},
    }


def _script() -> str:
    path = Path(sys.argv[0]).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else sys.argv[0]


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return str(value)


def rounded(value: Any, digits: int = DIGITS) -> Any:
    r"""``value`` with every float rounded to ``digits`` decimals (NaN becomes ``None``).

    Examples::

        >>> rounded({"auc": 0.123456789, "hits": [1, float("nan")]})
        {'auc': 0.12346, 'hits': [1, None]}
    """
    if isinstance(value, float | np.floating):
        return None if np.isnan(value) else round(float(value), digits)
    if isinstance(value, dict):
        return {key: rounded(item, digits) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(item, digits) for item in value]
    if isinstance(value, np.integer):
        return int(value)
    return value


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    r"""Run the block with ``threads`` torch CPU threads, restoring the previous count after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def results_file(path: Path, first: Mapping[str, Any]) -> Iterator[TextIO]:
    r"""Open ``path`` for writing, write the header ``first``; :func:`write_record` appends.

    Examples::

        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "run.jsonl"
        >>> with results_file(path, {"type": "header", "config": {"seed": 0}}) as file:
        ...     write_record(file, {"type": "explanation", "auc": 0.5})
        >>> headers, records = read_results([path])
        >>> records
        [{'type': 'explanation', 'auc': 0.5}]
    """
    if first.get("type") != "header":
        raise ValueError("The first record of a results file must have type 'header'.")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as file:
        write_record(file, first)
        yield file


def write_record(file: TextIO, record: Mapping[str, Any]) -> None:
    r"""Append one record (floats rounded, see :func:`rounded`) and flush."""
    file.write(json.dumps(rounded(dict(record))) + "\n")
    file.flush()


def read_results(paths: Sequence[Path]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    r"""Headers and records of saved runs, pooled.

    Raises:
        FileNotFoundError: a path does not exist.
        ValueError: a file does not start with a header, the files were made with different
            weights, or two files share a ``seed`` and a method (the same explanations counted
            twice; files of one seed with different methods pool, e.g. a method added later).
    """
    headers, records = [], []
    seen: dict[Any, list[tuple[Path, set[str]]]] = defaultdict(list)
    for path in map(Path, paths):
        if not path.is_file():
            raise FileNotFoundError(f"No results file {path}; run the benchmark first.")
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if not lines or lines[0].get("type") != "header":
            raise ValueError(f"{path} does not start with a header record; is it a results file?")
        headers.append(lines[0])
        records.extend(lines[1:])
        seed = lines[0].get("config", {}).get("seed")
        methods = {str(r["method"]) for r in lines[1:] if "method" in r}
        for other, theirs in seen[seed]:
            if not methods or not theirs or methods & theirs:
                raise ValueError(
                    f"{other} and {path} share --seed {seed} and a method (or hold none): files "
                    "to pool must come from different --seed values or hold different methods."
                )
        seen[seed].append((path, methods))
    hashes = {h.get("weights", {}).get("weights_sha256") for h in headers}
    if len(hashes) > 1:
        raise ValueError("The files were made with different weights; report them separately.")
    return headers, records


# -- statistics --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Comparison:
    r"""One paired comparison, Eagle − method, after Holm's correction.

    Attributes:
        n (int): paired explanations.
        mean (float): mean difference (Eagle − method).
        low (float), high (float): bootstrap percentile interval at the comparison's Holm level.
        level (float): that interval's coverage (``1 − α / (m − k + 1)`` for the ``k``-th
            smallest p-value of ``m`` comparisons; ``1 − α`` for a single comparison).
        p_adjusted (float): Holm-adjusted two-sided bootstrap p-value.
        verdict (str): ``"better"``, ``"tie"`` or ``"worse"`` for Eagle (``lower_is_better``
            flips the sign), or ``"n<6"`` (:data:`TOO_FEW`) below :data:`MIN_PAIRS` pairs.
    """

    n: int
    mean: float
    low: float
    high: float
    level: float
    p_adjusted: float
    verdict: str

    def cell(self, digits: int = 3) -> str:
        r"""``"+0.012 [−0.004, +0.030]"``: the mean difference and its interval (``"n = 2"``
        instead of an interval below :data:`MIN_PAIRS` pairs)."""
        if self.n == 0:
            return "—"
        if self.n < MIN_PAIRS:
            return f"{self.mean:+.{digits}f} (n = {self.n})"
        return f"{self.mean:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"


def _bootstrap_means(differences: Sequence[float], resamples: int, seed: int) -> np.ndarray:
    values = np.asarray(differences, dtype=float)
    rng = np.random.default_rng(seed)
    return values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)


def _p_value(means: np.ndarray) -> float:
    below, above = (means <= 0).sum(), (means >= 0).sum()
    return min(1.0, 2 * (min(below, above) + 1) / (means.size + 1))


def holm(p_values: Sequence[float]) -> list[float]:
    r"""Holm's step-down adjusted p-values (same order as given).

    Examples::

        >>> [round(p, 3) for p in holm([0.01, 0.04, 0.03])]
        [0.03, 0.06, 0.06]
    """
    m = len(p_values)
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def paired_comparisons(
    differences: Mapping[Any, Sequence[float]],
    lower_is_better: Mapping[Any, bool] | None = None,
    *,
    alpha: float = ALPHA,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> dict[Any, Comparison]:
    r"""Bootstrap paired comparisons of one family, Holm-corrected together.

    Args:
        differences (mapping): ``{key: [Eagle − method per paired explanation]}``; every key is
            one comparison of the family (e.g. one table).
        lower_is_better (mapping, optional): ``{key: True}`` where a lower value is better for
            Eagle (deletion AUC, AMCR). Default: higher is better everywhere.
        alpha (float): family-wise error rate. Default: 0.05.
        resamples (int): bootstrap resamples. Default: 10,000.
        seed (int): seed of the resampling. Default: 0.

    Returns:
        dict: ``{key: Comparison}``. Comparisons with fewer than 3 pairs get the verdict
        :data:`TOO_FEW` and take no part in the correction.
    """
    means, p_values, keys = {}, [], []
    for key, values in differences.items():
        if len(values) >= MIN_PAIRS:
            means[key] = _bootstrap_means(values, resamples, seed)
            keys.append(key)
            p_values.append(_p_value(means[key]))
    adjusted = dict(zip(keys, holm(p_values), strict=True))
    ranks = {key: rank for rank, key in enumerate(sorted(keys, key=adjusted.__getitem__))}
    results = {}
    for key, values in differences.items():
        mean = float(np.mean(values)) if len(values) else float("nan")
        if key not in means:
            results[key] = Comparison(len(values), mean, mean, mean, 0.0, 1.0, TOO_FEW)
            continue
        level = 1 - alpha / (len(keys) - ranks[key])
        low, high = np.quantile(means[key], [(1 - level) / 2, (1 + level) / 2])
        better = -1 if (lower_is_better or {}).get(key, False) else 1
        verdict = "tie"
        if adjusted[key] < alpha:
            verdict = "better" if better * mean > 0 else "worse"
        results[key] = Comparison(
            len(values), mean, float(low), float(high), level, adjusted[key], verdict
        )
    return results


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    r"""A markdown table with one header line.

    Examples::

        >>> print(markdown_table(["N", "seconds"], [[16, 0.5]]))
        | N | seconds |
        |---|---|
        | 16 | 0.5 |
    """
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
