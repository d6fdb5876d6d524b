r"""Joint image + prompt attribution against ground truth on the bundled shapes model.

Held-out scenes of :mod:`captum_eagle.zoo` (seeds from ``EVAL_SEED + 3·10**5``), SLICO regions
(``--regions``, 16 by default) plus the words of the prompt as joint features
(:mod:`captum_eagle.joint`). Two answer kinds:

- ``yes``: a yes/no question about an object in the scene (``"is there a red circle?"``) that the
  model answered correctly "yes"; the first answer token is explained. Ground truth: the asked
  colour and shape words, and the regions of the asked object(s).
- ``caption``: the model's own caption of the scene (``"describe the image."``), all answer
  tokens. Expectation: the prompt words matter little (low text reliance).

Methods: Eagle (exact greedy over the joint features) and Captum's FeatureAblation, KernelShap,
Lime and ShapleyValueSampling on :class:`~captum_eagle.joint.JointForward`, with the sampling
methods at Eagle's forward count on the same explanation (``n_samples`` = Eagle's forwards;
Shapley permutations = forwards // N). A method's order is Eagle's ``π``, or the features by
decreasing attribution (ties by feature id).

Measures per explanation:

- ``top_text``: the method's highest text feature is the asked colour or shape word (yes only);
- ``top_region``: the method's highest image region lies mostly (≥ 50 % of its pixels) on the
  asked object (yes only; cases where no region does are left out, ``region_chance`` is the share of
  regions that would count);
- ``insertion`` / ``deletion``: start from every feature removed (black regions, prompt words
  replaced by the pad token) and insert features in the method's order (deletion: start from the
  full input and remove them); the curve is the mean target-token probability after each of the
  ``N`` steps, the AUC the trapezoid over ``x = r / N``. Insertion ↑, deletion ↓;
- ``reliance``: per answer token, the image's share of the positive insertion gains along the
  method's order (:func:`captum_eagle.reliance.modality_reliance`; NaN when nothing raised it).

Output: one JSONL file, a header record (command, machine, versions, weights sha256) and one record
per method and explanation; ``--report`` prints the tables (means with bootstrap 95 % intervals).

Usage::

    python benchmarks/joint.py --yes 30 --captions 10 --out benchmarks/results/joint/run.jsonl
    python benchmarks/joint.py --report benchmarks/results/joint/run.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from captum.attr import FeatureAblation, KernelShap, Lime, ShapleyValueSampling

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `benchmarks.faithfulness` importable
    sys.path.insert(0, str(ROOT))

from benchmarks.faithfulness import load_wrapper  # noqa: E402
from benchmarks.results import machine, versions, weights_info  # noqa: E402
from captum_eagle import FeatureMask, MLLMForwardWrapper  # noqa: E402
from captum_eagle.joint import JointForward, explain_joint  # noqa: E402
from captum_eagle.reliance import modality_reliance  # noqa: E402
from captum_eagle.wrapper import PreparedSample  # noqa: E402
from captum_eagle.zoo import DEFAULT_CAPTION_PROMPT, Scene, generate_scene  # noqa: E402
from captum_eagle.zoo.evaluate import EVAL_SEED  # noqa: E402

FIRST_SEED = EVAL_SEED + 3 * 10**5
BASELINES: dict[str, type] = {
    "feature_ablation": FeatureAblation,
    "kernel_shap": KernelShap,
    "lime": Lime,
    "shapley": ShapleyValueSampling,
}
METHODS = ("eagle", *BASELINES)
MEASURES: tuple[tuple[str, str], ...] = (
    ("top_text", "↑"),
    ("top_region", "↑"),
    ("insertion", "↑"),
    ("deletion", "↓"),
    ("reliance", ""),
)


# -- cases ----------------------------------------------------------------------------------------
def yes_cases(
    wrapper: MLLMForwardWrapper, n: int, kinds: Sequence[str], skipped: dict[str, int]
) -> Iterator[tuple[Scene, Any, PreparedSample]]:
    """Scenes with a present object the model correctly says "yes" to, one question per scene."""
    seed, found = FIRST_SEED, 0
    while found < n:
        scene = generate_scene(seed, kind=kinds[seed % len(kinds)])
        seed += 1
        question = next((q for q in scene.questions if q.answer == "yes"), None)
        if question is None:
            continue
        sample = wrapper.prepare(scene.pil(), question.text, max_new_tokens=1).with_target_tokens(0)
        if sample.answer_tokens[0].strip().lower() != "yes":
            skipped["wrong_answer"] += 1
            continue
        found += 1
        yield scene, question, sample


def caption_cases(
    wrapper: MLLMForwardWrapper, n: int, kinds: Sequence[str]
) -> Iterator[tuple[Scene, None, PreparedSample]]:
    """Scenes with the model's own caption (all answer tokens)."""
    for index in range(n):
        seed = FIRST_SEED + 50_000 + index
        scene = generate_scene(seed, kind=kinds[seed % len(kinds)])
        yield scene, None, wrapper.prepare(scene.pil(), DEFAULT_CAPTION_PROMPT)


