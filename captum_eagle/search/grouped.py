r"""Grouped greedy: once single regions stop gaining, groups of similar-looking regions compete."""

from __future__ import annotations

import torch

from captum_eagle.checks import check_real
from captum_eagle.objective import SubsetScorer
from captum_eagle.search.base import SearchState, StepDecision, register_search, score_front
from captum_eagle.search.forward_backward import ForwardBackwardGreedy


def appearance_groups(
    image: torch.Tensor, mask: torch.Tensor, threshold: float
) -> list[tuple[int, ...]]:
    r"""Groups of regions with similar mean colour: looks (anywhere) and objects (adjacent).

    *Looks*: the regions' mean colours are clustered by complete linkage, i.e. clusters are
    merged, closest first, only while every pair inside stays within ``threshold`` (Euclidean
    distance); unlike connected components of "within threshold", a chain of regions that
    partly cover an object cannot join the object to the background. *Objects*: each look split
    into its parts connected by adjacency (some pixel of one region is a 4-neighbour of a pixel
    of the other). Groups of one region are dropped, duplicates kept once.

    Args:
        image (Tensor): ``(1, C, H, W)`` the image the regions cut up.
        mask (Tensor): ``(1, 1, H, W)`` region ids ``0..N−1``.
        threshold (float): the largest colour distance within a look (pixel units).

    Returns:
        list[tuple[int, ...]]: sorted groups of sorted region ids, in increasing order.

    Examples::

        >>> import torch
        >>> image = torch.zeros(1, 3, 1, 5)
        >>> image[0, 0] = torch.tensor([[0.0, 0.1, 0.2, 1.0, 1.0]])  # a red ramp, then red
        >>> mask = torch.arange(5)[None, None, None]  # one region per pixel
        >>> appearance_groups(image, mask, threshold=0.15)  # 0-2 is no look: 0.2 apart
        [(0, 1), (3, 4)]
    """
    labels = mask.reshape(mask.shape[-2:]).long().cpu()
    n_regions = int(labels.max()) + 1
    pixels = image.reshape(image.shape[-3], -1).T.double().cpu()
    sums = torch.zeros(n_regions, pixels.shape[1], dtype=torch.float64)
    sums.index_add_(0, labels.flatten(), pixels)
    counts = torch.bincount(labels.flatten(), minlength=n_regions).clamp(min=1)
    distances = torch.cdist(sums / counts[:, None], sums / counts[:, None])
    looks = _complete_linkage(distances, threshold)
    adjacent = torch.eye(n_regions, dtype=torch.bool)
    for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1], labels[1:])):
        adjacent[a.flatten(), b.flatten()] = True
        adjacent[b.flatten(), a.flatten()] = True
    groups = set(looks)
    for look in looks:
        inside = torch.tensor(look)
        for part in _components(adjacent[inside][:, inside]):
            groups.add(tuple(look[i] for i in part))
    return sorted(group for group in groups if len(group) > 1)


def _complete_linkage(distances: torch.Tensor, threshold: float) -> list[tuple[int, ...]]:
    """Clusters whose members are all within ``threshold`` of each other (closest merged first)."""
    clusters = [[i] for i in range(distances.shape[0])]
    linkage = distances.clone()
    linkage.fill_diagonal_(float("inf"))
    while len(clusters) > 1:
        flat = int(linkage.argmin())
        a, b = divmod(flat, linkage.shape[0])
        if not float(linkage[a, b]) <= threshold:
            break
        a, b = min(a, b), max(a, b)
        clusters[a] += clusters.pop(b)
        merged = torch.maximum(linkage[a], linkage[b])
        linkage[a], linkage[:, a] = merged, merged
        linkage[a, a] = float("inf")
        keep = [i for i in range(linkage.shape[0]) if i != b]
        linkage = linkage[keep][:, keep]
    return [tuple(sorted(cluster)) for cluster in clusters]


def _components(edges: torch.Tensor) -> list[tuple[int, ...]]:
    """Connected components of a symmetric ``(N, N)`` bool adjacency matrix."""
    seen: set[int] = set()
    components = []
    for start in range(edges.shape[0]):
        if start in seen:
            continue
        component, stack = {start}, [start]
        while stack:
            for neighbour in edges[stack.pop()].nonzero().flatten().tolist():
                if neighbour not in component:
                    component.add(neighbour)
                    stack.append(neighbour)
        seen |= component
        components.append(tuple(sorted(component)))
    return components


