"""Multi-fidelity promotion: asynchronous successive halving inside the multi-objective study.

A trial fine-tunes rung by rung (`fidelity.rungs()`: budgets in training images growing by
`fidelity.factor`). After each rung it records its metrics there (`rungs` trial attr) and
goes on only while it ranks among the top ceil(n / factor) of the n trials that reached
that rung, ranked by non-dominated sorting, ties by crowding distance (as MO-ASHA,
Schmucker et al. 2021, arXiv 2106.12639, ranks). The decision reads the shared storage,
so it is the same under the local driver, `search worker`s and Ray: every process sees
every trial's rungs, and each trial decides for itself once per rung (no trial is
promoted twice). The first trials to reach a rung go on (they have no competition yet),
as in ASHA.

Each rung also stores a checkpoint artifact (weights, optimizer and random state,
images seen) so a trial's fine-tuning can be continued where it stopped
(`load_checkpoint_state`).
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.artifacts import upload_artifact
from torch import nn

from objectives import get_objective
from search.config import StudyConfig
from search.core import rank
from search.robust import BudgetState
from search.study._storage import fetch_artifact
from search.study._stored import RUNGS
from search.study._trial import TrialOutcome


def objective_point(config: StudyConfig, metrics: dict[str, float]) -> list[float]:
    """A trial's objectives as one point to minimise (maximised ones negated)."""
    point = []
    for name in config.objectives:
        sign = -1.0 if get_objective(name).direction == "maximize" else 1.0
        point.append(sign * metrics[name])
    return point


def promotion(
    config: StudyConfig, mine: dict[str, float], others: list[dict[str, float]]
) -> tuple[bool, int, int]:
    """(go on?, this trial's place from 0, n): a trial with rung metrics `mine` goes on
    when it ranks in the top ceil(n / factor) of the n trials at that rung (`others`
    are the other trials' metrics there)."""
    points = [objective_point(config, m) for m in others] + [objective_point(config, mine)]
    keep = math.ceil(len(points) / config.fidelity.factor)
    place = rank(points).index(len(points) - 1)
    return place < keep, place, len(points)


def rung_metrics_of_others(trial: optuna.Trial, index: int) -> list[dict[str, float]]:
    """Metrics at rung `index` of every other trial in the study that reached it."""
    found = []
    for other in trial.study.get_trials(deepcopy=False):
        rungs = other.user_attrs.get(RUNGS, [])
        if other.number != trial.number and len(rungs) > index:
            found.append(rungs[index]["metrics"])
    return found


def record_rung(
    trial: optuna.Trial,
    config: StudyConfig,
    index: int,
    budget: int,
    outcome: TrialOutcome,
    artifacts: Any,
) -> bool:
    """Store this rung (metrics, images seen, checkpoint) and decide whether to go on."""
    checkpoint = save_checkpoint(trial, outcome, artifacts)
    state = outcome.budget_state
    entry = {
        "rung": index,
        "budget": budget,
        "images_seen": state.images_seen if state else budget,
        "metrics": dict(outcome.metrics),
        "cpu_seconds": outcome.seconds.get("cpu"),
        "checkpoint_artifact": checkpoint,
    }
    go_on, place, n = promotion(config, outcome.metrics, rung_metrics_of_others(trial, index))
    last = index == len(config.fidelity.rungs()) - 1
    entry.update(place=place, of=n, promoted=go_on and not last)
    trial.set_user_attr(RUNGS, [*trial.user_attrs.get(RUNGS, []), entry])
    return go_on


def save_checkpoint(trial: optuna.Trial, outcome: TrialOutcome, artifacts: Any) -> str:
    """Upload the rung's weights and fine-tuning state; returns the artifact id."""
    state = outcome.budget_state or BudgetState()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "checkpoint.pt"
        torch.save({"model": outcome.model.state_dict(), "state": state.to_dict()}, path)
        return upload_artifact(artifact_store=artifacts, file_path=str(path), study_or_trial=trial)


def load_checkpoint_state(artifacts: Any, artifact_id: str, model: nn.Module) -> BudgetState:
    """Load a rung checkpoint into `model` (compressed as the trial's plan says) and
    return the fine-tuning state to continue from; no pickled objects are read."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "checkpoint.pt"
        fetch_artifact(artifacts, artifact_id, path, "a rung checkpoint")
        saved = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(saved["model"])
    return BudgetState.from_dict(saved["state"])
