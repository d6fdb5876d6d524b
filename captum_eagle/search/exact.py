"""Exact greedy search (the paper's Algorithm 1), batched."""

from __future__ import annotations

from captum_eagle.objective import SubsetScorer
from captum_eagle.search.base import SearchState, SearchStrategy, StepDecision, register_search


@register_search
class ExactGreedy(SearchStrategy):
    r"""Append the region with the largest objective gain; score every remaining candidate.

    Scores ``N(N+1)`` images with both objective terms; the scorer runs ``N(N+1) − 4`` of them
    for ``N ≥ 3`` (fewer if some regions equal the baseline), because some are the same image:
    the step with two candidates left shows ``V \ {b}`` and ``{b}``, which step 1 scored, and
    ``F(∅)``'s images are those of ``F(V)``. Ties go to the lowest region id; tied candidates
    whose masked images are identical get bit-identical scores (the scorer runs each image
    once), so the order does not depend on the batch size.
    """

    name = "exact"

    def step(self, state: SearchState, scorer: SubsetScorer) -> StepDecision:
        candidates = state.remaining
        values = scorer.objective(scorer.score(state.front_with(candidates)))
        state.last_scores[candidates] = values
        # argmax returns the first maximum: candidates are in increasing id order.
        return StepDecision(front=(candidates[int(values.argmax())],))
