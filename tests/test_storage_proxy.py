"""`search storage-proxy` and `grpc://HOST:PORT` storages: Optuna's gRPC proxy in front
of a real database (PostgreSQL at $AER_TEST_POSTGRES, else an SQLite file).

Real processes throughout: the proxy, two `search worker`s that reach the study only
through it, and `search pareto` reading the result through it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from test_workers import POSTGRES, check_budget, create_study, wait_all

from search.core import BadInput
from search.study import check_storage_url, open_storage

pytest.importorskip("grpc")
SCRIPT = Path(sys.executable).parent / "search"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url(tmp_path: Path) -> str:
    """The real PostgreSQL server when it answers, else an SQLite file."""
    try:
        check_storage_url(POSTGRES)
        return POSTGRES
    except BadInput:
        return f"sqlite:///{tmp_path / 'behind-proxy.db'}"


def start_proxy(database: str, port: int, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(SCRIPT), "storage-proxy", "--storage", database, "--port", str(port)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_ready(url: str, proxy: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            check_storage_url(url)
            return
        except BadInput:
            if proxy.poll() is not None or time.monotonic() > deadline:
                err = proxy.communicate()[1][-2000:]
                raise AssertionError(f"the proxy never answered: {err}") from None


@pytest.fixture
def proxy(tmp_path):
    """A running proxy in front of the database: (grpc URL, database URL, process)."""
    database = database_url(tmp_path)
    port = free_port()
    process = start_proxy(database, port, tmp_path)
    url = f"grpc://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        yield url, database, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=30)


def start_worker(study: str, url: str, cwd: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(SCRIPT), "worker", "--study", study, "--storage", url, "--threads", "1"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )


def check_service_reads(url: str, name: str, root: Path, trials: int) -> None:
    """`search serve --storage grpc://...` lists the study, its trials and its front."""
    pytest.importorskip("fastapi")
    from service_harness import Service

    service = Service(root)
    service.storage = url
    try:
        service.start()
        studies = service.client.get("/api/studies").json()
        assert name in [s["name"] for s in studies]
        rows = service.client.get(f"/api/studies/{name}/trials")
        assert rows.status_code == 200, rows.text
        body = rows.json()
        listed = body["trials"] if isinstance(body, dict) else body
        assert len(listed) == trials
        front = service.client.get(f"/api/studies/{name}/front")
        assert front.status_code == 200 and front.json(), front.text
    finally:
        service.close()


@pytest.mark.slow
def test_two_workers_run_a_study_through_the_proxy_and_pareto_reads_it(
    tiny_config, tiny_setup, proxy, tmp_path
) -> None:
    url, database, process = proxy
    study = create_study(tiny_config, tiny_setup, url, trials=4, artifacts=tmp_path / "artifacts")
    try:
        workers = [start_worker(study.study_name, url, tmp_path) for _ in range(2)]
        errs = wait_all(workers)
        assert [w.returncode for w in workers] == [0, 0], [e[-2000:] for e in errs]
        # the database itself holds what the workers wrote through the proxy
        direct = optuna.load_study(study_name=study.study_name, storage=open_storage(database))
        ran = check_budget(direct, 4)
        assert all(t.state == TrialState.COMPLETE for t in ran)
        assert {t.user_attrs["worker"]["pid"] for t in ran} <= {w.pid for w in workers}
        # no Optuna heartbeat through a proxy: the trials carry aer-search's own
        assert all(t.user_attrs["heartbeat"]["every"] == 30 for t in ran)
        shown = subprocess.run(
            [str(SCRIPT), "pareto", "--validation-only", "--json"]
            + ["--study", study.study_name, "--storage", url],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert shown.returncode == 0, shown.stderr[-2000:]
        front = json.loads(shown.stdout)
        assert front and {row["trial"] for row in front} <= {t.number for t in ran}
        listed = subprocess.run(
            [str(SCRIPT), "trials", "--study", study.study_name, "--storage", url],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert listed.returncode == 0, listed.stderr[-2000:]
        assert len(listed.stdout.strip().splitlines()) >= 1 + len(ran)
        check_service_reads(url, study.study_name, tmp_path, len(ran))
    finally:
        optuna.delete_study(study_name=study.study_name, storage=database)
    process.send_signal(signal.SIGTERM)  # stops like Ctrl-C: exit 0, says so
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0 and "storage proxy stopped" in err


def test_a_proxy_study_without_a_shared_artifact_folder_is_one_line(
    tiny_config, proxy, tmp_path, monkeypatch
) -> None:
    """Guards: a grpc:// study names the folder its weights go to; ./ on each machine
    would scatter them."""
    from conftest import run_cli

    from search.study import config_from_dict, open_study

    url, database, _ = proxy
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AER_SEARCH_ARTIFACTS", raising=False)
    tiny_config["study"] = f"proxy-{uuid.uuid4().hex[:8]}"
    # `search run` refuses before the study exists
    rc, _, err = run_cli(["run", "--set", f"study={tiny_config['study']}", "--storage", url])
    assert rc == 2 and "AER_SEARCH_ARTIFACTS" in err, err
    assert tiny_config["study"] not in optuna.get_all_study_names(database)
    open_study(config_from_dict(tiny_config), open_storage(url))
    try:
        rc, _, err = run_cli(["pareto", "--study", tiny_config["study"], "--storage", url])
        assert rc == 2 and "AER_SEARCH_ARTIFACTS" in err and "artifacts" in err
        assert len(err.strip().splitlines()) == 1
        assert list(tmp_path.iterdir()) == []  # nothing written on the way
        # listing trials needs no weights: it is not refused
        rc, _, err = run_cli(["trials", "--study", tiny_config["study"], "--storage", url])
        assert rc == 0, err
    finally:
        optuna.delete_study(study_name=tiny_config["study"], storage=database)


def test_a_second_proxy_on_a_taken_port_is_one_line(proxy, tmp_path) -> None:
    """Guards: gRPC would share the port silently (SO_REUSEPORT); the command refuses."""
    url, database, _ = proxy
    port = url.rsplit(":", 1)[1]
    done = subprocess.run(
        [str(SCRIPT), "storage-proxy", "--storage", database, "--port", port],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"search: error: --port: cannot listen on 127.0.0.1:{port} (Address already in use)"
    ]


def test_the_proxy_cluster_config_runs_commands_that_parse() -> None:
    """Guards the docs: every `search` command in workers-grpc-proxy.yaml parses, and
    every worker reaches the study through the proxy with a shared artifact folder."""
    import yaml

    from search.cli import build_parser

    root = Path(__file__).resolve().parents[1]
    documents = list(yaml.safe_load_all((root / "cluster" / "workers-grpc-proxy.yaml").read_text()))
    containers = [
        c
        for d in documents
        if d["kind"] in ("Deployment", "Job")
        for c in d["spec"]["template"]["spec"]["containers"]
    ]
    commands = {c["command"][1]: c for c in containers}
    assert set(commands) == {"storage-proxy", "run", "worker"}
    for container in containers:
        args = build_parser().parse_args(container["command"][1:])
        if args.command != "storage-proxy":
            assert args.storage.startswith("grpc://")
            env = {e["name"] for e in container["env"]}
            assert {"AER_SEARCH_ARTIFACTS", "AER_SEARCH_HOST"} <= env
    proxy = build_parser().parse_args(commands["storage-proxy"]["command"][1:])
    worker = build_parser().parse_args(commands["worker"]["command"][1:])
    assert worker.storage.endswith(f":{proxy.port}") and worker.device == "cuda:0"


def test_a_silent_trial_through_the_proxy_is_failed_by_aer_searchs_heartbeat(proxy) -> None:
    """Optuna keeps no heartbeat through the proxy; aer-search's own beat goes through
    it, and a worker gone silent has its trial failed with the reason."""
    from search.study import Beat, fail_orphaned_trials, stale_trials

    url, database, _ = proxy
    name = f"proxy-beat-{uuid.uuid4().hex[:8]}"
    study = optuna.create_study(storage=open_storage(url), study_name=name)
    try:
        trial = study.ask()
        trial.set_user_attr("worker", {"host": "another-machine", "pid": 1})
        with Beat(study, trial._trial_id, every=1):
            pass  # one beat, then silence
        assert stale_trials(study) == []
        time.sleep(3.6)
        fail_orphaned_trials(study)
        failed = optuna.load_study(study_name=name, storage=database).trials[0]
        assert failed.state == TrialState.FAIL
        assert failed.user_attrs["fail_reason"].startswith(
            "its worker (host another-machine, pid 1) stopped heartbeating"
        )
    finally:
        optuna.delete_study(study_name=name, storage=database)
