"""Search strategies that order regions by the Eagle objective (registry by name)."""

from captum_eagle.search.base import (
    SearchState,
    SearchStrategy,
    StepDecision,
    get_search,
    list_searches,
    register_search,
    run_search,
    score_front,
    search_state,
)
from captum_eagle.search.bidirectional import BidirectionalGreedy
from captum_eagle.search.budget import BudgetedGreedy
from captum_eagle.search.early_stop import EarlyStop
from captum_eagle.search.efficient import EfficientGreedy
from captum_eagle.search.exact import ExactGreedy
from captum_eagle.search.forward_backward import ForwardBackwardGreedy
from captum_eagle.search.lazy import LazyGreedy
from captum_eagle.search.stochastic import StochasticGreedy

__all__ = [
    "BidirectionalGreedy",
    "BudgetedGreedy",
    "EarlyStop",
    "EfficientGreedy",
    "ExactGreedy",
    "ForwardBackwardGreedy",
    "LazyGreedy",
    "SearchState",
    "SearchStrategy",
    "StepDecision",
    "StochasticGreedy",
    "get_search",
    "list_searches",
    "register_search",
    "run_search",
    "score_front",
    "search_state",
]
