"""Fine-tuning a compressed model: standard, adversarial, blind adversarial (BAP), TRADES.

- standard: clean cross-entropy (the paper's "standard fine-tune").
- adversarial (arXiv 2403.09441): a few epochs of training on torchattacks PGD examples
  at the trial's epsilon (or FGSM with a random start, the cheap option), optionally
  mixed with the clean loss (`finetune.clean_weight`).
- blind (BAP, arXiv 2004.05913, cutoff-scale): each example's perturbation is cut at the
  first attack step that crosses the decision boundary and then scaled by a factor
  below 1, so the effective budget follows the model rather than a fixed epsilon, which
  then only bounds it.
- trades (arXiv 1901.08573, `_trades.py`): clean cross-entropy plus `trades_beta` times
  the KL divergence between the model's outputs at x and at the point of the epsilon
  ball that maximises it (PGD on the KL, `finetune.steps` steps). `clean_weight` does
  not apply: beta already weighs the clean and the robust term.

Epoch-based fine-tuning may keep its best epoch instead of its last (`KeepBest`, Rice
et al. 2020) and survive a kill (`EpochCheckpoint`, for the long runs from scratch).

Weights are trained through the fake-quant parametrizations, so the model learns its
own bit-widths.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torchattacks
from torch import nn
from torch.utils.data import DataLoader

from search.config import FinetuneConfig
from search.core import TrialFailed
from search.robust._cutoff_scale import CutoffScale
from search.robust._epoch_checkpoint import EpochCheckpoint, Stateful
from search.robust._keep_best import KeepBest
from search.robust._trades import trades_examples, trades_loss
from spaces import Plan

log = logging.getLogger(__name__)

Perturb = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
BatchLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cutoff_scale_examples(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    max_epsilon: float,
    steps: int,
    scale: float,
) -> torch.Tensor:
    """BAP's adversarial examples (`CutoffScale`); the model's mode is kept as it was."""
    return CutoffScale(model, eps=max_epsilon, steps=steps, scale=scale)(images, labels)


def make_perturb(model: nn.Module, plan: Plan, config: FinetuneConfig) -> Perturb | None:
    """The training-time perturbation of a plan's strategy, or None for clean training."""
    if plan.strategy == "standard" or plan.epsilon <= 0:
        return None
    if plan.strategy == "blind":
        return lambda x, y: cutoff_scale_examples(
            model, x, y, plan.epsilon, config.steps, config.blind_scale
        )
    if plan.strategy == "trades":  # the points TRADES trains on (labels are not used)
        return lambda x, y: trades_examples(model, x, plan.epsilon, config.steps)
    if config.attack == "fgsm":
        return torchattacks.FFGSM(model, eps=plan.epsilon, alpha=1.25 * plan.epsilon)
    return torchattacks.PGD(
        model,
        eps=plan.epsilon,
        alpha=2.5 * plan.epsilon / config.steps,
        steps=config.steps,
        random_start=True,
    )


def finetune(
    model: nn.Module,
    loader: DataLoader,
    plan: Plan,
    config: FinetuneConfig,
    device: torch.device,
    *,
    keep_best: KeepBest | None = None,
    checkpoint_path: Path | None = None,
) -> list[float]:
    """Train `model` in place for `plan.epochs` epochs; returns each epoch's mean loss.

    With `keep_best` (built on `model`), the model ends with its best epoch's weights.
    With `checkpoint_path`, the run's state (the best epoch's too) is kept there after
    every epoch and a rerun resumes from it (`EpochCheckpoint`).
    """
    if plan.epochs == 0:
        return []
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    batch_loss = make_batch_loss(model, plan, config)
    parts: dict[str, Stateful] = {"model": model, "optimizer": optimizer}
    if keep_best is not None:
        parts["best"] = keep_best
    checkpoint = EpochCheckpoint(checkpoint_path, **parts) if checkpoint_path else None
    losses = run_epochs(
        model,
        loader,
        plan.epochs,
        optimizer,
        batch_loss,
        device,
        after_epoch=keep_best.after_epoch if keep_best is not None else None,
        checkpoint=checkpoint,
    )
    if keep_best is not None:
        keep_best.restore()
    return losses


