"""The ``captum-eagle`` command: the demo end to end on the bundled model, and its user errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from PIL import Image

from captum_eagle.cli import main
from captum_eagle.zoo import DEFAULT_CAPTION_PROMPT

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JSON_KEYS = {
    "image",
    "model",
    "prompt",
    "answer",
    "tokens",
    "regions",
    "requested_regions",
    "search",
    "order",
    "gains",
    "objective",
    "region_attribution",
    "insertion",
    "deletion",
    "influence",
    "forwards",
    "seconds",
}


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert err.count("\n") == 0, err
    assert err.startswith("captum-eagle explain: error: ")
    return err


def test_explain_generated_scene_end_to_end(tmp_path, capsys) -> None:
    threads = torch.get_num_threads()
    png, report = tmp_path / "demo.png", tmp_path / "demo.json"
    argv = ["explain", "--regions", "8", "--out", str(png), "--json", str(report), "--no-progress"]
    assert main(argv) == 0
    assert torch.get_num_threads() == threads  # the one-thread default is restored afterwards
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    with Image.open(png) as picture:
        assert picture.width > 600 and picture.height > 400
    data = json.loads(report.read_text())
    assert set(data) == JSON_KEYS
    n = data["regions"]
    assert 2 <= n <= 12 and data["requested_regions"] == 8
    assert sorted(data["order"]) == list(range(n))
    assert len(data["gains"]) == n and len(data["region_attribution"]) == n
    assert len(data["insertion"]) == len(data["deletion"]) == n + 1
    assert "".join(data["tokens"]) == data["answer"] and data["answer"].strip()
    for scores in data["influence"].values():
        assert len(scores) == len(data["tokens"]) and max(scores) == pytest.approx(1.0)
    assert data["forwards"] >= n * (n + 1) - 4 and data["seconds"] > 0  # distinct images
    assert data["prompt"] == DEFAULT_CAPTION_PROMPT and data["search"] == "exact"
    assert data["image"] == "generated plain scene, seed 0"
    out = capsys.readouterr().out
    assert f"answer: {data['answer']!r}" in out and str(png) in out


def test_explain_image_file_with_target(tmp_path) -> None:
    image = tmp_path / "scene.png"
    picture = Image.new("RGB", (64, 64), (18, 18, 18))
    picture.paste((225, 40, 40), (10, 10, 30, 30))
    picture.save(image)
    report = tmp_path / "out.json"
    argv = [str(image), "--target", "a red square", "--regions", "4", "--search", "lazy"]
    argv += ["--out", str(tmp_path / "out.png"), "--json", str(report), "--no-progress"]
    assert main(["explain", *argv]) == 0
    data = json.loads(report.read_text())
    assert data["answer"] == "a red square" and data["tokens"] == ["a", " red", " square"]
    assert data["image"] == str(image) and data["search"] == "lazy"


def test_missing_image_file(tmp_path, capsys) -> None:
    missing = tmp_path / "nope.png"
    assert main(["explain", str(missing), "--out", str(tmp_path / "x.png")]) == 2
    assert f"image file not found: {missing}" in _one_line_error(capsys)


def test_unreadable_image(tmp_path, capsys) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"this is not a picture")
    assert main(["explain", str(broken), "--out", str(tmp_path / "x.png")]) == 2
    err = _one_line_error(capsys)
    assert f"cannot read image {broken}" in err and "UnidentifiedImageError" in err


def test_model_not_available_offline(tmp_path, capsys) -> None:
    model = "captum-eagle-tests/no-such-model"
    argv = ["explain", "--model", model, "--prompt", "describe", "--out", str(tmp_path / "x.png")]
    assert main(argv) == 2
    err = _one_line_error(capsys)
    assert f"model {model!r} is not available offline" in err
    assert f"`huggingface-cli download {model}`" in err


@pytest.mark.parametrize("regions", ["1", "0", "-3"])
def test_too_few_regions(tmp_path, capsys, regions) -> None:
    assert main(["explain", "--regions", regions, "--out", str(tmp_path / "x.png")]) == 2
    assert f"--regions must be at least 2 (got {regions})" in _one_line_error(capsys)


def test_other_user_errors(tmp_path, capsys) -> None:
    out = str(tmp_path / "x.png")
    assert main(["explain", "--model", "some/model", "--out", out]) == 2
    assert "--prompt is required with --model some/model" in _one_line_error(capsys)
    assert main(["explain", "--threads", "0", "--out", out]) == 2
    assert "--threads must be at least 1 (got 0)" in _one_line_error(capsys)
    assert main(["explain", "--scene", "busy", "--out", out]) == 2
    assert "unknown --scene 'busy'" in _one_line_error(capsys)
    assert main(["explain", "--regions", "4", "--out", str(tmp_path / "no" / "x.png")]) == 2
    assert "folder" in _one_line_error(capsys)


def test_console_errors_have_no_traceback(tmp_path) -> None:
    command = [sys.executable, "-m", "captum_eagle.cli", "explain", "--regions", "1"]
    done = subprocess.run(
        [*command, "--out", str(tmp_path / "x.png")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert (
        done.stderr.strip() == "captum-eagle explain: error: --regions must be at least 2 (got 1)."
    )


def test_run_forwards_to_the_runner(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("usage: captum-eagle run")
