r"""Manifests for dataset-scale runs, and readers that build them from the paper's data layouts.

A **manifest** is a JSONL file, one sample per line, read by :mod:`captum_eagle.run`::

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

from captum_eagle.datasets.coco import CAPTION_PROMPT, coco_captions_manifest, decode_coco_rle
from captum_eagle.datasets.command import main
from captum_eagle.datasets.manifest import (
    ManifestEntry,
    ManifestError,
    ManifestLine,
    answer_matches,
    load_mask,
    read_manifest,
    write_manifest,
)
from captum_eagle.datasets.mmvp import MMVP_PROMPT, mmvp_manifest
from captum_eagle.datasets.pope import HALLUCINATION_PROMPT, repope_manifest

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
