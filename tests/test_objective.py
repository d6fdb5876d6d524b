"""SubsetScorer: masked images, caching, baselines, weights, batch sizes; AutoBatchSize."""

from __future__ import annotations

import itertools

import pytest
import torch

from captum_eagle import FeatureMask, MLLMForwardWrapper
from captum_eagle.batching import AutoBatchSize, batch_size_for_memory
from captum_eagle.objective import SubsetScorer
from captum_eagle.testing import tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def llava() -> MLLMForwardWrapper:
    return MLLMForwardWrapper(*tiny_model("llava"), batch_size=4)


@pytest.fixture(scope="module")
def llava_sample(llava, photo):
    return llava.prepare(photo, "describe the image .", "a red cat sitting")


@pytest.fixture(scope="module")
def grid(llava_sample) -> FeatureMask:
    return FeatureMask.grid(llava_sample.image, 2, 3)


@pytest.fixture()
def scorer(llava, llava_sample, grid) -> SubsetScorer:
    return SubsetScorer(llava, llava_sample, grid)


def subsets(*rows: list[int], n: int = 6) -> torch.Tensor:
    out = torch.zeros(len(rows), n, dtype=torch.bool)
    for i, row in enumerate(rows):
        out[i, row] = True
    return out


def test_images_keep_and_remove_pixels_exactly(llava, llava_sample, grid) -> None:
    baseline = torch.rand(1, 3, *llava_sample.image.shape[-2:])
    scorer = SubsetScorer(llava, llava_sample, grid, baselines=baseline)
    chosen = subsets([0, 4], [1])
    images = scorer.images(chosen, torch.tensor([True, False]))
    region = grid.mask[0, 0]
    inside_first = (region == 0) | (region == 4)
    image, base = llava_sample.image[0], baseline[0]
    assert torch.equal(images[0][:, inside_first], image[:, inside_first])
    assert torch.equal(images[0][:, ~inside_first], base[:, ~inside_first])
    inside_second = region == 1
    assert torch.equal(images[1][:, inside_second], base[:, inside_second])
    assert torch.equal(images[1][:, ~inside_second], image[:, ~inside_second])
    assert torch.equal(scorer.images(chosen, True)[1][:, inside_second], image[:, inside_second])


def test_scores_are_the_wrappers_probabilities(llava, llava_sample, scorer) -> None:
    chosen = subsets([2, 3])
    scores = scorer.score(chosen)
    with torch.no_grad():
        kept = llava.token_probabilities(scorer.images(chosen, True), llava_sample)
        removed = llava.token_probabilities(scorer.images(chosen, False), llava_sample)
    torch.testing.assert_close(scores.kept, kept, atol=1e-6, rtol=0)
    torch.testing.assert_close(scores.removed, removed, atol=1e-6, rtol=0)
    expected = (kept + 1 - removed).mean(dim=1)
    torch.testing.assert_close(scorer.objective(scores), expected, atol=1e-6, rtol=0)


def test_cache_costs_no_forward_for_seen_subsets(scorer) -> None:
    first = scorer.score(subsets([0], [1, 2]))
    assert scorer.forwards == 4
    again = scorer.score(subsets([1, 2], [0]))
    assert scorer.forwards == 4
    assert torch.equal(again.kept, first.kept.flip(0))
    scorer.score(subsets([0], [5]))
    assert scorer.forwards == 6


def test_cost_counts_the_images_score_would_run(scorer) -> None:
    assert scorer.cost(subsets([0], [1, 2])) == 4
    assert scorer.cost(subsets([0], [0]), terms=(True,)) == 1  # one distinct image
    scorer.score(subsets([0]))
    assert scorer.cost(subsets([0], [1])) == 2 and scorer.forwards == 2
    # The images of ∅ are those of V: scoring one makes the other free.
    scorer.score(subsets([]))
    assert scorer.cost(subsets(list(range(scorer.n_regions)))) == 0
    assert scorer.forwards == 4


