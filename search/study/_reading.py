"""Every trial of a study, read fast enough for a study of ten thousand trials.

Why not `study.get_trials`: on a database Optuna builds every trial through the ORM
(a mapped object per param, value and attribute row: 25 s for 10,000 default-study
trials on SQLite) and parses each param's distribution JSON twice. `read_trials` reads
the same five tables with plain SQL rows on one connection, builds each `FrozenTrial`
as Optuna's `RDBStorage` does, and parses each distinct distribution once. In a long-
lived process (the service) finished trials are kept, per storage object and study, and
only new or unfinished trials are read again (one small query on the trials table says
which): a finished trial is never modified (the stored-study contract,
search/study/_stored.py).

Other storages (the journal file, in memory) keep the study in memory once replayed and
read through `study.get_trials(deepcopy=False)`; `fast_journal_replay` makes the replay
itself parse each distinct distribution once.
"""

from __future__ import annotations

import functools
import json
import threading
import weakref
from collections import defaultdict
from collections.abc import Container, Iterable
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, json_to_distribution
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

_FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)
_CHUNK = 500  # trial ids per IN (...) list: under every database's limit on variables
_lock = threading.Lock()
# per storage object (a long-lived process keeps one), per study id: finished trials
_kept: weakref.WeakKeyDictionary[RDBStorage, dict[int, dict[int, FrozenTrial]]] = (
    weakref.WeakKeyDictionary()
)


def read_trials(
    study: optuna.Study, states: Container[TrialState] | None = None
) -> list[FrozenTrial]:
    """The study's trials in number order, uncopied (do not modify them); only those in
    `states` when given."""
    rdb = rdb_storage(study)
    if rdb is None:
        return study.get_trials(deepcopy=False, states=states)
    trials = _read_rdb(rdb, study._study_id)
    return trials if states is None else [t for t in trials if t.state in states]


def rdb_storage(study: optuna.Study) -> RDBStorage | None:
    """The database storage under the study's cache, or None for other storages."""
    storage = study._storage
    storage = getattr(storage, "_backend", storage)  # optuna's _CachedStorage
    return storage if isinstance(storage, RDBStorage) else None


@functools.lru_cache(maxsize=4096)
def _distribution(text: str) -> BaseDistribution:
    """One distribution per distinct JSON text: a study has a few dozen, each stored
    with every trial's param. Shared, never modified (Optuna copies before it would)."""
    return json_to_distribution(text)


def fast_journal_replay() -> None:
    """Make Optuna's journal replay parse each distinct distribution once.

    The replay (`optuna.storages.journal._storage`) parses the distribution JSON of
    every param of every trial: 3.7 of 8 s for a 10,000-trial journal. Its module-level
    name is pointed at the cached parser above, which returns an equal distribution
    for the same text; nothing else changes. Idempotent.
    """
    from optuna.storages.journal import _storage as journal

    journal.json_to_distribution = _distribution


def _read_rdb(storage: RDBStorage, study_id: int) -> list[FrozenTrial]:
    from optuna.storages._rdb import models
    from sqlalchemy import select

    trial_table = models.TrialModel.__table__
    with storage.engine.connect() as connection:
        # the trials table first: a trial it reads as finished had every row written
        # before (Optuna writes values and state in one transaction), so its rows read
        # next are complete; one that finishes meanwhile reads as running, is not kept,
        # and is read again next time
        heads = connection.execute(
            select(
                trial_table.c.trial_id,
                trial_table.c.number,
                trial_table.c.state,
                trial_table.c.datetime_start,
                trial_table.c.datetime_complete,
            )
            .where(trial_table.c.study_id == study_id)
            .order_by(trial_table.c.number)
        ).all()
        with _lock:
            kept = dict(_kept.get(storage, {}).get(study_id, {}))
        kept = {h.trial_id: kept[h.trial_id] for h in heads if _same(kept.get(h.trial_id), h)}
        wanted = [h for h in heads if h.trial_id not in kept]
        if wanted:
            kept.update(_build(connection, study_id, wanted, everything=len(wanted) == len(heads)))
    with _lock:
        finished = {i: t for i, t in kept.items() if t.state in _FINISHED}
        _kept.setdefault(storage, {})[study_id] = finished
    return [kept[h.trial_id] for h in heads]


