"""The benchmark harnesses (faithfulness and its method registry, speed) at toy sizes."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import benchmarks.baselines  # noqa: E402, F401  (registers grad_cam)
from benchmarks import faithfulness, frontier, report, speed, supported_models  # noqa: E402
from benchmarks.results import machine, read_results  # noqa: E402
from captum_eagle import FeatureMask, MLLMForwardWrapper  # noqa: E402
from captum_eagle.baselines import attribute, list_methods  # noqa: E402
from captum_eagle.registry import UnknownNameError  # noqa: E402
from captum_eagle.testing import tiny_model  # noqa: E402
from captum_eagle.zoo import WEIGHTS_DIR, Scene, SceneObject  # noqa: E402

needs_weights = pytest.mark.skipif(
    not (WEIGHTS_DIR / "model.safetensors").is_file(), reason="bundled weights not trained yet"
)


@pytest.fixture(scope="module")
def llava() -> MLLMForwardWrapper:
    return MLLMForwardWrapper(*tiny_model("llava", image_size=32), batch_size=8)


@pytest.fixture(scope="module")
def llava_sample(llava):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    return llava.prepare(image, "describe the image .", "a red cat")


def _object(colour: str, shape: str, x0: int) -> SceneObject:
    mask = np.zeros((64, 64), dtype=bool)
    mask[10:20, x0 : x0 + 10] = True
    return SceneObject(colour, shape, mask, (x0, 10, x0 + 9, 19))


def _scene(objects: list[SceneObject]) -> Scene:
    return Scene(np.zeros((64, 64, 3), np.uint8), objects, "", [], "plain", 0)


# -- Grad-CAM, the benchmarks' extra baseline ---------------------------------------------------
def test_grad_cam_is_registered_with_the_package_methods() -> None:
    assert list_methods()[0] == "eagle" and "grad_cam" in list_methods()


def test_grad_cam_restores_the_projector(llava, llava_sample) -> None:
    projector = llava.model.model.multi_modal_projector
    before = llava(llava_sample.image, llava_sample)
    cam = attribute("grad_cam", llava, llava_sample, FeatureMask.grid(llava_sample.image, 2, 2))
    assert cam.shape == (1, 1, 32, 32)
    assert (cam >= 0).all()
    assert llava.model.model.multi_modal_projector is projector
    assert torch.equal(llava(llava_sample.image, llava_sample), before)


def test_grad_cam_rejects_models_without_a_llava_projector() -> None:
    wrapper = MLLMForwardWrapper(*tiny_model("qwen2_5_vl"))
    sample = wrapper.prepare(np.zeros((56, 56, 3), np.uint8), "describe the image .", "a cat")
    with pytest.raises(ValueError, match="LLaVA-family"):
        attribute("grad_cam", wrapper, sample, FeatureMask.grid(sample.image, 2, 2))


# -- harness pieces ----------------------------------------------------------------------------
def test_caption_words_are_grounded_in_objects_sharing_the_attribute(llava) -> None:
    scene = _scene(
        [_object("red", "circle", 0), _object("red", "cross", 20), _object("blue", "cross", 40)]
    )
    caption = llava.prepare(
        np.zeros((32, 32, 3), np.uint8),
        "describe the image .",
        "a red circle and a green cross and a blue square .",
    )
    words, n_words = faithfulness.grounded_words(scene, caption)
    assert n_words == 6  # red circle green cross blue square
    # "green" and "square" name no object: no ground truth.
    assert [(word, referents) for word, _, referents in words] == [
        ("red", [0, 1]),
        ("circle", [0]),
        ("cross", [1, 2]),
        ("blue", [2]),
    ]
    assert [caption.answer_tokens[i].strip() for _, indices, _ in words for i in indices] == [
        "red",
        "circle",
        "cross",
        "blue",
    ]
    box, mask = faithfulness._object_regions(scene, [1, 2])
    assert int(mask.sum()) == 200 and int(box.sum()) == 200  # two 10x10 objects, tight boxes


def _record(method: str, label: str, insertion: float, deletion: float) -> dict:
    record = {metric: math.nan for metric in faithfulness.METRICS}
    record.update(
        task="caption",
        kind="plain",
        regions=32,
        actual_regions=31,
        scene=int(label),
        label=label,
        method=method,
        insertion=insertion,
        deletion=deletion,
        ahs=insertion,
        sensitive_tokens=1,
        seconds=1.0,
        forwards=10,
    )
    return record


def test_compare_finds_better_ties_and_worse() -> None:
    rng = np.random.default_rng(0)
    records = []
    for label in map(str, range(12)):
        noise = float(rng.normal(0, 0.01))
        records += [
            _record("eagle", label, 0.8 + noise, 0.3),
            _record("better", label, 0.9 + noise, 0.2 - noise),
            _record("same", label, 0.8 + float(rng.normal(0, 0.01)), 0.3 + noise),
            _record("worse", label, 0.5, 0.6 + noise),
        ]
    verdicts = {
        (row["method"], row["metric"]): row["verdict"]
        for row in faithfulness.compare(records, metrics=("insertion", "deletion"))
    }
    assert verdicts[("better", "insertion")] == "worse"
    assert verdicts[("better", "deletion")] == "worse"  # its deletion AUC is lower
    assert verdicts[("same", "insertion")] == "tie"
    assert verdicts[("worse", "insertion")] == "better"
    assert verdicts[("worse", "deletion")] == "better"
    summary = faithfulness.summarise(records)
    eagle = next(row for row in summary if row["method"] == "eagle")
    assert (eagle["n"], eagle["n_scenes"], eagle["mean_regions"]) == (12, 12, 31.0)
    assert math.isnan(eagle["point_box"])


def test_variants_add_equal_budget_runs_for_sampling_methods_only() -> None:
    assert faithfulness.variants(["eagle", "lime", "saliency"], equal_budget=True) == [
        "eagle",
        "lime",
        "lime@eagle",
        "saliency",
    ]
    assert faithfulness.variants(["lime"], equal_budget=False) == ["lime"]
    with pytest.raises(UnknownNameError, match="valid names"):
        faithfulness.variants(["nope"], equal_budget=False)


def test_explicit_budgets_are_parsed_and_checked(capsys) -> None:
    args = faithfulness.parse_args(["--budget", "lime=50", "shapley=3"])
    assert args.budget == {"lime": 50, "shapley": 3}
    assert faithfulness.parse_args([]).budget == {}
    for bad in ("lime", "lime=x", "occlusion=5", "limee=5"):
        with pytest.raises(SystemExit):
            faithfulness.parse_args(["--budget", bad])
        assert "expected NAME=N" in capsys.readouterr().err


# -- end to end on the shapes model ------------------------------------------------------------
@needs_weights
def test_benchmark_end_to_end_at_toy_size(tmp_path, capsys) -> None:
    out = tmp_path / "faithfulness.jsonl"
    faithfulness.main(
        [
            "--scenes", "1",
            "--kinds", "plain", "redundant",
            "--regions", "6",
            "--methods", "eagle", "kernel_shap", "random",
            "--words-per-scene", "1",
            "--llm-scenes", "1",
            "--out", str(out),
        ]
    )  # fmt: skip
    printed = capsys.readouterr().out
    headers, records = read_results([out])
    assert headers[0]["benchmark"] == "faithfulness" and headers[0]["config"]["seed"] == 0
    assert len(headers[0]["weights"]["weights_sha256"]) == 64
    assert {"torch", "transformers", "captum", "captum-eagle"} <= set(headers[0]["versions"])
    explanations = [r for r in records if r["type"] == "explanation"]
    names = ["eagle", "kernel_shap", "kernel_shap@eagle", "random"]
    assert list(dict.fromkeys(r["method"] for r in explanations)) == names
    summary = faithfulness.summarise(explanations)
    groups = {(row["task"], row["kind"]) for row in summary}
    assert {("caption", "plain"), ("caption", "redundant"), ("qa", "plain")} <= groups
    for task, kind in groups:
        rows = [row for row in summary if (row["task"], row["kind"]) == (task, kind)]
        assert sorted(row["method"] for row in rows) == sorted(names)
        for row in rows:
            for metric in ("insertion", "deletion", "ahs", "seconds"):
                assert math.isfinite(row[metric]) and row[metric] >= 0
            assert row["insertion"] <= 1 and row["deletion"] <= 1
            if task == "word":
                assert 0 <= row["point_mask_tie"] <= row["point_mask"] <= 1
    eagle = [r for r in explanations if r["method"] == "eagle"]
    matched = [r for r in explanations if r["method"] == "kernel_shap@eagle"]
    assert [r["forwards"] for r in matched] == [r["forwards"] for r in eagle]
    assert [r["budget"] for r in matched] == [r["forwards"] for r in eagle]
    assert {r["budget"] for r in explanations if r["method"] == "kernel_shap"} == {25}
    for record in eagle:  # exact greedy: N(N+1) images, 4 of them scored once for two subsets
        n = record["actual_regions"]  # (see test_speed_benchmark_full_run_matches_naive_order)
        assert record["forwards"] == n * (n + 1) - 4
    assert all(r["forwards"] == 0 for r in explanations if r["method"] == "random")
    speed = [r for r in records if r["type"] == "captum_llm_speed"]
    assert {row["method"] for row in speed} == {
        *faithfulness.LLM_PATHS,
        "feature_ablation",
        "eagle",
    }
    nonzero = {row["method"]: row["nonzero_map"] for row in speed}
    assert nonzero["captum_llm_fa (forward_in_tokens=False)"] and nonzero["eagle"]
    assert "| eagle |" in printed and "| kernel_shap@eagle |" in printed
    assert "Eagle better than" in printed
    counts = [
        line.strip("|").split("|")[1:]
        for line in printed.splitlines()
        if line.startswith("| kernel_shap | ") and line.count("|") == 6
    ]
    better, tie, worse, small = (int(cell) for cell in counts[0])
    compared = [row for row in faithfulness.compare(explanations) if row["method"] == "kernel_shap"]
    assert better + tie + worse + small == len(compared) > 0
    # One explanation per group and method: too few pairs for an interval.
    assert {row["verdict"] for row in compared} == {"n<6"}

    # Pooling: two files of the same seed count the same scenes twice and are refused.
    with pytest.raises(ValueError, match="different --seed values"):
        read_results([out, out])


def test_frontier_budgets_double_from_2n_up_to_exact_eagle() -> None:
    assert frontier.budgets(16) == [32, 64, 128, 256, 272]
    assert frontier.budgets(3) == [6, 12]
    assert [frontier.budget_label(b, 16) for b in frontier.budgets(16)] == [
        "2N", "4N", "8N", "16N", "N(N+1)",
    ]  # fmt: skip
    runs = frontier.points(4, ["exact", "lazy"], ["lime", "random"])
    assert runs == [
        ("eagle:exact", None), ("eagle:lazy", None),
        ("lime", 8), ("lime", 16), ("lime", 20), ("random", None),
    ]  # fmt: skip
    # The budgeted Eagle mode runs at the first three sampling budgets.
    assert frontier.points(16, ["budget"], []) == [
        ("eagle:budget", 32), ("eagle:budget", 64), ("eagle:budget", 128),
    ]  # fmt: skip


@needs_weights
def test_frontier_end_to_end_at_toy_size(tmp_path) -> None:
    out = tmp_path / "frontier.jsonl"
    frontier.main(
        [
            "--regions", "4", "--scenes", "1", "--kinds", "plain", "--hallucination", "1",
            "--searches", "exact", "early_stop", "--methods", "shapley", "random",
            "--out", str(out),
        ]
    )  # fmt: skip
    headers, records = read_results([out])
    assert headers[0]["benchmark"] == "frontier"
    kinds = {r["type"] for r in records}
    assert kinds == {"hallucination_scan", "explanation", "hallucination"}
    words = [r for r in records if r["type"] == "explanation"]
    n = words[0]["actual_regions"]
    methods = [(r["method"], r["budget"]) for r in words]
    assert methods == [("eagle:exact", None), ("eagle:early_stop", None)] + [
        ("shapley", frontier.budget_label(b, n)) for b in frontier.budgets(n)
    ] + [("random", None)]
    by_method = {(r["method"], r["budget"]): r for r in words}
    assert by_method[("eagle:exact", None)]["forwards"] == n * (n + 1) - 4  # as faithfulness
    assert by_method[("random", None)]["forwards"] == 0
    # Shapley spends budget // N permutations of N + 1 forwards at most.
    assert by_method[("shapley", "2N")]["forwards"] <= 2 * (n + 1)
    for record in words:
        assert 0 <= record["insertion"] <= 1 and 0 <= record["deletion"] <= 1
        assert 0 <= record["point_mask_tie"] <= record["point_mask"] <= 1
    for record in (r for r in records if r["type"] == "hallucination"):
        removed = record["area_removed"]
        assert removed is None or 0 < removed < 1

    # --like adds a method to the same cases; the files pool (same seed, other methods).
    extra = tmp_path / "budget.jsonl"
    frontier.main(
        [
            "--regions", "4", "--scenes", "1", "--kinds", "plain", "redundant",
            "--hallucination", "1", "--searches", "budget", "--methods",
            "--like", str(out), "--out", str(extra),
        ]
    )  # fmt: skip
    _, added = read_results([out, extra])
    budgeted = [r for r in added if r.get("method") == "eagle:budget"]
    assert {(r["type"], r["scene"], r.get("label")) for r in budgeted} == {
        (r["type"], r["scene"], r.get("label")) for r in records if r.get("method") == "eagle:exact"
    }  # the plain word and the hallucination case only: no redundant scene in `out`
    for record in (r for r in budgeted if r["type"] == "explanation"):
        assert record["forwards"] <= frontier.budgets(n)[["2N", "4N", "N(N+1)"].index(
            record["budget"])]  # fmt: skip
    with pytest.raises(ValueError, match="share --seed 0 and a method"):
        read_results([out, extra, extra])


def test_speed_benchmark_full_run_matches_naive_order(tmp_path, capsys) -> None:
    out = tmp_path / "exact.jsonl"
    args = "--model tiny-llava --regions 6 --steps 0 --repeats 2 --threads 1 --batch-size 8"
    speed.main([*args.split(), "--out", str(out)])
    (head,), (row,) = read_results([out])
    assert head["benchmark"] == "speed" and head["config"]["repeats"] == 2
    n = row["regions"]
    # greedy N(N+1) images; each distinct image is scored once: F(∅)'s images are F(V)'s, and the
    # step with two candidates left reuses 4 images of step 1
    assert row["engine_forwards"] == n * (n + 1) - 4 and row["steps"] == n
    assert row["engine_seconds"] > 0 and row["naive_seconds"] > 0
    assert row["engine_same_order"] is True
    table = capsys.readouterr().out
    assert f"| {n} | {n * (n + 1) - 4} |" in table
    assert "The engine reproduces the naive order at every N" in table


# -- joint image + prompt ground truth (benchmarks/joint.py) ------------------------------------
def test_joint_benchmark_scores_a_case_and_reports_it(llava, tmp_path) -> None:
    from benchmarks import joint

    assert joint.auc(torch.tensor([0.0, 1.0, 1.0])) == pytest.approx(0.75)
    mean, low, high = joint.bootstrap([0.0, 1.0, 1.0, 1.0])
    assert mean == 0.75 and 0.0 <= low < mean < high <= 1.0
    sample = llava.prepare(np.zeros((32, 32, 3), np.uint8), "is there a red cat ?", "yes")
    scene = Scene(np.zeros((32, 32, 3), np.uint8), [], "", [], "plain", 7)
    mask = FeatureMask.grid(sample.image, 2, 1)
    on_region_0 = (mask.mask[0, 0] == 0).numpy()
    scene.objects.append(SceneObject("red", "cat", on_region_0, (0, 0, 31, 31)))
    assert joint.object_regions(mask, scene, [0]) == [True, False]
    question = type("Question", (), {"colour": "red", "shape": "cat", "evidence": [0]})()
    with pytest.MonkeyPatch.context() as patch:  # the benchmark's SLICO regions → the grid
        patch.setattr(joint.FeatureMask, "slico", lambda image, n: mask)
        records = joint.explain_case(llava, scene, question, sample, regions=2)
    assert [r["method"] for r in records] == list(joint.METHODS)
    eagle, ablation = records[0], records[1]
    assert eagle["text_features"] == ["is", "there", "a", "red", "cat", "?"]
    assert sorted(eagle["order"]) == list(range(8)) and eagle["n_samples"] is None
    assert records[2]["n_samples"] == eagle["forwards"]  # KernelShap at Eagle's budget
    assert records[4]["n_samples"] == max(1, eagle["forwards"] // 8)  # Shapley permutations
    assert ablation["forwards"] <= 9 and eagle["region_chance"] == 0.5
    for record in records:
        first_text = next(i for i in record["order"] if i >= 2) - 2
        assert record["top_text"] == (record["text_features"][first_text] in ("red", "cat"))
        first_region = next(i for i in record["order"] if i < 2)
        assert record["top_region"] == (first_region == 0)
        assert 0 <= record["insertion"] <= 1 and 0 <= record["deletion"] <= 1
    path = tmp_path / "joint.jsonl"
    header = {"record": "header", "command": "c", "machine": machine()}
    header["versions"] = {"torch": "t", "captum": "c", "transformers": "x"}
    header |= {"weights": {"model": "tiny"}, "minutes": 0.1, "explained": 1}
    path.write_text("\n".join(map(joint.json.dumps, [header, *records])))
    table = joint.report(*joint.read_jsonl([path]))
    assert "| eagle | — |" in table and "n=1 |" in table and "**caption**" not in table


def test_speed_benchmark_generic_path_against_the_adapter(tmp_path, capsys) -> None:
    out = tmp_path / "speed.jsonl"
    args = "--generic --model tiny-llava --regions 4 --repeats 1 --threads 1 --batch-size 8"
    speed.main([*args.split(), "--out", str(out)])
    (head,), (row,) = read_results([out])
    assert head["command"].endswith(f"{args} --out {out}")  # main(argv)'s, not pytest's
    assert {"torch", "transformers", "captum", "captum-eagle"} <= set(head["versions"])
    n = row["regions"]
    # no resize (the image is at the model's input size): the region basis is exact, the orders
    # are the adapter's, and both paths score the same distinct images
    assert row["same_order"] is True
    assert row["adapter_forwards"] == row["generic_forwards"] == n * (n + 1) - 4
    assert 0 < row["processor_share"] < 1 and row["generic_speed_ratio"] > 0
    table = capsys.readouterr().out
    assert "| tiny-llava | 4 |" in table and "with identical orders on every row." in table


def test_supported_models_table_from_recorded_results(tmp_path, monkeypatch) -> None:
    results = {"qwen2_5_vl": (22, 0), "gemma3": (10, 1)}
    monkeypatch.setattr(
        supported_models,
        "run_kit",
        lambda family: dict(zip(("passed", "failed"), results[family], strict=True)),
    )
    out = tmp_path / "supported_models" / "conformance.jsonl"
    supported_models.main(["--families", "qwen2_5_vl", "gemma3", "--out", str(out)])
    (head,), rows = read_results([out])
    assert head["benchmark"] == "supported_models"
    assert rows[0]["path"] == "adapter (qwen2_5_vl) + generic" and rows[0]["gradients"]
    assert rows[1]["path"] == "generic" and not rows[1]["gradients"]
    lines = report.supported_models_table(tmp_path).splitlines()[2:]
    assert lines[0].startswith("| `Qwen2_5_VLForConditionalGeneration` | adapter")
    assert "| pass (22 passed, 0 failed) |" in lines[0]
    assert "| FAIL (10 passed, 1 failed) |" in lines[1] and "`google/gemma-3-4b-it`" in lines[1]
