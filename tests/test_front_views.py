"""Seeing the search: the hypervolume history (CLI, service, export) and pareto.html.

One tiny study (4 trials, SQLite) runs once through `run_search`; its history is checked
against Optuna's own hypervolume of the normalised front, `search pareto --history`
prints it, the service answers it and draws it, and an export's pareto.html opens in a
real headless Chromium (file:// URL) with one point per trial and working axis pickers.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from conftest import run_cli
from optuna._hypervolume import compute_hypervolume
from optuna.distributions import FloatDistribution
from optuna.study import StudyDirection
from optuna.trial import TrialState, create_trial

from search import run_search
from search.front import MARGIN, front_hypervolume, hypervolume_history

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
STUDY = "views"


@pytest.fixture(scope="module")
def views(tmp_path_factory: pytest.TempPathFactory, _base_model_cache) -> dict[str, Any]:
    """The study (storage named as the service harness serves it) and its export."""
    from conftest import TINY, cheap_assessment

    root = tmp_path_factory.mktemp("views")
    config = copy.deepcopy(TINY)
    config.update(study=STUDY, trials=4)
    cheap_assessment(config)  # for the export
    url = f"sqlite:///{root / 'studies.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.delenv("AER_SEARCH_STORAGE", raising=False)
        run_search(config, storage=url)
        export = root / "export"
        rc, _, err = run_cli(["-q", "pareto", "--storage", url, "--export", str(export)])
    assert rc == 0, err
    return {"root": root, "url": url, "export": export}


def load(views: dict[str, Any]) -> optuna.Study:
    return optuna.load_study(study_name=STUDY, storage=views["url"])


def expected_front_volume(study: optuna.Study) -> float:
    """Optuna's hypervolume of the front, normalised here as the module docstring says."""
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    signs = np.array([-1.0 if d == StudyDirection.MAXIMIZE else 1.0 for d in study.directions])
    values = np.array([t.values for t in complete]) * signs
    low, high = values.min(axis=0), values.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    front = np.array([t.values for t in study.best_trials]) * signs
    reference = np.full(len(signs), 1.0 + MARGIN)
    return float(compute_hypervolume((front - low) / span, reference))


def test_history_grows_to_the_hypervolume_of_the_final_front(views) -> None:
    study = load(views)
    history = hypervolume_history(study)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert sorted(p.trial for p in history) == sorted(t.number for t in complete)
    volumes = [p.hypervolume for p in history]
    assert all(a <= b for a, b in zip(volumes, volumes[1:], strict=False)), volumes
    assert volumes[0] > 0
    assert volumes[-1] == pytest.approx(front_hypervolume(study), rel=1e-12)
    assert volumes[-1] == pytest.approx(expected_front_volume(study), rel=1e-9)
    completed = [p.completed for p in history]
    assert completed == sorted(completed)


def test_pareto_history_prints_a_table_and_json(views) -> None:
    study = load(views)
    expected = [p.to_dict() for p in hypervolume_history(study)]
    rc, out, err = run_cli(["-q", "pareto", "--storage", views["url"], "--history", "--json"])
    assert rc == 0, err
    assert json.loads(out) == expected
    rc, out, err = run_cli(["-q", "pareto", "--storage", views["url"], "--history"])
    assert rc == 0, err
    lines = out.splitlines()
    assert "hypervolume after each completed trial" in lines[0]
    assert lines[1].split() == ["trial", "completed", "feasible", "hypervolume"]
    rows = [line.split() for line in lines[2:]]
    assert [int(r[0]) for r in rows] == [p["trial"] for p in expected]
    assert [float(r[-1]) for r in rows] == pytest.approx(
        [p["hypervolume"] for p in expected], abs=1e-6
    )


def test_history_refuses_export_and_pick_in_one_line(views, tmp_path: Path) -> None:
    argv = ["pareto", "--storage", views["url"], "--history", "--pick", "knee"]
    rc, out, err = run_cli(argv)
    assert rc == 2 and out == ""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "--history" in lines[0] and "--pick" in lines[0]


def test_multi_fidelity_trials_count_with_their_final_values(tmp_path: Path) -> None:
    """A trial's point is its stored values (its last rung), not an earlier rung's."""
    url = f"sqlite:///{tmp_path / 'rungs.db'}"
    directions = ["maximize", "minimize"]
    names = ["robust_accuracy", "latency_ms"]
    study = optuna.create_study(study_name="rungs", storage=url, directions=directions)
    finals = [[0.9, 4.0], [0.5, 1.0], [0.7, 2.0]]
    for values in finals:
        early = {"metrics": {"robust_accuracy": 0.1, "latency_ms": values[1]}}
        study.add_trial(
            create_trial(
                state=TrialState.COMPLETE,
                values=values,
                params={"x": 0.5},
                distributions={"x": FloatDistribution(0, 1)},
                user_attrs={"rungs": [early, {"metrics": dict(zip(names, values, strict=True))}]},
            )
        )
    history = [p.hypervolume for p in hypervolume_history(study)]
    # by hand: robust normalised (0.9 - r) / 0.4, latency (l - 1) / 3, reference 1.1
    first = (1.1 - 0.0) * (1.1 - 1.0)
    second = first + (1.1 - 1.0) * (1.0 - 0.0)
    third = second + (1.0 - 0.5) * (1.0 - 1 / 3)  # the part neither earlier box covers
    assert history == pytest.approx([first, second, third], rel=1e-12)


