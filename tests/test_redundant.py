"""benchmarks/redundant.py: evidence counts, budget pairing, bootstrap intervals, JSONL runs."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import redundant  # noqa: E402
from benchmarks.faithfulness import Case  # noqa: E402
from benchmarks.results import read_results  # noqa: E402
from captum_eagle.zoo import generate_scene  # noqa: E402


def _case(task: str, label: str, with_mask: bool = True) -> Case:
    mask = torch.ones(64, 64, dtype=torch.bool) if with_mask else None
    return Case(task, "redundant", 0, label, sample=None, box=mask, mask=mask)


def test_copies_counts_the_objects_carrying_the_evidence() -> None:
    scene = generate_scene(424244, kind="redundant")  # two white squares, a yellow square
    assert redundant.copies(scene, _case("qa", "is there a white square? -> yes")) == 2
    assert redundant.copies(scene, _case("qa", "q -> no", with_mask=False)) == 0
    assert redundant.copies(scene, _case("word", "white#3")) == 2
    assert redundant.copies(scene, _case("word", "square#4")) == 3
    assert redundant.copies(scene, _case("word", "yellow#1")) == 1


def test_bootstrap_interval() -> None:
    assert redundant.bootstrap_interval([0.2, 0.2, 0.2]) == pytest.approx((0.2, 0.2, 0.2))
    mean, low, high = redundant.bootstrap_interval([-1.0, 0.0, 1.0, 2.0])
    assert mean == 0.5 and -1.0 <= low < 0.5 < high <= 2.0
    assert redundant.bootstrap_interval([1.0, 2.0, 3.0], seed=3) == redundant.bootstrap_interval(
        [1.0, 2.0, 3.0], seed=3
    )
    with pytest.raises(ValueError, match="at least one"):
        redundant.bootstrap_interval([])


def _record(method: str, forwards: int, deletion: float, **extra) -> dict:
    base = {"type": "explanation", "regions": 16, "task": "qa", "kind": "redundant"}
    metrics = {"insertion": 0.9, "ahs": 1.0, "point_mask": 1.0, "point_mask_tie": math.nan}
    return {
        **base,
        "scene": 1,
        "label": "q",
        "copies": 2,
        "method": method,
        "forwards": forwards,
        "deletion": deletion,
        **metrics,
        **extra,
    }


def test_eagle_pairs_with_the_baseline_at_its_own_forward_count() -> None:
    records = [
        _record("eagle:exact", 100, 0.5),
        _record("eagle:lazy", 40, 0.3),
        _record("kernel_shap", 100, 0.1, budget=100, budget_of=["exact"]),
        _record("kernel_shap", 40, 0.2, budget=40, budget_of=["lazy"]),
        _record("lime", 40, 0.4, budget=40, budget_of=["lazy"]),
    ]
    pairs = redundant.paired_differences(records)
    group = (16, "qa", "redundant", "duplicated")
    assert pairs[(group, "eagle:exact", "kernel_shap")]["deletion"] == pytest.approx([0.4])
    assert pairs[(group, "eagle:lazy", "kernel_shap")]["deletion"] == pytest.approx([0.1])
    assert pairs[(group, "eagle:lazy", "lime")]["deletion"] == pytest.approx([-0.1])
    assert (group, "eagle:exact", "lime") not in pairs  # no lime at 100 forwards
    assert "point_mask_tie" not in pairs[(group, "eagle:exact", "kernel_shap")]  # NaN skipped
    assert pairs[(group, "eagle:lazy", "eagle:exact")]["deletion"] == pytest.approx([-0.2])
    assert (group, "eagle:exact", "eagle:exact") not in pairs


def test_headline_has_one_row_per_group_with_both_eagle_methods_against_kernel_shap() -> None:
    records = []
    for scene, (exact, repair, shap) in enumerate([(0.5, 0.1, 0.1), (0.7, 0.2, 0.3)]):
        for method, forwards, deletion, extra in (
            ("eagle:exact", 100, exact, {}),
            ("eagle:forward_backward", 90, repair, {"insertion": 0.8}),
            ("kernel_shap", 100, shap, {"budget": 100, "budget_of": ["exact"]}),
            ("kernel_shap", 90, shap, {"budget": 90, "budget_of": ["forward_backward"]}),
            ("eagle:lazy", 40, 0.9, {}),  # not in the headline
        ):
            records.append(_record(method, forwards, deletion, scene=scene, **extra))
    records.append(_record("eagle:exact", 100, 0.2, kind="plain", copies=1))  # exact only
    table = redundant.markdown_headline(records).splitlines()
    assert len(table) == 4  # header, rule, two groups
    duplicated = table[2]
    assert duplicated.startswith("| 16 | qa | redundant | duplicated | 2 | 0.600 | 0.150 |")
    assert "+0.400 [" in duplicated and "(n = 2)" in duplicated  # exact − KernelShap
    assert "-0.050 [" in duplicated  # forward_backward − KernelShap at its own 90 forwards
    assert "-0.100 [" in duplicated  # insertion 0.8 − 0.9
    assert "lazy" not in "\n".join(table)
    assert table[3].startswith("| 16 | qa | plain | single | 1 | 0.200 | — | — | — |")
    assert redundant.markdown_headline([]) == ""


def test_verdicts() -> None:
    assert redundant.verdict("deletion", [-0.2, -0.1, -0.3]) == "win"
    assert redundant.verdict("insertion", [-0.2, -0.1, -0.3]) == "loss"
    assert redundant.verdict("insertion", [-0.2, 0.3, 0.1]) == "tie"
    assert redundant.verdict("insertion", [0.5]) == "?"


def _write(path: Path, seed: int, records: list[dict], weights: str = "abc") -> Path:
    header = {"type": "header", "config": {"seed": seed}, "weights": {"weights_sha256": weights}}
    path.write_text("\n".join(json.dumps(r) for r in [header, *records]) + "\n")
    return path


def test_runs_pool_through_read_results_and_bad_files_are_rejected(tmp_path) -> None:
    a = _write(tmp_path / "a.jsonl", 0, [_record("eagle:exact", 1, 0.1)])
    b = _write(tmp_path / "b.jsonl", 1, [_record("eagle:exact", 1, 0.2)])
    headers, records = read_results([a, b])
    assert len(headers) == 2 and [r["deletion"] for r in records] == [0.1, 0.2]
    with pytest.raises(ValueError, match="different --seed values"):
        read_results([a, _write(tmp_path / "c.jsonl", 0, [])])
    with pytest.raises(ValueError, match="different weights"):
        read_results([a, _write(tmp_path / "d.jsonl", 2, [], weights="other")])
    (tmp_path / "e.jsonl").write_text(json.dumps(_record("eagle:exact", 1, 0.1)) + "\n")
    with pytest.raises(ValueError, match="header"):
        read_results([tmp_path / "e.jsonl"])


def test_unknown_search_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="forward_backward"):
        redundant.searches(["nope"])
    assert set(redundant.searches(["exact", "bidirectional-removal"])) == {
        "exact",
        "bidirectional-removal",
    }


def test_tiny_run_writes_jsonl_and_reports(tmp_path, capsys) -> None:
    argv = ["--model", "tiny", "--kinds", "plain", "--tasks", "qa", "--regions", "4"]
    argv += ["--scenes", "1", "--searches", "exact", "forward_backward", "--batch-size", "8"]
    outs = [tmp_path / f"s{seed}.jsonl" for seed in (0, 1)]
    for seed, out in zip((0, 1), outs, strict=True):
        redundant.main([*argv, "--seed", str(seed), "--out", str(out)])
    lines = [json.loads(line) for line in outs[0].read_text().splitlines()]
    header, records = lines[0], lines[1:]
    assert header["type"] == "header" and header["command"].startswith("python ")
    assert {"torch", "captum", "transformers"} <= set(header["versions"])
    methods = {r["method"] for r in records}
    assert {"eagle:exact", "eagle:forward_backward", "kernel_shap", "lime"} <= methods
    assert {"eagle:exact/gain", "eagle:forward_backward/gain"} <= methods
    exact = next(r for r in records if r["method"] == "eagle:exact")
    shap = [r for r in records if r["method"] == "kernel_shap"]
    assert exact["forwards"] in {r["budget"] for r in shap}
    assert all(r["forwards"] == r["budget"] for r in shap)  # equal budget, counted
    capsys.readouterr()
    redundant.main(["--report", *map(str, outs)])
    report = capsys.readouterr().out
    assert "**qa**, plain" in report and "2 scenes" in report
    assert "| eagle:forward_backward | 2 |" in report and "won / tied / lost" in report


def test_baselines_option_runs_only_the_chosen_ones(tmp_path) -> None:
    out = tmp_path / "shap.jsonl"
    argv = ["--model", "tiny", "--kinds", "plain", "--tasks", "qa", "--regions", "4"]
    argv += ["--scenes", "1", "--searches", "exact", "--rules", "paper", "--batch-size", "8"]
    redundant.main([*argv, "--baselines", "kernel_shap", "--out", str(out)])
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0]["config"]["baselines"] == ["kernel_shap"]
    assert {r["method"] for r in lines[1:]} == {"eagle:exact", "kernel_shap"}
