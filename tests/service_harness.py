"""A real `search serve` for the service tests: a subprocess on a free loopback port.

Importable as `service_harness` because pytest puts tests/ on sys.path. The service
runs exactly as a user starts it (`python -m search.cli serve ...`), on a SQLite file
under the test's tmp_path, and starts real `search run` processes for the studies the
tests submit; nothing is mocked.
"""

from __future__ import annotations

import copy
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

SEARCH = [sys.executable, "-m", "search.cli"]

# A study of a few seconds a trial on 2 busy cores: small validation and test subsets,
# short fine-tuning, a short final attack (the export re-assesses the front with it).
FAST: dict[str, Any] = {
    "trials": 2,
    "seed": 0,
    "device": "cpu",
    "warm_start": 0,
    "data": {"val_samples": 100, "test_samples": 100},
    "model": {"base_epochs": 3},
    "space": {"epochs": [0, 1], "epsilon": [0.0, 0.1]},
    "finetune": {"steps": 2, "samples_per_epoch": 256},
    "evaluation": {
        "epsilon": 0.1,
        "steps": 2,
        "step_size": 0.07,
        "final_steps": 3,
        "final_restarts": 1,
    },
    "sanity": {"steps_factor": 2},
    "latency": {"warmup": 1, "repeats": 3, "int8": False},
}


def fast_config(study: str, trials: int = 2) -> dict[str, Any]:
    return {**copy.deepcopy(FAST), "study": study, "trials": trials}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class Service:
    """One `search serve` process and an HTTP client for it."""

    def __init__(
        self,
        root: Path,
        host: str = "127.0.0.1",
        token: str | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.root = root
        self.storage = f"sqlite:///{root / 'studies.db'}"
        self.data_dir = root / "service-data"
        self.host = host
        self.token = token
        self.extra = extra
        self.process: subprocess.Popen | None = None
        self.port = free_port(host)
        self.url = f"http://{host}:{self.port}"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        # no kept-alive connections: one left idle past uvicorn's keep-alive timeout (5 s,
        # e.g. while a test runs a CLI subprocess) can be closed by the server just as the
        # next request goes out on it, and httpx does not resend a POST
        self.client = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=300,
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    def start(self) -> Service:
        args = [
            *SEARCH,
            "serve",
            "--storage",
            self.storage,
            "--data-dir",
            str(self.data_dir),
            "--host",
            self.host,
            "--port",
            str(self.port),
            *self.extra,
        ]
        if self.token:
            args += ["--token", self.token]
        self.log = open(self.root / f"serve-{self.port}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            args, cwd=self.root, stdout=self.log, stderr=subprocess.STDOUT, env=os.environ.copy()
        )
        wait_until(self._ready, 60, f"the service on {self.url}", interval=0.3)
        return self

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(
                f"search serve exited with {self.process.returncode}: {self.log_text()[-2000:]}"
            )
        try:
            return self.client.get("/api/service").status_code == 200
        except httpx.TransportError:
            return False

    def log_text(self) -> str:
        return (self.root / f"serve-{self.port}.log").read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no shutdown code of the service runs."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def close(self) -> None:
        """Stop every study the service still runs, then the service itself."""
        if self.process and self.process.poll() is None:
            try:
                for study in self.client.get("/api/studies", timeout=30).json():
                    if study["state"] in ("running", "starting") and study["started_by_service"]:
                        self.client.post(f"/api/studies/{study['name']}/stop", timeout=60)
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.client.close()
        self.log.close()

    def study(self, name: str) -> dict[str, Any]:
        response = self.client.get(f"/api/studies/{name}")
        assert response.status_code == 200, response.text
        return response.json()

    def wait_state(self, name: str, states: tuple[str, ...], timeout: float = 240) -> dict:
        def reached() -> dict | None:
            study = self.study(name)
            if study["state"] == "failed":
                raise AssertionError(f"study {name} failed: {study.get('log_tail')}")
            return study if study["state"] in states else None

        return wait_until(reached, timeout, f"study {name} to be {' or '.join(states)}")


def pretrain_base(config: dict[str, Any]) -> None:
    """Train (and cache) the base model once, so concurrent studies do not each train it."""
    from search.study import StudySetup, config_from_dict

    StudySetup.build(config_from_dict(copy.deepcopy(config)))
