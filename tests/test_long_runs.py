"""Long adversarial training runs: keep the best epoch (Rice et al. 2020), resume the
from-scratch baselines after a kill, and give a killed trial's budget slot back."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import optuna
import pytest
import torch
from torch.utils.data import Subset

from search.robust import EpochCheckpoint, KeepBest, finetune, robust_accuracy
from search.study import (
    StudySetup,
    baseline_config,
    compress,
    config_from_dict,
    open_storage,
    open_study,
    run_trial,
)
from search.zoo import make_loader
from spaces import Plan


def test_keep_best_ends_with_the_best_epochs_weights(tiny_setup) -> None:
    """Guards: with scores 0.2, 0.5, 0.3 the model ends with epoch 2's weights, not
    epoch 3's (the last), and the summary says so."""
    model = compress(tiny_setup.base_model, Plan(bits={"conv1": 4}), tiny_setup.input_shape, "cpu")
    snapshots: list[dict[str, torch.Tensor]] = []
    scripted = iter([0.2, 0.5, 0.3])

    def score(candidate: torch.nn.Module) -> float:
        snapshots.append({k: v.clone() for k, v in candidate.state_dict().items()})
        return next(scripted)

    keep = KeepBest(model, score)
    loader = make_loader(Subset(tiny_setup.splits.train, range(128)), 32, shuffle=True)
    plan = Plan(epsilon=0.1, epochs=3, strategy="adversarial")
    finetune(model, loader, plan, tiny_setup.config.finetune, "cpu", keep_best=keep)
    assert keep.summary() == {"best_epoch": 2, "scores": [0.2, 0.5, 0.3]}
    final = model.state_dict()
    assert all(torch.equal(final[k], v) for k, v in snapshots[1].items())
    assert not all(torch.equal(final[k], v) for k, v in snapshots[2].items())


def _trades_training(tiny_config: dict, epochs: int = 3) -> StudySetup:
    tiny_config["model"]["base_epochs"] = epochs
    tiny_config["model"]["base_samples_per_epoch"] = 256
    tiny_config["finetune"].update(keep_best=True, keep_best_samples=64)
    config = baseline_config(config_from_dict(copy.deepcopy(tiny_config)), "trades-training")
    return StudySetup.build(config)


def _params(setup: StudySetup) -> dict:
    return {p.name: p.low if p.kind != "categorical" else p.choices[0] for p in setup.space()}


def test_a_trial_keeps_its_best_epoch_on_the_held_out_attack(tiny_config) -> None:
    """Guards: the trades-training baseline trains from scratch with TRADES; with
    keep_best its notes name the best epoch, and the model it ends with scores that
    epoch's held-out robust accuracy."""
    setup = _trades_training(tiny_config)
    plan = setup.plan(_params(setup))
    assert plan.from_scratch and plan.strategy == "trades" and plan.epochs == 3
    outcome = run_trial(setup, _params(setup))
    kept = outcome.notes["keep_best"]
    scores = kept["scores"]
    assert len(scores) == 3
    assert scores[kept["best_epoch"] - 1] == max(scores)
    assert kept["best_epoch"] == max(i + 1 for i, s in enumerate(scores) if s == max(scores))
    held_out = make_loader(Subset(setup.val_loader.dataset, range(64)), 256)
    cfg = setup.config
    again = robust_accuracy(outcome.model, held_out, cfg.evaluation, setup.device, cfg.seed)
    assert again == max(scores)


def test_a_killed_training_baseline_resumes_and_ends_the_same(
    tiny_config, tmp_path: Path, monkeypatch
) -> None:
    """Guards: the trades-training baseline stopped after epoch 1 (an exception in the
    per-epoch save, as a kill) is resumed by the next trial with the same params (another
    trial number) and ends with the weights, metrics and best epoch of an unkilled run."""
    setup = _trades_training(tiny_config)  # base model from the session's cache
    params = _params(setup)

    monkeypatch.setenv("AER_SEARCH_CACHE", str(tmp_path / "straight"))
    straight = run_trial(setup, params, number=0)

    monkeypatch.setenv("AER_SEARCH_CACHE", str(tmp_path / "killed"))
    real_save = EpochCheckpoint.save

    def save_then_die(self, loader, epoch, losses) -> None:
        real_save(self, loader, epoch, losses)
        raise KeyboardInterrupt("killed after epoch 1")

    monkeypatch.setattr(EpochCheckpoint, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_trial(setup, params, number=0)
    (saved,) = (tmp_path / "killed" / "runs").glob("train-*.pt")
    assert torch.load(saved, weights_only=True)["epoch"] == 1
    monkeypatch.setattr(EpochCheckpoint, "save", real_save)

    resumed = run_trial(setup, params, number=1)
    assert not saved.exists()  # a finished run leaves no partial state
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.metrics["robust_accuracy"] == straight.metrics["robust_accuracy"]
    assert resumed.notes["keep_best"] == straight.notes["keep_best"]
    # and without the saved state, trial 1 starts elsewhere: the comparison can fail
    fresh = run_trial(setup, params, number=1)
    c = fresh.model.state_dict()
    assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # study.ask() for the orphan
def test_a_killed_workers_trial_gives_its_budget_slot_back(tiny_config, tmp_path: Path) -> None:
    """Guards: a RUNNING trial whose process is dead is failed, marked interrupted, and
    does not use up the budget: rerunning a 1-trial study runs a trial in its place."""
    import socket

    from search.backends._optuna import run_study
    from search.study import artifact_store

    tiny_config.update(trials=1, study="killed")
    config = config_from_dict(copy.deepcopy(tiny_config))
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = open_study(config, open_storage(url))
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = study.ask()
    orphan.set_user_attr("worker", {"host": socket.gethostname(), "pid": dead.pid})
    setup = StudySetup.build(config)
    run_study(config, setup, study, artifact_store(url, str(tmp_path / "artifacts")))
    trials = study.get_trials()
    assert [t.state for t in trials] == [
        optuna.trial.TrialState.FAIL,
        optuna.trial.TrialState.COMPLETE,
    ]
    assert trials[0].user_attrs["interrupted"] is True
    assert "died mid-trial" in trials[0].user_attrs["fail_reason"]
