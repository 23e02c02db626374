"""cluster/: the local multi-node Ray script, the worker launcher and the dashboard run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def env(tmp_path: Path) -> dict[str, str]:
    path = os.pathsep.join([str(BIN), os.environ["PATH"]])
    return dict(os.environ, PATH=path, AER_LOCAL_RAY_STATE=str(tmp_path / "ray-state"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.xdist_group("ray")  # one Ray cluster at a time (pytest -n)
def test_local_ray_script_starts_two_nodes_and_stops_only_them(tmp_path) -> None:
    pytest.importorskip("ray")
    script = ROOT / "cluster" / "local-ray.sh"
    try:
        started = subprocess.run(
            [str(script), "start", "2"],
            env=env(tmp_path),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert started.returncode == 0, started.stderr[-2000:]
        address = (tmp_path / "ray-state" / "address").read_text().strip()
        assert address.startswith("127.0.0.1:") and address in started.stdout
        status = subprocess.run(
            [str(BIN / "ray"), "status", "--address", address],
            env=dict(env(tmp_path), RAY_AUTH_MODE="disabled"),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert status.stdout.split("Pending:")[0].count(" node_") == 2
    finally:
        stopped = subprocess.run(
            [str(script), "stop"], env=env(tmp_path), capture_output=True, text=True, timeout=120
        )
    assert stopped.returncode == 0
    assert not list((tmp_path / "ray-state").glob("*.pid"))
    host, port = address.split(":")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the head's port closes once its processes are gone
        with socket.socket() as sock:
            if sock.connect_ex((host, int(port))) != 0:
                break
        time.sleep(0.5)
    else:
        raise AssertionError("the head still listens after stop")


def test_start_workers_refuses_missing_arguments(tmp_path) -> None:
    done = subprocess.run(
        [str(ROOT / "cluster" / "start-workers.sh"), "2"],
        env=env(tmp_path),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "usage" in done.stderr


def test_cluster_manifests_are_valid_yaml_and_run_search() -> None:
    for name in ("ray-cluster.yaml", "kuberay-rayjob.yaml", "workers-postgres.yaml"):
        documents = list(yaml.safe_load_all((ROOT / "cluster" / name).read_text()))
        assert documents and all(isinstance(d, dict) for d in documents)
    rayjob = yaml.safe_load_all((ROOT / "cluster" / "kuberay-rayjob.yaml").read_text())
    job, configmap = list(rayjob)
    entrypoint = job["spec"]["entrypoint"]
    assert "search run" in entrypoint and "--backend ray" in entrypoint
    from search.study import config_from_dict

    study = yaml.safe_load(configmap["data"]["study.yaml"])
    study["data"]["root"] = None  # the pod's folder does not exist here
    assert config_from_dict(study).ray.cpus_per_trial == 4  # the shipped study config is valid


def test_dashboard_serves_the_storage(tmp_path) -> None:
    pytest.importorskip("optuna_dashboard")
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="watched", storage=url)
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    port = free_port()
    server = subprocess.Popen(
        [str(BIN / "search"), "dashboard", "--storage", url, "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/api/studies", timeout=5
                ) as response:
                    answer = json.loads(response.read())
                break
            except OSError:
                assert server.poll() is None, server.communicate()[1][-2000:]
                assert time.monotonic() < deadline, "the dashboard did not answer"
                time.sleep(0.5)
        studies = answer.get("studies", answer.get("study_summaries"))
        assert [s["study_name"] for s in studies] == ["watched"], answer
    finally:
        server.terminate()
        server.wait(timeout=30)
