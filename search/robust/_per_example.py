"""Attacks whose random start belongs to the example, not to the batch.

torchattacks draws an attack's random start over the batch it is given (PGD from the
global generator, APGD after reseeding itself on every call), so the start an example
gets depends on its place in the batch and on which other examples are there. An attack
run only on the examples that earlier attacks left standing (the re-assessment's
cascade, `_cascade`) would then be a different draw of the same attack. Here each
example's start comes from its own generator, seeded by (seed, stream, the example's
index in its split); every other step of PGD and APGD is per example already (the
gradient of a summed loss, APGD's per-example step sizes and checkpoints). So whether an
example is broken does not depend on what else is in the batch: an attack run on a
subset gives each example of the subset what it gives it on the whole split (up to the
float rounding of batched kernels; tests/test_assess_parallel.py checks equality).

PGD is the textbook loop torchattacks' PGD / PGDL2 run (same start distribution, step,
projection and clipping; the loss is summed, not averaged, so a step does not depend on
the batch size). APGD is torchattacks' own `APGD.attack_single_run`, fed the example's
start: inside torchattacks' apgd module the name `torch` is a thin stand-in that hands
out the pending per-example start when APGD asks for its random draw, and is torch
itself for everything else and in every other thread.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import torch
import torchattacks
from torch import nn
from torch.nn import functional

from search.config import EvaluationConfig

_MIX = 0x9E3779B97F4A7C15  # odd 64-bit constant: spreads (seed, stream, example) apart


def example_seed(seed: int, stream: int, example: int) -> int:
    """The seed of one example's start in one stream (an attack and restart)."""
    value = (seed * _MIX + stream) % 2**64
    value = (value * _MIX + example) % 2**64
    return value % 2**63


def example_starts(
    ids: torch.Tensor, shape: Sequence[int], seed: int, stream: int, normal: bool = False
) -> torch.Tensor:
    """One draw per example of `ids` (uniform in [0, 1), or standard normal), each from
    its own generator: the same for an example whatever else is drawn beside it."""
    rows = []
    for example in ids.tolist():
        generator = torch.Generator().manual_seed(example_seed(seed, stream, example))
        draw = torch.randn if normal else torch.rand
        rows.append(draw(tuple(shape), generator=generator))
    return torch.stack(rows) if rows else torch.empty(0, *shape)


