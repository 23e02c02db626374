"""The device agent on 127.0.0.1: a real agent process, real HTTP, real onnxruntime.

The agent runs as `python -m search.timing` in a subprocess where importing torch fails,
as on a device that has onnxruntime and nothing else. A study whose latency comes from
the agent runs end to end; a wrong token, an oversized or garbage body, bad parameters
and an agent that is not there each fail with their own clear answer.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch

from search.timing import (
    AgentError,
    AgentRefused,
    AgentUnreachable,
    check_agent,
    time_onnx_local,
    time_onnx_remote,
)

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "agent-test-token-24"
MAX_BYTES = 200_000
BLOCK_TORCH = (
    "import sys, runpy; sys.modules['torch'] = None; "
    "runpy.run_module('search.timing', run_name='__main__')"
)


class Agent:
    """An agent process, where it listens, and what it logged (read by a thread, so the
    pipe never fills); `stop_after(n)` stops it once it has timed n models."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "AER_SEARCH_AGENT_TOKEN": TOKEN}
        self.process = subprocess.Popen(
            [sys.executable, "-c", BLOCK_TORCH, "--port", "0", "--max-bytes", str(max_bytes)],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stderr is not None
        first = self.process.stderr.readline()
        assert first.startswith("latency agent on http://127.0.0.1:"), first
        self.url = first.split()[3]
        self.timed = 0
        self.stop_at: int | None = None
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            if line.startswith("timed "):
                self.timed += 1
                if self.stop_at is not None and self.timed >= self.stop_at:
                    self.process.kill()

    def stop_after(self, timed: int) -> None:
        self.stop_at = timed

    def stop(self) -> int:
        """Stop the agent (if it still runs); how many models it timed."""
        self.process.terminate()
        self.process.wait(timeout=20)
        self.reader.join(timeout=20)
        return self.timed


@pytest.fixture(scope="module")
def agent() -> Iterator[Agent]:
    running = Agent()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def onnx_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A small real model (conv + linear) exported by torch: what a trial ships."""
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(144, 10)
    ).eval()
    path = tmp_path_factory.mktemp("onnx") / "m.onnx"
    torch.onnx.export(
        model,
        (torch.rand(1, 1, 8, 8),),
        str(path),
        input_names=["x"],
        dynamic_axes={"x": {0: "batch"}},
        dynamo=False,
    )
    return path.read_bytes()


def post(url: str, body: bytes, token: str = TOKEN, query: str = "") -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{url}/time{query}", data=body, headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_agent_module_imports_no_torch() -> None:
    code = "import sys; import search.timing._agent; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "False"


def test_the_agent_times_a_model_as_the_local_timer_does(agent: Agent, onnx_bytes: bytes) -> None:
    remote = time_onnx_remote(agent.url, TOKEN, onnx_bytes, batch_size=4, warmup=2, repeats=7)
    local = time_onnx_local(onnx_bytes, batch_size=4, warmup=2, repeats=7)
    assert 0 < remote.min_ms <= remote.median_ms <= remote.max_ms
    assert (remote.repeats, remote.warmup, remote.batch_size, remote.threads) == (7, 2, 4, 1)
    assert remote.onnxruntime_version == local.onnxruntime_version
    assert remote.device == local.device and "cores" in remote.device
    health = check_agent(agent.url, TOKEN)
    assert health["max_bytes"] == MAX_BYTES and health["cores"] == os.cpu_count()


def test_a_wrong_token_is_401(agent: Agent, onnx_bytes: bytes) -> None:
    status, answer = post(agent.url, onnx_bytes, token="not-the-token")
    assert status == 401 and "token" in answer["error"]
    with pytest.raises(AgentRefused, match=r"refused the token \(401\)"):
        time_onnx_remote(agent.url, "not-the-token", onnx_bytes)
    with pytest.raises(AgentRefused):
        check_agent(agent.url, "")


def test_an_oversized_body_is_413(agent: Agent) -> None:
    status, answer = post(agent.url, b"\0" * (MAX_BYTES + 1))
    assert status == 413 and str(MAX_BYTES) in answer["error"]


@pytest.mark.parametrize(
    ("body", "query", "says"),
    [
        (b"these bytes are not a model", "", "not an ONNX model"),
        (None, "?repeats=0", "repeats must be in [1, 10000], got 0"),
        (None, "?threads=x", "threads must be an integer"),
        (None, "?batchsize=2", "unknown parameter 'batchsize'"),
    ],
)
def test_bad_input_is_400_naming_it(
    agent: Agent, onnx_bytes: bytes, body: bytes | None, query: str, says: str
) -> None:
    status, answer = post(agent.url, body or onnx_bytes, query=query)
    assert status == 400 and says in answer["error"], answer
    # the agent is still serving
    assert time_onnx_remote(agent.url, TOKEN, onnx_bytes, warmup=0, repeats=2).repeats == 2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_agent_is_one_clear_error(onnx_bytes: bytes) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(AgentUnreachable, match=f"device agent at {url} is unreachable"):
        time_onnx_remote(url, TOKEN, onnx_bytes)


def agent_config(tiny_config: dict[str, Any], url: str) -> dict[str, Any]:
    config = copy.deepcopy(tiny_config)
    config["latency"] = {**config["latency"], "device": url}
    return config


@pytest.mark.parametrize(
    ("token", "says"),
    [("wrong-token-xyz", "refused the token (401)"), (None, "set $AER_SEARCH_AGENT_TOKEN")],
)
def test_search_run_checks_the_agent_before_writing(
    agent: Agent,
    tiny_config: dict[str, Any],
    write_config,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    token: str | None,
    says: str,
) -> None:
    from conftest import run_cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AER_SEARCH_STORAGE", raising=False)
    if token is None:
        monkeypatch.delenv("AER_SEARCH_AGENT_TOKEN", raising=False)
    else:
        monkeypatch.setenv("AER_SEARCH_AGENT_TOKEN", token)
    path = write_config(agent_config(tiny_config, agent.url))
    before = sorted(p.name for p in tmp_path.iterdir())
    rc, out, err = run_cli(["run", str(path)])
    lines = [line for line in err.splitlines() if line.startswith("search: error")]
    assert rc == 2 and out == "" and len(lines) == 1 and says in lines[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_search_run_with_an_unreachable_agent_exits_2(
    tiny_config: dict[str, Any], write_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import run_cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AER_SEARCH_STORAGE", raising=False)
    monkeypatch.setenv("AER_SEARCH_AGENT_TOKEN", TOKEN)
    url = f"http://127.0.0.1:{free_port()}"
    path = write_config(agent_config(tiny_config, url))
    rc, out, err = run_cli(["run", str(path)])
    assert rc == 2 and out == ""
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith(f"search: error: latency.device: device agent at {url} is unreachable")
    )
    assert not (tmp_path / "aer-search.db").exists()


def test_a_study_times_its_trials_on_the_agent_and_survives_its_going_away(
    tiny_config: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four trials, timed by the agent, which goes away after timing three models (the
    study also times its base model): the trials timed stay stored and complete, the
    others fail with the reason, and the study ends normally."""
    from search import run_search

    own = Agent()
    own.stop_after(3)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AER_SEARCH_AGENT_TOKEN", TOKEN)
    url = f"sqlite:///{tmp_path / 'agent.db'}"
    config = agent_config(tiny_config, own.url)
    config.update(study="agent-timed", trials=4)
    try:
        run_search(config, storage=url)
    finally:
        timed = own.stop()
    assert timed == 3
    study = optuna.load_study(study_name="agent-timed", storage=url)
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    failed = study.get_trials(states=(optuna.trial.TrialState.FAIL,))
    assert len(complete) >= 1 and len(failed) >= 1 and len(complete) + len(failed) == 4
    assert all(t.user_attrs["metrics"]["latency_ms"] > 0 for t in complete)
    for trial in failed:
        reason = trial.user_attrs["fail_reason"]
        assert reason.startswith("AgentUnreachable: device agent at " + own.url), reason


def test_agent_errors_are_one_line() -> None:
    assert issubclass(AgentUnreachable, AgentError) and issubclass(AgentRefused, AgentError)
