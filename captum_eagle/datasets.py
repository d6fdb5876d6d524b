r"""Manifests for dataset-scale runs, and readers that build them from the paper's data layouts.

A **manifest** is a JSONL file, one sample per line, read by :mod:`captum_eagle.runner`::

    {"id": "coco-139", "image": "val2017/000000000139.jpg",
     "prompt": "Describe the image in one factual English sentence ...",
     "target": "a man riding a horse",            # optional: explain this text, not the answer
     "question": "Is there a horse in the image?",  # optional: the raw question (QA samples)
     "answer": "yes",                               # optional: expected answer (or a list)
     "boxes": {"horse": [10, 20, 110, 220]},        # optional: word -> box or list of boxes
     "masks": {"horse": "masks/coco-139-horse.png"},# optional: word -> .png / .npy mask
     "meta": {"references": ["..."]}}               # optional: anything, copied to the results

Fields:

- ``id`` (str, unique): names the sample's result file; a rerun skips ids already done.
- ``image`` (str): path, absolute or relative to the manifest's folder. Any format PIL reads.
- ``prompt`` (str): what the model is asked (the chat template is applied by the wrapper).
- ``target`` (str): the text to explain. Default: the model's own greedy answer (as in the paper).
- ``question`` / ``answer``: for question answering. ``answer`` is a string or a list of accepted
  strings, compared with :func:`answer_matches`.
- ``boxes``: ``{word: [x0, y0, x1, y1]}`` or ``{word: [[x0, y0, x1, y1], ...]}`` in pixels of the
  *original* image, ``x`` = column, ``x1, y1`` exclusive (COCO's ``[x, y, w, h]`` becomes
  ``[x, y, x + w, y + h]``). Several boxes mean several instances; the pointing game counts a hit
  inside any of them. A key may be several words (``"traffic light"``).
- ``masks``: ``{word: path}``, a ``.png`` (nonzero = object) or ``.npy`` (boolean) mask of the
  original image's size, paths relative to the manifest's folder or absolute.
- ``meta`` (dict): free-form; copied to the results line.

Readers (all offline, on files the user already has):

- :func:`coco_captions_manifest`: COCO ``captions_*.json`` (+ optionally ``instances_*.json`` for
  boxes and masks).
- :func:`mmvp_manifest`: MMVP's ``Questions.csv`` and image folder.
- :func:`repope_manifest`: RePOPE (or POPE) annotation files.

Write the result with :func:`write_manifest`; read one with :func:`read_manifest`. The same readers
are on the command line: ``python -m captum_eagle.datasets coco|mmvp|repope ... --out FILE``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from skimage.draw import polygon as fill_polygon

__all__ = [
    "CAPTION_PROMPT",
    "HALLUCINATION_PROMPT",
    "MMVP_PROMPT",
    "ManifestEntry",
    "ManifestError",
    "ManifestLine",
    "answer_matches",
    "coco_captions_manifest",
    "decode_coco_rle",
    "load_mask",
    "main",
    "mmvp_manifest",
    "read_manifest",
    "repope_manifest",
    "write_manifest",
]

CAPTION_PROMPT = (
    "Describe the image in one factual English sentence of no more than 20 words. "
    "Do not include information that is not clearly visible."
)
"""The paper's captioning prompt (COCO)."""

HALLUCINATION_PROMPT = (
    "You are asked a visual question answering task.\n"
    'First, answer strictly with "Yes" or "No".\n'
    "Then, provide a short explanation if necessary.\n\n"
    "Question: {question}\nAnswer:"
)
"""The paper's yes/no prompt (RePOPE); ``{question}`` is filled in."""

MMVP_PROMPT = (
    "{question}\nOptions: {options}\n"
    "Answer with the option's letter from the given choices directly."
)
"""Our MMVP prompt (the paper prints none); ``{question}`` and ``{options}`` are filled in."""

_FIELDS = ("id", "image", "prompt", "target", "question", "answer", "boxes", "masks", "meta")


class ManifestError(ValueError):
    """A manifest line (or a dataset file) that cannot be turned into a sample."""