def _predictions(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(images).argmax(1)


def pgd_correct(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    ids: torch.Tensor,
    threat: EvaluationConfig,
    steps: int,
    seed: int,
    stream: int,
    record: Sequence[int] = (),
) -> dict[int, torch.Tensor]:
    """Whether `model` still classifies each example correctly after PGD (random start
    from the example's own generator), at `steps` and at each step count in `record`:
    the first k steps of a longer PGD are PGD-k from the same start, so one run answers
    both the search attack and the more-steps check.
    """
    marks = sorted({*record, steps})
    adversarial = _pgd_start(images, ids, threat, seed, stream)
    results: dict[int, torch.Tensor] = {}
    if 0 in marks:
        results[0] = _predictions(model, adversarial) == labels
    for step in range(1, steps + 1):
        adversarial.requires_grad_(True)
        with torch.enable_grad():
            loss = functional.cross_entropy(model(adversarial), labels, reduction="sum")
            (grad,) = torch.autograd.grad(loss, [adversarial])
        adversarial = _pgd_step(images, adversarial.detach(), grad, threat)
        if step in marks:
            results[step] = _predictions(model, adversarial) == labels
    return results


def pgd_images(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    ids: torch.Tensor,
    threat: EvaluationConfig,
    steps: int,
    seed: int,
    stream: int,
) -> torch.Tensor:
    """PGD's adversarial images (per-example starts): what a transfer attack carries."""
    adversarial = _pgd_start(images, ids, threat, seed, stream)
    for _ in range(steps):
        adversarial.requires_grad_(True)
        with torch.enable_grad():
            loss = functional.cross_entropy(model(adversarial), labels, reduction="sum")
            (grad,) = torch.autograd.grad(loss, [adversarial])
        adversarial = _pgd_step(images, adversarial.detach(), grad, threat)
    return adversarial


def _pgd_start(
    images: torch.Tensor, ids: torch.Tensor, threat: EvaluationConfig, seed: int, stream: int
) -> torch.Tensor:
    shape = images.shape[1:]
    if threat.norm == "l2":  # a random direction, a radius uniform in [0, eps]
        direction = example_starts(ids, (images[0].numel() + 1,), seed, stream, normal=True)
        radius = torch.special.ndtr(direction[:, -1]).view(-1, *([1] * len(shape)))
        delta = direction[:, :-1].view(-1, *shape)
        norms = delta.flatten(1).norm(dim=1).view(-1, *([1] * len(shape)))
        delta = delta / norms * radius * threat.epsilon
    else:
        delta = (example_starts(ids, shape, seed, stream) * 2 - 1) * threat.epsilon
    return torch.clamp(images + delta.to(images.device), 0, 1).detach()


def _pgd_step(
    images: torch.Tensor, adversarial: torch.Tensor, grad: torch.Tensor, threat: EvaluationConfig
) -> torch.Tensor:
    if threat.norm == "l2":
        dims = [-1, *([1] * (images.dim() - 1))]
        grad_norm = grad.flatten(1).norm(dim=1).view(dims) + 1e-10
        adversarial = adversarial + threat.step_size * grad / grad_norm
        delta = adversarial - images
        delta_norm = delta.flatten(1).norm(dim=1).view(dims)
        delta = delta * torch.clamp(threat.epsilon / (delta_norm + 1e-12), max=1.0)
    else:
        adversarial = adversarial + threat.step_size * grad.sign()
        delta = torch.clamp(adversarial - images, -threat.epsilon, threat.epsilon)
    return torch.clamp(images + delta, 0, 1).detach()


class _PendingStart(threading.local):
    start: torch.Tensor | None = None


_PENDING = _PendingStart()


class _TorchWithStarts(ModuleType):
    """`torch` as torchattacks' apgd module sees it: its random draw is the pending
    per-example start of this thread, when one is pending."""

    def __init__(self) -> None:
        super().__init__("torch")

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)

    def rand(self, *size: Any, **kwargs: Any) -> torch.Tensor:
        return self._draw(torch.rand, size, kwargs)

    def randn(self, *size: Any, **kwargs: Any) -> torch.Tensor:
        return self._draw(torch.randn, size, kwargs)

    @staticmethod
    def _draw(draw: Any, size: tuple, kwargs: dict) -> torch.Tensor:
        start = _PENDING.start
        if start is None:
            return draw(*size, **kwargs)
        _PENDING.start = None  # one start per run: a second draw is torch's own
        one = len(size) == 1 and isinstance(size[0], tuple | list | torch.Size)
        shape = tuple(size[0]) if one else tuple(size)
        if tuple(start.shape) != shape:
            raise RuntimeError(f"APGD drew a start of shape {shape}, expected {start.shape}")
        return start


def _install() -> None:
    module = torchattacks.attacks.apgd
    if not isinstance(module.torch, _TorchWithStarts):
        module.torch = _TorchWithStarts()


def apgd_correct(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    ids: torch.Tensor,
    threat: EvaluationConfig,
    loss: str,
    seed: int,
    stream: int,
) -> torch.Tensor:
    """Whether `model` still classifies each example correctly under APGD (torchattacks,
    `threat.final_steps` steps, `threat.final_restarts` restarts on the examples still
    standing) with each restart's start drawn from the example's own generator."""
    _install()
    norm = "L2" if threat.norm == "l2" else "Linf"
    attack = torchattacks.APGD(
        model, norm=norm, eps=threat.epsilon, steps=threat.final_steps, loss=loss, seed=seed
    )
    correct = torch.ones(len(labels), dtype=torch.bool, device=labels.device)
    for restart in range(threat.final_restarts):
        rows = correct.nonzero().flatten()
        if len(rows) == 0:
            break
        stream_r = stream * 1000 + restart
        start = example_starts(ids[rows.cpu()], images.shape[1:], seed, stream_r, norm == "L2")
        _PENDING.start = start  # APGD moves it to its device
        try:
            _, still, _, _ = attack.attack_single_run(images[rows], labels[rows])
        finally:
            _PENDING.start = None
        correct[rows] = still.bool()
    return correct
