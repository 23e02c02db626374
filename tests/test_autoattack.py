"""Standard AutoAttack at its published budgets, alone and as the cascade's final step.

torchattacks' own `AutoAttack(version="standard")` runs APGD, APGD-T and FAB at 10
iterations; ours must run the standard 100 and attack the examples each earlier attack
left standing, so it can only lower APGD-CE's robust accuracy.
"""

from __future__ import annotations

import torch
from torch import nn
from torchattacks import APGD, APGDT, FAB, Square

from search.config import EvaluationConfig
from search.robust import (
    AUTOATTACK_PARTS,
    final_attacks,
    robust_accuracy,
    robust_after_each,
    standard_autoattack,
)
from search.robust._cascade import _final

EPS = 0.1


def tiny_model_and_data() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A small MLP fitted on a separable toy problem: 4x4 one-channel images, 4 classes."""
    generator = torch.Generator().manual_seed(0)
    centres = torch.rand(4, 16, generator=generator)
    labels = torch.arange(4).repeat(16)
    noise = 0.15 * torch.randn(64, 16, generator=generator)
    images = (centres[labels] + noise).clamp(0, 1).reshape(64, 1, 4, 4)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    optimiser = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(200):
        optimiser.zero_grad()
        nn.functional.cross_entropy(model(images), labels).backward()
        optimiser.step()
    return model.eval(), images, labels


def test_the_four_attacks_run_at_the_standard_budgets() -> None:
    model, _, _ = tiny_model_and_data()
    attack = standard_autoattack(model, norm="Linf", eps=EPS, n_classes=4)
    apgd, apgdt, fab, square = attack.attacks
    assert isinstance(apgd, APGD) and apgd.loss == "ce" and apgd.steps == 100
    assert isinstance(apgdt, APGDT) and apgdt.steps == 100 and apgdt.n_target_classes == 3
    assert isinstance(fab, FAB) and fab.multi_targeted and fab.steps == 100
    assert isinstance(square, Square) and square.n_queries == 5000
    assert all(a.eps == EPS for a in attack.attacks)


def test_autoattack_only_lowers_apgd_ce_and_stays_in_the_ball() -> None:
    model, images, labels = tiny_model_and_data()
    clean = (model(images).argmax(1) == labels).float().mean().item()
    # smaller budgets than the standard's keep the test fast; the property does not
    # depend on them: MultiAttack runs APGD-CE first, then only on what it left standing
    apgd_ce = APGD(model, norm="Linf", eps=EPS, steps=20, loss="ce", seed=0)
    with torch.no_grad():
        after_ce = model(apgd_ce(images, labels)).argmax(1) == labels
    attack = standard_autoattack(model, norm="Linf", eps=EPS, n_classes=4, steps=20, queries=300)
    adversarial = attack(images, labels)
    assert (adversarial - images).abs().max().item() <= EPS + 1e-6
    assert adversarial.min().item() >= 0 and adversarial.max().item() <= 1
    with torch.no_grad():
        after_all = model(adversarial).argmax(1) == labels
    # every example AutoAttack leaves standing also survived its first attack, APGD-CE
    assert not (after_all & ~after_ce).any()
    assert after_all.float().mean().item() <= after_ce.float().mean().item() <= clean
    assert clean > 0.9  # the toy problem is learnt, so the attacks had work to do


def test_the_final_attack_option_and_the_cascade_use_the_standard_version() -> None:
    model, images, labels = tiny_model_and_data()
    images, labels = images[:16], labels[:16]
    # a budget at which few examples survive APGD-CE keeps the later attacks short
    threat = EvaluationConfig(epsilon=0.25, final_attack="autoattack")
    (factory,) = final_attacks(threat, n_classes=4)
    assert [a.steps for a in factory(model).attacks[:3]] == [100, 100, 100]
    loader = [(images, labels)]
    robust = robust_accuracy(model, loader, threat, torch.device("cpu"), attacks=[factory])  # type: ignore[arg-type]
    standing = model(images).argmax(1) == labels
    survivors = _final(
        model, images, labels, torch.arange(len(labels)), standing, threat, 0, n_classes=4
    )
    # the cascade attacks only the examples standing, with the same attacks and seed: on
    # one batch that holds them all, it finds the same share of robust examples
    assert survivors.float().mean().item() == robust


def test_robust_after_each_splits_the_cascade_by_attack() -> None:
    """Clean first, then the share left after each attack: never rising, its last entry
    the robust accuracy of the attacks together, and each part breaking only survivors."""
    model, images, labels = tiny_model_and_data()
    loader = [(images[:32], labels[:32]), (images[32:], labels[32:])]
    threat = EvaluationConfig(epsilon=EPS, final_steps=10)
    final = final_attacks(threat, n_classes=4)
    parts = [
        (
            lambda m, i=i: standard_autoattack(
                m, "Linf", EPS, n_classes=4, steps=10, queries=200
            ).attacks[i]
        )
        for i in range(len(AUTOATTACK_PARTS))
    ]
    cpu = torch.device("cpu")
    after = robust_after_each(model, loader, cpu, [*final, *parts])  # type: ignore[arg-type]
    assert len(after) == 1 + len(final) + len(AUTOATTACK_PARTS)
    with torch.no_grad():
        assert after[0] == (model(images).argmax(1) == labels).float().mean().item()
    assert after == sorted(after, reverse=True)
    assert after[0] > after[-1]  # the attacks broke something: the split has work to show
    together = robust_accuracy(model, loader, threat, cpu, attacks=[*final, *parts])  # type: ignore[arg-type]
    assert together == after[-1]
    assert robust_after_each(model, loader, cpu, final)[-1] == after[len(final)]  # type: ignore[arg-type]
