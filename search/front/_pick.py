"""Picking one member of the front by a rule, so a user need not read the whole table.

A rule is constraints joined by `and` (`latency_ms <= 0.2 and size_bytes < 9000`, with
<=, >=, < or >), then optionally `; maximize METRIC`, `; minimize METRIC` or `; knee`;
`knee` or an objective may also stand alone. The constraints filter the front in order;
the objective chooses among what is left (default: the study's first objective, in its
direction). `knee` is the member nearest the ideal point once each of the study's
objectives is min-max normalised over the members left, so that no objective's unit
(bytes against milliseconds) outweighs another. `latency_resolved >= 1` keeps the members
that are on the front by more than latency can resolve (`_rows.latency_ties`).

The parser is written by hand (no eval: a rule may come from an HTTP query), and every
error is one BadInput line: what could not be read and the grammar, an unknown metric
with the allowed ones, a non-finite bound, or which constraint left no member.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import optuna
from optuna.trial import FrozenTrial

from objectives import BUILT_IN_METRICS
from search.config import StudyConfig
from search.core import TEST_METRICS, BadInput, close_matches
from search.front._assess import assess_front
from search.front._rows import (
    RESOLVED,
    assessed_row,
    front_trials,
    mark_latency_ties,
    study_objectives,
    trial_row,
)
from search.study import METRICS

# a metric with one of these prefixes comes from the test-split re-assessment
TEST_PREFIXES = ("test_", "retimed_")
GRAMMAR = (
    "a rule reads 'METRIC <= NUMBER and METRIC > NUMBER ...' (operators <=, >=, <, >), "
    "optionally followed by '; maximize METRIC', '; minimize METRIC' or '; knee'; "
    "'knee' or 'maximize METRIC' may also stand alone"
)
_CONSTRAINT = re.compile(r"([A-Za-z_][A-Za-z0-9_.]*)\s*(<=|>=|<|>)\s*([^\s<>=]+)")
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)
_HOLDS = {
    "<=": lambda value, bound: value <= bound,
    ">=": lambda value, bound: value >= bound,
    "<": lambda value, bound: value < bound,
    ">": lambda value, bound: value > bound,
}
KNEE = "knee"
DIRECTIONS = ("maximize", "minimize")


@dataclass(frozen=True)
class Constraint:
    """One `METRIC OP NUMBER`; `text` is as the user wrote it, for error messages."""

    metric: str
    operator: str
    bound: float
    text: str

    def holds(self, row: Mapping[str, Any]) -> bool:
        """A member without a finite value of the metric does not meet it."""
        value = _number(row.get(self.metric))
        return value is not None and _HOLDS[self.operator](value, self.bound)


@dataclass(frozen=True)
class Rule:
    """A parsed rule: constraints in order, then `knee`, an objective, or neither."""

    text: str
    constraints: tuple[Constraint, ...] = ()
    knee: bool = False
    objective: tuple[str, str] | None = None  # (metric, "maximize" | "minimize")

    @property
    def metrics(self) -> list[str]:
        named = [c.metric for c in self.constraints]
        return named + ([self.objective[0]] if self.objective else [])

    @property
    def needs_test(self) -> bool:
        """Whether it names a number only the test-split re-assessment gives."""
        return any(metric.startswith(TEST_PREFIXES) for metric in self.metrics)


def parse_rule(text: str, allowed: Sequence[str], field: str = "--pick") -> Rule:
    """Read a rule (grammar in the module docstring) whose metrics are all in `allowed`."""
    parts = [part.strip() for part in text.split(";")]
    if len(parts) > 2 or not all(parts):
        _malformed(text, field, "expected at most one ';' with text on both sides")
    goal = _goal(parts[-1])
    if goal is None and len(parts) == 2:
        _malformed(text, field, f"{parts[-1]!r} after ';' is not 'knee' or an objective")
    if goal is not None and len(parts) == 1:
        constraints: tuple[Constraint, ...] = ()
    else:
        constraints = tuple(_constraint(piece, text, field) for piece in _AND.split(parts[0]))
    knee = goal == KNEE
    objective = goal if isinstance(goal, tuple) else None
    rule = Rule(text, constraints, knee, objective)
    for metric in rule.metrics:
        if metric not in allowed:
            raise BadInput(
                f"{field}: unknown metric {metric!r} in {_shown(text)}; "
                f"allowed: {', '.join(allowed)}{close_matches(metric, allowed)}"
            )
    return rule


def _goal(part: str) -> str | tuple[str, str] | None:
    """`knee`, ("metric", "maximize"/"minimize"), or None when `part` is neither."""
    words = part.split()
    if len(words) == 1 and words[0].lower() == KNEE:
        return KNEE
    if len(words) == 2 and words[0].lower() in DIRECTIONS:
        return words[1], words[0].lower()
    return None


def _constraint(piece: str, text: str, field: str) -> Constraint:
    match = _CONSTRAINT.fullmatch(piece.strip())
    if match is None:
        _malformed(text, field, f"{piece.strip()!r} is not 'METRIC <= NUMBER'")
    metric, operator, bound = match.groups()
    try:
        value = float(bound)
    except ValueError:
        _malformed(text, field, f"bound {bound!r} in {piece.strip()!r} is not a number")
    if not math.isfinite(value):
        raise BadInput(f"{field}: bound {bound!r} in {piece.strip()!r} must be a finite number")
    return Constraint(metric, operator, value, piece.strip())


def _malformed(text: str, field: str, why: str) -> NoReturn:
    raise BadInput(f"{field}: cannot read {_shown(text)} ({why}); {GRAMMAR}")


def _shown(text: str) -> str:
    """The rule as quoted in a message: repr keeps it on one line; long ones are cut."""
    return repr(text if len(text) <= 200 else text[:200] + "...")


def pick_row(
    rows: Sequence[Mapping[str, Any]],
    rule: Rule,
    objectives: Mapping[str, str],
    field: str = "--pick",
) -> Mapping[str, Any]:
    """The one row the rule picks; `objectives` maps the study's objectives, in order,
    to "maximize" / "minimize". Ties go to the lowest trial number (rows in that order)."""
    if not rows:
        raise BadInput(f"{field}: the study has no front member to pick from yet")
    left = _filter(rows, rule, field)
    if rule.knee:
        return _knee(left, objectives, rule, field)
    metric, direction = rule.objective or next(iter(objectives.items()))
    scored = [(value, row) for row in left if (value := _number(row.get(metric))) is not None]
    if not scored:
        raise BadInput(f"{field}: no member left by {_shown(rule.text)} has a value of {metric!r}")
    sign = -1.0 if direction == "maximize" else 1.0
    return min(scored, key=lambda pair: sign * pair[0])[1]


def _filter(rows: Sequence[Mapping[str, Any]], rule: Rule, field: str) -> list[Mapping[str, Any]]:
    """Apply the constraints in order, naming the one after which nothing is left."""
    left = list(rows)
    for constraint in rule.constraints:
        kept = [row for row in left if constraint.holds(row)]
        if not kept:
            raise BadInput(
                f"{field}: no front member meets {_shown(rule.text)}: "
                f"{_members(len(left))} left before {constraint.text!r}, none after it"
            )
        left = kept
    return left


def _members(count: int) -> str:
    return f"{count} member" + ("" if count == 1 else "s") + (" was" if count == 1 else " were")


def _knee(
    rows: list[Mapping[str, Any]], objectives: Mapping[str, str], rule: Rule, field: str
) -> Mapping[str, Any]:
    """Nearest (Euclidean) to the ideal point, each objective scaled to [0, 1] over `rows`,
    0 its best value; an objective all rows share adds nothing."""
    points = [(row, _values(row, objectives)) for row in rows]
    scored = [(row, values) for row, values in points if values is not None]
    if not scored:
        raise BadInput(f"{field}: no member left by {_shown(rule.text)} has every objective")
    gaps = [0.0] * len(scored)
    for i, direction in enumerate(objectives.values()):
        column = [values[i] for _, values in scored]
        low, high = min(column), max(column)
        best = high if direction == "maximize" else low
        for j, value in enumerate(column):
            if high > low:
                gaps[j] += ((value - best) / (high - low)) ** 2
    return scored[min(range(len(scored)), key=gaps.__getitem__)][0]


def _values(row: Mapping[str, Any], names: Iterable[str]) -> list[float] | None:
    """The row's value of each name, or None when one is missing or not finite."""
    values = [_number(row.get(name)) for name in names]
    return None if None in values else [v for v in values if v is not None]


