"""The `search` command in-process: run, resume, front, export round trip, bad input.

Everything is real: SQLite files, the Optuna artifact store, torch-pruning, torchattacks
fine-tuning and evaluation, ONNX export run back through onnxruntime. Log lines go
through the `search` logger (to stderr in a real process, see test_end_to_end.py); here
they are read from the logger, results from stdout.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import logging
import re
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
import yaml
from optuna.trial import TrialState
from safetensors import safe_open

from search import load_model
from search.cli import main
from search.config import DataConfig
from search.study import config_from_dict
from search.zoo import build_model, load_splits

METRICS = ("robust_accuracy", "clean_accuracy", "latency_ms", "size_bytes")
MEMBER_FILES = ("model.safetensors", "model.onnx", "recipe.yaml", "metrics.json")


# ----------------------------------------------------------------------------- helpers


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def load(url: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=url)


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    states = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)
    return study.get_trials(deepcopy=False, states=states)


def snapshot(root: Path) -> dict[str, Any]:
    """Every path under root with, for files, its mtime and a digest of its bytes."""
    out: dict[str, Any] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_file():
            stat = path.stat()
            out[rel] = (stat.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            out[rel] = "dir"
    return out


def table_trial_numbers(stdout: str) -> list[int]:
    """Trial numbers in the first column of a front table printed on stdout."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    header = next(i for i, line in enumerate(lines) if "robust_accuracy" in line)
    numbers = []
    for line in lines[header + 1 :]:
        first = line.split()[0]
        if not first.isdigit():
            break
        numbers.append(int(first))
    return numbers


def error_line(err: str) -> str:
    """The one line a bad input leaves on stderr."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected exactly one stderr line, got {lines!r}"
    assert lines[0].startswith("search: error:"), lines[0]
    return lines[0]


def val_tensors(config_dict: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    config = config_from_dict(config_dict)
    val = load_splits(config.data, config.seed).val
    images = torch.stack([val[i][0] for i in range(len(val))])
    labels = torch.tensor([int(val[i][1]) for i in range(len(val))])
    return images, labels


class Captured:
    """stdout, stderr and log lines of one in-process `main` call."""

    def __init__(self, rc: int, out: str, err: str, log: str) -> None:
        self.rc, self.out, self.err, self.log = rc, out, err, log


def run_captured(argv: list[str]) -> Captured:
    """Call main with redirected streams (usable from module-scoped fixtures)."""
    logger = logging.getLogger("search")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(argv)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    return Captured(rc, out.getvalue(), err.getvalue(), stream.getvalue())


# ------------------------------------- one study, run 2 -> resumed to 4 -> run again (1-4)


@pytest.fixture(scope="module")
def ran_study(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The tiny study through `search run CONFIG --storage sqlite:///DB`, three times:
    `--trials 2`, then the same command with `--trials 4` (resume), then once more."""
    from conftest import TINY, cheap_assessment

    root = tmp_path_factory.mktemp("ran")
    config = cheap_assessment(copy.deepcopy(TINY))  # the export re-assesses the front
    config_path = root / "study.yaml"
    config_path.write_text(yaml.safe_dump(config))
    url = sqlite_url(root / "study.db")
    argv = ["run", str(config_path), "--storage", url]
    runs: dict[str, Any] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.delenv("AER_SEARCH_STORAGE", raising=False)
        for name, budget in (("first", "2"), ("resumed", "4"), ("again", "4")):
            runs[name] = run_captured([*argv, "--trials", budget])
            study = load(url, "tiny")
            runs[name + "_trials"] = copy.deepcopy(study.trials)
            runs[name + "_front"] = sorted(t.number for t in study.best_trials)
    return {"root": root, "config": config, "url": url, **runs}


