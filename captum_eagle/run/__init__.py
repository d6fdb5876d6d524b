r"""Dataset-scale runs: explain every sample of a manifest, resumably, sharded over processes.

``captum-eagle run MANIFEST --out DIR`` (or :func:`run`) explains each sample of a JSONL manifest
(:mod:`captum_eagle.datasets`) with Eagle or a baseline of :mod:`captum_eagle.baselines` on the
same wrapper and regions, and scores the map by the paper's protocol (:mod:`captum_eagle.metrics`).
For each finished sample:

- ``DIR/samples/<id>.pt`` is written atomically (a temporary file in the same folder, then
  ``os.replace``): the attribution map, the regions, the order, Eagle's gains and per-token
  trajectories, the insertion / deletion curves, per-word maps. Load it with
  :func:`load_sample`.
- one JSON line is appended (flushed and fsynced) to ``DIR/results-rank<r>.jsonl``: the metrics,
  the pointing game per word, the QA verdict, or the error that stopped the sample. When a sample
  has a yes/no ``answer`` and the model's answer (or the given ``target``) is the other one, the
  hallucination is explained and mitigated (:mod:`captum_eagle.hallucination`: Eagle's
  counterfactual order, or the method's map of the correct answer) and its removed fraction
  recorded, which :func:`merge` turns into AMCR and CSR@10%.

A rerun skips every sample id already recorded by any rank, so a killed run resumes with nothing
lost and nothing duplicated (a half-written last line is cut off). A corrupt manifest line, a
missing image or any failure inside one sample is recorded as an error line and the run goes on;
errors are not retried unless asked (``--retry-errors``).

Sharding uses ``torch.distributed`` as set up by ``torchrun`` or ``accelerate launch`` (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``): rank ``r`` of ``w`` takes the manifest's samples ``i`` with
``i % w == r``; on GPU each process uses ``cuda:LOCAL_RANK`` (round-robin if there are fewer
devices than processes). The processes only synchronise once, at the end (a
gloo barrier), after which rank 0 merges all results files into the tables (:func:`merge`):
``DIR/tables.json`` and ``DIR/tables.md``.

Command line::

    captum-eagle run coco.jsonl --out runs/eagle --model llava-hf/llava-1.5-7b-hf --regions 64
    torchrun --nproc_per_node 8 -m captum_eagle.run coco.jsonl --out runs/eagle --model ...
    captum-eagle run coco.jsonl --out runs/kernel_shap --method kernel_shap --n-samples 500
    captum-eagle run --merge runs/eagle runs/kernel_shap      # one table row per run
    python -m captum_eagle.run coco.jsonl --out runs/eagle   # same as captum-eagle run

Modules: :mod:`~captum_eagle.run.config` (:class:`RunConfig`, checked before any model load),
:mod:`~captum_eagle.run.methods` (the methods, seeded per sample),
:mod:`~captum_eagle.run.pipeline` (one sample), :mod:`~captum_eagle.run.store` (files, resume),
:mod:`~captum_eagle.run.distributed` (ranks, devices), :mod:`~captum_eagle.run.shards`
(:func:`run`), :mod:`~captum_eagle.run.tables` (:func:`merge`). The command line is in
:mod:`captum_eagle.cli`.
"""

from __future__ import annotations

from captum_eagle.run.config import RunConfig, RunnerError
from captum_eagle.run.methods import list_methods, register_method
from captum_eagle.run.shards import RunSummary, run
from captum_eagle.run.store import load_results, load_sample
from captum_eagle.run.tables import format_table, merge

__all__ = [
    "RunConfig",
    "RunSummary",
    "RunnerError",
    "format_table",
    "list_methods",
    "load_results",
    "load_sample",
    "main",
    "merge",
    "register_method",
    "run",
]


def main(argv: list[str] | None = None) -> int:
    r"""The ``captum-eagle run`` command (also ``python -m captum_eagle.run``).

    Args:
        argv: arguments after ``run`` (default: ``sys.argv[1:]``).

    Returns:
        int: 0 when the run finished (per-sample errors are recorded, not fatal); 2 when it
        cannot start (bad options, unwritable ``--out``, missing manifest or model, clashing
        settings), after one line on stderr.
    """
    from captum_eagle.cli import run_command

    return run_command(argv)
