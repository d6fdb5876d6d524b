r"""Quality against model forwards: Eagle's search strategies and Captum's methods on one axis.

The headline benchmark. On held-out scenes of the bundled shapes model (``captum_eagle.zoo``; seeds
``10**6 + 10**5 s + i``, disjoint from the training seeds, as in ``benchmarks/faithfulness.py``)
of every kind (plain, redundant, partial_match, crowded), one grounded colour / shape word of the
model's own caption per scene is explained over SLICO partitions of N = 16, 32 (and 64) regions by:

- Eagle with every search strategy of :func:`captum_eagle.search.list_searches` (``eagle:exact``
  is the paper's Algorithm 1, ``N (N + 1)`` forwards plus the trajectories);
- KernelShap, Lime and ShapleyValueSampling (:mod:`captum_eagle.baselines`) at budgets of 2N, 4N,
  8N, … forwards and at exact Eagle's ``N (N + 1)`` (Shapley: ``budget // N`` permutations);
- FeatureAblation, IntegratedGradients (50 steps), Grad-CAM (``benchmarks/baselines.py``) and
  random as single points.

Each map is scored by :mod:`captum_eagle.metrics` (as ``benchmarks/faithfulness.py`` does):
insertion AUC ↑, deletion AUC ↓ (K = N equal-area steps), pointing game at mask level against the
objects with the word's attribute (the paper's rule and the tie-aware expected hit) ↑. The x
axis is the forwards (images) the method spent, counted by
:class:`captum_eagle.baselines.ForwardCounter`.

``--hallucination C`` adds C hallucination cases (``benchmarks/hallucination.py``'s collection:
false "yes" answers on partial-match scenes with an oracle-causal distractor, seeds
``10**6 + 10**5 s + 50,000 …``): every method explains the first token of the correct answer
"no" and the regions are removed hallucination-prone first until the answer flips
(:mod:`captum_eagle.hallucination`; Eagle: from the end of its order ``π``; maps: lowest mean
attribution first). Per case: the removed area at the flip (AMCR ↓, never corrected = 1) and
whether it was at most 10% (CSR@10% ↑).

One JSON line per explanation goes to ``--out`` (default
``benchmarks/results/frontier/s<seed>.jsonl``) after a header (:mod:`benchmarks.results`).
``benchmarks/report.py`` turns the files into the table of ``benchmarks/README.md`` and the figure
``docs/frontier.png``.

Usage::

    python benchmarks/frontier.py --regions 16 32 --scenes 2 --hallucination 4 --seed 0
    python benchmarks/frontier.py --regions 4 --scenes 1 --kinds plain --searches exact \
        --methods kernel_shap random --out /tmp/frontier.jsonl          # toy size, seconds
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `benchmarks.*` importable
    sys.path.insert(0, str(ROOT))

from benchmarks.faithfulness import (  # noqa: E402
    Case,
    auc_scores,
    build_cases,
    case_seed,
    load_wrapper,
)
from benchmarks.hallucination import Case as HallucinationItem  # noqa: E402
from benchmarks.hallucination import collect_cases, first_seed, on_cause  # noqa: E402
from benchmarks.results import (  # noqa: E402
    RESULTS,
    header,
    read_results,
    results_file,
    torch_threads,
    write_record,
)
from captum_eagle import FeatureMask, MLLMForwardWrapper  # noqa: E402
from captum_eagle.baselines import ForwardCounter, attribute, get_method  # noqa: E402
from captum_eagle.hallucination import explain_hallucination, mitigate  # noqa: E402
from captum_eagle.metrics import pointing_game  # noqa: E402
from captum_eagle.search import get_search, list_searches  # noqa: E402
from captum_eagle.zoo import SCENE_KINDS, generate_scene  # noqa: E402
from captum_eagle.zoo.evaluate import EVAL_SEED  # noqa: E402

SAMPLING: tuple[str, ...] = ("kernel_shap", "lime", "shapley")
POINTS: tuple[str, ...] = ("feature_ablation", "integrated_gradients", "grad_cam", "random")


def budgets(n_regions: int) -> list[int]:
    r"""The sampling methods' forward budgets: 2N, 4N, 8N, … below ``N (N + 1)``, then it.

    Examples::

        >>> budgets(16)
        [32, 64, 128, 256, 272]
    """
    exact = n_regions * (n_regions + 1)
    levels = [2 * n_regions]
    while 2 * levels[-1] < exact:
        levels.append(2 * levels[-1])
    return [*levels, exact]


def budget_label(budget: int, n_regions: int) -> str:
    r"""``"4N"`` for ``4 * n_regions``, ``"N(N+1)"`` for exact Eagle's count."""
    if budget == n_regions * (n_regions + 1):
        return "N(N+1)"
    return f"{budget // n_regions}N"


BUDGETED: tuple[str, ...] = ("budget",)
BUDGETED_LEVELS = 3  # the budgeted Eagle mode runs at 2N, 4N and 8N