def trades_beta(plan: Plan, config: FinetuneConfig) -> float:
    """The plan's own beta when the space searches it, else `finetune.trades_beta`."""
    return plan.trades_beta if plan.trades_beta is not None else config.trades_beta


def make_batch_loss(model: nn.Module, plan: Plan, config: FinetuneConfig) -> BatchLoss:
    """The loss of one batch under the plan's strategy (clean, adversarial or blind,
    optionally mixed with the clean loss by `finetune.clean_weight`, or TRADES)."""
    if plan.strategy == "trades" and plan.epsilon > 0:
        beta = trades_beta(plan, config)
        return lambda images, labels: trades_loss(
            model, images, labels, epsilon=plan.epsilon, steps=config.steps, beta=beta
        )
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

    return batch_loss


def train_base(
    model: nn.Module,
    loader: DataLoader,
    epochs: int,
    lr: float,
    device: torch.device,
    checkpoint_path: Path | None = None,
) -> tuple[list[float], float]:
    """Standard training of the uncompressed base model (cosine-decayed Adam).

    With `checkpoint_path`, the run's state is kept there after every epoch and a rerun
    resumes from it (`EpochCheckpoint`). Returns the epochs' losses and the CPU-seconds
    of the whole run, killed attempts included.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(epochs, 1))
    loss_fn = nn.CrossEntropyLoss()
    checkpoint = None
    if checkpoint_path is not None:
        checkpoint = EpochCheckpoint(
            checkpoint_path, model=model, optimizer=optimizer, schedule=schedule
        )
    cpu_start = time.process_time()
    started = time.monotonic()
    ran_from: list[int] = []  # the epoch this process started at (a resumed run's later)

    def after_epoch() -> None:
        schedule.step()
        done = int(schedule.last_epoch)
        ran_from.append(done - 1)
        elapsed = time.monotonic() - started
        left = elapsed / (done - ran_from[0]) * (epochs - done)
        log.info("base model: epoch %d/%d, %.0f s, ~%.0f s left", done, epochs, elapsed, left)

    losses = run_epochs(
        model,
        loader,
        epochs,
        optimizer,
        lambda images, labels: loss_fn(model(images), labels),
        device,
        after_epoch=after_epoch,
        checkpoint=checkpoint,
    )
    cpu = checkpoint.cpu_seconds() if checkpoint else time.process_time() - cpu_start
    return losses, cpu


def run_epochs(
    model: nn.Module,
    loader: DataLoader,
    epochs: int,
    optimizer: torch.optim.Optimizer,
    batch_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    device: torch.device,
    after_epoch: Callable[[], object] | None = None,
    checkpoint: EpochCheckpoint | None = None,
) -> list[float]:
    """The training loop both trainers share; a non-finite loss fails the trial.

    With a `checkpoint`, the run starts after the epochs it already holds and saves
    itself after each epoch; it is discarded once the last epoch is done.
    """
    done, losses = checkpoint.restore(loader) if checkpoint is not None else (0, [])
    for epoch in range(done, epochs):
        model.train()
        total, count = 0.0, 0
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            total += train_step(optimizer, batch_loss, images, labels, f"in epoch {epoch + 1}")
            count += len(labels)
        if after_epoch is not None:
            after_epoch()
        losses.append(total / max(count, 1))
        if checkpoint is not None and epoch + 1 < epochs:
            checkpoint.save(loader, epoch + 1, losses)
    if checkpoint is not None:
        checkpoint.discard()
    model.eval()
    return losses


def train_step(
    optimizer: torch.optim.Optimizer,
    batch_loss: BatchLoss,
    images: torch.Tensor,
    labels: torch.Tensor,
    where: str,
) -> float:
    """One optimizer step on one batch; returns the batch's summed loss. A non-finite
    loss fails the trial, saying `where` it happened."""
    loss = batch_loss(images, labels)
    if not math.isfinite(loss.item()):
        raise TrialFailed(f"training loss is {loss.item()} {where}")
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item() * len(labels)
