"""Clean and robust accuracy under the study's one threat model.

Attacks (torchattacks) run on the differentiable view of the compressed model: the
fake-quant parametrizations pass gradients straight through, so quantization cannot
fake robustness by masking them. Inputs are pixels in [0, 1] and torchattacks clips
adversarial images to that range. A sample counts as robust only if it survives every
random restart.
"""

from __future__ import annotations

import torch
import torchattacks
from torch import nn
from torch.utils.data import DataLoader

from search.config import EvaluationConfig


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


def make_eval_attack(model: nn.Module, threat: EvaluationConfig) -> torchattacks.Attack:
    """The study's evaluation attack; PGD with a random start (one restart per call)."""
    return torchattacks.PGD(model, eps=threat.epsilon, alpha=threat.step_size,
                            steps=threat.steps, random_start=True)


def robust_accuracy(model: nn.Module, loader: DataLoader, threat: EvaluationConfig,
                    device: torch.device, seed: int = 0) -> float:
    """Fraction of samples classified correctly under every restart of the attack."""
    was_training = model.training
    model.eval()
    attack = make_eval_attack(model, threat)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    robust = total = 0
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        survived = torch.ones_like(labels, dtype=torch.bool)
        for _ in range(threat.restarts):
            adversarial = attack(images[survived], labels[survived])
            with torch.no_grad():
                still = model(adversarial).argmax(1) == labels[survived]
            survived[survived.clone()] = still
            if not survived.any():
                break
        with torch.no_grad():
            survived &= model(images).argmax(1) == labels
        robust += survived.sum().item()
        total += len(labels)
    torch.random.set_rng_state(generator_state)
    model.train(was_training)
    return robust / max(total, 1)
