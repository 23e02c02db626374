"""The attack-based numbers of one front member: test-split scores and sanity checks.

The costly part of the re-assessment (attacks), apart from the re-timing, so that it can
run in a worker process (`search.front._pool`) while the timing stays one model at a
time in the main process. Work is shared only where the numbers stay the same: the
search attack's robust accuracy on the test split is both a reported score and the
white-box number the more-steps and transfer checks compare against, so it is computed
once (same model, loader, threat model and seed: the same number).

What is not shared, and why: the final attack is not run only on the examples the
search attack left standing. APGD reseeds itself per batch and draws its random start
over the batch it is given, so a smaller batch changes its result for the examples that
remain; and a sample the weaker attack broke but the final one does not would drop out
of `robust_accuracy_final`, whose meaning is "robust under the final attack". It would
save little besides: of APGD's passes only the first restart of APGD-CE sees the
examples the search attack broke (it breaks them too, almost always); its later
restarts and the APGD-DLR pass already run on the survivors only.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from search.config import StudyConfig
from search.robust import clean_accuracy, final_attacks, model_checks, robust_accuracy
from search.zoo import Splits, make_loader

TEST_BATCH = 256


def score_member(
    model: nn.Module,
    base: nn.Module,
    config: StudyConfig,
    splits: Splits,
    device: torch.device,
) -> dict[str, Any]:
    """Test-split scores (clean, search attack, final attack) and the sanity checks."""
    loader = make_loader(splits.test, TEST_BATCH)
    threat = config.evaluation
    final = final_attacks(threat, seed=config.seed, n_classes=splits.info.num_classes)
    white_box = robust_accuracy(model, loader, threat, device, config.seed)
    test = {
        "clean_accuracy": clean_accuracy(model, loader, device),
        "robust_accuracy": white_box,
        "robust_accuracy_final": robust_accuracy(
            model, loader, threat, device, config.seed, attacks=final
        ),
    }
    checks = model_checks(
        model,
        loader,
        threat,
        config.sanity,
        device,
        config.seed,
        base=base,
        white_box=white_box,
    )
    return {"test": test, "sanity": [c.to_dict() for c in checks]}
