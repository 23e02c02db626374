"""The Pareto front of a study as rows of plain data, apart from any rendering.

A row holds a trial's number, state, every metric, its params and its failure reason;
`front_rows` keeps the complete trials that no other complete trial dominates
(Optuna's `best_trials`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from statistics import mean
from typing import Any

import optuna
import pandas as pd
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from objectives import BUILT_IN_METRICS
from search.core import non_dominated
from search.study import CONFIG, FAIL_REASON, FEASIBLE, METRICS, NOTES, PLAN, RUNGS, read_trials

LATENCY = "latency_ms"
DEFAULT_TOLERANCE = 0.1  # latency.tolerance of a study stored before it existed
RESOLVED = "latency_resolved"  # 1: on the front by more than latency can resolve; 0: not
TIES = "latency_ties"  # the members that cover it once latencies within tolerance are equal
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
    trials = read_trials(study) if trials is None else trials
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
    return pd.DataFrame(mark_latency_ties(study, [trial_row(t) for t in front_trials(study)]))


def study_objectives(study: optuna.Study) -> dict[str, str]:
    """The study's objectives in order, each to "maximize" or "minimize"."""
    names = study.metric_names or study.user_attrs.get(CONFIG, {}).get("objectives")
    if not names:
        names = [f"values_{i}" for i in range(len(study.directions))]
    return {
        name: "maximize" if direction == StudyDirection.MAXIMIZE else "minimize"
        for name, direction in zip(names, study.directions, strict=True)
    }


def mark_latency_ties(study: optuna.Study, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`rows` (front members) with `latency_resolved` and `latency_ties`, when latency is
    one of the study's objectives; the study's `latency.tolerance` (stored config)."""
    latency = study.user_attrs.get(CONFIG, {}).get("latency", {})
    tolerance = latency.get("tolerance", DEFAULT_TOLERANCE)
    return latency_ties(rows, study_objectives(study), tolerance)


def latency_ties(
    rows: list[dict[str, Any]], objectives: Mapping[str, str], tolerance: float
) -> list[dict[str, Any]]:
    """Flag the members that are on the front only by a latency difference smaller than
    `tolerance` (relative: |a - b| <= tolerance * max(a, b)).

    Member A is tied (`latency_resolved` 0, `latency_ties` naming the others) when another
    member B is as fast within the tolerance, at least as good on every other objective
    and better on one: with latencies that close treated as equal, B dominates A. Rows
    change in place and are returned; without a latency objective they are left as is.
    """
    if LATENCY not in objectives:
        return rows
    others = [(name, d) for name, d in objectives.items() if name != LATENCY]
    for row in rows:
        ties = [other["trial"] for other in rows if _covers(other, row, others, tolerance)]
        row[RESOLVED] = 0 if ties else 1
        row[TIES] = "/".join(str(number) for number in ties)
    return rows


def _covers(
    b: Mapping[str, Any], a: Mapping[str, Any], others: list[tuple[str, str]], tolerance: float
) -> bool:
    """Whether B dominates A once latencies within `tolerance` count as equal."""
    if b is a:
        return False
    try:
        fast_a, fast_b = float(a[LATENCY]), float(b[LATENCY])
        pairs = [(float(a[name]), float(b[name]), d) for name, d in others]
    except (KeyError, TypeError, ValueError):
        return False
    if abs(fast_a - fast_b) > tolerance * max(fast_a, fast_b):
        return False
    sign = {"maximize": -1.0, "minimize": 1.0}
    gaps = [sign[d] * (value_b - value_a) for value_a, value_b, d in pairs]  # < 0: B better
    return all(gap <= 0 for gap in gaps) and any(gap < 0 for gap in gaps)


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    return pd.DataFrame([trial_row(t) for t in read_trials(study)])


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
    RESOLVED,
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
