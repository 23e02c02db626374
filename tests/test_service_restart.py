"""The service can die and come back: studies live in the storage and their own processes.

A `search serve` is killed with SIGKILL while a study it started is running. A new
service on the same storage and data folder shows the study as running with its
finished trials unchanged, the page lists it again, and that new service (not the
parent of the study's process) can stop it, resume it, and stop it again.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from service_harness import Service, fast_config, pretrain_base, wait_until

from search.core import start_ticks

pytestmark = pytest.mark.slow
NAME = "survivor"


def complete_rows(service: Service) -> list[dict]:
    rows = service.client.get(f"/api/studies/{NAME}/trials").json()["trials"]
    return [r for r in rows if r["state"] == "COMPLETE"]


def test_a_killed_service_comes_back_with_its_study_which_it_can_stop_and_resume(
    tmp_path: Path,
) -> None:
    pretrain_base(fast_config("warm-up"))
    first = Service(tmp_path).start()
    try:
        assert (
            first.client.post("/api/studies", json=fast_config(NAME, trials=40)).status_code == 201
        )
        wait_until(
            lambda: (
                first.client.get(f"/api/studies/{NAME}").status_code == 200
                and first.study(NAME)["trials"]["complete"] >= 1
            ),
            240,
            "a first trial",
        )
        before = complete_rows(first)
        pid = first.study(NAME)["processes"][0]["pid"]
        first.kill()
    finally:
        first.close()
    assert start_ticks(pid) is not None, "the study's process died with the service"

    second = Service(tmp_path).start()  # same storage and data folder, another port
    try:
        study = second.study(NAME)
        assert study["state"] == "running" and study["started_by_service"]
        assert [p["pid"] for p in study["processes"]] == [pid]
        after = complete_rows(second)
        assert after[: len(before)] == before  # finished trials intact, exactly
        _page_lists(second)

        stopped = second.client.post(f"/api/studies/{NAME}/stop")
        assert stopped.status_code == 200, stopped.text
        assert stopped.json()["state"] == "stopped"
        assert stopped.json()["trials"]["running"] == 0
        assert start_ticks(pid) is None  # the process is gone
        trials = optuna.load_study(study_name=NAME, storage=second.storage).trials
        assert not [t for t in trials if t.state == TrialState.RUNNING]
        assert second.client.post(f"/api/studies/{NAME}/stop").status_code == 409

        finished = stopped.json()["trials"]["finished"]
        resumed = second.client.post(f"/api/studies/{NAME}/resume")
        assert resumed.status_code == 200, resumed.text
        assert resumed.json()["state"] in ("starting", "running")
        assert second.client.post(f"/api/studies/{NAME}/resume").status_code == 409
        wait_until(
            lambda: second.study(NAME)["trials"]["finished"] > finished,
            240,
            "a trial after the resume",
        )
        again = second.client.post(f"/api/studies/{NAME}/stop")  # this instance's child
        assert again.status_code == 200 and again.json()["state"] == "stopped", again.text
        processes = again.json()["processes"]
        assert len(processes) == 2 and all("exit_code" in p for p in processes)
        assert complete_rows(second)[: len(before)] == before
    finally:
        second.close()


def _page_lists(service: Service) -> None:
    """The page, served by the new instance, shows the study as running again."""
    chromium = shutil.which("chromium")
    sync_api = pytest.importorskip("playwright.sync_api") if chromium else None
    if sync_api is None:
        return  # test_service.py skips its browser test with the reason
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=["--no-sandbox"]
        )
        try:
            page = browser.new_page()
            page.goto(service.url + "/")
            row = page.locator(f'#studies tr[data-study="{NAME}"]')
            row.wait_for(timeout=20_000)
            assert row.get_attribute("data-state") == "running"
        finally:
            browser.close()
