r"""Faithfulness benchmark: Eagle against Captum's attribution methods on the bundled shapes model.

On generated scenes (``captum_eagle.zoo``; kinds plain, redundant, partial_match, crowded) and
SLICO partitions of 16, 32 and 64 regions, every method of :mod:`captum_eagle.baselines` (plus
``grad_cam`` from :mod:`benchmarks.baselines`) explains the
same wrapper, sample and regions, and :mod:`captum_eagle.metrics` scores the maps by one protocol
(``docs/method.md``, "Evaluation protocol"). Three tasks per scene:

- ``caption``: the model's own caption of the scene, all answer tokens (sentence level);
- ``word``: colour / shape words of the caption (``sample.with_target_tokens(...)`` on the word's
  tokens), pointing game against the boxes and masks of the scene objects with that colour / shape
  (see :func:`grounded_words`);
- ``qa``: the scene's first yes/no question, first answer token of the model's own answer; pointing
  game against the objects that match the question when the model answered "yes" and such objects
  exist.

The sampling methods (Lime, KernelShap, ShapleyValueSampling) run twice: at the registry's default
budget (Captum's 25 samples), or the one given with ``--budget NAME=N``, and with their forwards
matched to Eagle's forwards on the same explanation (``<method>@eagle``). Every record and table
row says the budget it ran with. Captum's own multimodal path
(``LLMAttribution(FeatureAblation)`` with ``ImageMaskInput``) is timed on a few scenes as a speed
row.

Reported per method: insertion AUC ↑, deletion AUC ↓, Average Highest Score ↑, the same over
sensitive tokens only, pointing game at box and mask level ↑ (the paper's rule, where a tied maximum
counts, and the tie-aware expected hit), seconds and model forwards (images) per explanation. A
paired comparison lists, per task / kind / region count, the methods Eagle is better than, ties
with or is worse than: bootstrap intervals of the paired differences, Holm-corrected
(:mod:`benchmarks.results`).

One JSON line per explanation goes to ``--out`` (default
``benchmarks/results/faithfulness/s<seed>.jsonl``) after a header with the command, machine,
package versions and weights hash; ``benchmarks/report.py`` makes the README table from the files.

Usage::

    python benchmarks/faithfulness.py --scenes 2 --regions 16 --seed 0
    python benchmarks/faithfulness.py --model tiny --scenes 1 --regions 6 --methods eagle random \
        --out /tmp/faithfulness.jsonl
    python benchmarks/faithfulness.py --report benchmarks/results/faithfulness/*.jsonl
    python benchmarks/faithfulness.py --methods eagle lime --budget lime=50  # Lime at 50 samples
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `benchmarks.baselines` importable
    sys.path.insert(0, str(ROOT))

import benchmarks.baselines  # noqa: E402, F401  (registers grad_cam)
from benchmarks.results import (  # noqa: E402
    RESULTS,
    TOO_FEW,
    header,
    paired_comparisons,
    read_results,
    results_file,
    torch_threads,
    write_record,
)
from captum_eagle import FeatureMask, MLLMForwardWrapper  # noqa: E402
from captum_eagle.baselines import ForwardCounter, attribute, get_method, list_methods  # noqa: E402
from captum_eagle.metrics import deletion_curve, insertion_curve, pointing_game  # noqa: E402
from captum_eagle.wrapper import PreparedSample  # noqa: E402
from captum_eagle.zoo import (  # noqa: E402
    COLOURS,
    DEFAULT_CAPTION_PROMPT,
    SCENE_KINDS,
    SHAPES,
    Scene,
    generate_scene,
    question_prompt,
)
from captum_eagle.zoo.evaluate import EVAL_SEED  # noqa: E402

TASKS: tuple[str, ...] = ("caption", "word", "qa")
METRICS: tuple[str, ...] = (
    "insertion",
    "deletion",
    "ahs",
    "sensitive_insertion",
    "sensitive_deletion",
    "point_box",
    "point_box_tie",
    "point_mask",
    "point_mask_tie",
    "seconds",
    "forwards",
)
LOWER_IS_BETTER = {"deletion", "sensitive_deletion"}
COMPARED = ("insertion", "deletion", "ahs", "point_mask_tie")
EQUAL_BUDGET = "@eagle"
LLM_PATHS: dict[str, dict[str, bool]] = {
    "captum_llm_fa (defaults)": {},
    "captum_llm_fa (use_cached_outputs=False)": {"use_cached_outputs": False},
    "captum_llm_fa (forward_in_tokens=False)": {"forward_in_tokens": False},
}
"""Settings of ``LLMAttribution.attribute`` timed in the speed row. With its defaults
(token-by-token decoding with a cache) on transformers 5, generation's input preparation drops
``pixel_values``, so the model never sees the (perturbed) image and the map is all zero; the other
two settings feed the image."""


# -- what is explained -------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    r"""One explanation to compute: a sample (prompt, answer, targets) and its ground truth.

    Attributes:
        task (str): ``"caption"``, ``"word"`` or ``"qa"``.
        kind (str): the scene kind.
        scene (int): the scene seed.
        label (str): what is explained (the word, the question, or ``"sentence"``).
        sample (PreparedSample): the prepared sample with its target tokens.
        box (Tensor or None): ``(H, W)`` bool, the union of the ground-truth boxes (pointing game).
        mask (Tensor or None): ``(H, W)`` bool, the union of the ground-truth masks.
    """

    task: str
    kind: str
    scene: int
    label: str
    sample: PreparedSample
    box: torch.Tensor | None = None
    mask: torch.Tensor | None = None

    @property
    def key(self) -> str:
        """Identifies the case across methods (for paired comparisons)."""
        return f"{self.kind}/{self.scene}/{self.task}/{self.label}"


def _object_regions(scene: Scene, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Union of the boxes and of the masks of the given scene objects, ``(H, W)`` bool each."""
    height, width = scene.image.shape[:2]
    box = torch.zeros(height, width, dtype=torch.bool)
    mask = torch.zeros(height, width, dtype=torch.bool)
    for index in indices:
        item = scene.objects[index]
        x0, y0, x1, y1 = item.box  # inclusive pixel coordinates
        box[y0 : y1 + 1, x0 : x1 + 1] = True
        mask |= torch.from_numpy(np.asarray(item.mask, dtype=bool))
    return box, mask


