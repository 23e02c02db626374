"""A large study made in seconds, without running a trial: for read-side tests and
benchmarks (`search trials`, `search pareto`, the service) at thousands of trials.

Trials are shaped as the default digits study stores them (search/study/_stored.py: the
same params and distributions, `metrics`, `plan`, `widths`, `notes`, `seconds`,
`weights_artifact`, `rungs` with multi-fidelity, `worker`, `sampler_seed`, `feasible`;
`fail_reason` on failed trials), with seeded random values. They are written in bulk,
since `study.add_trials` on SQLite writes a few trials a second:

- journal file: Optuna's own `JournalStorage` writes the operations into memory, and
  the whole log goes to the file in one `JournalFileBackend.append_logs` call, so the
  file is exactly what Optuna would have written;
- a database (SQLite, PostgreSQL): the study is created by Optuna, then the trial rows
  go into Optuna's own tables (`optuna.storages._rdb.models`) in one transaction.

Importable as `bigstudy` (pytest puts tests/ on sys.path; benchmarks add it).
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)
from optuna.storages.journal import BaseJournalBackend, JournalFileBackend, JournalStorage
from optuna.trial import FrozenTrial, TrialState

from search.config import StudyConfig

OBJECTIVES = ["robust_accuracy", "latency_ms", "size_bytes"]
DIRECTIONS = ["maximize", "minimize", "minimize"]
LAYERS = ["conv1", "conv2", "conv3", "fc1"]  # pruned layers of digits-cnn
QUANTIZED = [*LAYERS, "fc2"]
FULL_WIDTHS = {"conv1": 32, "conv2": 64, "conv3": 64, "fc1": 128}
BITS = (2, 3, 4, 5, 6, 7, 8, 32)
STRATEGIES = ("standard", "adversarial", "blind")
RUNG_BUDGETS = [2000, 6000, 18000, 54000]  # the default fidelity's rungs
START = datetime(2026, 1, 1, 12, 0, 0)


def distributions(fidelity: bool = True) -> dict[str, BaseDistribution]:
    """The default digits space's params, as `search run` suggests them (with
    multi-fidelity the rungs set the fine-tuning budget: no `epochs`)."""
    found: dict[str, BaseDistribution] = {
        f"sparsity.{layer}": FloatDistribution(0.0, 0.75, step=0.05) for layer in LAYERS
    }
    found.update({f"bits.{layer}": CategoricalDistribution(BITS) for layer in QUANTIZED})
    found["epsilon"] = FloatDistribution(0.0, 0.2, step=0.02)
    if not fidelity:
        found["epochs"] = IntDistribution(0, 3)
    found["strategy"] = CategoricalDistribution(STRATEGIES)
    return found


@dataclass
class BigStudy:
    """What was written: the study's name, URL and every trial in number order."""

    name: str
    url: str
    trials: list[FrozenTrial]

    def complete(self) -> list[FrozenTrial]:
        return [t for t in self.trials if t.state == TrialState.COMPLETE]


def make_trials(
    n: int, seed: int = 0, fail_share: float = 0.05, fidelity: bool = True
) -> list[FrozenTrial]:
    """`n` finished trials with random values: complete, some failed; with `fidelity`,
    each complete trial has 1 to 4 rungs (its values are its last rung's)."""
    rng = random.Random(seed)
    space = distributions(fidelity)
    trials = []
    for number in range(n):
        params = {name: _draw(rng, dist) for name, dist in space.items()}
        start = START + timedelta(seconds=7 * number)
        failed = rng.random() < fail_share
        attrs: dict[str, Any] = {
            "worker": {"host": f"node{number % 16}", "pid": 1000 + number % 16},
            "sampler_seed": seed + number % 16,
        }
        if failed:
            attrs["fail_reason"] = "RuntimeError: CUDA out of memory (simulated)"
            trials.append(
                optuna.trial.create_trial(
                    state=TrialState.FAIL, params=params, distributions=space, user_attrs=attrs
                )
            )
        else:
            metrics, rungs = _metrics(rng, params, fidelity)
            attrs.update(_complete_attrs(rng, params, metrics, len(rungs)))
            if rungs:
                attrs["rungs"] = rungs
            trials.append(
                optuna.trial.create_trial(
                    state=TrialState.COMPLETE,
                    values=[metrics[name] for name in OBJECTIVES],
                    params=params,
                    distributions=space,
                    user_attrs=attrs,
                    system_attrs={
                        f"artifacts:{attrs['weights_artifact']}": json.dumps(
                            {"artifact_id": attrs["weights_artifact"]}
                        )
                    },
                )
            )
        trial = trials[-1]
        trial.number = number
        trial.datetime_start = start
        trial.datetime_complete = start + timedelta(seconds=5 + rng.random() * 10)
    return trials


