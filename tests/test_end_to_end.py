"""The installed `search` console script in real processes.

What an in-process call cannot show: the real stdout / stderr split (logs, progress,
library warnings and tracebacks all land on stderr), exit codes, and plug-in objectives
imported from PYTHONPATH. The study uses tests/plugins_for_tests.py, so some trials fail
(a RuntimeError, a NaN) and the study must still finish its budget.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import plugins_for_tests as plugins
import pytest
from conftest import cheap_assessment
from optuna.trial import TrialState

TESTS = Path(__file__).resolve().parent
SCRIPT = Path(sys.executable).parent / "search"
EXPLODES = "plugins_for_tests:explodes_on_large_epsilon"
NAN = "plugins_for_tests:nan_on_small_epsilon"


def env() -> dict[str, str]:
    assert "AER_SEARCH_CACHE" in os.environ  # set by conftest: the session's base-model cache
    out = dict(os.environ)
    out.pop("AER_SEARCH_STORAGE", None)
    out["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS), out.get("PYTHONPATH")) if p)
    return out


def search(
    *args: str, cwd: Path, module: bool = False, timeout: float = 300
) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "search.cli"] if module else [str(SCRIPT)]
    return subprocess.run(
        [*command, *args], cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout
    )


def listing(root: Path) -> dict[str, Any]:
    return {
        str(p.relative_to(root)): p.read_bytes() if p.is_file() else "dir"
        for p in sorted(root.rglob("*"))
    }


@pytest.mark.slow
def test_console_script_runs_a_study_whose_plugins_fail_some_trials(
    tiny_config, write_config, tmp_path: Path
) -> None:
    assert SCRIPT.is_file(), f"console script missing at {SCRIPT}"
    tiny_config.update(study="plugged", trials=4, objectives=["robust_accuracy", EXPLODES, NAN])
    config = write_config(cheap_assessment(tiny_config))  # `search pareto` re-assesses
    url = "sqlite:///plugged.db"

    run = search("run", str(config), "--storage", url, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]

    # results on stdout, everything else on stderr
    study = optuna.load_study(study_name="plugged", storage=f"sqlite:///{tmp_path}/plugged.db")
    trials = study.trials
    assert len(trials) == 4
    assert all(t.state in (TrialState.COMPLETE, TrialState.FAIL) for t in trials)
    out_lines = [line for line in run.stdout.splitlines() if line.strip()]
    assert "robust_accuracy" in out_lines[0] and out_lines[0].split()[0] == "trial"
    front = sorted(t.number for t in study.best_trials)
    assert [int(line.split()[0]) for line in out_lines[1:]] == front
    assert "Traceback" not in run.stdout and "[1/4]" not in run.stdout
    for trial in trials:
        assert f"[{trial.number + 1}/4] trial {trial.number} " in run.stderr
    assert "export it with: search pareto --study plugged" in run.stderr

    exploded = [t for t in trials if plugins.will_explode(t.params)]
    nan = [t for t in trials if plugins.will_be_nan(t.params)]
    fine = [t for t in trials if t not in exploded and t not in nan]
    # the seeded tiny study must split; if the sampler's draws change, retune the plugins
    assert exploded and nan and fine, [t.params["epsilon"] for t in trials]

    for trial in exploded:
        assert trial.state == TrialState.FAIL
        reason = trial.user_attrs["fail_reason"]
        assert reason.startswith("RuntimeError: ") and plugins.EXPLODE_MESSAGE in reason
        assert "weights_artifact" not in trial.user_attrs
        assert trial.user_attrs["seconds"]["cpu"] > 0  # its compute still counts
        assert (
            f"[{trial.number + 1}/4] trial {trial.number} FAIL: RuntimeError: "
            f"{plugins.EXPLODE_MESSAGE}" in run.stderr
        )
    for trial in nan:
        assert trial.state == TrialState.FAIL
        reason = trial.user_attrs["fail_reason"]
        assert "nan" in reason and "finite" in reason and NAN in reason
    for trial in fine:
        assert trial.state == TrialState.COMPLETE
        metrics = trial.user_attrs["metrics"]
        assert metrics[EXPLODES] == trial.params["epsilon"]
        assert metrics[NAN] == trial.params["epochs"]
        assert trial.values == [metrics["robust_accuracy"], metrics[EXPLODES], metrics[NAN]]
        assert (tmp_path / "plugged.artifacts" / trial.user_attrs["weights_artifact"]).is_file()
    assert set(front) <= {t.number for t in fine}

    # `search trials` shows every trial with its state and failure reason
    shown = search("trials", "--storage", url, cwd=tmp_path, module=True)
    assert shown.returncode == 0, shown.stderr
    rows = {int(line.split()[0]): line for line in shown.stdout.splitlines()[1:] if line.strip()}
    assert sorted(rows) == [0, 1, 2, 3]
    for trial in trials:
        assert trial.state.name in rows[trial.number]
    for trial in exploded:
        assert plugins.EXPLODE_MESSAGE in rows[trial.number]
    for trial in nan:
        assert "returned nan, not a finite number" in rows[trial.number]

    # the stored front reads back as JSON in another process
    pareto = search("pareto", "--storage", url, "--json", cwd=tmp_path)
    assert pareto.returncode == 0, pareto.stderr
    assert sorted(row["trial"] for row in json.loads(pareto.stdout)) == front


@pytest.mark.slow
@pytest.mark.parametrize("case", ["unknown-key", "unreadable-checkpoint", "bad-storage"])
def test_bad_input_in_a_real_process_leaves_one_stderr_line(
    case: str, tiny_config, write_config, tmp_path: Path
) -> None:
    args = ["--storage", "sqlite:///study.db"]
    if case == "unknown-key":
        tiny_config["finetune"]["optimiser"] = "sgd"
        field = "'finetune.optimiser'"
    elif case == "unreadable-checkpoint":
        (tmp_path / "junk.pt").write_bytes(os.urandom(2048))
        args += ["--checkpoint", str(tmp_path / "junk.pt")]
        field = "'model.checkpoint'"
    else:
        args = ["--storage", "notascheme://x"]
        field = "--storage"
    config = write_config(tiny_config)
    before = listing(tmp_path)

    done = search("run", str(config), *args, cwd=tmp_path, timeout=120)

    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("search: error:") and field in lines[0]
    assert done.stdout == ""
    assert listing(tmp_path) == before