def grounded_words(scene: Scene, sample: PreparedSample) -> tuple[list[tuple], int]:
    r"""The colour and shape words of an answer with the scene objects they can refer to.

    A colour word (e.g. "red") refers to every scene object of that colour, a shape word to every
    object of that shape: the pointing game then asks whether the word's map peaks on an object that
    has the named attribute. (The shapes model can name a wrong shape or leave objects out, mostly
    on crowded scenes; pairing whole "colour shape" phrases with objects would drop those words.)
    Words naming an attribute no object has (hallucinated words) have no ground truth and are left
    out.

    Args:
        scene (Scene): the scene the answer describes.
        sample (PreparedSample): the model's answer.

    Returns:
        (list, int): ``[(word, answer token indices, object indices)]`` in answer order for the
        grounded words, and the number of colour / shape words in the answer.
    """
    grounded, n_words = [], 0
    for word, indices in sample.word_spans():
        word = word.lower()
        attribute = "colour" if word in COLOURS else "shape" if word in SHAPES else None
        if attribute is None:
            continue
        n_words += 1
        referents = [i for i, item in enumerate(scene.objects) if getattr(item, attribute) == word]
        if referents:
            grounded.append((word, indices, referents))
    return grounded, n_words


def build_cases(
    wrapper: MLLMForwardWrapper,
    scene: Scene,
    tasks: Sequence[str],
    words_per_scene: int | None,
    rng: np.random.Generator,
) -> tuple[list[Case], dict[str, int]]:
    r"""The explanations of one scene and counts of the caption's words.

    Args:
        wrapper (MLLMForwardWrapper): the model.
        scene (Scene): a generated scene.
        tasks (sequence of str): which of :data:`TASKS` to build.
        words_per_scene (int, optional): explain at most this many grounded caption words (drawn
            with ``rng``, see :func:`grounded_words`); ``None`` explains all of them.
        rng (numpy Generator): draws the words when ``words_per_scene`` is set.

    Returns:
        (list of Case, dict): the cases and ``{"words", "grounded_words", "explained_words"}``
        (colour / shape words in the caption, those naming an attribute of a scene object, those
        explained).
    """
    cases: list[Case] = []
    counts = {"words": 0, "grounded_words": 0, "explained_words": 0}
    if "caption" in tasks or "word" in tasks:
        caption = wrapper.prepare(scene.image, DEFAULT_CAPTION_PROMPT)
        if "caption" in tasks:
            cases.append(Case("caption", scene.kind, scene.seed, "sentence", caption))
        if "word" in tasks:
            words, counts["words"] = grounded_words(scene, caption)
            counts["grounded_words"] = len(words)
            if words_per_scene is not None and len(words) > words_per_scene:
                keep = sorted(rng.choice(len(words), words_per_scene, replace=False).tolist())
                words = [words[i] for i in keep]
            counts["explained_words"] = len(words)
            for word, tokens, referents in words:
                box, mask = _object_regions(scene, referents)
                label = f"{word}#{tokens[0]}"
                sample = caption.with_target_tokens(tokens)
                cases.append(Case("word", scene.kind, scene.seed, label, sample, box, mask))
    if "qa" in tasks and scene.questions:
        question = scene.questions[0]
        sample = wrapper.prepare(scene.image, question_prompt(question), max_new_tokens=4)
        sample = sample.with_target_tokens(0)
        box = mask = None
        said_yes = sample.answer_tokens[0].strip().lower() == "yes"
        if said_yes and question.evidence:
            box, mask = _object_regions(scene, question.evidence)
        label = f"{question.text} -> {sample.answer_tokens[0].strip()}"
        cases.append(Case("qa", scene.kind, scene.seed, label, sample, box, mask))
    return cases, counts


