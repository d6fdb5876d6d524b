"""Search strategies that order regions by the Eagle objective (registry by name)."""

from captum_eagle.search.base import (
    SearchState,
    SearchStrategy,
    StepDecision,
    get_search,
    list_searches,
    register_search,
    run_search,
)
from captum_eagle.search.exact import ExactGreedy

__all__ = [
    "ExactGreedy",
    "SearchState",
    "SearchStrategy",
    "StepDecision",
    "get_search",
    "list_searches",
    "register_search",
    "run_search",
]
