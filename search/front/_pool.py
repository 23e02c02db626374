"""Scoring front members side by side, in worker processes, when cores are free.

A member's attacks are independent of every other member's, and the small models of a
front use one core badly (intra-op threads on batches of 8x8 or 28x28 images mostly
wait on each other), so one process per member, each with one torch thread, is what
scales. The pool is bounded by the cores that are free now (cores minus the load
average): a machine already busy with trials or a benchmark gets no extra processes.
Only the attacks run here; re-timing stays in the main process, one model at a time,
after the pool is done, as the evaluation rules require.

Workers are spawned, not forked: a forked child of a process that has used torch's
OpenMP threads can hang. Each loads the data splits once and receives, once, the
transfer check's images (crafted on the base model before the pool starts,
`_scoring.transfer_for`).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

import torch
from optuna.trial import FrozenTrial

from search.config import StudyConfig
from search.front._scoring import score_member
from search.robust import TransferSet
from search.study import trial_model
from search.zoo import load_splits

log = logging.getLogger(__name__)
_WORKER: dict[str, Any] = {}  # what one worker process loaded once (`_start`)

Scored = tuple[dict[str, Any], float]  # a member's scores and the seconds they took


def free_cores() -> int:
    """Cores not busy now (cores minus the 1-minute load average), at least 1."""
    cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except OSError:  # no load average on this platform
        busy = 0.0
    return max(1, min(cores, int(cores - busy + 0.5)))


def pool_size(members: int, device: torch.device, artifacts: Any) -> int:
    """How many processes to score `members` with: 1 (in this process) on an
    accelerator, for one member, or where the artifact store cannot be sent to a worker."""
    if device.type != "cpu" or members < 2:
        return 1
    try:
        pickle.dumps(artifacts)
    except Exception:  # a store holding a client or a lock stays in this process
        return 1
    return min(members, free_cores())


def score_in_pool(
    trials: Sequence[FrozenTrial],
    config: StudyConfig,
    transfer: TransferSet,
    artifacts: Any,
    workers: int,
    on_scored: Callable[[FrozenTrial, int], None] | None = None,
) -> dict[int, Scored]:
    """Every member's scores by trial number, computed by `workers` processes;
    `on_scored(trial, done)` is called as each one finishes (progress)."""
    context = multiprocessing.get_context("spawn")
    results: dict[int, Scored] = {}
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start, initargs=(config, transfer)
    ) as pool:
        futures = {pool.submit(_score, trial, artifacts): trial for trial in trials}
        for future in as_completed(futures):
            trial = futures[future]
            results[trial.number] = future.result()
            if on_scored is not None:
                on_scored(trial, len(results))
    return results


def _start(config: StudyConfig, transfer: TransferSet) -> None:
    torch.set_num_threads(1)
    _WORKER.update(config=config, transfer=transfer, splits=load_splits(config.data, config.seed))


def _score(trial: FrozenTrial, artifacts: Any) -> Scored:
    clock = time.monotonic()
    model, _ = trial_model(trial, artifacts)
    device = torch.device("cpu")
    scores = score_member(
        model.to(device), _WORKER["transfer"], _WORKER["config"], _WORKER["splits"], device
    )
    return scores, time.monotonic() - clock
