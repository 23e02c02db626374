"""BoundedHistorySampler: the wrapped sampler fits on at most `cap` finished trials, the
study's front and every running trial always among them."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from search.study import BoundedHistorySampler, bounded_history, trials_view


class Recording(optuna.samplers.RandomSampler):
    """A real random sampler that notes which trials each ask showed it."""

    def __init__(self) -> None:
        super().__init__(seed=0)
        self.seen: list[list[int]] = []
        self.studies: list[object] = []

    def sample_independent(self, study, trial, param_name, param_distribution):  # type: ignore[no-untyped-def]
        self.seen.append([t.number for t in study._get_trials(deepcopy=False)])
        self.studies.append(study)
        return super().sample_independent(study, trial, param_name, param_distribution)


def filled(count: int, sampler: optuna.samplers.BaseSampler) -> optuna.Study:
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
    trials = [
        optuna.trial.create_trial(
            params={"x": i / count},
            distributions={"x": optuna.distributions.FloatDistribution(0, 1)},
            values=[i / count, 1 - i / count] if i % 3 == 0 else [1.0, 1.0 + i],
        )
        for i in range(count)
    ]
    study.add_trials(trials)
    return study


def test_the_history_keeps_the_front_the_newest_and_every_running_trial() -> None:
    study = filled(60, optuna.samplers.RandomSampler(seed=0))
    running = study.ask()
    trials = study.get_trials(deepcopy=False)
    front = set(trials_view(study).refresh().front_numbers())
    kept = bounded_history(trials, front, cap=20)
    numbers = [t.number for t in kept]
    finished = [t for t in kept if t.state.is_finished()]
    assert len(finished) == 20
    assert running.number in numbers
    assert numbers == sorted(numbers)
    front_kept = [n for n in numbers if n in front]
    assert len(front_kept) == 10 and front_kept == sorted(front)[-10:]  # cap // 2, newest
    others = [n for n in numbers if n not in front and n != running.number]
    newest = [t.number for t in trials if t.number not in front and t.state.is_finished()]
    assert len(others) == 10 and others == newest[-10:]
    assert bounded_history(trials, front, cap=100) == trials  # under the cap: all of them


def test_the_wrapped_sampler_sees_a_bounded_study_only_past_the_cap() -> None:
    recording = Recording()
    study = filled(8, BoundedHistorySampler(recording, cap=10))
    study.ask().suggest_float("x", 0, 1)
    assert recording.studies[-1] is study  # under the cap: the study itself
    study.add_trials(filled(52, optuna.samplers.RandomSampler()).get_trials())
    trial = study.ask()
    value = trial.suggest_float("x", 0, 1)
    assert 0 <= value <= 1
    seen = recording.seen[-1]
    states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    finished = [n for n in seen if states[n].is_finished()]
    assert len(finished) == 10
    assert {trial.number, 8} <= set(seen)  # running trials (8 was asked, never told)
    front = trials_view(study).refresh().front_numbers()
    assert set(front[-5:]) <= set(seen)


def test_a_real_tpe_runs_wrapped_and_stays_in_range() -> None:
    base = optuna.samplers.TPESampler(multivariate=True, constant_liar=True, seed=0)
    study = filled(80, BoundedHistorySampler(base, cap=30))
    for _ in range(3):
        trial = study.ask()
        x = trial.suggest_float("x", 0, 1)
        study.tell(trial, [x, 1 - x])
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 83
