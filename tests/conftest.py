"""Shared fixtures: a tiny but real study config, and one base-model cache per session."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest

TINY: dict[str, Any] = {
    "study": "tiny",
    "trials": 3,
    "seed": 0,
    "device": "cpu",
    "warm_start": 0,  # tests choose their params; test_warm_start covers the anchors
    "model": {"base_epochs": 4},
    "space": {"epochs": [0, 1], "epsilon": [0.0, 0.1]},
    "finetune": {"steps": 2},
    "evaluation": {"epsilon": 0.1, "steps": 3, "step_size": 0.05},
    "latency": {"warmup": 1, "repeats": 3},
}


def pytest_configure(config: pytest.Config) -> None:
    """Under `pytest -n N` the N worker processes share the CPUs: each, and every process
    it starts, gets its share of torch's threads (OMP_NUM_THREADS), since oversubscribed
    threads slow every process several-fold."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 1:
        share = max(1, (os.cpu_count() or 1) // workers)
        os.environ.setdefault("OMP_NUM_THREADS", str(share))
        import torch

        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def cheap_assessment(config: dict[str, Any], final_restarts: int = 1) -> dict[str, Any]:
    """Make a tiny study's test re-assessment cheap: 100 test images, a 3-step final
    attack, sanity checks at twice the steps. Returns `config`, changed in place."""
    config["data"] = {"test_samples": 100}
    config["evaluation"].update(final_steps=3, final_restarts=final_restarts)
    config["sanity"] = {"steps_factor": 2}
    return config


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """`search ARGV` in-process: exit code, stdout, stderr."""
    import contextlib
    import io

    from search.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(autouse=True, scope="session")
def _base_model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test shares one cache, so the tiny base model is trained once per session."""
    path = tmp_path_factory.mktemp("aer-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("AER_SEARCH_CACHE", str(path))
    yield path
    mp.undo()


@pytest.fixture(scope="session")
def tiny_setup(_base_model_cache: Path):
    """The tiny study's setup (data, trained base model), built once per session.

    Tests must not change it; copy the base model before training it.
    """
    from search.study import StudySetup, config_from_dict

    return StudySetup.build(config_from_dict(copy.deepcopy(TINY)))


@pytest.fixture(scope="session")
def val_batch_loader(tiny_setup):
    """The first 128 validation images as one batch."""
    from torch.utils.data import Subset

    from search.zoo import make_loader

    return make_loader(Subset(tiny_setup.splits.val, range(128)), 128)


@pytest.fixture
def tiny_config() -> dict[str, Any]:
    """A fresh copy of the tiny study config (digits, 3 trials, seconds per trial)."""
    return copy.deepcopy(TINY)


@pytest.fixture
def write_config(tmp_path: Path):
    """Write a config mapping as YAML under tmp_path and return its path."""
    import yaml

    def write(config: dict[str, Any], name: str = "study.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(config))
        return path

    return write


@pytest.fixture
def importable_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write SOURCE as module NAME on sys.path (a user's own file), forgotten afterwards."""
    import sys

    written: list[str] = []

    def write(name: str, source: str) -> str:
        (tmp_path / f"{name}.py").write_text(source)
        monkeypatch.syspath_prepend(str(tmp_path))
        written.append(name)
        return name

    yield write
    for name in written:
        sys.modules.pop(name, None)
