"""Checks that robust accuracy is real and not gradient masking.

From the evaluation rules (DESIGN.md) and the usual reviewer's list:
- robust accuracy never exceeds clean accuracy (every trial);
- at a large budget (0.5 in [0, 1] pixels) robust accuracy falls to about zero;
- more PGD steps never raise robust accuracy by more than noise;
- a transfer attack crafted on the uncompressed base model does not beat the white-box
  attack by more than a margin (if it does, the white-box gradients are broken).
Each check returns a `Check`; a failed one is logged loudly, naming the trial.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader

from search.config import EvaluationConfig, SanityConfig
from search.robust._attacks import robust_accuracy, search_attacks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def robust_not_above_clean(robust: float, clean: float) -> Check:
    return Check("robust<=clean", robust <= clean + 1e-9, f"robust {robust:.4f}, clean {clean:.4f}")


def large_epsilon_breaks(
    model: nn.Module,
    loader: DataLoader,
    threat: EvaluationConfig,
    sanity: SanityConfig,
    device: torch.device,
    seed: int = 0,
) -> Check:
    big = large_epsilon_threat(threat, sanity)
    return large_epsilon_check(robust_accuracy(model, loader, big, device, seed), sanity)


def large_epsilon_threat(threat: EvaluationConfig, sanity: SanityConfig) -> EvaluationConfig:
    """The search attack at the large budget (Linf, step a quarter of the budget)."""
    return dataclasses.replace(
        threat, norm="linf", epsilon=sanity.large_epsilon, step_size=sanity.large_epsilon / 4
    )


def large_epsilon_check(robust: float, sanity: SanityConfig) -> Check:
    """The large-epsilon check, from the robust accuracy at the large budget."""
    return Check(
        "large-epsilon",
        robust < sanity.large_epsilon_max,
        f"robust {robust:.4f} at Linf eps {sanity.large_epsilon:g} "
        f"(must be < {sanity.large_epsilon_max:g})",
    )


def more_steps_do_not_help(
    model: nn.Module,
    loader: DataLoader,
    threat: EvaluationConfig,
    sanity: SanityConfig,
    device: torch.device,
    seed: int = 0,
    white_box: float | None = None,
) -> Check:
    """`white_box`: the model's robust accuracy under `threat` on `loader`, if known."""
    few = _white_box(model, loader, threat, device, seed, white_box)
    many_steps = threat.steps * sanity.steps_factor
    many = robust_accuracy(
        model, loader, threat, device, seed, attacks=search_attacks(threat, steps=many_steps)
    )
    return more_steps_check(few, many, threat, sanity)


def more_steps_check(
    few: float, many: float, threat: EvaluationConfig, sanity: SanityConfig
) -> Check:
    """The more-steps check, from robust accuracy at the threat's steps and at more."""
    return Check(
        "more-steps",
        many <= few + sanity.noise,
        f"robust {few:.4f} at {threat.steps} steps, "
        f"{many:.4f} at {threat.steps * sanity.steps_factor}",
    )


def transfer_not_stronger(
    model: nn.Module,
    base: nn.Module,
    loader: DataLoader,
    threat: EvaluationConfig,
    sanity: SanityConfig,
    device: torch.device,
    seed: int = 0,
    white_box: float | None = None,
) -> Check:
    white_box = _white_box(model, loader, threat, device, seed, white_box)
    transfer = robust_accuracy(model, loader, threat, device, seed, source=base)
    return transfer_check(white_box, transfer, sanity)


def transfer_check(white_box: float, transfer: float, sanity: SanityConfig) -> Check:
    """The transfer check, from white-box and transfer-from-base robust accuracy."""
    return Check(
        "transfer",
        transfer >= white_box - sanity.transfer_margin,
        f"white-box robust {white_box:.4f}, transfer from base {transfer:.4f}",
    )


def model_checks(
    model: nn.Module,
    loader: DataLoader,
    threat: EvaluationConfig,
    sanity: SanityConfig,
    device: torch.device,
    seed: int = 0,
    base: nn.Module | None = None,
    white_box: float | None = None,
) -> list[Check]:
    """The attack-based checks of one model (the transfer check needs `base`).

    The white-box robust accuracy both later checks compare against is computed once,
    or not at all when the caller already has it (`white_box`: the model's robust
    accuracy under `threat` on `loader` with `seed`, as the front's re-assessment has).
    """
    white_box = _white_box(model, loader, threat, device, seed, white_box)
    checks = [
        large_epsilon_breaks(model, loader, threat, sanity, device, seed),
        more_steps_do_not_help(model, loader, threat, sanity, device, seed, white_box),
    ]
    if base is not None:
        checks.append(
            transfer_not_stronger(model, base, loader, threat, sanity, device, seed, white_box)
        )
    return checks


def _white_box(
    model: nn.Module,
    loader: DataLoader,
    threat: EvaluationConfig,
    device: torch.device,
    seed: int,
    known: float | None,
) -> float:
    return robust_accuracy(model, loader, threat, device, seed) if known is None else known


def warn_failures(checks: list[Check], who: str) -> list[str]:
    """Log each failed check loudly; return their names."""
    failed = [c for c in checks if not c.passed]
    for check in failed:
        log.warning(
            "SANITY CHECK FAILED for %s: %s (%s); gradient masking is suspected, "
            "do not trust its robust accuracy",
            who,
            check.name,
            check.detail,
        )
    return [c.name for c in failed]
