"""Picking one front member by a rule: `search pareto --pick`, `StudyResult.pick`, the service.

One tiny study (6 trials, four objectives so the front has several members) runs once
through `run_search`; every expected pick is computed here from the rows `search pareto
--json` prints, never by the code under test.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli

from search import run_search
from search.api import StudyResult
from search.core import BadInput
from search.front import parse_rule, pick_row

OBJECTIVES = ["robust_accuracy", "latency_ms", "size_bytes", "clean_accuracy"]
MAXIMIZED = {"robust_accuracy", "clean_accuracy"}


@pytest.fixture(scope="module")
def picked_study(tmp_path_factory: pytest.TempPathFactory, _base_model_cache) -> dict[str, Any]:
    """The study, its result and its validation front as `search pareto --json` rows."""
    from conftest import TINY, cheap_assessment

    root = tmp_path_factory.mktemp("pick")
    config = copy.deepcopy(TINY)
    config.update(study="pick", trials=6, objectives=OBJECTIVES)
    cheap_assessment(config)  # of the whole front
    url = f"sqlite:///{root / 'pick.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.delenv("AER_SEARCH_STORAGE", raising=False)
        result = run_search(config, storage=url)
        rc, out, err = run_cli(["pareto", "--storage", url, "--validation-only", "--json"])
    assert rc == 0, err
    return {"root": root, "url": url, "result": result, "rows": json.loads(out)}


@pytest.fixture
def pick(picked_study, monkeypatch: pytest.MonkeyPatch):
    """Run `search pareto --pick RULE` (validation rows unless told) in the study's folder."""
    monkeypatch.chdir(picked_study["root"])

    def run(rule: str, *extra: str, validation_only: bool = True) -> tuple[int, str, str]:
        argv = ["-q", "pareto", "--storage", picked_study["url"], "--pick", rule, *extra]
        return run_cli(argv + (["--validation-only"] if validation_only else []))

    return run


def picked_json(pick, rule: str, **options: Any) -> dict[str, Any]:
    rc, out, err = pick(rule, "--json", **options)
    assert rc == 0, err
    rows = json.loads(out)
    assert len(rows) == 1, rows
    return rows[0]


def best(rows: list[dict[str, Any]], metric: str, maximize: bool) -> dict[str, Any]:
    """The first row (lowest trial) with the best value of `metric`."""
    target = (max if maximize else min)(row[metric] for row in rows)
    return next(row for row in rows if row[metric] == target)


def split_point(rows: list[dict[str, Any]], metric: str) -> float:
    """A bound halfway between two of the front's values of `metric` (JSON rounds numbers
    to 15 digits, so a bound equal to a printed value could miss the stored one)."""
    values = sorted({row[metric] for row in rows})
    assert len(values) >= 2, f"the front's members share one {metric}"
    upper = len(values) // 2
    return (values[upper - 1] + values[upper]) / 2


def knee_of(rows: list[dict[str, Any]]) -> int:
    """The trial nearest the ideal point, each objective min-max scaled over `rows`."""
    distance = {row["trial"]: 0.0 for row in rows}
    for metric in OBJECTIVES:
        values = [row[metric] for row in rows]
        low, high = min(values), max(values)
        if high == low:
            continue
        ideal = high if metric in MAXIMIZED else low
        for row in rows:
            distance[row["trial"]] += ((row[metric] - ideal) / (high - low)) ** 2
    return min(distance, key=lambda trial: (distance[trial], trial))


def test_the_study_has_a_front_worth_picking_from(picked_study) -> None:
    """Guards: the picks below choose among several members, not one."""
    assert len(picked_study["rows"]) >= 2
    assert [row["trial"] for row in picked_study["rows"]] == [
        m.number for m in picked_study["result"]
    ]


def test_constraint_then_maximize_picks_the_best_that_passes(picked_study, pick) -> None:
    """Guards: constraints filter (bound inclusive with <=), the objective picks among them,
    and the printed row is the front's row unchanged."""
    rows = picked_study["rows"]
    bound = split_point(rows, "latency_ms")
    passing = [row for row in rows if row["latency_ms"] <= bound]
    expected = best(passing, "robust_accuracy", maximize=True)
    assert picked_json(pick, f"latency_ms <= {bound!r}; maximize robust_accuracy") == expected
    rc, out, err = pick(f"latency_ms <= {bound!r} and size_bytes > 0; maximize robust_accuracy")
    assert rc == 0, err
    table = out.splitlines()[-2:]  # the header line and the one member's line
    assert table[0].split()[0] == "trial" and table[1].split()[0] == str(expected["trial"])


