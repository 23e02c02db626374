"""The front's test-split attacks as one cascade: each attack runs only where it matters.

An example is robust only if no attack breaks it, so an attack need only run on the
examples every earlier attack left standing (AutoAttack's standard version works this
way). The re-assessment of a front member, per test batch:
1. clean predictions; the attacks start from the correctly classified examples;
2. the search attack (PGD, its steps and restarts) and the more-steps check (the same PGD
   with `sanity.steps_factor` times the steps) in one run: the first k steps of a longer
   PGD from the same start are PGD-k, so the shorter one is read off on the way;
3. the final attack (APGD-CE, then APGD-DLR; or PGD with more steps; or AutoAttack) only
   on the examples the search attack left standing: `robust_accuracy_final` is the share
   robust under the search attack and the final attack together (before this cascade it
   was the final attack alone; it can only be lower or equal, and now never exceeds
   `robust_accuracy`);
4. the large-epsilon check (PGD at the large budget) on the clean-correct examples;
5. the transfer check: adversarial images crafted once on the base model for the whole
   test split (`transfer_set`), shared by every member, judged on the clean-correct ones.

Every PGD and APGD start is drawn per example (`_per_example`), so an attack run on a
subset breaks exactly the examples it breaks when run on all of them: the cascade gives
the numbers of running every attack on every example and keeping an example only if it
survives all of them (tests/test_assess_parallel.py computes both). AutoAttack draws its
own starts over the batch it is given; with `final_attack: autoattack` step 3 is the
same attack, run on a smaller batch, not the same draw.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.utils.data import DataLoader

from search.config import EvaluationConfig, SanityConfig
from search.robust._attacks import NORMS
from search.robust._autoattack import standard_autoattack
from search.robust._per_example import apgd_correct, pgd_correct, pgd_images
from search.robust._sanity import (
    Check,
    large_epsilon_check,
    large_epsilon_threat,
    more_steps_check,
    transfer_check,
)

# streams of per-example starts (an attack's restart r uses stream + r)
SEARCH, LARGE, TRANSFER, FINAL_PGD, APGD_CE, APGD_DLR = 100, 200, 300, 400, 5, 6


@dataclass(frozen=True)
class TransferSet:
    """Adversarial test images crafted on the base model with the search attack, one
    tensor per restart, row i for the test example i: the same for every member."""

    images: list[torch.Tensor] = field(default_factory=list)


@dataclass(frozen=True)
class Assessment:
    """Test-split accuracies (clean, search attack, final attack) and the checks."""

    test: dict[str, float]
    checks: list[Check]


def batches(
    loader: DataLoader, device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(images, labels, example indices) of an unshuffled loader: the index of an example
    is its place in the split, which seeds its starts."""
    offset = 0
    for images, labels in loader:
        ids = torch.arange(offset, offset + len(labels))
        offset += len(labels)
        yield images.to(device), labels.to(device), ids


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[None]:
    """`model` in eval mode with its weights fixed for the attacks: no weight gradients,
    and each fake-quant parametrization computed once (`parametrize.cached`) instead of on
    every forward pass: the same values, so the same numbers, about a tenth faster.
    Restores the mode, `requires_grad` and torch's generator (AutoAttack reseeds it)."""
    was_training = model.training
    wanted = [(p, p.requires_grad) for p in model.parameters()]
    rng_state = torch.random.get_rng_state()
    model.eval()
    for parameter, _ in wanted:
        parameter.requires_grad_(False)
    try:
        with parametrize.cached():
            yield
    finally:
        for parameter, flag in wanted:
            parameter.requires_grad_(flag)
        torch.random.set_rng_state(rng_state)
        model.train(was_training)


def transfer_set(
    base: nn.Module, loader: DataLoader, threat: EvaluationConfig, device: torch.device, seed: int
) -> TransferSet:
    """The search attack crafted on `base` for every test example, per restart."""
    per_restart: list[list[torch.Tensor]] = [[] for _ in range(threat.restarts)]
    with frozen(base):
        for images, labels, ids in batches(loader, device):
            for restart, rows in enumerate(per_restart):
                adversarial = pgd_images(
                    base, images, labels, ids, threat, threat.steps, seed, TRANSFER + restart
                )
                rows.append(adversarial.cpu())
    return TransferSet([torch.cat(rows) if rows else torch.empty(0) for rows in per_restart])


