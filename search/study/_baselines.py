"""Baselines as studies: the hand-picked settings the search must beat.

Each baseline is an ordinary study of the same config with a narrower space, so the
same tools (`search pareto`, `search trials`, export, the benchmark) show it:
- `paper-grid`: arXiv 2403.09441's grid, uniform sparsity {0.1, 0.3, 0.5, 0.7, 0.9} x
  uniform bit-width {16, 8, 4, 2} x {no fine-tune (post-training quantization),
  standard fine-tune, adversarial fine-tune at the evaluation epsilon}, 60 enqueued
  trials;
- `random`: random search over the study's own space, same budget;
- `adversarial-training`: the uncompressed model trained adversarially (PGD) from
  scratch at the evaluation epsilon, for as long as the base model (the costly
  reference);
- `trades-training`: the same with TRADES (arXiv 1901.08573, `finetune.trades_beta`),
  same budget; the targets compare against the better of the two.
Both from-scratch runs keep their state after every epoch and resume after a kill
(search.study._epoch_finetune); with `finetune.keep_best` they end with their best epoch.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from search.config import StudyConfig
from search.core import BadInput, close_matches

PAPER_SPARSITY = (0.1, 0.3, 0.5, 0.7, 0.9)
PAPER_BITS = (16, 8, 4, 2)
BASELINES = ("paper-grid", "random", "adversarial-training", "trades-training")
# the from-scratch references and the strategy each trains with
TRAINING_BASELINES = {"adversarial-training": "adversarial", "trades-training": "trades"}


def baseline_config(config: StudyConfig, name: str, study: str | None = None) -> StudyConfig:
    """The config of baseline `name` derived from `config` (study named after both)."""
    if name not in BASELINES:
        raise BadInput(
            f"--baseline must be one of {', '.join(BASELINES)}, got {name!r}"
            f"{close_matches(name, BASELINES)}"
        )
    epsilon = config.evaluation.epsilon
    space = config.space
    if name == "paper-grid":
        space = dataclasses.replace(
            space,
            granularity="global",
            sparsity=[0.0, 0.9],
            sparsity_step=0.1,
            bits=sorted(PAPER_BITS),
            epsilon=[0.0, epsilon],
            epsilon_step=epsilon,
            epochs=[0, max(space.epochs)],
            strategies=["standard", "adversarial"],
            init=["base"],
        )
        trials = len(paper_grid_points(config))
    elif name in TRAINING_BASELINES:
        epochs = config.model.base_epochs
        space = dataclasses.replace(
            space,
            granularity="global",
            sparsity=[0.0, 0.0],
            bits=[32],
            epsilon=[epsilon, epsilon],
            epochs=[epochs, epochs],
            strategies=[TRAINING_BASELINES[name]],
            trades_beta=None,
            init=["scratch"],
        )
        trials = 1
    else:
        trials = config.trials
    derived = dataclasses.replace(
        config,
        space=space,
        trials=trials,
        warm_start=0,
        sampler="random" if name != "paper-grid" else config.sampler,
        # baselines fine-tune by epochs, as the paper and plain random search do
        fidelity=dataclasses.replace(config.fidelity, enabled=False),
        study=study or f"{config.study}-{name}",
    )
    return derived.validate()


def paper_grid_points(config: StudyConfig) -> list[dict[str, Any]]:
    """The 60 fixed parameter sets of the paper's grid (params of the global space)."""
    epochs = max(config.space.epochs)
    finetunes = [
        ("standard", 0.0, 0),
        ("standard", 0.0, epochs),
        ("adversarial", config.evaluation.epsilon, epochs),
    ]
    return [
        {
            "sparsity": sparsity,
            "bits": bits,
            "strategy": strategy,
            "epsilon": epsilon,
            "epochs": n_epochs,
        }
        for sparsity in PAPER_SPARSITY
        for bits in PAPER_BITS
        for strategy, epsilon, n_epochs in finetunes
    ]
