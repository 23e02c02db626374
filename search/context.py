"""What an objective sees of a finished trial."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from search.config import StudyConfig

if TYPE_CHECKING:  # only types here: reading a study's objectives needs no torch
    import torch
    from torch import nn
    from torch.utils.data import DataLoader

    from search.latency_model import LatencyModel


@dataclass
class TrialContext:
    """A compressed, fine-tuned model and everything needed to score it.

    `model` is the differentiable view (fake-quant parametrizations in place) in eval
    mode on `device`; `val_loader` holds the validation split the search scores on and
    `train_loader` the training split (for calibration, never for scoring);
    `input_shape` is one input's (C, H, W). Objectives may leave side facts in
    `notes` (for example the latency spread); they are stored with the trial.
    `latency_model` is the study's (with `latency.mode: predicted`).
    """

    model: nn.Module
    params: dict[str, Any]
    config: StudyConfig
    device: torch.device
    val_loader: DataLoader
    input_shape: tuple[int, ...]
    seed: int = 0
    train_loader: DataLoader | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    latency_model: LatencyModel | None = None

    def calibration_images(self) -> list[torch.Tensor]:
        """Up to `latency.calibration_samples` training images, in batches."""
        from search.compress import calibration_batches

        return calibration_batches(self.train_loader or [], self.config.latency.calibration_samples)
