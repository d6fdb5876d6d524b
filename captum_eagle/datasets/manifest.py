r"""The manifest format of dataset runs: reading, writing, masks and answer matching.

See :mod:`captum_eagle.datasets` for the fields.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = [
    "ManifestEntry",
    "ManifestError",
    "ManifestLine",
    "answer_matches",
    "load_mask",
    "read_manifest",
    "write_manifest",
]


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
        ManifestError: if no line at all is a sample (not a manifest, e.g. the wrong file).

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
    if lines and all(line.entry is None for line in lines):
        raise ManifestError(
            f"{path}: none of its {len(lines)} lines is a manifest entry (line "
            f"{lines[0].number}: {lines[0].error}); pass a JSONL manifest (one JSON object with "
            "id, image and prompt per line), e.g. from python -m captum_eagle.datasets."
        )
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
        ManifestError: if it is not a 2-D boolean (or 0/1) mask or not a readable file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mask not found: {path}")
    if path.suffix.lower() == ".npy":
        array = np.load(path, allow_pickle=False)
        if array.dtype != bool and not np.isin(array, (0, 1)).all():
            raise ManifestError(
                f"mask {path} must hold booleans or 0/1 values (one object); got other values. "
                "Save (labels == k) for object k."
            )
    else:
        try:
            with Image.open(path) as image:
                array = np.asarray(image)
        except (UnidentifiedImageError, OSError) as error:
            raise ManifestError(
                f"mask {path} is not a readable image or .npy file ({error})"
            ) from None
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
    if not isinstance(answer, str):
        raise TypeError(f"answer must be the generated text (str); got {type(answer).__name__}.")
    options = [expected] if isinstance(expected, str) else expected
    if not isinstance(options, Sequence) or not options:
        raise ValueError(
            f"expected must be an answer or a non-empty list of answers; got {expected!r}."
        )
    if not all(isinstance(option, str) for option in options):
        raise TypeError(f"expected answers must be strings; got {expected!r}.")
    said = _normalise_answer(answer)
    said_words = said.split()
    for option in options:
        wanted = _normalise_answer(option)
        if not wanted:
            continue
        if " " not in wanted:
            if said_words and said_words[0] == wanted:
                return True
        elif said == wanted or said.startswith(wanted + " "):
            return True
    return False