def _draw(rng: random.Random, dist: BaseDistribution) -> Any:
    if isinstance(dist, CategoricalDistribution):
        return rng.choice(dist.choices)
    if isinstance(dist, IntDistribution):
        return rng.randint(dist.low, dist.high)
    assert isinstance(dist, FloatDistribution) and dist.step is not None
    steps = round((dist.high - dist.low) / dist.step)
    return round(dist.low + rng.randint(0, steps) * dist.step, 10)


def _metrics(
    rng: random.Random, params: dict[str, Any], fidelity: bool
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Loosely realistic: fewer bits and more sparsity shrink the model and cost
    accuracy; every rung adds a little accuracy."""
    keep = 1 - sum(params[f"sparsity.{layer}"] for layer in LAYERS) / len(LAYERS)
    bits = sum(min(params[f"bits.{layer}"], 8) for layer in QUANTIZED) / len(QUANTIZED)
    size = float(int(60000 * keep**2 * bits / 8 * rng.uniform(0.9, 1.1)) + 2000)
    latency = 0.012 + 0.03 * keep * rng.uniform(0.7, 1.6)
    rungs_reached = rng.randint(1, len(RUNG_BUDGETS)) if fidelity else 1
    base = 0.35 + 0.35 * keep * bits / 8 + 0.4 * params["epsilon"]
    rungs = []
    metrics: dict[str, float] = {}
    for index in range(rungs_reached):
        robust = min(0.98, max(0.0, base + 0.03 * index + rng.gauss(0, 0.05)))
        metrics = {
            "robust_accuracy": robust,
            "clean_accuracy": min(1.0, robust + rng.uniform(0.02, 0.2)),
            "latency_ms": latency * rng.uniform(0.95, 1.05),
            "size_bytes": size,
        }
        if fidelity:
            rungs.append(
                {
                    "rung": index,
                    "budget": RUNG_BUDGETS[index],
                    "images_seen": RUNG_BUDGETS[index],
                    "metrics": dict(metrics),
                    "cpu_seconds": 0.5 * (index + 1),
                    "checkpoint_artifact": str(uuid.UUID(int=rng.getrandbits(128))),
                    "place": rng.randint(0, 20),
                    "of": 21,
                    "promoted": index + 1 < rungs_reached,
                }
            )
    return metrics, rungs


def _complete_attrs(
    rng: random.Random, params: dict[str, Any], metrics: dict[str, float], rungs: int
) -> dict[str, Any]:
    seconds = {name: rng.uniform(0.001, 0.4) for name in ["compress", "finetune", *metrics]}
    seconds.update(cpu=sum(seconds.values()), store=rng.uniform(0.01, 0.03))
    return {
        "feasible": True,
        "metrics": metrics,
        "notes": {
            "latency": {
                "min_ms": metrics["latency_ms"] * 0.85,
                "max_ms": metrics["latency_ms"] * 1.6,
                "form": "int8 ONNX (onnxruntime)",
                "other_forms_ms": {},
            },
            "sanity_failed": [],
        },
        "plan": {
            "strategy": params["strategy"] if params["epsilon"] else "standard",
            "epsilon": params["epsilon"] if params["strategy"] != "standard" else 0.0,
            "epochs": params.get("epochs", rungs),
            "from_scratch": False,
        },
        "seconds": seconds,
        "weights_artifact": str(uuid.UUID(int=rng.getrandbits(128))),
        "widths": {
            layer: max(1, round(full * (1 - params[f"sparsity.{layer}"])))
            for layer, full in FULL_WIDTHS.items()
        },
    }


def study_config(name: str, trials: int) -> dict[str, Any]:
    """The default digits config, as a study made by `search run` stores it."""
    config = StudyConfig().to_dict()
    config.update(study=name, trials=trials)
    config["fidelity"]["enabled"] = True
    return config


def study_attrs(name: str, trials: int) -> dict[str, Any]:
    return {
        "config": study_config(name, trials),
        "base_weights_artifact": str(uuid.UUID(int=1)),
        "base_cpu_seconds": 5.4,
        "sanity.base": [
            {"name": "large-epsilon", "passed": True, "detail": "robust 0.0000 at Linf eps 0.5"},
            {"name": "more-steps", "passed": True, "detail": "robust 0.73 at 10 steps, 0.72 at 50"},
        ],
    }


def make_big_study(url: str, n: int, name: str = "big", seed: int = 0) -> BigStudy:
    """Write a study of `n` trials into the storage `url` (`journal:FILE` or a database
    URL) that must not hold `name` yet; returns what was written."""
    trials = make_trials(n, seed)
    if url.startswith("journal:"):
        _write_journal(Path(url.removeprefix("journal:")), name, trials)
    else:
        _write_rdb(url, name, trials)
    return BigStudy(name, url, trials)


class _MemoryBackend(BaseJournalBackend):
    """Journal operations kept in a list, to be written to a file at once."""

    def __init__(self, logs: list[dict[str, Any]]) -> None:
        self.logs = logs

    def read_logs(self, log_number_from: int) -> Iterable[dict[str, Any]]:
        return self.logs[log_number_from:]

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        self.logs.extend(json.loads(json.dumps(log)) for log in logs)


def _write_journal(path: Path, name: str, trials: list[FrozenTrial]) -> None:
    existing: list[dict[str, Any]] = []
    if path.exists():
        existing = list(JournalFileBackend(str(path)).read_logs(0))
    memory = _MemoryBackend(list(existing))
    study = _create(JournalStorage(memory), name, len(trials))
    study.add_trials(trials)
    JournalFileBackend(str(path)).append_logs(memory.logs[len(existing) :])


def _create(storage: Any, name: str, n: int) -> optuna.Study:
    study = optuna.create_study(study_name=name, storage=storage, directions=DIRECTIONS)
    study.set_metric_names(OBJECTIVES)
    for key, value in study_attrs(name, n).items():
        study.set_user_attr(key, value)
    return study


def _write_rdb(url: str, name: str, trials: list[FrozenTrial]) -> None:
    """Trial rows inserted into Optuna's tables in one transaction."""
    from optuna.storages import RDBStorage
    from optuna.storages._rdb import models
    from sqlalchemy import func, insert, select

    storage = RDBStorage(url)
    study = _create(storage, name, len(trials))
    engine = storage.engine
    with engine.begin() as connection:
        first_id = connection.execute(select(func.max(models.TrialModel.trial_id))).scalar() or 0
        rows: dict[Any, list[dict[str, Any]]] = {
            models.TrialModel: [],
            models.TrialParamModel: [],
            models.TrialValueModel: [],
            models.TrialUserAttributeModel: [],
            models.TrialSystemAttributeModel: [],
        }
        for offset, trial in enumerate(trials):
            trial_id = first_id + 1 + offset
            rows[models.TrialModel].append(
                {
                    "trial_id": trial_id,
                    "number": trial.number,
                    "study_id": study._study_id,
                    "state": trial.state,
                    "datetime_start": trial.datetime_start,
                    "datetime_complete": trial.datetime_complete,
                }
            )
            for key, value in trial.params.items():
                dist = trial.distributions[key]
                rows[models.TrialParamModel].append(
                    {
                        "trial_id": trial_id,
                        "param_name": key,
                        "param_value": dist.to_internal_repr(value),
                        "distribution_json": distribution_to_json(dist),
                    }
                )
            for objective, value in enumerate(trial.values or []):
                stored, kind = models.TrialValueModel.value_to_stored_repr(value)
                rows[models.TrialValueModel].append(
                    {
                        "trial_id": trial_id,
                        "objective": objective,
                        "value": stored,
                        "value_type": kind,
                    }  # fmt: skip
                )
            for model, attrs in (
                (models.TrialUserAttributeModel, trial.user_attrs),
                (models.TrialSystemAttributeModel, trial.system_attrs),
            ):
                rows[model] += [
                    {"trial_id": trial_id, "key": k, "value_json": json.dumps(v)}
                    for k, v in attrs.items()
                ]
        for model, batch in rows.items():
            if batch:
                connection.execute(insert(model.__table__), batch)
    engine.dispose()
