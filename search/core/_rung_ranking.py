"""The ranking a promotion decision needs, kept up to date as trials reach a rung.

Successive halving asks one question per decision: is this trial among the best
floor(n / factor) of the n trials at its rung? Best means the NSGA-II order: the non-
dominated front first, then, within a front, the larger exclusive hypervolume
contribution, then the lower trial number (so every process breaks ties alike).

Sorting all n points into fronts afresh costs about n^1.8 in pure Python (2.5 s at 3,000
trials) and every trial asks at every rung. Points at a rung never change once
recorded, so `FrontIndex` keeps the fronts and inserts each new point where it belongs
(a binary search over fronts, as ENS-BS does, Zhang et al. 2015), moving the points it
dominates one front down. A decision then costs the new points' insertions plus the
contributions inside one front.

Hypervolume contributions use a reference point at the rung's worst value of each
maximised objective (a trial as bad as the worst at its rung there contributes nothing:
a model at chance robust accuracy is not promoted for being small) and 10% beyond the
worst value of each minimised one (so the largest front member still counts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from optuna._hypervolume import compute_hypervolume


def _dominated_by_any(members: np.ndarray, point: np.ndarray) -> bool:
    """True when some row of `members` dominates `point` (all <=, one <)."""
    if members.size == 0:
        return False
    return bool(((members <= point).all(1) & (members < point).any(1)).any())


def _dominated_mask(members: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Which rows of `members` `point` dominates."""
    return np.logical_and((point <= members).all(1), (point < members).any(1))


class FrontIndex:
    """Points (minimised) sorted into non-dominated fronts, updated one point at a time.

    Invariant: front k holds the points whose longest chain of dominating points has
    length k, so a point is dominated by some member of every front before its own and
    by none of its own or later ones; that monotonicity makes the binary search valid.
    Each front keeps its points in a growing array, so a check is one numpy call.
    """

    def __init__(self, dims: int) -> None:
        self.dims = dims
        self.points: list[np.ndarray] = []
        self.fronts: list[list[int]] = []
        self.front_of: list[int] = []
        self._data: list[np.ndarray] = []  # front k's points in rows [0, len(fronts[k]))

    def __len__(self) -> int:
        return len(self.points)

    def array(self, k: int) -> np.ndarray:
        """Front k's points, one row each, in the order of `fronts[k]`."""
        return self._data[k][: len(self.fronts[k])]

    def _first_front_not_dominating(self, point: np.ndarray) -> int:
        low, high = 0, len(self.fronts)
        while low < high:
            middle = (low + high) // 2
            if _dominated_by_any(self.array(middle), point):
                low = middle + 1
            else:
                high = middle
        return low

    def _put(self, index: int, k: int) -> None:
        if k == len(self.fronts):
            self.fronts.append([])
            self._data.append(np.empty((8, self.dims)))
        size = len(self.fronts[k])
        if size == len(self._data[k]):
            self._data[k] = np.concatenate([self._data[k], np.empty_like(self._data[k])])
        self._data[k][size] = self.points[index]
        self.fronts[k].append(index)
        self.front_of[index] = k

    def _take_dominated(self, k: int, movers: list[int]) -> list[int]:
        """Remove and return the members of front k that a mover dominates."""
        current = self.array(k)
        dominated = np.zeros(len(current), dtype=bool)
        for i in movers:
            dominated |= _dominated_mask(current, self.points[i])
        if not dominated.any():
            return []
        members = self.fronts[k]
        self.fronts[k] = [m for m, d in zip(members, dominated, strict=True) if not d]
        kept = current[~dominated]
        self._data[k][: len(kept)] = kept
        return [m for m, d in zip(members, dominated, strict=True) if d]

    def add(self, point: Sequence[float], in_order: bool = False) -> int:
        """Insert one point; returns its index (the order of insertion). `in_order`:
        no point inserted so far comes after it lexicographically, so it can dominate
        none of them and nothing moves."""
        index = len(self.points)
        self.points.append(np.asarray(point, dtype=float))
        self.front_of.append(-1)
        k = self._first_front_not_dominating(self.points[index])
        movers = [index]
        while movers:
            pushed = []
            if k < len(self.fronts) and not in_order:
                pushed = self._take_dominated(k, movers)
            for i in movers:
                self._put(i, k)
            movers, k = pushed, k + 1
        return index

    def add_many(self, points: Sequence[Sequence[float]]) -> list[int]:
        """Insert several points in lexicographic order (then no point moves a front)."""
        order = sorted(range(len(points)), key=lambda i: tuple(points[i]))
        in_order = not self.points  # an empty index: each point is last so far
        indices = [0] * len(points)
        for i in order:
            indices[i] = self.add(points[i], in_order)
        return indices


