"""`search run --backend ray` on real Ray: a two-node cluster on 127.0.0.1 and a local Ray.

The cluster is started with `ray start` (head and a second node, free ports, token
auth off on loopback) in process groups of the test's own, so tearing it down never
touches another Ray on the machine. Results land in the same Optuna storage as the
local backend, and `search pareto` reads them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

pytest.importorskip("ray.tune")
# one Ray cluster at a time on the machine (pytest -n: one worker runs the group)
pytestmark = pytest.mark.xdist_group("ray")

BIN = Path(sys.executable).parent
SCRIPT = BIN / "search"
RAY = BIN / "ray"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ray_env() -> dict[str, str]:
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    env.pop("AER_SEARCH_STORAGE", None)
    return env


class Node:
    """One `ray start --block` in its own process group."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log.open("w")
        self.process = subprocess.Popen(
            [str(RAY), "start", "--block", "--num-cpus=1", "--disable-usage-stats", *args],
            env=ray_env(),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.log.close()


def wait_for_nodes(address: str, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = subprocess.run(
            [str(RAY), "status", "--address", address],
            env=ray_env(),
            capture_output=True,
            text=True,
        )
        active = status.stdout.split("Pending:")[0]
        if active.count(" node_") >= count:
            return
        time.sleep(1)
    raise AssertionError(f"{count} Ray nodes did not come up:\n{status.stdout}{status.stderr}")


def node_id(address: str, manager_port: int) -> str:
    """The Ray node id of the node listening on `manager_port`."""
    code = (
        f"import ray; ray.init(address={address!r}, configure_logging=False); "
        f"print([n['NodeID'] for n in ray.nodes() if n['NodeManagerPort'] == "
        f"{manager_port}][0])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=ray_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture
def cluster(tmp_path):
    """A head and a second node on 127.0.0.1, one CPU each.

    Yields the address, the second node and its Ray node id.
    """
    port, agent_head, agent_node, manager = (free_port() for _ in range(4))
    address = f"127.0.0.1:{port}"
    nodes = [
        Node(
            [
                "--head",
                f"--port={port}",
                "--node-ip-address=127.0.0.1",
                "--include-dashboard=false",
                f"--dashboard-agent-listen-port={agent_head}",
                "--min-worker-port=21000",
                "--max-worker-port=21499",
            ],
            tmp_path / "head.log",
        )
    ]
    try:
        wait_for_nodes(address, 1)
        nodes.append(
            Node(
                [
                    f"--address={address}",
                    "--node-ip-address=127.0.0.1",
                    f"--dashboard-agent-listen-port={agent_node}",
                    f"--node-manager-port={manager}",
                    "--min-worker-port=21500",
                    "--max-worker-port=21999",
                ],
                tmp_path / "node.log",
            )
        )
        wait_for_nodes(address, 2)
        yield address, nodes[1], node_id(address, manager)
    finally:
        for node in reversed(nodes):
            node.kill()


def write_config(tiny_config: dict[str, Any], tmp_path: Path, trials: int) -> Path:
    tiny_config.update(trials=trials)
    tiny_config["ray"] = {"cpus_per_trial": 1, "max_failures": 2}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(tiny_config))
    return path


def search(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(SCRIPT), *args],
        cwd=cwd,
        env=ray_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def load(url: str) -> optuna.Study:
    return optuna.load_study(study_name="tiny", storage=url)


def wait_until(condition, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if process.poll() is not None:
            raise AssertionError(f"search exited early:\n{process.stderr.read()[-3000:]}")
        time.sleep(0.3)
    raise AssertionError("timed out waiting")


def trials_in(url: str, state: TrialState) -> list[optuna.trial.FrozenTrial]:
    try:
        return load(url).get_trials(states=(state,))
    except KeyError:  # the study does not exist yet
        return []


@pytest.mark.slow
def test_search_spreads_over_two_nodes_and_survives_losing_one(
    cluster, tiny_config, tmp_path
) -> None:
    address, second, second_id = cluster
    url = f"sqlite:///{tmp_path / 'study.db'}"
    # trials of a few seconds each, so a trial is surely running when the node dies
    # (6 to 8 epochs: long enough on a fast machine too, where short trials could all
    # end before a poll saw the second node mid-trial)
    tiny_config["space"].update(epochs=[6, 8], strategies=["adversarial"], epsilon=[0.05, 0.1])
    tiny_config["finetune"]["steps"] = 10
    config = write_config(tiny_config, tmp_path, trials=6)
    run = search(
        "run",
        str(config),
        "--backend",
        "ray",
        "--address",
        address,
        "--storage",
        url,
        "--json",
        cwd=tmp_path,
    )

    def second_node_mid_trial() -> bool:
        done = {t.user_attrs["ray"]["node"] for t in trials_in(url, TrialState.COMPLETE)}
        running = {
            t.user_attrs.get("ray", {}).get("node") for t in trials_in(url, TrialState.RUNNING)
        }
        return len(done) == 2 and second_id in running

    wait_until(second_node_mid_trial, run)
    second.kill()  # the node and every worker on it, mid-trial
    out, err = run.communicate(timeout=600)
    assert run.returncode == 0, err[-3000:]
    study = load(url)
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.FAIL)]
    assert len(finished) == 6 and not study.get_trials(states=(TrialState.RUNNING,))
    assert sorted(t.number for t in study.trials) == list(range(len(study.trials)))
    complete = [t for t in finished if t.state == TrialState.COMPLETE]
    assert len({t.user_attrs["ray"]["node"] for t in complete}) == 2  # both nodes worked
    assert len(complete) >= 5  # the trial on the lost node was retried elsewhere
    front = json.loads(out)
    assert front and {row["trial"] for row in front} <= {t.number for t in complete}
    pareto = subprocess.run(
        [str(SCRIPT), "pareto", "--storage", url, "--validation-only", "--json"],
        cwd=tmp_path,
        env=ray_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert pareto.returncode == 0 and json.loads(pareto.stdout) == front


@pytest.mark.slow
def test_an_interrupted_ray_run_resumes_and_keeps_its_trials(tiny_config, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    config = write_config(tiny_config, tmp_path, trials=4)
    tiny_config["ray"]["max_concurrent"] = 1
    config.write_text(yaml.safe_dump(tiny_config))
    run = search("run", str(config), "--backend", "ray", "--storage", url, cwd=tmp_path)
    wait_until(lambda: len(trials_in(url, TrialState.COMPLETE)) >= 2, run)
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=300)
    assert run.returncode == 130, err[-3000:]
    assert "resume" in err
    before = {t.number: t.values for t in trials_in(url, TrialState.COMPLETE)}
    assert 2 <= len(before) < 4
    assert load(url).user_attrs["ray.experiment"]  # kept for Tuner.restore

    again = search("run", str(config), "--backend", "ray", "--storage", url, cwd=tmp_path)
    _, err = again.communicate(timeout=600)
    assert again.returncode == 0, err[-3000:]
    assert "resuming the interrupted Ray run" in err
    study = load(url)
    after = {t.number: t.values for t in study.get_trials(states=(TrialState.COMPLETE,))}
    assert {n: after.get(n) for n in before} == before  # completed trials kept as they were
    finished = study.get_trials(states=(TrialState.COMPLETE, TrialState.FAIL))
    assert len(finished) == 4 and not study.get_trials(states=(TrialState.RUNNING,))
    assert study.user_attrs["ray.experiment"] is None


def test_unreachable_address_is_refused_in_seconds(tiny_config, tmp_path) -> None:
    config = write_config(tiny_config, tmp_path, trials=1)
    started = time.monotonic()
    done = subprocess.run(
        [
            str(SCRIPT),
            "run",
            str(config),
            "--backend",
            "ray",
            "--address",
            f"127.0.0.1:{free_port()}",
            "--storage",
            f"sqlite:///{tmp_path / 'x.db'}",
        ],
        cwd=tmp_path,
        env=ray_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("search: error: --address: nothing answers")
    assert time.monotonic() - started < 30
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize(
    "args, field",
    [
        (["--backend", "dask"], "--backend must be one of optuna, ray"),
        (["--address", "127.0.0.1:6379"], "--address joins a Ray cluster"),
        (["--backend", "ray", "--address", "nohost"], "--address must be HOST:PORT"),
    ],
)
def test_bad_backend_flags_are_refused(args, field, tiny_config, tmp_path) -> None:
    config = write_config(tiny_config, tmp_path, trials=1)
    done = subprocess.run(
        [str(SCRIPT), "run", str(config), *args, "--storage", f"sqlite:///{tmp_path / 'x.db'}"],
        cwd=tmp_path,
        env=ray_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and field in done.stderr
    assert not (tmp_path / "x.db").exists()


def test_relative_file_storages_reach_ray_workers_as_absolute_paths(tmp_path, monkeypatch) -> None:
    """Guards: Ray workers start in folders of their own, so `sqlite:///aer-search.db`
    (the default) must reach them as an absolute path."""
    from search.study import absolute_url

    monkeypatch.chdir(tmp_path)
    assert absolute_url("sqlite:///aer-search.db") == f"sqlite:///{tmp_path}/aer-search.db"
    assert absolute_url("journal:runs/j.log") == f"journal:{tmp_path}/runs/j.log"
    assert absolute_url("sqlite:////abs/x.db") == "sqlite:////abs/x.db"
    assert absolute_url("postgresql://u@h/db") == "postgresql://u@h/db"


@pytest.mark.slow
def test_ray_promotes_rung_by_rung_as_the_local_driver_does(tiny_config, tmp_path) -> None:
    """Guards: under `--backend ray` a multi-fidelity study records every rung, promotes by
    the same rule (top floor(n / factor) at each rung, read from the shared storage, and
    stopped trials continued later by trials of their own), and each trial's values are
    its last rung's."""
    import math

    from search.study import config_from_dict, open_storage, replay_decisions

    url = f"sqlite:///{tmp_path / 'study.db'}"
    tiny_config["fidelity"] = {"enabled": True, "min_images": 128, "max_images": 1152, "factor": 3}
    config = write_config(tiny_config, tmp_path, trials=6)
    run = search("run", str(config), "--backend", "ray", "--storage", url, "--json", cwd=tmp_path)
    out, err = run.communicate(timeout=600)
    assert run.returncode == 0, err[-3000:]
    complete = trials_in(url, TrialState.COMPLETE)
    assert len(complete) == 6
    schedule = [128, 384, 1152]
    for trial in complete:
        rungs = trial.user_attrs["rungs"]
        assert [r["budget"] for r in rungs] == schedule[: len(rungs)]
        own = [r for r in rungs if "inherited_from" not in r]
        for r in own[:-1]:
            assert r["promoted"] and r["place"] < math.floor(r["of"] / 3)
        if len(rungs) < len(schedule):
            assert own[-1]["place"] >= math.floor(own[-1]["of"] / 3)
        assert trial.values[0] == rungs[-1]["metrics"]["robust_accuracy"]
    assert any(len(t.user_attrs["rungs"]) >= 2 for t in complete)
    study = optuna.load_study(study_name=tiny_config["study"], storage=open_storage(url))
    assert replay_decisions(study, config_from_dict(study.user_attrs["config"])) == []
    assert {row["trial"] for row in json.loads(out)} <= {t.number for t in complete}


def test_a_ctrl_c_between_two_trials_is_an_interruption(tmp_path) -> None:
    """Guards: Tune swallows the first SIGINT and returns from `fit` as if done; one that
    comes between two trials leaves no RUNNING trial behind, yet the run stopped early:
    `_fit` must say so (the CLI exits 130) and keep the experiment for `Tuner.restore`."""
    import ray
    from ray import tune

    from search.backends._ray import _fit
    from search.study import RAY_EXPERIMENT

    class CtrlCAfterFirstTrial(tune.Callback):
        def on_trial_complete(self, iteration, trials, trial, **info) -> None:
            os.kill(os.getpid(), signal.SIGINT)

    def trainable(config: dict) -> dict:
        return {"score": config["x"]}

    study = optuna.create_study()
    before = signal.getsignal(signal.SIGINT)
    ray.init(address="local", num_cpus=1, include_dashboard=False, configure_logging=False)
    try:
        tuner = tune.Tuner(
            trainable,
            param_space={"x": tune.grid_search([1, 2, 3])},
            tune_config=tune.TuneConfig(max_concurrent_trials=1),
            run_config=tune.RunConfig(
                storage_path=str(tmp_path), verbose=0, callbacks=[CtrlCAfterFirstTrial()]
            ),
        )
        assert _fit(tuner, study, str(tmp_path / "experiment")) is True
        assert study.user_attrs[RAY_EXPERIMENT] == str(tmp_path / "experiment")
        assert signal.getsignal(signal.SIGINT) is before

        done = tune.Tuner(
            trainable,
            param_space={"x": tune.grid_search([1])},
            run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0),
        )
        assert _fit(done, study, str(tmp_path / "second")) is False  # ran to its end
        assert study.user_attrs[RAY_EXPERIMENT] is None
        assert signal.getsignal(signal.SIGINT) is before  # not left to Tune's handler
    finally:
        ray.shutdown()
