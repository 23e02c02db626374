"""Keep the best epoch of a long adversarial training run, not the last one.

Rice et al. 2020, "Overfitting in adversarially robust deep learning" (arXiv 2002.11569):
after the learning rate decays, PGD training keeps lowering its training loss while its
robust accuracy on held-out data falls, and the last checkpoint loses several points to
the best one. Early stopping on a small held-out PGD evaluation recovers them.

`KeepBest` scores the model after every epoch (the caller's `score`, e.g. robust
accuracy on a few hundred validation images) and keeps a copy of the best weights;
`restore` puts them back when training ends. It is `Stateful`, so an `EpochCheckpoint`
carries it across a kill and a resumed run picks the same epoch as an unkilled one.
The score must not draw from the training run's random stream (`robust_accuracy`
restores the global generator), so keeping the best never changes the trajectory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

Score = Callable[[nn.Module], float]


class KeepBest:
    """The best-scoring epoch so far and its weights (ties go to the later epoch)."""

    def __init__(self, model: nn.Module, score: Score) -> None:
        self.model = model
        self.score = score
        self.scores: list[float] = []  # the held-out score after each epoch
        self.best_epoch = 0  # 1-based; 0 while no epoch has ended
        self.weights: dict[str, torch.Tensor] = {}

    def after_epoch(self) -> None:
        """Score the model as it stands; keep its weights if none scored better."""
        value = float(self.score(self.model))
        self.scores.append(value)
        if not self.weights or value >= max(self.scores[:-1], default=value):
            self.best_epoch = len(self.scores)
            self.weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def restore(self) -> None:
        """Load the best epoch's weights into the model (nothing if no epoch ended)."""
        if self.weights:
            self.model.load_state_dict(self.weights)

    def summary(self) -> dict[str, Any]:
        """What a trial's notes keep: the chosen epoch and every epoch's score."""
        return {"best_epoch": self.best_epoch, "scores": list(self.scores)}

    def state_dict(self) -> dict[str, Any]:
        return {"scores": list(self.scores), "best_epoch": self.best_epoch, "weights": self.weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scores = [float(s) for s in state["scores"]]
        self.best_epoch = int(state["best_epoch"])
        self.weights = dict(state["weights"])
