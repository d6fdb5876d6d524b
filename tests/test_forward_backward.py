"""ForwardBackwardGreedy: the forward phase is the exact greedy, the backward phase sees an AND."""

from __future__ import annotations

import pytest
import torch

from captum_eagle import EagleAttribution, FeatureMask
from captum_eagle.objective import SubsetScores
from captum_eagle.search import ExactGreedy, get_search, list_searches, run_search
from captum_eagle.search.forward_backward import ForwardBackwardGreedy

LLAVA_ONLY = pytest.mark.parametrize("family", ["llava"], indirect=True)


class DuplicatedEvidenceScorer:
    """``p(K) = 1`` when any evidence region is visible in ``K``: copy A is one region, copy B is
    split over two (either piece suffices). Forwards counted as two per new subset."""

    def __init__(self, n_regions: int, evidence: tuple[int, ...]) -> None:
        self.n_regions = n_regions
        self.evidence = torch.zeros(n_regions, dtype=torch.bool)
        self.evidence[list(evidence)] = True
        self.forwards = 0
        self.seen: set[bytes] = set()

    def score(self, subsets: torch.Tensor, terms=None) -> SubsetScores:
        keys = {row.numpy().tobytes() for row in subsets}
        self.forwards += 2 * len(keys - self.seen)
        self.seen |= keys
        kept = (subsets & self.evidence).any(dim=1, keepdim=True).float()
        removed = (~subsets & self.evidence).any(dim=1, keepdim=True).float()
        return SubsetScores(kept=kept, removed=removed)

    def objective(self, scores: SubsetScores) -> torch.Tensor:
        return (scores.kept + 1 - scores.removed).mean(dim=1)


def test_registered_by_name() -> None:
    assert "forward_backward" in list_searches()
    assert isinstance(get_search("forward_backward", tolerance=0.1), ForwardBackwardGreedy)


@pytest.mark.parametrize(
    "tolerance, error, message",
    [
        (-0.1, ValueError, "tolerance must be >= 0"),
        (float("nan"), ValueError, "tolerance must be >= 0"),
        ("0.1", TypeError, "tolerance must be a number"),
        (True, TypeError, "tolerance must be a number"),
    ],
)
def test_bad_tolerance_raises(tolerance, error, message) -> None:
    with pytest.raises(error, match=message):
        ForwardBackwardGreedy(tolerance=tolerance)


def test_duplicated_evidence_moves_to_the_front() -> None:
    # Evidence in regions 5 (copy A), 6 and 7 (copy B, split); 0..4 carry nothing.
    exact_scorer = DuplicatedEvidenceScorer(8, (5, 6, 7))
    exact = run_search(ExactGreedy(), exact_scorer)
    # After 5, no single region raises the objective (the others still show the evidence):
    # the exact greedy breaks the ties by id and leaves the other copy at the end.
    assert exact == [5, 0, 1, 2, 3, 4, 6, 7]
    scorer = DuplicatedEvidenceScorer(8, (5, 6, 7))
    order = run_search(ForwardBackwardGreedy(), scorer)
    # Step 2 gains nothing: it places 0 and switches; the back then fills with 4, 3, 2, 1
    # (their removal keeps the answer and alone they show nothing), then 7 (tie with 6).
    assert order == [5, 0, 6, 7, 1, 2, 3, 4]
    assert scorer.forwards == exact_scorer.forwards == 8 * 9


def test_large_tolerance_switches_after_the_first_step() -> None:
    scorer = DuplicatedEvidenceScorer(6, (1, 4))
    order = run_search(ForwardBackwardGreedy(tolerance=5.0), scorer)
    assert order[0] == 1  # the first step is always the exact greedy's
    assert set(order[:2]) == {1, 4}


@pytest.fixture(scope="module")
def explain(wrapper, sample):
    mask = FeatureMask.grid(sample.image, 3, 3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)

    def run(search):
        return EagleAttribution(wrapper).explain(
            sample.image, feature_mask=mask, additional_forward_args=(sample,), search=search
        )

    yield run
    torch.set_num_threads(threads)


@LLAVA_ONLY
def test_front_equals_exact_until_the_switch_and_costs_no_more(explain) -> None:
    exact = explain("exact")
    gains = exact.gains.tolist()
    tolerance = sorted(gains)[len(gains) // 2]  # switches somewhere in the middle
    switch = next(r for r, gain in enumerate(gains, start=1) if gain <= tolerance)
    result = explain(ForwardBackwardGreedy(tolerance=tolerance))
    assert result.order[:switch].tolist() == exact.order[:switch].tolist()
    assert sorted(result.order.tolist()) == list(range(9))
    assert result.forwards <= exact.forwards


def test_issue_21_traced_case_on_the_shapes_model() -> None:
    """Two white squares, one in region 16, one split over 18 and 19 (32 SLICO regions asked):
    the exact greedy leaves 16 and 19 at the end of π; forward-backward puts all three first."""
    from captum_eagle import MLLMForwardWrapper
    from captum_eagle.metrics import deletion_curve
    from captum_eagle.zoo import generate_scene, load_default_model, question_prompt

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        wrapper = MLLMForwardWrapper(*load_default_model(), batch_size=64)
        scene = generate_scene(424244, kind="redundant")
        question = scene.questions[0]
        assert question.text == "is there a white square?" and len(question.evidence) == 2
        sample = wrapper.prepare(scene.image, question_prompt(question), max_new_tokens=4)
        sample = sample.with_target_tokens(0)
        mask = FeatureMask.slico(sample.image, 32)
        eagle = EagleAttribution(wrapper)
        results = {
            search: eagle.explain(
                sample.image, feature_mask=mask, additional_forward_args=(sample,), search=search
            )
            for search in ("exact", "forward_backward")
        }
        exact, both = results["exact"].order.tolist(), results["forward_backward"].order.tolist()
        assert exact[0] == 18 and {16, 19} <= set(exact[-3:])
        assert {16, 18, 19} <= set(both[:4])
        assert results["forward_backward"].forwards <= results["exact"].forwards
        deletion = {
            search: deletion_curve(wrapper, sample, result.attribution_map(), feature_mask=mask)
            for search, result in results.items()
        }
        # Exact: the answer survives until the last copy goes; forward-backward: gone early.
        assert deletion["exact"].probabilities[len(exact) // 2] > 0.5
        assert deletion["forward_backward"].probabilities[len(exact) // 2] < 0.5
    finally:
        torch.set_num_threads(threads)
