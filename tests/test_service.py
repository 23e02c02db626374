"""`search serve` end to end: a real server, real studies, a real browser, real fuzzing.

One service (a `search serve` subprocess on a free port, SQLite under tmp_path) serves
the whole module. Two studies run side by side: one submitted through the API, one
started by `search run` outside the service on the same storage. The tests then
load the service while both run, read both studies' trials and fronts, download
exports, try what must be refused, drive the web page in headless Chromium, and let
schemathesis generate requests from the service's own OpenAPI spec.
"""

from __future__ import annotations

import io
import json
import shutil
import signal
import subprocess
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from service_harness import SEARCH, Service, fast_config, pretrain_base, wait_until

pytestmark = pytest.mark.slow

API_STUDY = "api-study"
CLI_STUDY = "cli-study"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Service:
    pretrain_base(fast_config("warm-up"))
    running = Service(tmp_path_factory.mktemp("service")).start()
    yield running
    running.close()


@pytest.fixture(scope="module")
def studies(service: Service) -> dict[str, Any]:
    """Two studies of 3 trials running at once: through the API, and by `search run`."""
    response = service.client.post("/api/studies", json=fast_config(API_STUDY, trials=3))
    assert response.status_code == 201, response.text
    assert response.json()["state"] in ("starting", "running")
    config = service.root / "outside.yaml"
    config.write_text(yaml.safe_dump(fast_config(CLI_STUDY, trials=3)))
    log = open(service.root / "outside.log", "wb")  # noqa: SIM115
    outside = subprocess.Popen(
        [*SEARCH, "run", str(config), "--storage", service.storage],
        cwd=service.root,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    yield {"outside": outside}
    if outside.poll() is None:
        outside.send_signal(signal.SIGINT)
        outside.wait(timeout=60)
    log.close()


def finished(service: Service, studies: dict[str, Any]) -> None:
    """Both studies ran their budget; the outside `search run` exited cleanly."""
    service.wait_state(API_STUDY, ("finished",))
    assert studies["outside"].wait(timeout=300) == 0, (service.root / "outside.log").read_text()[
        -2000:
    ]


def test_fifty_concurrent_status_and_front_requests_while_two_studies_run(
    service: Service, studies: dict[str, Any]
) -> None:
    for name in (API_STUDY, CLI_STUDY):
        wait_until(
            lambda n=name: (
                service.client.get(f"/api/studies/{n}").status_code == 200
                and service.study(n)["state"] == "running"
            ),
            240,
            f"{name} to run",
        )
    paths = [
        f"/api/studies/{name}{suffix}"
        for name in (API_STUDY, CLI_STUDY)
        for suffix in ("", "/front")
    ]
    bursts_while_both_ran = 0
    with ThreadPoolExecutor(max_workers=50) as pool:
        for _ in range(3):
            # the burst starts while both run (a quick machine may end them during it)
            both_ran = [service.study(n)["state"] for n in (API_STUDY, CLI_STUDY)] == [
                "running"
            ] * 2
            started = time.monotonic()
            responses = list(pool.map(lambda i: service.client.get(paths[i % 4]), range(50)))
            took = time.monotonic() - started
            assert [r.status_code for r in responses] == [200] * 50, [
                r.text for r in responses if r.status_code != 200
            ][:3]
            assert took < 60, f"50 concurrent requests took {took:.1f} s"
            fronts = [r.json() for r in responses if r.request.url.path.endswith("/front")]
            assert all(isinstance(f["members"], list) for f in fronts)
            bursts_while_both_ran += both_ran
    assert bursts_while_both_ran >= 1, "the studies finished before the load was applied"
    finished(service, studies)
    for name in (API_STUDY, CLI_STUDY):
        study = service.study(name)
        assert study["trials"]["failed"] == 0, service.client.get(
            f"/api/studies/{name}/trials"
        ).json()
        assert study["trials"]["complete"] == 3


def test_a_submitted_study_runs_to_its_end_and_shows_trials_front_and_checks(
    service: Service, studies: dict[str, Any]
) -> None:
    finished(service, studies)
    study = service.study(API_STUDY)
    assert study["state"] == "finished" and study["started_by_service"]
    assert study["trials"] == {
        "complete": 3,
        "failed": 0,
        "running": 0,
        "waiting": 0,
        "pruned": 0,
        "finished": 3,
        "total": 3,
    }
    assert study["objectives"] == ["robust_accuracy", "latency_ms", "size_bytes"]
    assert study["elapsed_s"] > 0 and study["left_s"] is None
    assert {c["name"] for c in study["sanity_base"]} >= {"large-epsilon"}
    trials = service.client.get(f"/api/studies/{API_STUDY}/trials").json()["trials"]
    assert [t["trial"] for t in trials] == [0, 1, 2]
    assert all(t["state"] == "COMPLETE" and 0 <= t["robust_accuracy"] <= 1 for t in trials)
    assert study["best"]["robust_accuracy"] == pytest.approx(
        max(t["robust_accuracy"] for t in trials)
    )
    front = service.client.get(f"/api/studies/{API_STUDY}/front").json()
    assert front["assessed"] is False and 1 <= len(front["members"]) <= 3
    by_number = {t["trial"]: t for t in trials}
    for member in front["members"]:
        ties = {k: member.pop(k) for k in ("latency_resolved", "latency_ties")}
        assert ties["latency_resolved"] in (0, 1)  # the front's own columns, then
        assert member == by_number[member["trial"]]  # the same row as in the trials table
    assert study["front_size"] == len(front["members"])
    stored = optuna.load_study(study_name=API_STUDY, storage=service.storage)
    assert [m["trial"] for m in front["members"]] == sorted(t.number for t in stored.best_trials)


def test_a_study_started_by_search_run_elsewhere_is_listed_with_its_trials(
    service: Service, studies: dict[str, Any]
) -> None:
    finished(service, studies)
    listed = {s["name"]: s for s in service.client.get("/api/studies").json()}
    assert set(listed) >= {API_STUDY, CLI_STUDY}
    outside = listed[CLI_STUDY]
    assert outside["state"] == "finished" and not outside["started_by_service"]
    stored = optuna.load_study(study_name=CLI_STUDY, storage=service.storage)
    rows = service.client.get(f"/api/studies/{CLI_STUDY}/trials").json()["trials"]
    assert [(r["trial"], r["robust_accuracy"]) for r in rows] == [
        (t.number, t.user_attrs["metrics"]["robust_accuracy"]) for t in stored.trials
    ]
    # the service does not own it, so it cannot stop it; its budget is spent
    assert service.client.post(f"/api/studies/{CLI_STUDY}/stop").status_code == 409
    resumed = service.client.post(f"/api/studies/{CLI_STUDY}/resume")
    assert resumed.status_code == 409 and "spent its budget of 3" in resumed.json()["detail"]


def test_front_member_and_whole_front_download_as_zips_of_the_export(
    service: Service, studies: dict[str, Any], tmp_path: Path
) -> None:
    from search import load_model

    finished(service, studies)
    members = service.client.get(f"/api/studies/{API_STUDY}/front").json()["members"]
    number = members[0]["trial"]
    response = service.client.get(f"/api/studies/{API_STUDY}/trials/{number}/export.zip")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    top = f"{API_STUDY}-trial-{number}"
    names = ["metrics.json", "model.onnx", "model.safetensors", "recipe.yaml"]
    if f"{top}/model.int8.onnx" in archive.namelist():  # a member with layers <= 8 bits
        names.append("model.int8.onnx")
    assert sorted(archive.namelist()) == sorted(f"{top}/{name}" for name in names)
    archive.extractall(tmp_path)
    metrics = json.loads((tmp_path / top / "metrics.json").read_text())
    assert metrics["validation"]["robust_accuracy"] == pytest.approx(members[0]["robust_accuracy"])
    assert 0 <= metrics["test"]["robust_accuracy_final"] <= 1
    model = load_model(tmp_path / top)
    import torch

    assert model(torch.rand(2, 1, 8, 8)).shape == (2, 10)

    whole = service.client.get(f"/api/studies/{API_STUDY}/export.zip")
    assert whole.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(whole.content)).namelist()
    assert f"{API_STUDY}-front/pareto.json" in names
    for member in members:
        assert f"{API_STUDY}-front/trial-{member['trial']}/model.safetensors" in names
    # the export is the study's own, under its folder, and the assessment is stored
    exports = service.data_dir / "studies" / API_STUDY / "exports"
    assert [p.name for p in exports.iterdir() if p.is_dir()][0].startswith("front-")
    assessed = service.client.get(
        f"/api/studies/{API_STUDY}/front", params={"assess": "true"}
    ).json()
    assert assessed["assessed"] and all(
        0 <= m["test_robust_accuracy"] <= 1 for m in assessed["members"]
    )

    not_member = {0, 1, 2} - {m["trial"] for m in members}
    if not_member:
        missing = service.client.get(
            f"/api/studies/{API_STUDY}/trials/{min(not_member)}/export.zip"
        )
        assert missing.status_code == 404 and "not on the front" in missing.json()["detail"]
    assert service.client.get(f"/api/studies/{API_STUDY}/trials/99/export.zip").status_code == 404


