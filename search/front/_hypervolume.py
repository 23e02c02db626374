"""Hypervolume of a front: the volume it dominates up to a reference point.

Pure maths over lists of points, apart from any study. Objectives are turned into
minimisation first (`to_minimisation`); `hypervolume` then measures the region that
at least one point dominates and that the reference point bounds. Exact: for three
objectives or more Optuna's WFG (`optuna._hypervolume`, numpy), for two by slicing along
the last objective and recursing.
"""

from __future__ import annotations

from collections.abc import Sequence

Point = Sequence[float]


def to_minimisation(points: Sequence[Point], directions: Sequence[str]) -> list[list[float]]:
    """Negate maximised objectives so that smaller is better everywhere."""
    signs = [-1.0 if d == "maximize" else 1.0 for d in directions]
    return [[s * v for s, v in zip(signs, point, strict=True)] for point in points]


def hypervolume(points: Sequence[Point], reference: Point) -> float:
    """Volume dominated by `points` (minimisation) inside the box below `reference`."""
    inside = [list(p) for p in points if all(v < r for v, r in zip(p, reference, strict=True))]
    if not inside:
        return 0.0
    if len(reference) == 1:
        return reference[0] - min(p[0] for p in inside)
    if len(reference) >= 3:  # Optuna's exact WFG (numpy; a dedicated 3-objective sweep)
        return _optuna_hypervolume(inside, reference)
    return _sliced(inside, reference)


def _optuna_hypervolume(points: list[list[float]], reference: Point) -> float:
    import numpy as np
    from optuna._hypervolume import compute_hypervolume

    return float(compute_hypervolume(np.array(points), np.array(reference, dtype=float)))


def _sliced(inside: list[list[float]], reference: Point) -> float:
    """Exact, by slicing along the last objective and recursing (points all inside)."""
    if len(reference) == 1:
        return reference[0] - min(p[0] for p in inside)
    inside = sorted(inside, key=lambda p: p[-1])
    volume = 0.0
    for index, point in enumerate(inside):
        upper = inside[index + 1][-1] if index + 1 < len(inside) else reference[-1]
        if upper <= point[-1]:
            continue
        slab = [p[:-1] for p in inside[: index + 1]]
        volume += _sliced(slab, reference[:-1]) * (upper - point[-1])
    return volume