def test_minimize_and_the_default_objective(picked_study, pick) -> None:
    """Guards: `minimize METRIC` alone; constraints alone use the study's first objective
    (robust_accuracy, maximized); `<` and `>` are strict."""
    rows = picked_study["rows"]
    assert picked_json(pick, "minimize size_bytes") == best(rows, "size_bytes", maximize=False)
    bound = split_point(rows, "clean_accuracy")
    passing = [row for row in rows if row["clean_accuracy"] > bound]
    expected = best(passing, "robust_accuracy", maximize=True)
    assert picked_json(pick, f"clean_accuracy > {bound!r}") == expected


def test_knee_is_nearest_the_ideal_point(picked_study, pick) -> None:
    """Guards: knee alone normalises over the whole front; after constraints, over the
    members left (directions from the study)."""
    rows = picked_study["rows"]
    assert picked_json(pick, "knee")["trial"] == knee_of(rows)
    bound = split_point(rows, "size_bytes")
    passing = [row for row in rows if row["size_bytes"] <= bound]
    assert picked_json(pick, f"size_bytes <= {bound!r}; KNEE")["trial"] == knee_of(passing)


def test_unknown_metric_names_it_and_suggests_the_close_match(pick) -> None:
    """Guards: exit 2, one line, the metric named, the allowed ones, a did-you-mean."""
    rc, out, err = pick("latncy_ms <= 0.2; maximize robust_accuracy")
    assert rc == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "'latncy_ms'" in lines[0] and "did you mean 'latency_ms'" in lines[0]
    assert "allowed: robust_accuracy" in lines[0] and "test_robust_accuracy_final" in lines[0]
    rc, _, err = pick("maximize robust_acuracy")
    assert rc == 2 and "did you mean 'robust_accuracy'" in err


def test_a_rule_no_member_meets_names_the_constraint_that_emptied_it(picked_study, pick) -> None:
    """Guards: constraints apply in order; the message names the first one after which
    nothing is left (not a later one) and how many members were left before it."""
    rows = picked_study["rows"]
    rc, _, err = pick("robust_accuracy >= 0 and latency_ms < 0 and size_bytes < 0")
    assert rc == 2
    line = err.strip()
    assert len(line.splitlines()) == 1
    assert f"{len(rows)} members were left before 'latency_ms < 0', none after it" in line
    assert "before 'size_bytes < 0'" not in line
    rc, _, err = pick("size_bytes < 0; knee")
    assert rc == 2 and f"{len(rows)} members were left before 'size_bytes < 0'" in err


@pytest.mark.parametrize(
    ("rule", "why"),
    [
        ("latency_ms = 0.2", "is not 'METRIC <= NUMBER'"),
        ("latency_ms <= fast", "is not a number"),
        ("latency_ms <= 0.2 and", "is not 'METRIC <= NUMBER'"),
        ("latency_ms <= 0.2; knee; knee", "at most one ';'"),
        ("latency_ms <= 0.2;", "at most one ';'"),
        ("latency_ms <= 0.2; fastest", "is not 'knee' or an objective"),
        ("", "at most one ';'"),
        ("__import__('os').system('true')", "is not 'METRIC <= NUMBER'"),
    ],
)
def test_a_malformed_rule_says_what_the_grammar_is(rule: str, why: str) -> None:
    """Guards: one line with the reason and the grammar, before any row is looked at."""
    with pytest.raises(BadInput) as caught:
        parse_rule(rule, ["latency_ms", "robust_accuracy"])
    message = str(caught.value)
    assert "\n" not in message and why in message, message
    assert message.startswith("--pick: cannot read") and "a rule reads 'METRIC <= NUMBER" in message


def test_a_malformed_rule_exits_2_from_the_cli(pick) -> None:
    rc, out, err = pick("latency_ms == 0.2")
    assert rc == 2 and out == "" and "a rule reads" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("bound", ["nan", "NaN", "inf", "-inf", "Infinity"])
def test_a_non_finite_bound_is_refused(pick, bound: str) -> None:
    rc, _, err = pick(f"latency_ms <= {bound}")
    assert rc == 2
    assert f"bound '{bound}' in 'latency_ms <= {bound}' must be a finite number" in err


