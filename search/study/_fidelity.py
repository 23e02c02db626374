"""Multi-fidelity: each rung recorded with its checkpoint, then the promotion decision.

A trial fine-tunes rung by rung (`fidelity.rungs()`: budgets in training images growing by
`fidelity.factor`). After each rung it records its metrics there (`rungs` trial attr) with
a checkpoint artifact (weights, optimizer and random state, images seen) and asks
`search.study._promotion` whether to go on (asynchronous successive halving: the top
floor(n / factor) of the trials at that rung go on). The decision reads the shared
storage, so it is the same under the local driver, `search worker`s and Ray. A trial
stopped at a rung and promoted later is continued by a new trial that loads that rung's
checkpoint (`inherit_rungs`, `load_checkpoint_state`) and fine-tunes on, exactly as if it
had never stopped.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.artifacts import upload_artifact
from torch import nn

from search.config import StudyConfig
from search.robust import BudgetState
from search.study._promotion import decide
from search.study._storage import fetch_artifact
from search.study._stored import RUNGS
from search.study._trial import Resume, TrialOutcome
from search.study._trials_view import trials_view


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
    return record_decision(trial, config, entry)


def record_decision(trial: optuna.Trial, config: StudyConfig, entry: dict[str, Any]) -> bool:
    """Decide on a rung entry (`rung`, `metrics`, ...) from what the storage holds,
    append it to the trial's `rungs` with the decision and what it saw, and return
    whether the trial goes on."""
    index = entry["rung"]
    trials = trials_view(trial.study).refresh().trials()
    others = [t for t in trials if t.number != trial.number]
    decision = decide(trial.study, config, trial.number, index, entry["metrics"], others)
    last = index == len(config.fidelity.rungs()) - 1
    record = {**entry, **decision.to_dict(), "promoted": decision.go_on and not last}
    del record["go_on"]
    trial.set_user_attr(RUNGS, [*trial.user_attrs.get(RUNGS, []), record])
    return decision.go_on and not last


def inherit_rungs(trial: optuna.Trial, link: dict[str, Any], artifacts: Any) -> tuple[int, Resume]:
    """Set up a continuation (`link` = its `continues` record): copy the original's
    rungs up to the promoted one into this trial and return the original's first
    trial number (for its seeds) and where to resume."""
    original = trial.study._storage.get_trial(
        trial.study._storage.get_trial_id_from_study_id_trial_number(
            trial.study._study_id, link["trial"]
        )
    )
    rungs = [e for e in original.user_attrs.get(RUNGS, []) if e["rung"] <= link["rung"]]
    copies = [{**e, "inherited_from": e.get("inherited_from", original.number)} for e in rungs]
    trial.set_user_attr(RUNGS, copies)
    origin = int(link.get("origin", original.number))
    checkpoint = rungs[-1]["checkpoint_artifact"]
    return origin, Resume(
        link["rung"], lambda model: load_checkpoint_state(artifacts, checkpoint, model)
    )


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
