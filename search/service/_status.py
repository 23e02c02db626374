"""A study's status, trials and front, read from the storage on every request.

Nothing here is cached or kept elsewhere: a restarted service, or a study run by
`search run` on another machine, reads the same. Rows are search.front._rows's `trial_row`,
the rows `search trials --json` prints, with numbers exactly as stored (not through
pandas) and null values left out.
The only facts added from the service's own folder are its processes: whether the
study is starting, running, stopped on request, or failed before storing anything.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from search.front import front_trials, mark_latency_ties, trial_row
from search.service._runs import RunState
from search.study import CONFIG, SURPLUS, read_trials

COUNTED = {
    "complete": TrialState.COMPLETE,
    "failed": TrialState.FAIL,
    "running": TrialState.RUNNING,
    "waiting": TrialState.WAITING,
    "pruned": TrialState.PRUNED,
}


def front_of(study: optuna.Study, trials: list[FrozenTrial] | None = None) -> list[FrozenTrial]:
    """The front (`search.front.front_trials`), from already-read trials when given."""
    return front_trials(study, trials)


def load_study(storage: BaseStorage, name: str) -> optuna.Study | None:
    """The stored study, or None; never creates one."""
    try:
        return optuna.load_study(
            study_name=name, storage=storage, sampler=optuna.samplers.RandomSampler()
        )
    except KeyError:
        return None


def study_names(storage: BaseStorage) -> list[str]:
    return [s.study_name for s in storage.get_all_studies()]


def summary(
    study: optuna.Study | None, name: str, runs: RunState | None, alive: bool, log_tail: list[str]
) -> dict[str, Any]:
    """Counts, best values, front size, timing and state of one study."""
    attrs = study.user_attrs if study else {}
    config = attrs.get(CONFIG)
    trials = read_trials(study) if study else []
    states = Counter(t.state for t in trials)
    counts = {key: states[state] for key, state in COUNTED.items()}
    budgeted = [t for t in trials if not t.user_attrs.get(SURPLUS)]
    finished = counts["complete"] + counts["failed"]
    budget = config.get("trials") if isinstance(config, dict) else None
    objectives = study.metric_names if study else None
    row: dict[str, Any] = {
        "name": name,
        "aer_search": config is not None,  # made by aer-search (stores its config)
        "state": _state(study, budget, finished, counts["running"], runs, alive),
        "budget": budget,
        "trials": {**counts, "finished": finished, "total": len(trials)},
        "objectives": objectives,
        "directions": [d.name.lower() for d in study.directions] if study else None,
        "best": _best(study, trials, objectives),
        "front_size": len(front_of(study, trials)) if study and counts["complete"] else 0,
        "started_by_service": bool(runs and runs.runs),
        **_timing(
            [t for t in budgeted if t.state != TrialState.PRUNED],
            budget,
            finished,
            counts["running"] > 0 or alive,
        ),
    }
    if study is not None:
        row["sanity_base"] = attrs.get("sanity.base", [])
        row["threat_model"] = config.get("evaluation") if isinstance(config, dict) else None
    if runs is not None:
        row["stopped_at"] = _iso(runs.stopped_at)
        row["processes"] = [r.to_dict() for r in runs.runs]
    if row["state"] == "failed":
        row["log_tail"] = log_tail
    return row


def _state(
    study: optuna.Study | None,
    budget: int | None,
    finished: int,
    running: int,
    runs: RunState | None,
    alive: bool,
) -> str:
    """starting, running, finished, stopped, failed or incomplete."""
    if study is None:  # submitted; `search run` creates it once its base model is ready
        if alive:
            return "starting"
        return "stopped" if runs and runs.stopped_at else "failed"
    if alive or running:
        return "running"
    if budget is not None and finished >= budget:  # failed trials count, as for the CLI
        return "finished"
    if runs and runs.stopped_at:
        return "stopped"
    if runs and runs.runs and runs.runs[-1].exit_code not in (None, 0, 130):
        return "failed"
    return "incomplete"  # e.g. a `search run` elsewhere was interrupted


def _best(
    study: optuna.Study | None, trials: list[FrozenTrial], objectives: list[str] | None
) -> dict[str, float | None] | None:
    """The best value of each objective over complete trials (each on its own).

    A value that is not finite (inf, nan) is None: JSON has no number for it.
    """
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.values]
    if not complete or study is None:
        return None
    best: dict[str, float | None] = {}
    for index, direction in enumerate(study.directions):
        pick = max if direction == optuna.study.StudyDirection.MAXIMIZE else min
        name = objectives[index] if objectives else f"objective_{index}"
        best[name] = _finite(pick(t.values[index] for t in complete))
    return best


def _timing(
    trials: list[FrozenTrial], budget: int | None, finished: int, running: bool
) -> dict[str, Any]:
    """Elapsed since the first trial started; time left at the rate so far."""
    starts = [t.datetime_start for t in trials if t.datetime_start]
    if not starts:
        return {"started_at": None, "elapsed_s": None, "left_s": None}
    first = min(starts)
    if running:
        end = datetime.now()
    else:
        ends = [t.datetime_complete for t in trials if t.datetime_complete]
        end = max(ends) if ends else first
    elapsed = max((end - first).total_seconds(), 0.0)
    left = None
    if running and budget and finished:
        left = elapsed / finished * max(budget - finished, 0)
    return {
        "started_at": first.isoformat(),
        "elapsed_s": round(elapsed, 1),
        "left_s": None if left is None else round(left, 1),
    }


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """Every trial, as the rows of `search trials --json` (keys that would be null left
    out, numbers exactly as stored)."""
    return [_plain(trial_row(t)) for t in read_trials(study)]


def trial_page(study: optuna.Study, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    """Rows of the trials `offset` to `offset + limit` (in number order), and how many
    trials the study holds; rows are made for the page only."""
    trials = read_trials(study)
    return [_plain(trial_row(t)) for t in trials[offset : offset + limit]], len(trials)


def front_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """The validation front, as the rows of `search pareto --json --validation-only`."""
    rows = mark_latency_ties(study, [trial_row(t) for t in front_of(study)])
    return [_plain(row) for row in rows]


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """JSON has no NaN or infinity: such values, and missing ones, become absent keys."""
    return {
        k: v
        for k, v in row.items()
        if v is not None and not (isinstance(v, float) and not math.isfinite(v))
    }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _iso(stamp: float | None) -> str | None:
    return None if stamp is None else datetime.fromtimestamp(stamp).isoformat(timespec="seconds")
