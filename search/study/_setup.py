"""What all trials of a study share, built once per process: data, base model, layers.

Workers joining a study pass `base` to load the study's stored base model, so every
machine compresses the same weights and none trains its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from objectives import BUILT_IN_METRICS
from search.compress import prunable_layers, weighted_layers
from search.config import StudyConfig
from search.core import BadInput, resolve_device
from search.latency_model import LatencyModel
from search.study._base_model import obtain_base_model
from search.zoo import Splits, build_model, load_splits, make_loader, training_loader
from spaces import Param, Plan, decode, expand


@dataclass
class StudySetup:
    """What all trials of a study share, built once per process."""

    config: StudyConfig
    splits: Splits
    base_model: nn.Module
    device: torch.device
    train_loader: DataLoader
    val_loader: DataLoader
    prunable: list[str]
    quantizable: list[str]
    # latency.mode predicted: the study's latency model (search.study._latency sets it)
    latency_model: LatencyModel | None = None

    @classmethod
    def build(
        cls, config: StudyConfig, base: Callable[[Splits, torch.device], nn.Module] | None = None
    ) -> StudySetup:
        """Load the data and the base model (trained or cached, or from `base`).

        Workers joining a study pass `base` to load the study's stored base model, so
        every machine compresses the same weights and none trains its own.
        """
        device = resolve_device(config.device)
        splits = load_splits(config.data, config.seed)
        train_size = len(splits.train)  # type: ignore[arg-type]
        if config.data.batch_size > train_size:
            raise BadInput(
                f"config field 'data.batch_size' must be <= the {train_size} "
                f"training images, got {config.data.batch_size}"
            )
        base = base(splits, device) if base else obtain_base_model(config, splits, device)
        return cls(
            config=config,
            splits=splits,
            base_model=base,
            device=device,
            train_loader=training_loader(
                splits, config.data, config.seed, config.finetune.samples_per_epoch
            ),
            val_loader=make_loader(splits.val, 256),
            prunable=list(prunable_layers(base)),
            quantizable=list(weighted_layers(base)),
        )

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.splits.info.input_shape

    def space(self) -> list[Param]:
        """The searched params; with multi-fidelity the fine-tuning budget is the
        schedule's, so `epochs` is not searched."""
        params = expand(self.config.space, self.prunable, self.quantizable)
        if self.config.fidelity.enabled:
            params = [p for p in params if p.name != "epochs"]
        return params

    def plan(self, params: dict[str, Any]) -> Plan:
        return decode(self.config.space, params, self.prunable, self.quantizable)

    def fresh_model(self) -> nn.Module:
        """The base architecture with a random init (seeded by the caller)."""
        return build_model(self.config.model.name, self.splits.info).to(self.device).eval()

    def metric_names(self) -> list[str]:
        return list(dict.fromkeys([*BUILT_IN_METRICS, *self.config.objectives]))
