"""Pareto maths on plain points: dominance, non-dominated sorting, crowding distance.

Pure functions of lists of numbers (every objective minimised; callers flip the sign
of maximised ones), so the front of a study, the service's status and the multi-
fidelity promotion all rank points the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Point = Sequence[float]


def dominates(a: Point, b: Point) -> bool:
    """True when `a` is no worse than `b` in every objective and better in one."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(
        x < y for x, y in zip(a, b, strict=True)
    )


def non_dominated(points: Sequence[Point]) -> list[int]:
    """Indices of the points no other point dominates (equal points are all kept), in
    ascending order.

    Points are visited in lexicographic order: a point can only be dominated by one
    before it, and a point kept is never dominated later, so each point is compared
    with the front so far only (n x front size, not n x n), in one numpy step each
    (10,000 points: tens of milliseconds, where one Python `dominates` call per pair
    took over a second).
    """
    if not len(points):
        return []
    import numpy as np

    array = np.asarray(points, dtype=float)
    order = np.lexsort(array.T[::-1])  # by the first objective, then the second, ...
    front = np.empty_like(array)
    kept: list[int] = []
    for i in order.tolist():
        point = array[i]
        head = front[: len(kept)]
        no_worse = np.all(head <= point, axis=1)
        if not np.any(no_worse & np.any(head < point, axis=1)):
            front[len(kept)] = point
            kept.append(i)
    return sorted(kept)


def sort_non_dominated(points: Sequence[Point]) -> list[list[int]]:
    """Fronts of indices: the first is `non_dominated(points)`, the next is what is
    non-dominated once that one is removed, and so on (NSGA-II's sorting)."""
    left = list(range(len(points)))
    fronts: list[list[int]] = []
    while left:
        front = [left[i] for i in non_dominated([points[j] for j in left])]
        fronts.append(front)
        left = [i for i in left if i not in front]
    return fronts


def crowding_distance(points: Sequence[Point]) -> list[float]:
    """NSGA-II's crowding distance of each point within one front (ends: infinite)."""
    n = len(points)
    distance = [0.0] * n
    if n <= 2:
        return [math.inf] * n
    for k in range(len(points[0])):
        order = sorted(range(n), key=lambda i: points[i][k])
        span = points[order[-1]][k] - points[order[0]][k]
        distance[order[0]] = distance[order[-1]] = math.inf
        if span == 0:
            continue
        for before, here, after in zip(order, order[1:], order[2:], strict=False):
            distance[here] += (points[after][k] - points[before][k]) / span
    return distance


def rank(points: Sequence[Point]) -> list[int]:
    """Indices best first: by non-dominated front, then by crowding distance (larger
    first), then by index, so ties resolve the same way in every process."""
    order: list[int] = []
    for front in sort_non_dominated(points):
        crowd = crowding_distance([points[i] for i in front])
        order += [
            i
            for _, i in sorted(zip(crowd, front, strict=True), key=lambda pair: (-pair[0], pair[1]))
        ]
    return order