# -- methods and scoring -----------------------------------------------------------------------
def variants(methods: Sequence[str], equal_budget: bool) -> list[str]:
    r"""Method variants to run: each method, plus ``<method>@eagle`` for the sampling methods."""
    names = []
    for name in methods:
        sampling = get_method(name).budget == "n_samples"  # also: an unknown name fails here
        names.append(name)
        if equal_budget and sampling:
            names.append(name + EQUAL_BUDGET)
    return names


def case_seed(base: int, *parts: object) -> int:
    r"""A reproducible seed for one (run seed, case, method …) combination."""
    return zlib.crc32("/".join(map(str, (base, *parts))).encode())


def auc_scores(
    wrapper: MLLMForwardWrapper,
    sample: PreparedSample,
    attribution: torch.Tensor,
    feature_mask: FeatureMask,
) -> dict[str, float]:
    r"""Insertion and deletion AUC of one map (``captum_eagle.metrics``, one step per region)."""
    return {
        "insertion": insertion_curve(wrapper, sample, attribution, feature_mask=feature_mask).auc,
        "deletion": deletion_curve(wrapper, sample, attribution, feature_mask=feature_mask).auc,
    }


def score_map(
    wrapper: MLLMForwardWrapper, case: Case, attribution: torch.Tensor, feature_mask: FeatureMask
) -> dict[str, float]:
    r"""Insertion / deletion / AHS (all target tokens and sensitive tokens) and pointing game."""
    insertion = insertion_curve(wrapper, case.sample, attribution, feature_mask=feature_mask)
    deletion = deletion_curve(wrapper, case.sample, attribution, feature_mask=feature_mask)
    sensitive_insertion = insertion.sensitive()
    scores = {
        "insertion": insertion.auc,
        "deletion": deletion.auc,
        "ahs": insertion.highest,
        "sensitive_insertion": sensitive_insertion.auc,
        "sensitive_deletion": deletion.sensitive().auc,
        "sensitive_tokens": sensitive_insertion.n_tokens,
        "point_box": math.nan,
        "point_box_tie": math.nan,
        "point_mask": math.nan,
        "point_mask_tie": math.nan,
    }
    if case.box is not None and case.mask is not None:
        box = pointing_game(attribution, mask=case.box)
        mask = pointing_game(attribution, mask=case.mask)
        scores.update(
            point_box=float(box.hit),
            point_box_tie=box.tie_aware,
            point_mask=float(mask.hit),
            point_mask_tie=mask.tie_aware,
        )
    return scores


