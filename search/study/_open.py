"""Opening a study: create it or load it after checking it is compatible, or open a
stored one read-only (the checks every reader shares).

`open_study` is how `search run`, `run_search`, workers and the Ray backend start: the
process that creates the study stores its config and queues its first points; any
other process loads it and refuses a config whose fields would change what the
study's numbers mean. `open_stored_study` serves the commands and functions that only
read (`search pareto`, `search trials`, `load_study_result`): the storage exists, the
study is in it (or is the only one) and it stores an aer-search config; error lines
name each caller's own fields.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Sequence
from typing import Any, Literal, cast

import optuna

from search.config import StudyConfig
from search.core import BadInput
from search.study._resolve import config_from_dict, directions
from search.study._storage import check_storage_url, open_storage, storage_file
from search.study._stored import CONFIG, stored_config

# Studies this process created: its sampler keeps the study's own seed (a run started
# once is reproducible); processes that join draw with a nonce (see study._samplers).
_CREATED: weakref.WeakSet[optuna.Study] = weakref.WeakSet()


def created_here(study: optuna.Study) -> bool:
    """Whether this process created `study` (rather than joined or resumed it)."""
    return study in _CREATED


# Config fields that may change between runs of one study; all others fix what its
# numbers mean (data, model, space, threat model, latency settings, objectives).
RESUMABLE_FIELDS = {
    "study",
    "storage",
    "artifacts",
    "trials",
    "timeout",
    "device",
    "sampler",
    "warm_start",
    "ray",
}


def open_study(
    config: StudyConfig,
    storage: optuna.storages.BaseStorage,
    first_points: Sequence[dict[str, Any]] = (),
) -> optuna.Study:
    """Create the study, or load it after checking it was made with a compatible config.

    `first_points` (fixed params: a baseline's grid, warm-start anchors) are queued by
    the one process that creates the study, so concurrent workers never queue them twice.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # progress is ours, on stderr
    if config.study not in optuna.get_all_study_names(storage):
        try:
            # the registry accepts no other direction (objectives.DIRECTIONS)
            study_directions = cast(list[Literal["minimize", "maximize"]], directions(config))
            study = optuna.create_study(
                study_name=config.study, storage=storage, directions=study_directions
            )
        except optuna.exceptions.DuplicatedStudyError:
            pass  # another process created it a moment ago: load and check it below
        else:
            _CREATED.add(study)
            study.set_metric_names(list(config.objectives))
            study.set_user_attr(CONFIG, config.to_dict())
            for params in first_points:
                study.enqueue_trial(params)
            return study
    study = optuna.load_study(study_name=config.study, storage=storage)
    stored = _with_defaults(stored_config(study))
    check_compatible(stored, config.to_dict(), config.study)
    if stored != config.to_dict():  # e.g. a new --trials: workers that join follow it
        study.set_user_attr(CONFIG, config.to_dict())
    return study


def _with_defaults(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored config with fields added since it was stored at their defaults, so a
    newer aer-search resumes an older study whose meaning those fields do not change."""
    try:
        return config_from_dict(stored).to_dict()
    except BadInput:
        return stored  # a field was removed or renamed: compare as stored, and refuse


# fields inside a section that do not change how trials are scored: the test subset
# only sizes the front's re-assessment, which reads the study's own stored config
NOT_SCORING = {("data", "test_samples")}


def check_compatible(stored: dict[str, Any], given: dict[str, Any], study: str) -> None:
    """Refuse to mix trials scored under different rules in one study."""
    stored, given = _without_not_scoring(stored), _without_not_scoring(given)
    for key in sorted(set(stored) | set(given)):
        if key in RESUMABLE_FIELDS:
            continue
        if stored.get(key) != given.get(key):
            raise BadInput(
                f"config field '{key}' differs from the one study {study!r} was created with "
                f"(stored {json.dumps(stored.get(key))}, given {json.dumps(given.get(key))}); "
                f"use another --study name"
            )


def _without_not_scoring(config: dict[str, Any]) -> dict[str, Any]:
    config = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
    for section, key in NOT_SCORING:
        if isinstance(config.get(section), dict):
            config[section].pop(key, None)
    return config


def open_stored_study(
    url: str, name: str | None, *, storage_field: str = "--storage", study_field: str = "--study"
) -> tuple[optuna.Study, StudyConfig]:
    """The study `name` in storage `url` (or its only study) and its stored config.

    Writes nothing: a missing SQLite or journal file is refused rather than created.
    """
    check_storage_url(url)
    file = storage_file(url)
    if file is not None and not file.is_file():
        raise BadInput(f"{storage_field}: no such file {str(file)!r} (run `search run` first)")
    storage = open_storage(url)
    names = optuna.get_all_study_names(storage)
    if name is None:
        if not names:
            raise BadInput(f"{study_field}: the storage holds no study (run `search run` first)")
        if len(names) > 1:
            raise BadInput(
                f"{study_field}: the storage holds several studies, name one of: {', '.join(names)}"
            )
        name = names[0]
    if name not in names:
        raise BadInput(
            f"{study_field}: no study {name!r} in this storage; existing: "
            f"{', '.join(names) or 'none'}"
        )
    study = optuna.load_study(study_name=name, storage=storage)
    if CONFIG not in study.user_attrs:
        raise BadInput(
            f"{study_field}: study {name!r} was not made by aer-search (it stores no config)"
        )
    return study, config_from_dict(stored_config(study))
