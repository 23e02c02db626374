"""One trial, top to bottom: prune -> quantize -> fine-tune -> score.

The trial function knows nothing of Optuna or Ray: it takes a dict of chosen values and
returns metrics, so every backend runs exactly the same code.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from objectives import BUILT_IN_METRICS, get_objective
from search.base_model import obtain_base_model
from search.config import StudyConfig
from search.context import TrialContext
from search.data import Splits, load_splits, make_loader
from search.device import resolve_device
from search.errors import TrialFailed
from search.finetune import finetune
from search.models import build_model
from search.pruning import prunable_layers, prune, weighted_layers
from search.quantization import quantize_weights
from search.sanity import robust_not_above_clean, warn_failures
from spaces import Param, Plan, decode, expand

log = logging.getLogger(__name__)


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

    @classmethod
    def build(cls, config: StudyConfig,
              base: Callable[[Splits, torch.device], nn.Module] | None = None) -> StudySetup:
        """Load the data and the base model (trained or cached, or from `base`).

        Workers joining a study pass `base` to load the study's stored base model, so
        every machine compresses the same weights and none trains its own.
        """
        device = resolve_device(config.device)
        splits = load_splits(config.data, config.seed)
        base = base(splits, device) if base else obtain_base_model(config, splits, device)
        return cls(
            config=config,
            splits=splits,
            base_model=base,
            device=device,
            train_loader=make_loader(splits.train, config.data.batch_size, shuffle=True,
                                     seed=config.seed,
                                     samples_per_epoch=config.finetune.samples_per_epoch),
            val_loader=make_loader(splits.val, 256),
            prunable=list(prunable_layers(base)),
            quantizable=list(weighted_layers(base)),
        )

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.splits.info.input_shape

    def space(self) -> list[Param]:
        return expand(self.config.space, self.prunable, self.quantizable)

    def plan(self, params: dict[str, Any]) -> Plan:
        return decode(self.config.space, params, self.prunable, self.quantizable)

    def fresh_model(self) -> nn.Module:
        """The base architecture with a random init (seeded by the caller)."""
        return build_model(self.config.model.name, self.splits.info).to(self.device).eval()

    def metric_names(self) -> list[str]:
        return list(dict.fromkeys([*BUILT_IN_METRICS, *self.config.objectives]))


@dataclass
class TrialOutcome:
    model: nn.Module
    plan: Plan
    metrics: dict[str, float]
    notes: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def compress(base: nn.Module, plan: Plan, input_shape: tuple[int, ...],
             device: torch.device) -> nn.Module:
    """A pruned, fake-quantized copy of `base`; `base` is left as it was."""
    model = copy.deepcopy(base).to(device).eval()
    prune(model, plan.sparsity, torch.rand(1, *input_shape, device=device))
    return quantize_weights(model, plan.bits)


def run_trial(setup: StudySetup, params: dict[str, Any], number: int = 0) -> TrialOutcome:
    """Compress the base model as `params` say, fine-tune it, and score it.

    `seconds` holds the wall time of each step and `cpu` the process CPU-seconds of the
    whole trial (all threads), the compute a method spends.
    """
    cpu_start = time.process_time()
    seconds: dict[str, float] = {}
    cfg = setup.config
    torch.manual_seed(cfg.seed * 100_003 + number)
    clock = time.perf_counter()
    plan = setup.plan(params)
    start = setup.fresh_model() if plan.from_scratch else setup.base_model
    model = compress(start, plan, setup.input_shape, setup.device)
    seconds["compress"] = time.perf_counter() - clock

    clock = time.perf_counter()
    if plan.from_scratch:  # trained like the base model: its data per epoch and its lr
        loader = make_loader(setup.splits.train, cfg.data.batch_size, shuffle=True,
                             seed=cfg.seed, samples_per_epoch=cfg.model.base_samples_per_epoch)
        finetune(model, loader, plan, dataclasses.replace(cfg.finetune, lr=cfg.model.base_lr),
                 setup.device)
    else:
        finetune(model, setup.train_loader, plan, cfg.finetune, setup.device)
    seconds["finetune"] = time.perf_counter() - clock

    ctx = TrialContext(model=model.eval(), params=dict(params), config=cfg,
                       device=setup.device, val_loader=setup.val_loader,
                       input_shape=setup.input_shape, seed=cfg.seed,
                       train_loader=setup.train_loader)
    metrics = {}
    for name in setup.metric_names():
        clock = time.perf_counter()
        value = get_objective(name)(ctx)
        seconds[name] = time.perf_counter() - clock
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if not is_number or not math.isfinite(value):
            raise TrialFailed(f"objective {name!r} returned {value!r}, not a finite number")
        metrics[name] = float(value)
    check = robust_not_above_clean(metrics["robust_accuracy"], metrics["clean_accuracy"])
    ctx.notes["sanity_failed"] = warn_failures([check], f"trial {number}")
    seconds["cpu"] = time.process_time() - cpu_start
    return TrialOutcome(model, plan, metrics, ctx.notes, seconds)
