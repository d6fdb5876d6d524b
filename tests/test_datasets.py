"""Manifests and the dataset readers, on tiny synthetic files in the real layouts (no downloads)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from captum_eagle.datasets import (
    CAPTION_PROMPT,
    HALLUCINATION_PROMPT,
    ManifestEntry,
    ManifestError,
    answer_matches,
    coco_captions_manifest,
    decode_coco_rle,
    load_mask,
    main,
    mmvp_manifest,
    read_manifest,
    repope_manifest,
    write_manifest,
)


def _encode_rle_string(mask: np.ndarray) -> str:
    """COCO's compressed RLE of a mask (the inverse of what the reader decodes), for the tests."""
    flat = mask.T.flatten()
    counts, value, run = [], False, 0
    for pixel in flat:
        if pixel == value:
            run += 1
        else:
            counts.append(run)
            value, run = pixel, 1
    counts.append(run)
    text = []
    for i, count in enumerate(counts):
        x = count - counts[i - 2] if i > 2 else count
        more = True
        while more:
            code = x & 0x1F
            x >>= 5
            more = x != -1 if code & 0x10 else x != 0
            text.append(chr((code | (0x20 if more else 0)) + 48))
    return "".join(text)


@pytest.fixture()
def coco(tmp_path: Path) -> dict[str, Path]:
    images = tmp_path / "val2017"
    images.mkdir()
    crowd = np.zeros((30, 40), dtype=bool)
    crowd[20:26, 2:9] = True
    captions = {
        "info": {},
        "images": [
            {"id": 139, "file_name": "000000000139.jpg", "height": 30, "width": 40},
            {"id": 285, "file_name": "000000000285.jpg", "height": 30, "width": 40},
        ],
        "annotations": [
            {"id": 1, "image_id": 139, "caption": " A man riding a horse. "},
            {"id": 2, "image_id": 139, "caption": "A person on a horse."},
            {"id": 3, "image_id": 285, "caption": "A big bear."},
        ],
    }
    instances = {
        "images": captions["images"],
        "categories": [{"id": 1, "name": "person"}, {"id": 19, "name": "horse"}],
        "annotations": [
            {"id": 10, "image_id": 139, "category_id": 19, "bbox": [4.0, 5.0, 10.0, 8.0],
             "segmentation": [[4, 5, 14, 5, 14, 13, 4, 13]], "iscrowd": 0},
            {"id": 11, "image_id": 139, "category_id": 19, "bbox": [30, 2, 5, 5],
             "segmentation": {"size": [30, 40], "counts": [1199, 1]}, "iscrowd": 1},
            {"id": 12, "image_id": 139, "category_id": 1, "bbox": [2, 20, 7, 6],
             "segmentation": {"size": [30, 40], "counts": _encode_rle_string(crowd)},
             "iscrowd": 1},
        ],
    }  # fmt: skip
    (tmp_path / "captions_val2017.json").write_text(json.dumps(captions))
    (tmp_path / "instances_val2017.json").write_text(json.dumps(instances))
    return {
        "captions": tmp_path / "captions_val2017.json",
        "instances": tmp_path / "instances_val2017.json",
        "images": images,
        "crowd": crowd,
    }


def test_coco_captions_and_instances(coco: dict, tmp_path: Path) -> None:
    entries = coco_captions_manifest(
        coco["captions"],
        coco["images"],
        instances=coco["instances"],
        masks_dir=tmp_path / "masks",
        synonyms={"person": ["man"]},
    )
    assert [e.id for e in entries] == ["coco-139", "coco-285"]
    first = entries[0]
    assert first.image == str(coco["images"].resolve() / "000000000139.jpg")
    assert first.prompt == CAPTION_PROMPT and first.target is None
    assert first.meta == {
        "references": ["A man riding a horse.", "A person on a horse."],
        "coco_id": 139,
    }
    assert first.boxes == {
        "horse": [[4.0, 5.0, 14.0, 13.0], [30.0, 2.0, 35.0, 7.0]],
        "person": [[2.0, 20.0, 9.0, 26.0]],
        "man": [[2.0, 20.0, 9.0, 26.0]],
    }
    horse = load_mask(first.masks["horse"])
    expected = np.zeros((30, 40), dtype=bool)
    expected[5:13, 4:14] = True  # pixels whose centre lies inside the polygon
    expected[29, 39] = True  # the uncompressed RLE: 1199 background pixels, then the last one
    assert np.array_equal(horse, expected)
    assert np.array_equal(load_mask(first.masks["person"]), coco["crowd"])
    assert first.masks["man"] == first.masks["person"]
    assert entries[1].boxes == {} and entries[1].masks == {}

    reference = coco_captions_manifest(
        coco["captions"], coco["images"], explain="reference", limit=1
    )
    assert [(e.id, e.target) for e in reference] == [("coco-139", "A man riding a horse.")]


