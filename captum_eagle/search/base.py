"""The search engine and the small extension point a search strategy implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from tqdm.auto import tqdm

from captum_eagle.objective import SubsetScorer
from captum_eagle.registry import Registry

SEARCHES: Registry[type[SearchStrategy]] = Registry("search strategy")


@dataclass
class SearchState:
    r"""Where a search stands: the order grown from the front and from the back.

    Attributes:
        n_regions (int): number of regions ``N``.
        front (list[int]): the most important regions, in order (``π`` starts with them).
        back (list[int]): the least important regions; ``back[0]`` is the last region of ``π``.
        last_scores (Tensor): ``(N,)`` the objective each region reached the last time it was a
            front candidate (NaN if never); strategies may use it to rank what they skip.
        last_gains (Tensor): ``(N,)`` the marginal gain ``F(front + a) − F(front)`` of each region
            the last time :func:`score_front` scored it (NaN if never).
        step (int): how many decisions were applied.
        memory (dict): scratch space for a strategy's per-run data (e.g. a random generator), so
            one strategy instance can run many searches.
    """

    n_regions: int
    front: list[int] = field(default_factory=list)
    back: list[int] = field(default_factory=list)
    last_scores: torch.Tensor = field(init=False)
    last_gains: torch.Tensor = field(init=False)
    step: int = 0
    memory: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.last_scores = torch.full((self.n_regions,), float("nan"))
        self.last_gains = torch.full((self.n_regions,), float("nan"))

    @property
    def remaining(self) -> list[int]:
        """Regions not yet placed, in increasing id order."""
        placed = set(self.front) | set(self.back)
        return [r for r in range(self.n_regions) if r not in placed]

    @property
    def order(self) -> list[int]:
        return self.front + self.back[::-1]

    def subsets(self, base: list[int], candidates: list[int] | torch.Tensor) -> torch.Tensor:
        r"""``(K, N)`` bool: ``base ∪ {a}`` for each candidate ``a``."""
        candidates = torch.as_tensor(candidates, dtype=torch.long)
        rows = torch.zeros(candidates.numel(), self.n_regions, dtype=torch.bool)
        rows[:, base] = True
        rows[torch.arange(candidates.numel()), candidates] = True
        return rows

    def front_with(self, candidates: list[int] | torch.Tensor) -> torch.Tensor:
        r"""``(K, N)`` bool: the current front plus each candidate."""
        return self.subsets(self.front, candidates)

    def without_back(self, candidates: list[int] | torch.Tensor) -> torch.Tensor:
        r"""``(K, N)`` bool: every region not in the back, minus each candidate.

        ``V \ back`` is the prefix of ``π`` that precedes the back; dropping candidate ``b`` from
        it gives the prefix that would precede ``b`` if ``b`` were placed next at the back.
        """
        candidates = torch.as_tensor(candidates, dtype=torch.long)
        rows = torch.ones(candidates.numel(), self.n_regions, dtype=torch.bool)
        rows[:, self.back] = False
        rows[torch.arange(candidates.numel()), candidates] = False
        return rows


def score_front(
    state: SearchState, scorer: SubsetScorer, candidates: list[int] | torch.Tensor
) -> torch.Tensor:
    r"""Objective ``F(front + a)`` of each candidate ``a``, ``(K,)``; records scores and gains.

    Updates ``state.last_scores`` and ``state.last_gains`` of the candidates. ``F(front)`` comes
    from the scorer's cache when the front was itself a candidate subset; otherwise it costs one
    subset evaluation, which the final trajectory (every prefix of the order) needs anyway.

    Args:
        state (SearchState): the search state.
        scorer (SubsetScorer): evaluates subsets (batched, cached, counted).
        candidates (list[int] or Tensor): region ids not yet placed.

    Returns:
        Tensor: ``(K,)`` objective values in the order of ``candidates``.
    """
    candidates = torch.as_tensor(candidates, dtype=torch.long)
    values = scorer.objective(scorer.score(state.front_with(candidates)))
    front = torch.zeros(1, state.n_regions, dtype=torch.bool)
    front[0, state.front] = True
    current = scorer.objective(scorer.score(front))[0]
    state.last_scores[candidates] = values
    state.last_gains[candidates] = values - current
    return values


@dataclass(frozen=True)
class StepDecision:
    r"""What a strategy places in one step: regions appended to the front and to the back."""

    front: tuple[int, ...] = ()
    back: tuple[int, ...] = ()


class SearchStrategy:
    r"""Base class of search strategies: implement :meth:`step`, register with a name.

    The engine calls :meth:`step` until every region is placed. A step may evaluate any subsets
    through ``scorer`` (batched, cached, counted) and returns a :class:`StepDecision`. The
    insertion trajectory of the final order is completed by the engine afterwards.

    Examples::

        >>> from captum_eagle.search import SearchStrategy, StepDecision, register_search
        >>> @register_search
        ... class FirstRemaining(SearchStrategy):
        ...     '''Order regions by id (a useless but valid strategy).'''
        ...     name = "by_id"
        ...     def step(self, state, scorer):
        ...         return StepDecision(front=(state.remaining[0],))
    """

    name: ClassVar[str] = ""

    def step(self, state: SearchState, scorer: SubsetScorer) -> StepDecision:
        raise NotImplementedError

    def forward_estimate(self, n_regions: int) -> int:
        r"""About how many forwards a search over ``n_regions`` costs (both objective terms).

        Default: ``N(N + 1)``, the exact greedy's count; cheaper strategies override it.
        """
        return n_regions * (n_regions + 1)

    def map_gains(self, state: SearchState, scorer: SubsetScorer) -> torch.Tensor | None:
        r"""Gains along the order to draw the saliency map from, or ``None`` (the default).

        ``None``: the map is drawn from the insertion trajectory of the final order, which the
        engine completes after the search. A strategy that returns the gains it measured
        (``(N,)``, in the order ``π``) makes :meth:`EagleAttribution.attribute` return its map
        without the trajectory, so the forwards stay those of the search (``"budget"``);
        :meth:`EagleAttribution.explain` still completes the trajectory for the result.
        """
        return None

    def options(self) -> dict[str, Any]:
        r"""The strategy's settings (its public attributes), JSON-ready.

        A nested strategy becomes ``{"name": ..., **its options}``; :class:`EagleResult` records
        this as ``search_options``.

        Examples::

            >>> from captum_eagle.search import get_search
            >>> get_search("early_stop", tolerance=0.1).options()
            {'search': {'name': 'exact'}, 'tolerance': 0.1}
        """
        options: dict[str, Any] = {}
        for key, value in vars(self).items():
            if key.startswith("_"):
                continue
            if isinstance(value, SearchStrategy):
                value = {"name": value.name, **value.options()}
            elif not isinstance(value, str | int | float | bool | type(None)):
                raise TypeError(
                    f"Option {key!r} of {type(self).__name__} is a {type(value).__name__}; "
                    "options must be numbers, strings, None or strategies (prefix private "
                    "attributes with _)."
                )
            options[key] = value
        return options

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({options})"


def register_search(cls: type[SearchStrategy]) -> type[SearchStrategy]:
    """Class decorator: make a search strategy selectable by ``cls.name``."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} must set a `name`.")
    SEARCHES.add(cls.name, cls, replace=True)
    return cls


