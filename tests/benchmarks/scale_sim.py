"""Part b of the scale benchmark: many workers in simulated time, our scheduler and
sampler in the loop, and the coordination CPU per trial against study size.

An event simulation of its own (a heap of rung completions in simulated seconds): each
free worker asks the study's sampler (the one `make_sampler` builds) for a trial; each
rung's metrics come from the learning-curve model (simulated_work.curve); after each
rung the trial asks the promotion rule whether to go on (`Scheduler`: the study's own
rule, search.study._promotion's, on search.core's `RungRanking`: the top
floor(n / factor) at the rung go on at once; a stopped trial that later ranks there is
continued by the next free worker, and that continuation counts as a trial). A trial
that stops is told to the study with its last rung's metrics, as the front uses each
trial's last rung. Synchronous successive halving (random configurations, each
rung waiting for all of its trials) and random search (full budget) get the same
workers and the same simulated time.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna
from simulated_work import curve

from search.config import StudyConfig
from search.core import RungRanking, rank
from search.front import hypervolume
from search.study import (
    BoundedHistorySampler,
    add_to_front,
    directions,
    load_config,
    make_sampler,
    suggest,
)
from search.study._promotion import keep_count, maximised, objective_point
from spaces import Param

FULL = 100.0  # simulated seconds of a full-budget trial
REFERENCE = (0.0, 0.6, 420_000.0)  # -robust, latency_ms, size_bytes: worse than any trial
BOX = 1.0 * REFERENCE[1] * REFERENCE[2]  # the volume under the reference (robust in [0, 1])


def sim_config(trials: int, sampler: str = "tpe", seed: int = 0) -> StudyConfig:
    return load_config(
        preset="digits",
        overrides={
            "study": "sim",
            "trials": trials,
            "seed": seed,
            "sampler": sampler,
            "fidelity.enabled": True,
            "fidelity.min_images": 2000,
            "fidelity.max_images": 54000,
            "fidelity.factor": 3,
        },
    )


def space(config: StudyConfig) -> list[Param]:
    """The study's searched params (digits-cnn's layers), without data or a base model."""
    from search.compress import prunable_layers, weighted_layers
    from search.zoo import DataInfo, build_model
    from spaces import expand

    model = build_model(config.model.name, DataInfo(10, 1, 8, (0.5,), (0.5,)))
    params = expand(config.space, list(prunable_layers(model)), list(weighted_layers(model)))
    return [p for p in params if p.name != "epochs"]


class Scheduler:
    """The study's promotion rule in simulated time: one ranking per rung, each decision
    the same `RungRanking` query `search.study.decide` makes; late promotions as
    `search.study.find_promotion` finds them."""

    def __init__(self, config: StudyConfig, rungs: int) -> None:
        self.config = config
        self.rankings = [RungRanking(maximised(config)) for _ in range(rungs)]
        self.stopped: list[dict[int, Any]] = [{} for _ in range(rungs)]  # number -> job

    def decide(self, number: int, index: int, metrics: dict[str, float]) -> bool:
        """The promotion rule under test: the one place this benchmark decides."""
        ranking = self.rankings[index]
        ranking.add([(number, objective_point(self.config, metrics))])
        return ranking.place_of(number).place < keep_count(self.config, len(ranking))

    def late_promotion(self) -> tuple[int, Any] | None:
        """(rung, job) of a stopped trial that now ranks in its rung's top, top rung first."""
        for index in reversed(range(len(self.rankings) - 1)):
            ranking = self.rankings[index]
            keep = keep_count(self.config, len(ranking))
            for number in ranking.top(keep) if keep else []:
                if number in self.stopped[index]:
                    return index, self.stopped[index].pop(number)
        return None


def decide(config: StudyConfig, mine: dict[str, float], others: list[dict[str, float]]) -> bool:
    """One decision among `others` from a cold start (a process's first at a rung)."""
    scheduler = Scheduler(config, 1)
    scheduler.rankings[0].add(
        [(i, objective_point(config, m)) for i, m in enumerate(others, start=1)]
    )
    return scheduler.decide(0, 0, mine)


def point(metrics: dict[str, float]) -> list[float]:
    return [-metrics["robust_accuracy"], metrics["latency_ms"], metrics["size_bytes"]]


@dataclass
class Timeline:
    """Normalised validation hypervolume of every trial's last rung, as time goes."""

    method: str
    workers: int
    front: list[tuple[int, list[float]]] = field(default_factory=list)
    points: list[tuple[float, float, int]] = field(default_factory=list)  # (time, hv, done)
    done: int = 0
    cpu: dict[str, float] = field(default_factory=dict)

    def add(self, now: float, metrics: dict[str, float]) -> None:
        self.done += 1
        before = self.front
        self.front = add_to_front(self.front, self.done, point(metrics))
        if self.front is not before or not self.points:
            hv = hypervolume([p for _, p in self.front], REFERENCE) / BOX
            self.points.append((now, hv, self.done))

    def hv_at(self, now: float) -> float:
        value = 0.0
        for when, hv, _ in self.points:
            if when > now:
                break
            value = hv
        return value

    @property
    def end(self) -> float:
        return self.points[-1][0] if self.points else 0.0


