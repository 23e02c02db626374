"""A sampler whose per-trial cost stays bounded as the study grows.

Optuna's samplers fit on every finished trial at every ask: multi-objective TPE costs
about 50 ms at 1,000 trials and 0.7-0.9 s at 10,000 (our 11-parameter, 3-objective
space; tests/benchmarks/bench_scale.py cost), and the GP sampler's fit is cubic in the
trials. Optuna offers no window of recent trials: TPE's `n_startup_trials`, `gamma`
(how many trials count as good: at most 25 by default), `weights` and
`consider_endpoints` shape the model, not the number of trials it reads.

`BoundedHistorySampler` wraps any sampler and, once the study holds more than `cap`
finished trials, shows it only a bounded history: the study's Pareto front (kept by
the trials view, so the best trials are never forgotten; at most half the cap), the
most recent finished trials up to the cap, and every running trial (constant liar
still sees the other workers). Below the cap it is the wrapped sampler, unchanged.
"""

from __future__ import annotations

import copy
from collections.abc import Container, Sequence
from typing import Any, cast

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from search.study._trials_view import trials_view


def bounded_history(
    trials: Sequence[FrozenTrial], front: Container[int], cap: int
) -> list[FrozenTrial]:
    """What the wrapped sampler sees: front members (at most cap // 2, newest first),
    then the newest other finished trials up to `cap`, and every unfinished trial;
    all of `trials` when at most `cap` are finished. Ordered by number."""
    finished = [t for t in trials if t.state.is_finished()]
    if len(finished) <= cap:
        return list(trials)
    best = [t for t in finished if t.number in front][-(cap // 2) :] if cap >= 2 else []
    kept = {t.number for t in best}
    room = cap - len(kept)
    recent = [t for t in finished if t.number not in kept][-room:] if room > 0 else []
    kept.update(t.number for t in recent)
    return [t for t in trials if t.number in kept or not t.state.is_finished()]


class _BoundedStudy:
    """The study as the wrapped sampler sees it: the same study, fewer trials."""

    def __init__(self, study: optuna.Study, trials: list[FrozenTrial]) -> None:
        self._study = study
        self._kept = trials

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(
        self,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
        use_cache: bool = False,
    ) -> list[FrozenTrial]:
        trials = [t for t in self._kept if states is None or t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials

    def get_trials(
        self, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        return self._get_trials(deepcopy, states)

    @property
    def trials(self) -> list[FrozenTrial]:
        return self._get_trials()


class BoundedHistorySampler(BaseSampler):
    """`sampler`, fitted on at most `cap` finished trials (see the module docstring)."""

    def __init__(self, sampler: BaseSampler, cap: int = 1000) -> None:
        if cap < 1:
            raise ValueError(f"cap must be >= 1, got {cap}")
        self.sampler = sampler
        self.cap = cap
        self._seen: tuple[int, int, optuna.Study] | None = None  # (study id, trial, view)

    def _bounded(self, study: optuna.Study, trial: FrozenTrial) -> optuna.Study:
        """The study with a bounded history, computed once per trial."""
        if self._seen and self._seen[:2] == (study._study_id, trial.number):
            return self._seen[2]
        trials = study._get_trials(deepcopy=False, use_cache=True)
        if sum(1 for t in trials if t.state.is_finished()) <= self.cap:
            bounded = study
        else:
            front = set(trials_view(study).refresh().front_numbers())
            bounded = cast(
                optuna.Study, _BoundedStudy(study, bounded_history(trials, front, self.cap))
            )
        self._seen = (study._study_id, trial.number, bounded)
        return bounded

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self.sampler.infer_relative_search_space(self._bounded(study, trial), trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self.sampler.sample_relative(self._bounded(study, trial), trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        bounded = self._bounded(study, trial)
        return self.sampler.sample_independent(bounded, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.sampler.before_trial(study, trial)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._seen = None
        self.sampler.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.sampler.reseed_rng()
