"""Promotion: asynchronous successive halving (ASHA, Li et al., MLSys 2020) in the study.

After each rung a trial asks whether it ranks in the top floor(n / factor) of the n
trials that reached that rung (ranked by `search.core.RungRanking`: non-dominated front,
then hypervolume contribution, then trial number). If so it goes on at once; if not it
stops there and its trial completes with that rung's values. The first trials at a rung
therefore never ride through every rung alone (floor(1 / 3) = 0): they wait for
competition. A stopped trial can still be promoted later, when enough trials reach its
rung that it ranks in the top floor(n / factor): whoever finishes a trial checks the
rungs, top one first, and enqueues a continuation, a new trial with the same params and
`continues = {trial, rung, ...}`, which loads that rung's checkpoint and fine-tunes on
from there (the fine-tune resumes exactly, see search.robust's budgeted fine-tuning).

Races: several processes may enqueue a continuation of one trial at once. Trial numbers
are handed out by the storage, so the lowest-numbered continuation of (trial, rung) is
the one that runs; any other is marked surplus when it starts and never runs. No trial
is promoted twice. Every decision is recorded with what it saw (the trial numbers at the
rung, as ranges), its place and the line it had to beat, so `replay_decisions` can check
it afterwards from the stored rung metrics alone.

Each process keeps a ranking per rung and adds only the trials it has not seen yet
(rung metrics never change once recorded), so a decision costs the new trials plus
one front's contributions, not a sort of the whole study; and it reads the study
through the process's trials view (search.study._trials_view), which fetches only the
open trials and the new ones, not every trial on every decision.
"""

from __future__ import annotations

import logging
import math
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from objectives import get_objective
from search.config import StudyConfig
from search.core import RungRanking
from search.study._stored import CONTINUES, FAIL_REASON, RUNGS, SURPLUS
from search.study._trials_view import trials_view

log = logging.getLogger(__name__)


def objective_point(config: StudyConfig, metrics: dict[str, float]) -> list[float]:
    """A trial's objectives as one point to minimise (maximised ones negated)."""
    point = []
    for name in config.objectives:
        sign = -1.0 if get_objective(name).direction == "maximize" else 1.0
        point.append(sign * metrics[name])
    return point


def maximised(config: StudyConfig) -> list[bool]:
    return [get_objective(name).direction == "maximize" for name in config.objectives]


def own_rungs(trial: FrozenTrial) -> list[dict[str, Any]]:
    """The rung entries a trial recorded itself (a continuation also carries copies of
    the rungs its original ran, marked `inherited_from`)."""
    return [e for e in trial.user_attrs.get(RUNGS, []) if "inherited_from" not in e]


def to_ranges(numbers: Iterable[int]) -> list[list[int]]:
    """Sorted numbers as [first, last] runs: what a decision saw, compactly."""
    ranges: list[list[int]] = []
    for n in sorted(numbers):
        if ranges and n == ranges[-1][1] + 1:
            ranges[-1][1] = n
        else:
            ranges.append([n, n])
    return ranges


def from_ranges(ranges: Sequence[Sequence[int]]) -> list[int]:
    return [n for first, last in ranges for n in range(first, last + 1)]


# per process: storage -> {(study id, rung): ranking}; weak, so a closed storage goes
_RANKINGS: weakref.WeakKeyDictionary[Any, dict[tuple[int, int], RungRanking]] = (
    weakref.WeakKeyDictionary()
)


def rung_ranking(
    study: optuna.Study, config: StudyConfig, index: int, trials: Sequence[FrozenTrial]
) -> RungRanking:
    """This process's ranking of rung `index`, brought up to date with `trials`."""
    per_storage = _RANKINGS.setdefault(study._storage, {})
    key = (study._study_id, index)
    ranking = per_storage.get(key)
    if ranking is None:
        ranking = per_storage[key] = RungRanking(maximised(config))
    new = []
    for trial in trials:
        if trial.number in ranking:
            continue
        rungs = own_rungs(trial)
        entry = next((e for e in rungs if e["rung"] == index), None)
        if entry is not None:
            new.append((trial.number, objective_point(config, entry["metrics"])))
    ranking.add(new)
    return ranking


@dataclass(frozen=True)
class Decision:
    """One promotion decision and what it rested on."""

    go_on: bool
    place: int  # from 0, best first
    of: int  # trials at the rung, this one included
    keep: int  # floor(of / factor): places that go on
    front: int  # 0 = non-dominated at the rung
    contribution: float  # exclusive hypervolume contribution within its front
    seen: list[list[int]]  # trial numbers at the rung, as [first, last] ranges

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def keep_count(config: StudyConfig, n: int) -> int:
    return math.floor(n / config.fidelity.factor)


def decide(
    study: optuna.Study,
    config: StudyConfig,
    number: int,
    index: int,
    metrics: dict[str, float],
    trials: Sequence[FrozenTrial],
) -> Decision:
    """Does trial `number`, with `metrics` at rung `index`, go on now?"""
    ranking = rung_ranking(study, config, index, trials)
    ranking.add([(number, objective_point(config, metrics))])
    where = ranking.place_of(number)
    keep = keep_count(config, len(ranking))
    return Decision(
        go_on=where.place < keep,
        place=where.place,
        of=len(ranking),
        keep=keep,
        front=where.front,
        contribution=where.contribution,
        seen=to_ranges(ranking.numbers),
    )


