r"""COCO captions (and instances: boxes, masks, with the RLE decoder) to manifest entries."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from skimage.draw import polygon as fill_polygon

from captum_eagle.datasets.manifest import ManifestEntry, ManifestError

__all__ = ["CAPTION_PROMPT", "coco_captions_manifest", "decode_coco_rle"]

CAPTION_PROMPT = (
    "Describe the image in one factual English sentence of no more than 20 words. "
    "Do not include information that is not clearly visible."
)
"""The paper's captioning prompt (COCO)."""


def _load_json(path: str | Path, what: str) -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ManifestError(f"{what} {path} is not valid JSON: {error}") from error


def decode_coco_rle(rle: dict[str, Any]) -> np.ndarray:
    r"""Decode a COCO run-length encoding (``iscrowd`` segmentations) to a boolean mask.

    Accepts both forms COCO files use: uncompressed (``counts`` a list of run lengths) and
    compressed (``counts`` a string, the pycocotools character code). Runs alternate background,
    object, background, ... and walk the image in column-major order.

    Args:
        rle (dict): ``{"size": [height, width], "counts": list | str}``.

    Returns:
        ndarray: ``(height, width)`` boolean.

    Examples::

        >>> from captum_eagle.datasets import decode_coco_rle
        >>> decode_coco_rle({"size": [2, 3], "counts": [1, 2, 3]}).astype(int).tolist()
        [[0, 1, 0], [1, 0, 0]]
    """
    height, width = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, str | bytes):
        counts = _rle_string_counts(counts.decode() if isinstance(counts, bytes) else counts)
    flat = np.zeros(height * width, dtype=bool)
    position = 0
    for run, length in enumerate(counts):
        if run % 2:
            flat[position : position + length] = True
        position += length
    if position != height * width:
        raise ManifestError(
            f"RLE covers {position} pixels but the mask is {height}×{width} = {height * width}"
        )
    return flat.reshape(width, height).T


def _rle_string_counts(text: str) -> list[int]:
    counts: list[int] = []
    position = 0
    while position < len(text):
        value, shift, more = 0, 0, True
        while more:
            code = ord(text[position]) - 48
            value |= (code & 0x1F) << shift
            more = bool(code & 0x20)
            position += 1
            shift += 5
            if not more and code & 0x10:
                value |= -1 << shift
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return counts