def _timed(cpu: dict[str, float], key: str, call: Callable[[], Any]) -> Any:
    start = time.process_time()
    result = call()
    cpu[key] = cpu.get(key, 0.0) + time.process_time() - start
    return result


def simulate_ours(
    config: StudyConfig, workers: int, seed: int = 0, cap: int | None = None
) -> Timeline:
    """ASHA-style promotion with the study's sampler (`cap`: wrapped in
    BoundedHistorySampler); N asynchronous workers."""
    params = space(config)
    fractions = [b / config.fidelity.rungs()[-1] for b in config.fidelity.rungs()]
    sampler = make_sampler(config, 0, seed)
    if cap is not None:
        sampler = BoundedHistorySampler(sampler, cap=cap)
    study = optuna.create_study(directions=directions(config), sampler=sampler)
    scheduler = Scheduler(config, len(fractions))
    line = Timeline("ours" if cap is None else f"ours, bounded {cap}", workers)
    events: list[tuple[float, int, Any, dict[str, Any], int]] = []
    order = itertools.count()
    started = 0

    def start(now: float) -> None:
        nonlocal started
        started += 1
        late = _timed(line.cpu, "promotion", scheduler.late_promotion)
        if late is not None:  # a continuation: the stopped trial's next rung
            index, (trial, chosen) = late
            step = FULL * (fractions[index + 1] - fractions[index])
            heapq.heappush(events, (now + step, next(order), trial, chosen, index + 1))
            return
        trial = _timed(line.cpu, "sampler", study.ask)
        chosen = _timed(line.cpu, "sampler", lambda: {p.name: suggest(trial, p) for p in params})
        heapq.heappush(events, (now + FULL * fractions[0], next(order), trial, chosen, 0))

    for _ in range(min(workers, config.trials)):
        start(0.0)
    told: set[int] = set()
    while events:
        now, _, trial, chosen, index = heapq.heappop(events)
        metrics = curve(chosen, fractions[index], seed)
        number = trial.number
        clock = time.process_time()
        go_on = scheduler.decide(number, index, metrics)
        line.cpu["promotion"] = line.cpu.get("promotion", 0.0) + time.process_time() - clock
        if go_on and index + 1 < len(fractions):
            step = FULL * (fractions[index + 1] - fractions[index])
            heapq.heappush(events, (now + step, next(order), trial, chosen, index + 1))
            continue
        if index + 1 < len(fractions):
            scheduler.stopped[index][number] = (trial, chosen)
        if number not in told:  # a continuation's trial was told when it first stopped
            told.add(number)
            study.tell(trial, [metrics[name] for name in config.objectives])
        line.add(now, metrics)
        if started < config.trials:
            start(now)
    return line


def _random_configs(config: StudyConfig, count: int, rng: random.Random) -> list[dict[str, Any]]:
    sampler = optuna.samplers.RandomSampler(seed=rng.randrange(2**31))
    study = optuna.create_study(directions=directions(config), sampler=sampler)
    params = space(config)
    found = []
    for _ in range(count):
        trial = study.ask()
        found.append({p.name: suggest(trial, p) for p in params})
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    return found