def list_searches() -> list[str]:
    """Names of the registered search strategies."""
    return sorted(SEARCHES)


def get_search(search: str | SearchStrategy, /, **options: Any) -> SearchStrategy:
    """Resolve a strategy name (with options) or pass an instance through."""
    if isinstance(search, SearchStrategy):
        if options:
            raise ValueError("Pass options to the strategy's constructor, not with an instance.")
        return search
    return SEARCHES.get(search)(**options)


def run_search(
    strategy: SearchStrategy, scorer: SubsetScorer, *, show_progress: bool = False
) -> list[int]:
    r"""Run ``strategy`` to a full order of the scorer's regions; return the order ``π``."""
    return search_state(strategy, scorer, show_progress=show_progress).order


def search_state(
    strategy: SearchStrategy, scorer: SubsetScorer, *, show_progress: bool = False
) -> SearchState:
    r"""Run ``strategy`` to a full order; return the final :class:`SearchState` (``.order``)."""
    state = SearchState(scorer.n_regions)
    with tqdm(
        desc=f"Eagle attribution ({strategy.name})",
        total=scorer.n_regions,
        disable=not show_progress,
        unit="region",
    ) as bar:
        while len(state.front) + len(state.back) < state.n_regions:
            decision = strategy.step(state, scorer)
            placed = [*decision.front, *decision.back]
            remaining = set(state.remaining)
            if not placed or len(set(placed)) != len(placed) or not set(placed) <= remaining:
                raise RuntimeError(
                    f"Search strategy {strategy!r} placed {placed}; it must place at least one "
                    f"region, each once, among the remaining {sorted(remaining)}."
                )
            state.front.extend(decision.front)
            state.back.extend(decision.back)
            state.step += 1
            bar.update(len(placed))
    return state
