r"""Dataset-scale runs: explain every sample of a manifest, resumably, sharded over processes.

``captum-eagle run MANIFEST --out DIR`` (or :func:`run`) explains each sample of a JSONL manifest
(:mod:`captum_eagle.datasets`) with Eagle or a Captum baseline on the same wrapper and regions, and
scores the map by the paper's protocol (:mod:`captum_eagle.metrics`). For each finished sample:

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
    torchrun --nproc_per_node 8 -m captum_eagle.runner coco.jsonl --out runs/eagle --model ...
    captum-eagle run coco.jsonl --out runs/kernel_shap --method kernel_shap --n-samples 500
    captum-eagle run --merge runs/eagle runs/kernel_shap      # one table row per run
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from captum_eagle.attribution import EagleAttribution, EagleResult
from captum_eagle.datasets import (
    ManifestEntry,
    ManifestError,
    ManifestLine,
    answer_matches,
    load_mask,
    read_manifest,
)
from captum_eagle.masks import FeatureMask
from captum_eagle.metrics import deletion_curve, insertion_curve, pointing_game
from captum_eagle.wrapper import MLLMForwardWrapper, PreparedSample

__all__ = [
    "METHODS",
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

RESULTS_PATTERN = "results-rank*.jsonl"
CONFIG_FILE = "run.json"


class RunnerError(RuntimeError):
    """A run cannot start (unwritable output folder, settings that clash with an earlier run)."""


# -- configuration -----------------------------------------------------------------------------
@dataclass(frozen=True)
class RunConfig:
    r"""What a run computes for every sample (saved to ``DIR/run.json``; a rerun must match it).

    Attributes:
        method (str): ``"eagle"`` or a baseline (:func:`list_methods`). Default: ``"eagle"``.
        regions (int): SLICO regions per image (``FeatureMask.slico``). Default: 64.
        search (str): Eagle's search strategy. Default: ``"exact"``.
        batch_size (int or "auto", optional): images per forward. Default: the wrapper's (16).
        steps (int, optional): insertion / deletion steps. Default: the number of regions.
        max_new_tokens (int): answer length when the manifest gives no target. Default: 32.
        n_samples (int, optional): budget of Lime / KernelShap / ShapleyValueSampling. Default:
            Captum's (25 each).
        ig_steps (int): IntegratedGradients steps. Default: 50.
        pointing (str): ``"word"`` (default): each word with a box or mask gets its own map
            (the method run on that word's tokens), as in the paper; ``"sentence"``: the
            sentence-level map is used for every word (no extra cost). A word is looked up in the
            explained answer case-insensitively (first occurrence; a plural in ``-s``/``-es``
            counts); a word that is not there is recorded as ``{"present": false}``.
        baseline (float): value of removed pixels in ``[0, 1]``. Default: 0 (black).
        seed (int): seed of the sampling methods; each sample is seeded from it and its id, so
            results do not depend on the sharding. Default: 0.
    """

    method: str = "eagle"
    regions: int = 64
    search: str = "exact"
    batch_size: int | str | None = None
    steps: int | None = None
    max_new_tokens: int = 32
    n_samples: int | None = None
    ig_steps: int = 50
    pointing: str = "word"
    baseline: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"Unknown method {self.method!r}; choose one of {list_methods()}.")
        if self.regions < 2:
            raise ValueError(f"regions must be >= 2; got {self.regions}.")
        if self.pointing not in ("word", "sentence"):
            raise ValueError(f"pointing must be 'word' or 'sentence'; got {self.pointing!r}.")
        batch_size = self.batch_size
        if batch_size not in (None, "auto") and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive int or 'auto'; got {batch_size!r}.")
        for name in ("steps", "n_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1; got {value}.")
        if not 0.0 <= self.baseline <= 1.0:
            raise ValueError(f"baseline must lie in [0, 1]; got {self.baseline}.")


@dataclass
class _Explanation:
    attribution: torch.Tensor  # (1, 1, H, W) float32 on CPU
    forwards: int
    seconds: float
    eagle: EagleResult | None = None


# -- methods -----------------------------------------------------------------------------------
def _eagle(wrapper, sample, mask, config) -> _Explanation:
    result = EagleAttribution(wrapper).explain(
        sample.image,
        baselines=config.baseline,
        additional_forward_args=(sample,),
        feature_mask=mask,
        search=config.search,
        batch_size=config.batch_size,
    )
    return _Explanation(result.attribution_map().float(), result.forwards, result.seconds, result)


def _captum(method_class: type, **extra: Callable[[Any, Any, RunConfig], Any]):
    """A baseline running a Captum method on the wrapper; ``extra`` builds its arguments."""

    def explain(wrapper, sample, mask, config) -> _Explanation:
        method = method_class(wrapper)
        kwargs = {name: make(wrapper, mask, config) for name, make in extra.items()}
        kwargs["additional_forward_args"] = (sample,)
        return _counted(wrapper, lambda: method.attribute(sample.image, **kwargs))

    return explain


def _counted(wrapper: MLLMForwardWrapper, compute: Callable[[], torch.Tensor]) -> _Explanation:
    images = [0]

    def count(_module: Any, args: tuple[Any, ...]) -> None:
        images[0] += int(args[0].shape[0])

    handle = wrapper.register_forward_pre_hook(count)
    started = time.perf_counter()
    try:
        attribution = compute()
    finally:
        handle.remove()
    attribution = attribution.detach().float().cpu()
    if attribution.ndim == 2:
        attribution = attribution[None, None]
    return _Explanation(
        attribution.sum(dim=1, keepdim=True), images[0], time.perf_counter() - started
    )


def _random(wrapper, sample, mask, config) -> _Explanation:
    generator = torch.Generator().manual_seed(torch.initial_seed())
    values = torch.rand(mask.n_regions, generator=generator)
    return _Explanation(values[mask.mask].float(), 0, 0.0)


def _region_baselines(wrapper, mask, config) -> float:
    return config.baseline


def _region_mask(wrapper, mask, config) -> torch.Tensor:
    return mask.mask


def _n_samples(wrapper, mask, config) -> int:
    return config.n_samples or 25  # Captum's default for Lime, KernelShap and Shapley sampling


def _per_eval(wrapper, mask, config) -> int:
    return config.batch_size if isinstance(config.batch_size, int) else wrapper.batch_size


def _occlusion_window(wrapper, mask, config) -> tuple[int, int, int]:
    height, width = mask.shape
    return (3, max(1, math.ceil(height / 8)), max(1, math.ceil(width / 8)))


def _build_methods() -> dict[str, Callable[..., _Explanation]]:
    from captum.attr import (
        FeatureAblation,
        IntegratedGradients,
        KernelShap,
        Lime,
        Occlusion,
        Saliency,
        ShapleyValueSampling,
    )

    region_args = {
        "baselines": _region_baselines,
        "feature_mask": _region_mask,
        "perturbations_per_eval": _per_eval,
    }
    return {
        "eagle": _eagle,
        "feature_ablation": _captum(FeatureAblation, **region_args),
        "shapley": _captum(ShapleyValueSampling, n_samples=_n_samples, **region_args),
        "lime": _captum(Lime, n_samples=_n_samples, **region_args),
        "kernel_shap": _captum(KernelShap, n_samples=_n_samples, **region_args),
        "occlusion": _captum(
            Occlusion,
            baselines=_region_baselines,
            sliding_window_shapes=_occlusion_window,
            strides=_occlusion_window,
            perturbations_per_eval=_per_eval,
        ),
        "integrated_gradients": _captum(
            IntegratedGradients,
            baselines=_region_baselines,
            n_steps=lambda w, m, c: c.ig_steps,
            internal_batch_size=_per_eval,
        ),
        "saliency": _captum(Saliency),
        "random": _random,
    }


METHODS: dict[str, Callable[..., _Explanation]] = _build_methods()
"""Methods a run can use, by name: Eagle and the Captum baselines of the faithfulness benchmark
(on the same wrapper; the region methods on the same SLICO regions), plus a random region map.
Occlusion slides a window of 1/8 of the image side; pixel maps (IntegratedGradients, Saliency,
Occlusion) are summed over colour channels."""


def list_methods() -> list[str]:
    """Names of the methods :func:`run` accepts."""
    return sorted(METHODS)


def register_method(
    name: str,
    attribute: Callable[[MLLMForwardWrapper, PreparedSample, FeatureMask, RunConfig], torch.Tensor],
) -> None:
    r"""Add a method (e.g. a benchmark's Grad-CAM baseline) that :func:`run` can use by name.

    Args:
        name (str): the name for ``RunConfig(method=name)``; must be new.
        attribute (callable): ``attribute(wrapper, sample, feature_mask, config)`` returning a map
            of ``sample.image``: ``(1, C, H, W)`` (channels are summed) or ``(H, W)``. Its
            forwards through the wrapper are counted; it is seeded per sample like the others.

    Examples::

        >>> import torch
        >>> from captum.attr import Saliency
        >>> from captum_eagle.runner import RunConfig, register_method
        >>> def absolute_saliency(wrapper, sample, feature_mask, config):
        ...     grads = Saliency(wrapper).attribute(sample.image, additional_forward_args=(sample,))
        ...     return grads.abs()
        >>> register_method("absolute_saliency", absolute_saliency)
        >>> RunConfig(method="absolute_saliency").method
        'absolute_saliency'
    """
    if name in METHODS:
        raise ValueError(f"A method named {name!r} exists already; pick another name.")

    def explain(wrapper, sample, mask, config) -> _Explanation:
        return _counted(wrapper, lambda: attribute(wrapper, sample, mask, config))

    METHODS[name] = explain


# -- one sample --------------------------------------------------------------------------------
def _sample_seed(config: RunConfig, sample_id: str) -> int:
    return (config.seed * 1_000_003 + zlib.crc32(sample_id.encode())) % (2**63)


def _explain(wrapper, sample, mask, config, sample_id) -> _Explanation:
    torch.manual_seed(_sample_seed(config, sample_id))
    return METHODS[config.method](wrapper, sample, mask, config)


def _region_order(attribution: torch.Tensor, mask: FeatureMask) -> torch.Tensor:
    ids = mask.mask.flatten()
    sums = torch.zeros(mask.n_regions, dtype=torch.float64).index_add_(
        0, ids, attribution.flatten().double()
    )
    means = sums / mask.areas.double()
    return torch.sort(-means, stable=True).indices


def _phrase_indices(sample: PreparedSample, phrase: str) -> list[int] | None:
    """Answer token indices of the first occurrence of ``phrase`` (plural ``-s``/``-es`` ok)."""
    wanted = re.findall(r"\w+", phrase.lower())
    spans = [(word.lower(), indices) for word, indices in sample.word_spans()]
    if not wanted:
        return None
    for start in range(len(spans) - len(wanted) + 1):
        window = spans[start : start + len(wanted)]
        if all(said in (w, w + "s", w + "es") for (said, _), w in zip(window, wanted, strict=True)):
            return sorted({i for _, indices in window for i in indices})
    return None


def _box_region(wrapper, boxes: list[list[float]], size: tuple[int, int]) -> torch.Tensor:
    height, width = size
    labels = np.zeros((height, width), dtype=np.int32)
    for x0, y0, x1, y1 in boxes:
        c0, r0 = max(0, math.floor(x0)), max(0, math.floor(y0))
        c1, r1 = min(width, math.ceil(x1)), min(height, math.ceil(y1))
        labels[r0:r1, c0:c1] = 1
    return wrapper.resize_labels(labels).bool()


def _mask_region(wrapper, path: Path, size: tuple[int, int]) -> torch.Tensor:
    mask = load_mask(path)
    if mask.shape != size:
        raise ManifestError(
            f"mask {path} is {mask.shape[1]}×{mask.shape[0]} (W×H) but the image is "
            f"{size[1]}×{size[0]}; masks must be drawn on the original image"
        )
    return wrapper.resize_labels(mask.astype(np.int32)).bool()


def _pointing(attribution: torch.Tensor, region: torch.Tensor) -> dict[str, Any]:
    if not region.any():
        return {"hit": None, "tie_aware": None, "note": "object outside the model's view"}
    result = pointing_game(attribution, mask=region)
    return {"hit": result.hit, "tie_aware": result.tie_aware}


def _finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _load_image(entry: ManifestEntry, root: Path) -> Image.Image:
    path = entry.resolve(entry.image, root)
    if not path.is_file():
        raise FileNotFoundError(f"missing image: {path}")
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except OSError as error:
        raise ManifestError(f"unreadable image {path}: {error}") from error


def _process(
    wrapper: MLLMForwardWrapper, entry: ManifestEntry, root: Path, config: RunConfig
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Explain and score one sample; return (results record, sample file content)."""
    image = _load_image(entry, root)
    original_size = (image.height, image.width)
    object_regions = {
        word: (
            _box_region(wrapper, entry.boxes[word], original_size) if word in entry.boxes else None,
            _mask_region(wrapper, entry.resolve(entry.masks[word], root), original_size)
            if word in entry.masks
            else None,
        )
        for word in dict.fromkeys([*entry.boxes, *entry.masks])
    }

    sample = wrapper.prepare(
        image, entry.prompt, entry.target, max_new_tokens=config.max_new_tokens
    )
    mask = FeatureMask.slico(sample.image, n_segments=config.regions)
    explanation = _explain(wrapper, sample, mask, config, entry.id)
    attribution = explanation.attribution
    order = (
        explanation.eagle.order
        if explanation.eagle is not None
        else _region_order(attribution, mask)
    )
    curve_args = {"steps": config.steps, "feature_mask": mask, "baseline": config.baseline}
    insertion = insertion_curve(wrapper, sample, attribution, **curve_args)
    deletion = deletion_curve(wrapper, sample, attribution, **curve_args)
    sensitive_insertion, sensitive_deletion = insertion.sensitive(), deletion.sensitive()
    metrics = {
        "insertion_auc": insertion.auc,
        "deletion_auc": deletion.auc,
        "highest": insertion.highest,
        "sensitive_insertion_auc": _finite(sensitive_insertion.auc),
        "sensitive_deletion_auc": _finite(sensitive_deletion.auc),
        "sensitive_highest": _finite(sensitive_insertion.highest),
        "n_tokens": insertion.n_tokens,
        "n_sensitive_tokens": sensitive_insertion.n_tokens,
    }

    pointing: dict[str, Any] = {}
    word_maps: dict[str, torch.Tensor] = {}
    word_forwards = 0
    for word, (box_region, mask_region) in object_regions.items():
        indices = _phrase_indices(sample, word)
        if indices is None:
            pointing[word] = {"present": False}
            continue
        if config.pointing == "word":
            word_explanation = _explain(
                wrapper, sample.with_targets(indices), mask, config, f"{entry.id}/{word}"
            )
            word_map = word_explanation.attribution
            word_forwards += word_explanation.forwards
        else:
            word_map = attribution
        word_maps[word] = word_map
        pointing[word] = {"present": True, "tokens": indices}
        if box_region is not None:
            pointing[word]["box"] = _pointing(word_map, box_region)
        if mask_region is not None:
            pointing[word]["mask"] = _pointing(word_map, mask_region)

    record: dict[str, Any] = {
        "answer": sample.answer,
        "target_tokens": sample.target_tokens,
        "n_regions": mask.n_regions,
        "order": order.tolist(),
        "metrics": metrics,
        "pointing": pointing,
        "forwards": explanation.forwards,
        "word_forwards": word_forwards,
        "seconds": explanation.seconds,
    }
    if entry.answer is not None:
        record["qa"] = {
            "expected": entry.answer,
            "correct": answer_matches(sample.answer, entry.answer),
        }
    content: dict[str, Any] = {
        "id": entry.id,
        "attribution": attribution,
        "feature_mask": mask.mask.clone(),
        "order": order.clone(),
        "answer": sample.answer,
        "target_tokens": sample.target_tokens,
        "insertion": insertion.to_dict(),
        "deletion": deletion.to_dict(),
        "word_maps": word_maps,
        "record": record,
    }
    if explanation.eagle is not None:
        content["eagle"] = _eagle_content(explanation.eagle)
    hallucination = _hallucination(wrapper, image, entry, sample, mask, config)
    if hallucination is not None:
        record["hallucination"], content["hallucination_map"] = hallucination
    return record, content


def _hallucination(
    wrapper: MLLMForwardWrapper,
    image: Image.Image,
    entry: ManifestEntry,
    sample: PreparedSample,
    mask: FeatureMask,
    config: RunConfig,
) -> tuple[dict[str, Any], torch.Tensor] | None:
    """For a wrong yes/no answer: explain the correct answer, remove regions until it flips."""
    # Imported here: only samples with a wrong yes/no answer need the mitigation loop.
    from captum_eagle.hallucination import (
        answer_word,
        explain_hallucination,
        mitigate,
        prepare_case,
    )

    expected = entry.answer if isinstance(entry.answer, str) else (entry.answer or [""])[0]
    said, truth = answer_word(sample.answer), answer_word(expected)
    if said not in ("yes", "no") or truth not in ("yes", "no") or said == truth:
        return None
    case = prepare_case(wrapper, image, entry.prompt, answer=sample.answer, correct=expected)
    batch_size = config.batch_size if isinstance(config.batch_size, int) else None
    common = {"baseline": config.baseline, "generate_batch_size": batch_size}
    if config.method == "eagle":
        result = explain_hallucination(
            wrapper, case, mask, search=config.search, batch_size=batch_size, **common
        )
    else:
        counterfactual = _explain(wrapper, case.sample, mask, config, f"{entry.id}/hallucination")
        attribution = counterfactual.attribution
        result = mitigate(
            wrapper, case, mask, attribution=attribution, method=config.method, **common
        )
    summary = {
        "wrong": result.wrong,
        "correct": result.correct,
        "corrected": result.corrected,
        "flip_point": result.flip_point,
        "removed_fraction": result.fraction_removed,
        "removal_order": result.removal_order.tolist(),
        "answers": result.answers,
    }
    return summary, result.hallucination_map


_EAGLE_FIELDS = (
    "order",
    "objective",
    "gains",
    "insight",
    "necessity",
    "trajectories",
    "removal_trajectories",
    "region_attribution",
    "token_attribution",
    "influence",
    "influence_area",
    "target_tokens",
    "search",
    "forwards",
)


def _eagle_content(result: EagleResult) -> dict[str, Any]:
    return {name: getattr(result, name) for name in _EAGLE_FIELDS}


# -- files -------------------------------------------------------------------------------------
def _sample_file_name(sample_id: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", sample_id)
    if safe != sample_id or len(safe) > 120 or safe.startswith("."):
        safe = f"{safe[:80]}-{hashlib.sha1(sample_id.encode()).hexdigest()[:10]}"
    return f"{safe}.pt"


def _atomic_write(path: Path, write: Callable[[Any], None], prefix: str = ".tmp-") -> None:
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
    path = Path(out) / "samples" / _sample_file_name(sample_id)
    if not path.is_file():
        raise FileNotFoundError(f"No saved sample {sample_id!r} in {out} (looked for {path}).")
    return torch.load(path, weights_only=True)


def _repair_tail(path: Path) -> None:
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


def _check_writable(out: Path) -> None:
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


def _check_config(out: Path, settings: dict[str, Any], rank: int) -> None:
    path = out / CONFIG_FILE
    if path.is_file():
        saved = json.loads(path.read_text(encoding="utf-8"))
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
        _atomic_write(path, lambda handle: handle.write(text))


# -- model -------------------------------------------------------------------------------------
ModelSpec = str | MLLMForwardWrapper | Callable[[], Any]


def _model_name(model: ModelSpec) -> str:
    if isinstance(model, str):
        return model
    if isinstance(model, MLLMForwardWrapper):
        return str(getattr(model.model.config, "_name_or_path", "") or type(model.model).__name__)
    return getattr(model, "__qualname__", type(model).__name__)


def _load_wrapper(model: ModelSpec, device: torch.device, config: RunConfig) -> MLLMForwardWrapper:
    if isinstance(model, MLLMForwardWrapper):
        wrapper = model
    elif callable(model):
        built = model()
        wrapper = built if isinstance(built, MLLMForwardWrapper) else MLLMForwardWrapper(*built)
    elif model == "default":
        from captum_eagle.zoo import load_default_model

        wrapper = MLLMForwardWrapper(*load_default_model(device=device))
    else:
        wrapper = MLLMForwardWrapper.from_pretrained(model, device=device, local_files_only=True)
    if isinstance(config.batch_size, int):
        wrapper.batch_size = config.batch_size
    return wrapper


# -- distributed -------------------------------------------------------------------------------
def _distributed_context(rank: int | None, world_size: int | None) -> tuple[int, int, bool]:
    """Rank and world size (from torchrun's environment unless given); whether we set up dist."""
    import torch.distributed as dist

    env_world = int(os.environ.get("WORLD_SIZE", "1"))
    if rank is not None or world_size is not None:
        return rank or 0, world_size or 1, False
    if env_world > 1 and dist.is_available() and not dist.is_initialized():
        # Only a barrier is exchanged, so gloo serves CPU and GPU runs alike; shards may finish
        # hours apart, hence the long timeout.
        dist.init_process_group("gloo", timeout=timedelta(days=7))
        return dist.get_rank(), dist.get_world_size(), True
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False
    return int(os.environ.get("RANK", "0")), env_world, False


def _device() -> torch.device:
    if torch.cuda.is_available():
        # One device per process; more processes than devices share them round-robin.
        index = int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count()
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return torch.device("cpu")


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

    Examples::

        >>> from captum_eagle.runner import RunConfig, run
        >>> config = RunConfig(regions=32)
        >>> summary = run("coco.jsonl", "runs/eagle", config=config)  # doctest: +SKIP
        >>> summary.tables["rows"][0]["insertion_auc"]  # doctest: +SKIP
    """
    import torch.distributed as dist

    config = config or RunConfig()
    manifest, out = Path(manifest), Path(out)
    lines = read_manifest(manifest)
    _check_writable(out)
    rank, world_size, initialised = _distributed_context(rank, world_size)
    try:
        settings = {
            **asdict(config),
            "model": _model_name(model),
            "manifest": str(manifest.resolve()),
        }
        _check_config(out, settings, rank)
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
    _repair_tail(results_path)
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
    wrapper = _load_wrapper(model, _device(), config) if any(line.entry for line in todo) else None
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
                try:
                    values, content = _process(wrapper, line.entry, root, config)
                except Exception as error:  # one bad sample must not stop a dataset run
                    record = {
                        **base,
                        "status": "error",
                        "error": f"{type(error).__name__}: {error}",
                    }
                else:
                    file = samples_dir / _sample_file_name(line.id)
                    _atomic_write(file, partial(torch.save, content), temporary_prefix)
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


# -- merging -----------------------------------------------------------------------------------
COLUMNS: tuple[tuple[str, str], ...] = (
    ("run", "run"),
    ("method", "method"),
    ("samples", "samples"),
    ("errors", "errors"),
    ("insertion_auc", "insertion ↑"),
    ("deletion_auc", "deletion ↓"),
    ("highest", "AHS ↑"),
    ("sensitive_insertion_auc", "sens. insertion ↑"),
    ("sensitive_deletion_auc", "sens. deletion ↓"),
    ("sensitive_highest", "sens. AHS ↑"),
    ("sensitive_samples", "sens. samples"),
    ("pointing_box", "pointing box ↑"),
    ("pointing_box_tie_aware", "box tie-aware ↑"),
    ("pointing_mask", "pointing mask ↑"),
    ("pointing_mask_tie_aware", "mask tie-aware ↑"),
    ("pointing_words", "words"),
    ("qa_accuracy", "QA accuracy"),
    ("hallucination_cases", "hallucinations"),
    ("amcr", "AMCR ↓"),
    ("csr_10", "CSR@10% ↑"),
    ("seconds", "seconds"),
    ("forwards", "forwards"),
)
"""Table columns: (key in ``tables.json`` rows, markdown header)."""


def _mean(values: list[float | None]) -> float | None:
    kept = [float(v) for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def _cases(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r["hallucination"] for r in records if r.get("hallucination")]


def _row(out: Path) -> dict[str, Any]:
    records = list(load_results(out).values())
    ok = [r for r in records if r["status"] == "ok"]
    config_path = out / CONFIG_FILE
    method = (
        json.loads(config_path.read_text(encoding="utf-8")).get("method")
        if config_path.is_file()
        else (records[0]["method"] if records else None)
    )
    row: dict[str, Any] = {
        "run": out.name,
        "method": method,
        "samples": len(ok),
        "errors": len(records) - len(ok),
    }
    for key in (
        "insertion_auc",
        "deletion_auc",
        "highest",
        "sensitive_insertion_auc",
        "sensitive_deletion_auc",
        "sensitive_highest",
    ):
        row[key] = _mean([r["metrics"][key] for r in ok])
    row["sensitive_samples"] = sum(r["metrics"]["n_sensitive_tokens"] > 0 for r in ok)
    words = [w for r in ok for w in r["pointing"].values() if w.get("present")]
    for level in ("box", "mask"):
        results = [w[level] for w in words if level in w and w[level]["hit"] is not None]
        row[f"pointing_{level}"] = _mean([float(w["hit"]) for w in results])
        row[f"pointing_{level}_tie_aware"] = _mean([w["tie_aware"] for w in results])
    row["pointing_words"] = len(words)
    qa = [r["qa"] for r in ok if "qa" in r]
    row["qa_accuracy"] = _mean([float(q["correct"]) for q in qa])
    cases = [h["removed_fraction"] if h["corrected"] else None for h in _cases(ok)]
    if cases:
        from captum_eagle.hallucination import amcr, csr

        row["amcr"], row["csr_10"] = amcr(cases), csr(cases, threshold=0.10)
    else:
        row["amcr"] = row["csr_10"] = None
    row["hallucination_cases"] = len(cases)
    row["seconds"] = _mean([r["seconds"] for r in ok])
    row["forwards"] = _mean([r["forwards"] for r in ok])
    return row


def merge(out_dirs: Sequence[str | Path], *, write_to: str | Path | None = None) -> dict[str, Any]:
    r"""Aggregate the per-sample results of one or more runs into the paper's tables.

    Each run folder gives one row: means over its successful samples of the sentence-level and
    sensitive-token insertion AUC, deletion AUC and Average Highest Score (samples without a
    sensitive token are left out of the sensitive columns), the pointing game (authors' rule and
    tie-aware) over all (sample, word) pairs whose word is in the answer, at box and mask level,
    the QA accuracy, AMCR / CSR@10% where hallucination results exist, and the mean seconds and
    forwards per explanation.

    Args:
        out_dirs: run folders (``--out`` of :func:`run`).
        write_to: folder for ``tables.json`` and ``tables.md``. Default: the run folder when one
            is given; nothing is written for several.

    Returns:
        dict: ``{"columns": [...], "rows": [{column: value}], "markdown": str}``.

    Examples::

        >>> from captum_eagle.runner import merge
        >>> print(merge(["runs/eagle", "runs/kernel_shap"])["markdown"])  # doctest: +SKIP
    """
    dirs = [Path(d) for d in out_dirs]
    missing = [str(d) for d in dirs if not d.is_dir()]
    if missing:
        raise FileNotFoundError(f"Run folder(s) not found: {missing}")
    rows = [_row(d) for d in dirs]
    tables = {"columns": [key for key, _ in COLUMNS], "rows": rows, "markdown": format_table(rows)}
    target = Path(write_to) if write_to is not None else (dirs[0] if len(dirs) == 1 else None)
    if target is not None:
        target.mkdir(parents=True, exist_ok=True)
        data = json.dumps({k: tables[k] for k in ("columns", "rows")}, indent=2).encode()
        _atomic_write(target / "tables.json", lambda handle: handle.write(data))
        markdown = tables["markdown"].encode()
        _atomic_write(target / "tables.md", lambda handle: handle.write(markdown))
    return tables


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    r"""Markdown table of merged rows (columns with no value in any row are left out).

    Args:
        rows: rows from :func:`merge`.

    Returns:
        str: the table, floats with 3 decimals, ``–`` where a run has no value.
    """
    columns = [(k, h) for k, h in COLUMNS if any(row.get(k) is not None for row in rows)]

    def cell(value: Any) -> str:
        if value is None:
            return "–"
        if isinstance(value, float):
            return f"{value:.3f}"
        return str(value)

    lines = [
        "| " + " | ".join(h for _, h in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    lines += ["| " + " | ".join(cell(row.get(k)) for k, _ in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# -- command line ------------------------------------------------------------------------------
def _batch_size(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"expected a positive int or 'auto'; got {text!r}"
        ) from error


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="captum-eagle run",
        description=(
            "Explain every sample of a JSONL manifest (resumable; shard it with torchrun "
            "--nproc_per_node N -m captum_eagle.runner ...), then merge the metrics into tables."
        ),
    )
    parser.add_argument("manifest", nargs="?", help="JSONL manifest (see captum_eagle.datasets)")
    parser.add_argument("--out", help="output folder (a rerun resumes it)")
    parser.add_argument(
        "--merge", nargs="+", metavar="DIR", help="only merge these run folders into a table"
    )
    parser.add_argument(
        "--model", default="default", help="'default' (shapes model) or a HF id / local path"
    )
    defaults = RunConfig()
    parser.add_argument("--method", default=defaults.method, choices=list_methods())
    parser.add_argument("--regions", type=int, default=defaults.regions, help="SLICO regions")
    parser.add_argument("--search", default=defaults.search, help="Eagle search strategy")
    parser.add_argument("--batch-size", type=_batch_size, help="images per forward, or 'auto'")
    parser.add_argument("--steps", type=int, help="insertion/deletion steps (default: regions)")
    parser.add_argument("--max-new-tokens", type=int, default=defaults.max_new_tokens)
    parser.add_argument("--n-samples", type=int, help="Lime/KernelShap/Shapley sample budget")
    parser.add_argument("--ig-steps", type=int, default=defaults.ig_steps)
    parser.add_argument("--pointing", choices=("word", "sentence"), default=defaults.pointing)
    parser.add_argument("--baseline", type=float, default=defaults.baseline)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--max-samples", type=int, help="stop after this many samples per process (resume later)"
    )
    parser.add_argument(
        "--retry-errors", action="store_true", help="explain again samples recorded as errors"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    r"""The ``captum-eagle run`` command (also ``python -m captum_eagle.runner``).

    Args:
        argv: arguments after ``run`` (default: ``sys.argv[1:]``).

    Returns:
        int: 0 when the run finished (per-sample errors are recorded, not fatal); 2 when it
        cannot start (unwritable ``--out``, missing manifest or model, clashing settings, bad
        options).
    """
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.merge:
            tables = merge(args.merge, write_to=args.out)
            print(tables["markdown"], end="")
            return 0
        if not args.manifest or not args.out:
            parser.error("give MANIFEST and --out DIR (or --merge DIR ...)")
        config = RunConfig(
            method=args.method,
            regions=args.regions,
            search=args.search,
            batch_size=args.batch_size,
            steps=args.steps,
            max_new_tokens=args.max_new_tokens,
            n_samples=args.n_samples,
            ig_steps=args.ig_steps,
            pointing=args.pointing,
            baseline=args.baseline,
            seed=args.seed,
        )
        summary = run(
            args.manifest,
            args.out,
            model=args.model,
            config=config,
            max_samples=args.max_samples,
            retry_errors=args.retry_errors,
            show_progress=not args.no_progress,
        )
    except (RunnerError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        f"[rank {summary.rank}/{summary.world_size}] {summary.finished} explained, "
        f"{summary.errors} errors, {summary.skipped} already done, {summary.remaining} left",
        file=sys.stderr,
    )
    if summary.tables is not None:
        print(summary.tables["markdown"], end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
