r"""``python -m captum_eagle.datasets {coco,mmvp,repope} ... --out MANIFEST``."""

from __future__ import annotations

import argparse
import sys

from captum_eagle.datasets.coco import coco_captions_manifest
from captum_eagle.datasets.manifest import write_manifest
from captum_eagle.datasets.mmvp import mmvp_manifest
from captum_eagle.datasets.pope import repope_manifest

__all__ = ["main"]


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
