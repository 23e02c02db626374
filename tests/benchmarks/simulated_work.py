"""Simulated trial work for the scale benchmark: a seeded learning-curve model.

`curve(params, fraction)` gives a configuration's metrics after `fraction` of the full
fine-tuning budget: robust accuracy rises with the budget towards a ceiling set by the
sparsity, bit-widths and training epsilon; latency and size follow the sparsity and the
bits. Each configuration has its own seeded noise, the same in every process and run.

`run_simulated_trial` has `run_trial`'s signature; `search` uses it in place of the real
trial when AER_SEARCH_TRIAL_RUNNER=simulated_work:run_simulated_trial (this folder on
PYTHONPATH). It sleeps the trial's simulated duration rung by rung
(AER_BENCH_TRIAL_SECONDS for the full budget) and hands real models to everything
around it, so the coordination path (sampler, storage, budget claims, rung records,
promotion, checkpoint artifacts, packed weights, progress) runs as in a real study.
"""

from __future__ import annotations

import math
import os
import random
import time
import zlib
from typing import Any

from torch import nn

from search.robust import BudgetState
from search.study import Resume, RungCallback, StudySetup, TrialOutcome, compress

SECONDS_ENV = "AER_BENCH_TRIAL_SECONDS"
TRIAL_SECONDS = 3.0


def _mean(params: dict[str, Any], prefix: str, default: float) -> float:
    values = [float(v) for k, v in params.items() if k.startswith(prefix)]
    return sum(values) / len(values) if values else default


def curve(params: dict[str, Any], fraction: float, seed: int = 0) -> dict[str, float]:
    """Metrics of `params` after `fraction` (0, 1] of the full budget (deterministic)."""
    key = repr(sorted(params.items()))
    rng = random.Random(zlib.crc32(f"{seed}|{key}".encode()))
    sparsity = _mean(params, "sparsity.", 0.0)
    bits = [int(v) for k, v in params.items() if k.startswith("bits.")] or [32]
    low_bits = sum(max(0, 5 - min(b, 8)) for b in bits) / len(bits)  # 2..4 bits hurt
    epsilon = float(params.get("epsilon", 0.0))
    strategy = str(params.get("strategy", "adversarial"))
    trained = 0.0 if strategy == "standard" else min(epsilon / 0.1, 1.0)
    ceiling = (
        0.15 + 0.6 * trained - 0.25 * sparsity**2 - 0.08 * low_bits - 0.3 * max(0, epsilon - 0.12)
    )
    ceiling += rng.gauss(0, 0.03)  # this configuration's own luck
    speed = 3.0 + 9.0 * rng.random()  # how fast it learns: most of it by a third
    start = 0.05
    robust = ceiling - (ceiling - start) * math.exp(-speed * fraction)
    robust = min(max(robust + rng.gauss(0, 0.005), 0.0), 0.99)
    clean = min(1.0, robust + 0.1 + 0.25 * (1 - trained))
    eight = sum(1 for b in bits if b <= 8) / len(bits)
    latency = 0.05 + 0.45 * (1 - sparsity) ** 2 * (1 - 0.5 * eight) * (1 + rng.gauss(0, 0.02))
    size = 4 + 104_650 * (1 - sparsity) ** 2 * (sum(min(b, 32) for b in bits) / len(bits)) / 8
    return {
        "robust_accuracy": robust,
        "clean_accuracy": max(clean, robust),
        "latency_ms": max(latency, 0.01),
        "size_bytes": float(int(size)),
    }


def trial_seconds() -> float:
    return float(os.environ.get(SECONDS_ENV, TRIAL_SECONDS))


_MODELS: dict[int, nn.Module] = {}


def _model(setup: StudySetup, params: dict[str, Any]) -> nn.Module:
    """One compressed model per process, reused by every trial: checkpoints and packed
    weights are real files of a real model, but no trial pays for compressing it."""
    if id(setup) not in _MODELS:
        _MODELS[id(setup)] = compress(
            setup.base_model, setup.plan(params), setup.input_shape, setup.device
        )
    return _MODELS[id(setup)]


def run_simulated_trial(
    setup: StudySetup,
    params: dict[str, Any],
    number: int = 0,
    on_rung: RungCallback | None = None,
    resume: Resume | None = None,
) -> TrialOutcome:
    """`run_trial` with the work simulated: sleeps, then the curve's metrics, per rung;
    a continuation (`resume`, a late promotion) starts after its original's rung."""
    cpu_start = time.process_time()
    cfg = setup.config
    plan = setup.plan(params)
    model = _model(setup, params)
    budgets = cfg.fidelity.rungs() if cfg.fidelity.enabled else [1]
    full = trial_seconds()
    seconds: dict[str, float] = {"simulated": 0.0}
    first = resume.rung + 1 if resume is not None else 0
    done = budgets[first - 1] if first else 0
    for index, budget in enumerate(budgets):
        if index < first:
            continue
        work = full * (budget - done) / budgets[-1]
        time.sleep(work)
        seconds["simulated"] += work
        done = budget
        metrics = curve(params, budget / budgets[-1], cfg.seed)
        seconds["cpu"] = time.process_time() - cpu_start
        state = BudgetState(images_seen=budget)
        outcome = TrialOutcome(model, plan, metrics, {}, dict(seconds), state, index)
        go_on = on_rung(index, budget, outcome) if on_rung and cfg.fidelity.enabled else True
        if not go_on or index == len(budgets) - 1:
            return outcome
    raise AssertionError("unreachable: a schedule has at least one rung")