def test_coco_bad_input(coco: dict, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="masks_dir needs instances"):
        coco_captions_manifest(coco["captions"], coco["images"], masks_dir=tmp_path)
    (tmp_path / "x.json").write_text("[]")
    with pytest.raises(ManifestError, match="not a COCO captions file"):
        coco_captions_manifest(tmp_path / "x.json", coco["images"])
    with pytest.raises(FileNotFoundError, match="COCO captions file not found"):
        coco_captions_manifest(tmp_path / "missing.json", coco["images"])


def test_rle_string_decoding_matches_the_mask() -> None:
    rng = np.random.default_rng(0)
    mask = rng.random((17, 23)) > 0.6
    decoded = decode_coco_rle({"size": [17, 23], "counts": _encode_rle_string(mask)})
    assert np.array_equal(decoded, mask)
    with pytest.raises(ManifestError, match="covers 5 pixels but the mask is 2×3"):
        decode_coco_rle({"size": [2, 3], "counts": [1, 4]})


def test_mmvp_csv(tmp_path: Path) -> None:
    csv = tmp_path / "Questions.csv"
    csv.write_text(
        "Index,Question,Options,Correct Answer\n"
        '1,Are the butterfly\'s wings closer to being open or closed?,"(a) Open (b) Closed",(a)\n'
        '2,Are the butterfly\'s wings closer to being open or closed?,"(a) Open (b) Closed",(b)\n'
        '3,Is the dog facing left or right?,"(a) Left (b) Right",(b)\n'
    )
    entries = mmvp_manifest(csv, tmp_path / "MMVP Images")
    assert [e.id for e in entries] == ["mmvp-1", "mmvp-2", "mmvp-3"]
    assert entries[0].image == str((tmp_path / "MMVP Images" / "1.jpg").resolve())
    assert entries[1].answer == ["(b)", "Closed"]
    assert [e.meta["pair"] for e in entries] == [1, 1, 2]
    assert entries[2].prompt.startswith(
        "Is the dog facing left or right?\nOptions: (a) Left (b) Right\nAnswer with"
    )
    assert answer_matches("(b) Right", entries[2].answer)
    assert not answer_matches("(a) Left", entries[2].answer)

    bad = tmp_path / "bad.csv"
    bad.write_text("Index,Question,Answer\n1,q,a\n")
    with pytest.raises(ManifestError, match=r"lacks column\(s\) \['options', 'correct answer'\]"):
        mmvp_manifest(bad, tmp_path)
    bad.write_text('Index,Question,Options,Correct Answer\n1,q,"(a) x (b) y",(c)\n')
    with pytest.raises(ManifestError, match="row 2: cannot read options"):
        mmvp_manifest(bad, tmp_path)


def test_repope_annotations(tmp_path: Path) -> None:
    file = tmp_path / "coco_repope_random.json"
    lines = [
        {"question_id": 1, "image": "COCO_val2014_000000310196.jpg",
         "text": "Is there a snowboard in the image?", "label": "yes"},
        {"question_id": 2, "image": "COCO_val2014_000000310196.jpg",
         "text": "Is there a dog in the image?", "label": "no"},
    ]  # fmt: skip
    file.write_text("".join(json.dumps(line) + "\n" for line in lines))
    entries = repope_manifest(file, tmp_path / "val2014")
    assert [e.id for e in entries] == ["coco_repope_random-1", "coco_repope_random-2"]
    assert entries[0].prompt == HALLUCINATION_PROMPT.format(
        question="Is there a snowboard in the image?"
    )
    assert entries[0].prompt.endswith("Question: Is there a snowboard in the image?\nAnswer:")
    assert [e.answer for e in entries] == ["yes", "no"]
    assert entries[1].image == str((tmp_path / "val2014").resolve() / lines[1]["image"])

    as_list = tmp_path / "list.json"
    as_list.write_text(json.dumps([{**lines[0], "label": "Yes"}]))
    assert repope_manifest(as_list, tmp_path)[0].answer == "yes"
    as_list.write_text(json.dumps([{**lines[0], "label": "unsure"}]))
    with pytest.raises(ManifestError, match="record 1: label must be yes or no; got 'unsure'"):
        repope_manifest(as_list, tmp_path)