def _number(value: Any) -> float | None:
    """A finite real number, or None (missing, null, NaN, text, a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def allowed_metrics(trials: Iterable[FrozenTrial]) -> list[str]:
    """What a rule may name: every metric the trials recorded, then the test columns."""
    names = dict.fromkeys(BUILT_IN_METRICS)
    for trial in trials:
        names.update(dict.fromkeys(trial.user_attrs.get(METRICS, {})))
    return [*names, RESOLVED, *TEST_METRICS]


def pick_member(
    study: optuna.Study,
    config: StudyConfig,
    artifacts: Any,
    text: str,
    field: str = "--pick",
    validation_only: bool = False,
) -> dict[str, Any]:
    """The row of the member `text` picks: from the validation rows, or from the rows
    re-assessed on the test split (stored, so once) when the rule names a test metric."""
    trials = front_trials(study)
    rule = parse_rule(text, allowed_metrics(trials), field)
    if rule.needs_test and validation_only:
        raise BadInput(
            f"{field}: {_shown(text)} names a test-split number, which --validation-only skips"
        )
    if rule.needs_test:
        reports = assess_front(study, config, artifacts)
        rows = [assessed_row(t, reports[t.number]) for t in trials]
    else:
        rows = [trial_row(t) for t in trials]
    rows = mark_latency_ties(study, rows)
    return dict(pick_row(rows, rule, study_objectives(study), field))