def explain_case(
    wrapper: MLLMForwardWrapper,
    counter: ForwardCounter,
    case: Case,
    feature_mask: FeatureMask,
    names: Sequence[str],
    seed: int,
    requested_regions: int,
    budgets: dict[str, int] | None = None,
) -> list[dict[str, Any]]:
    r"""Run every method variant on one case and score its map; one record per variant.

    ``requested_regions`` is the SLICO request that made ``feature_mask`` (SLICO returns about
    that many); records are grouped by it. ``budgets`` gives methods an explicit budget (else the
    registry's default); ``<method>@eagle`` spends Eagle's forwards. Each record has its
    ``budget`` (``None`` for fixed-cost methods).
    """
    regions = feature_mask.n_regions
    eagle_forwards = regions * (regions + 1)
    records = []
    for name in sorted(names, key=lambda n: n != "eagle"):  # Eagle first: it sets the budget
        method, _, budget_of = name.partition("@")
        entry = get_method(method)
        budget = (
            entry.budget_for(eagle_forwards, regions)
            if budget_of
            else (budgets or {}).get(method, entry.default_budget)
        )
        torch.manual_seed(case_seed(seed, case.key, regions, name))
        with counter.counting():
            started = time.perf_counter()
            attribution = attribute(method, wrapper, case.sample, feature_mask, budget=budget)
            seconds = time.perf_counter() - started
        if name == "eagle":
            eagle_forwards = counter.images
        record = {
            "task": case.task,
            "kind": case.kind,
            "scene": case.scene,
            "label": case.label,
            "regions": requested_regions,
            "actual_regions": regions,
            "method": name,
            "budget": budget if entry.budget is not None else None,
            "seconds": seconds,
            "forwards": counter.images,
            "model_calls": counter.calls,
        }
        record.update(score_map(wrapper, case, attribution.detach(), feature_mask))
        records.append(record)
    return records


