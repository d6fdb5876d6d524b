r"""MMVP's ``Questions.csv`` and image folder to manifest entries."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from captum_eagle.datasets.manifest import ManifestEntry, ManifestError

__all__ = ["MMVP_PROMPT", "mmvp_manifest"]

MMVP_PROMPT = (
    "{question}\nOptions: {options}\n"
    "Answer with the option's letter from the given choices directly."
)
"""Our MMVP prompt (the paper prints none); ``{question}`` and ``{options}`` are filled in."""


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