def test_terms_select_the_images(scorer) -> None:
    kept_only = scorer.score(subsets([3]), terms=(True,))
    assert scorer.forwards == 1
    assert torch.isnan(kept_only.removed).all() and not torch.isnan(kept_only.kept).any()
    both = scorer.score(subsets([3]))
    assert scorer.forwards == 2
    assert torch.equal(both.kept, kept_only.kept)


def test_one_weight_needs_one_image(llava, llava_sample, grid) -> None:
    insight_only = SubsetScorer(llava, llava_sample, grid, necessity_weight=0)
    scores = insight_only.score(subsets([0], [1]))
    assert insight_only.forwards == 2
    torch.testing.assert_close(insight_only.objective(scores), scores.kept.mean(dim=1))


@pytest.mark.parametrize(
    "weights, message",
    [((-1.0, 1.0), "must be >= 0"), ((0.0, 0.0), "not both 0"), ((1.0, -0.5), "must be >= 0")],
)
def test_weights_are_validated(llava, llava_sample, grid, weights, message) -> None:
    with pytest.raises(ValueError, match=message):
        SubsetScorer(
            llava, llava_sample, grid, insight_weight=weights[0], necessity_weight=weights[1]
        )


@pytest.mark.parametrize("shape", [(3, 1, 1), (1, 3, 1, 1), "image3", "image4"])
def test_baseline_tensors_broadcast(llava, llava_sample, grid, shape) -> None:
    height, width = llava_sample.image.shape[-2:]
    sizes = {"image3": (3, height, width), "image4": (1, 3, height, width)}
    baseline = torch.full(sizes.get(shape, shape), 0.25)
    scorer = SubsetScorer(llava, llava_sample, grid, baselines=baseline)
    assert scorer.baseline.shape == llava_sample.image.shape
    assert torch.equal(scorer.baseline, torch.full_like(llava_sample.image, 0.25))


