"""Dataset-scale runs: torchrun sharding (gloo), resuming after a kill, per-sample errors."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from captum_eagle.joint import JointResult
from captum_eagle.run import (
    RunConfig,
    RunnerError,
    list_methods,
    load_results,
    load_sample,
    main,
    merge,
    register_method,
    run,
)
from captum_eagle.testing import tiny_model
from captum_eagle.zoo import DEFAULT_CAPTION_PROMPT, WEIGHTS_DIR, generate_scene

CONFIG = RunConfig(regions=6, max_new_tokens=3)
CLI_OPTIONS = ["--regions", "6", "--max-new-tokens", "3", "--no-progress"]
N_SAMPLES = 12
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The bundled shapes model if its weights exist, else a tiny LLaVA saved to a folder."""
    if (WEIGHTS_DIR / "model.safetensors").is_file():
        return "default"
    folder = tmp_path_factory.mktemp("tiny-llava")
    tiny, processor = tiny_model("llava")
    tiny.save_pretrained(folder)
    processor.save_pretrained(folder)
    return str(folder)


@pytest.fixture(autouse=True)
def one_thread():
    """Same thread count as the torchrun workers (OMP_NUM_THREADS=1): bitwise equal results."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _write_manifest(folder: Path) -> Path:
    """12 scenes (10 captions with boxes and masks per shape, 2 yes/no questions), plus a corrupt
    line and a missing image."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "images").mkdir(exist_ok=True)
    rows = []
    for i in range(N_SAMPLES):
        scene = generate_scene(100 + i)
        Image.fromarray(scene.image).save(folder / "images" / f"scene{i}.png")
        row = {"id": f"scene-{i}", "image": f"images/scene{i}.png", "meta": {"seed": 100 + i}}
        if i < 10:
            shape = scene.objects[0].shape
            boxes = [
                [o.box[0], o.box[1], o.box[2] + 1, o.box[3] + 1]
                for o in scene.objects
                if o.shape == shape
            ]
            union = np.any([o.mask for o in scene.objects if o.shape == shape], axis=0)
            np.save(folder / f"mask{i}.npy", union)
            row |= {
                "prompt": DEFAULT_CAPTION_PROMPT,
                "target": scene.caption,
                "boxes": {shape: boxes, "dog": [0, 0, 8, 8]},
                "masks": {shape: f"mask{i}.npy"},
            }
        else:
            question = scene.questions[0]
            row |= {"prompt": question.text, "question": question.text, "answer": question.answer}
        rows.append(json.dumps(row))
    rows.insert(5, '{"id": "broken", "image": ')
    rows.insert(9, json.dumps({"id": "ghost", "image": "images/none.png", "prompt": "hi"}))
    manifest = folder / "manifest.jsonl"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_manifest(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def single(manifest: Path, model: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted single-process run: the reference every other run must reproduce."""
    out = tmp_path_factory.mktemp("single") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    summary = run(manifest, out, model=model, config=CONFIG, show_progress=False)
    torch.set_num_threads(threads)
    assert (summary.finished, summary.errors, summary.skipped) == (N_SAMPLES, 2, 0)
    return out


def _lines(out: Path) -> list[dict]:
    return [json.loads(t) for p in sorted(out.glob("results-rank*.jsonl")) for t in p.open()]


def _assert_same_results(out: Path, reference: Path) -> None:
    got, want = load_results(out), load_results(reference)
    assert list(got) == list(want)
    for sample_id, expected in want.items():
        record = got[sample_id]
        assert record["status"] == expected["status"], sample_id
        if expected["status"] == "error":
            assert record["error"] == expected["error"]
            continue
        assert record["order"] == expected["order"], sample_id
        assert record["answer"] == expected["answer"]
        assert record["pointing"] == expected["pointing"]
        assert record.get("qa") == expected.get("qa")
        for key, value in expected["metrics"].items():
            assert record["metrics"][key] == pytest.approx(value, abs=1e-6), (sample_id, key)
    rows = merge([out], write_to=out.parent / "tables")["rows"]
    reference_rows = merge([reference], write_to=reference.parent / "tables")["rows"]
    for row, reference_row in zip(rows, reference_rows, strict=True):
        for key, value in reference_row.items():
            if key not in ("run", "seconds"):
                assert row[key] == pytest.approx(value, abs=1e-6), key


def test_single_run_records_every_sample(single: Path, manifest: Path) -> None:
    lines = _lines(single)
    ids = [line["id"] for line in lines]
    assert len(ids) == len(set(ids)) == N_SAMPLES + 2
    errors = {line["id"]: line["error"] for line in lines if line["status"] == "error"}
    assert set(errors) == {"line-6", "ghost"}
    assert errors["line-6"].startswith("manifest line: bad JSON")
    assert errors["ghost"] == f"FileNotFoundError: missing image: {manifest.parent}/images/none.png"

    record = load_results(single)["scene-0"]
    assert record["answer"] == generate_scene(100).caption
    n_regions = record["n_regions"]
    assert sorted(record["order"]) == list(range(n_regions))
    shape = generate_scene(100).objects[0].shape
    assert record["pointing"]["dog"] == {"present": False}
    word = record["pointing"][shape]
    assert word["present"] and set(word) == {"present", "tokens", "box", "mask"}
    assert 0.0 <= word["box"]["tie_aware"] <= 1.0 and isinstance(word["mask"]["hit"], bool)
    metrics = record["metrics"]
    assert 0.0 <= metrics["deletion_auc"] <= 1.0
    assert metrics["n_tokens"] == len(record["target_tokens"])

    saved = load_sample(single, "scene-0")
    assert record["forwards"] == saved["eagle"]["forwards"] > 0
    assert saved["attribution"].shape == (1, 1, *saved["feature_mask"].shape[-2:])
    assert saved["order"].tolist() == record["order"]
    trajectories = torch.tensor(saved["eagle"]["trajectories"])  # EagleResult.to_dict()
    assert trajectories.shape == (len(record["target_tokens"]), n_regions + 1)
    assert saved["feature_mask"].max().item() == n_regions - 1
    assert set(saved["word_maps"]) == {shape}
    assert not list((single / "samples").glob(".tmp-*"))

    qa = load_results(single)["scene-10"]
    assert qa["qa"]["expected"] == generate_scene(110).questions[0].answer
    assert isinstance(qa["qa"]["correct"], bool)

    tables = json.loads((single / "tables.json").read_text())
    row = tables["rows"][0]
    assert (row["method"], row["samples"], row["errors"]) == ("eagle", N_SAMPLES, 2)
    assert row["pointing_words"] == 10
    aucs = [r["metrics"]["insertion_auc"] for r in load_results(single).values() if "metrics" in r]
    assert len(aucs) == N_SAMPLES and row["insertion_auc"] == pytest.approx(np.mean(aucs))
    assert "| eagle | 12 | 2 |" in (single / "tables.md").read_text()


def test_two_processes_with_torchrun_match_one(
    single: Path, manifest: Path, model: str, tmp_path: Path
) -> None:
    out = tmp_path / "sharded"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
    ]
    command += ["-m", "captum_eagle.run", str(manifest), "--out", str(out), "--model", model]
    done = subprocess.run(
        command + CLI_OPTIONS, env=ENV, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for rank in (0, 1):
        shard = [json.loads(t)["line"] for t in (out / f"results-rank{rank}.jsonl").open()]
        assert len(shard) == 7
        lines = [n for n, t in enumerate(manifest.read_text().splitlines(), 1) if t.strip()]
        assert shard == [lines[i] for i in range(rank, len(lines), 2)]
    assert "| eagle | 12 | 2 |" in done.stdout  # rank 0 merged after the barrier
    _assert_same_results(out, single)


def test_killed_run_resumes_without_loss_or_duplicates(
    single: Path, manifest: Path, model: str, tmp_path: Path
) -> None:
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "captum_eagle.run", str(manifest), "--out", str(out)]
    process = subprocess.Popen(
        [*command, "--model", model, *CLI_OPTIONS],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results = out / "results-rank0.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if results.is_file() and results.read_text().count("\n") >= 4:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    recorded = results.read_text().count("\n")
    assert 4 <= recorded < N_SAMPLES + 2, "the run was not killed midway"
    with results.open("a") as handle:  # what a kill during a write leaves behind
        handle.write('{"id": "scene-11", "status": "o')
    (out / "samples" / ".tmp-rank0-x1y2.pt").write_bytes(b"half a sample")

    summary = run(manifest, out, model=model, config=CONFIG, show_progress=False)
    assert summary.skipped == recorded
    assert summary.finished + summary.errors == N_SAMPLES + 2 - recorded
    ids = [line["id"] for line in _lines(out)]
    assert len(ids) == len(set(ids)) == N_SAMPLES + 2
    assert not list((out / "samples").glob(".tmp-*"))
    assert len(list((out / "samples").glob("*.pt"))) == N_SAMPLES
    _assert_same_results(out, single)

    again = run(manifest, out, model=model, config=CONFIG, show_progress=False)
    assert (again.finished, again.errors, again.skipped) == (0, 0, N_SAMPLES + 2)
    assert len(_lines(out)) == N_SAMPLES + 2


def test_max_samples_and_retry_errors(tmp_path: Path, model: str) -> None:
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(generate_scene(7).image).save(images / "a.png")
    rows = [
        {"id": "a", "image": "images/a.png", "prompt": "describe", "target": "a red circle"},
        {"id": "b", "image": "images/b.png", "prompt": "describe", "target": "a red circle"},
        {"id": "c", "image": "images/a.png", "prompt": "describe", "target": "a red circle",
         "masks": {"circle": "nowhere.npy"}},
    ]  # fmt: skip
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    first = run(manifest, out, model=model, config=CONFIG, max_samples=2, show_progress=False)
    assert (first.finished, first.errors, first.remaining) == (1, 1, 1)
    second = run(manifest, out, model=model, config=CONFIG, show_progress=False)
    assert (second.skipped, second.finished, second.errors, second.remaining) == (2, 0, 1, 0)
    records = load_results(out)
    assert records["c"]["error"].startswith("FileNotFoundError: mask not found")

    Image.fromarray(generate_scene(8).image).save(images / "b.png")
    third = run(manifest, out, model=model, config=CONFIG, retry_errors=True, show_progress=False)
    assert (third.skipped, third.finished, third.errors) == (1, 1, 1)
    assert load_results(out)["b"]["status"] == "ok"
    assert merge([out])["rows"][0]["samples"] == 2


def test_unwritable_output_folder_is_a_clear_error(
    tmp_path: Path, manifest: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = blocker / "run"
    assert main([str(manifest), "--out", str(out), "--no-progress"]) == 2
    message = capsys.readouterr().err
    assert f"The output folder {out} is not writable" in message and "--out" in message

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("tempfile.NamedTemporaryFile", refuse)
    expected = re.escape(f"{tmp_path / 'ro'} is not writable (Permission denied)")
    with pytest.raises(RunnerError, match=expected):
        run(manifest, tmp_path / "ro", config=CONFIG, show_progress=False)


def test_other_settings_in_the_same_folder_are_refused(
    single: Path, manifest: Path, model: str, capsys: pytest.CaptureFixture
) -> None:
    code = main([str(manifest), "--out", str(single), "--model", model, "--regions", "8"])
    assert code == 2
    assert "regions: 6 -> 8" in capsys.readouterr().err


BRIGHTNESS_INPUTS: list[torch.Tensor] = []


def _brightness(wrapper, sample, feature_mask, config) -> torch.Tensor:
    BRIGHTNESS_INPUTS.append(sample.image.clone())
    return sample.image.clone()


register_method("brightness", _brightness)


def test_baselines_through_the_same_runner_and_merged_table(
    single: Path, tmp_path: Path, model: str, capsys: pytest.CaptureFixture
) -> None:
    assert {"eagle", "feature_ablation", "kernel_shap", "lime", "shapley"} <= set(list_methods())
    scene = generate_scene(100)
    Image.fromarray(scene.image).save(tmp_path / "s.png")
    manifest = tmp_path / "m.jsonl"
    row = {"id": "s", "image": "s.png", "prompt": "describe", "target": scene.caption}
    manifest.write_text(json.dumps(row) + "\n")
    outs = []
    for method in ("feature_ablation", "kernel_shap", "random"):
        outs.append(tmp_path / method)
        config = RunConfig(method=method, regions=6, n_samples=8, pointing="sentence")
        run(manifest, outs[-1], model=model, config=config, show_progress=False)
        saved = load_sample(outs[-1], "s")
        mask, attribution = saved["feature_mask"][0, 0], saved["attribution"][0, 0]
        n_regions = int(mask.max()) + 1
        values = torch.stack([attribution[mask == r][0] for r in range(n_regions)])
        for r in range(n_regions):  # region methods give one value per region
            assert torch.all(attribution[mask == r] == values[r])
        assert saved["order"].tolist() == torch.sort(-values, stable=True).indices.tolist()
    record = load_results(outs[0])["s"]
    assert record["forwards"] == record["n_regions"] + 1
    brightness = tmp_path / "brightness"
    config = RunConfig(method="brightness", regions=6, pointing="sentence")
    run(manifest, brightness, model=model, config=config, show_progress=False)
    saved = load_sample(brightness, "s")
    assert torch.equal(saved["attribution"], BRIGHTNESS_INPUTS[-1].sum(dim=1, keepdim=True))
    assert load_results(brightness)["s"]["forwards"] == 0
    assert load_results(outs[1])["s"]["forwards"] == 8

    assert main(["--merge", str(single), *map(str, outs)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| run | method | budget | samples | errors | insertion ↑")
    assert [line.split(" | ")[1:3] for line in table[2:]] == [
        ["eagle", "–"],
        ["feature_ablation", "–"],
        ["kernel_shap", "8"],  # the budget the run spent, as the benchmarks record it
        ["random", "–"],
    ]


def test_wrong_yes_no_answers_are_mitigated_and_merged(tmp_path: Path, model: str) -> None:
    from captum_eagle.metrics import amcr, csr

    scene = generate_scene(3)
    Image.fromarray(scene.image).save(tmp_path / "s.png")
    question = "is there a red circle ?"
    rows = [  # the target plays the model's answer: "yes" to a question whose answer is "no"
        {"id": "wrong", "image": "s.png", "prompt": question, "target": "yes", "answer": "no"},
        {"id": "right", "image": "s.png", "prompt": question, "target": "no", "answer": "no"},
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for method in ("eagle", "feature_ablation"):
        out = tmp_path / method
        config = RunConfig(method=method, regions=6, max_new_tokens=3)
        tables = run(manifest, out, model=model, config=config, show_progress=False).tables
        records = load_results(out)
        assert records["wrong"]["qa"] == {"expected": "no", "correct": False}
        assert records["right"]["qa"] == {"expected": "no", "correct": True}
        assert "hallucination" not in records["right"]
        case = records["wrong"]["hallucination"]
        n_regions = records["wrong"]["n_regions"]
        assert (case["wrong"], case["correct"]) == ("yes", "no")
        assert sorted(case["removal_order"]) == list(range(n_regions))
        assert case["answers"][0] == "yes"
        if case["corrected"]:
            assert case["removed_fraction"] == case["flip_point"] / n_regions
        else:
            assert case["removed_fraction"] == 1.0 and case["flip_point"] is None
        fraction = case["removed_fraction"] if case["corrected"] else None
        row = tables["rows"][0]
        assert row["hallucination_cases"] == 1 and row["qa_accuracy"] == 0.5
        assert (row["amcr"], row["csr_10"]) == (amcr([fraction]), csr([fraction]))
        saved = load_sample(out, "wrong")
        assert saved["hallucination_map"].shape == saved["feature_mask"].shape


def test_coco_manifest_runs_end_to_end(tmp_path: Path, model: str) -> None:
    from captum_eagle.datasets import coco_captions_manifest, write_manifest

    images = tmp_path / "val2017"
    images.mkdir()
    array = np.full((30, 48, 3), 20, dtype=np.uint8)
    array[8:20, 20:34] = (220, 30, 30)  # the "circle" (words both test models know)
    Image.fromarray(array).save(images / "000000000001.jpg")
    listing = [{"id": 1, "file_name": "000000000001.jpg", "height": 30, "width": 48}]
    captions = {"images": listing, "annotations": [{"image_id": 1, "caption": "a red circle"}]}
    instances = {
        "images": listing,
        "categories": [{"id": 17, "name": "circle"}, {"id": 18, "name": "square"}],
        "annotations": [
            {"image_id": 1, "category_id": 17, "bbox": [20, 8, 14, 12],
             "segmentation": [[20, 8, 34, 8, 34, 20, 20, 20]]},
            {"image_id": 1, "category_id": 18, "bbox": [0, 0, 4, 4],
             "segmentation": [[0, 0, 4, 0, 4, 4, 0, 4]]},
        ],
    }  # fmt: skip
    (tmp_path / "captions.json").write_text(json.dumps(captions))
    (tmp_path / "instances.json").write_text(json.dumps(instances))
    entries = coco_captions_manifest(
        tmp_path / "captions.json",
        images,
        instances=tmp_path / "instances.json",
        masks_dir=tmp_path / "masks",
        explain="reference",
    )
    manifest = write_manifest(entries, tmp_path / "coco.jsonl")
    out = tmp_path / "out"
    run(manifest, out, model=model, config=CONFIG, show_progress=False)
    record = load_results(out)["coco-1"]
    assert record["status"] == "ok" and record["answer"] == "a red circle"
    assert record["pointing"]["square"] == {"present": False}
    circle = record["pointing"]["circle"]
    assert circle["tokens"] == [2] and set(circle) == {"present", "tokens", "box", "mask"}
    assert record["meta"] == {"references": ["a red circle"], "coco_id": 1}


def test_run_killed_between_a_sample_file_and_its_line_redoes_that_sample(
    single: Path, manifest: Path, model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import captum_eagle.run.shards as shards

    written = []

    def write_then_die(path: Path, write, prefix: str = ".tmp-") -> None:
        store_write(path, write, prefix)
        written.append(path.name)
        if len(written) == 3:  # killed after the third sample file, before its results line
            raise KeyboardInterrupt

    store_write = shards.atomic_write
    monkeypatch.setattr(shards, "atomic_write", write_then_die)
    out = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        run(manifest, out, model=model, config=CONFIG, show_progress=False)
    monkeypatch.undo()
    recorded = load_results(out)
    assert len(written) == 3 and len(list((out / "samples").glob("*.pt"))) == 3
    assert [r["status"] for r in recorded.values()].count("ok") == 2  # the third has no line

    summary = run(manifest, out, model=model, config=CONFIG, show_progress=False)
    assert summary.skipped == len(recorded)
    ids = [line["id"] for line in _lines(out)]
    assert len(ids) == len(set(ids)) == N_SAMPLES + 2
    _assert_same_results(out, single)


def test_no_progress_hides_the_weights_loading_bar(
    manifest: Path, model: str, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    from transformers.utils import logging as transformers_logging

    options = ["--model", model, "--regions", "6", "--max-new-tokens", "3", "--max-samples", "1"]
    enabled = transformers_logging.is_progress_bar_enabled()
    assert main([str(manifest), "--out", str(tmp_path / "quiet"), *options, "--no-progress"]) == 0
    quiet = capfd.readouterr().err
    assert "Loading weights" not in quiet and "it/s" not in quiet
    assert transformers_logging.is_progress_bar_enabled() == enabled  # restored
    assert main([str(manifest), "--out", str(tmp_path / "shown"), *options]) == 0
    assert "Loading weights" in capfd.readouterr().err


def test_old_runner_module_still_works_with_a_deprecation_warning() -> None:
    import importlib

    import captum_eagle.run as package

    runner = importlib.import_module("captum_eagle.runner")
    with pytest.warns(DeprecationWarning, match="use captum_eagle.run.run"):
        assert runner.run is package.run
    with pytest.warns(DeprecationWarning, match="captum_eagle.baselines"):
        assert "lime" in runner.METHODS
    with pytest.raises(AttributeError):
        runner.no_such_name  # noqa: B018
    done = subprocess.run(
        [sys.executable, "-m", "captum_eagle.runner", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.startswith("usage: captum-eagle run")


# -- a run folder whose settings cannot be read is refused before any sample (issue 20) ---------
@pytest.mark.parametrize(
    "content, message",
    [
        ("", "is not a settings file of a run"),
        ('{"regions": 6, "max_new', "is not a settings file of a run"),
        ("[6, 3]", "is not a settings file of a run"),
    ],
)
def test_a_corrupt_run_json_is_a_one_line_error(
    manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture, content: str, message: str
) -> None:
    out = tmp_path / "corrupt"
    out.mkdir()
    (out / "run.json").write_text(content)
    code = main([str(manifest), "--out", str(out), "--model", "default", *CLI_OPTIONS])
    error = capsys.readouterr().err
    assert code == 2 and message in error and "pass a new --out" in error
    assert len(error.strip().splitlines()) == 1 and "Traceback" not in error
    assert not list(out.glob("results-rank*.jsonl"))


def test_results_without_their_settings_are_not_resumed_with_other_settings(
    manifest: Path, tmp_path: Path
) -> None:
    out = tmp_path / "orphan"
    out.mkdir()
    results = out / "results-rank0.jsonl"
    results.write_text('{"id": "scene-0", "status": "ok", "line": 1}\n')
    with pytest.raises(RunnerError, match=r"holds results but no run\.json"):
        run(manifest, out, model="default", config=CONFIG, show_progress=False)
    assert results.read_text().count("\n") == 1


def test_a_run_over_a_file_that_is_no_manifest_stops_before_loading_the_model(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    wrong = tmp_path / "notes.txt"
    wrong.write_text("these are my notes\nnot a manifest\n")
    out = tmp_path / "out"
    code = main(
        [str(wrong), "--out", str(out), "--model", str(tmp_path / "no-model"), "--no-progress"]
    )
    error = capsys.readouterr().err
    assert code == 2 and "none of its 2 lines is a manifest entry" in error
    assert len(error.strip().splitlines()) == 1 and "Traceback" not in error
    assert not out.exists()  # nothing was written: the model was never loaded


def test_joint_mode_records_text_scores_and_reliance(tmp_path: Path, model: str) -> None:
    scene = generate_scene(4)
    Image.fromarray(scene.image).save(tmp_path / "s.png")
    question = scene.questions[0].text
    rows = [{"id": "q", "image": "s.png", "prompt": question, "target": "yes"}]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = RunConfig(regions=6, max_new_tokens=3, text_features="words")
    run(manifest, tmp_path / "out", model=model, config=config, show_progress=False)
    record = load_results(tmp_path / "out")["q"]
    joint = record["joint"]
    words = [text for text, _ in joint["text_scores"]]
    assert words == question.replace("?", " ?").split()
    n = record["n_regions"] + len(words)
    assert sorted(joint["order"]) == list(range(n)) and len(joint["feature_labels"]) == n
    assert all(0 <= score <= 1 for _, score in joint["text_scores"])
    assert len(joint["reliance"]) == 1 and joint["forwards"] > n
    saved = JointResult.from_dict(load_sample(tmp_path / "out", "q")["joint"])
    assert saved.order.tolist() == joint["order"]
    with pytest.raises(ValueError, match="needs method='eagle'"):
        RunConfig(method="lime", text_features="words")
    with pytest.raises(ValueError, match="expected 'words' or character spans"):
        RunConfig(text_features="all")
