"""The attack-based numbers of one front member: test-split scores and sanity checks.

The costly part of the re-assessment (attacks), apart from the re-timing, so that it can
run in a worker process (`search.front._pool`) while the timing stays one model at a
time in the main process. The attacks run as one cascade (`search.robust.assess_attacks`):
each attack only on the examples every earlier one left standing, the search attack and
the more-steps check in one PGD run, the transfer check's images crafted on the base
model once for the whole front (`transfer_for`). Every attack's random start is drawn per
example, so the cascade gives the numbers of running every attack on every example
(tests/test_assess_parallel.py compares the two).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from search.config import StudyConfig
from search.robust import TransferSet, assess_attacks, transfer_set
from search.zoo import Splits, make_loader

TEST_BATCH = 256


def transfer_for(
    base: nn.Module, config: StudyConfig, splits: Splits, device: torch.device
) -> TransferSet:
    """The transfer check's adversarial test images, crafted once on the base model."""
    loader = make_loader(splits.test, TEST_BATCH)
    return transfer_set(base, loader, config.evaluation, device, config.seed)


def score_member(
    model: nn.Module,
    transfer: TransferSet,
    config: StudyConfig,
    splits: Splits,
    device: torch.device,
) -> dict[str, Any]:
    """Test-split scores (clean, search attack, final attack) and the sanity checks."""
    loader = make_loader(splits.test, TEST_BATCH)
    result = assess_attacks(
        model,
        loader,
        config.evaluation,
        config.sanity,
        device,
        config.seed,
        splits.info.num_classes,
        transfer,
    )
    return {"test": result.test, "sanity": [c.to_dict() for c in result.checks]}