def test_the_service_answers_the_history(views, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from search.service import ServiceSettings, create_app

    settings = ServiceSettings.build(views["url"], tmp_path / "data", port=8765)
    client = TestClient(create_app(settings), base_url="http://127.0.0.1:8765")
    response = client.get(f"/api/studies/{STUDY}/hypervolume")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["history"] == [p.to_dict() for p in hypervolume_history(load(views))]
    assert list(body["objectives"]) == ["robust_accuracy", "latency_ms", "size_bytes"]
    assert client.get("/api/studies/nope/hypervolume").status_code == 404


def test_the_export_holds_the_page_and_the_history_plot(views) -> None:
    export = views["export"]
    assert (export / "hv_history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (export / "pareto.html").read_text()
    assert "<script src" not in page and "http" not in page.split("<script")[1]
    # the shared plot helpers are inlined, and no placeholder is left
    assert "function ticks(low, high)" in page and "{{" not in page
    # an export holding the new files is still recognised as one (replaced with --force)
    rc, _, err = run_cli(
        ["-q", "pareto", "--storage", views["url"], "--export", str(export), "--force"]
    )
    assert rc == 0, err


def _browser(playwright):
    return playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
    )


def _points(page) -> list[dict[str, Any]]:
    return page.eval_on_selector_all(
        "#plot circle",
        "nodes => nodes.map(n => ({trial: Number(n.dataset.trial), kind: n.getAttribute('class'),"
        " cx: Number(n.getAttribute('cx')), cy: Number(n.getAttribute('cy'))}))",
    )


def test_pareto_html_shows_every_trial_and_switches_axes(views) -> None:
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    study = load(views)
    complete = {t.number: t for t in study.get_trials(states=(TrialState.COMPLETE,))}
    front = sorted(t.number for t in study.best_trials)
    rows = json.loads((views["export"] / "pareto.json").read_text())
    tested = {row["trial"]: row for row in rows}
    with sync_api.sync_playwright() as playwright:
        browser = _browser(playwright)
        try:
            page = browser.new_page()
            requests: list[str] = []
            page.on("request", lambda request: requests.append(request.url))
            page.goto((views["export"] / "pareto.html").as_uri())
            page.wait_for_selector("#plot circle")
            points = _points(page)
            assert sorted(p["trial"] for p in points) == sorted(complete)
            assert sorted(p["trial"] for p in points if p["kind"] == "member") == front
            assert page.input_value("#x-axis") == "latency_ms"
            assert page.input_value("#y-axis") == "robust_accuracy"
            for p in points:  # higher robust accuracy is drawn higher (smaller cy)
                for q in points:
                    a = complete[p["trial"]].user_attrs["metrics"]["robust_accuracy"]
                    b = complete[q["trial"]].user_attrs["metrics"]["robust_accuracy"]
                    assert (a > b) <= (p["cy"] < q["cy"])

            member = next(p for p in points if p["kind"] == "member")
            page.hover(f'#plot circle[data-trial="{member["trial"]}"]')
            tip = page.locator("#tooltip")
            tip.wait_for(state="visible", timeout=5_000)
            text = tip.inner_text()
            assert f"trial {member['trial']} (front)" in text
            assert "robust_accuracy = " in text and "test_robust_accuracy_final = " in text
            assert all(f"{name} = " in text for name in complete[member["trial"]].params)

            page.select_option("#x-axis", "size_bytes")
            assert "size_bytes" in page.text_content("#x-label")
            after = {p["trial"]: p["cx"] for p in _points(page)}
            sizes = {n: t.user_attrs["metrics"]["size_bytes"] for n, t in complete.items()}
            by_x = sorted(after, key=after.get)
            assert [sizes[n] for n in by_x] == sorted(sizes.values())

            page.select_option("#y-axis", "test_robust_accuracy_final")
            assert "test split, final attack" in page.text_content("#y-label")
            members = _points(page)
            assert sorted(p["trial"] for p in members) == front  # test numbers: members only
            ys = {p["trial"]: p["cy"] for p in members}
            by_y = sorted(ys, key=ys.get, reverse=True)  # bottom to top
            finals = [tested[n]["test_robust_accuracy_final"] for n in by_y]
            assert finals == sorted(finals)
            assert all(url.startswith("file://") for url in requests), requests
        finally:
            browser.close()


def test_the_service_page_draws_the_history(views) -> None:
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    from service_harness import Service

    history = hypervolume_history(load(views))
    service = Service(views["root"]).start()
    try:
        with sync_api.sync_playwright() as playwright:
            browser = _browser(playwright)
            try:
                page = browser.new_page()
                page.goto(f"{service.url}/#study={STUDY}")
                page.wait_for_function(
                    f"document.querySelectorAll('#plot-hv circle.history').length == "
                    f"{len(history)}",
                    timeout=20_000,
                )
                drawn = page.eval_on_selector_all(
                    "#plot-hv circle.history",
                    "nodes => nodes.map(n => [Number(n.dataset.trial), "
                    "Number(n.dataset.hypervolume), Number(n.getAttribute('cy'))])",
                )
                assert [(t, v) for t, v, _ in drawn] == [(p.trial, p.hypervolume) for p in history]
                heights = [cy for _, _, cy in drawn]  # never going down: cy never grows
                assert all(a >= b for a, b in zip(heights, heights[1:], strict=False))
            finally:
                browser.close()
    finally:
        service.close()
