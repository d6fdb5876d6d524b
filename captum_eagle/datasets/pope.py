r"""RePOPE (or POPE) yes/no annotation files to manifest entries."""

from __future__ import annotations

import json
from pathlib import Path

from captum_eagle.datasets.manifest import ManifestEntry, ManifestError

__all__ = ["HALLUCINATION_PROMPT", "repope_manifest"]

HALLUCINATION_PROMPT = (
    "You are asked a visual question answering task.\n"
    'First, answer strictly with "Yes" or "No".\n'
    "Then, provide a short explanation if necessary.\n\n"
    "Question: {question}\nAnswer:"
)
"""The paper's yes/no prompt (RePOPE); ``{question}`` is filled in."""


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