def test_baseline_errors_name_the_problem(llava, llava_sample, grid) -> None:
    with pytest.raises(ValueError, match="do not broadcast to the image"):
        SubsetScorer(llava, llava_sample, grid, baselines=torch.zeros(2, 5, 5))
    with pytest.raises(TypeError, match="baselines must be a number or a tensor"):
        SubsetScorer(llava, llava_sample, grid, baselines=[0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="Divide 8-bit values by 255"):
        SubsetScorer(llava, llava_sample, grid, baselines=128)
    with pytest.raises(ValueError, match="NaN"):
        SubsetScorer(llava, llava_sample, grid, baselines=float("nan"))
    with pytest.raises(TypeError, match="number or a tensor"):
        SubsetScorer(llava, llava_sample, grid, baselines=True)


def test_old_baseline_keyword_warns(llava, llava_sample, grid) -> None:
    with pytest.warns(DeprecationWarning, match=r"use SubsetScorer\(baselines=\.\.\.\)"):
        scorer = SubsetScorer(llava, llava_sample, grid, baseline=0.5)
    assert torch.equal(scorer.baseline, torch.full_like(llava_sample.image, 0.5))
    with pytest.raises(TypeError, match="pass only baselines="):
        SubsetScorer(llava, llava_sample, grid, baselines=0.5, baseline=0.5)


@pytest.mark.parametrize(
    "batch_size, error",
    [(0, ValueError), (-2, ValueError), ("big", ValueError), (2.5, TypeError), (True, TypeError)],
)
def test_bad_batch_size(llava, llava_sample, grid, batch_size, error) -> None:
    with pytest.raises(error, match="batch_size must be a positive int, 'auto' or None"):
        SubsetScorer(llava, llava_sample, grid, batch_size=batch_size)


def test_identical_images_are_scored_once(llava, llava_sample, grid) -> None:
    scorer = SubsetScorer(llava, llava_sample, grid)
    scorer.score(subsets([]))  # kept: all baseline; removed: the full image
    assert scorer.forwards == 2
    everything = scorer.score(subsets([0, 1, 2, 3, 4, 5]))  # the same two images, swapped
    assert scorer.forwards == 2
    empty = scorer.score(subsets([]))
    assert torch.equal(everything.kept, empty.removed)
    assert torch.equal(everything.removed, empty.kept)
    # kept {0, 1} shows what removing {2, 3, 4, 5} shows
    scorer.score(subsets([0, 1]))
    assert scorer.forwards == 4
    scorer.score(subsets([2, 3, 4, 5]))
    assert scorer.forwards == 4


def test_regions_equal_to_the_baseline_do_not_change_an_image(llava, llava_sample, grid) -> None:
    image = llava_sample.image.clone()
    image[:, :, grid.mask[0, 0] == 2] = 0.25
    scorer = SubsetScorer(llava, llava_sample, grid, image=image, baselines=0.25)
    assert scorer.visible.tolist() == [True, True, False, True, True, True]
    first = scorer.score(subsets([0]))
    same = scorer.score(subsets([0, 2]))  # region 2 looks the same shown or hidden
    assert scorer.forwards == 2
    assert torch.equal(first.kept, same.kept) and torch.equal(first.removed, same.removed)
    with torch.no_grad():
        direct = llava.token_probabilities(scorer.images(subsets([0, 2]), True), llava_sample)
    torch.testing.assert_close(same.kept, direct, atol=1e-6, rtol=0)


def test_scorer_perturbs_the_given_image(llava, llava_sample, grid) -> None:
    image = llava_sample.image.flip(-1)
    scorer = SubsetScorer(llava, llava_sample, grid, image=image)
    chosen = subsets([1, 4])
    kept = scorer.images(chosen, True)[0]
    inside = (grid.mask[0, 0] == 1) | (grid.mask[0, 0] == 4)
    assert torch.equal(kept[:, inside], image[0][:, inside])
    with pytest.raises(ValueError, match="prepared sample's shape"):
        SubsetScorer(llava, llava_sample, grid, image=image[..., :-1])


def test_batch_size_is_the_forward_size_and_scores_do_not_depend_on_it(
    llava, llava_sample, grid, monkeypatch
) -> None:
    every = torch.tensor(
        [[bool(i >> r & 1) for r in range(6)] for i in range(0, 64, 5)], dtype=torch.bool
    )
    reference = SubsetScorer(llava, llava_sample, grid, batch_size=1).score(every)
    original = llava.model.forward
    seen: list[int] = []

    def forward(*args, **kwargs):
        seen.append(kwargs["input_ids"].shape[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(llava.model, "forward", forward)
    for batch_size in (5, "auto"):
        seen.clear()
        scorer = SubsetScorer(llava, llava_sample, grid, batch_size=batch_size)
        scores = scorer.score(every)
        torch.testing.assert_close(scores.kept, reference.kept, atol=1e-5, rtol=0)
        torch.testing.assert_close(scores.removed, reference.removed, atol=1e-5, rtol=0)
        assert sum(seen) == scorer.forwards == 2 * every.shape[0]
        if batch_size == 5:
            assert max(seen) == 5  # larger than the wrapper's own batch size of 4
        else:
            assert seen[:2] == [1, 2]  # the automatic size starts at 1 and doubles
    assert llava.batch_size == 4


def test_auto_batch_halves_on_oom_and_keeps_scores(llava, llava_sample, grid, monkeypatch) -> None:
    chosen = subsets([0], [1], [2], [3], [4], [5], [0, 1], [2, 3])
    reference = SubsetScorer(llava, llava_sample, grid, batch_size=8).score(chosen)
    original = llava.model.forward
    seen: list[int] = []

    def forward(*args, **kwargs):
        seen.append(kwargs["input_ids"].shape[0])
        if seen[-1] > 2:
            raise torch.cuda.OutOfMemoryError("injected")
        return original(*args, **kwargs)

    monkeypatch.setattr(llava.model, "forward", forward)
    monkeypatch.setattr("captum_eagle.objective.perf_counter", itertools.count().__next__)
    sizer = AutoBatchSize()
    scorer = SubsetScorer(llava, llava_sample, grid, batch_size=sizer)
    scores = scorer.score(chosen)
    torch.testing.assert_close(scores.kept, reference.kept, atol=1e-5, rtol=0)
    assert seen[:3] == [1, 2, 4] and sizer.size == 2 and sizer.settled
    assert scorer.forwards == 16 and scorer.batch_size == 2


def test_auto_batch_reraises_oom_at_batch_one(llava, llava_sample, grid, monkeypatch) -> None:
    def forward(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("injected")

    monkeypatch.setattr(llava.model, "forward", forward)
    scorer = SubsetScorer(llava, llava_sample, grid, batch_size="auto")
    with pytest.raises(torch.cuda.OutOfMemoryError):
        scorer.score(subsets([0]))
    assert scorer.forwards == 0


def test_batch_size_for_memory_fits_the_budget() -> None:
    # fixed 100 B + 200 B per image: a batch of 10 needs 2,100 B
    assert batch_size_for_memory(300, 900, 4, budget=2_100, max_batch_size=64) == 10
    assert batch_size_for_memory(300, 900, 4, budget=2_099, max_batch_size=64) == 9
    assert batch_size_for_memory(300, 900, 4, budget=10**9, max_batch_size=64) == 64
    assert batch_size_for_memory(300, 900, 4, budget=10, max_batch_size=64) == 1
    with pytest.raises(ValueError, match="probe_size must be >= 2"):
        batch_size_for_memory(1, 1, 1, 1, 1)


def test_auto_batch_memory_path_settles_after_two_forwards() -> None:
    sizer = AutoBatchSize(max_batch_size=128)
    sizer.measure(1, 0.1, peak_bytes=1_300, free_bytes=10_000)
    assert sizer.size == 4 and not sizer.settled
    sizer.measure(4, 0.2, peak_bytes=4_000, free_bytes=10_000)
    # per image 900 B, fixed 400 B, budget 0.9 * 10,000 = 9,000 B -> 9 images
    assert sizer.size == 9 and sizer.settled
    budgeted = AutoBatchSize(memory_budget=100_000)
    budgeted.measure(1, 0.1, peak_bytes=1_300)
    budgeted.measure(4, 0.2, peak_bytes=4_000)
    assert budgeted.size == 110


def test_auto_batch_speed_path_stops_when_no_faster() -> None:
    sizer = AutoBatchSize()
    for batch, seconds in ((1, 1.0), (2, 1.0), (4, 1.0), (8, 1.9)):
        sizer.measure(batch, seconds, peak_bytes=None)
    # 8 images in 1.9 s is < 1.1x the rate of 4 in 1.0 s: settle on 4
    assert sizer.size == 4 and sizer.settled
    sizer.measure(4, 100.0, peak_bytes=None)
    assert sizer.size == 4
    capped = AutoBatchSize(max_batch_size=3)
    for batch in (1, 2, 3):
        capped.measure(batch, 0.1, peak_bytes=None)
    assert capped.size == 3 and capped.settled


@pytest.mark.parametrize(
    "options, message",
    [
        ({"max_batch_size": 0}, "max_batch_size must be >= 1"),
        ({"probe_size": 1}, "probe_size must be >= 2"),
        ({"memory_budget": 0}, "memory_budget must be a positive"),
        ({"min_speedup": 0.5}, "min_speedup must be >= 1"),
    ],
)
def test_auto_batch_options_are_validated(options, message) -> None:
    with pytest.raises(ValueError, match=message):
        AutoBatchSize(**options)
