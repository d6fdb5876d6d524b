r"""Hallucination benchmark: explain and mitigate false "yes" answers of the bundled shapes model.

Cases: partial-match scenes (``generate_scene(seed, kind="partial_match")``) whose first question
asks about an ABSENT object sharing its colour or shape with a scene object, and that the shapes
model answers "yes". An oracle pass removes each scene object's mask alone (set to black) and
regenerates: the objects whose removal alone flips the answer to "no" are the causal distractors.
Scenes with no such object (the hallucination has no single-object cause) are counted and skipped.

For every case, region count and method, the regions are ordered hallucination-prone first and
removed cumulatively until the regenerated answer is "no"
(:func:`captum_eagle.hallucination.mitigate`). Every method explains the same target: the first
token of the correct answer "no" (teacher-forced probability, baseline black), so the
hallucination-prone end of every map is its low end. Reported per region count and method:

- AMCR (mean image area fraction removed at the flip, never corrected = 1.0; lower is better),
- CSR@10% (share of ALL cases corrected with at most 10% of the area removed),
- cause@1: share of cases whose first removed region lies on a causal distractor (at least 25% of
  the region's pixels are pixels of an oracle-causal object),
- insertion / deletion AUC of the map on the counterfactual token (``captum_eagle.metrics``, one
  step per region),
- attribution forwards and seconds per case.

Methods: ``eagle`` (remove from the end of the Eagle order ``π``), ``eagle-gain`` (same
explanation, most negative marginal gain first), Captum's FeatureAblation, KernelShap, Lime and
IntegratedGradients (regions ordered by their mean attribution, lowest first; run through
:func:`captum_eagle.baselines.attribute` with the explicit budgets ``--samples`` and ``--ig-steps``,
recorded in the table's budget column) and ``random``.

Scenes are held out from training: run ``--seed s`` scans partial-match seeds from
``10**6 + 10**5 s + 50,000`` (:func:`first_seed`). One JSON line per (case, region count, method)
goes to ``--out`` (default ``benchmarks/results/hallucination/s<seed>.jsonl``) after a header
(:mod:`benchmarks.results`); ``benchmarks/report.py`` makes the README table from the files.

Run::

    python benchmarks/hallucination.py --cases 24 --regions 16 32 --seed 0 --max-minutes 20
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `benchmarks.*` importable
    sys.path.insert(0, str(ROOT))

from benchmarks.faithfulness import auc_scores  # noqa: E402
from benchmarks.report import hallucination_table  # noqa: E402
from benchmarks.results import (  # noqa: E402
    RESULTS,
    header,
    read_results,
    results_file,
    torch_threads,
    write_record,
)
from captum_eagle import FeatureMask, MLLMForwardWrapper  # noqa: E402
from captum_eagle.baselines import ForwardCounter, attribute  # noqa: E402
from captum_eagle.hallucination import (  # noqa: E402
    HallucinationCase,
    HallucinationResult,
    answer_word,
    explain_hallucination,
    mitigate,
    prepare_case,
)
from captum_eagle.zoo import generate_scene, load_default_model, question_prompt  # noqa: E402
from captum_eagle.zoo.evaluate import EVAL_SEED  # noqa: E402

METHODS = (
    "eagle",
    "eagle-gain",
    "feature_ablation",
    "kernel_shap",
    "lime",
    "integrated_gradients",
    "random",
)
CAUSE_OVERLAP = 0.25
SCENE_OFFSET = 50_000
"""Hallucination scenes start this far after a run's first held-out seed (the faithfulness and
frontier scenes of the same run seed use the seeds just after it)."""


@dataclass
class Case:
    seed: int
    question: str
    case: HallucinationCase
    cause_objects: list[int]
    candidate_causes: list[int]
    cause_mask: torch.Tensor  # (H, W) bool, union of the oracle-causal objects


def collect_cases(
    wrapper: MLLMForwardWrapper, n_cases: int, seed: int, scan_limit: int
) -> tuple[list[Case], dict[str, int]]:
    """Scan partial-match seeds for false "yes" answers with an oracle-causal object."""
    cases: list[Case] = []
    stats = {"scanned": 0, "false_yes": 0, "no_single_cause": 0, "cause_outside_candidates": 0}
    for scene_seed in range(seed, seed + scan_limit):
        if len(cases) == n_cases:
            break
        scene = generate_scene(scene_seed, kind="partial_match")
        question = scene.questions[0]
        stats["scanned"] += 1
        prompt = question_prompt(question)
        probe = wrapper.prepare(scene.image, prompt, "no")
        answer = wrapper.generate(probe.image, probe, max_new_tokens=4)[0]
        if answer_word(answer) != "yes":
            continue
        stats["false_yes"] += 1
        masks = torch.stack(
            [wrapper.resize_labels(obj.mask.astype("int64")) > 0 for obj in scene.objects]
        )
        removed = torch.where(masks[:, None], torch.zeros(()), probe.image)
        answers = wrapper.generate(removed, probe, max_new_tokens=4)
        causes = [i for i, text in enumerate(answers) if answer_word(text) == "no"]
        if not causes:
            stats["no_single_cause"] += 1
            continue
        if not set(causes) <= set(question.candidate_causes):
            stats["cause_outside_candidates"] += 1
        case = prepare_case(wrapper, scene.image, prompt, answer=answer, correct=question.answer)
        cases.append(
            Case(scene_seed, prompt, case, causes, question.candidate_causes, masks[causes].any(0))
        )
    return cases, stats


def budgets(args: argparse.Namespace) -> dict[str, int]:
    """The explicit budget of each registry method this benchmark runs (``--samples``,
    ``--ig-steps``); the table's budget column."""
    return {
        "kernel_shap": args.samples,
        "lime": args.samples,
        "integrated_gradients": args.ig_steps,
    }


