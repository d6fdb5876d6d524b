r"""A dataset run: explain every sample of a manifest, resumably, sharded over processes.

See :mod:`captum_eagle.run` for the files a run writes and how it resumes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from captum_eagle.datasets import ManifestLine, read_manifest
from captum_eagle.run.config import RunConfig
from captum_eagle.run.distributed import device, distributed_context
from captum_eagle.run.pipeline import process
from captum_eagle.run.store import (
    atomic_write,
    check_config,
    check_writable,
    load_results,
    repair_tail,
    sample_file_name,
)
from captum_eagle.run.tables import merge
from captum_eagle.wrapper import MLLMForwardWrapper

__all__ = ["ModelSpec", "RunSummary", "load_wrapper", "loading_progress", "run"]

ModelSpec = str | MLLMForwardWrapper | Callable[[], Any]


def model_name(model: ModelSpec) -> str:
    if isinstance(model, str):
        return model
    if isinstance(model, MLLMForwardWrapper):
        return str(getattr(model.model.config, "_name_or_path", "") or type(model.model).__name__)
    return getattr(model, "__qualname__", type(model).__name__)


@contextmanager
def loading_progress(show: bool) -> Iterator[None]:
    r"""Show transformers' weight-loading progress bar inside the block only if ``show``; the
    previous setting is restored afterwards."""
    from transformers.utils import logging as transformers_logging

    enabled = transformers_logging.is_progress_bar_enabled()
    if show:
        transformers_logging.enable_progress_bar()
    else:
        transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            transformers_logging.enable_progress_bar()
        else:
            transformers_logging.disable_progress_bar()


def load_wrapper(
    model: ModelSpec, device: torch.device, config: RunConfig, *, show_progress: bool = True
) -> MLLMForwardWrapper:
    r"""The wrapper of a run's model (see :func:`run`'s ``model``), at ``config.batch_size``;
    the weights-loading bar shows only with ``show_progress``."""
    with loading_progress(show_progress):
        if isinstance(model, MLLMForwardWrapper):
            wrapper = model
        elif callable(model):
            built = model()
            wrapper = built if isinstance(built, MLLMForwardWrapper) else MLLMForwardWrapper(*built)
        elif model == "default":
            from captum_eagle.zoo import load_default_model

            wrapper = MLLMForwardWrapper(*load_default_model(device=device))
        else:
            wrapper = MLLMForwardWrapper.from_pretrained(
                model, device=device, local_files_only=True
            )
    if isinstance(config.batch_size, int):
        wrapper.batch_size = config.batch_size
    return wrapper


# -- the run -----------------------------------------------------------------------------------
@dataclass
class RunSummary:
    r"""What one process did in a call of :func:`run`.

    Attributes:
        rank (int), world_size (int): this process's shard.
        assigned (int): manifest lines in this shard.
        skipped (int): of them, already recorded before this call.
        finished (int): samples explained in this call.
        errors (int): samples (or lines) recorded as errors in this call.
        remaining (int): samples of the shard still to do (after ``max_samples``).
        tables (dict, optional): the merged tables, on the process that merged (rank 0).
    """

    rank: int
    world_size: int
    assigned: int
    skipped: int
    finished: int
    errors: int
    remaining: int
    tables: dict[str, Any] | None = None


def run(
    manifest: str | Path,
    out: str | Path,
    *,
    model: ModelSpec = "default",
    config: RunConfig | None = None,
    max_samples: int | None = None,
    retry_errors: bool = False,
    show_progress: bool = True,
    rank: int | None = None,
    world_size: int | None = None,
) -> RunSummary:
    r"""Explain every sample of a manifest; resumable and shardable (see the module docstring).

    Args:
        manifest: the JSONL manifest (:mod:`captum_eagle.datasets`).
        out: the output folder (created). A rerun into the same folder resumes.
        model: ``"default"`` (the bundled shapes model), a Hugging Face id or local path (loaded
            with ``local_files_only=True``), an :class:`MLLMForwardWrapper`, or a callable
            returning one or a ``(model, processor)`` pair.
        config (RunConfig): method, regions, budgets. Default: ``RunConfig()`` (Eagle, 64 regions).
        max_samples (int, optional): explain at most this many samples in this call (per process),
            then stop; a later call continues.
        retry_errors (bool): explain again samples recorded as errors. Default: False.
        show_progress (bool): tqdm bar with ETA on stderr. Default: True.
        rank, world_size (int, optional): this process's shard. Default: from ``torchrun``'s
            environment (``torch.distributed`` is initialised with gloo), else ``0`` of ``1``.

    Returns:
        RunSummary: counts for this process; ``tables`` on the process that merged.

    Raises:
        RunnerError: if ``out`` is not writable or holds a run with other settings.
        FileNotFoundError: if the manifest does not exist.
        TypeError / ValueError: ``config`` is not a :class:`RunConfig`, ``max_samples`` is not
            a positive int.

    Examples::

        >>> from captum_eagle.run import RunConfig, run
        >>> config = RunConfig(regions=32)
        >>> summary = run("coco.jsonl", "runs/eagle", config=config)  # doctest: +SKIP
        >>> summary.tables["rows"][0]["insertion_auc"]  # doctest: +SKIP
    """
    import torch.distributed as dist

    config = RunConfig() if config is None else config
    if not isinstance(config, RunConfig):
        raise TypeError(f"config must be a RunConfig; got {type(config).__name__}.")
    if max_samples is not None and (
        isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 1
    ):
        raise ValueError(f"max_samples must be a positive int or None; got {max_samples!r}.")
    manifest, out = Path(manifest), Path(out)
    lines = read_manifest(manifest)
    check_writable(out)
    rank, world_size, initialised = distributed_context(rank, world_size)
    try:
        settings = {
            **asdict(config),
            "model": model_name(model),
            "manifest": str(manifest.resolve()),
        }
        check_config(out, settings, rank)
        summary = _run_shard(
            lines, manifest.parent.resolve(), out, model, config, rank, world_size,
            max_samples=max_samples, retry_errors=retry_errors, show_progress=show_progress,
        )  # fmt: skip
        if dist.is_available() and dist.is_initialized() and world_size > 1:
            dist.barrier()
        if rank == 0:
            summary.tables = merge([out])
    finally:
        if initialised:
            dist.destroy_process_group()
    return summary


def _run_shard(
    lines: list[ManifestLine],
    root: Path,
    out: Path,
    model: ModelSpec,
    config: RunConfig,
    rank: int,
    world_size: int,
    *,
    max_samples: int | None,
    retry_errors: bool,
    show_progress: bool,
) -> RunSummary:
    results_path = out / f"results-rank{rank}.jsonl"
    repair_tail(results_path)
    temporary_prefix = f".tmp-rank{rank}-"
    for stale in (out / "samples").glob(f"{temporary_prefix}*"):  # left by a killed run
        stale.unlink()
    recorded = load_results(out)
    done = {i for i, r in recorded.items() if r["status"] == "ok" or not retry_errors}
    shard = [line for line in lines if line.index % world_size == rank]
    pending = [line for line in shard if line.id not in done]
    todo = pending if max_samples is None else pending[:max_samples]
    summary = RunSummary(
        rank=rank,
        world_size=world_size,
        assigned=len(shard),
        skipped=len(shard) - len(pending),
        finished=0,
        errors=0,
        remaining=len(pending) - len(todo),
    )
    if not todo:
        return summary
    wrapper = (
        load_wrapper(model, device(), config, show_progress=show_progress)
        if any(line.entry for line in todo)
        else None
    )
    samples_dir = out / "samples"
    bar = tqdm(
        total=len(todo),
        desc=f"{config.method} [rank {rank}/{world_size}]",
        unit="sample",
        position=rank if world_size > 1 else None,
        disable=not show_progress,
    )
    with results_path.open("a", encoding="utf-8") as results, bar:
        for line in todo:
            base = {"id": line.id, "line": line.number, "rank": rank, "method": config.method}
            if line.entry is None:
                record = {**base, "status": "error", "error": f"manifest line: {line.error}"}
            else:
                assert wrapper is not None  # loaded whenever a line of the shard has an entry
                try:
                    values, content = process(wrapper, line.entry, root, config)
                except Exception as error:  # one bad sample must not stop a dataset run
                    record = {
                        **base,
                        "status": "error",
                        "error": f"{type(error).__name__}: {error}",
                    }
                else:
                    file = samples_dir / sample_file_name(line.id)
                    atomic_write(file, partial(torch.save, content), temporary_prefix)
                    record = {
                        **base,
                        "status": "ok",
                        **values,
                        "file": f"samples/{file.name}",
                        "meta": line.entry.meta,
                    }
            results.write(json.dumps(record, ensure_ascii=False) + "\n")
            results.flush()
            os.fsync(results.fileno())
            if record["status"] == "ok":
                summary.finished += 1
            else:
                summary.errors += 1
                bar.write(f"[rank {rank}] {line.id} (line {line.number}): {record['error']}")
            bar.update()
            bar.set_postfix(errors=summary.errors)
    return summary
