"""The Pareto front of a study as rows of plain data, apart from any rendering.

A row holds a trial's number, state, every metric, its params and its failure reason;
`front_rows` keeps the complete trials that no other complete trial dominates
(Optuna's `best_trials`).
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import mean
from typing import Any

import optuna
import pandas as pd
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from objectives import BUILT_IN_METRICS
from search.core import non_dominated
from search.study import FAIL_REASON, FEASIBLE, METRICS, NOTES, PLAN, RUNGS

CONSTRAINTS_KEY = "constraints"  # the system attr where Optuna keeps constraint values
UNFINISHED_REASON = "stopped without a result (worker killed or interrupted)"


def trial_row(trial: FrozenTrial) -> dict[str, Any]:
    """One flat row: number, state, metrics, a short summary of params, all params."""
    metrics = trial.user_attrs.get(METRICS, {})
    row: dict[str, Any] = {"trial": trial.number, "state": trial.state.name}
    row.update({name: metrics.get(name) for name in BUILT_IN_METRICS})
    row.update({k: v for k, v in metrics.items() if k not in row})
    predicted = trial.user_attrs.get(NOTES, {}).get("latency", {}).get("predicted_ms")
    if predicted is not None:  # latency.mode predicted; the export re-times it for real
        row["latency_ms_predicted"] = predicted
    row.update(summarize_params(trial.params))
    plan = trial.user_attrs.get(PLAN)
    if plan:  # what the trial did, after decoding (a standard strategy has epsilon 0)
        row.update(
            strategy=plan["strategy"],
            epsilon=plan["epsilon"],
            init="scratch" if plan["from_scratch"] else "base",
        )
    rungs = trial.user_attrs.get(RUNGS)
    if rungs:  # multi-fidelity: how far it got, and its first objective at each rung
        row["budget"] = rungs[-1]["budget"]
        row["rungs"] = len(rungs)
        first = next(iter(rungs[-1]["metrics"]))
        row["rung_" + first] = "/".join(f"{r['metrics'][first]:.4g}" for r in rungs)
    row.update({f"params.{k}": v for k, v in trial.params.items()})
    if FEASIBLE in trial.user_attrs:
        row["feasible"] = trial.user_attrs[FEASIBLE]
    if trial.state in (TrialState.FAIL, TrialState.PRUNED):
        row["fail_reason"] = trial.user_attrs.get(FAIL_REASON, UNFINISHED_REASON)
    return row


def summarize_params(params: dict[str, Any]) -> dict[str, Any]:
    """Mean sparsity, the bit-widths in layer order, epsilon and epochs: a table's view."""
    sparsity = [v for k, v in params.items() if k.split(".")[0] == "sparsity"]
    bits = [str(v) for k, v in params.items() if k.split(".")[0] == "bits"]
    return {
        "sparsity_mean": round(mean(sparsity), 3) if sparsity else 0.0,
        "bits": "/".join(bits) if bits else "",
        "epsilon": params.get("epsilon"),
        "epochs": params.get("epochs"),
        "strategy": params.get("strategy", "standard" if not params.get("epsilon") else ""),
    }


def report_columns(report: dict[str, Any]) -> dict[str, Any]:
    """Flat columns of a front member's assessment (test split, re-timing, sanity)."""
    failed = [c["name"] for c in report["sanity"] if not c["passed"]]
    latency = report["latency"]
    return {
        **{f"test_{k}": v for k, v in report["test"].items()},
        "retimed_ms": latency["median_ms"],
        "retimed_min_ms": latency["min_ms"],
        "retimed_max_ms": latency["max_ms"],
        "latency_form": latency["form"],
        "sanity": "FAILED: " + ", ".join(failed) if failed else "ok",
    }


def assessed_row(trial: FrozenTrial, report: dict[str, Any]) -> dict[str, Any]:
    """A front member's row with its assessment beside its search numbers."""
    return {**trial_row(trial), **report_columns(report)}


def front_trials(study: optuna.Study, trials: list[FrozenTrial] | None = None) -> list[FrozenTrial]:
    """Optuna's `best_trials` (complete, feasible, non-dominated), by trial number.

    Computed here on uncopied trials: Optuna's `best_trials` deep-copies every trial
    first (0.8 s of a 1,000-trial status request). Feasible means every constraint
    Optuna stored is <= 0, as Optuna decides it.
    """
    trials = study.get_trials(deepcopy=False) if trials is None else trials
    complete = [t for t in trials if t.state == TrialState.COMPLETE and _feasible(t)]
    signs = [-1.0 if d == StudyDirection.MAXIMIZE else 1.0 for d in study.directions]
    points = [[s * v for s, v in zip(signs, t.values, strict=True)] for t in complete]
    return sorted((complete[i] for i in non_dominated(points)), key=lambda t: t.number)


def _feasible(trial: FrozenTrial) -> bool:
    """All constraints <= 0, as Optuna decides it (Optuna 5 keeps them as
    `trial.constraints`, a dict; Optuna 4 as a list in a system attr)."""
    constraints = getattr(trial, "constraints", None)
    if not isinstance(constraints, dict):
        constraints = dict(enumerate(trial.system_attrs.get(CONSTRAINTS_KEY) or []))
    return all(value <= 0 for value in constraints.values())


def front_frame(study: optuna.Study) -> pd.DataFrame:
    return pd.DataFrame([trial_row(t) for t in front_trials(study)])


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    return pd.DataFrame([trial_row(t) for t in study.get_trials(deepcopy=False)])


TABLE_COLUMNS = [
    "trial",
    *BUILT_IN_METRICS,
    "sparsity_mean",
    "bits",
    "strategy",
    "epsilon",
    "epochs",
    "budget",
    "rungs",
]


def frame_json(frame: pd.DataFrame) -> str:
    """Rows as a JSON list, numbers at full precision (pandas rounds to 10 digits)."""
    return frame.to_json(orient="records", indent=2, double_precision=15)


def format_table(frame: pd.DataFrame, extra: Sequence[str] | None = None) -> str:
    """A fixed-width table of the columns a person reads first."""
    if frame.empty:
        return "(no trials)"
    columns = [c for c in [*TABLE_COLUMNS, *(extra or [])] if c in frame.columns]
    view = frame[columns].copy()
    if "size_bytes" in view:
        view["size_bytes"] = view["size_bytes"].map(lambda v: "" if pd.isna(v) else f"{int(v):,}")
    return view.to_string(index=False, float_format=lambda v: f"{v:.4g}")