def _segmentation_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    if isinstance(segmentation, dict):
        return decode_coco_rle(segmentation)
    # A pixel (row r, column c) covers [c, c + 1) × [r, r + 1); it belongs to the object when its
    # centre lies inside the polygon, hence the half-pixel shift onto skimage's integer grid.
    mask = np.zeros((height, width), dtype=bool)
    for points in segmentation:
        xs = np.asarray(points[0::2], dtype=float) - 0.5
        ys = np.asarray(points[1::2], dtype=float) - 0.5
        rows, cols = fill_polygon(ys, xs, shape=(height, width))
        mask[rows, cols] = True
    return mask


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def coco_captions_manifest(
    captions: str | Path,
    images_dir: str | Path,
    *,
    instances: str | Path | None = None,
    masks_dir: str | Path | None = None,
    prompt: str = CAPTION_PROMPT,
    explain: str = "model",
    synonyms: dict[str, Sequence[str]] | None = None,
    limit: int | None = None,
) -> list[ManifestEntry]:
    r"""Manifest entries for COCO captioning, with object boxes and masks from the instances file.

    Layout read (the official COCO 2014/2017 annotation files):

    - ``captions_*.json``: ``{"images": [{"id", "file_name", "height", "width"}, ...],
      "annotations": [{"image_id", "caption"}, ...]}``.
    - ``instances_*.json`` (optional): ``{"images": [...], "categories": [{"id", "name"}, ...],
      "annotations": [{"image_id", "category_id", "bbox": [x, y, w, h], "segmentation":
      polygons | RLE, "iscrowd"}, ...]}``.

    One entry per image (in the captions file's image order), id ``"coco-<image id>"``,
    ``image = images_dir / file_name``. Boxes are keyed by category name (``"person"``,
    ``"dining table"``), one box per instance, ``[x, y, x + w, y + h]``; crowd instances included.
    With ``masks_dir``, the union of each category's instance masks is written there as
    ``coco-<image id>-<category>.png`` and listed under ``masks``. The reference captions go to
    ``meta["references"]``.

    Args:
        captions: the ``captions_*.json`` file.
        images_dir: the folder holding the images (e.g. ``val2017/``).
        instances: the matching ``instances_*.json`` for boxes / masks (optional).
        masks_dir: where to write mask PNGs (needs ``instances``). Default: no masks.
        prompt (str): the captioning prompt. Default: the paper's (:data:`CAPTION_PROMPT`).
        explain (str): ``"model"`` (default, as in the paper): explain the model's own caption;
            ``"reference"``: explain the first reference caption (``target``).
        synonyms (dict, optional): extra words per category name, e.g.
            ``{"person": ["man", "woman"]}``; each gets the category's boxes and mask, so the
            pointing game also runs when the caption says "man".
        limit (int, optional): keep the first ``limit`` images.

    Returns:
        list of ManifestEntry (write it with :func:`write_manifest`).

    Examples::

        >>> from captum_eagle.datasets import coco_captions_manifest, write_manifest
        >>> entries = coco_captions_manifest(  # doctest: +SKIP
        ...     "annotations/captions_val2017.json", "val2017",
        ...     instances="annotations/instances_val2017.json", masks_dir="masks", limit=500)
        >>> write_manifest(entries, "coco_val_500.jsonl")  # doctest: +SKIP
    """
    if explain not in ("model", "reference"):
        raise ValueError(f"explain must be 'model' or 'reference'; got {explain!r}.")
    if masks_dir is not None and instances is None:
        raise ValueError("masks_dir needs instances=... (the masks come from the instances file).")
    data = _load_json(captions, "COCO captions file")
    if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
        raise ManifestError(
            f"{captions} is not a COCO captions file (needs 'images' and 'annotations')"
        )
    references: dict[int, list[str]] = {}
    for annotation in data["annotations"]:
        references.setdefault(annotation["image_id"], []).append(annotation["caption"].strip())
    objects = _coco_objects(instances) if instances is not None else {}
    images_dir = Path(images_dir)
    masks_path = Path(masks_dir) if masks_dir is not None else None
    if masks_path is not None:
        masks_path.mkdir(parents=True, exist_ok=True)
    extra = {name: list(words) for name, words in (synonyms or {}).items()}
    entries = []
    for image in data["images"][:limit] if limit is not None else data["images"]:
        image_id = image["id"]
        captions_of = references.get(image_id, [])
        if explain == "reference" and not captions_of:
            raise ManifestError(f"image {image_id} has no caption to explain")
        boxes: dict[str, list[list[float]]] = {}
        masks: dict[str, str] = {}
        for name, (category_boxes, mask) in objects.get(image_id, {}).items():
            for word in [name, *extra.get(name, [])]:
                boxes[word] = category_boxes
            if masks_path is not None:
                file = masks_path / f"coco-{image_id}-{_slug(name)}.png"
                Image.fromarray(mask.astype(np.uint8) * 255).save(file)
                for word in [name, *extra.get(name, [])]:
                    masks[word] = str(file.resolve())
        entries.append(
            ManifestEntry(
                id=f"coco-{image_id}",
                image=str((images_dir / image["file_name"]).resolve()),
                prompt=prompt,
                target=captions_of[0] if explain == "reference" else None,
                boxes=boxes,
                masks=masks,
                meta={"references": captions_of, "coco_id": image_id},
            )
        )
    return entries


def _coco_objects(
    instances: str | Path,
) -> dict[int, dict[str, tuple[list[list[float]], np.ndarray]]]:
    data = _load_json(instances, "COCO instances file")
    if not isinstance(data, dict) or not {"images", "annotations", "categories"} <= set(data):
        raise ManifestError(
            f"{instances} is not a COCO instances file (needs 'images', 'annotations', "
            "'categories')"
        )
    names = {category["id"]: category["name"] for category in data["categories"]}
    sizes = {image["id"]: (image["height"], image["width"]) for image in data["images"]}
    objects: dict[int, dict[str, tuple[list[list[float]], np.ndarray]]] = {}
    for annotation in data["annotations"]:
        image_id = annotation["image_id"]
        height, width = sizes[image_id]
        name = names[annotation["category_id"]]
        x, y, w, h = (float(v) for v in annotation["bbox"])
        boxes, mask = objects.setdefault(image_id, {}).get(
            name, ([], np.zeros((height, width), dtype=bool))
        )
        if w > 0 and h > 0:
            boxes.append([x, y, x + w, y + h])
        if "segmentation" in annotation:
            mask = mask | _segmentation_mask(annotation["segmentation"], height, width)
        objects[image_id][name] = (boxes, mask)
    return objects