def points(
    n_regions: int, searches: Sequence[str], methods: Sequence[str]
) -> list[tuple[str, int | None]]:
    r"""``[(method, forward budget or None)]`` to run on one explanation of ``n_regions``.

    Eagle's budgeted search (:class:`captum_eagle.search.BudgetedGreedy`) runs at the first
    :data:`BUDGETED_LEVELS` sampling budgets (2N, 4N, 8N), where no other Eagle mode fits.

    Examples::

        >>> points(4, ["exact", "budget"], ["random"])
        [('eagle:exact', None), ('eagle:budget', 8), ('eagle:budget', 16), ('random', None)]
    """
    runs: list[tuple[str, int | None]] = []
    for name in searches:
        if name in BUDGETED:
            runs += [(f"eagle:{name}", b) for b in budgets(n_regions)[:BUDGETED_LEVELS]]
        else:
            runs.append((f"eagle:{name}", None))
    for method in methods:
        if method in SAMPLING:
            runs += [(method, budget) for budget in budgets(n_regions)]
        else:
            runs.append((method, None))
    return runs


def attribution_map(
    wrapper: MLLMForwardWrapper,
    sample: Any,
    feature_mask: FeatureMask,
    method: str,
    budget: int | None,
) -> tuple[torch.Tensor, int]:
    r"""The map of one method (``"eagle:<search>"`` or a registry name) and its forwards."""
    name, _, search = method.partition(":")
    options: dict[str, Any] = {"search": search} if search else {}
    entry = get_method(name)
    value = None if budget is None else entry.budget_for(budget, feature_mask.n_regions)
    if search in BUDGETED:
        options["search"], value = get_search(search, forwards=budget), None
    with ForwardCounter(wrapper) as counter:
        attribution = attribute(name, wrapper, sample, feature_mask, budget=value, **options)
    return attribution.detach().float().sum(dim=1, keepdim=True), counter.images


def score(
    wrapper: MLLMForwardWrapper, case: Case, attribution: torch.Tensor, feature_mask: FeatureMask
) -> dict[str, float]:
    r"""Insertion and deletion AUC, pointing game at mask level (hit and tie-aware)."""
    scores = auc_scores(wrapper, case.sample, attribution, feature_mask)
    if case.mask is not None:
        pointing = pointing_game(attribution, mask=case.mask)
        scores.update(point_mask=float(pointing.hit), point_mask_tie=pointing.tie_aware)
    return scores


def _fields(
    scene: int,
    feature_mask: FeatureMask,
    regions: int,
    method: str,
    budget: int | None,
    forwards: int,
    started: float,
) -> dict[str, Any]:
    n_regions = feature_mask.n_regions
    return {
        "scene": scene,
        "regions": regions,
        "actual_regions": n_regions,
        "method": method,
        "budget": None if budget is None else budget_label(budget, n_regions),
        "forwards": forwards,
        "seconds": time.perf_counter() - started,
    }


def word_records(
    wrapper: MLLMForwardWrapper,
    case: Case,
    regions: Sequence[int],
    searches: Sequence[str],
    methods: Sequence[str],
) -> Iterator[dict[str, Any]]:
    r"""One record per (region count, method, budget) on a word case."""
    for n_regions in regions:
        feature_mask = FeatureMask.slico(case.sample.image, n_regions)
        for method, budget in points(feature_mask.n_regions, searches, methods):
            torch.manual_seed(case_seed(0, case.key, n_regions, method, budget))
            started = time.perf_counter()
            attribution, forwards = attribution_map(
                wrapper, case.sample, feature_mask, method, budget
            )
            yield {
                "type": "explanation",
                "kind": case.kind,
                "label": case.label,
                **_fields(case.scene, feature_mask, n_regions, method, budget, forwards, started),
                **score(wrapper, case, attribution, feature_mask),
            }


def hallucination_records(
    wrapper: MLLMForwardWrapper,
    item: HallucinationItem,
    regions: Sequence[int],
    searches: Sequence[str],
    methods: Sequence[str],
) -> Iterator[dict[str, Any]]:
    r"""One record per (region count, method, budget) on a hallucination case."""
    case = item.case
    for n_regions in regions:
        feature_mask = FeatureMask.slico(case.image, n_regions)
        for method, budget in points(feature_mask.n_regions, searches, methods):
            torch.manual_seed(case_seed(0, item.seed, n_regions, method, budget))
            started = time.perf_counter()
            name, _, search = method.partition(":")
            if name == "eagle" and search not in BUDGETED:
                result = explain_hallucination(wrapper, case, feature_mask, search=search)
                forwards = result.explanation.forwards
            else:
                attribution, forwards = attribution_map(
                    wrapper, case.sample, feature_mask, method, budget
                )
                result = mitigate(wrapper, case, feature_mask, attribution=attribution)
            yield {
                "type": "hallucination",
                **_fields(item.seed, feature_mask, n_regions, method, budget, forwards, started),
                "area_removed": result.area_removed if result.corrected else None,
                "regions_removed": result.fraction_removed if result.corrected else None,
                "on_cause": on_cause(result, item.cause_mask),
            }


