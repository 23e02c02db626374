"""The base model is a function of its recipe: the same seed gives the same weights."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from search.study import config_from_dict, obtain_base_model
from search.zoo import load_splits


def test_same_seed_trains_the_same_base_whatever_was_drawn_before(
    tiny_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guards: the random init follows `seed` (it once came from the process's RNG state,
    so two processes trained different base models from one recipe)."""
    config = config_from_dict(copy.deepcopy(tiny_config))
    splits = load_splits(config.data, config.seed)
    weights = []
    for draw in (1, 2):  # a different RNG state before each training, in a fresh cache
        monkeypatch.setenv("AER_SEARCH_CACHE", str(tmp_path / f"cache-{draw}"))
        torch.manual_seed(1000 + draw)
        torch.rand(draw * 7)
        weights.append(obtain_base_model(config, splits, torch.device("cpu")).state_dict())
        assert list((tmp_path / f"cache-{draw}").glob("base-*.pt"))  # trained, not loaded
    assert weights[0].keys() == weights[1].keys()
    for name, tensor in weights[0].items():
        assert torch.equal(tensor, weights[1][name]), name
