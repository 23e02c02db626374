"""Fine-tuning a compressed model: standard (epsilon 0) or adversarial with torchattacks.

Adversarial fine-tuning follows arXiv 2403.09441: a few epochs of PGD training at the
trial's epsilon (or FGSM with a random start, the cheap option). Weights are trained
through the fake-quant parametrizations, so the model learns its own bit-widths.
"""

from __future__ import annotations

import math

import torch
import torchattacks
from torch import nn
from torch.utils.data import DataLoader

from search.config import FinetuneConfig
from search.errors import TrialFailed


def make_train_attack(model: nn.Module, epsilon: float,
                      config: FinetuneConfig) -> torchattacks.Attack | None:
    if epsilon <= 0:
        return None
    if config.attack == "fgsm":
        return torchattacks.FFGSM(model, eps=epsilon, alpha=1.25 * epsilon)
    return torchattacks.PGD(model, eps=epsilon, alpha=2.5 * epsilon / config.steps,
                            steps=config.steps, random_start=True)


def finetune(model: nn.Module, loader: DataLoader, epsilon: float, epochs: int,
             config: FinetuneConfig, device: torch.device) -> list[float]:
    """Train `model` in place; returns the mean loss of each epoch."""
    if epochs == 0:
        return []
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    attack = make_train_attack(model, epsilon, config)
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    for epoch in range(epochs):
        model.train()
        total, count = 0.0, 0
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            if attack is not None:
                images = attack(images, labels)  # crafted in eval mode, then back to train
            loss = loss_fn(model(images), labels)
            if not math.isfinite(loss.item()):
                raise TrialFailed(f"fine-tuning loss is {loss.item()} in epoch {epoch + 1}")
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(labels)
            count += len(labels)
        losses.append(total / max(count, 1))
    model.eval()
    return losses


def train_base(model: nn.Module, loader: DataLoader, epochs: int, lr: float,
               device: torch.device) -> list[float]:
    """Standard training of the uncompressed base model (cosine-decayed Adam)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(epochs, 1))
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    for _ in range(epochs):
        model.train()
        total, count = 0.0, 0
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            loss = loss_fn(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(labels)
            count += len(labels)
        schedule.step()
        losses.append(total / max(count, 1))
    model.eval()
    return losses
