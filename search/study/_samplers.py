"""The samplers a study may use, seeded and sized to its budget.

Each process gets its own seed: the study's seed, the trials already done (so a resumed
study does not replay its first run's draws) and, for every process but the one that
created the study, a per-process nonce (host and pid), so workers that start together
never draw the same params while a study run once stays reproducible from its seed.
The seed each trial was drawn under is stored on it (`sampler_seed`), so what ran can
be replayed from the storage.
"""

from __future__ import annotations

import os
import socket
import zlib

import optuna

from search.config import StudyConfig


def process_nonce() -> int:
    """A number that differs between processes running at once (host and pid)."""
    return zlib.crc32(f"{socket.gethostname()}:{os.getpid()}".encode())


def sampler_seed(config: StudyConfig, already_done: int, created: bool = False) -> int:
    """The seed of this process's sampler; `created`: this process created the study."""
    nonce = 0 if created else process_nonce()
    return (config.seed * 1_000_003 + already_done * 7_919 + nonce) % 2**32


def make_sampler(
    config: StudyConfig, already_done: int, seed: int | None = None
) -> optuna.samplers.BaseSampler:
    """A seeded multi-objective sampler sized to the budget (`seed`: see sampler_seed)."""
    seed = sampler_seed(config, already_done) if seed is None else seed
    startup = min(10, max(4, config.trials // 3))
    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if config.sampler == "nsga2":
        population = max(4, config.trials // 5)
        return optuna.samplers.NSGAIISampler(population_size=population, seed=seed)
    if config.sampler == "gp":  # multi-objective since Optuna 4.4 (log expected HV improvement)
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)
    # constant liar: parallel workers see each other's running trials as bad, not absent
    return optuna.samplers.TPESampler(
        n_startup_trials=startup, multivariate=True, constant_liar=True, seed=seed
    )