def contributions(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Exclusive hypervolume contribution of each point (minimised): the volume that only
    this point dominates inside the box below `reference`."""
    result = np.zeros(len(points))
    inside = np.flatnonzero(np.all(points < reference, axis=1))
    if len(inside) == 0:
        return result
    if points.shape[1] == 3:
        result[inside] = _contributions_3d(points[inside], reference)
        return result
    for i in inside:  # any other dimension: the point's box less what the others share
        own = float(np.prod(reference - points[i]))
        limited = np.maximum(np.delete(points[inside], np.flatnonzero(inside == i), 0), points[i])
        shared = compute_hypervolume(limited, reference) if len(limited) else 0.0
        result[i] = max(own - shared, 0.0)
    return result


def _contributions_3d(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """All exclusive contributions in 3D at once, O(m^2) numpy work.

    Slice space into cells by the points' x and y coordinates. In a cell, the points that
    dominate it are those with x and y at or below the cell's corner; along z the cell
    is covered from the lowest such z, and only that point covers it alone, up to the
    second lowest z (or the reference). Walking x in order keeps, per y-cell, the two
    lowest z values seen and who holds the lowest.
    """
    m = len(points)
    by_x = np.argsort(points[:, 0], kind="stable")
    y_rank = np.empty(m, dtype=int)
    y_sorted = np.argsort(points[:, 1], kind="stable")
    y_rank[y_sorted] = np.arange(m)
    y_edges = np.append(points[y_sorted, 1], reference[1])
    dy = np.diff(y_edges)
    x_edges = np.append(points[by_x, 0], reference[0])
    first = np.full(m, reference[2])
    second = np.full(m, reference[2])
    holder = np.full(m, -1)
    result = np.zeros(m)
    for step, i in enumerate(by_x):
        cells = slice(y_rank[i], m)
        z = points[i, 2]
        lower = z < first[cells]
        second[cells] = np.where(lower, first[cells], np.minimum(second[cells], z))
        first[cells] = np.where(lower, z, first[cells])
        holder[cells] = np.where(lower, i, holder[cells])
        dx = x_edges[step + 1] - x_edges[step]
        if dx > 0:
            owned = holder >= 0
            np.add.at(result, holder[owned], (second - first)[owned] * dy[owned] * dx)
    return result


@dataclass(frozen=True)
class Place:
    """Where one point stands at its rung: its place from 0 (best first), the front it
    is on (0 = non-dominated) and its hypervolume contribution inside that front."""

    place: int
    front: int
    contribution: float


class RungRanking:
    """The trials at one rung by trial number, for `place_of` and `top` queries."""

    def __init__(self, maximised: Sequence[bool]) -> None:
        self.maximised = list(maximised)
        self.index = FrontIndex(len(self.maximised))
        self.numbers: list[int] = []  # trial number of each point of `self.index`
        self.position: dict[int, int] = {}
        self._worst = np.full(len(self.maximised), -np.inf)
        self._best = np.full(len(self.maximised), np.inf)
        # front -> {index: contribution}, until the next add: `top` and `place_of` of
        # one decision need the same front's contributions
        self._gains_of: dict[int, dict[int, float]] = {}

    def __len__(self) -> int:
        return len(self.numbers)

    def __contains__(self, number: int) -> bool:
        return number in self.position

    def add(self, entries: Sequence[tuple[int, Sequence[float]]]) -> None:
        """Add (trial number, minimised point) pairs not seen yet."""
        new = [(n, p) for n, p in entries if n not in self.position]
        if new:
            self._gains_of.clear()
        indices = self.index.add_many([p for _, p in new])
        self.numbers += [-1] * len(new)  # by index in `self.index`, not by arrival
        for (number, point), i in zip(new, indices, strict=True):
            self.numbers[i] = number
            self.position[number] = i
            self._worst = np.maximum(self._worst, point)
            self._best = np.minimum(self._best, point)

    def reference(self) -> np.ndarray:
        """See the module docstring: the rung's worst, 10% beyond for minimised ones."""
        margin = np.where(self.maximised, 0.0, 0.1 * (self._worst - self._best) + 1e-12)
        return self._worst + margin

    def _gains(self, k: int) -> dict[int, float]:
        if k not in self._gains_of:
            members = self.index.fronts[k]
            points = self.index.array(k)
            gains = contributions(points, self.reference()).tolist()
            self._gains_of[k] = dict(zip(members, gains, strict=True))
        return self._gains_of[k]

    def place_of(self, number: int) -> Place:
        """The trial's place in the rung's order (front, contribution, number)."""
        i = self.position[number]
        k = self.index.front_of[i]
        ahead = sum(len(front) for front in self.index.fronts[:k])
        gains = self._gains(k)
        me = (-gains[i], number)
        better = sum((-gain, self.numbers[m]) < me for m, gain in gains.items())
        return Place(ahead + better, k, gains[i])

    def top(self, keep: int) -> list[int]:
        """The trial numbers in the first `keep` places: whole fronts in trial-number
        order, then the best of the front the line cuts through, by contribution."""
        chosen: list[int] = []
        for k, members in enumerate(self.index.fronts):
            if len(chosen) + len(members) <= keep:
                chosen += sorted(self.numbers[m] for m in members)
                continue
            gains = self._gains(k)
            ranked = sorted(members, key=lambda m: (-gains[m], self.numbers[m]))
            chosen += [self.numbers[m] for m in ranked[: keep - len(chosen)]]
            break
        return chosen
