"""What a study stores: every key, who writes it, who reads it. The one contract between
the CLI, `search worker`, the Ray backend, the service and the export.

The storage is an Optuna storage (SQLite, journal file, PostgreSQL, ...) plus an artifact
store (a folder) for weights. Guarantees, as aer-search relies on them:

- A study is created once, by one process, with `config` (the `StudyConfig` as a plain
  mapping) set right after creation. Readers that find no `config` yet wait briefly
  (`stored_config`): the creator is still writing it. Only fields listed as resumable
  (`search.study.RESUMABLE_FIELDS`) may change later, and then only by `open_study`.
- A trial in state RUNNING belongs to the process named in its `worker` attr (host,
  pid) or, without one, to a Ray run. Only that process finishes it, except that any
  process may fail it once its owner is gone (`fail_trial`); that write is refused by the
  storage if the owner finished it meanwhile, and then nothing happens.
- A COMPLETE trial has `metrics` (every metric, validation split), `plan`, `widths`,
  `notes`, `seconds` and `weights_artifact`, the packed weights of exactly the model that
  was scored. A FAIL trial has `fail_reason`; a PRUNED one marked `surplus` was created
  past the budget and never ran. A FAIL trial marked `interrupted` lost its worker
  mid-trial (a kill): it does not use up the budget, so rerunning the command runs
  another trial in its place (a from-scratch run resumes from its per-epoch state).
  Finished trials are never modified or deleted.
- Study attrs written once by the creator: `base_weights_artifact` (the base model every
  trial compressed), `base_cpu_seconds`, `sanity.base`. `final.<N>` caches trial N's
  test-split assessment, keyed by the fingerprint of the settings it depends on.
- `config` is read through `stored_config`: a field added later whose default would
  change an older study's meaning (`STORED_BEFORE`: `latency.runtime` is `torch` for a
  study made before the field, `latency.mode` is `measured`) reads as what that study
  was made with.
- With `latency.mode: predicted`, `latency_model` (the fitted costs, `search.latency_model`)
  is written once, by the first process that needs it, before any trial is scored with
  it; every process predicts with the stored one, so the same trial gets the same number.

Study attrs:   config, base_weights_artifact, base_cpu_seconds, sanity.base, final.<N>,
               ray.experiment, latency_model
Trial attrs:   worker, ray, surplus, interrupted, fail_reason, metrics, notes, widths, plan,
               feasible, seconds, weights_artifact, rungs, continues, sampler_seed, heartbeat

A RUNNING trial's `heartbeat` ({"at", "every"}: journal and gRPC-proxy storages only; an
RDB storage keeps Optuna's own) says its worker is alive; silence for three intervals
lets any process fail it (search.study._heartbeat).

With multi-fidelity (`fidelity.enabled`) a trial appends one `rungs` entry per rung it
finishes (rung, budget, images_seen, metrics, cpu_seconds, checkpoint_artifact) and the
promotion decision with what it saw (place, of, keep, front, contribution, seen,
promoted); its values, `metrics` and `weights_artifact` are its last
rung's, so the front and the export show a real model with its measured metrics. A
stopped trial promoted later is continued by a new trial (`continues`), whose `rungs`
start with copies of the original's (marked `inherited_from`).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.artifacts import upload_artifact
from optuna.trial import TrialState

from search.compress._file_names import WEIGHTS
from search.study._storage import fetch_artifact

if TYPE_CHECKING:  # torch only where weights are read or written: the keys stay light
    from torch import nn

    from search.zoo import DataInfo


# study user attrs
CONFIG = "config"
BASE_WEIGHTS = "base_weights_artifact"
BASE_CPU_SECONDS = "base_cpu_seconds"
BASE_SANITY = "sanity.base"
FINAL_PREFIX = "final."  # + trial number: the test-split assessment
RAY_EXPERIMENT = "ray.experiment"  # the Tune experiment still to finish
LATENCY_MODEL = "latency_model"  # latency.mode predicted: the calibrated model, as a dict
# trial user attrs
WORKER = "worker"  # {"host", "pid"} of the process running it (`search run`, worker)
RAY = "ray"  # {"node", "pid"} of the Ray worker that ran it
SURPLUS = "surplus"  # created beyond the budget, never run
INTERRUPTED = "interrupted"  # failed because its worker died; not counted in the budget
FAIL_REASON = "fail_reason"
METRICS = "metrics"
NOTES = "notes"
WIDTHS = "widths"
PLAN = "plan"
FEASIBLE = "feasible"
SECONDS = "seconds"
WEIGHTS_ARTIFACT = "weights_artifact"
RUNGS = "rungs"  # multi-fidelity: one entry per rung reached (budget, metrics, checkpoint)
# multi-fidelity: {trial, rung, place, of, keep, seen}: this trial continues that trial's
# fine-tuning from that rung's checkpoint (a late promotion, search.study._promotion)
CONTINUES = "continues"
SAMPLER_SEED = "sampler_seed"  # the seed of the sampler that drew its params
HEARTBEAT = "heartbeat"  # {"at", "every"}: its worker's last beat (search.study._heartbeat)


def final_key(number: int) -> str:
    return f"{FINAL_PREFIX}{number}"


def stored_config(study: optuna.Study, wait_seconds: float = 10.0) -> dict[str, Any]:
    """The config a study was created with; waits briefly for a creator that is still
    writing it (two processes starting one new study at the same moment)."""
    deadline = time.monotonic() + wait_seconds
    while CONFIG not in study.user_attrs and time.monotonic() < deadline:
        time.sleep(0.1)
        study = optuna.load_study(study_name=study.study_name, storage=study._storage)
    return with_stored_defaults(study.user_attrs.get(CONFIG, {}))


# fields added with a default that would change what an older study's numbers mean,
# and the value those studies were made with
STORED_BEFORE = {
    ("latency", "runtime"): "torch",  # latency timed torch forms only
    ("latency", "mode"): "measured",  # every trial was timed
}


def with_stored_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """A stored config with each field of `STORED_BEFORE` it lacks set to the value its
    study was made with (not today's default), so keys keep their meaning."""
    config = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
    for (section, key), value in STORED_BEFORE.items():
        if config and isinstance(config.get(section, {}), dict):
            config.setdefault(section, {}).setdefault(key, value)
    return config


def uses_budget(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether a finished or running trial takes a budget slot: not a surplus one (made
    past the budget, never run), nor one whose worker was killed under it (run again)."""
    return not trial.user_attrs.get(SURPLUS) and not trial.user_attrs.get(INTERRUPTED)


def fail_trial(
    study: optuna.Study, trial: optuna.trial.FrozenTrial, reason: str, interrupted: bool = False
) -> bool:
    """Fail a RUNNING trial whose owner is gone, with its reason (and the `interrupted`
    mark); False when the owner (or another process) finished it a moment ago."""
    storage = study._storage
    try:
        storage.set_trial_user_attr(trial._trial_id, FAIL_REASON, reason)
        if interrupted:
            storage.set_trial_user_attr(trial._trial_id, INTERRUPTED, True)
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    except RuntimeError:
        return False
    return True


def store_base(study: optuna.Study, base: nn.Module, artifacts: Any) -> None:
    """Keep the study's base model as an artifact, once, so every machine uses the same."""
    if BASE_WEIGHTS in study.user_attrs:
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "base.pt"
        import torch

        torch.save(base.state_dict(), path)
        artifact_id = upload_artifact(
            artifact_store=artifacts, file_path=str(path), study_or_trial=study
        )
    study.set_user_attr(BASE_WEIGHTS, artifact_id)


def upload_weights(trial: optuna.Trial, save: Any, artifacts: Any) -> str:
    """Save a model's packed weights with `save(path)` and upload them for `trial`."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / WEIGHTS
        save(path)
        return upload_artifact(artifact_store=artifacts, file_path=str(path), study_or_trial=trial)


def trial_model(trial: optuna.trial.FrozenTrial, artifacts: Any) -> tuple[nn.Module, DataInfo]:
    """The compressed model a trial stored (its last rung's), and its input facts."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / WEIGHTS
        fetch_artifact(
            artifacts,
            trial.user_attrs[WEIGHTS_ARTIFACT],
            path,
            f"the weights of trial {trial.number}",
        )
        from search.compress import load_model_with_info

        return load_model_with_info(path)