def captum_map(
    name: str, wrapper: MLLMForwardWrapper, case: HallucinationCase, mask: FeatureMask, args
) -> tuple[torch.Tensor, int]:
    """A registry method's map of the correct first token (region methods on the same regions),
    channels summed, and the forwards it cost."""
    with ForwardCounter(wrapper) as counter:
        attribution = attribute(name, wrapper, case.sample, mask, budget=budgets(args).get(name))
    return attribution.detach().float().cpu().sum(dim=1, keepdim=True), counter.images


def on_cause(result: HallucinationResult, cause_mask: torch.Tensor) -> bool:
    r"""Whether the first removed region lies on a causal distractor (>= 25% of its pixels)."""
    region = result.feature_mask[0, 0] == result.removal_order[0]
    overlap = (region & cause_mask).sum().item() / region.sum().item()
    return overlap >= CAUSE_OVERLAP


_on_cause = on_cause  # the old name, still imported by benchmarks/redundant.py


def case_records(
    wrapper: MLLMForwardWrapper,
    item: Case,
    n_segments: int,
    methods: list[str],
    args: argparse.Namespace,
) -> Iterator[dict[str, Any]]:
    r"""Explain and mitigate one case with every method at one region count; a record each."""
    case = item.case
    mask = FeatureMask.slico(case.image, n_segments=n_segments)
    explanation = None
    curves: dict[str, dict[str, float]] = {}
    for name in methods:
        started = time.perf_counter()
        if name in ("eagle", "eagle-gain"):
            result = explain_hallucination(
                wrapper,
                case,
                mask,
                rule="order" if name == "eagle" else "gain",
                generate_batch_size=args.generate_batch,
                explanation=explanation,
            )
            fresh = explanation is None
            explanation = result.explanation
            attribution = explanation.attribution_map().float()
            forwards = explanation.forwards if fresh else 0
        else:
            if name == "random":
                generator = torch.Generator().manual_seed(
                    args.seed * 1_000_003 + item.seed * 101 + n_segments
                )
                attribution = torch.rand(mask.n_regions, generator=generator)[mask.mask]
                forwards = 0
            else:
                attribution, forwards = captum_map(name, wrapper, case, mask, args)
            result = mitigate(
                wrapper,
                case,
                mask,
                attribution=attribution,
                hallucination_end="low",
                generate_batch_size=args.generate_batch,
                method=name,
            )
        seconds = time.perf_counter() - started
        key = "eagle" if name.startswith("eagle") else name  # both Eagle rules: one map
        if key not in curves:
            curves[key] = auc_scores(wrapper, case.sample, attribution, mask)
        yield {
            "type": "hallucination",
            "scene": item.seed,
            "regions": n_segments,
            "actual_regions": mask.n_regions,
            "method": name,
            "budget": budgets(args).get(name),
            "forwards": forwards,
            "seconds": seconds,
            "area_removed": result.area_removed if result.corrected else None,
            "regions_removed": result.fraction_removed if result.corrected else None,
            "on_cause": on_cause(result, item.cause_mask),
            **curves[key],
        }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100, help="hallucination cases to collect")
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="run seed: scenes from 10**6 + 10**5 seed + 50,000 (held out), random order",
    )
    parser.add_argument("--scan-limit", type=int, default=5000, help="most scene seeds to scan")
    parser.add_argument(
        "--regions", type=int, nargs="+", default=[32, 16, 64], help="SLICO region counts, in order"
    )
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--samples", type=int, default=128, help="KernelShap / Lime samples")
    parser.add_argument("--ig-steps", type=int, default=32, help="IntegratedGradients steps")
    parser.add_argument("--batch-size", type=int, default=64, help="images per forward")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument(
        "--generate-batch", type=int, default=8, help="removal images per regeneration batch"
    )
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="stop starting new cases after this many minutes (partial counts are reported)",
    )
    parser.add_argument("--weights", default=None, help="shapes model folder (default: bundled)")
    parser.add_argument(
        "--out", type=Path, help="JSONL file (default: results/hallucination/s<seed>)"
    )
    return parser


