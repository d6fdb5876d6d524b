"""Search strategies: valid orders, exactness, forward budgets, seeds, auto batch with OOM."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from captum_eagle import EagleAttribution, FeatureMask
from captum_eagle.objective import SubsetScores
from captum_eagle.search import (
    BidirectionalGreedy,
    EarlyStop,
    EfficientGreedy,
    ExactGreedy,
    LazyGreedy,
    SearchState,
    StochasticGreedy,
    get_search,
    list_searches,
    run_search,
    score_front,
)

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # make `benchmarks.reference` importable
    sys.path.insert(0, str(ROOT))

from benchmarks.reference import naive_greedy  # noqa: E402
from benchmarks.results import read_results  # noqa: E402

FAST = ("lazy", "stochastic", "bidirectional", "efficient")
# Valid orders are checked on all three families; the rest runs on LLaVA only to stay fast.
LLAVA_ONLY = pytest.mark.parametrize("family", ["llava"], indirect=True)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def mask(sample) -> FeatureMask:
    return FeatureMask.grid(sample.image, 3, 3)


@pytest.fixture(scope="module")
def explain(wrapper, sample, mask):
    def run(search, **kwargs):
        return EagleAttribution(wrapper).explain(
            sample.image,
            feature_mask=mask,
            additional_forward_args=(sample,),
            search=search,
            **kwargs,
        )

    return run


@pytest.fixture(scope="module")
def exact(explain):
    return explain("exact")


def test_registry_lists_every_strategy() -> None:
    names = {"exact", "lazy", "stochastic", "bidirectional", "early_stop", "efficient", "budget"}
    assert names <= set(list_searches())
    assert isinstance(get_search("lazy"), LazyGreedy)
    assert get_search("stochastic", fraction=0.5, seed=3).seed == 3


def test_unknown_strategy_error_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="Unknown search strategy 'greedy'") as error:
        get_search("greedy")
    for name in ("bidirectional", "early_stop", "efficient", "exact", "lazy", "stochastic"):
        assert repr(name) in str(error.value)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: LazyGreedy(refresh=0), "refresh must be >= 1"),
        (lambda: StochasticGreedy(fraction=0.0), r"fraction must be in \(0, 1\]"),
        (lambda: StochasticGreedy(min_candidates=0), "min_candidates must be >= 1"),
        (lambda: BidirectionalGreedy(back="middle"), "back must be 'gain' or 'removal'"),
        (lambda: EarlyStop(tolerance=1.0), r"tolerance must be in \[0, 1\)"),
        (lambda: EarlyStop(EarlyStop()), "cannot wrap another EarlyStop"),
        (lambda: EarlyStop("nope"), "valid names"),
        (lambda: EfficientGreedy(fraction=2.0), r"fraction must be in \(0, 1\]"),
        (lambda: EfficientGreedy(regions_per_step=0), "regions_per_step must be >= 1"),
        (lambda: EfficientGreedy(min_candidates=0), "min_candidates must be >= 1"),
    ],
)
def test_bad_options_raise(make, message) -> None:
    with pytest.raises(ValueError, match=message):
        make()


ALL = [
    "exact",
    "lazy",
    "stochastic",
    "bidirectional",
    BidirectionalGreedy(back="removal"),
    "early_stop",
    EarlyStop("lazy", tolerance=0.2),
    "efficient",
    "budget",
]


@pytest.mark.parametrize("search", ALL, ids=str)
def test_every_strategy_returns_a_permutation(explain, mask, search) -> None:
    result = explain(search)
    assert sorted(result.order.tolist()) == list(range(mask.n_regions))
    assert result.forwards > 0
    assert result.objective.shape == (mask.n_regions + 1,)


@LLAVA_ONLY
def test_exact_equals_naive_reference(wrapper, sample, mask, exact) -> None:
    reference = naive_greedy(wrapper, sample, mask)
    assert exact.order.tolist() == reference.order
    # F(∅) and the step with two candidates left reuse images seen before (see ExactGreedy).
    assert exact.forwards == mask.n_regions * (mask.n_regions + 1) - 4


@LLAVA_ONLY
@pytest.mark.parametrize("search", FAST)
def test_fast_strategies_use_fewer_forwards_than_exact(explain, exact, search) -> None:
    assert explain(search).forwards < exact.forwards


@LLAVA_ONLY
def test_lazy_bidirectional_efficient_start_like_exact(explain, exact) -> None:
    # Step 1 of these scores every region against the empty front, as the exact greedy does.
    for search in ("lazy", "bidirectional", "efficient"):
        assert explain(search).order[0] == exact.order[0]


@LLAVA_ONLY
def test_early_stop_never_costs_more_than_exact(explain, exact) -> None:
    for tolerance in (0.0, 0.05, 0.5):
        result = explain(EarlyStop(tolerance=tolerance))
        assert result.forwards <= exact.forwards


@LLAVA_ONLY
def test_early_stop_front_is_the_exact_front_until_saturation(explain, exact) -> None:
    result = explain(EarlyStop(tolerance=0.0))
    insight = result.insight
    blank, full = float(insight[0]), float(insight[-1])
    # The first prefix that met the criterion ends the exact part of the order.
    reached = [r for r in range(1, result.n_regions + 1) if insight[r] - blank >= (full - blank)]
    stop = reached[0] if reached else result.n_regions
    assert result.order[:stop].tolist() == exact.order[:stop].tolist()


@LLAVA_ONLY
def test_stochastic_is_reproducible_and_seeds_differ(explain) -> None:
    first = explain(StochasticGreedy(fraction=0.2, seed=0))
    again = explain(StochasticGreedy(fraction=0.2, seed=0))
    assert torch.equal(first.order, again.order)
    assert first.forwards == again.forwards
    others = [explain(StochasticGreedy(fraction=0.2, seed=seed)).order for seed in (1, 2, 3)]
    assert any(not torch.equal(first.order, order) for order in others)


@LLAVA_ONLY
def test_one_stochastic_instance_repeats_itself(explain) -> None:
    strategy = StochasticGreedy(seed=7)
    assert torch.equal(explain(strategy).order, explain(strategy).order)


@LLAVA_ONLY
def test_auto_batch_with_injected_oom_matches_fixed_batch(
    wrapper, sample, mask, explain, exact, monkeypatch
) -> None:
    original = wrapper.model.forward
    seen: list[int] = []

    def forward(*args, **kwargs):
        batch = kwargs["input_ids"].shape[0]
        seen.append(batch)
        if batch > 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
        return original(*args, **kwargs)

    monkeypatch.setattr(wrapper.model, "forward", forward)
    # Every forward takes "1 s" whatever its size, so the automatic batch keeps doubling.
    monkeypatch.setattr("captum_eagle.objective.perf_counter", itertools.count().__next__)
    result = explain("exact", batch_size="auto")
    assert result.order.tolist() == exact.order.tolist()
    torch.testing.assert_close(result.gains, exact.gains, atol=1e-5, rtol=0)
    assert result.forwards == exact.forwards
    assert 4 in seen  # the doubling reached 4 images and was halved
    assert max(seen[seen.index(4) + 1 :]) <= 2


@LLAVA_ONLY
def test_fixed_batch_does_not_swallow_oom(wrapper, sample, mask, monkeypatch) -> None:
    def forward(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")

    monkeypatch.setattr(wrapper.model, "forward", forward)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        EagleAttribution(wrapper).explain(
            sample.image, feature_mask=mask, additional_forward_args=(sample,), batch_size=2
        )


class CoverageScorer:
    """A submodular objective: the weight of the elements covered by the kept regions."""

    def __init__(self, n_regions: int, n_elements: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.n_regions = n_regions
        self.covers = torch.rand(n_regions, n_elements, generator=generator) < 0.3
        self.weights = torch.rand(n_elements, generator=generator)
        self.forwards = 0
        self.seen: set[bytes] = set()

    def score(self, subsets: torch.Tensor, terms=None) -> SubsetScores:
        keys = {row.numpy().tobytes() for row in subsets}
        self.forwards += 2 * len(keys - self.seen)
        self.seen |= keys
        covered = (subsets.float() @ self.covers.float()) > 0
        value = (covered.float() * self.weights).sum(dim=1, keepdim=True)
        return SubsetScores(kept=value, removed=torch.zeros_like(value))

    def objective(self, scores: SubsetScores) -> torch.Tensor:
        return scores.kept.mean(dim=1)


@pytest.mark.parametrize("seed", range(5))
def test_lazy_equals_exact_on_a_submodular_objective(seed) -> None:
    exact = run_search(ExactGreedy(), CoverageScorer(10, 30, seed))
    lazy_scorer = CoverageScorer(10, 30, seed)
    assert run_search(LazyGreedy(refresh=2), lazy_scorer) == exact


def test_score_front_records_scores_and_gains() -> None:
    scorer = CoverageScorer(6, 20, 0)
    state = SearchState(6)
    state.front.append(2)
    values = score_front(state, scorer, [0, 4])
    front = torch.zeros(1, 6, dtype=torch.bool)
    front[0, 2] = True
    base = scorer.objective(scorer.score(front))
    torch.testing.assert_close(state.last_scores[[0, 4]], values)
    torch.testing.assert_close(state.last_gains[[0, 4]], values - base)
    assert torch.isnan(state.last_gains[[1, 3, 5]]).all()


def test_bidirectional_places_best_first_and_worst_last() -> None:
    scorer = CoverageScorer(8, 40, 3)
    order = run_search(BidirectionalGreedy(), scorer)
    singles = torch.eye(8, dtype=torch.bool)
    values = scorer.objective(scorer.score(singles))
    best = max(range(8), key=lambda r: (float(values[r]), -r))
    worst = max(range(8), key=lambda r: (-float(values[r]), r))
    assert order[0] == best and order[-1] == worst


def test_bidirectional_removal_rule_on_a_known_objective() -> None:
    scorer = CoverageScorer(8, 40, 4)
    order = run_search(BidirectionalGreedy(back="removal"), scorer)
    everything_but = ~torch.eye(8, dtype=torch.bool)
    everything_but[:, order[0]] = True  # the front's pick is not a back candidate
    values = scorer.objective(scorer.score(everything_but)).tolist()
    candidates = [r for r in range(8) if r != order[0]]
    assert order[-1] == max((values[r], r) for r in candidates)[1]


def test_fast_strategies_cost_on_a_known_objective() -> None:
    n = 12
    exact = CoverageScorer(n, 40, 0)
    run_search(ExactGreedy(), exact)
    assert exact.forwards == n * (n + 1)
    costs = {}
    strategies = (LazyGreedy(), StochasticGreedy(fraction=0.25), BidirectionalGreedy())
    for strategy in (*strategies, EfficientGreedy()):
        scorer = CoverageScorer(n, 40, 0)
        run_search(strategy, scorer)
        costs[strategy.name] = scorer.forwards
    # bidirectional: 2|R| for |R| = 12, 10, ..., 2, plus F(∅) (later fronts were candidates)
    assert costs["bidirectional"] == 2 * sum(range(2, n + 1, 2)) + 2
    # efficient: all 12, then max(4, ceil(|R| / 4)) for |R| = 10, 8, 6, 4, 2 (2 placed per
    # step), plus F(front) of each step (a front grown by two was never a candidate)
    assert costs["efficient"] == 2 * (12 + 4 + 4 + 4 + 4 + 2) + 2 * 6
    assert all(cost < exact.forwards for cost in costs.values())


def test_forward_estimates_match_the_counts_on_a_known_objective() -> None:
    n = 12
    strategies = (
        ExactGreedy(),
        StochasticGreedy(fraction=0.25),
        StochasticGreedy(fraction=0.5, min_candidates=3, seed=2),
        BidirectionalGreedy(),
        EfficientGreedy(),
        EfficientGreedy(fraction=0.5, regions_per_step=3),
    )
    for strategy in strategies:
        scorer = CoverageScorer(n, 40, 0)
        run_search(strategy, scorer)
        assert strategy.forward_estimate(n) == scorer.forwards, strategy
    assert LazyGreedy(refresh=2).forward_estimate(n) == 2 * n * 3
    assert EarlyStop("lazy").forward_estimate(n) == LazyGreedy().forward_estimate(n)
    assert BidirectionalGreedy(back="removal").forward_estimate(n) > n * n


def test_options_record_settings_and_nested_strategies() -> None:
    assert ExactGreedy().options() == {}
    assert StochasticGreedy(fraction=0.3, seed=5).options() == {
        "fraction": 0.3,
        "min_candidates": 2,
        "seed": 5,
    }
    assert EarlyStop(BidirectionalGreedy(back="removal"), tolerance=0.2).options() == {
        "search": {"name": "bidirectional", "back": "removal"},
        "tolerance": 0.2,
    }
    strategy = StochasticGreedy()
    strategy.table = torch.zeros(2)
    with pytest.raises(TypeError, match="Option 'table' of StochasticGreedy is a Tensor"):
        strategy.options()


@LLAVA_ONLY
def test_result_records_the_strategy_options(explain) -> None:
    result = explain(StochasticGreedy(fraction=0.5, seed=4))
    assert result.search == "stochastic"
    assert result.search_options == {"fraction": 0.5, "min_candidates": 2, "seed": 4}


def test_gpu_benchmark_runs_at_tiny_size(tmp_path) -> None:
    output = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "gpu.py"),
            "--tiny",
            "--regions",
            "6",
            "--naive-steps",
            "1",
            "--searches",
            "exact",
            "early_stop",
            "--out",
            str(tmp_path / "gpu.jsonl"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert output.returncode == 0, output.stderr
    lines = [line for line in output.stdout.splitlines() if line.startswith("|")]
    header = lines[0]
    assert "seconds / explanation" in header and "forwards / s" in header
    rows = [line for line in lines[2:]]
    names = [row.split("|")[1].strip() for row in rows]
    for model, search in itertools.product(("llava-1.5-7b", "qwen2.5-vl-7b"), ("exact", "naive")):
        assert any(model in name for name in names)
        assert any(search in row for row in rows)
    records = [json.loads(line) for line in (tmp_path / "gpu.jsonl").read_text().splitlines()]
    assert records[0]["type"] == "header" and records[0]["config"]["tiny"] is True
    assert len(records) == 1 + len(rows) and all(r["peak_gib"] is None for r in records[1:])


def test_gpu_benchmark_builds_the_real_7b_architectures() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import gpu
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    from PIL import Image

    expected = {gpu.llava_7b: (7.06e9, 576), gpu.qwen2_5_vl_7b: (8.29e9, 144)}
    for build, (parameters, image_tokens) in expected.items():
        model, processor = build(336, device="meta")
        count = sum(p.numel() for p in model.parameters())
        assert abs(count - parameters) < 0.01e9
        assert next(model.parameters()).dtype == torch.bfloat16
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "a"}]}]
        text = processor.apply_chat_template(messages, add_generation_prompt=True)
        inputs = processor(text=[text], images=[Image.new("RGB", (336, 336))], return_tensors="pt")
        assert int((inputs["input_ids"] == model.config.image_token_id).sum()) == image_tokens


def test_search_benchmark_runs_at_tiny_size(tmp_path) -> None:
    command = [sys.executable, str(ROOT / "benchmarks" / "search.py"), "--model", "tiny"]
    command += ["--scenes", "1", "--regions", "6", "--searches", "exact", "lazy"]
    command += ["--kernel-shap-samples", "10", "--out", str(tmp_path / "records.jsonl")]
    output = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert output.returncode == 0, output.stderr
    rows = [line.split("|") for line in output.stdout.splitlines() if line.startswith("| 6 ")]
    assert [row[2].strip() for row in rows] == ["exact", "lazy", "KernelShap (10 samples)"]
    assert rows[0][5].strip() == "1.0"  # exact: 1x fewer forwards than itself
    headers, records = read_results([tmp_path / "records.jsonl"])  # JSONL with a header
    assert len(headers) == 1 and "search.py" in headers[0]["command"]
    assert len(records) == 3 and records[2]["forwards"] == 10

    # A second run completing the first pools with it; a record seen twice counts once.
    second = tmp_path / "second.jsonl"
    more = [*command[:-1], str(second), "--first-scene", "1", "--scenes", "1"]
    assert subprocess.run(more, capture_output=True, timeout=240, cwd=tmp_path).returncode == 0
    assert {r["scene"] for r in read_results([second])[1]} == {1}
    pooled = [sys.executable, str(ROOT / "benchmarks" / "search.py"), "--table-from"]
    pooled += [str(tmp_path / "records.jsonl"), str(tmp_path / "records.jsonl"), str(second)]
    output = subprocess.run(pooled, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    rows = [line.split("|") for line in output.stdout.splitlines() if line.startswith("| 6 ")]
    assert [int(row[3]) for row in rows] == [2, 2, 2]  # scenes per row: 0 and 1, once each


# -- bad inputs (issue 20): option types are checked, not only their ranges ---------------------
@pytest.mark.parametrize(
    "name, options, error, message",
    [
        ("lazy", {"refresh": 2.5}, TypeError, "refresh must be an int"),
        ("lazy", {"refresh": True}, TypeError, "refresh must be an int"),
        ("lazy", {"refresh": "4"}, TypeError, "refresh must be an int"),
        ("stochastic", {"fraction": "0.5"}, TypeError, "fraction must be a number"),
        ("stochastic", {"fraction": True}, TypeError, "fraction must be a number"),
        ("stochastic", {"fraction": math.nan}, ValueError, "fraction must be a finite number"),
        ("stochastic", {"seed": 1.5}, TypeError, "seed must be an int"),
        ("stochastic", {"seed": None}, TypeError, "seed must be an int"),
        ("stochastic", {"min_candidates": 1.5}, TypeError, "min_candidates must be an int"),
        ("efficient", {"regions_per_step": 1.5}, TypeError, "regions_per_step must be an int"),
        ("efficient", {"fraction": None}, TypeError, "fraction must be a number"),
        ("early_stop", {"tolerance": "0.1"}, TypeError, "tolerance must be a number"),
        ("early_stop", {"tolerance": math.inf}, ValueError, "tolerance must be a finite number"),
    ],
)
def test_search_options_of_the_wrong_type_are_refused(name, options, error, message) -> None:
    with pytest.raises(error, match=message):
        get_search(name, **options)


def test_numpy_options_are_stored_as_plain_numbers() -> None:
    # a numpy seed would otherwise make EagleResult.search_options fail after the search
    strategy = get_search("stochastic", fraction=np.float32(0.5), seed=np.int64(3))
    assert strategy.options() == {"fraction": 0.5, "min_candidates": 2, "seed": 3}
    assert type(strategy.options()["seed"]) is int
    json.dumps(strategy.options())
