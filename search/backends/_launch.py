"""The entry pipeline `search run` and `run_search` share.

Checks come first (storage URL, backend, address, data, base model), so bad input
fails before anything is written; then the study is opened (created with its first
points by the one process that creates it) and the chosen backend runs its budget.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import optuna

from search.config import StudyConfig
from search.core import BadInput
from search.study import (
    StudySetup,
    anchor_points,
    artifact_dir,
    check_storage_url,
    open_storage,
    open_study,
    paper_grid_points,
    storage_url,
)
from search.timing import AgentError, check_agent

BACKENDS = {"optuna": "search.backends._optuna", "ray": "search.backends._ray"}


def get_backend(name: str) -> ModuleType:
    """The backend module `name` (it has `run(config, setup, study, url, address)`)."""
    if name not in BACKENDS:
        raise BadInput(f"--backend must be one of {', '.join(BACKENDS)}, got {name!r}")
    try:
        return importlib.import_module(BACKENDS[name])
    except ImportError as exc:
        raise BadInput(
            f"--backend {name} needs Ray Tune: pip install 'aer-search[ray]' ({exc})"
        ) from None


def check_latency_device(config: StudyConfig) -> None:
    """With `latency.device`, the agent must answer and take the token before anything
    is written (BadInput, one line, otherwise); a trial whose timing fails later (the
    agent went away) fails alone, with the reason, and the study goes on."""
    latency = config.latency
    if latency.device is None:
        return
    token = os.environ.get(latency.token_env, "")
    if not token:
        raise BadInput(
            f"latency.device: set ${latency.token_env} (latency.token_env) to the token "
            f"the agent at {latency.device} was started with"
        )
    try:
        health = check_agent(latency.device, token)
    except AgentError as exc:
        raise BadInput(f"latency.device: {exc}") from None
    cores = health.get("cores")
    if isinstance(cores, int) and latency.threads > cores:
        raise BadInput(
            f"config field 'latency.threads' must be <= the device's {cores} cores, "
            f"got {latency.threads}"
        )


def launch(
    config: StudyConfig,
    *,
    storage: str | None = None,
    backend: str = "optuna",
    address: str | None = None,
    baseline: str | None = None,
) -> optuna.Study:
    """Run (or resume) the study of `config` under `backend`; return the study.

    Raises KeyboardInterrupt when a Ray run stopped early (its experiment is kept, and
    the same call resumes it).
    """
    url = storage_url(storage, config.storage)
    check_storage_url(url)
    artifact_dir(url, config.artifacts)  # a grpc:// study names its folder, before writing
    runner = get_backend(backend)
    if address:
        runner.check_address(address)
    check_latency_device(config)
    setup = StudySetup.build(config)  # bad checkpoint or data root fail here, before writing
    if baseline == "paper-grid":
        first_points = paper_grid_points(config)
    else:
        first_points = anchor_points(config, setup.space())
    study = open_study(config, open_storage(url), first_points)
    if runner.run(config, setup, study, url, address):
        raise KeyboardInterrupt
    return study
