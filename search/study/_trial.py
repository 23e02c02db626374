"""One trial, top to bottom: prune -> quantize -> fine-tune -> score.

The trial function knows nothing of Optuna or Ray: it takes a dict of chosen values and
returns metrics, so every backend runs exactly the same code.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from objectives import get_objective
from search.compress import prune, quantize_weights
from search.context import TrialContext
from search.core import TrialFailed
from search.robust import (
    BudgetState,
    finetune_images,
    robust_not_above_clean,
    warn_failures,
)
from search.study._epoch_finetune import finetune_epochs
from search.study._setup import StudySetup
from search.zoo import reseed_loader
from spaces import Plan

log = logging.getLogger(__name__)


@dataclass
class TrialOutcome:
    model: nn.Module
    plan: Plan
    metrics: dict[str, float]
    notes: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    budget_state: BudgetState | None = None  # multi-fidelity: where fine-tuning stands
    rung: int | None = None  # multi-fidelity: the rung this outcome ends


def compress(
    base: nn.Module, plan: Plan, input_shape: tuple[int, ...], device: torch.device
) -> nn.Module:
    """A pruned, fake-quantized copy of `base`; `base` is left as it was."""
    model = copy.deepcopy(base).to(device).eval()
    prune(model, plan.sparsity, torch.rand(1, *input_shape, device=device))
    return quantize_weights(model, plan.bits)


RungCallback = Callable[[int, int, "TrialOutcome"], bool]


@dataclass(frozen=True)
class Resume:
    """Where a continuation starts: after rung `rung`, with `load(model)` putting that
    rung's checkpoint into the compressed model and returning the fine-tuning state."""

    rung: int
    load: Callable[[nn.Module], BudgetState]


def run_trial(
    setup: StudySetup,
    params: dict[str, Any],
    number: int = 0,
    on_rung: RungCallback | None = None,
    resume: Resume | None = None,
) -> TrialOutcome:
    """Compress the base model as `params` say, fine-tune it, and score it.

    With `fidelity.enabled`, fine-tuning goes rung by rung (search.robust's budgeted
    fine-tune); after each rung the model is scored and `on_rung(index, budget, outcome)`
    is told, which returns whether to go on (the promotion decision; without a callback
    every rung runs). The outcome is the last rung's: its model and its metrics. With
    `resume` (a late promotion), the rungs up to `resume.rung` are not run again: their
    checkpoint is loaded and fine-tuning goes on from it; `number` is then the original
    trial's, so the batches and seeds are the ones an uninterrupted run would have had.

    `seconds` holds the wall time of each step and `cpu` the process CPU-seconds of the
    whole trial (all threads), the compute a method spends.
    """
    cpu_start = time.process_time()
    seconds: dict[str, float] = {}
    cfg = setup.config
    torch.manual_seed(cfg.seed * 100_003 + number)
    reseed_loader(setup.train_loader, cfg.seed * 100_003 + number)  # its own data order
    clock = time.perf_counter()
    plan = setup.plan(params)
    start = setup.fresh_model() if plan.from_scratch else setup.base_model
    model = compress(start, plan, setup.input_shape, setup.device)
    seconds["compress"] = time.perf_counter() - clock
    if cfg.fidelity.enabled and not plan.from_scratch:
        return _run_rungs(setup, model, plan, params, number, on_rung, seconds, cpu_start, resume)

    clock = time.perf_counter()
    kept, earlier_cpu = finetune_epochs(setup, model, plan, params)
    seconds["finetune"] = time.perf_counter() - clock
    metrics, notes = score(setup, model, params, number, seconds)
    notes.update(kept)
    seconds["cpu"] = time.process_time() - cpu_start + earlier_cpu
    return TrialOutcome(model, plan, metrics, notes, seconds)


def _run_rungs(
    setup: StudySetup,
    model: nn.Module,
    plan: Plan,
    params: dict[str, Any],
    number: int,
    on_rung: RungCallback | None,
    seconds: dict[str, float],
    cpu_start: float,
    resume: Resume | None = None,
) -> TrialOutcome:
    """Fine-tune and score rung by rung while `on_rung` promotes the trial."""
    cfg = setup.config
    budgets = cfg.fidelity.rungs()
    state = resume.load(model) if resume is not None else None
    first = resume.rung + 1 if resume is not None else 0
    seconds["finetune"] = 0.0
    for index, budget in enumerate(budgets):
        if index < first:
            continue
        clock = time.perf_counter()
        state = finetune_images(
            model,
            setup.splits.train,
            plan,
            cfg.finetune,
            setup.device,
            until=budget,
            total=budgets[-1],
            batch_size=cfg.data.batch_size,
            seed=cfg.seed * 100_003 + number,
            state=state,
        )
        seconds["finetune"] += time.perf_counter() - clock
        metrics, notes = score(setup, model, params, number, seconds)
        notes["images_seen"] = state.images_seen
        seconds["cpu"] = time.process_time() - cpu_start
        outcome = TrialOutcome(model, plan, metrics, notes, dict(seconds), state, index)
        go_on = on_rung(index, budget, outcome) if on_rung is not None else True
        if not go_on or index == len(budgets) - 1:
            return outcome
    raise AssertionError("unreachable: a schedule has at least one rung")


def score(
    setup: StudySetup,
    model: nn.Module,
    params: dict[str, Any],
    number: int,
    seconds: dict[str, float],
) -> tuple[dict[str, float], dict[str, Any]]:
    """Every metric of the study on the validation split, and the trial's notes."""
    cfg = setup.config
    if cfg.latency.mode == "predicted" and setup.latency_model is None:
        # a trial run outside a study (run_trial by hand, the objective contract suite)
        from search.study._latency import calibrate_setup

        setup.latency_model = calibrate_setup(setup)
    ctx = TrialContext(
        model=model.eval(),
        params=dict(params),
        config=cfg,
        device=setup.device,
        val_loader=setup.val_loader,
        input_shape=setup.input_shape,
        seed=cfg.seed,
        train_loader=setup.train_loader,
        latency_model=setup.latency_model,
    )
    metrics = {}
    for name in setup.metric_names():
        clock = time.perf_counter()
        value = get_objective(name)(ctx)
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - clock
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if not is_number or not math.isfinite(value):
            raise TrialFailed(f"objective {name!r} returned {value!r}, not a finite number")
        metrics[name] = float(value)
    check = robust_not_above_clean(metrics["robust_accuracy"], metrics["clean_accuracy"])
    ctx.notes["sanity_failed"] = warn_failures([check], f"trial {number}")
    return metrics, ctx.notes
