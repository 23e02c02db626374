"""The samplers a study may use, seeded and sized to its budget."""

from __future__ import annotations

import optuna

from search.config import StudyConfig


def make_sampler(config: StudyConfig, already_done: int) -> optuna.samplers.BaseSampler:
    """A seeded multi-objective sampler sized to the budget.

    The seed is offset by the trials already done, so a resumed study does not replay
    the random draws of its first run.
    """
    seed = config.seed + already_done
    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if config.sampler == "nsga2":
        population = max(4, config.trials // 5)
        return optuna.samplers.NSGAIISampler(population_size=population, seed=seed)
    startup = min(10, max(4, config.trials // 3))
    return optuna.samplers.TPESampler(n_startup_trials=startup, multivariate=True, seed=seed)
