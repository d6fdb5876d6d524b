r"""One sample of a run: explain it, score the map, point at the named objects, and for a wrong
yes/no answer explain and mitigate the hallucination."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from captum_eagle.datasets import ManifestEntry, ManifestError, answer_matches, load_mask
from captum_eagle.maps import region_order
from captum_eagle.masks import FeatureMask
from captum_eagle.metrics import deletion_curve, insertion_curve, pointing_game
from captum_eagle.run.config import RunConfig
from captum_eagle.run.methods import explain
from captum_eagle.run.store import eagle_record
from captum_eagle.text_features import TextFeatureSpec, parse_text_features
from captum_eagle.wrapper import MLLMForwardWrapper, PreparedSample

__all__ = ["process"]


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


def process(
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
    explanation = explain(wrapper, sample, mask, config, entry.id)
    attribution = explanation.attribution
    order = (
        explanation.eagle.order
        if explanation.eagle is not None
        else region_order(attribution, mask)
    )
    curve_args: dict[str, Any] = {
        "steps": config.steps,
        "feature_mask": mask,
        "baselines": config.baseline,
    }
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
            word_explanation = explain(
                wrapper, sample.with_target_tokens(indices), mask, config, f"{entry.id}/{word}"
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
        content["eagle"] = eagle_record(explanation.eagle)
    if config.text_features is not None:
        text_features = parse_text_features(config.text_features)
        record["joint"], content["joint"] = _joint(wrapper, sample, mask, config, text_features)
    hallucination = _hallucination(wrapper, image, entry, sample, mask, config)
    if hallucination is not None:
        record["hallucination"], content["hallucination_map"] = hallucination
    return record, content


def _joint(
    wrapper: MLLMForwardWrapper,
    sample: PreparedSample,
    mask: FeatureMask,
    config: RunConfig,
    text_features: TextFeatureSpec,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Joint mode: regions and prompt features in one order; (record entry, saved result)."""
    from captum_eagle.joint import explain_joint

    result = explain_joint(
        wrapper,
        sample,
        mask,
        text_features,
        baselines=config.baseline,
        search=config.search,
        batch_size=config.batch_size if isinstance(config.batch_size, int) else None,
    )
    texts = [feature.text for feature in result.text_features]
    summary = {
        "order": result.order.tolist(),
        "feature_labels": result.feature_labels,
        "text_scores": [
            [text, score] for text, score in zip(texts, result.text_scores.tolist(), strict=True)
        ],
        "reliance": [_finite(value) for value in result.reliance.tolist()],
        "forwards": result.eagle.forwards,
        "seconds": result.eagle.seconds,
    }
    return summary, result.to_dict()


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
    common: dict[str, Any] = {"baselines": config.baseline, "generate_batch_size": batch_size}
    if config.method == "eagle":
        result = explain_hallucination(
            wrapper, case, mask, search=config.search, batch_size=batch_size, **common
        )
    else:
        counterfactual = explain(wrapper, case.sample, mask, config, f"{entry.id}/hallucination")
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
