"""Does the int8 ONNX that ships behave as the model that was scored?

The search scores the fake-quant view in torch; a user runs `model.int8.onnx` in
onnxruntime, with calibrated int8 activations the fake-quant view never had. So the
export measures both on the test split the re-assessment uses: clean accuracy of each,
how often their predictions agree, and the int8 file's accuracy under the study's search
attack crafted on the scored model (a transfer attack: the file has no gradients), to
set beside the scored model's own robust accuracy.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from search.config import StudyConfig
from search.robust import clean_accuracy, describe, robust_accuracy


def int8_parity(
    scored: nn.Module,
    shipped: nn.Module,
    loader: DataLoader,
    config: StudyConfig,
    device: torch.device,
) -> dict[str, Any]:
    """Clean accuracy of both, prediction agreement, and the shipped model's robust
    accuracy under the search attack crafted on `scored` (seeded by the study)."""
    return {
        "clean_accuracy": clean_accuracy(shipped, loader, device),
        "scored_clean_accuracy": clean_accuracy(scored, loader, device),
        "agreement": agreement(scored, shipped, loader, device),
        "transfer_robust_accuracy": robust_accuracy(
            shipped, loader, config.evaluation, device, config.seed, source=scored
        ),
        "transfer_attack": describe(config.evaluation) + ", crafted on the scored model",
    }


def agreement(
    first: nn.Module, second: nn.Module, loader: DataLoader, device: torch.device
) -> float:
    """Fraction of inputs on which the two models predict the same class."""
    first.eval()
    second.eval()
    same = total = 0
    with torch.no_grad():
        for images, _ in loader:
            images = images.to(device)
            same += (first(images).argmax(1) == second(images).argmax(1)).sum().item()
            total += len(images)
    return same / max(total, 1)
