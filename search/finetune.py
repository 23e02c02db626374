"""Fine-tuning a compressed model: standard, adversarial, or blind adversarial (BAP).

- standard: clean cross-entropy (the paper's "standard fine-tune").
- adversarial (arXiv 2403.09441): a few epochs of training on torchattacks PGD examples
  at the trial's epsilon (or FGSM with a random start, the cheap option), optionally
  mixed with the clean loss (`finetune.clean_weight`).
- blind (BAP, arXiv 2004.05913, cutoff-scale): each example's perturbation is cut at the
  first attack step that crosses the decision boundary and then scaled by a factor
  below 1, so the effective budget follows the model rather than a fixed epsilon, which
  then only bounds it.

Weights are trained through the fake-quant parametrizations, so the model learns its
own bit-widths.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torchattacks
from torch import nn
from torch.utils.data import DataLoader

from search.config import FinetuneConfig
from search.errors import TrialFailed
from spaces import Plan

Perturb = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cutoff_scale_examples(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                          max_epsilon: float, steps: int, scale: float) -> torch.Tensor:
    """BAP's adversarial examples: L-inf PGD cut off per sample, then scaled.

    Starting from the clean image, each sample's perturbation follows signed-gradient
    steps of size 2.5 * max_epsilon / steps inside the max_epsilon ball and freezes at
    the first step where the sample is misclassified (the cut-off). Samples that never
    cross keep their last perturbation. Every perturbation is then multiplied by
    `scale` (< 1), which puts the example just inside the boundary it found.
    """
    was_training = model.training
    model.eval()
    step = 2.5 * max_epsilon / steps
    delta = torch.zeros_like(images)
    cut = torch.zeros_like(images)
    active = torch.ones(len(images), dtype=torch.bool, device=images.device)
    with torch.no_grad():
        fooled = model(images).argmax(1) != labels
    active &= ~fooled  # already wrong: no perturbation needed
    for _ in range(steps):
        if not active.any():
            break
        delta.requires_grad_(True)
        loss = nn.functional.cross_entropy(model(images + delta), labels)
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            moved = (delta + step * grad.sign()).clamp(-max_epsilon, max_epsilon)
            moved = (images + moved).clamp(0, 1) - images
            delta = torch.where(active.view(-1, 1, 1, 1), moved, delta.detach())
            crossed = active & (model(images + delta).argmax(1) != labels)
            cut[crossed] = delta[crossed]
            active &= ~crossed
    cut[active] = delta[active].detach()
    model.train(was_training)
    return (images + scale * cut).clamp(0, 1).detach()


def make_perturb(model: nn.Module, plan: Plan, config: FinetuneConfig) -> Perturb | None:
    """The training-time perturbation of a plan's strategy, or None for clean training."""
    if plan.strategy == "standard" or plan.epsilon <= 0:
        return None
    if plan.strategy == "blind":
        return lambda x, y: cutoff_scale_examples(model, x, y, plan.epsilon, config.steps,
                                                  config.blind_scale)
    if config.attack == "fgsm":
        return torchattacks.FFGSM(model, eps=plan.epsilon, alpha=1.25 * plan.epsilon)
    return torchattacks.PGD(model, eps=plan.epsilon, alpha=2.5 * plan.epsilon / config.steps,
                            steps=config.steps, random_start=True)


def finetune(model: nn.Module, loader: DataLoader, plan: Plan, config: FinetuneConfig,
             device: torch.device) -> list[float]:
    """Train `model` in place for `plan.epochs` epochs; returns each epoch's mean loss."""
    if plan.epochs == 0:
        return []
    perturb = make_perturb(model, plan, config)
    loss_fn = nn.CrossEntropyLoss()

    def batch_loss(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if perturb is None:
            return loss_fn(model(images), labels)
        loss = loss_fn(model(perturb(images, labels)), labels)  # crafted in eval mode
        if config.clean_weight > 0:
            clean = loss_fn(model(images), labels)
            loss = config.clean_weight * clean + (1 - config.clean_weight) * loss
        return loss

    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    return run_epochs(model, loader, plan.epochs, optimizer, batch_loss, device)


def train_base(model: nn.Module, loader: DataLoader, epochs: int, lr: float,
               device: torch.device) -> list[float]:
    """Standard training of the uncompressed base model (cosine-decayed Adam)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(epochs, 1))
    loss_fn = nn.CrossEntropyLoss()
    return run_epochs(model, loader, epochs, optimizer,
                      lambda images, labels: loss_fn(model(images), labels), device,
                      after_epoch=schedule.step)


def run_epochs(model: nn.Module, loader: DataLoader, epochs: int,
               optimizer: torch.optim.Optimizer,
               batch_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
               device: torch.device,
               after_epoch: Callable[[], object] | None = None) -> list[float]:
    """The training loop both trainers share; a non-finite loss fails the trial."""
    losses = []
    for epoch in range(epochs):
        model.train()
        total, count = 0.0, 0
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            loss = batch_loss(images, labels)
            if not math.isfinite(loss.item()):
                raise TrialFailed(f"training loss is {loss.item()} in epoch {epoch + 1}")
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(labels)
            count += len(labels)
        if after_epoch is not None:
            after_epoch()
        losses.append(total / max(count, 1))
    model.eval()
    return losses
