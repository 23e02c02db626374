"""The service's safety rules: loopback by default, a token anywhere else, configs as data.

The token is checked by a real server bound to 127.0.0.2 (a loopback address that is
not the default, so the token is required there); the rules on submitted configs are
checked as functions here and over HTTP in test_service.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest
from service_harness import SEARCH, Service

from search.core import BadInput
from search.service import check_binding
from search.service._intake import check_trusted, import_paths, parse_body

STORAGE = "sqlite:////tmp/service-test.db"


@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.2", "192.0.2.1", "::"])
def test_binding_anywhere_but_loopback_needs_a_token(host: str) -> None:
    with pytest.raises(BadInput, match="needs a token.*--token or \\$AER_SEARCH_TOKEN"):
        check_binding(host, None)
    check_binding(host, "secret")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_loopback_binds_without_a_token(host: str) -> None:
    check_binding(host, None)


def test_serve_refuses_a_public_address_without_token_and_writes_nothing(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "AER_SEARCH_TOKEN"}
    done = subprocess.run(
        [*SEARCH, "serve", "--host", "0.0.0.0", "--storage", f"sqlite:///{tmp_path / 's.db'}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--host 0.0.0.0" in lines[0] and "token" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_serve_refuses_a_taken_port(tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*SEARCH, "serve", "--port", str(port), "--storage", f"sqlite:///{tmp_path / 's.db'}"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in done.stderr


def test_serve_refuses_a_ray_address_without_a_job_api_and_writes_nothing(tmp_path) -> None:
    done = subprocess.run(
        [
            *SEARCH,
            "serve",
            "--ray-address",
            "http://127.0.0.1:1",
            "--storage",
            f"sqlite:///{tmp_path / 's.db'}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--ray-address" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_every_request_needs_the_token_off_the_default_address(tmp_path: Path) -> None:
    service = Service(tmp_path, host="127.0.0.2", token="s3cret-token")
    service.start()
    try:
        bare = {"headers": {"Authorization": ""}}
        for path in (
            "/",
            "/api/studies",
            "/openapi.json",
            "/static/app.js",
            "/api/studies/x/export.zip",
        ):
            response = service.client.get(path, **bare)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"] == "Bearer"
        assert service.client.post("/api/studies", json={"study": "x"}, **bare).status_code == 401
        wrong = service.client.get("/api/studies", headers={"Authorization": "Bearer s3cret-tokeN"})
        assert wrong.status_code == 401
        assert service.client.get("/api/studies").status_code == 200  # Bearer s3cret-token
        assert service.client.get("/openapi.json").status_code == 200
        # a browser: /?token=... sets a SameSite cookie, then the page and the API open
        login = service.client.get("/", params={"token": "s3cret-token"}, **bare)
        assert login.status_code == 303
        cookie = login.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        token_cookie = {"Cookie": cookie.split(";")[0], "Authorization": ""}
        assert service.client.get("/", headers=token_cookie).status_code == 200
        assert service.client.get("/api/studies", headers=token_cookie).status_code == 200
        assert service.client.get("/", params={"token": "nope"}, **bare).status_code == 401
    finally:
        service.close()


@pytest.mark.parametrize(
    "raw, field",
    [
        ({"objectives": ["robust_accuracy", "pkg.mod:fn"]}, "objectives"),
        ({"model": {"name": "pkg.models:net"}}, "model.name"),
        ({"data": {"name": "pkg.data:load"}}, "data.name"),
        ({"space": {"factory": "anything"}}, "space.factory"),
    ],
)
def test_import_paths_are_refused_unless_plugins_are_allowed(raw: dict, field: str) -> None:
    assert [f for f, _ in import_paths(raw)] == [field]
    with pytest.raises(BadInput, match=f"'{field}'.*--allow-plugins"):
        check_trusted(raw, allow_plugins=False, storage=STORAGE)
    check_trusted(raw, allow_plugins=True, storage=STORAGE)


@pytest.mark.parametrize(
    "raw, field",
    [
        ({"artifacts": "/tmp/x"}, "artifacts"),
        ({"model": {"checkpoint": "/etc/passwd"}}, "model.checkpoint"),
        ({"data": {"root": "/"}}, "data.root"),
        ({"ray": {"storage_path": "/"}}, "ray.storage_path"),
        ({"data": {"download": True}}, "data.download"),
    ],
)
def test_server_paths_and_downloads_are_refused_unless_trusted(raw: dict, field: str) -> None:
    with pytest.raises(BadInput, match=f"'{field}'"):
        check_trusted(raw, allow_plugins=False, storage=STORAGE)
    check_trusted(raw, allow_plugins=True, storage=STORAGE)


def test_a_config_may_name_only_the_service_storage() -> None:
    check_trusted({"storage": STORAGE}, allow_plugins=False, storage=STORAGE)
    with pytest.raises(BadInput, match="'storage'"):
        check_trusted({"storage": "sqlite:////tmp/other.db"}, allow_plugins=True, storage=STORAGE)


def test_bodies_parse_as_json_or_yaml_and_nothing_else() -> None:
    assert parse_body(b'{"study": "a"}', "application/json") == {"study": "a"}
    assert parse_body(b"study: a\ntrials: 2\n", "application/yaml; charset=utf-8") == {
        "study": "a",
        "trials": 2,
    }
    for body, kind, words in [
        (b"\xff", "application/json", "UTF-8"),
        (b"[1]", "application/json", "mapping"),
        (b"{", "application/json", "not valid JSON"),
        (b"a: [", "text/yaml", "not valid YAML"),
        (b"a", "text/html", "Content-Type"),
    ]:
        with pytest.raises(BadInput, match=words):
            parse_body(body, kind)
