"""Forged requests, DNS rebinding and oversized asks: what another page or client may not do.

One tokenless `search serve` on 127.0.0.1 (the harness: a real process, real HTTP) with
`--max-runs 2` serves the module, and one long study ("victim") runs in it throughout.
A hostile page on a second local HTTP server (another origin) is loaded in a real
headless Chromium and tries to start a study and stop the victim; a page reached under
another host name (Chromium maps it to 127.0.0.1, as DNS rebinding would) tries to
read the study list. Every verdict is read from the service's side: its study list,
its data folder, the storage and the victim's process.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from service_harness import SEARCH, Service, fast_config, free_port, pretrain_base, wait_until

from search.core import start_ticks
from search.service import ServiceSettings, create_app
from search.service._guard import Guard

pytestmark = pytest.mark.slow

VICTIM = "victim"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# what the hostile page runs: a config as a typeless Blob with no-cors (no preflight, and
# the no-cors fetch resolves with an opaque response once the service has answered), a
# bodiless no-cors stop, and a CORS JSON submission (which needs a preflight)
ATTACK_JS = """
async ([service, victim, config]) => {
  const out = {};
  const attempt = async (key, path, options) => {
    try {
      const response = await fetch(service + path, options);
      out[key] = response.type;
    } catch (error) {
      out[key] = "error: " + error.message;
    }
  };
  await attempt("blob", "/api/studies",
    {method: "POST", mode: "no-cors", body: new Blob([JSON.stringify(config)])});
  await attempt("stop", "/api/studies/" + victim + "/stop", {method: "POST", mode: "no-cors"});
  await attempt("cors", "/api/studies", {method: "POST", body: JSON.stringify(config),
    headers: {"Content-Type": "application/json"}});
  return out;
}
"""


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The service with one long study running (one of its two run slots)."""
    pretrain_base(fast_config("warm-up"))
    running = Service(tmp_path_factory.mktemp("forgery"), extra=("--max-runs", "2")).start()
    try:
        created = running.client.post("/api/studies", json=fast_config(VICTIM, trials=1000))
        assert created.status_code == 201, created.text
        running.wait_state(VICTIM, ("running",))
        yield running
    finally:
        running.close()


def own_origin(service: Service) -> dict[str, str]:
    return {"Origin": f"http://127.0.0.1:{service.port}"}


def assert_not_started(service: Service, name: str) -> None:
    """Nothing of `name` anywhere: not listed, no folder, not in the storage."""
    assert service.client.get(f"/api/studies/{name}").status_code == 404
    assert name not in {s["name"] for s in service.client.get("/api/studies").json()}
    assert not (service.data_dir / "studies" / name).exists()
    names = optuna.get_all_study_names(storage=service.storage)
    assert name not in names


def assert_victim_runs(service: Service) -> None:
    """The victim still runs: its state, its process alive, no stop recorded."""
    study = service.study(VICTIM)
    assert study["state"] == "running", study
    assert study["stopped_at"] is None
    (process,) = study["processes"]
    assert "exit_code" not in process and start_ticks(process["pid"]) is not None


@pytest.fixture
def hostile_page(tmp_path: Path) -> Iterator[str]:
    """A page of another origin: a second HTTP server on another loopback port."""
    (tmp_path / "index.html").write_text("<!doctype html><title>cat pictures</title>")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    finally:
        server.shutdown()
        server.server_close()


def chromium(playwright: Any, *args: str) -> Any:
    return playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=["--no-sandbox", *args]
    )


def sync_playwright() -> Any:
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium)")
    return pytest.importorskip("playwright.sync_api", reason="pip install playwright")


def test_a_page_of_another_origin_can_neither_start_nor_stop_a_study(
    service: Service, hostile_page: str
) -> None:
    sync_api = sync_playwright()
    with sync_api.sync_playwright() as playwright:
        browser = chromium(playwright)
        try:
            page = browser.new_page()
            page.goto(hostile_page)
            config = fast_config("forged", trials=1)
            result = page.evaluate(ATTACK_JS, [service.url, VICTIM, config])
        finally:
            browser.close()
    # the no-cors requests reached the service and were answered (opaque: unreadable)
    assert result["blob"] == "opaque" and result["stop"] == "opaque", result
    assert result["cors"].startswith("error"), result  # the preflight is never granted
    assert_not_started(service, "forged")
    assert_victim_runs(service)