def simulate_sha(config: StudyConfig, workers: int, horizon: float, seed: int = 0) -> Timeline:
    """Synchronous successive halving: brackets of random configurations, each rung
    waiting for all its trials, the top 1/factor (same ranking) going on."""
    fractions = [b / config.fidelity.rungs()[-1] for b in config.fidelity.rungs()]
    factor = config.fidelity.factor
    line = Timeline("sync SH", workers)
    rng = random.Random(seed)
    now = 0.0
    size = max(workers, int(factor ** (len(fractions) - 1)))
    while now < horizon:
        alive = _random_configs(config, size, rng)
        done = 0.0
        for index, fraction in enumerate(fractions):
            step = FULL * (fraction - done)
            done = fraction
            metrics = [curve(c, fraction, seed) for c in alive]
            finish = [now + (i // workers + 1) * step for i in range(len(alive))]
            now += math.ceil(len(alive) / workers) * step
            keep = math.ceil(len(alive) / factor) if index + 1 < len(fractions) else 0
            best = set(rank([point(m) for m in metrics])[:keep])
            for i, m in enumerate(metrics):
                if i not in best and finish[i] <= horizon:
                    line.add(finish[i], m)  # stopped here: its last rung joins the front
            alive = [alive[i] for i in sorted(best)]
            if not alive or now >= horizon:
                break
    return line


def simulate_random(config: StudyConfig, workers: int, horizon: float, seed: int = 0) -> Timeline:
    """Random search: every trial full budget, N workers asynchronously."""
    line = Timeline("random", workers)
    rng = random.Random(seed + 1)
    count = workers * int(horizon // FULL)  # the trials that end within the horizon
    configs = _random_configs(config, count, rng)
    for i, chosen in enumerate(configs):
        line.add((i // workers + 1) * FULL, curve(chosen, 1.0, seed))
    return line


def hv_rows(lines: list[Timeline], samples: int = 12) -> list[dict[str, Any]]:
    """HV of each method at evenly spaced times up to the longest run, per N."""
    rows = []
    for workers in sorted({line.workers for line in lines}):
        group = [line for line in lines if line.workers == workers]
        horizon = max(line.end for line in group)
        for k in range(1, samples + 1):
            when = horizon * k / samples
            row: dict[str, Any] = {"workers": workers, "sim_time_s": round(when, 1)}
            for line in group:
                row[line.method] = round(line.hv_at(when), 4)
            rows.append(row)
    return rows


# -- coordination CPU per trial against study size -----------------------------------


def filled_study(
    config: StudyConfig, size: int, storage: Any = None, seed: int = 0
) -> optuna.Study:
    """A study holding `size` finished trials with rung records, made quickly (random
    configurations through the curve, added as frozen trials, not run)."""
    rng = random.Random(seed)
    fractions = [b / config.fidelity.rungs()[-1] for b in config.fidelity.rungs()]
    study = optuna.create_study(directions=directions(config), storage=storage)
    random_sampler = optuna.samplers.RandomSampler(seed=seed)  # draws only: no model
    template = optuna.create_study(directions=directions(config), sampler=random_sampler)
    params = space(config)
    frozen = []
    for number in range(size):
        trial = template.ask()
        chosen = {p.name: suggest(trial, p) for p in params}
        template.tell(trial, state=optuna.trial.TrialState.PRUNED)
        depth = 1 + (rng.random() < 1 / 3) + (rng.random() < 1 / 9)
        rungs = [{"rung": i, "metrics": curve(chosen, fractions[i], seed)} for i in range(depth)]
        last = rungs[-1]["metrics"]
        frozen.append(
            optuna.trial.create_trial(
                params=trial.params,
                distributions=trial.distributions,
                values=[last[name] for name in config.objectives],
                user_attrs={"rungs": rungs, "worker": {"host": "sim", "pid": number}},
            )
        )
    study.add_trials(frozen)
    return study


def median_seconds(call: Callable[[], Any], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sampler_cost(config: StudyConfig, study: optuna.Study, sampler: Any) -> float:
    """Seconds of one ask (params drawn for every searched param) on `study`."""
    params = space(config)
    study.sampler = sampler

    def ask_and_tell() -> None:
        trial = study.ask()
        chosen = {p.name: suggest(trial, p) for p in params}
        metrics = curve(chosen, 1.0)
        study.tell(trial, [metrics[name] for name in config.objectives])

    ask_and_tell()  # the first ask after a fill warms caches; time the next ones
    return median_seconds(ask_and_tell)


def promotion_cost(config: StudyConfig, size: int) -> float:
    """Seconds of one promotion decision among `size` trials at a rung, in a process
    that has ranked the rung before (its first decision there: bench_promotion.py)."""
    rng = random.Random(size)
    others = [
        curve({"sparsity.a": rng.random() * 0.75, "epsilon": rng.random() * 0.2}, 1 / 27)
        for _ in range(size)
    ]
    scheduler = Scheduler(config, 1)
    scheduler.rankings[0].add(
        [(i, objective_point(config, m)) for i, m in enumerate(others, start=1)]
    )
    numbers = itertools.count(-1, -1)
    mine = curve({"sparsity.a": 0.3, "epsilon": 0.1}, 1 / 27)
    return median_seconds(lambda: scheduler.decide(next(numbers), 0, mine))


def full_reads(study: optuna.Study, number: int) -> None:
    """What one trial's coordination read before the trials view: each of claim_slot,
    the budget callback (dead workers, budget count), the progress line (finished
    count, best value, front size) and the rung metrics walked the whole study."""
    from optuna.trial import TrialState

    budgeted = (TrialState.COMPLETE, TrialState.FAIL, TrialState.RUNNING)
    _ = [t for t in study.get_trials(deepcopy=False, states=budgeted) if t.number < number]
    _ = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    _ = [t for t in study.get_trials(deepcopy=False, states=budgeted)]
    _ = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL))
    _ = max(t.values[0] for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    _ = len(study.best_trials)
    _ = [t.user_attrs.get("rungs", []) for t in study.get_trials(deepcopy=False)]


def view_reads(study: optuna.Study, number: int) -> None:
    """The same facts from the process's trials view, refreshed once."""
    from search.study import trials_view

    view = trials_view(study).refresh()
    _ = view.budgeted_before(number)
    _ = view.running()
    _ = view.budget_count()
    _ = view.finished_count
    _ = view.best_first
    _ = view.front_size
    _ = view.rung_metrics(0, exclude=number)


def reads_cost(config: StudyConfig, study: optuna.Study, read: Callable[..., None]) -> float:
    """Seconds of one trial's coordination reads, a new trial having finished since."""
    study.sampler = optuna.samplers.RandomSampler(seed=0)
    if read is view_reads:
        view_reads(study, 0)  # the view's first read of the study happens once per process
    times = []
    for _ in range(3):
        trial = study.ask()
        study.tell(trial, [0.5, 0.3, 10_000.0])
        start = time.perf_counter()
        read(study, trial.number + 1)
        times.append(time.perf_counter() - start)
    return statistics.median(times)
