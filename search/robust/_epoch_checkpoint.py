"""A training run that survives a kill: its whole state saved after every epoch.

Long runs (the base model on the full data set, adversarial training from scratch) take
hours on a CPU. After each epoch this file holds everything the next epoch depends on:
the weights, the optimizer and learning-rate schedule, the global torch RNG and the
loader's shuffling generator, the losses so far and the CPU-seconds spent. A rerun loads
it and goes on, so a killed run ends with the same weights as one that was never killed
(a test compares them). The file is ours: written atomically, read with
`torch.load(..., weights_only=True)` (no pickled code runs), removed when the run ends.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Protocol

import torch
from torch.utils.data import DataLoader

log = logging.getLogger(__name__)


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> Any: ...


def loader_generator(loader: DataLoader) -> torch.Generator | None:
    """The generator that orders a loader's batches (its sampler's), if it has one."""
    generator = getattr(loader.sampler, "generator", None)
    return generator if isinstance(generator, torch.Generator) else None


class EpochCheckpoint:
    """The per-epoch state of one training run, kept at `path`.

    `parts` are the stateful objects of the run (model, optimizer, scheduler) by name.
    """

    def __init__(self, path: Path, **parts: Stateful) -> None:
        self.path = path
        self.parts = parts
        self._cpu_before = 0.0  # CPU-seconds of the runs killed before this one
        self._cpu_start = time.process_time()

    def cpu_seconds(self) -> float:
        """CPU-seconds of the whole run so far, killed attempts included."""
        return self._cpu_before + time.process_time() - self._cpu_start

    def restore(self, loader: DataLoader) -> tuple[int, list[float]]:
        """Load the saved state into the parts; returns (epochs done, losses so far).
        With no file yet, nothing changes and the run starts at epoch 0."""
        self._cpu_start = time.process_time()
        if not self.path.is_file():
            return 0, []
        saved = torch.load(self.path, map_location="cpu", weights_only=True)
        for name, part in self.parts.items():
            part.load_state_dict(saved["parts"][name])
        torch.set_rng_state(saved["rng"])
        generator = loader_generator(loader)
        if generator is not None and saved.get("loader_rng") is not None:
            generator.set_state(saved["loader_rng"])
        self._cpu_before = float(saved["cpu_seconds"])
        log.info("resuming after epoch %d from %s", saved["epoch"], self.path)
        return int(saved["epoch"]), list(saved["losses"])

    def save(self, loader: DataLoader, epoch: int, losses: list[float]) -> None:
        """Keep the state after `epoch` epochs (atomic: a kill mid-write leaves the last)."""
        generator = loader_generator(loader)
        state = {
            "parts": {name: part.state_dict() for name, part in self.parts.items()},
            "rng": torch.get_rng_state(),
            "loader_rng": generator.get_state() if generator is not None else None,
            "epoch": epoch,
            "losses": losses,
            "cpu_seconds": self.cpu_seconds(),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.name}.tmp-{os.getpid()}")
        torch.save(state, tmp)
        tmp.replace(self.path)

    def discard(self) -> None:
        """Remove the file once the run has finished and its result is stored."""
        self.path.unlink(missing_ok=True)