def test_run_prints_front_and_stores_every_metric(ran_study: dict[str, Any]) -> None:
    result = ran_study["first"]
    assert result.rc == 0, result.err + result.log
    trials = ran_study["first_trials"]
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2  # none left RUNNING

    # stdout: the front table, header first, one row per front member
    lines = [line for line in result.out.splitlines() if line.strip()]
    assert "robust_accuracy" in lines[0] and lines[0].split()[0] == "trial"
    assert table_trial_numbers(result.out) == ran_study["first_front"]
    assert "[1/2]" not in result.out and "export it with" not in result.out
    # progress and the hint are logs / stderr, not results
    assert "[1/2] trial 0 " in result.log and "[2/2] trial 1 " in result.log
    assert "export it with: search pareto --study tiny" in result.err

    study = load(ran_study["url"], "tiny")
    objectives = study.user_attrs["config"]["objectives"]
    artifacts = ran_study["root"] / "study.artifacts"
    for trial in finished(study):
        metrics = trial.user_attrs["metrics"]
        assert set(METRICS) <= set(metrics)
        assert 0.0 <= metrics["robust_accuracy"] <= metrics["clean_accuracy"] <= 1.0
        assert metrics["latency_ms"] > 0
        assert metrics["size_bytes"] > 0 and metrics["size_bytes"] == int(metrics["size_bytes"])
        assert trial.values == [metrics[name] for name in objectives]
        weights = artifacts / trial.user_attrs["weights_artifact"]
        assert weights.is_file()
        with safe_open(str(weights), framework="pt") as handle:
            stored = sum(handle.get_tensor(k).nbytes for k in handle.keys())  # noqa: SIM118
        assert stored == metrics["size_bytes"]


def _progress(log: str) -> list[list[str]]:
    """`[i/n] trial k` of every progress line."""
    return [line.split()[:3] for line in log.splitlines() if line.startswith("[")]


def test_resume_keeps_finished_trials_and_runs_only_the_rest(ran_study: dict[str, Any]) -> None:
    resumed = ran_study["resumed"]
    assert resumed.rc == 0, resumed.err + resumed.log
    first = ran_study["first_trials"]
    after = ran_study["resumed_trials"]
    assert [t.number for t in after] == [0, 1, 2, 3]
    assert all(t.state == TrialState.COMPLETE for t in after)
    for old in first:
        new = after[old.number]
        assert (new.values, new.params, new.user_attrs["metrics"], new.datetime_complete) == (
            old.values,
            old.params,
            old.user_attrs["metrics"],
            old.datetime_complete,
        )
    assert "2 trials done, running up to 2 more" in resumed.log
    assert _progress(resumed.log) == [["[3/4]", "trial", "2"], ["[4/4]", "trial", "3"]]
    # the resumed sampler does not replay the first run's draws
    assert after[2].params not in (after[0].params, after[1].params)
    assert table_trial_numbers(resumed.out) == ran_study["resumed_front"]

    again = ran_study["again"]
    assert again.rc == 0, again.err + again.log
    assert "nothing to run" in again.log and _progress(again.log) == []
    assert [(t.number, t.datetime_complete) for t in ran_study["again_trials"]] == [
        (t.number, t.datetime_complete) for t in after
    ]
    assert table_trial_numbers(again.out) == ran_study["again_front"] == ran_study["resumed_front"]