# -- Captum's own multimodal path --------------------------------------------------------------
def time_llm_attribution(
    wrapper: MLLMForwardWrapper,
    counter: ForwardCounter,
    scenes: Sequence[Scene],
    n_regions: int,
) -> list[dict[str, Any]]:
    r"""Time ``LLMAttribution(FeatureAblation(model), tokenizer)`` with ``ImageMaskInput``.

    On each scene's caption: Captum paints each ablated region black on the PIL image and re-runs
    the processor and the model, one perturbation at a time, in each of the :data:`LLM_PATHS`
    settings. Our ``FeatureAblation`` and Eagle on the same sample and regions are timed alongside.
    ``nonzero_map`` flags maps that are zero everywhere (the image never reached the model).
    """
    from captum.attr import FeatureAblation, ImageMaskInput, LLMAttribution
    from PIL import Image

    rows = []
    for scene in scenes:
        sample = wrapper.prepare(scene.image, DEFAULT_CAPTION_PROMPT)
        feature_mask = FeatureMask.slico(sample.image, n_regions)
        pixels = (sample.image[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)

        def processor_fn(image: Image.Image, text: str = sample.prompt_text) -> Any:
            return wrapper.processor(text=text, images=image, return_tensors="pt")

        inputs = ImageMaskInput(
            image=Image.fromarray(pixels),
            mask=feature_mask.mask[0, 0],
            baseline=(0, 0, 0),
            processor_fn=processor_fn,
        )
        timings = {}
        for name, options in LLM_PATHS.items():
            llm_attribution = LLMAttribution(FeatureAblation(wrapper.model), wrapper.tokenizer)
            with counter.counting():
                started = time.perf_counter()
                result = llm_attribution.attribute(inputs, target=sample.answer_ids, **options)
                seconds = time.perf_counter() - started
            nonzero = bool(result.seq_attr.abs().sum() > 0)
            timings[name] = (seconds, counter.images, counter.calls, nonzero)
        for name in ("feature_ablation", "eagle"):
            with counter.counting():
                started = time.perf_counter()
                attribution = attribute(name, wrapper, sample, feature_mask)
                seconds = time.perf_counter() - started
            nonzero = bool(attribution.abs().sum() > 0)
            timings[name] = (seconds, counter.images, counter.calls, nonzero)
        for name, (seconds, images, calls, nonzero) in timings.items():
            rows.append(
                {
                    "scene": scene.seed,
                    "regions": feature_mask.n_regions,
                    "answer_tokens": int(sample.answer_ids.numel()),
                    "method": name,
                    "seconds": seconds,
                    "forwards": images,
                    "model_calls": calls,
                    "nonzero_map": nonzero,
                }
            )
    return rows


# -- summaries ---------------------------------------------------------------------------------
def _mean(values: Sequence[float]) -> float:
    kept = [value for value in values if not math.isnan(value)]
    return float(np.mean(kept)) if kept else math.nan


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)


