"""The hypervolume used by the search-vs-baselines benchmark."""

from __future__ import annotations

import random

import numpy as np
import pytest
from optuna._hypervolume import compute_hypervolume

from search.front import hypervolume, to_minimisation


def test_one_point_is_its_box() -> None:
    assert hypervolume([[1.0, 2.0, 3.0]], [2.0, 4.0, 7.0]) == pytest.approx(1 * 2 * 4)


def test_dominated_points_add_nothing() -> None:
    front = [[1.0, 2.0, 3.0], [2.0, 1.0, 3.0]]
    assert hypervolume([*front, [2.0, 2.0, 3.5]], [4, 4, 4]) == pytest.approx(
        hypervolume(front, [4, 4, 4])
    )


def test_points_beyond_the_reference_are_ignored() -> None:
    assert hypervolume([[5.0, 0.0, 0.0]], [4, 4, 4]) == 0.0


@pytest.mark.parametrize("size", [2, 7, 30])
def test_agrees_with_optunas_wfg(size: int) -> None:
    """An independent implementation (Optuna's WFG) gives the same volume."""
    rng = random.Random(size)
    points = [[rng.random() for _ in range(3)] for _ in range(size)]
    reference = [1.1, 1.2, 1.3]
    expected = compute_hypervolume(np.array(points), np.array(reference))
    assert hypervolume(points, reference) == pytest.approx(expected, rel=1e-9)


def test_maximised_objectives_are_negated() -> None:
    assert to_minimisation([[0.9, 2.0]], ["maximize", "minimize"]) == [[-0.9, 2.0]]