def test_export_round_trip(
    ran_study: dict[str, Any], tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    import onnxruntime

    monkeypatch.chdir(tmp_path)
    url = ran_study["url"]
    out_dir = tmp_path / "export"
    argv = ["pareto", "--storage", url, "--export", str(out_dir)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "test_clean_accuracy" in printed

    study = load(url, "tiny")
    front = sorted(t.number for t in study.best_trials)
    assert front, "a complete study has a non-empty front"
    tables = {
        "pareto.csv",
        "pareto.json",
        "pareto.png",
        "pareto.html",
        "hv_history.png",
        "latency_vs_flops.png",
    }
    expected = {*tables, *(f"trial-{n}" for n in front)}
    assert {p.name for p in out_dir.iterdir()} == expected
    assert table_trial_numbers(printed) == front
    assert sorted(pd.read_csv(out_dir / "pareto.csv")["trial"]) == front
    rows = json.loads((out_dir / "pareto.json").read_text())
    assert sorted(row["trial"] for row in rows) == front
    assert (out_dir / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    images, labels = val_tensors(ran_study["config"])
    for number in front:
        trial = study.trials[number]
        member = out_dir / f"trial-{number}"
        metrics = json.loads((member / "metrics.json").read_text())
        int8 = {"model.int8.onnx"} if "int8_onnx" in metrics else set()  # layers <= 8 bits
        assert {p.name for p in member.iterdir()} == set(MEMBER_FILES) - {"model.int8.onnx"} | int8
        assert metrics["trial"] == number
        assert metrics["validation"] == trial.user_attrs["metrics"]
        assert 0.0 <= metrics["test"]["robust_accuracy"] <= metrics["test"]["clean_accuracy"] <= 1
        assert metrics["threat_model"]["epsilon"] == ran_study["config"]["evaluation"]["epsilon"]
        recipe = yaml.safe_load((member / "recipe.yaml").read_text())
        assert recipe["trial"] == number and recipe["params"] == trial.params

        # the exported weights are the scored ones: same clean accuracy on the same split
        model = load_model(member)
        with torch.no_grad():
            logits = model(images)
        accuracy = (logits.argmax(1) == labels).float().mean().item()
        assert abs(accuracy - metrics["validation"]["clean_accuracy"]) <= 0.005

        with safe_open(str(member / "model.safetensors"), framework="pt") as handle:
            stored = sum(handle.get_tensor(k).nbytes for k in handle.keys())  # noqa: SIM118
        assert stored == metrics["validation"]["size_bytes"]

        session = onnxruntime.InferenceSession(
            str(member / "model.onnx"), providers=["CPUExecutionProvider"]
        )
        onnx_logits = session.run(None, {session.get_inputs()[0].name: images.numpy()})[0]
        agreement = float(np.mean(onnx_logits.argmax(1) == logits.argmax(1).numpy()))
        assert agreement >= 0.99, f"trial {number}: ONNX agrees on {agreement:.3f} only"

    # a second export to the same folder is refused and changes nothing
    before = snapshot(out_dir)
    time.sleep(0.01)
    assert main(argv) == 2
    captured = capsys.readouterr()
    line = error_line(captured.err)
    assert "--export" in line and "--force" in line
    assert captured.out == ""
    assert snapshot(out_dir) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # no staging left over

    assert main([*argv, "--force"]) == 0
    capsys.readouterr()
    after = snapshot(out_dir)
    assert set(after) == set(before)
    assert after["pareto.json"][0] != before["pareto.json"][0], "--force did not rewrite"
    for number in front:  # the same stored weights are exported again
        key = f"trial-{number}/model.safetensors"
        assert after[key][1] == before[key][1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_pareto_json_and_trials_csv(ran_study: dict[str, Any], tmp_path: Path, capsys) -> None:
    url = ran_study["url"]
    study = load(url, "tiny")

    assert main(["pareto", "--storage", url, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert isinstance(rows, list)
    assert sorted(row["trial"] for row in rows) == sorted(t.number for t in study.best_trials)
    for row in rows:
        stored = study.trials[row["trial"]].user_attrs["metrics"]
        # to_json keeps 10 decimals, so compare to that precision
        for name in METRICS:
            assert row[name] == pytest.approx(stored[name], rel=1e-9, abs=1e-10), name

    csv = tmp_path / "trials.csv"
    assert main(["trials", "--storage", url, "--study", "tiny", "--csv", str(csv)]) == 0
    frame = pd.read_csv(csv)
    assert len(frame) == len(study.trials) == 4
    assert "state" in frame.columns
    assert sorted(frame["trial"]) == [0, 1, 2, 3]
    assert set(frame["state"]) == {"COMPLETE"}
    assert all(f"params.{name}" in frame.columns for name in study.trials[0].params)

    assert main(["trials", "--storage", url]) == 0
    table = capsys.readouterr().out
    assert "state" in table.splitlines()[0]
    assert table.count("COMPLETE") == 4


# ------------------------------------------------------------------------ a checkpoint


def base_info():
    return load_splits(DataConfig(), 0).info


def test_run_from_a_valid_checkpoint(
    tiny_config, write_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog, capsys
) -> None:
    from search.study import StudySetup, load_config

    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO, logger="search")
    torch.manual_seed(123)
    model = build_model("digits-cnn", base_info())
    checkpoint = tmp_path / "base.pt"
    torch.save(model.state_dict(), checkpoint)
    tiny_config.update(study="from-checkpoint", trials=1)
    tiny_config["space"]["epochs"] = [0, 0]  # no fine-tuning: the checkpoint is the subject
    config = write_config(tiny_config)

    rc = main(
        ["run", str(config), "--storage", "sqlite:///study.db", "--checkpoint", str(checkpoint)]
    )
    assert rc == 0
    study = load("sqlite:///study.db", "from-checkpoint")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE]
    assert study.user_attrs["config"]["model"]["checkpoint"] == str(checkpoint)
    assert "base model:" not in caplog.text  # neither trained nor taken from the cache
    assert table_trial_numbers(capsys.readouterr().out) == [0]

    # and the base every trial starts from is exactly the checkpoint
    setup = StudySetup.build(load_config(config, overrides={"model.checkpoint": str(checkpoint)}))
    for key, value in model.state_dict().items():
        assert torch.equal(setup.base_model.state_dict()[key].cpu(), value), key


# ---------------------------------------------------------------------------- bad input


def _random_bytes(path: Path) -> Path:
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return path


def _other_architecture(path: Path) -> Path:
    torch.save(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).state_dict(), path)
    return path


def _other_head(path: Path) -> Path:
    info = base_info()
    fewer = type(info)(5, info.in_channels, info.image_size, info.mean, info.std)
    torch.save(build_model("digits-cnn", fewer).state_dict(), path)
    return path


def _existing_storage(path: Path) -> str:
    """A storage holding one aer-search study (created as `search run` does, no trials)."""
    from conftest import TINY

    from search.study import open_storage, open_study

    url = sqlite_url(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        open_study(
            config_from_dict({**copy.deepcopy(TINY), "study": "existing"}), open_storage(url)
        )
    return url


DB = ["--storage", "sqlite:///study.db"]

# id -> (config change, argv after the command given the tmp folder and config, field)
BAD_RUNS = {
    "unknown-key": (lambda c: c.update(colour="red"), lambda t, c: ["run", c, *DB], "'colour'"),
    "unknown-nested-key": (
        lambda c: c["space"].update(bitz=[8]),
        lambda t, c: ["run", c, *DB],
        "'space.bitz'",
    ),
    "sparsity-above-one": (
        lambda c: c["space"].update(sparsity=[0, 1.2]),
        lambda t, c: ["run", c, *DB],
        "'space.sparsity'",
    ),
    "bits-nine": (
        lambda c: c["space"].update(bits=[9]),
        lambda t, c: ["run", c, *DB],
        "'space.bits'",
    ),
    "negative-epsilon": (
        lambda c: c["space"].update(epsilon=[-0.1, 0.1]),
        lambda t, c: ["run", c, *DB],
        "'space.epsilon'",
    ),
    "negative-epochs": (
        lambda c: c["space"].update(epochs=[-1, 1]),
        lambda t, c: ["run", c, *DB],
        "'space.epochs'",
    ),
    "zero-trials-flag": (None, lambda t, c: ["run", c, *DB, "--trials", "0"], "'trials'"),
    "bad-device-flag": (None, lambda t, c: ["run", c, *DB, "--device", "gpu"], "--device"),
    "missing-config": (None, lambda t, c: ["run", str(t / "nope.yaml"), *DB], "CONFIG"),
    "missing-checkpoint": (
        None,
        lambda t, c: ["run", c, *DB, "--checkpoint", str(t / "nope.pt")],
        "'model.checkpoint'",
    ),
    "unreadable-checkpoint": (
        None,
        lambda t, c: ["run", c, *DB, "--checkpoint", str(_random_bytes(t / "junk.pt"))],
        "'model.checkpoint'",
    ),
    "other-architecture-checkpoint": (
        None,
        lambda t, c: ["run", c, *DB, "--checkpoint", str(_other_architecture(t / "linear.pt"))],
        "'model.checkpoint'",
    ),
    "other-head-checkpoint": (
        None,
        lambda t, c: ["run", c, *DB, "--checkpoint", str(_other_head(t / "five.pt"))],
        "'model.checkpoint'",
    ),
    "unknown-scheme": (None, lambda t, c: ["run", c, "--storage", "notascheme://x"], "--storage"),
    "sqlite-missing-dir": (
        None,
        lambda t, c: ["run", c, "--storage", "sqlite:////nonexistent/dir/x.db"],
        "--storage",
    ),
    "journal-missing-dir": (
        None,
        lambda t, c: ["run", c, "--storage", "journal:/nonexistent/dir/x.log"],
        "--storage",
    ),
    "unreachable-postgres": (
        None,
        lambda t, c: ["run", c, "--storage", "postgresql://postgres@127.0.0.1:1/test"],
        "--storage",
    ),
    "unknown-backend": (None, lambda t, c: ["run", c, *DB, "--backend", "dask"], "--backend"),
    "pareto-missing-storage": (
        None,
        lambda t, c: ["pareto", "--storage", sqlite_url(t / "missing.db")],
        "--storage",
    ),
    "pareto-default-storage-missing": (None, lambda t, c: ["pareto"], "--storage"),
    "trials-missing-journal": (
        None,
        lambda t, c: ["trials", "--storage", f"journal:{t / 'missing.log'}"],
        "--storage",
    ),
    "pareto-unknown-study": (
        None,
        lambda t, c: [
            "pareto",
            "--study",
            "nope",
            "--storage",
            _existing_storage(t / "existing.db"),
        ],
        "--study",
    ),
    "export-unknown-study": (
        None,
        lambda t, c: [
            "pareto",
            "--study",
            "nope",
            "--export",
            str(t / "out"),
            "--storage",
            _existing_storage(t / "existing.db"),
        ],
        "--study",
    ),
    "trials-csv-missing-dir": (
        None,
        lambda t, c: [
            "trials",
            "--csv",
            str(t / "no" / "x.csv"),
            "--storage",
            _existing_storage(t / "existing.db"),
        ],
        "--csv",
    ),
}


@pytest.mark.parametrize("case", list(BAD_RUNS), ids=list(BAD_RUNS))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    case: str, tiny_config, write_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    change, make_argv, field = BAD_RUNS[case]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AER_SEARCH_STORAGE", raising=False)
    if change is not None:
        change(tiny_config)
    config = str(write_config(tiny_config))
    argv = make_argv(tmp_path, config)
    before = snapshot(tmp_path)
    capsys.readouterr()

    start = time.monotonic()
    rc = main(argv)
    elapsed = time.monotonic() - start
    captured = capsys.readouterr()

    assert rc == 2, captured.err
    line = error_line(captured.err)
    assert field in line, line
    assert captured.out == ""
    assert snapshot(tmp_path) == before  # no .db, no artifacts, no export, no journal
    assert elapsed < 15


@pytest.mark.parametrize(
    "argv,flag",
    [
        (["run", "--bogus"], "--bogus"),
        (["run", "--trials", "many"], "--trials"),
        (["pareto", "--export"], "--export"),
        (["frobnicate"], "frobnicate"),
    ],
)
def test_argparse_errors_exit_2(
    argv: list[str], flag: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert re.match(r"search( \w+)?: error: ", last) and flag in last, last
    assert list(tmp_path.iterdir()) == []


def test_study_not_made_by_search_is_bad_input(tmp_path: Path, monkeypatch, capsys) -> None:
    """A storage may hold studies of other tools (a shared PostgreSQL): naming one is bad
    input (exit 2, one line), not a crash."""
    monkeypatch.chdir(tmp_path)
    url = sqlite_url(tmp_path / "shared.db")
    optuna.create_study(study_name="foreign", storage=url)
    before = snapshot(tmp_path)
    try:
        rc = main(["trials", "--storage", url, "--study", "foreign"])
    except Exception as exc:
        pytest.fail(f"`search trials --study foreign` crashed with {exc!r} instead of exit 2")
    captured = capsys.readouterr()
    assert rc == 2
    line = error_line(captured.err)
    assert "foreign" in line
    assert snapshot(tmp_path) == before
