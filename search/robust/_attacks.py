"""Clean and robust accuracy under the study's one threat model.

Attacks (torchattacks) run on the differentiable view of the compressed model: the
fake-quant parametrizations pass gradients straight through, so quantization cannot
fake robustness by masking them. Inputs are pixels in [0, 1], perturbations live in
that space (models normalise inside), and torchattacks clips adversarial images to it.

A sample counts as robust only if it is classified correctly clean and under every
attack of the list (each PGD restart is one more attack), so robust accuracy can never
exceed clean accuracy. The search scores with `search_attacks`; the front is re-scored
on the test split with the stronger `final_attacks`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torchattacks
from torch import nn
from torch.utils.data import DataLoader
from torchattacks.attack import Attack

from search.config import EvaluationConfig
from search.robust._autoattack import standard_autoattack
from search.robust._threat_model import NORMS

AttackFactory = Callable[[nn.Module], Attack]


def clean_accuracy(model: nn.Module, loader: DataLoader, device: torch.device) -> float:
    was_training = model.training
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            correct += (model(images).argmax(1) == labels).sum().item()
            total += len(labels)
    model.train(was_training)
    return correct / max(total, 1)


def _pgd(threat: EvaluationConfig, steps: int) -> AttackFactory:
    if threat.norm == "l2":
        return lambda m: torchattacks.PGDL2(
            m, eps=threat.epsilon, alpha=threat.step_size, steps=steps, random_start=True
        )
    return lambda m: torchattacks.PGD(
        m, eps=threat.epsilon, alpha=threat.step_size, steps=steps, random_start=True
    )


def search_attacks(threat: EvaluationConfig, steps: int | None = None) -> list[AttackFactory]:
    """PGD with a random start, once per restart: what scores trials during the search."""
    return [_pgd(threat, steps or threat.steps)] * threat.restarts


def final_attacks(
    threat: EvaluationConfig, seed: int = 0, n_classes: int = 10
) -> list[AttackFactory]:
    """The stronger attack that re-scores the front on the test split."""
    norm = NORMS[threat.norm]
    if threat.final_attack == "autoattack":
        return [
            lambda m: standard_autoattack(
                m, norm=norm, eps=threat.epsilon, n_classes=n_classes, seed=seed
            )
        ]
    if threat.final_attack == "apgd":

        def apgd(loss: str) -> AttackFactory:
            return lambda m: torchattacks.APGD(
                m,
                norm=norm,
                eps=threat.epsilon,
                steps=threat.final_steps,
                n_restarts=threat.final_restarts,
                loss=loss,
                seed=seed,
            )

        return [apgd(loss) for loss in ("ce", "dlr")]
    return [_pgd(threat, threat.final_steps)] * threat.final_restarts


def robust_accuracy(
    model: nn.Module,
    loader: DataLoader,
    threat: EvaluationConfig,
    device: torch.device,
    seed: int = 0,
    attacks: Sequence[AttackFactory] | None = None,
    source: nn.Module | None = None,
) -> float:
    """Fraction of samples correct clean and under every attack (seeded, repeatable).

    `attacks` defaults to the search attacks of `threat`. With `source`, adversarial
    examples are crafted on `source` and evaluated on `model` (a transfer attack).
    """
    attacks = search_attacks(threat) if attacks is None else attacks
    return robust_after_each(model, loader, device, attacks, seed, source)[-1]


def robust_after_each(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    attacks: Sequence[AttackFactory],
    seed: int = 0,
    source: nn.Module | None = None,
) -> list[float]:
    """Clean accuracy, then the fraction still robust after each attack in turn.

    Each attack runs only on the examples every earlier one left standing, so entry k
    is robust accuracy under the first k attacks together and the drops between entries
    say which attack broke how much (the split of a robust-accuracy gap by attack).
    """
    crafter = model if source is None else source
    modes = (model.training, crafter.training)
    model.eval()
    crafter.eval()
    built = [make(crafter) for make in attacks]
    rng_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    robust = [0] * (len(built) + 1)
    total = 0
    try:
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            with torch.no_grad():
                survived = model(images).argmax(1) == labels
            robust[0] += survived.sum().item()
            for index, attack in enumerate(built, start=1):
                if survived.any():
                    adversarial = attack(images[survived], labels[survived])
                    with torch.no_grad():
                        still = model(adversarial).argmax(1) == labels[survived]
                    survived[survived.clone()] = still
                robust[index] += survived.sum().item()
            total += len(labels)
    finally:
        torch.random.set_rng_state(rng_state)
        model.train(modes[0])
        crafter.train(modes[1])
    return [count / max(total, 1) for count in robust]
