"""BudgetedGreedy: the map within a forward budget; the exact greedy's order when it fits."""

from __future__ import annotations

import pytest
import torch

from captum_eagle import EagleAttribution, FeatureMask
from captum_eagle.attribution import saliency_from_gains
from captum_eagle.baselines import ForwardCounter
from captum_eagle.objective import SubsetScorer
from captum_eagle.search import BudgetedGreedy, get_search, list_searches

LLAVA_ONLY = pytest.mark.parametrize("family", ["llava"], indirect=True)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def mask(sample) -> FeatureMask:
    return FeatureMask.grid(sample.image, 3, 3)


@pytest.fixture(scope="module")
def eagle(wrapper) -> EagleAttribution:
    return EagleAttribution(wrapper)


def _attribute(eagle, sample, mask, search):
    return eagle.attribute(
        sample.image, feature_mask=mask, additional_forward_args=(sample,), search=search
    )


def _explain(eagle, sample, mask, search):
    return eagle.explain(
        sample.image, feature_mask=mask, additional_forward_args=(sample,), search=search
    )


def test_registered_with_a_budget_of_4n_by_default() -> None:
    assert "budget" in list_searches()
    search = get_search("budget")
    assert isinstance(search, BudgetedGreedy)
    assert search.budget(16) == 64 and search.forward_estimate(16) == 64
    assert BudgetedGreedy(forwards=1000).forward_estimate(16) == 16 * 17
    assert BudgetedGreedy(per_region=2.5).budget(10) == 25
    assert search.options() == {"forwards": None, "per_region": 4.0}


@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"per_region": 1.9}, ValueError, "per_region must be >= 2"),
        ({"forwards": 0}, ValueError, "forwards must be >= 1"),
        ({"forwards": 12.5}, TypeError, "forwards must be an int"),
        ({"forwards": True}, TypeError, "forwards must be an int"),
    ],
)
def test_bad_options_raise(options, error, message) -> None:
    with pytest.raises(error, match=message):
        BudgetedGreedy(**options)


@LLAVA_ONLY
def test_a_budget_below_2n_names_the_forwards_it_needs(eagle, sample, mask) -> None:
    with pytest.raises(ValueError, match=r"needs 18 forwards .* 9 regions .* budget is 17"):
        _attribute(eagle, sample, mask, BudgetedGreedy(forwards=17))


@LLAVA_ONLY
@pytest.mark.parametrize("forwards", [18, 19, 20, 36, 50, 75])
def test_attribute_spends_at_most_the_budget(wrapper, eagle, sample, mask, forwards) -> None:
    with ForwardCounter(wrapper) as counter:
        attribution = _attribute(eagle, sample, mask, BudgetedGreedy(forwards=forwards))
    assert 18 <= counter.images <= forwards
    assert eagle.last_result is None  # no trajectory, so no EagleResult
    # explain() completes the trajectory (more forwards) and keeps the same map.
    result = _explain(eagle, sample, mask, BudgetedGreedy(forwards=forwards))
    assert result.forwards >= counter.images
    assert result.search == "budget"
    assert result.search_options == {"forwards": forwards, "per_region": 4.0}
    assert torch.equal(attribution[:, :1], result.attribution_map())


@LLAVA_ONLY
def test_at_2n_the_order_ranks_regions_by_their_own_objective(sample, mask, wrapper) -> None:
    result = _explain(EagleAttribution(wrapper), sample, mask, BudgetedGreedy(forwards=18))
    scorer = SubsetScorer(wrapper, sample, mask)
    alone = scorer.objective(scorer.score(torch.eye(9, dtype=torch.bool))).tolist()
    expected = sorted(range(9), key=lambda region: (-alone[region], region))
    assert result.order.tolist() == expected
    # No room for F(∅): gains against the lowest single-region objective, so the last region's
    # gain is 0 and the map is the walk over them.
    walk = torch.tensor([alone[r] - min(alone) for r in expected])
    walk[0] = 0
    walk = -walk.cumsum(0)
    expected_map = torch.empty(9)
    expected_map[torch.tensor(expected)] = (walk - walk.min()) / (walk.max() - walk.min())
    torch.testing.assert_close(result.region_attribution, expected_map)


@LLAVA_ONLY
def test_with_the_exact_budget_it_is_the_exact_greedy(eagle, sample, mask) -> None:
    exact = _explain(eagle, sample, mask, "exact")
    budget = _explain(eagle, sample, mask, BudgetedGreedy(forwards=9 * 10))
    assert budget.order.tolist() == exact.order.tolist()
    torch.testing.assert_close(budget.region_attribution, exact.region_attribution)
    assert budget.forwards == exact.forwards


@LLAVA_ONLY
def test_more_budget_takes_more_exact_steps(eagle, sample, mask) -> None:
    exact = _explain(eagle, sample, mask, "exact").order.tolist()
    # 2N + F(∅) + one exact step over 8 candidates = 18 + 2 + 16 forwards: two regions placed
    # as the exact greedy places them.
    two = _explain(eagle, sample, mask, BudgetedGreedy(forwards=36)).order.tolist()
    assert two[:2] == exact[:2]
    assert sorted(two) == list(range(9))


@LLAVA_ONLY
def test_after_the_greedy_steps_the_rest_is_ranked_by_its_own_objective(
    wrapper, eagle, sample, mask
) -> None:
    scorer = SubsetScorer(wrapper, sample, mask)
    alone = scorer.objective(scorer.score(torch.eye(9, dtype=torch.bool))).tolist()
    blank = float(scorer.objective(scorer.score(torch.zeros(1, 9, dtype=torch.bool)))[0])
    # 18 + 2 for step 1, 16 for step 2: two regions by the greedy, seven by F({a}).
    result = _explain(eagle, sample, mask, BudgetedGreedy(forwards=36))
    order = result.order.tolist()
    assert order[2:] == sorted(order[2:], key=lambda region: (-alone[region], region))
    # The map walks the greedy gains of the first two, then F({a}) − F(∅) of the rest.
    gains = [float(result.gains[0]), float(result.gains[1])]
    gains += [alone[r] - blank for r in order[2:]]
    expected = saliency_from_gains(result.order, torch.tensor(gains))
    torch.testing.assert_close(result.region_attribution, expected)


@LLAVA_ONLY
def test_joint_search_accepts_the_budget(eagle, sample, mask) -> None:
    result = eagle.explain_joint(
        sample.image,
        additional_forward_args=(sample,),
        feature_mask=mask,
        search=BudgetedGreedy(per_region=2),
    )
    assert sorted(result.order.tolist()) == list(range(result.eagle.n_regions))
    assert result.eagle.search == "budget"