def first_seed(seed: int) -> int:
    r"""The first partial-match scene seed scanned by run ``seed``: held out from training
    (``10**6 + 10**5 seed``, as every benchmark) plus :data:`SCENE_OFFSET`."""
    return EVAL_SEED + 100_000 * seed + SCENE_OFFSET


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with torch_threads(args.threads):
        out = run(args)
    _, records = read_results([out])
    print(f"\n{hallucination_table(records)}\n\nwrote {out}")
    return 0


def run(args: argparse.Namespace) -> Path:
    r"""Collect the cases, explain and mitigate them; return the JSONL file written."""
    started = time.perf_counter()
    torch.manual_seed(args.seed)
    wrapper = MLLMForwardWrapper(*load_default_model(path=args.weights), batch_size=args.batch_size)
    out = args.out or RESULTS / "hallucination" / f"s{args.seed}.jsonl"
    model = "shapes" if args.weights is None else str(args.weights)
    cases, stats = collect_cases(wrapper, args.cases, first_seed(args.seed), args.scan_limit)
    print(
        f"cases: {len(cases)} false-yes cases with an oracle-causal object, from "
        f"{stats['scanned']} partial-match scenes ({stats['false_yes']} false 'yes'; "
        f"{stats['no_single_cause']} without a single-object cause, skipped; "
        f"{stats['cause_outside_candidates']} with a cause outside candidate_causes); "
        f"{time.perf_counter() - started:.0f} s",
        flush=True,
    )
    budget = None if args.max_minutes is None else args.max_minutes * 60
    with results_file(out, header("hallucination", model, vars(args))) as file:
        write_record(file, {"type": "hallucination_scan", **stats, "cases": len(cases)})
        for n_segments in args.regions:
            for index, item in enumerate(cases):
                if budget is not None and time.perf_counter() - started > budget:
                    print(f"time budget reached at {n_segments} regions after {index} cases")
                    break
                for record in case_records(wrapper, item, n_segments, args.methods, args):
                    write_record(file, record)
                print(
                    f"[{n_segments} regions] case {index + 1}/{len(cases)} (seed {item.seed}) "
                    f"{time.perf_counter() - started:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
    return out


if __name__ == "__main__":
    raise SystemExit(main())