def test_a_page_reached_under_another_host_name_is_refused(service: Service) -> None:
    """DNS rebinding: Chromium resolves rebind.test to 127.0.0.1; the Host names it."""
    sync_api = sync_playwright()
    with sync_api.sync_playwright() as playwright:
        browser = chromium(playwright, "--host-resolver-rules=MAP rebind.test 127.0.0.1")
        try:
            page = browser.new_page()
            response = page.goto(f"http://rebind.test:{service.port}/api/studies")
            assert response is not None and response.status == 421
            assert VICTIM not in page.content()
            own = page.goto(f"{service.url}/api/studies")  # the service's own name still works
            assert own is not None and own.status == 200 and VICTIM in page.content()
        finally:
            browser.close()


def test_a_wrong_host_header_is_refused_and_the_own_names_are_not(service: Service) -> None:
    evil = {"Host": f"evil.example:{service.port}"}
    listing = service.client.get("/api/studies", headers=evil)
    assert listing.status_code == 421 and "Host" in listing.json()["detail"]
    assert VICTIM not in listing.text
    for path in ("/", "/openapi.json", "/static/app.js", f"/api/studies/{VICTIM}"):
        assert service.client.get(path, headers=evil).status_code == 421, path
    posted = service.client.post("/api/studies", json=fast_config("rebound"), headers=evil)
    assert posted.status_code == 421
    stopped = service.client.post(f"/api/studies/{VICTIM}/stop", headers=evil)
    assert stopped.status_code == 421
    wrong_port = {"Host": f"127.0.0.1:{service.port + 1}"}
    assert service.client.get("/api/studies", headers=wrong_port).status_code == 421
    for host in (f"localhost:{service.port}", f"127.0.0.1:{service.port}"):
        assert service.client.get("/api/studies", headers={"Host": host}).status_code == 200
    assert_not_started(service, "rebound")
    assert_victim_runs(service)


def test_a_foreign_origin_is_refused_even_with_a_json_body(service: Service) -> None:
    foreign = {"Origin": f"http://127.0.0.1:{service.port + 1}"}
    for origin in (foreign, {"Origin": "null"}, {"Origin": "http://evil.example"}):
        posted = service.client.post("/api/studies", json=fast_config("foreign"), headers=origin)
        assert posted.status_code == 403 and "Origin" in posted.json()["detail"], posted.text
        stopped = service.client.post(f"/api/studies/{VICTIM}/stop", headers=origin)
        assert stopped.status_code == 403
    cross_site = {"Sec-Fetch-Site": "cross-site"}
    assert service.client.post(f"/api/studies/{VICTIM}/stop", headers=cross_site).status_code == 403
    assert_not_started(service, "foreign")
    assert_victim_runs(service)


def test_a_body_that_is_not_json_or_yaml_is_refused_with_415(service: Service) -> None:
    body = json.dumps(fast_config("untyped")).encode()
    for headers in (
        {},  # what a typeless Blob sends
        {"Content-Type": "text/plain"},
        {"Content-Type": "application/x-www-form-urlencoded"},
        {"Content-Type": "multipart/form-data; boundary=x"},
    ):
        response = service.client.post("/api/studies", content=body, headers=headers)
        assert response.status_code == 415, (headers, response.text)
        detail = response.json()["detail"]
        assert "Content-Type" in detail and "application/json" in detail and "\n" not in detail
    # an empty form aimed at stop: a content type names a body, even an empty one
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert service.client.post(f"/api/studies/{VICTIM}/stop", headers=form).status_code == 415
    assert_not_started(service, "untyped")
    assert_victim_runs(service)


def test_oversized_asks_and_non_ascii_names_are_refused_naming_the_field(
    service: Service,
) -> None:
    refused = [
        ({"trials": 20_000}, "'trials'", "10000"),
        ({"model": {"base_epochs": 5000}}, "'model.base_epochs'", "1000"),
        ({"evaluation": {"final_steps": 10**7}}, "'evaluation.final_steps'", "<="),
        ({"finetune": {"steps": 10**6}}, "'finetune.steps'", "<="),
        ({"space": {"epochs": [0, 10**6]}}, "'space.epochs'", "<="),
    ]
    for change, field, words in refused:
        config = fast_config("huge")
        for key, value in change.items():
            config[key] = {**config[key], **value} if isinstance(value, dict) else value
        response = service.client.post("/api/studies", json=config)
        assert response.status_code == 422, (change, response.text)
        detail = response.json()["detail"]
        assert field in detail and words in detail and "\n" not in detail, detail
    assert_not_started(service, "huge")
    for name in ("stüdy", "研究", "a\u00b2"):  # isalnum() takes each of them
        response = service.client.post("/api/studies", json=fast_config(name))
        assert response.status_code == 422, (name, response.text)
        assert "'study'" in response.json()["detail"] and "ASCII" in response.json()["detail"]
        assert not (service.data_dir / "studies" / name).exists()
        assert name not in optuna.get_all_study_names(storage=service.storage)


