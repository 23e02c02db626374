"""Reading a config: YAML files and presets into a checked `StudyConfig`.

This checks the schema only (known keys, types, ranges). Whether names resolve (a model
in the zoo, an objective in the registry, an importable factory) is the resolve step's
job, `search.study.resolve`, which every entry point runs next.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Union

import yaml

from search.config._schema import PRESETS_DIR, StudyConfig
from search.core import BadInput, close_matches


def read_config(
    path: str | Path | None = None,
    preset: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> StudyConfig:
    """Build a validated config from a YAML file or a preset, then apply overrides.

    `overrides` maps dotted field names (`model.checkpoint`) to values; None values are
    skipped, so CLI flags that were not given change nothing.
    """
    if path is not None and preset is not None:
        raise BadInput("give a CONFIG file or --preset, not both")
    raw: dict[str, Any] = {}
    if preset is not None:
        available = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))
        if preset not in available:
            raise BadInput(
                f"--preset: unknown preset {preset!r}; allowed: {', '.join(available)}"
                f"{close_matches(preset, available)}"
            )
        path = PRESETS_DIR / f"{preset}.yaml"
    if path is not None:
        raw = _read_yaml(Path(path))
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        node = raw
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return parse_config(raw)


def parse_config(raw: dict[str, Any]) -> StudyConfig:
    """Convert a plain mapping (from YAML, JSON or storage) and check its schema."""
    config = _build(StudyConfig, raw, "")
    return config.validate()


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise BadInput(f"CONFIG: no such file {str(path)!r}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise BadInput(f"CONFIG {str(path)!r} is not valid YAML: {_one_line(exc)}") from exc
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise BadInput(
            f"CONFIG {str(path)!r} must be a mapping of fields, got {type(raw).__name__}"
        )
    return raw


def _build(cls: type, raw: Any, prefix: str) -> Any:
    """Turn a mapping into dataclass `cls`, rejecting unknown keys and wrong types."""
    where = prefix.rstrip(".") or "config"
    if not isinstance(raw, dict):
        raise BadInput(f"config field '{where}' must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in names:
            raise BadInput(
                f"unknown config field '{prefix}{key}'; allowed here: {', '.join(names)}"
                f"{close_matches(str(key), names)}"
            )
        kwargs[key] = _convert(hints[key], value, f"{prefix}{key}")
    return cls(**kwargs)


def _convert(hint: Any, value: Any, name: str) -> Any:
    origin = typing.get_origin(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, value, name + ".")
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return None if value is None else _convert(args[0], value, name)
    if origin is list:
        if not isinstance(value, list):
            raise BadInput(f"config field '{name}' must be a list, got {value!r}")
        (item,) = typing.get_args(hint)
        return [_convert(item, v, name) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise BadInput(f"config field '{name}' must be a mapping, got {value!r}")
        return {str(k): _convert(str, v, f"{name}.{k}") for k, v in value.items()}
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is str and isinstance(value, str):
        return value
    if hint is bool and isinstance(value, bool):
        return value
    raise BadInput(f"config field '{name}' must be {hint.__name__}, got {value!r}")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
