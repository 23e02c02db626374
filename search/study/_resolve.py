"""The resolve step: a config's names checked against the registries, once, up front.

The schema (`search.config`) checks keys, types and ranges; this checks what only the
registries know: the data set and the model are in the zoo or import, a user space
factory imports, every objective is registered (built-in, plug-in or import path), and
every constraint names a metric the study computes. The CLI, the Python API, the
service's intake and workers all call it (through `load_config` / `config_from_dict`),
so bad names fail the same way everywhere, before anything is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from objectives import BUILT_IN_METRICS, get_objective
from search.config import StudyConfig, parse_config, parse_constraint, read_config
from search.core import BadInput, import_object


def resolve(config: StudyConfig) -> StudyConfig:
    """Check every name the config uses; raise BadInput naming the first bad one."""
    from search.zoo import check_dataset_name, check_model_name  # torch: only when checking

    check_dataset_name(config.data.name)
    check_model_name(config.model.name)
    if config.space.factory is not None and not callable(
        import_object(config.space.factory, field="space.factory")
    ):
        raise BadInput(f"config field 'space.factory': {config.space.factory!r} is not a function")
    for name in config.objectives:
        get_objective(name)
    metrics = metric_names(config)
    for text in config.constraints:
        parse_constraint(text, metrics)
    return config


def metric_names(config: StudyConfig) -> list[str]:
    """Every metric a trial of this study records: the built-ins, then the objectives."""
    return list(dict.fromkeys([*BUILT_IN_METRICS, *config.objectives]))


def directions(config: StudyConfig) -> list[str]:
    return [get_objective(name).direction for name in config.objectives]


def load_config(
    path: str | Path | None = None,
    preset: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> StudyConfig:
    """A checked and resolved config from a YAML file or a preset, plus overrides."""
    return resolve(read_config(path, preset, overrides))


def config_from_dict(raw: dict[str, Any]) -> StudyConfig:
    """A checked and resolved config from a plain mapping (YAML, JSON or storage)."""
    return resolve(parse_config(raw))