def test_bad_configs_get_the_cli_message_as_422_and_start_nothing(
    service: Service, studies: dict[str, Any], tmp_path: Path
) -> None:
    # `studies`: the API's study exists, so submitting it again must be refused (409)
    before = sorted(p.name for p in (service.data_dir / "studies").iterdir())
    bad = {"study": "typo", "trails": 3}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    cli = subprocess.run(
        [*SEARCH, "run", str(tmp_path / "bad.yaml"), "--storage", f"sqlite:///{tmp_path / 'x.db'}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert cli.returncode == 2
    response = service.client.post("/api/studies", json=bad)
    assert response.status_code == 422
    assert f"search: error: {response.json()['detail']}" == cli.stderr.strip()

    refused = [
        ({"study": "p1", "model": {"name": "os:system"}}, "'model.name'", "--allow-plugins"),
        (
            {"study": "p2", "objectives": ["robust_accuracy", "mypkg.energy:energy_uj"]},
            "'objectives'",
            "--allow-plugins",
        ),
        ({"study": "p3", "data": {"name": "mypkg.data:load"}}, "'data.name'", "import path"),
        ({"study": "p4", "space": {"factory": "mypkg.space:s"}}, "'space.factory'", "import"),
        ({"study": "p5", "artifacts": "/tmp/elsewhere"}, "'artifacts'", "on the server"),
        (
            {"study": "p6", "model": {"checkpoint": "/etc/passwd"}},
            "'model.checkpoint'",
            "on the server",
        ),
        ({"study": "p7", "data": {"download": True}}, "'data.download'", "download"),
        ({"study": "p8", "storage": "sqlite:////tmp/other.db"}, "'storage'", "leave the field"),
        ({"study": "../x"}, "'study'", "letters, digits"),
        ({"study": "p9", "trials": 0}, "'trials'", "> 0"),
    ]
    for config, field, words in refused:
        response = service.client.post("/api/studies", json=config)
        assert response.status_code == 422, (config, response.text)
        detail = response.json()["detail"]
        assert field in detail and words in detail and "\n" not in detail, detail
    yaml_bad = service.client.post(
        "/api/studies", content=b"study: [unclosed", headers={"Content-Type": "application/yaml"}
    )
    assert yaml_bad.status_code == 422 and "not valid YAML" in yaml_bad.json()["detail"]
    listing = service.client.post("/api/studies", json=[1, 2])
    assert listing.status_code == 422 and "mapping" in listing.json()["detail"]
    text = service.client.post("/api/studies", content=b"x", headers={"Content-Type": "text/plain"})
    # a media type that is neither JSON nor YAML is 415 (issue 16: a cross-site form or a
    # typeless no-cors body must not reach the intake at all)
    assert text.status_code == 415 and "Content-Type" in text.json()["detail"]
    huge = service.client.post("/api/studies", json={"study": "big", "pad": "x" * 2_000_000})
    assert huge.status_code == 413

    def chunks():
        for _ in range(40):
            yield b" " * 50_000

    chunked = service.client.post(
        "/api/studies", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert chunked.status_code == 413
    again = service.client.post("/api/studies", json=fast_config(API_STUDY))
    assert again.status_code == 409 and "already" in again.json()["detail"]
    assert sorted(p.name for p in (service.data_dir / "studies").iterdir()) == before


def test_paths_cannot_leave_the_service_folders(service: Service) -> None:
    attempts = [
        "/api/studies/..%2F..%2Fetc%2Fpasswd/export.zip",
        "/api/studies/%2e%2e/export.zip",
        "/api/studies/..%5C..%5Cx/trials/0/export.zip",
        f"/api/studies/{API_STUDY}/trials/-1/export.zip",
        f"/api/studies/{API_STUDY}/trials/..%2F0/export.zip",
        "/static/..%2F_app.py",
        "/static/%2e%2e/_routes.py",
        "/static/../../search/service/_app.py",
    ]
    for path in attempts:
        response = service.client.get(path)
        assert response.status_code in (404, 422), (path, response.status_code)
        assert b"import" not in response.content, path
    assert service.client.get("/static/app.js").status_code == 200
    plot = service.client.get("/plot.js")  # the plot helpers pareto.html inlines
    assert plot.status_code == 200 and "function svgEl" in plot.text


def test_the_page_lists_studies_shows_a_front_and_downloads_a_member(
    service: Service, studies: dict[str, Any], tmp_path: Path
) -> None:
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    finished(service, studies)
    summary = service.study(API_STUDY)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            page = browser.new_page(accept_downloads=True)
            page.goto(service.url + "/")
            row = page.locator(f'#studies tr[data-study="{API_STUDY}"]')
            row.wait_for(timeout=20_000)
            assert page.locator(f'#studies tr[data-study="{CLI_STUDY}"]').count() == 1
            assert "finished" in row.inner_text() and "3/3" in row.inner_text()
            page.locator("#submit-box summary").click()  # a bad config: the CLI's message
            page.fill("#config-text", "study: from-page\ntrails: 3\n")
            page.click("#submit-button")
            message = page.locator("#submit-message.error")
            message.wait_for(timeout=20_000)
            assert "unknown config field 'trails'" in message.inner_text()
            row.click()
            page.locator("#study-title").filter(has_text=API_STUDY).wait_for(timeout=20_000)
            members = page.locator("#plot-latency circle.member")
            page.wait_for_function(
                f"document.querySelectorAll('#plot-latency circle.member').length == "
                f"{summary['front_size']}",
                timeout=20_000,
            )
            assert page.locator("#plot-size circle.member").count() == summary["front_size"]
            assert page.locator("#trials-table tbody tr").count() == 3
            assert page.locator("#sanity-table tbody tr").count() == len(summary["sanity_base"])
            first = members.first
            first.hover()
            tooltip = page.locator("#tooltip")
            tooltip.wait_for(state="visible", timeout=5_000)
            assert "robust_accuracy =" in tooltip.inner_text()
            assert "epochs =" in tooltip.inner_text()  # the member's params
            number = int(first.get_attribute("data-trial"))
            first.click()
            link = page.locator("#member-download")
            link.wait_for(state="visible", timeout=5_000)
            assert link.get_attribute("href") == (
                f"/api/studies/{API_STUDY}/trials/{number}/export.zip"
            )
            assert page.locator("#member-title").inner_text() == f"Trial {number}"
            with page.expect_download(timeout=240_000) as download:
                link.click()
            saved = tmp_path / "member.zip"
            download.value.save_as(saved)
            assert (
                f"{API_STUDY}-trial-{number}/model.safetensors" in zipfile.ZipFile(saved).namelist()
            )
        finally:
            browser.close()


def test_schemathesis_finds_no_server_error(service: Service, studies: dict[str, Any]) -> None:
    """Generated requests from the service's own OpenAPI spec: none answered with a 5xx."""
    finished(service, studies)  # generated configs may start studies: keep ours apart
    schemathesis = Path(SEARCH[0]).parent / "schemathesis"
    if not schemathesis.exists():
        pytest.skip("pip install schemathesis")
    done = subprocess.run(
        [
            str(schemathesis),
            "run",
            f"{service.url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "4",
            "--workers",
            "1",
            "--warnings",
            "off",
            "--request-timeout",
            "120",
            "--seed",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=service.root,
    )
    assert done.returncode == 0, done.stdout[-4000:]
    assert "passed" in done.stdout
    for study in service.client.get("/api/studies").json():  # what generated configs started
        if study["state"] in ("running", "starting") and study["started_by_service"]:
            assert service.client.post(f"/api/studies/{study['name']}/stop").status_code == 200
