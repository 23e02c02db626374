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
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from objectives import get_objective
from search.compress import prune, quantize_weights
from search.context import TrialContext
from search.core import TrialFailed
from search.robust import finetune, robust_not_above_clean, warn_failures
from search.study._setup import StudySetup
from search.zoo import training_loader
from spaces import Plan

log = logging.getLogger(__name__)


@dataclass
class TrialOutcome:
    model: nn.Module
    plan: Plan
    metrics: dict[str, float]
    notes: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def compress(
    base: nn.Module, plan: Plan, input_shape: tuple[int, ...], device: torch.device
) -> nn.Module:
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
        loader = training_loader(setup.splits, cfg.data, cfg.seed, cfg.model.base_samples_per_epoch)
        finetune(
            model,
            loader,
            plan,
            dataclasses.replace(cfg.finetune, lr=cfg.model.base_lr),
            setup.device,
        )
    else:
        finetune(model, setup.train_loader, plan, cfg.finetune, setup.device)
    seconds["finetune"] = time.perf_counter() - clock

    ctx = TrialContext(
        model=model.eval(),
        params=dict(params),
        config=cfg,
        device=setup.device,
        val_loader=setup.val_loader,
        input_shape=setup.input_shape,
        seed=cfg.seed,
        train_loader=setup.train_loader,
    )
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