def continuation(trial: FrozenTrial) -> dict[str, Any] | None:
    """The `continues` record of a continuation (set when it was enqueued), else None."""
    return trial.user_attrs.get(CONTINUES)


def promoted_from(trials: Sequence[FrozenTrial], index: int) -> set[int]:
    """Trials that already went on from rung `index`: at once, or by a continuation
    (enqueued, running or finished, unless it was a surplus duplicate)."""
    done = set()
    for trial in trials:
        entry = next((e for e in own_rungs(trial) if e["rung"] == index), None)
        if entry is not None and entry.get("promoted"):
            done.add(trial.number)
        link = continuation(trial)
        if link is not None and link["rung"] == index and not trial.user_attrs.get(SURPLUS):
            done.add(link["trial"])
    return done


def stopped_at(trial: FrozenTrial, index: int) -> bool:
    """A complete trial whose own last rung is `index`, where it did not go on."""
    rungs = own_rungs(trial)
    return (
        trial.state == TrialState.COMPLETE
        and bool(rungs)
        and rungs[-1]["rung"] == index
        and not rungs[-1].get("promoted")
    )


def find_promotion(
    study: optuna.Study, config: StudyConfig, trials: Sequence[FrozenTrial]
) -> dict[str, Any] | None:
    """A stopped trial that now ranks in its rung's top floor(n / factor) and has not
    gone on yet (top rung first), as the `continues` record of its continuation."""
    by_number = {t.number: t for t in trials}
    for index in reversed(range(len(config.fidelity.rungs()) - 1)):
        ranking = rung_ranking(study, config, index, trials)
        keep = keep_count(config, len(ranking))
        if keep == 0:
            continue
        done = promoted_from(trials, index)
        for number in ranking.top(keep):
            trial = by_number.get(number)
            if number in done or trial is None or not stopped_at(trial, index):
                continue
            where = ranking.place_of(number)
            earlier = continuation(trial)
            return {
                "trial": number,
                "origin": earlier["origin"] if earlier else number,  # whose seeds it runs
                "rung": index,
                "place": where.place,
                "of": len(ranking),
                "keep": keep,
                "seen": to_ranges(ranking.numbers),
            }
    return None


def enqueue_promotion(study: optuna.Study, config: StudyConfig) -> int | None:
    """Enqueue the continuation of one promotable stopped trial; returns its number."""
    if not config.fidelity.enabled:
        return None
    trials = trials_view(study).refresh().trials()
    link = find_promotion(study, config, trials)
    if link is None:
        return None
    original = next(t for t in trials if t.number == link["trial"])
    study.enqueue_trial(original.params, user_attrs={CONTINUES: link}, skip_if_exists=False)
    log.info(
        "trial %d promoted from rung %d (place %d of %d, top %d): its continuation is queued",
        link["trial"],
        link["rung"],
        link["place"],
        link["of"],
        link["keep"],
    )
    return int(link["trial"])


def claim_continuation(trial: optuna.Trial) -> dict[str, Any] | None:
    """For a continuation: its `continues` record if it is the one that runs; a later
    duplicate (another process enqueued the same promotion) is marked surplus and pruned."""
    link = trial.user_attrs.get(CONTINUES)
    if link is None:
        return None
    rivals = [
        t.number
        for t in trials_view(trial.study).refresh().trials()
        if (other := continuation(t)) is not None
        and (other["trial"], other["rung"]) == (link["trial"], link["rung"])
    ]
    if min(rivals, default=trial.number) < trial.number:
        trial.set_user_attr(SURPLUS, True)
        trial.set_user_attr(
            FAIL_REASON,
            f"not run: trial {min(rivals)} already continues trial {link['trial']} "
            f"from rung {link['rung']}",
        )
        raise optuna.TrialPruned()
    return dict(link)


def replay_decisions(study: optuna.Study, config: StudyConfig) -> list[str]:
    """Recompute every recorded decision from the stored rung metrics of the trials it
    saw; returns a line per decision that does not come out the same (none: all agree)."""
    trials = study.get_trials(deepcopy=False)
    at_rung: dict[int, dict[int, list[float]]] = {}
    for trial in trials:
        for entry in own_rungs(trial):
            point = objective_point(config, entry["metrics"])
            at_rung.setdefault(entry["rung"], {})[trial.number] = point
    problems = []
    for trial in trials:
        for entry in own_rungs(trial):
            if "seen" not in entry:
                continue
            again = _replay(config, at_rung[entry["rung"]], entry["seen"], trial.number)
            if again != (entry["place"], entry["keep"]):
                problems.append(
                    f"trial {trial.number} rung {entry['rung']}: recorded place "
                    f"{entry['place']} / keep {entry['keep']}, replayed {again}"
                )
        link = continuation(trial)
        if link is not None and not trial.user_attrs.get(SURPLUS):
            again = _replay(config, at_rung[link["rung"]], link["seen"], link["trial"])
            if again != (link["place"], link["keep"]) or again[0] >= again[1]:
                problems.append(
                    f"continuation {trial.number} of trial {link['trial']}: recorded "
                    f"place {link['place']} / keep {link['keep']}, replayed {again}"
                )
    return problems


def _replay(
    config: StudyConfig, points: dict[int, list[float]], seen: Sequence[Sequence[int]], me: int
) -> tuple[int, int]:
    ranking = RungRanking(maximised(config))
    ranking.add([(n, points[n]) for n in from_ranges(seen)])
    return ranking.place_of(me).place, keep_count(config, len(ranking))