def test_manifest_round_trip_and_line_errors(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    (folder / "images").mkdir(parents=True)
    entries = [
        ManifestEntry(id="a", image=str(folder / "images" / "a.png"), prompt="describe",
                      boxes={"cat": [[0, 0, 4, 4]]}, masks={"cat": str(folder / "m.npy")}),
        {"id": "b", "image": "/elsewhere/b.png", "prompt": "is there a cat?", "answer": "yes"},
    ]  # fmt: skip
    path = write_manifest(entries, folder / "m.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows[0] == {
        "id": "a",
        "image": "images/a.png",
        "prompt": "describe",
        "boxes": {"cat": [[0, 0, 4, 4]]},
        "masks": {"cat": "m.npy"},
    }
    assert rows[1]["image"] == "/elsewhere/b.png"
    with pytest.raises(ManifestError, match="duplicate id 'a'"):
        write_manifest([entries[0], entries[0]], tmp_path / "x.jsonl")

    with path.open("a") as handle:
        handle.write("\n")
        handle.write('{"id": "c", "image": "c.png"\n')
        handle.write('{"id": "d", "image": "d.png"}\n')
        handle.write('{"id": "a", "image": "a.png", "prompt": "again"}\n')
        handle.write('{"id": "e", "image": "e.png", "prompt": "p", "boxes": {"x": [3, 3, 1, 5]}}\n')
        handle.write('{"id": "f", "image": "f.png", "prompt": "p", "colour": "red"}\n')
        handle.write('{"id": "g", "image": "g.png", "prompt": "p", "boxes": {"x": [[1, 2, 3]]}}\n')
    lines = read_manifest(path)
    assert [(line.index, line.number, line.id) for line in lines] == [
        (0, 1, "a"),
        (1, 2, "b"),
        (2, 4, "line-4"),
        (3, 5, "line-5"),
        (4, 6, "line-6"),
        (5, 7, "line-7"),
        (6, 8, "line-8"),
        (7, 9, "line-9"),
    ]
    errors = [line.error for line in lines[2:]]
    assert errors[0].startswith("bad JSON")
    assert errors[1] == "field 'prompt' is missing or not a non-empty string"
    assert errors[2] == "duplicate id 'a' (first on line 1)"
    assert errors[3] == "box of 'x' is empty: [3, 3, 1, 5] (need x0 < x1, y0 < y1)"
    assert errors[4].startswith("unknown field(s) ['colour']")
    assert errors[5] == "box of 'x' must be [x0, y0, x1, y1] (4 finite numbers); got [1, 2, 3]"
    assert lines[0].entry.resolve(lines[0].entry.image, folder) == folder / "images" / "a.png"
    with pytest.raises(FileNotFoundError, match="Manifest not found"):
        read_manifest(tmp_path / "none.jsonl")


def test_load_mask_and_answer_matching(tmp_path: Path) -> None:
    mask = np.zeros((5, 6), dtype=bool)
    mask[1:3, 2:5] = True
    np.save(tmp_path / "m.npy", mask)
    Image.fromarray(mask.astype(np.uint8) * 255).convert("RGB").save(tmp_path / "m.png")
    assert np.array_equal(load_mask(tmp_path / "m.npy"), mask)
    assert np.array_equal(load_mask(tmp_path / "m.png"), mask)
    np.save(tmp_path / "bad.npy", np.zeros((2, 2, 2)))
    with pytest.raises(ManifestError, match=r"must be 2-D \(H, W\); got shape \(2, 2, 2\)"):
        load_mask(tmp_path / "bad.npy")

    assert answer_matches("Yes, there is.", "yes")
    assert answer_matches("  NO.", ["no"])
    assert not answer_matches("Not sure", "no")
    assert answer_matches("Facing right, clearly", ["(b)", "Facing right"])
    assert not answer_matches("Facing left", ["(b)", "Facing right"])
    assert answer_matches("b", ["(b)", "Facing right"])


def test_command_line(coco: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "manifests" / "coco.jsonl"
    code = main(
        ["coco", "--captions", str(coco["captions"]), "--images", str(coco["images"]),
         "--instances", str(coco["instances"]), "--out", str(out)]
    )  # fmt: skip
    assert code == 0 and "wrote 2 samples" in capsys.readouterr().out
    assert [line.id for line in read_manifest(out)] == ["coco-139", "coco-285"]
    code = main(["mmvp", "--csv", str(tmp_path / "none.csv"), "--images", ".", "--out", str(out)])
    assert code == 2
    assert "MMVP questions file not found" in capsys.readouterr().err


def test_module_command_and_submodules(tmp_path: Path) -> None:
    import subprocess
    import sys

    from captum_eagle.datasets import coco, manifest, mmvp, pope

    assert coco.decode_coco_rle is decode_coco_rle and manifest.read_manifest is read_manifest
    assert mmvp.mmvp_manifest is mmvp_manifest and pope.repope_manifest is repope_manifest
    missing = tmp_path / "Questions.csv"
    command = [sys.executable, "-m", "captum_eagle.datasets", "mmvp", "--csv", str(missing)]
    command += ["--images", str(tmp_path), "--out", str(tmp_path / "m.jsonl")]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: MMVP questions file not found: {missing}"


# -- bad inputs (issue 20): masks and answers that are not what they claim ---------------------
@pytest.mark.parametrize(
    "values",
    [np.full((4, 4), 0.5), np.arange(16).reshape(4, 4), np.full((4, 4), np.nan)],
)
def test_load_mask_refuses_npy_files_that_are_no_boolean_mask(tmp_path: Path, values) -> None:
    # before: a label map or soft mask became "nonzero = object" silently
    np.save(tmp_path / "m.npy", values)
    with pytest.raises(ManifestError, match="must hold booleans or 0/1 values"):
        load_mask(tmp_path / "m.npy")


def test_load_mask_refuses_a_corrupt_image_file(tmp_path: Path) -> None:
    (tmp_path / "m.png").write_bytes(b"half a png")
    with pytest.raises(ManifestError, match=r"not a readable image or \.npy file"):
        load_mask(tmp_path / "m.png")
    np.save(tmp_path / "ok.npy", np.eye(3, dtype=np.uint8))  # 0/1 integers are a mask
    assert load_mask(tmp_path / "ok.npy").tolist() == np.eye(3, dtype=bool).tolist()


@pytest.mark.parametrize(
    "answer, expected, error",
    [
        (None, "yes", TypeError),
        (["yes"], "yes", TypeError),
        ("yes", [], ValueError),
        ("yes", None, ValueError),
        ("yes", ["yes", 1], TypeError),
    ],
)
def test_answer_matches_refuses_what_is_no_answer(answer, expected, error) -> None:
    with pytest.raises(error, match="answer"):
        answer_matches(answer, expected)


@pytest.mark.parametrize(
    "content",
    ["root:x:0:0:root:/root:/bin/bash\n", "[1, 2]\n{oops\n", '{"id": "a"}\n{"id": "b"}\n'],
)
def test_a_file_without_any_manifest_entry_is_refused(tmp_path: Path, content: str) -> None:
    # before: a run over the wrong file loaded the model and recorded one error per line
    path = tmp_path / "m.jsonl"
    path.write_text(content)
    with pytest.raises(ManifestError, match=r"none of its \d+ lines is a manifest entry \(line 1"):
        read_manifest(path)


def test_a_manifest_with_some_corrupt_lines_keeps_them_as_errors(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text('{"id": "a", "image": "a.png", "prompt": "hi"}\n{oops\n\n')
    lines = read_manifest(path)
    assert [(line.id, line.entry is None) for line in lines] == [("a", False), ("line-2", True)]
    path.write_text("\n\n")  # blank lines only: an empty manifest, not a wrong file
    assert read_manifest(path) == []