def assess_attacks(
    model: nn.Module,
    loader: DataLoader,
    threat: EvaluationConfig,
    sanity: SanityConfig | None,
    device: torch.device,
    seed: int = 0,
    n_classes: int = 10,
    transfer: TransferSet | None = None,
) -> Assessment:
    """Clean, search-attack and final-attack accuracy of `model` on `loader` (unshuffled)
    and, with `sanity`, the large-epsilon, more-steps and (with `transfer`) transfer
    checks, every attack running only on the examples still standing."""
    counts = dict.fromkeys(("total", "clean", "few", "many", "final", "large", "transfer"), 0)
    with frozen(model):
        for images, labels, ids in batches(loader, device):
            for name, mask in _batch(
                model, images, labels, ids, threat, sanity, seed, n_classes, transfer
            ).items():
                counts[name] += int(mask.sum().item())
            counts["total"] += len(labels)
    total = max(counts["total"], 1)
    share = {name: count / total for name, count in counts.items()}
    test = {
        "clean_accuracy": share["clean"],
        "robust_accuracy": share["few"],
        "robust_accuracy_final": share["final"],
    }
    checks = []
    if sanity is not None:
        checks = [
            large_epsilon_check(share["large"], sanity),
            more_steps_check(share["few"], share["many"], threat, sanity),
        ]
        if transfer is not None:
            checks.append(transfer_check(share["few"], share["transfer"], sanity))
    return Assessment(test, checks)


def _batch(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    ids: torch.Tensor,
    threat: EvaluationConfig,
    sanity: SanityConfig | None,
    seed: int,
    n_classes: int,
    transfer: TransferSet | None,
) -> dict[str, torch.Tensor]:
    """Which examples of one batch survive each step of the cascade."""
    with torch.no_grad():
        clean = model(images).argmax(1) == labels
    many_steps = threat.steps * sanity.steps_factor if sanity is not None else threat.steps
    few, many = clean.clone(), clean.clone()
    for restart in range(threat.restarts):
        rows = (few | many).nonzero().flatten()
        if len(rows) == 0:
            break
        marks = pgd_correct(
            model,
            images[rows],
            labels[rows],
            ids[rows.cpu()],
            threat,
            many_steps,
            seed,
            SEARCH + restart,
            record=(threat.steps,),
        )
        few[rows] = few[rows] & marks[threat.steps]
        many[rows] = many[rows] & marks[many_steps]
    masks = {"clean": clean, "few": few, "many": many}
    masks["final"] = _final(model, images, labels, ids, few, threat, seed, n_classes)
    if sanity is not None:
        big = large_epsilon_threat(threat, sanity)
        masks["large"] = _pgd_survivors(model, images, labels, ids, clean, big, seed, LARGE)
    if transfer is not None:
        masks["transfer"] = _transfer_survivors(model, labels, ids, clean, transfer)
    return masks


def _pgd_survivors(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    ids: torch.Tensor,
    standing: torch.Tensor,
    threat: EvaluationConfig,
    seed: int,
    stream: int,
    steps: int | None = None,
    restarts: int | None = None,
) -> torch.Tensor:
    steps = threat.steps if steps is None else steps
    survivors = standing.clone()
    for restart in range(threat.restarts if restarts is None else restarts):
        rows = survivors.nonzero().flatten()
        if len(rows) == 0:
            break
        marks = pgd_correct(
            model,
            images[rows],
            labels[rows],
            ids[rows.cpu()],
            threat,
            steps,
            seed,
            stream + restart,
        )
        survivors[rows] = marks[steps]
    return survivors


def _final(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    ids: torch.Tensor,
    standing: torch.Tensor,
    threat: EvaluationConfig,
    seed: int,
    n_classes: int,
) -> torch.Tensor:
    """The final attack on the examples the search attack left standing."""
    if threat.final_attack == "pgd":
        return _pgd_survivors(
            model,
            images,
            labels,
            ids,
            standing,
            threat,
            seed,
            FINAL_PGD,
            threat.final_steps,
            threat.final_restarts,
        )
    survivors = standing.clone()
    if threat.final_attack == "apgd":
        for loss, stream in (("ce", APGD_CE), ("dlr", APGD_DLR)):
            rows = survivors.nonzero().flatten()
            if len(rows) == 0:
                break
            survivors[rows] = apgd_correct(
                model, images[rows], labels[rows], ids[rows.cpu()], threat, loss, seed, stream
            )
        return survivors
    rows = survivors.nonzero().flatten()
    if len(rows) > 0:  # autoattack: its own starts, drawn over the batch it is given
        attack = standard_autoattack(
            model, norm=NORMS[threat.norm], eps=threat.epsilon, n_classes=n_classes, seed=seed
        )
        adversarial = attack(images[rows], labels[rows])
        with torch.no_grad():
            survivors[rows] = model(adversarial).argmax(1) == labels[rows]
    return survivors


def _transfer_survivors(
    model: nn.Module,
    labels: torch.Tensor,
    ids: torch.Tensor,
    standing: torch.Tensor,
    transfer: TransferSet,
) -> torch.Tensor:
    survivors = standing.clone()
    for crafted in transfer.images:
        rows = survivors.nonzero().flatten()
        if len(rows) == 0:
            break
        adversarial = crafted[ids[rows.cpu()]].to(labels.device)
        with torch.no_grad():
            survivors[rows] = model(adversarial).argmax(1) == labels[rows]
    return survivors