def test_a_start_past_max_runs_is_refused_and_starts_nothing(service: Service) -> None:
    """The victim holds one of two slots; a same-origin JSON POST takes the other."""
    second = service.client.post(
        "/api/studies", json=fast_config("second", trials=40), headers=own_origin(service)
    )
    assert second.status_code == 201, second.text
    try:
        third = service.client.post("/api/studies", json=fast_config("third"))
        assert third.status_code == 429, third.text
        detail = third.json()["detail"]
        assert "--max-runs 2" in detail and "\n" not in detail
        assert_not_started(service, "third")
        info = service.client.get("/api/service").json()
        assert info["max_runs"] == 2 and info["max_trials"] == 10_000
    finally:
        stopped = service.client.post("/api/studies/second/stop", headers=own_origin(service))
        assert stopped.status_code == 200, stopped.text
    wait_until(lambda: service.study("second")["state"] == "stopped", 60, "second to stop")
    assert_victim_runs(service)


@pytest.mark.parametrize(
    "flags, named",
    [
        (("--port", "70000"), "--port"),
        (("--port", "0"), "--port"),
        (("--max-runs", "0"), "--max-runs"),
        (("--max-body", "10"), "--max-body"),
    ],
)
def test_serve_refuses_a_bad_flag_in_one_line_and_creates_nothing(
    tmp_path: Path, flags: tuple[str, ...], named: str
) -> None:
    done = subprocess.run(
        [*SEARCH, "serve", *flags, "--storage", f"sqlite:///{tmp_path / 's.db'}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert named in lines[0]
    assert list(tmp_path.iterdir()) == []


def handshake(app: Any, headers: dict[str, str], port: int, denial: bool = True) -> list[dict]:
    """Open a websocket on the ASGI app as uvicorn would; what the app sent back."""
    inbox = [{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1000}]
    sent: list[dict] = []

    async def receive() -> dict:
        return inbox.pop(0)

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "scheme": "ws",
        "path": "/ws",
        "raw_path": b"/ws",
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", port),
        "subprotocols": [],
        "extensions": {"websocket.http.response": {}} if denial else {},
        "state": {},
    }
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 30))
    return sent


def test_websockets_pass_the_same_host_origin_and_token_checks(tmp_path: Path) -> None:
    """uvicorn here has no websocket library, so the ASGI app is driven as uvicorn would."""
    port = free_port()
    settings = ServiceSettings.build(
        f"sqlite:///{tmp_path / 's.db'}", tmp_path / "data", port=port, token="s3cret"
    )
    service_app = create_app(settings)
    good = {"Host": f"127.0.0.1:{port}", "Authorization": "Bearer s3cret"}
    refused = [
        ({**good, "Authorization": ""}, 401),
        ({**good, "Host": f"evil.example:{port}"}, 421),
        ({**good, "Origin": "http://evil.example"}, 403),
        ({**good, "Origin": f"http://127.0.0.1:{port + 1}"}, 403),
    ]
    for headers, status in refused:
        sent = handshake(service_app, headers, port)
        assert sent[0]["type"] == "websocket.http.response.start", (headers, sent)
        assert sent[0]["status"] == status, (headers, sent)
        assert "detail" in json.loads(sent[1]["body"])
        fallback = handshake(service_app, headers, port, denial=False)  # server w/o extension
        assert [m["type"] for m in fallback] == ["websocket.close"]

    async def echo(scope: dict, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})

    guard = Guard(echo, settings.token, settings.max_body_bytes, settings.served_hosts())
    assert handshake(guard, good, port) == [{"type": "websocket.accept"}]
    own = {**good, "Origin": f"http://localhost:{port}"}
    assert handshake(guard, own, port) == [{"type": "websocket.accept"}]
    for headers, _ in refused:
        assert handshake(guard, headers, port)[0]["type"] != "websocket.accept", headers
