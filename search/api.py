"""Driving a study from Python: `run_search` and `load_study_result`.

They run the same pieces as `search run` and `search pareto` (StudySetup, the Optuna
driver, the export), so a study started from Python can be resumed, shown or exported
from the command line, and the other way round. A `StudyResult` is the Pareto front as a
list of `FrontMember`s (validation numbers, as the search scored them); `pick` chooses
one by a rule, like `search pareto --pick`; `export` writes the export layout after
re-assessing the front on the test split, like `search pareto --export`.

    from search import run_search
    result = run_search("study.yaml", storage="sqlite:///studies.db")
    for member in result:
        print(member.number, member.metrics["robust_accuracy"])
    model = result[0].model()
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import optuna
import pandas as pd
from torch import nn

from search.config import StudyConfig
from search.core import BadInput
from search.study import METRICS, config_from_dict, load_config, read_trials, storage_url


def run_search(
    config: StudyConfig | dict[str, Any] | str | Path, storage: str | None = None
) -> StudyResult:
    """Run (or resume) a study with the local Optuna backend; return its front.

    `config` is a StudyConfig, a plain mapping (as the YAML file would hold) or the path
    of a YAML file. `storage` (an SQLAlchemy URL or `journal:FILE`) defaults to the
    config's, then $AER_SEARCH_STORAGE, then `sqlite:///aer-search.db` in the working
    directory. Bad input raises `search.errors.BadInput` before anything is written.
    """
    from search.backends import launch
    from search.study import artifact_store

    config = _as_config(config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = launch(config, storage=storage)
    url = storage_url(storage, config.storage)
    return StudyResult(study, config, artifact_store(url, config.artifacts), storage=url)


def load_study_result(study: str | None = None, storage: str | None = None) -> StudyResult:
    """The front of a stored study (made by `search run` or `run_search`); writes nothing.

    `study` may be left out when the storage holds exactly one study.
    """
    from search.study import artifact_store, open_stored_study

    url = storage_url(storage)
    loaded, config = open_stored_study(
        url,
        study,
        storage_field="load_study_result: storage",
        study_field="load_study_result: study",
    )
    return StudyResult(loaded, config, artifact_store(url, config.artifacts), storage=url)


@dataclass(frozen=True)
class FrontMember:
    """One model of the front: its trial number, chosen params and validation metrics."""

    number: int
    params: dict[str, Any]
    metrics: dict[str, float]
    trial: optuna.trial.FrozenTrial
    artifacts: Any

    def model(self) -> nn.Module:
        """The compressed torch module this trial scored (eval mode, fake-quant view)."""
        from search.study import trial_model

        return trial_model(self.trial, self.artifacts)[0]

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in self.metrics.items())
        return f"FrontMember(trial {self.number}: {shown})"


class StudyResult(Sequence[FrontMember]):
    """The Pareto front of a study: a list of FrontMember, ordered by trial number."""

    def __init__(
        self, study: optuna.Study, config: StudyConfig, artifacts: Any, storage: str | None = None
    ) -> None:
        from search.front import front_trials

        self.study = study
        self.config = config
        self.artifacts = artifacts
        self.storage = storage  # the URL, so an export never lands on the storage file
        self._members = [self._member(t) for t in front_trials(study)]

    def _member(self, trial: optuna.trial.FrozenTrial) -> FrontMember:
        metrics = dict(trial.user_attrs[METRICS])
        return FrontMember(trial.number, dict(trial.params), metrics, trial, self.artifacts)

    @overload
    def __getitem__(self, index: int) -> FrontMember: ...

    @overload
    def __getitem__(self, index: slice) -> list[FrontMember]: ...

    def __getitem__(self, index: int | slice) -> FrontMember | list[FrontMember]:
        return self._members[index]

    def __len__(self) -> int:
        return len(self._members)

    def __iter__(self) -> Iterator[FrontMember]:
        return iter(self._members)

    def __repr__(self) -> str:
        return (
            f"StudyResult(study {self.study.study_name!r}: {len(self)} front members of "
            f"{len(read_trials(self.study))} trials)"
        )

    def pick(self, rule: str) -> FrontMember:
        """The one member `rule` picks, as `search pareto --pick RULE` picks it.

        `rule` is constraints joined by `and` (`latency_ms <= 0.2 and size_bytes < 9e3`),
        then optionally `; maximize METRIC`, `; minimize METRIC` or `; knee` (default: the
        study's first objective in its direction); or `knee` alone. A rule naming a test
        number (`test_...`, `retimed_...`) re-assesses the front first (stored, so
        once). Raises BadInput (one line) for a bad rule or one no member meets.
        """
        from search.front import front_trials, pick_member

        number = pick_member(self.study, self.config, self.artifacts, rule, field="pick")["trial"]
        known = [m for m in self._members if m.number == number]
        if known:
            return known[0]
        # the study went on since this result was read: the member is a newer trial
        return self._member(next(t for t in front_trials(self.study) if t.number == number))

    def to_dataframe(self) -> pd.DataFrame:
        """One row per front member: metrics, a summary of params, every param."""
        from search.front import front_frame

        return front_frame(self.study)

    def trials_dataframe(self) -> pd.DataFrame:
        """Every trial of the study (failed ones with their reason), as `search trials`."""
        from search.front import trials_frame

        return trials_frame(self.study)

    def export(self, directory: str | Path, force: bool = False) -> pd.DataFrame:
        """Write the export layout (weights, ONNX, recipe, metrics, plot) to `directory`.

        The front is re-assessed on the test split first (stored, so once). `directory`
        must be new, empty or an earlier export, which only `force` replaces; never the
        working directory, a folder holding the storage or the artifacts, a file or a
        symbolic link (BadInput before any work). Returns the pareto table.
        """
        from search.front import export_front

        return export_front(
            self.study,
            self.config,
            self.artifacts,
            Path(directory),
            force=force,
            storage=self.storage,
        )


def _as_config(config: StudyConfig | dict[str, Any] | str | Path) -> StudyConfig:
    if isinstance(config, StudyConfig):
        return copy.deepcopy(config).validate()
    if isinstance(config, dict):
        return config_from_dict(copy.deepcopy(config))
    if isinstance(config, str | Path):
        return load_config(config)
    raise BadInput(
        f"run_search: config must be a StudyConfig, a mapping or a YAML path, "
        f"got {type(config).__name__}"
    )