def test_pick_row_ties_go_to_the_lowest_trial_and_missing_values_fail() -> None:
    """Guards the rules on rows alone: a missing or NaN value never meets a constraint;
    equal values pick the first (lowest) trial."""
    rows = [
        {"trial": 1, "a": 0.5, "b": float("nan")},
        {"trial": 2, "a": 0.5, "b": 2.0},
        {"trial": 3, "a": 0.1},
    ]
    objectives = {"a": "maximize", "b": "minimize"}
    rule = parse_rule("maximize a", ["a", "b"])
    assert pick_row(rows, rule, objectives)["trial"] == 1
    assert pick_row(rows, parse_rule("b <= 5", ["a", "b"]), objectives)["trial"] == 2
    with pytest.raises(BadInput, match="3 members were left before 'b > 5'"):
        pick_row(rows, parse_rule("b > 5", ["a", "b"]), objectives)


def test_pick_with_export_writes_exactly_that_member(picked_study, pick, tmp_path: Path) -> None:
    """Guards: `--pick --export` exports one trial folder, the picked one, and its table."""
    rows = picked_study["rows"]
    target = tmp_path / "export"
    rc, _, err = pick("knee", "--export", str(target), validation_only=False)
    assert rc == 0, err
    folders = sorted(p.name for p in target.iterdir() if p.is_dir())
    assert folders == [f"trial-{knee_of(rows)}"]
    table = json.loads((target / "pareto.json").read_text())
    assert [row["trial"] for row in table] == [knee_of(rows)]
    assert "test_robust_accuracy_final" in table[0]


def test_api_pick_returns_the_member_the_cli_picks(picked_study, pick) -> None:
    """Guards: StudyResult.pick and `search pareto --pick` agree; bad rules raise BadInput
    naming the `pick` argument."""
    result: StudyResult = picked_study["result"]
    for rule in ("knee", "minimize latency_ms", "size_bytes <= 1e9; maximize clean_accuracy"):
        member = result.pick(rule)
        assert member.number == picked_json(pick, rule)["trial"], rule
        assert member in list(result)
    with pytest.raises(BadInput, match=r"^pick: unknown metric 'sise_bytes'.*'size_bytes'"):
        result.pick("sise_bytes < 1")


def test_a_test_metric_rule_reassesses_the_front_first(picked_study, pick) -> None:
    """Guards: a `test_...` rule picks on the test-split numbers of the whole front (the
    same rows `search pareto --json` prints), from the CLI and the API alike, and is
    refused with --validation-only."""
    rc, _, err = pick("maximize test_robust_accuracy_final")
    assert rc == 2 and "--validation-only skips" in err
    picked = picked_json(pick, "maximize test_robust_accuracy_final", validation_only=False)
    rc, out, err = run_cli(["-q", "pareto", "--storage", picked_study["url"], "--json"])
    assert rc == 0, err
    assessed = json.loads(out)
    assert picked == best(assessed, "test_robust_accuracy_final", maximize=True)
    result: StudyResult = picked_study["result"]
    assert result.pick("maximize test_robust_accuracy_final").number == picked["trial"]


def test_the_service_front_route_picks_one_member(picked_study, tmp_path: Path) -> None:
    """Guards: GET /api/studies/NAME/front?pick=RULE returns only that member (the CLI's
    row, less nulls); a bad rule is 422 with the one-line detail naming the parameter."""
    from fastapi.testclient import TestClient

    from search.service import ServiceSettings, create_app

    settings = ServiceSettings.build(picked_study["url"], tmp_path / "data", port=8765)
    client = TestClient(create_app(settings), base_url="http://127.0.0.1:8765")
    rows = picked_study["rows"]
    response = client.get("/api/studies/pick/front", params={"pick": "knee"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["pick"] == "knee" and body["assessed"] is False
    assert [m["trial"] for m in body["members"]] == [knee_of(rows)]
    expected = next(row for row in rows if row["trial"] == knee_of(rows))
    member = body["members"][0]
    assert set(member) == {k for k, v in expected.items() if v is not None}
    for key, value in member.items():  # JSON from pandas rounds to 15 digits
        exact = not isinstance(value, float)
        assert value == (expected[key] if exact else pytest.approx(expected[key], rel=1e-12))
    response = client.get("/api/studies/pick/front", params={"pick": "latncy_ms < 1"})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.startswith("query parameter 'pick': unknown metric 'latncy_ms'")
    assert "did you mean 'latency_ms'" in detail and "\n" not in detail
    response = client.get("/api/studies/pick/front", params={"pick": "size_bytes < 0"})
    assert response.status_code == 422 and "before 'size_bytes < 0'" in response.json()["detail"]
