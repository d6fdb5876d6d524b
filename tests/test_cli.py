"""The ``captum-eagle`` command: the demo end to end on the bundled model, and its user errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from PIL import Image

from captum_eagle.attribution import EagleResult
from captum_eagle.cli import main
from captum_eagle.joint import JointResult
from captum_eagle.zoo import DEFAULT_CAPTION_PROMPT

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JSON_KEYS = {"image", "model", "prompt", "requested_regions", "result"}
RESULT_KEYS = set(EagleResult.__dataclass_fields__) - {"inputs"}  # EagleResult.to_dict()


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
    assert set(data) == JSON_KEYS and set(data["result"]) == RESULT_KEYS
    result = data["result"]
    n = len(result["order"])
    assert 2 <= n <= 12 and data["requested_regions"] == 8
    assert sorted(result["order"]) == list(range(n))
    assert len(result["gains"]) == n and len(result["region_attribution"]) == n
    assert len(result["trajectories"][0]) == len(result["removal_trajectories"][0]) == n + 1
    assert "".join(result["target_tokens"]) == result["answer"] and result["answer"].strip()
    for scores in result["influence"].values():
        assert len(scores) == len(result["target_tokens"]) and max(scores) == pytest.approx(1.0)
    assert result["forwards"] >= n * (n + 1) - 4 and result["seconds"] > 0  # distinct images
    assert data["prompt"] == DEFAULT_CAPTION_PROMPT and result["search"] == "exact"
    assert data["image"] == "generated plain scene, seed 0"
    out = capsys.readouterr().out
    assert f"answer: {result['answer']!r}" in out and str(png) in out


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
    result = data["result"]
    assert result["answer"] == "a red square"
    assert result["target_tokens"] == ["a", " red", " square"]
    assert data["image"] == str(image) and result["search"] == "lazy"


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


def _exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exit_info:  # argparse: bad choices and types
        return int(exit_info.code)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--search", "exactt"], "argument --search: invalid choice: 'exactt'"),
        (["--method", "limee"], "argument --method: invalid choice: 'limee'"),
        (["--pointing", "phrase"], "argument --pointing: invalid choice: 'phrase'"),
        (["--batch-size", "many"], "expected a number or 'auto', got 'many'"),
        (["--regions", "1"], "regions must be >= 2; got 1."),
        (["--batch-size", "0"], "batch_size must be >= 1; got 0."),
        (["--steps", "0"], "steps must be >= 1; got 0."),
        (["--n-samples", "0"], "n_samples must be >= 1; got 0."),
        (["--ig-steps", "-5"], "ig_steps must be >= 1; got -5."),
        (["--max-new-tokens", "0"], "max_new_tokens must be >= 1; got 0."),
        (["--seed", "-1"], "seed must be >= 0; got -1."),
        (["--baseline", "1.5"], "baseline must lie in [0, 1]; got 1.5."),
        (["--max-samples", "0"], "max_samples must be a positive int or None; got 0."),
    ],
)
def test_run_rejects_every_bad_setting_before_loading_a_model(
    tmp_path, capsys, monkeypatch, options, message
) -> None:
    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded despite a bad setting")

    monkeypatch.setattr("captum_eagle.run.shards.load_wrapper", no_model)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"id": "a", "image": "a.png", "prompt": "describe"}\n')
    out = tmp_path / "out"
    assert _exit_code(["run", str(manifest), "--out", str(out), *options]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("captum-eagle run: error: ") and err.count("\n") == 0, err
    assert message in err and "Traceback" not in err
    assert not (out / "results-rank0.jsonl").exists()  # no sample recorded as an error


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "missing.jsonl", "--out", "{tmp}/o"], "missing.jsonl"),
        (["run", "--merge", "{tmp}/no-run"], "Run folder(s) not found"),
        (["run", "--out", "{tmp}/o"], "give MANIFEST and --out DIR"),
        (["explain", "--search", "exactt", "--out", "{tmp}/x.png"], "invalid choice: 'exactt'"),
        (["explain", "--batch-size", "0", "--out", "{tmp}/x.png"], "--batch-size must be at least"),
        (["explain", "--dpi", "0", "--out", "{tmp}/x.png"], "--dpi must be at least 1"),
        (["explain", "--max-new-tokens", "0", "--out", "{tmp}/x.png"], "--max-new-tokens must"),
        (["explain", "--out", "{tmp}/x.png", "--json", "{tmp}/no/x.json"], "does not exist"),
        (["explane", "--out", "x.png"], "invalid choice: 'explane'"),
    ],
)
def test_bad_command_lines_end_in_one_line(tmp_path, capsys, argv, message) -> None:
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]
    assert _exit_code(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    assert err.startswith("captum-eagle") and message in err, err


def test_explain_with_text_features_writes_the_joint_figure(tmp_path, capsys) -> None:
    png, report = tmp_path / "joint.png", tmp_path / "joint.json"
    question = "is there a red circle?"
    argv = ["explain", "--regions", "6", "--prompt", question, "--max-new-tokens", "1"]
    argv += ["--text-features", "words", "--out", str(png), "--json", str(report)]
    assert main([*argv, "--no-progress"]) == 0
    assert "image reliance per token: [" in capsys.readouterr().out
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    data = json.loads(report.read_text())
    assert set(data) == JSON_KEYS | {"joint"} and set(data["result"]) == RESULT_KEYS
    joint = JointResult.from_dict({**data["joint"], "eagle": data["result"]})
    assert [f.text for f in joint.text_features] == ["is", "there", "a", "red", "circle", "?"]
    n = joint.n_image_regions + 6
    assert sorted(joint.order.tolist()) == list(range(n)) and joint.reliance.shape == (1,)
    spans = ["--text-features", "11:14,15:21"]
    assert (
        main([*argv[:-6], *spans, "--out", str(png), "--json", str(report), "--no-progress"]) == 0
    )
    labels = [f["text"] for f in json.loads(report.read_text())["joint"]["text_features"]]
    assert labels == ["red", "circle"]


@pytest.mark.parametrize(
    ("spans", "message"),
    [("0-3", "expected 'words' or character spans"), ("0:3,2:5", "overlap"), ("5:99", "outside")],
)
def test_bad_text_features_end_in_one_line(tmp_path, capsys, spans, message) -> None:
    argv = ["explain", "--regions", "4", "--prompt", "is there a red circle?", "--no-progress"]
    assert main([*argv, "--text-features", spans, "--out", str(tmp_path / "x.png")]) == 2
    assert message in _one_line_error(capsys)