@register_search
class GroupedGreedy(ForwardBackwardGreedy):
    r"""Exact greedy; once no region gains, groups of similar-looking regions compete beside them.

    **Forward phase** (the paper's Algorithm 1), exactly as in
    :class:`~captum_eagle.search.forward_backward.ForwardBackwardGreedy`: append the region with
    the largest ``F(front + a)`` (ties by lowest id) until the best gain
    ``F(front + a) − F(front)`` is at most ``tolerance``; that step still places its best region.

    **Group phase**: every step scores ``F(front + a)`` for each remaining region ``a`` and
    ``F(front + G)`` for each group ``G`` of :func:`appearance_groups` (its regions not yet placed,
    when two or more are left): all regions of one look (the copies of an object) and each
    adjacent part of a look (one object split over several regions). If the best of them gains
    more than ``tolerance`` it is placed: a group's regions go in decreasing order of their own
    ``F(front + a)`` of that step (ties by lowest id). Otherwise the step places the best single
    region, as the exact greedy would. Groups come from the scorer's image and feature mask;
    regions past the mask's (prompt features of a joint scorer) are never grouped.

    Why: when the evidence is duplicated, ``necessity(S) = mean_t (1 − p_t(V \ S))`` only rises
    once every copy is in ``S``. After the first copy no single region gains, but the group that
    holds the remaining copy (or its pieces) does, so it is placed next instead of at the end.

    Gains and the saliency map: as for every strategy, the result's gains are
    ``F(π_:r) − F(π_:r−1)`` of the final order, which the engine evaluates for every prefix;
    the regions of a group get the gains of their prefixes in the order above (the whole group's
    gain mostly falls on its last region, so the paper's saliency walk opens its gap there).

    Cost: the forward phase costs what the exact greedy's steps cost; a group step scores every
    remaining region and group (two forwards each); the prefixes inside groups cost two forwards
    each. A group step is taken only if, after it, the forwards still leave room to place the rest
    at once (two forwards per prefix), so the total never exceeds ``N(N + 1)``, the exact greedy's
    count; when that room runs out, the rest is placed at once by the last scores.

    Use it when one object falls into several regions or appears twice, and the colours separate
    objects from the background (the colour threshold is in the image's pixel units).

    Args:
        tolerance (float): the largest best gain (in units of ``F``) that counts as "no gain".
            Default: 0.01.
        threshold (float): the largest distance of mean colours (Euclidean, pixel units, e.g.
            ``[0, 1]`` RGB) at which two regions look alike. Default: 0.15.

    Examples::

        >>> from captum_eagle.search import get_search
        >>> get_search("grouped")
        GroupedGreedy(tolerance=0.01, threshold=0.15)
    """

    name = "grouped"

    def __init__(self, tolerance: float = 0.01, threshold: float = 0.15) -> None:
        super().__init__(tolerance)
        check_real("threshold", threshold, low=0.0)
        self.threshold = float(threshold)

    def after_switch(self, state: SearchState, scorer: SubsetScorer) -> StepDecision:
        remaining = state.remaining
        if "groups" not in state.memory:
            state.memory["groups"] = appearance_groups(
                scorer.image, scorer.feature_mask.mask, self.threshold
            )
            state.memory["unfilled"] = 0
        left = set(remaining)
        groups = sorted(
            {g for g in (tuple(r for r in group if r in left) for group in state.memory["groups"])}
        )
        groups = [group for group in groups if len(group) > 1]
        # forwards after this step, plus two per prefix the engine may still have to evaluate
        needed = 2 * (len(remaining) + len(groups)) + 2 * (state.memory["unfilled"] + len(left))
        if len(remaining) > 1 and scorer.forwards + needed <= state.n_regions * (
            state.n_regions + 1
        ):
            singles = score_front(state, scorer, remaining)
            grouped = torch.zeros(len(groups), state.n_regions, dtype=torch.bool)
            for row, group in enumerate(groups):
                grouped[row, [*state.front, *group]] = True
            values = scorer.objective(scorer.score(grouped)).tolist() if groups else []
            current = float(singles[0] - state.last_gains[remaining[0]])
            candidates = [
                ((region,), float(v)) for region, v in zip(remaining, singles, strict=True)
            ]
            candidates += list(zip(groups, values, strict=True))
            best, value = max(candidates, key=lambda c: (c[1], -len(c[0]), [-r for r in c[0]]))
            if value - current <= self.tolerance:  # nothing gains: the exact greedy's choice
                best = (remaining[int(singles.argmax())],)
            placed = sorted(best, key=lambda r: (-float(state.last_scores[r]), r))
            state.memory["unfilled"] += len(placed) - 1
            return StepDecision(front=tuple(placed))
        last = state.last_scores[remaining].nan_to_num(nan=float("-inf")).tolist()
        ranked = sorted(zip(remaining, last, strict=True), key=lambda item: (-item[1], item[0]))
        return StepDecision(front=tuple(region for region, _ in ranked))
