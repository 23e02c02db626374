"""TRADES as a fine-tuning strategy: its examples, its loss, training that lowers it
(through the fake-quant parametrizations, by epochs and by images seen), and a study
that stores it."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import optuna
import pytest
import torch
from torch.utils.data import Subset

from search.robust import (
    BudgetState,
    finetune,
    finetune_images,
    kl_to,
    make_batch_loss,
    trades_examples,
    trades_loss,
)
from search.study import StudySetup, compress, config_from_dict, open_storage, open_study
from search.zoo import make_loader
from spaces import Plan

EPSILON = 0.1
STEPS = 3


def _compressed(setup: StudySetup) -> torch.nn.Module:
    plan = Plan(
        sparsity={name: 0.25 for name in setup.prunable},
        bits={name: 4 for name in setup.quantizable},
    )
    return compress(setup.base_model, plan, setup.input_shape, setup.device)


@pytest.fixture(scope="module")
def train_subset(tiny_setup) -> Subset:
    return Subset(tiny_setup.splits.train, range(256))


def _batch(data: Subset, n: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    return next(iter(make_loader(data, n)))


def test_trades_examples_stay_in_the_ball_and_raise_the_kl(tiny_setup, val_batch_loader) -> None:
    """Guards: x' lies in the Linf ball and in [0, 1], is crafted in eval mode without
    changing the caller's mode, and moves the outputs far more than a random point."""
    model = _compressed(tiny_setup).train()
    images, _ = next(iter(val_batch_loader))
    torch.manual_seed(0)
    adversarial = trades_examples(model, images, EPSILON, STEPS)
    assert model.training
    assert (adversarial - images).abs().max() <= EPSILON + 1e-6
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    noise = (images + EPSILON * torch.empty_like(images).uniform_(-1, 1)).clamp(0, 1)
    model.eval()
    with torch.no_grad():
        clean = model(images)
        crafted_kl = kl_to(clean, model(adversarial)).item()
        random_kl = kl_to(clean, model(noise)).item()
    assert crafted_kl > 3 * random_kl, (crafted_kl, random_kl)


def test_the_plans_beta_weighs_the_kl_term(tiny_setup, val_batch_loader) -> None:
    """Guards: loss = CE + beta * KL, with the plan's searched beta before the config's."""
    model = _compressed(tiny_setup).eval()
    images, labels = next(iter(val_batch_loader))
    config = dataclasses.replace(tiny_setup.config.finetune, trades_beta=1.0, steps=STEPS)
    losses = {}
    for beta in (None, 6.0):
        plan = Plan(epsilon=EPSILON, strategy="trades", trades_beta=beta)
        torch.manual_seed(0)
        losses[beta] = make_batch_loss(model, plan, config)(images, labels).item()
    torch.manual_seed(0)
    adversarial = trades_examples(model, images, EPSILON, STEPS)
    with torch.no_grad():
        kl = kl_to(model(images), model(adversarial)).item()
    assert kl > 0
    assert losses[6.0] - losses[None] == pytest.approx(5 * kl, rel=1e-4)


def test_trades_finetuning_lowers_the_trades_loss(tiny_setup, train_subset) -> None:
    """Guards: two epochs of TRADES on a pruned 4-bit model lower its TRADES loss on the
    images it trained on, by training the fake-quant weights (`...original`)."""
    model = _compressed(tiny_setup)
    images, labels = _batch(train_subset)
    config = dataclasses.replace(tiny_setup.config.finetune, steps=STEPS)
    plan = Plan(epsilon=EPSILON, epochs=2, strategy="trades")

    def loss() -> float:
        torch.manual_seed(5)
        model.eval()
        return trades_loss(
            model, images, labels, epsilon=EPSILON, steps=STEPS, beta=config.trades_beta
        ).item()

    before_loss = loss()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(0)
    losses = finetune(model, make_loader(train_subset, 32, shuffle=True), plan, config, "cpu")
    assert len(losses) == 2
    after_loss = loss()
    assert after_loss < 0.8 * before_loss, (before_loss, after_loss)
    changed = [k for k, v in before.items() if not torch.equal(model.state_dict()[k], v)]
    assert any(k.endswith("original") for k in changed), changed


def test_budgeted_trades_in_pieces_equals_training_straight(tiny_setup, train_subset) -> None:
    """Guards: the multi-fidelity path resumes TRADES exactly (its random starts are in
    the saved RNG state); stopping short ends elsewhere, so the comparison can fail."""
    plan = Plan(epsilon=EPSILON, strategy="trades", trades_beta=3.0)
    config = dataclasses.replace(tiny_setup.config.finetune, steps=2)
    common = dict(total=192, batch_size=32, seed=3)

    def run(pieces: list[int]) -> torch.nn.Module:
        torch.manual_seed(1)
        model = _compressed(tiny_setup)
        state: BudgetState | None = None
        for until in pieces:
            state = finetune_images(
                model, train_subset, plan, config, "cpu", until=until, state=state, **common
            )
            torch.rand(100)  # scoring a rung in between draws random numbers
        return model

    straight, pieces, short = run([192]), run([64, 192]), run([128])
    images, _ = _batch(train_subset, 64)
    with torch.no_grad():
        assert torch.allclose(straight(images), pieces(images), atol=1e-5)
        assert not torch.allclose(straight(images), short(images), atol=1e-3)


@pytest.mark.parametrize(
    ("fidelity", "searched"),
    [(True, [1.0, 6.0]), (False, None)],
    ids=["multi-fidelity, beta searched", "epochs, beta from config"],
)
def test_a_trades_study_stores_its_strategy_and_beta(
    tiny_config, tmp_path: Path, fidelity: bool, searched: list[float] | None
) -> None:
    """Guards: trials of strategy trades run through the real study (budgeted or by
    epochs) and store the strategy and the beta they trained with."""
    from search.backends._optuna import run_study
    from search.study import artifact_store

    tiny_config.update(trials=2, study=f"trades-{fidelity}")
    tiny_config["space"].update(epsilon=[0.1, 0.1], epochs=[1, 1], strategies=["trades"])
    if searched is not None:
        tiny_config["space"]["trades_beta"] = searched
    tiny_config["finetune"].update(trades_beta=3.0, samples_per_epoch=256)
    if fidelity:
        tiny_config["fidelity"] = {"enabled": True, "min_images": 128, "max_images": 384}
    config = config_from_dict(copy.deepcopy(tiny_config))
    setup = StudySetup.build(config)
    assert ("trades_beta" in {p.name for p in setup.space()}) == (searched is not None)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = open_study(config, open_storage(url))
    run_study(config, setup, study, artifact_store(url, str(tmp_path / "artifacts")))
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(complete) == 2
    for trial in complete:
        plan = trial.user_attrs["plan"]
        assert plan["strategy"] == "trades" and plan["epsilon"] == pytest.approx(0.1)
        if searched is None:
            assert plan["trades_beta"] == 3.0
        else:
            assert plan["trades_beta"] == trial.params["trades_beta"]
            assert 1.0 <= plan["trades_beta"] <= 6.0
        if fidelity:
            assert trial.user_attrs["rungs"], "the budgeted path ran"