def _same(trial: FrozenTrial | None, head: Any) -> bool:
    """A kept trial still is what the trials table says (a deleted study's ids reused
    by a new one would not be)."""
    return (
        trial is not None
        and trial.number == head.number
        and trial.state == head.state
        and trial.datetime_start == head.datetime_start
        and trial.datetime_complete == head.datetime_complete
    )


def _build(
    connection: Any, study_id: int, heads: list[Any], everything: bool
) -> dict[int, FrozenTrial]:
    """FrozenTrials of `heads` (rows of the trials table), their rows read in bulk."""
    children = _children(connection, study_id, [h.trial_id for h in heads], everything)
    built = {}
    for head in heads:
        rows = {name: found.get(head.trial_id, []) for name, found in children.items()}
        built[head.trial_id] = _frozen(head, rows)
    return built


def _children(
    connection: Any, study_id: int, trial_ids: list[int], everything: bool
) -> dict[str, dict[int, list[Any]]]:
    """Rows of each child table by trial id: all of the study's, or `trial_ids`' only."""
    from optuna.storages._rdb import models
    from sqlalchemy import select

    trial_table = models.TrialModel.__table__
    tables = {
        "params": models.TrialParamModel.__table__,
        "values": models.TrialValueModel.__table__,
        "user": models.TrialUserAttributeModel.__table__,
        "system": models.TrialSystemAttributeModel.__table__,
        "intermediate": models.TrialIntermediateValueModel.__table__,
    }
    found: dict[str, dict[int, list[Any]]] = {}
    for name, table in tables.items():
        by_trial: dict[int, list[Any]] = defaultdict(list)
        query = select(table)
        if everything:
            query = query.join(trial_table, table.c.trial_id == trial_table.c.trial_id).where(
                trial_table.c.study_id == study_id
            )
            batches: Iterable[Any] = [query]
        else:
            batches = (
                query.where(table.c.trial_id.in_(trial_ids[i : i + _CHUNK]))
                for i in range(0, len(trial_ids), _CHUNK)
            )
        for batch in batches:
            for row in connection.execute(batch):
                by_trial[row.trial_id].append(row)
        found[name] = by_trial
    return found


def _frozen(head: Any, rows: dict[str, list[Any]]) -> FrozenTrial:
    """One trial, as `RDBStorage._build_frozen_trial_from_trial_model` builds it."""
    from optuna.storages._rdb import models

    values: list[float] | None = None
    if rows["values"]:
        values = [0.0] * len(rows["values"])
        for row in rows["values"]:
            values[row.objective] = models.TrialValueModel.stored_repr_to_value(
                row.value, row.value_type
            )
    params = sorted(rows["params"], key=lambda row: row.param_id)
    distributions = {row.param_name: _distribution(row.distribution_json) for row in params}
    return FrozenTrial(
        number=head.number,
        state=head.state,
        value=None,
        values=values,
        datetime_start=head.datetime_start,
        datetime_complete=head.datetime_complete,
        params={
            row.param_name: distributions[row.param_name].to_external_repr(row.param_value)
            for row in params
        },
        distributions=distributions,
        user_attrs={row.key: json.loads(row.value_json) for row in rows["user"]},
        system_attrs={row.key: json.loads(row.value_json) for row in rows["system"]},
        intermediate_values={
            row.step: models.TrialIntermediateValueModel.stored_repr_to_intermediate_value(
                row.intermediate_value, row.intermediate_value_type
            )
            for row in rows["intermediate"]
        },
        trial_id=head.trial_id,
    )