@dataclass
class ManifestEntry:
    r"""One sample of a manifest (see the module docstring for the fields).

    ``boxes`` always holds a list of boxes per word once parsed.

    Examples::

        >>> from captum_eagle.datasets import ManifestEntry
        >>> entry = ManifestEntry.from_dict(
        ...     {"id": "a", "image": "a.png", "prompt": "describe", "boxes": {"cat": [0, 0, 4, 4]}}
        ... )
        >>> entry.boxes
        {'cat': [[0.0, 0.0, 4.0, 4.0]]}
    """

    id: str
    image: str
    prompt: str
    target: str | None = None
    question: str | None = None
    answer: str | list[str] | None = None
    boxes: dict[str, list[list[float]]] = field(default_factory=dict)
    masks: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any) -> ManifestEntry:
        r"""Validate one parsed manifest line.

        Args:
            data: the JSON object of the line.

        Returns:
            ManifestEntry

        Raises:
            ManifestError: naming the field that is missing or malformed.
        """
        if not isinstance(data, dict):
            raise ManifestError(f"a manifest line must be a JSON object; got {type(data).__name__}")
        unknown = sorted(set(data) - set(_FIELDS))
        if unknown:
            raise ManifestError(f"unknown field(s) {unknown}; the fields are {list(_FIELDS)}")
        for key in ("id", "image", "prompt"):
            if not isinstance(data.get(key), str) or not data[key].strip():
                raise ManifestError(f"field {key!r} is missing or not a non-empty string")
        for key in ("target", "question"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise ManifestError(f"field {key!r} must be a string")
        answer = data.get("answer")
        if answer is not None and not (
            isinstance(answer, str)
            or (isinstance(answer, list) and answer and all(isinstance(a, str) for a in answer))
        ):
            raise ManifestError("field 'answer' must be a string or a non-empty list of strings")
        masks = data.get("masks") or {}
        if not isinstance(masks, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in masks.items()
        ):
            raise ManifestError("field 'masks' must map words to mask file paths")
        meta = data.get("meta") or {}
        if not isinstance(meta, dict):
            raise ManifestError("field 'meta' must be a JSON object")
        return cls(
            id=data["id"],
            image=data["image"],
            prompt=data["prompt"],
            target=data.get("target"),
            question=data.get("question"),
            answer=answer,
            boxes=_parse_boxes(data.get("boxes") or {}),
            masks=dict(masks),
            meta=dict(meta),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this entry (optional fields left out when empty)."""
        data: dict[str, Any] = {"id": self.id, "image": self.image, "prompt": self.prompt}
        for key in ("target", "question", "answer", "boxes", "masks", "meta"):
            value = getattr(self, key)
            if value:
                data[key] = value
        return data

    def resolve(self, path: str, root: Path) -> Path:
        """A path of this entry (image or mask), made absolute against the manifest folder."""
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else root / candidate


def _parse_boxes(boxes: Any) -> dict[str, list[list[float]]]:
    if not isinstance(boxes, dict):
        raise ManifestError("field 'boxes' must map words to [x0, y0, x1, y1] boxes")
    parsed = {}
    for word, value in boxes.items():
        if not isinstance(value, list | tuple):
            raise ManifestError(f"box of {word!r} must be [x0, y0, x1, y1]; got {value!r}")
        items = value if value and isinstance(value[0], list | tuple) else [value]
        checked = []
        for box in items:
            if (
                not isinstance(box, list | tuple)
                or len(box) != 4
                or not all(isinstance(v, int | float) and math.isfinite(v) for v in box)
            ):
                raise ManifestError(
                    f"box of {word!r} must be [x0, y0, x1, y1] (4 finite numbers); got {box!r}"
                )
            x0, y0, x1, y1 = (float(v) for v in box)
            if x1 <= x0 or y1 <= y0:
                raise ManifestError(f"box of {word!r} is empty: {box!r} (need x0 < x1, y0 < y1)")
            checked.append([x0, y0, x1, y1])
        parsed[str(word)] = checked
    return parsed


@dataclass(frozen=True)
class ManifestLine:
    r"""One non-blank line of a manifest, parsed or not.

    Attributes:
        index (int): position among the non-blank lines (0-based); sharding uses it.
        number (int): line number in the file (1-based), for messages.
        id (str): the sample id, or ``"line-<number>"`` if the line is not a usable sample.
        entry (ManifestEntry, optional): the sample, ``None`` if the line is corrupt.
        error (str, optional): why the line is not a sample.
    """

    index: int
    number: int
    id: str
    entry: ManifestEntry | None = None
    error: str | None = None


def read_manifest(path: str | Path) -> list[ManifestLine]:
    r"""Read a JSONL manifest; corrupt lines are returned with their error, not raised.

    A line that is not JSON, not a valid entry, or repeats an earlier id gets
    ``id = "line-<number>"`` and an ``error``. Blank lines are skipped.

    Args:
        path: the manifest file.

    Returns:
        list of ManifestLine, in file order.

    Raises:
        FileNotFoundError: if the manifest does not exist.

    Examples::

        >>> import tempfile, pathlib
        >>> from captum_eagle.datasets import read_manifest
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "m.jsonl"
        >>> _ = path.write_text('{"id": "a", "image": "a.png", "prompt": "hi"}\n{oops\n')
        >>> [(line.id, line.error is None) for line in read_manifest(path)]
        [('a', True), ('line-2', False)]
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Manifest not found: {path}")
    lines: list[ManifestLine] = []
    first_line_of: dict[str, int] = {}
    with path.open(encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            index = len(lines)
            try:
                entry = ManifestEntry.from_dict(json.loads(text))
            except json.JSONDecodeError as error:
                lines.append(
                    ManifestLine(index, number, f"line-{number}", None, f"bad JSON: {error}")
                )
                continue
            except ManifestError as error:
                lines.append(ManifestLine(index, number, f"line-{number}", None, str(error)))
                continue
            if entry.id in first_line_of:
                message = f"duplicate id {entry.id!r} (first on line {first_line_of[entry.id]})"
                lines.append(ManifestLine(index, number, f"line-{number}", None, message))
                continue
            first_line_of[entry.id] = number
            lines.append(ManifestLine(index, number, entry.id, entry))
    return lines


def write_manifest(entries: Iterable[ManifestEntry | dict[str, Any]], path: str | Path) -> Path:
    r"""Write entries as a JSONL manifest.

    Image and mask paths under the manifest's folder are written relative to it (so the folder can
    move); others stay absolute.

    Args:
        entries: :class:`ManifestEntry` objects or dictionaries in the manifest format.
        path: the file to write (its folder is created).

    Returns:
        Path: the manifest path.

    Raises:
        ManifestError: if an entry is invalid or an id repeats.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    root = path.parent.resolve()
    seen: set[str] = set()
    rows = []
    for item in entries:
        entry = item if isinstance(item, ManifestEntry) else ManifestEntry.from_dict(item)
        if entry.id in seen:
            raise ManifestError(f"duplicate id {entry.id!r}; ids must be unique")
        seen.add(entry.id)
        data = entry.to_dict()
        data["image"] = _relative(entry.image, root)
        if entry.masks:
            data["masks"] = {word: _relative(p, root) for word, p in entry.masks.items()}
        rows.append(json.dumps(data, ensure_ascii=False))
    path.write_text("".join(row + "\n" for row in rows), encoding="utf-8")
    return path


def _relative(path: str, root: Path) -> str:
    candidate = Path(path).expanduser()
    if not candidate.is_absolute():
        return path
    try:
        return candidate.resolve().relative_to(root).as_posix()
    except ValueError:
        return str(candidate)


def load_mask(path: str | Path) -> np.ndarray:
    r"""Load an object mask: ``.npy`` (boolean or 0/1) or an image (nonzero = object).

    Args:
        path: the mask file.

    Returns:
        ndarray: ``(H, W)`` boolean.

    Raises:
        FileNotFoundError: if the file is missing.
        ManifestError: if it is not a 2-D mask.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mask not found: {path}")
    if path.suffix.lower() == ".npy":
        array = np.load(path, allow_pickle=False)
    else:
        with Image.open(path) as image:
            array = np.asarray(image)
        if array.ndim == 3:
            array = array.max(axis=-1)
    if array.ndim != 2:
        raise ManifestError(f"mask {path} must be 2-D (H, W); got shape {array.shape}")
    return array != 0


def _normalise_answer(text: str) -> str:
    words = [w.strip("()[]{}.,;:!?\"'") for w in text.lower().split()]
    return " ".join(w for w in words if w)


def answer_matches(answer: str, expected: str | Sequence[str]) -> bool:
    r"""Whether a generated answer gives the expected answer.

    Case, surrounding punctuation and brackets are ignored. A one-word expected answer (``"yes"``,
    ``"(a)"``) must be the answer's first word; a longer one must start the answer.

    Args:
        answer (str): the model's answer.
        expected (str or list of str): the accepted answers.

    Returns:
        bool

    Examples::

        >>> from captum_eagle.datasets import answer_matches
        >>> answer_matches("Yes, there is a dog.", "yes")
        True
        >>> answer_matches("(b) Closed", ["(a)", "Open"])
        False
    """
    said = _normalise_answer(answer)
    said_words = said.split()
    for option in [expected] if isinstance(expected, str) else expected:
        wanted = _normalise_answer(option)
        if not wanted:
            continue
        if " " not in wanted:
            if said_words and said_words[0] == wanted:
                return True
        elif said == wanted or said.startswith(wanted + " "):
            return True
    return False


# -- COCO --------------------------------------------------------------------------------------
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


# -- MMVP --------------------------------------------------------------------------------------
_OPTION = re.compile(r"\(([a-z])\)\s*([^()]*)", re.IGNORECASE)


def mmvp_manifest(
    questions_csv: str | Path,
    images_dir: str | Path,
    *,
    prompt: str = MMVP_PROMPT,
    image_extension: str = ".jpg",
) -> list[ManifestEntry]:
    r"""Manifest entries for MMVP (Tong et al., "Eyes Wide Shut", 2024).

    Layout assumed (the ``MMVP/MMVP`` release; we could not re-check it offline): a
    ``Questions.csv`` with the header ``Index,Question,Options,Correct Answer``, where
    ``Options`` is ``"(a) Open (b) Closed"`` and ``Correct Answer`` is ``"(a)"`` or ``"(b)"``;
    images in one folder (``MMVP Images/``) named ``<Index>.jpg``. Images ``2k - 1`` and ``2k``
    form a pair with the same question (``meta["pair"] = k``).

    Each entry: id ``"mmvp-<Index>"``, prompt from ``prompt`` (``{question}``, ``{options}``), and
    expected answers ``["(a)", "<option a text>"]`` (the letter or the option's text counts).

    Args:
        questions_csv: ``Questions.csv``.
        images_dir: the folder of ``<Index>.jpg`` images.
        prompt (str): template with ``{question}`` and ``{options}``. Default: :data:`MMVP_PROMPT`.
        image_extension (str): image file suffix. Default: ``".jpg"``.

    Returns:
        list of ManifestEntry.

    Raises:
        ManifestError: if a column is missing, or a row's options or answer do not parse.
    """
    path = Path(questions_csv)
    if not path.is_file():
        raise FileNotFoundError(f"MMVP questions file not found: {path}")
    images_dir = Path(images_dir)
    entries = []
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        columns = {name.strip().lower(): name for name in reader.fieldnames or []}
        needed = ["index", "question", "options", "correct answer"]
        missing = [name for name in needed if name not in columns]
        if missing:
            raise ManifestError(
                f"{path} lacks column(s) {missing}; expected the MMVP header "
                "'Index,Question,Options,Correct Answer'"
            )
        for row_number, row in enumerate(reader, start=2):
            index, question, options_text, correct = (row[columns[n]].strip() for n in needed)
            options = {
                letter.lower(): text.strip() for letter, text in _OPTION.findall(options_text)
            }
            letter_match = re.fullmatch(r"\(?([a-z])\)?", correct.strip().lower())
            if not options or letter_match is None or letter_match.group(1) not in options:
                raise ManifestError(
                    f"{path}, row {row_number}: cannot read options {options_text!r} with correct "
                    f"answer {correct!r} (expected '(a) ... (b) ...' and '(a)')"
                )
            letter = letter_match.group(1)
            number = int(index)
            entries.append(
                ManifestEntry(
                    id=f"mmvp-{number}",
                    image=str((images_dir / f"{number}{image_extension}").resolve()),
                    prompt=prompt.format(question=question, options=options_text),
                    question=question,
                    answer=[f"({letter})", options[letter]],
                    meta={"pair": (number + 1) // 2, "options": options, "index": number},
                )
            )
    return entries


# -- RePOPE ------------------------------------------------------------------------------------
def repope_manifest(
    annotations: str | Path,
    images_dir: str | Path,
    *,
    prompt: str = HALLUCINATION_PROMPT,
) -> list[ManifestEntry]:
    r"""Manifest entries for RePOPE (POPE with corrected labels, Neuhaus & Hein 2025).

    Layout assumed (that of POPE, which RePOPE re-labels; we could not re-check the files
    offline): one JSON object per line (a JSON list is accepted too) with ``question_id``,
    ``image`` (a COCO file name), ``text`` (the question) and ``label`` (``"yes"`` / ``"no"``);
    ``question`` / ``answer`` are accepted for ``text`` / ``label``.

    Each entry: id ``"<file stem>-<question_id>"`` (so splits can share a manifest), prompt from
    ``prompt`` (the paper's yes/no prompt), ``question`` and the expected ``answer``.

    Args:
        annotations: a RePOPE/POPE annotation file, e.g. ``coco_repope_random.json``.
        images_dir: the folder holding the COCO images.
        prompt (str): template with ``{question}``. Default: :data:`HALLUCINATION_PROMPT`.

    Returns:
        list of ManifestEntry.

    Raises:
        ManifestError: if a line lacks a field or its label is not yes/no.
    """
    path = Path(annotations)
    if not path.is_file():
        raise FileNotFoundError(f"RePOPE annotation file not found: {path}")
    text = path.read_text(encoding="utf-8").strip()
    try:
        records = json.loads(text)
        records = records if isinstance(records, list) else [records]
    except json.JSONDecodeError:
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise ManifestError(f"{path}, line {number}: bad JSON: {error}") from error
    images_dir = Path(images_dir)
    entries = []
    for number, record in enumerate(records, start=1):
        question = record.get("text", record.get("question"))
        label = record.get("label", record.get("answer"))
        if "question_id" not in record or "image" not in record or question is None:
            raise ManifestError(
                f"{path}, record {number}: needs 'question_id', 'image' and 'text'; got "
                f"{sorted(record)}"
            )
        label = str(label).strip().lower()
        if label not in ("yes", "no"):
            raise ManifestError(f"{path}, record {number}: label must be yes or no; got {label!r}")
        entries.append(
            ManifestEntry(
                id=f"{path.stem}-{record['question_id']}",
                image=str((images_dir / record["image"]).resolve()),
                prompt=prompt.format(question=question),
                question=question,
                answer=label,
                meta={"split": path.stem, "question_id": record["question_id"]},
            )
        )
    return entries


# -- command line ------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    r"""``python -m captum_eagle.datasets {coco,mmvp,repope} ... --out MANIFEST``.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).

    Returns:
        int: 0 on success, 2 on bad input (message on stderr).
    """
    parser = argparse.ArgumentParser(
        prog="python -m captum_eagle.datasets",
        description="Build a JSONL manifest for `captum-eagle run` from a dataset on disk.",
    )
    commands = parser.add_subparsers(dest="dataset", required=True)
    coco = commands.add_parser("coco", help="COCO captions (+ instances for boxes/masks)")
    coco.add_argument("--captions", required=True, help="captions_*.json")
    coco.add_argument("--images", required=True, help="image folder, e.g. val2017/")
    coco.add_argument("--instances", help="instances_*.json (boxes, masks)")
    coco.add_argument("--masks-dir", help="write per-category mask PNGs here")
    coco.add_argument("--explain", choices=("model", "reference"), default="model")
    coco.add_argument("--limit", type=int)
    mmvp = commands.add_parser("mmvp", help="MMVP Questions.csv")
    mmvp.add_argument("--csv", required=True, help="Questions.csv")
    mmvp.add_argument("--images", required=True, help="'MMVP Images' folder")
    repope = commands.add_parser("repope", help="RePOPE / POPE annotations")
    repope.add_argument("--annotations", required=True, nargs="+", help="annotation file(s)")
    repope.add_argument("--images", required=True, help="COCO image folder")
    for command in (coco, mmvp, repope):
        command.add_argument("--out", required=True, help="manifest file to write (.jsonl)")
    args = parser.parse_args(argv)
    try:
        if args.dataset == "coco":
            entries = coco_captions_manifest(
                args.captions,
                args.images,
                instances=args.instances,
                masks_dir=args.masks_dir,
                explain=args.explain,
                limit=args.limit,
            )
        elif args.dataset == "mmvp":
            entries = mmvp_manifest(args.csv, args.images)
        else:
            entries = [e for file in args.annotations for e in repope_manifest(file, args.images)]
        path = write_manifest(entries, args.out)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {len(entries)} samples to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
