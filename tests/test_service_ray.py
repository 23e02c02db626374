"""`search serve --ray-address`: studies go to a real Ray cluster through its job API.

A Ray head with its dashboard (the job submission API) is started on 127.0.0.1; the
service submits a study as a Ray job (`search run ... --backend ray --address auto` on
the cluster) and reads its progress from the shared SQLite storage. Ray's job API needs
the dashboard's packages (`pip install 'aer-search[service-ray]'`, i.e. ray[default]);
without them this test is skipped with that reason.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from service_harness import Service, fast_config, free_port, pretrain_base, wait_until

# one Ray cluster at a time on the machine (pytest -n: one worker runs the group)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]
BIN = Path(sys.executable).parent


def dashboard_missing() -> str | None:
    for module in ("ray.job_submission", "aiohttp", "aiohttp_cors", "opencensus"):
        try:
            if importlib.util.find_spec(module) is None:
                return module
        except ModuleNotFoundError:
            return module
    return None


@pytest.fixture
def ray_head(tmp_path: Path) -> str:
    missing = dashboard_missing()
    if missing:
        pytest.skip(
            f"Ray's job API needs the dashboard's packages ({missing} is missing): "
            f"pip install 'aer-search[service-ray]'"
        )
    port, dashboard = free_port(), free_port()
    # jobs run `python -m search.cli`: this environment's python must come first on PATH
    env = dict(
        os.environ,
        RAY_AUTH_MODE="disabled",
        RAY_USAGE_STATS_ENABLED="0",
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    temp = Path("/tmp") / f"aer-ray-{port}"  # short: Ray's socket paths have a length limit
    log = open(tmp_path / "ray-head.log", "w")  # noqa: SIM115
    head = subprocess.Popen(
        [
            str(BIN / "ray"),
            "start",
            "--head",
            "--block",
            "--num-cpus=2",
            "--disable-usage-stats",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            f"--dashboard-port={dashboard}",
            "--include-dashboard=true",
            "--dashboard-host=127.0.0.1",
            f"--temp-dir={temp}",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{dashboard}"
    try:
        import httpx

        def answers() -> bool:
            assert head.poll() is None, (tmp_path / "ray-head.log").read_text()[-2000:]
            try:
                return httpx.get(f"{url}/api/version", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(answers, 120, "the Ray dashboard")
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        log.close()


def test_a_study_submitted_to_a_ray_cluster_runs_there(ray_head: str, tmp_path: Path) -> None:
    pretrain_base(fast_config("warm-up"))
    service = Service(tmp_path, extra=("--ray-address", ray_head)).start()
    try:
        config = {**fast_config("on-ray"), "ray": {"cpus_per_trial": 1}}
        created = service.client.post("/api/studies", json=config)
        assert created.status_code == 201, created.text
        job = created.json()["processes"][0]["ray_job"]
        assert job.startswith("raysubmit_")
        done = service.wait_state("on-ray", ("finished",), timeout=300)
        assert done["trials"]["complete"] == 2 and done["trials"]["failed"] == 0
        assert done["processes"][0]["exit_code"] == 0
        trials = service.client.get("/api/studies/on-ray/trials").json()["trials"]
        assert all(t["state"] == "COMPLETE" for t in trials)
        info = service.client.get("/api/service").json()
        assert info["backend"] == "ray" and info["ray_address"] == ray_head
    finally:
        service.close()