def cases_of(path: Path) -> dict[tuple[str, int], str | None]:
    r"""The cases of a frontier results file: ``(kind, scene) → word`` and
    ``("hallucination", seed) → None``."""
    cases: dict[tuple[str, int], str | None] = {}
    for record in read_results([path])[1]:
        if record.get("type") == "explanation":
            cases[(record["kind"], record["scene"])] = record["label"]
        elif record.get("type") == "hallucination":
            cases[("hallucination", record["scene"])] = None
    return cases


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=3, help="scenes per kind")
    parser.add_argument("--kinds", nargs="+", default=list(SCENE_KINDS), choices=SCENE_KINDS)
    parser.add_argument("--regions", nargs="+", type=int, default=[16, 32])
    parser.add_argument("--seed", type=int, default=0, help="scene seeds start at 10**6 + 10**5 s")
    parser.add_argument("--searches", nargs="+", default=list_searches(), choices=list_searches())
    parser.add_argument(
        "--methods", nargs="*", default=[*SAMPLING, *POINTS], choices=[*SAMPLING, *POINTS]
    )
    parser.add_argument(
        "--like",
        type=Path,
        help="a frontier results file: explain only its cases (same seed and arguments), e.g. to "
        "add a method to a finished run",
    )
    parser.add_argument("--hallucination", type=int, default=0, help="hallucination cases")
    parser.add_argument("--max-minutes", type=float, help="start no new case after this")
    parser.add_argument("--model", choices=("shapes", "tiny"), default="shapes")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", type=Path, help="JSONL file (default: results/frontier/s<seed>)")
    args = parser.parse_args(argv)
    if args.scenes < 0 or args.hallucination < 0:
        parser.error("--scenes and --hallucination take counts >= 0.")
    if min(args.regions) < 2:
        parser.error("--regions takes region counts >= 2.")
    return args


def run(args: argparse.Namespace) -> Path:
    r"""Run the benchmark described by parsed ``args``; return the JSONL file written."""
    import benchmarks.baselines  # noqa: F401  (registers grad_cam)

    with torch_threads(args.threads):
        started = time.perf_counter()
        deadline = None if args.max_minutes is None else started + 60 * args.max_minutes
        out = args.out or RESULTS / "frontier" / f"s{args.seed}.jsonl"
        wrapper = load_wrapper(args.model, args.batch_size)
        rng = np.random.default_rng(args.seed)
        base = EVAL_SEED + 100_000 * args.seed

        def log(text: str) -> None:
            print(f"[{(time.perf_counter() - started) / 60:.1f} min] {text}", flush=True)

        like = None if args.like is None else cases_of(args.like)
        with results_file(out, header("frontier", args.model, vars(args))) as file:
            items: list[HallucinationItem] = []
            if args.hallucination:
                items, stats = collect_cases(
                    wrapper, args.hallucination, first_seed(args.seed), 40 * args.hallucination
                )
                write_record(file, {"type": "hallucination_scan", **stats, "cases": len(items)})

            # One hallucination case, then one scene of each kind, and so on: a run stopped by
            # --max-minutes keeps both parts and its kinds balanced.
            def stop() -> bool:
                return deadline is not None and time.perf_counter() > deadline

            for index in range(max(len(items), args.scenes)):
                wanted = like is None or (
                    index < len(items) and ("hallucination", items[index].seed) in like
                )
                if index < len(items) and wanted and not stop():
                    for record in hallucination_records(
                        wrapper, items[index], args.regions, args.searches, args.methods
                    ):
                        write_record(file, record)
                    log(f"hallucination case {index + 1}/{len(items)}")
                if index < args.scenes:
                    for kind in args.kinds:
                        if stop():
                            break
                        scene = generate_scene(base + index, kind)
                        # Always drawn, so that the words match a run without --like.
                        cases, _ = build_cases(wrapper, scene, ["word"], 1, rng)
                        for case in cases:
                            if like is not None:
                                label = like.get((case.kind, case.scene))
                                if label is None:
                                    continue
                                if label != case.label:
                                    raise ValueError(
                                        f"--like {args.like} explains {label!r} in the "
                                        f"{case.kind} scene {case.scene}, this run "
                                        f"{case.label!r}: pass the seed and arguments of "
                                        "that run."
                                    )
                            for record in word_records(
                                wrapper, case, args.regions, args.searches, args.methods
                            ):
                                write_record(file, record)
                    log(f"scene {index + 1}/{args.scenes} of each kind")
        return out


def main(argv: Sequence[str] | None = None) -> None:
    print(f"wrote {run(parse_args(argv))}")


if __name__ == "__main__":
    main()
