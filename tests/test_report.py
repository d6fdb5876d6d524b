"""benchmarks/report.py and benchmarks/results.py: tables from results files, paired statistics."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402
from benchmarks.results import (  # noqa: E402
    header,
    holm,
    paired_comparisons,
    read_results,
    results_file,
    write_record,
)


def test_committed_tables_are_what_the_committed_results_give() -> None:
    assert report.stale() == [], "run python benchmarks/report.py --write"


def test_check_fails_on_a_stale_table(tmp_path, monkeypatch) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("<!-- report:headline -->\nold numbers\n<!-- /report:headline -->\n")
    monkeypatch.setattr(report, "DOCUMENTS", {readme: ("headline",)})
    monkeypatch.setattr(report, "ROOT", tmp_path)
    monkeypatch.setattr(report, "FIGURE", tmp_path / "frontier.png")
    monkeypatch.setattr(report, "RESULTS", tmp_path / "results")  # no results: empty sections
    assert report.main(["--check"]) == 1
    assert report.main(["--write"]) == 0
    assert "old numbers" not in readme.read_text()
    assert report.main(["--check"]) == 0


def test_replace_sections_needs_both_markers() -> None:
    text = "a\n<!-- report:x -->\nold\n<!-- /report:x -->\nb"
    new = report.replace_sections(text, {"x": "new"}, ["x"])
    assert new == "a\n<!-- report:x -->\nnew\n<!-- /report:x -->\nb"
    assert report.replace_sections(new, {"x": "new"}, ["x"]) == new
    with pytest.raises(ValueError, match="report:y"):
        report.replace_sections(text, {"y": "new"}, ["y"])


# -- results files -----------------------------------------------------------------------------
def test_results_files_round_trip_with_rounded_floats(tmp_path) -> None:
    path = tmp_path / "run.jsonl"
    first = header("frontier", "tiny", {"seed": 3, "out": tmp_path})
    assert first["config"] == {"seed": 3, "out": str(tmp_path)}
    assert {"torch", "transformers", "captum", "captum-eagle"} <= set(first["versions"])
    assert first["machine"]["cpus"] >= 1 and first["command"].startswith("python ")
    with results_file(path, first) as file:
        write_record(file, {"type": "explanation", "auc": 0.1234567891, "pg": float("nan")})
    headers, records = read_results([path])
    assert headers[0]["config"]["seed"] == 3
    assert records == [{"type": "explanation", "auc": 0.12346, "pg": None}]


def test_read_results_refuses_what_cannot_be_pooled(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="run the benchmark"):
        read_results([tmp_path / "missing.jsonl"])
    bare = tmp_path / "bare.jsonl"
    bare.write_text(json.dumps({"type": "explanation"}) + "\n")
    with pytest.raises(ValueError, match="header"):
        read_results([bare])
    paths = []
    for seed, sha in ((0, "a"), (1, "b")):
        paths.append(tmp_path / f"s{seed}.jsonl")
        first = {"type": "header", "config": {"seed": seed}, "weights": {"weights_sha256": sha}}
        paths[-1].write_text(json.dumps(first) + "\n")
    with pytest.raises(ValueError, match="different weights"):
        read_results(paths)
    with pytest.raises(ValueError, match="different --seed values"):
        read_results([paths[0], paths[0]])
    with (
        pytest.raises(ValueError, match="header"),
        results_file(tmp_path / "x.jsonl", {"type": "explanation"}),
    ):
        pass


# -- statistics --------------------------------------------------------------------------------
def test_holm_adjusts_step_down_and_stays_monotone() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5]
    assert holm([0.001, 0.9]) == pytest.approx([0.002, 0.9])


def test_paired_comparisons_decide_by_the_corrected_interval() -> None:
    rng = np.random.default_rng(0)
    differences = {
        "clearly better": list(0.2 + rng.normal(0, 0.02, 10)),
        "clearly worse": list(-0.2 + rng.normal(0, 0.02, 10)),
        "lower is better": list(-0.2 + rng.normal(0, 0.02, 10)),
        "noise": list(rng.normal(0, 0.05, 10)),
        "two pairs": [1.0, 1.0],
    }
    results = paired_comparisons(differences, {"lower is better": True})
    assert results["clearly better"].verdict == "better"
    assert results["clearly worse"].verdict == "worse"
    assert results["lower is better"].verdict == "better"
    assert results["noise"].verdict == "tie"
    assert results["two pairs"].verdict == "n<6" and results["two pairs"].n == 2
    better = results["clearly better"]
    assert better.low > 0 and better.low < better.mean < better.high
    # Four comparisons take part: the smallest p-value's interval has level 1 - 0.05 / 4.
    assert max(r.level for r in results.values()) == pytest.approx(1 - 0.05 / 4)
    assert min(r.level for r in results.values() if r.n >= 6) == pytest.approx(0.95)


def test_holm_turns_a_marginal_difference_into_a_tie_among_many() -> None:
    marginal = [0.05, -0.01, 0.04, 0.02, 0.06, -0.02, 0.03, 0.05, 0.01, 0.04]
    alone = paired_comparisons({"marginal": marginal})["marginal"]
    assert alone.verdict == "better" and alone.level == pytest.approx(0.95)
    rng = np.random.default_rng(1)
    family = {f"null {i}": list(rng.normal(0, 0.05, 10)) for i in range(30)}
    among = paired_comparisons({"marginal": marginal, **family})["marginal"]
    assert among.verdict == "tie" and among.p_adjusted > alone.p_adjusted
    assert among.low < alone.low  # a wider interval at the corrected level


# -- tables from records -----------------------------------------------------------------------
def _word(
    method: str,
    budget: str | None,
    scene: int,
    forwards: int,
    insertion: float,
    kind: str = "plain",
) -> dict:
    return {
        "type": "explanation",
        "kind": kind,
        "scene": scene,
        "label": "red#1",
        "regions": 4,
        "actual_regions": 4,
        "method": method,
        "budget": budget,
        "forwards": forwards,
        "insertion": insertion,
        "deletion": 1 - insertion,
        "point_mask": 1.0,
        "point_mask_tie": 1.0,
    }


def test_frontier_compares_only_eagle_modes_within_the_budget() -> None:
    records = []
    for scene in range(6):
        noise = 0.01 * scene
        records += [
            _word("eagle:exact", None, scene, 20, 0.9 + noise),
            _word("eagle:early_stop", None, scene, 12, 0.8 + noise),
            _word("lime", "2N", scene, 8, 0.5 + noise),
            _word("lime", "4N", scene, 16, 0.7 + noise / 2),
            _word("lime", "N(N+1)", scene, 20, 0.95 + noise),
        ]
    cells = {(c["level"], c["metric"]): c for c in report.frontier_comparisons(records)[4]}
    assert cells[("2N", "insertion")]["ours"] is None  # no Eagle mode costs 8 forwards or less
    four = cells[("4N", "insertion")]
    assert (four["ours"], four["theirs"]) == ("eagle:early_stop", "lime @4N")
    assert four["comparison"].verdict == "better"
    exact = cells[("N(N+1)", "insertion")]
    assert exact["ours"] == "eagle:exact" and exact["comparison"].verdict == "worse"
    assert exact["comparison"].mean == pytest.approx(-0.05)
    assert cells[("4N", "deletion")]["comparison"].verdict == "better"  # lower deletion
    assert cells[("4N", "amcr")]["comparison"] is None  # no hallucination records
    default = cells[(report.DEFAULT_ROW, "insertion")]  # exact alone, whatever the best mode
    assert (default["ours"], default["theirs"]) == ("eagle:exact", "lime @N(N+1)")
    assert default["comparison"].mean == pytest.approx(-0.05)
    assert cells[(report.DEFAULT_ROW, "deletion")]["ours"] == "eagle:exact"
    table = report.frontier_verdicts(records)
    assert "no Eagle mode this cheap" in table and "(early_stop vs lime)" in table
    assert f"| {report.DEFAULT_ROW} | 20 |" in table
    assert "| eagle:early_stop | 12 | 0.825 |" in report.frontier_table(records)


def test_every_eagle_mode_is_compared_with_the_exact_greedy() -> None:
    records = []
    for scene in range(6):
        noise = 0.01 * scene
        records += [
            _word("eagle:exact", None, scene, 20, 0.9 + noise),
            _word("eagle:early_stop", None, scene, 10, 0.8 + noise),
            _word("eagle:budget", "2N", scene, 5, 0.9 + noise),
            _word("lime", "2N", scene, 8, 0.1),
        ]
    table = report.frontier_against_exact(records)
    lines = table.splitlines()
    assert lines[0] == "**N = 4**: Eagle mode − exact greedy (20 forwards), same cases"
    budget, early = (line for line in lines if line.startswith("| budget") or "early" in line)
    assert budget.startswith("| budget @2N | 5 | 4.0 | +0.000 [+0.000, +0.000] tie |")
    assert early.startswith("| early_stop | 10 | 2.0 | -0.100 [-0.100, -0.100] worse |")
    assert "lime" not in table
    assert report.frontier_against_exact([r for r in records if r["method"] != "eagle:exact"]) == ""


def test_budgeted_eagle_points_are_eagle_modes_not_samplers() -> None:
    records = []
    for scene in range(6):
        noise = 0.01 * scene
        records += [
            _word("eagle:budget", "2N", scene, 8, 0.9 + noise),
            _word("lime", "2N", scene, 8, 0.5 + noise),
        ]
    (cell,) = [c for c in report.frontier_comparisons(records)[4] if c["metric"] == "insertion"]
    assert (cell["ours"], cell["theirs"]) == ("eagle:budget @2N", "lime @2N")
    assert cell["comparison"].mean == pytest.approx(0.4)


def test_cases_of_different_kinds_with_one_seed_and_word_are_not_paired() -> None:
    # Scenes of every kind share their seeds; the same word can come up in two kinds.
    records = [
        _word("eagle:exact", None, 0, 20, 0.9, kind="plain"),
        _word("eagle:exact", None, 0, 20, 0.5, kind="crowded"),
        _word("lime", "N(N+1)", 0, 20, 0.8, kind="plain"),
        _word("lime", "N(N+1)", 0, 20, 0.2, kind="crowded"),
    ]
    ours = [r for r in records if r["method"] == "eagle:exact"]
    theirs = [r for r in records if r["method"] == "lime"]
    assert report._differences(ours, theirs, "insertion") == pytest.approx([0.1, 0.3])
    assert "2 caption words" in report.frontier_table(records)


def test_hallucination_table_counts_uncorrected_cases_as_full_removal() -> None:
    records = [
        {
            "type": "hallucination",
            "scene": scene,
            "regions": 16,
            "actual_regions": 16,
            "method": method,
            "budget": None,
            "forwards": 0,
            "area_removed": area,
            "on_cause": area is not None,
        }
        for scene in range(4)
        for method, area in (("eagle", 0.05), ("random", None if scene < 2 else 0.5))
    ]
    table = report.hallucination_table(records)
    assert "| eagle | — | 4 | 0.050 | 1.00 | 1.00 | 0 |" in table
    assert "| random | — | 4 | 0.750 | 0.00 | 0.50 | 0 |" in table
    assert "−0.700" in table or "-0.700" in table


def test_sections_without_results_say_so(tmp_path) -> None:
    made = report.sections(tmp_path)
    for name in ("speed-exact", "speed-generic", "supported-models", "gpu-tiny", "search"):
        assert made[name] == "No results yet."


def test_speed_exact_section_comes_from_its_file(tmp_path) -> None:
    exact = {"type": "exact_vs_naive", "model": "shapes", "image": [64, 64], "answer_tokens": 23}
    exact |= {"regions": 14, "steps": 14, "engine_forwards": 206, "engine_seconds": 0.5}
    exact |= {"naive_seconds": 1.5, "authors_seconds": 2.0}
    exact |= {"engine_same_order": True, "authors_same_order": False}
    path = tmp_path / "speed" / "exact_engine.jsonl"
    with results_file(path, header("speed", "tiny", {"repeats": 3})) as file:
        write_record(file, exact)
    speed = report.sections(tmp_path)["speed-exact"]
    assert "CPUs, load average at the start " in speed  # recorded by results.machine()
    assert "engine time = median of 3 runs" in speed
    assert "| 14 | 206 | 0.50 | 1.50 | 2.00 | 3.0 | 4.0 | yes | NO |" in speed
    assert "reproduces the naive order at every N and is 3.0× faster" in speed


def test_gpu_tiny_section_comes_from_its_file(tmp_path) -> None:
    gpu = {"type": "gpu", "model": "llava-1.5-7b (tiny)", "search": "exact", "batch": "auto"}
    gpu |= {"forwards": 268, "seconds": 0.5, "peak_gib": None}
    with results_file(tmp_path / "gpu" / "tiny_cpu.jsonl", header("gpu", "tiny", {})) as file:
        write_record(file, gpu)
    section = report.sections(tmp_path)["gpu-tiny"]
    row = "| llava-1.5-7b (tiny) | exact | auto | 268 | 0.50 | 536.0 | n/a (CPU) |"
    assert row in section and "model tiny (random weights)" in section


def test_environment_gives_the_load_or_says_the_cores_were_shared() -> None:
    machine = {"platform": "p", "cpus": 2, "torch_threads": 1}
    head = {"command": "c", "date": "2026-12-03", "versions": {}, "weights": {"model": "tiny"}}
    head["versions"] = dict.fromkeys(("torch", "transformers", "captum", "captum-eagle"), "1")
    loaded = [{**head, "machine": {**machine, "load_1min": load}} for load in (0.2, 3.4)]
    assert "2 CPUs, load average at the start 0.2–3.4 (" in report.environment(loaded)
    older = [*loaded, {**head, "machine": machine}]  # a header from before the load was recorded
    assert "2 CPUs, shared with other jobs (" in report.environment(older)