# -- methods ------------------------------------------------------------------------------------
def method_order(
    name: str, joint: JointForward, budget: int, seed: int
) -> tuple[torch.Tensor, int | None]:
    """A baseline's feature order (decreasing attribution, ties by id) and the budget it ran at."""
    n = joint.n_features
    method = BASELINES[name](joint)
    kwargs: dict[str, Any] = {
        "baselines": 0.0,
        "feature_mask": torch.arange(n)[None],
        "perturbations_per_eval": joint.scorer.batch_size,
    }
    samples = None
    if name != "feature_ablation":
        samples = max(1, budget // n) if name == "shapley" else budget
        kwargs["n_samples"] = samples
    torch.manual_seed(seed)
    scores = method.attribute(torch.ones(1, n), **kwargs)[0].double()
    order = sorted(range(n), key=lambda i: (-float(scores[i]), i))
    return torch.tensor(order), samples


def curves(evaluator: JointForward, order: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token insertion ``(T, N + 1)`` and mean deletion ``(N + 1,)`` curves along ``order``."""
    n = order.numel()
    prefixes = torch.zeros(n + 1, n, dtype=torch.bool)
    for r in range(1, n + 1):
        prefixes[r, order[:r]] = True
    scores = evaluator.scorer.score(prefixes, terms=(True, False))
    return scores.kept.T, scores.removed.mean(dim=1)


def auc(curve: torch.Tensor) -> float:
    """Trapezoid AUC of a curve over ``x = r / N``, ``r = 0..N``."""
    values = curve.double()
    return float(((values[1:] + values[:-1]) / 2).mean())


def object_regions(mask: FeatureMask, scene: Scene, objects: Sequence[int]) -> list[bool]:
    """Per region: at least half of its pixels lie on the given scene objects."""
    on_object = torch.zeros(mask.mask.shape[-2:], dtype=torch.bool)
    for index in objects:
        on_object |= torch.from_numpy(np.asarray(scene.objects[index].mask, dtype=bool))
    labels = mask.mask[0, 0]
    if labels.shape != on_object.shape:
        raise ValueError(f"scene masks {on_object.shape} differ from the regions {labels.shape}")
    return [bool(on_object[labels == r].float().mean() >= 0.5) for r in range(mask.n_regions)]


def explain_case(
    wrapper: MLLMForwardWrapper,
    scene: Scene,
    question: Any,
    sample: PreparedSample,
    regions: int,
) -> list[dict[str, Any]]:
    """One record per method for one explanation."""
    mask = FeatureMask.slico(sample.image, regions)
    started = time.perf_counter()
    eagle = explain_joint(wrapper, sample, mask)
    eagle_seconds = time.perf_counter() - started
    budget = eagle.eagle.forwards
    evaluator = JointForward(wrapper, sample, mask)
    n_image = mask.n_regions
    is_image = torch.arange(evaluator.n_features) < n_image
    asked = set() if question is None else {question.colour, question.shape}
    on_object = [] if question is None else object_regions(mask, scene, question.evidence)
    records = []
    for name in METHODS:
        if name == "eagle":
            order, samples, forwards, seconds = eagle.order, None, budget, eagle_seconds
        else:
            joint = JointForward(wrapper, sample, mask)
            started = time.perf_counter()
            order, samples = method_order(name, joint, budget, scene.seed)
            seconds = time.perf_counter() - started
            forwards = joint.scorer.forwards
        insertion, deletion = curves(evaluator, order)
        text_order = [int(i) - n_image for i in order if i >= n_image]
        image_order = [int(i) for i in order if i < n_image]
        record: dict[str, Any] = {
            "record": "explanation",
            "task": "yes" if question is not None else "caption",
            "kind": scene.kind,
            "seed": scene.seed,
            "prompt": sample.prompt,
            "answer": sample.answer,
            "target_tokens": sample.target_tokens,
            "method": name,
            "n_samples": samples,
            "forwards": forwards,
            "seconds": seconds,
            "n_image_regions": n_image,
            "text_features": [f.text for f in eagle.text_features],
            "order": order.tolist(),
            "insertion": auc(insertion.mean(dim=0)),
            "deletion": auc(deletion),
            "reliance": modality_reliance(insertion, order, is_image).tolist(),
        }
        if question is not None:
            record["top_text_feature"] = eagle.text_features[text_order[0]].text
            record["top_text"] = record["top_text_feature"] in asked
            record["region_chance"] = sum(on_object) / n_image
            record["top_region"] = on_object[image_order[0]] if any(on_object) else None
        records.append(record)
    return records


# -- report -------------------------------------------------------------------------------------
def bootstrap(values: Sequence[float], seed: int = 0, draws: int = 2000) -> tuple[float, ...]:
    """Mean and bootstrap 95 % interval (percentile) of ``values``."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return (math.nan, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, (draws, data.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return (float(data.mean()), float(low), float(high))


def _values(records: Sequence[dict[str, Any]], measure: str) -> list[float]:
    if measure == "reliance":  # one value per answer token; NaN (nothing raised it) left out
        return [v for r in records for v in r["reliance"] if v is not None and not math.isnan(v)]
    return [float(r[measure]) for r in records if r.get(measure) is not None]


def report(records: Sequence[dict[str, Any]], headers: Sequence[dict[str, Any]]) -> str:
    """Markdown tables of the explanation records (one per answer kind)."""
    lines = []
    for header in headers:
        packages = header.get("versions", header["machine"])  # older files: in "machine"
        lines.append(
            f"Run: `{header['command']}` — {header['machine']['platform']}, "
            f"torch {packages['torch']}, captum {packages['captum']}, "
            f"transformers {packages['transformers']}, weights sha256 "
            f"`{header['weights'].get('weights_sha256', 'n/a')[:12]}…`, "
            f"{header.get('minutes', math.nan):.1f} min, {header.get('explained')} explanations "
            f"(incorrect yes-answers skipped: {header.get('skipped', {}).get('wrong_answer')})."
        )
    for task in ("yes", "caption"):
        rows = [r for r in records if r["task"] == task]
        if not rows:
            continue
        measures = [m for m, _ in MEASURES if task == "yes" or m in ("insertion", "deletion")]
        measures += ["reliance"] if task == "caption" else []
        cases = len({(r["seed"], r["prompt"]) for r in rows})
        lines += [
            "",
            f"**{task}** ({cases} explanations; mean [95% bootstrap interval], n)",
            "",
            "| method | samples | forwards | "
            + " | ".join(f"{m} {dict(MEASURES)[m]}".strip() for m in measures)
            + " |",
            "|---|---|---|" + "---|" * len(measures),
        ]
        for name in METHODS:
            mine = [r for r in rows if r["method"] == name]
            if not mine:
                continue
            samples = sorted({r["n_samples"] for r in mine if r["n_samples"] is not None})
            budget = f"{samples[0]}–{samples[-1]}" if samples else "—"
            forwards = np.mean([r["forwards"] for r in mine])
            cells = []
            for measure in measures:
                values = _values(mine, measure)
                mean, low, high = bootstrap(values)
                cells.append(f"{mean:.3f} [{low:.3f}, {high:.3f}] n={len(values)}")
            lines.append(f"| {name} | {budget} | {forwards:.0f} | " + " | ".join(cells) + " |")
        if task == "yes":
            chance = bootstrap([r["region_chance"] for r in rows if r["method"] == "eagle"])
            lines += ["", f"Chance of `top_region` (share of qualifying regions): {chance[0]:.3f}."]
            lines += ["", "Top text feature (count over the explanations):", ""]
            for name in METHODS:
                counts = Counter(r["top_text_feature"] for r in rows if r["method"] == name)
                ranked = ", ".join(f"`{word}` {count}" for word, count in counts.most_common())
                lines.append(f"- {name}: {ranked}")
    return "\n".join(lines)


def read_jsonl(paths: Sequence[Path]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Explanation records and header records of JSONL result files."""
    records, headers = [], []
    for path in paths:
        for line in path.read_text().splitlines():
            item = json.loads(line)
            (headers if item["record"] == "header" else records).append(item)
    return records, headers


# -- main ---------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--yes", type=int, default=30, help="correct yes-answers to explain")
    parser.add_argument("--captions", type=int, default=10, help="caption scenes to explain")
    parser.add_argument("--regions", type=int, default=16, help="SLICO n_segments")
    parser.add_argument("--kinds", nargs="+", default=["plain", "crowded"])
    parser.add_argument("--model", choices=("shapes", "tiny"), default="shapes")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-minutes", type=float, help="stop starting explanations after this")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/joint/run.jsonl"))
    parser.add_argument("--report", type=Path, nargs="+", help="print the tables of JSONL files")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.report:
        print(report(*read_jsonl(args.report)))
        return
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    wrapper = load_wrapper(args.model, args.batch_size)
    header = {
        "record": "header",
        "command": "python benchmarks/joint.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine(),
        "versions": versions(),
        "weights": weights_info(args.model),
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    skipped = {"wrong_answer": 0}
    cases = [
        *yes_cases(wrapper, args.yes, args.kinds, skipped),
        *caption_cases(wrapper, args.captions, args.kinds),
    ]
    with args.out.open("w") as out:
        out.write(json.dumps(header) + "\n")
        done = 0
        for scene, question, sample in cases:
            if args.max_minutes and time.perf_counter() - started > 60 * args.max_minutes:
                break
            for record in explain_case(wrapper, scene, question, sample, args.regions):
                out.write(json.dumps(record) + "\n")
            out.flush()
            done += 1
            print(f"{done}/{len(cases)} {time.perf_counter() - started:.0f}s", flush=True)
    header.update(minutes=(time.perf_counter() - started) / 60, explained=done, skipped=skipped)
    lines = args.out.read_text().splitlines()
    args.out.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    print(report(*read_jsonl([args.out])))


if __name__ == "__main__":
    main()