def summarise(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    r"""Mean of every metric per (task, kind, region bucket, method); NaN entries are left out.

    ``n`` counts the explanations, ``n_pointing`` those with a ground-truth object,
    ``n_sensitive`` those with at least one sensitive token.
    """
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        groups[(record["task"], record["kind"], record["regions"], record["method"])].append(record)
    rows = []
    for (task, kind, regions, method), group in groups.items():
        row = {
            "task": task,
            "kind": kind,
            "regions": regions,
            "method": method,
            "n": len(group),
            "n_scenes": len({record["scene"] for record in group}),
            "n_pointing": sum(not math.isnan(_number(record["point_mask"])) for record in group),
            "n_sensitive": sum(record["sensitive_tokens"] > 0 for record in group),
            "mean_regions": float(np.mean([record["actual_regions"] for record in group])),
            "budget": _mean([_number(record.get("budget")) for record in group]),
        }
        row.update(
            {metric: _mean([_number(record[metric]) for record in group]) for metric in METRICS}
        )
        rows.append(row)
    return rows


def compare(
    records: Sequence[dict[str, Any]], reference: str = "eagle", metrics: Sequence[str] = COMPARED
) -> list[dict[str, Any]]:
    r"""Paired comparison of ``reference`` with every other method on the same explanations.

    For each (task, kind, region bucket, metric, method): the differences ``reference − method``
    over the explanations both have a value for, compared by
    :func:`benchmarks.results.paired_comparisons` (bootstrap intervals, Holm-corrected over all
    the comparisons together). ``verdict`` is ``"better"`` / ``"worse"`` when the corrected
    interval excludes 0 in the reference's favour / against it (lower is better for deletion),
    ``"tie"`` otherwise, ``"n<6"`` below six pairs (:data:`benchmarks.results.MIN_PAIRS`).
    """
    by_case: dict[tuple, dict[str, dict[str, Any]]] = defaultdict(dict)
    for record in records:
        group = (record["task"], record["kind"], record["regions"])
        by_case[(*group, record["label"], record["scene"])][record["method"]] = record
    pairs: dict[tuple, list[float]] = defaultdict(list)
    for (task, kind, regions, *_), methods in by_case.items():
        if reference not in methods:
            continue
        for method, record in methods.items():
            if method == reference:
                continue
            for metric in metrics:
                ours, theirs = _number(methods[reference][metric]), _number(record[metric])
                if not (math.isnan(ours) or math.isnan(theirs)):
                    pairs[(task, kind, regions, metric, method)].append(ours - theirs)
    lower = {key: key[3] in LOWER_IS_BETTER for key in pairs}
    return [
        {
            "task": task,
            "kind": kind,
            "regions": regions,
            "metric": metric,
            "method": method,
            "n": comparison.n,
            "difference": comparison.mean,
            "low": comparison.low,
            "high": comparison.high,
            "verdict": comparison.verdict,
        }
        for (task, kind, regions, metric, method), comparison in paired_comparisons(
            pairs, lower
        ).items()
    ]


def _cell(value: float, digits: int = 3) -> str:
    return "—" if math.isnan(value) else f"{value:.{digits}f}"


def markdown_tables(summary: Sequence[dict[str, Any]], names: Sequence[str]) -> str:
    r"""One markdown table per (task, kind, region count): a row per method variant."""
    order = {name: index for index, name in enumerate(names)}
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in summary:
        groups[(row["regions"], row["task"], row["kind"])].append(row)
    kinds = {kind: index for index, kind in enumerate(SCENE_KINDS)}
    blocks = []
    for regions, task, kind in sorted(
        groups, key=lambda key: (key[0], TASKS.index(key[1]), kinds.get(key[2], 99))
    ):
        rows = sorted(groups[(regions, task, kind)], key=lambda row: order.get(row["method"], 99))
        first = rows[0]
        header = (
            f"**{task}**, {kind}, {regions} SLICO regions requested "
            f"({first['mean_regions']:.1f} on average): {first['n_scenes']} scenes, "
            f"{first['n']} explanations per method ({first['n_sensitive']} with a sensitive token, "
            f"{first['n_pointing']} with a ground-truth object)"
        )
        lines = [
            header,
            "",
            "| method | budget | ins ↑ | del ↓ | AHS ↑ | sens ins ↑ | sens del ↓ | PG box ↑ "
            "| PG box tie ↑ | PG mask ↑ | PG mask tie ↑ | s / expl | fwd / expl |",
            "|---|" + "---:|" * 12,
        ]
        for row in rows:
            cells = [row["method"], _cell(row.get("budget", math.nan), 0)]
            cells += [_cell(row[metric]) for metric in METRICS[:-2]]
            cells += [_cell(row["seconds"], 2), _cell(row["forwards"], 0)]
            lines.append("| " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def markdown_verdicts(comparisons: Sequence[dict[str, Any]], names: Sequence[str]) -> str:
    r"""Where Eagle is better, ties or is worse: one line per (task, kind, regions, metric)."""
    order = {name: index for index, name in enumerate(names)}
    groups: dict[tuple, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for row in comparisons:
        key = (row["regions"], row["task"], row["kind"], row["metric"])
        sign = "+" if row["difference"] >= 0 else "−"
        groups[key][row["verdict"]].append(
            (order.get(row["method"], 99), f"{row['method']} ({sign}{abs(row['difference']):.3f})")
        )
    lines = [
        "| regions | task | kind | metric | Eagle better than | tie with | worse than | n<6 |",
        "|---:|---|---|---|---|---|---|---|",
    ]
    kinds = {kind: index for index, kind in enumerate(SCENE_KINDS)}
    for key in sorted(
        groups,
        key=lambda k: (k[0], TASKS.index(k[1]), kinds.get(k[2], 99), COMPARED.index(k[3])),
    ):
        verdicts = groups[key]
        cells = [
            ", ".join(text for _, text in sorted(verdicts.get(verdict, []))) or "—"
            for verdict in ("better", "tie", "worse", TOO_FEW)
        ]
        lines.append("| " + " | ".join([str(key[0]), key[1], key[2], key[3], *cells]) + " |")
    return "\n".join(lines)


def markdown_verdict_counts(comparisons: Sequence[dict[str, Any]], names: Sequence[str]) -> str:
    r"""Per method, how many paired comparisons (all tasks, kinds, metrics) Eagle is better in,
    ties or is worse in (Holm-corrected bootstrap intervals)."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in comparisons:
        counts[row["method"]][row["verdict"]] += 1
    lines = [
        "| method | Eagle better | tie | Eagle worse | n<6 |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in (name for name in names if name in counts):
        c = counts[name]
        lines.append(f"| {name} | {c['better']} | {c['tie']} | {c['worse']} | {c[TOO_FEW]} |")
    return "\n".join(lines)


def markdown_speed(rows: Sequence[dict[str, Any]]) -> str:
    r"""Mean seconds, forwards (images) and model calls per explanation, per method."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row["method"]].append(row)
    first = next(iter(groups.values()))
    lines = [
        f"Caption explanations on {len(first)} plain scenes, "
        f"{_mean([r['regions'] for r in first]):.1f} regions, "
        f"{_mean([r['answer_tokens'] for r in first]):.1f} answer tokens on average",
        "",
        "| method | s / expl | images / expl | model calls / expl | non-zero maps |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, group in groups.items():
        lines.append(
            f"| {name} | {_mean([r['seconds'] for r in group]):.2f} | "
            f"{_mean([r['forwards'] for r in group]):.0f} | "
            f"{_mean([r['model_calls'] for r in group]):.0f} | "
            f"{sum(r['nonzero_map'] for r in group)}/{len(group)} |"
        )
    return "\n".join(lines)


# -- main --------------------------------------------------------------------------------------
def load_wrapper(model: str, batch_size: int) -> MLLMForwardWrapper:
    r"""``"shapes"``: the bundled model; ``"tiny"``: a random tiny LLaVA (for smoke runs)."""
    if model == "shapes":
        from captum_eagle.zoo import load_default_model

        return MLLMForwardWrapper(*load_default_model(), batch_size=batch_size)
    from captum_eagle.testing import tiny_model

    return MLLMForwardWrapper(*tiny_model("llava", image_size=64), batch_size=batch_size)


def _budget(text: str) -> tuple[str, int]:
    name, _, value = text.partition("=")
    if name not in list_methods() or get_method(name).budget is None or not value.isdigit():
        budgeted = [n for n in list_methods() if get_method(n).budget is not None]
        raise argparse.ArgumentTypeError(
            f"expected NAME=N with NAME one of {budgeted} and N a positive int; got {text!r}"
        )
    return name, int(value)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=100, help="scenes per kind")
    parser.add_argument("--kinds", nargs="+", default=list(SCENE_KINDS), choices=SCENE_KINDS)
    parser.add_argument("--regions", nargs="+", type=int, default=[16, 32, 64])
    parser.add_argument("--seed", type=int, default=0, help="scene seeds start at 10**6 + 10**5 s")
    parser.add_argument("--methods", nargs="+", default=list_methods(), choices=list_methods())
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument(
        "--budget",
        nargs="+",
        type=_budget,
        default=[],
        metavar="NAME=N",
        help="explicit budgets (samples / permutations / steps), e.g. lime=50 kernel_shap=100; "
        "default: the registry's (captum_eagle.baselines)",
    )
    parser.add_argument(
        "--no-equal-budget",
        dest="equal_budget",
        action="store_false",
        help="skip the sampling methods' runs at Eagle's forward count",
    )
    parser.add_argument(
        "--words-per-scene",
        type=int,
        help="explain at most this many (randomly drawn) grounded caption words per scene",
    )
    parser.add_argument(
        "--llm-scenes", type=int, default=3, help="scenes for the Captum LLMAttribution speed row"
    )
    parser.add_argument("--max-minutes", type=float, help="stop starting new scenes after this")
    parser.add_argument("--model", choices=("shapes", "tiny"), default="shapes")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a shared CPU)"
    )
    parser.add_argument(
        "--out", type=Path, help="JSONL file (default: benchmarks/results/faithfulness/s<seed>)"
    )
    parser.add_argument(
        "--report",
        type=Path,
        nargs="+",
        help="print the tables of saved JSONL results and exit (no run); several files (runs "
        "with different --seed, e.g. in parallel processes) are pooled",
    )
    args = parser.parse_args(argv)
    args.budget = dict(args.budget)
    return args


def run(args: argparse.Namespace) -> Path:
    r"""Run the benchmark described by parsed ``args``; return the JSONL file written."""
    with torch_threads(args.threads):
        return _run(args)


def _run(args: argparse.Namespace) -> Path:
    started = time.perf_counter()
    deadline = None if args.max_minutes is None else started + 60 * args.max_minutes
    out = args.out or RESULTS / "faithfulness" / f"s{args.seed}.jsonl"
    wrapper = load_wrapper(args.model, args.batch_size)
    counter = ForwardCounter(wrapper)
    names = variants(args.methods, args.equal_budget)
    rng = np.random.default_rng(args.seed)
    base = EVAL_SEED + 100_000 * args.seed
    with results_file(out, header("faithfulness", args.model, vars(args))) as file:
        if args.llm_scenes > 0:
            scenes = [generate_scene(base + i, "plain") for i in range(args.llm_scenes)]
            for row in time_llm_attribution(wrapper, counter, scenes, args.regions[0]):
                write_record(file, {"type": "captum_llm_speed", **row})
        for index in range(args.scenes):  # round-robin over kinds: stopping early keeps balance
            if deadline is not None and time.perf_counter() > deadline:
                break
            for kind in args.kinds:
                scene = generate_scene(base + index, kind)
                cases, counts = build_cases(wrapper, scene, args.tasks, args.words_per_scene, rng)
                write_record(file, {"type": "caption_words", "kind": kind, **counts})
                for n_regions in args.regions:
                    for case in cases:
                        feature_mask = FeatureMask.slico(case.sample.image, n_regions)
                        for record in explain_case(
                            wrapper,
                            counter,
                            case,
                            feature_mask,
                            names,
                            args.seed,
                            n_regions,
                            budgets=args.budget,
                        ):
                            write_record(file, {"type": "explanation", **record})
            elapsed = (time.perf_counter() - started) / 60
            print(f"[{elapsed:.1f} min] scene {index + 1}/{args.scenes} of each kind", flush=True)
    return out


def report(headers: Sequence[dict[str, Any]], records: Sequence[dict[str, Any]]) -> str:
    r"""The markdown printed at the end of a run (or by ``--report``): every group's table,
    the paired comparisons with Eagle and Captum's multimodal path's speed."""
    from benchmarks.report import environment

    explanations = [r for r in records if r.get("type") == "explanation"]
    names = list(dict.fromkeys(r["method"] for r in explanations))
    words: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for record in records:
        if record.get("type") == "caption_words":
            for key in ("words", "grounded_words", "explained_words"):
                words[record["kind"]][key] += record[key]
    parts = [
        environment(headers),
        "Colour / shape words in the captions (all, grounded in a scene object, explained): "
        f"{ {kind: dict(counts) for kind, counts in words.items()} }",
        markdown_tables(summarise(explanations), names),
    ]
    comparisons = compare(explanations) if "eagle" in names else []
    if comparisons:
        parts += [
            "Paired comparisons with Eagle (bootstrap, Holm-corrected), counted over every task, "
            "kind and metric:",
            markdown_verdict_counts(comparisons, names),
            "Paired comparisons with Eagle (mean Eagle − method):",
            markdown_verdicts(comparisons, names),
        ]
    speed = [r for r in records if r.get("type") == "captum_llm_speed"]
    if speed:
        parts += ["Speed of Captum's multimodal path:", markdown_speed(speed)]
    return "\n\n".join(parts)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    paths = args.report if args.report is not None else [run(args)]
    print(report(*read_results(paths)))


if __name__ == "__main__":
    main()
