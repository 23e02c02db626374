"""Fine-tuning by images seen, resumable: the fidelity of multi-fidelity search.

A trial's fine-tuning budget is a number of training images, not epochs, and it may be
spent in pieces (rung by rung). Everything that decides the next batch is a function of
the images seen so far, so training to budget B in pieces equals training straight to B:

- batches sit on a fixed grid: pass p over the training set uses the permutation seeded
  by (seed, p), cut into batches from its start; a piece ends after the batch that
  reaches its budget, so every piece boundary is a grid point;
- the learning rate follows a cosine from `finetune.lr` down to 0 over the trial's
  whole budget (its top rung), read off the images seen, not a step counter;
- the optimizer's state and the random generator's state (PGD's random starts) travel
  with the piece (`BudgetState`), and are restored before the next one, whatever ran in
  between (scoring a rung attacks the model and draws random numbers).

A state round-trips through `torch.save` / `torch.load(weights_only=True)`: plain
numbers, tensors and dicts, no pickled objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from search.config import FinetuneConfig
from search.robust._finetune import make_batch_loss, train_step
from spaces import Plan


@dataclass
class BudgetState:
    """Where a budgeted fine-tune stands: images seen, optimizer and RNG states."""

    images_seen: int = 0
    optimizer: dict[str, Any] = field(default_factory=dict)
    rng: torch.Tensor | None = None
    losses: list[float] = field(default_factory=list)  # mean loss of each piece

    def to_dict(self) -> dict[str, Any]:
        return {
            "images_seen": self.images_seen,
            "optimizer": self.optimizer,
            "rng": self.rng,
            "losses": list(self.losses),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> BudgetState:
        return cls(
            int(raw["images_seen"]),
            dict(raw["optimizer"]),
            raw.get("rng"),
            list(raw.get("losses", [])),
        )


def cosine_lr(base_lr: float, images_seen: int, total_images: int) -> float:
    """The learning rate after `images_seen` of a `total_images` budget."""
    progress = min(images_seen / max(total_images, 1), 1.0)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def batch_indices(n: int, images_seen: int, batch_size: int, seed: int) -> torch.Tensor:
    """The grid batch that starts at `images_seen` (it may be cut by the end of a pass)."""
    epoch, offset = divmod(images_seen, n)
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=generator)
    return order[offset : offset + batch_size]


def finetune_images(
    model: nn.Module,
    dataset: Dataset,
    plan: Plan,
    config: FinetuneConfig,
    device: torch.device,
    *,
    until: int,
    total: int,
    batch_size: int,
    seed: int,
    state: BudgetState | None = None,
) -> BudgetState:
    """Fine-tune `model` in place from `state` until at least `until` images are seen.

    `total` is the trial's whole budget (the learning-rate schedule spans it). Returns
    the state to continue from; a non-finite loss fails the trial.
    """
    state = state or BudgetState()
    n = len(dataset)  # type: ignore[arg-type]
    if n == 0:
        return state
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    if state.optimizer:
        optimizer.load_state_dict(state.optimizer)
    if state.rng is not None:
        torch.set_rng_state(state.rng)
    batch_loss = make_batch_loss(model, plan, config)
    seen, total_loss, count = state.images_seen, 0.0, 0
    while seen < until:
        index = batch_indices(n, seen, batch_size, seed)
        images = torch.stack([dataset[int(i)][0] for i in index]).to(device)
        labels = torch.tensor([int(dataset[int(i)][1]) for i in index]).to(device)
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(config.lr, seen, total)
        model.train()
        total_loss += train_step(optimizer, batch_loss, images, labels, f"after {seen} images")
        count += len(index)
        seen += len(index)
    model.eval()
    return BudgetState(
        seen,
        optimizer.state_dict(),
        torch.get_rng_state(),
        [*state.losses, total_loss / max(count, 1)],
    )
