"""The front as one interactive HTML file (pareto.html), beside the static pareto.png.

Hand-written SVG and a page of plain JS (search/front/static/pareto.html) rather than
plotly: the file must open offline on an edge box, and plotly.js embedded would make
every export ~5 MB heavier for one scatter plot; the service's page already draws its
plots the same way. Data is gathered here (every complete trial, its validation
metrics and params, front members with their test-split columns) and embedded as
JSON; the page only draws it and lets the user pick both axes.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from objectives import BUILT_IN_METRICS
from search.front._pick import TEST_METRICS, study_objectives
from search.front._rows import _feasible, front_trials
from search.study import METRICS, read_trials

PLACEHOLDER = "{{DATA}}"
PLOT_JS = "{{PLOT_JS}}"  # search/front/static/plot.js, inlined: the page stays one file


def write_front_page(study: optuna.Study, members: pd.DataFrame, path: Path) -> None:
    """Write pareto.html: every complete trial of `study`, `members` (the export's
    pareto table, test columns included) highlighted."""
    path.write_text(front_page(front_data(study, members)), encoding="utf-8")


def front_page(data: dict[str, Any]) -> str:
    """The page with `data` embedded; `<` escaped, so no value can close the script."""
    static = resources.files("search.front").joinpath("static")
    template = static.joinpath("pareto.html").read_text("utf-8")
    text = json.dumps(data, allow_nan=False, sort_keys=True).replace("<", "\\u003c")
    page = template.replace(PLOT_JS, static.joinpath("plot.js").read_text("utf-8"))
    return page.replace(PLACEHOLDER, text)


def front_data(study: optuna.Study, members: pd.DataFrame) -> dict[str, Any]:
    """What the page draws: points, the axes a user may choose, the default axes."""
    trials = read_trials(study, states=(TrialState.COMPLETE,))
    front = {t.number for t in front_trials(study, trials)}
    tested = {int(row["trial"]): row for row in members.to_dict("records")}
    points = [_point(t, t.number in front, tested.get(t.number, {})) for t in trials]
    objectives = study_objectives(study)
    axes = _axes(points, objectives)
    names = [axis["name"] for axis in axes]
    goals = [name for name in objectives if name in names] or names
    y = goals[0] if goals else ""
    x = next((name for name in goals[1:] + names if name != y), y)
    return {
        "study": study.study_name,
        "objectives": [{"name": n, "direction": d} for n, d in objectives.items()],
        "axes": axes,
        "x": x,
        "y": y,
        "points": points,
    }


def _point(trial: FrozenTrial, on_front: bool, tested: dict[str, Any]) -> dict[str, Any]:
    values = dict(trial.user_attrs.get(METRICS, {}))
    values.update({name: tested.get(name) for name in TEST_METRICS})
    return {
        "trial": trial.number,
        "front": on_front,
        "feasible": _feasible(trial),
        "values": {k: float(v) for k, v in values.items() if _finite(v)},
        "params": {k: v for k, v in trial.params.items() if not isinstance(v, float) or _finite(v)},
    }


def _axes(points: list[dict[str, Any]], objectives: dict[str, str]) -> list[dict[str, str]]:
    """Every metric some point has: objectives first, then validation, then test ones."""
    present = {name for p in points for name in p["values"]}
    validation = [*objectives, *BUILT_IN_METRICS, *sorted(present)]
    ordered = [n for n in dict.fromkeys(validation) if n in present and n not in TEST_METRICS]
    ordered += [n for n in TEST_METRICS if n in present]
    return [{"name": n, "label": _label(n, objectives.get(n))} for n in ordered]


def _label(name: str, direction: str | None) -> str:
    if name.startswith("test_"):
        split = "test split, final attack" if name.endswith("_final") else "test split"
    elif name.startswith("retimed_"):
        split = "re-timed, one model at a time"
    else:
        split = "validation"
    return f"{name} ({split}{', ' + direction if direction else ''})"


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
