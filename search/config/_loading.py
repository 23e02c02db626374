"""Reading a config: YAML files and presets into a checked `StudyConfig`.

This checks the schema only (known keys, types, ranges). Whether names resolve (a model
in the zoo, an objective in the registry, an importable factory) is the resolve step's
job, `search.study.resolve`, which every entry point runs next.

A config is data from a user (or, through the service, from a request), so reading it
is bounded: at most MAX_CONFIG_BYTES of UTF-8 text, at most MAX_DEPTH levels of nesting,
no YAML anchors or aliases (a few lines of aliases expand to gigabytes: the "billion
laughs") and no key twice in one mapping (YAML would keep the last one silently). Each
refusal is one line naming the file; bad values are quoted as short excerpts only.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Hashable
from pathlib import Path
from typing import Any, Union

import yaml

from search.config._schema import PRESETS_DIR, StudyConfig
from search.core import BadInput, close_matches

MAX_CONFIG_BYTES = 1 << 20  # 1 MiB: a real config is a few KiB
MAX_DEPTH = 32  # levels of nested mappings / lists; the schema needs four
EXCERPT_CHARS = 80  # the most of a bad value an error message quotes
MERGE_TAG = "tag:yaml.org,2002:merge"


DEFAULT_PRESET = "digits"  # what `search run` runs with no CONFIG and no --preset


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
    if path is None and preset is None:
        preset = DEFAULT_PRESET  # the embedded default is a preset like the others
    if preset is not None:
        available = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))
        if preset not in available:
            raise BadInput(
                f"--preset: unknown preset {_excerpt(preset)}; allowed: {', '.join(available)}"
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
    name = f"CONFIG {str(path)!r}"
    if not path.is_file():
        raise BadInput(f"CONFIG: no such file {str(path)!r}")
    raw = load_yaml_text(_read_text(path, name), name)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise BadInput(f"{name} must be a mapping of fields, got {type(raw).__name__}")
    return raw


def _read_text(path: Path, name: str) -> str:
    """The file as text, refusing one too large to be a config or not UTF-8.

    Reads at most one byte past the cap, so a huge (or growing) file is never loaded.
    """
    with path.open("rb") as handle:
        data = handle.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise BadInput(
            f"{name} is larger than 1 MiB ({MAX_CONFIG_BYTES} bytes), the most a config may be"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{name} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None


class _Refused(Exception):
    """A YAML construct a config may not use; its message completes "CONFIG ...: "."""


class _ConfigLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader without aliases, duplicate keys or unbounded nesting.

    Aliases are refused where the composer meets them (and anchors with them, since an
    anchor is only ever written for an alias), before any node is expanded; the depth is
    counted on the composer's own recursion, so a deep document is one line instead of
    a RecursionError.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused(f"YAML anchors (&) and aliases are not allowed{_line(event)}")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(f"nesting is deeper than {MAX_DEPTH} levels{_line(event)}")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:  # `<<:` merges; SafeLoader flattens it next
                continue
            key = self.construct_object(key_node, deep=False)
            if isinstance(key, Hashable) and key in seen:
                raise _Refused(f"key {_excerpt(key)} appears twice in one mapping{_line(key_node)}")
            if isinstance(key, Hashable):
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _line(mark_holder: Any) -> str:
    """Where the parser saw the event or node, as `" (line N)"`, or nothing."""
    mark = getattr(mark_holder, "start_mark", None)
    return f" (line {mark.line + 1})" if mark is not None else ""


def load_yaml_text(text: str, name: str = "CONFIG") -> Any:
    """Parse config YAML with `_ConfigLoader`; every failure is BadInput naming `name`.

    The one YAML reader of configs: `search run CONFIG` and the service's YAML bodies.
    """
    loader = _ConfigLoader(text)
    try:
        return loader.get_single_data()
    except _Refused as exc:
        raise BadInput(f"{name}: {exc}") from None
    except yaml.YAMLError as exc:
        raise BadInput(f"{name} is not valid YAML: {_clip(_one_line(exc), 200)}") from None
    finally:
        loader.dispose()


def _build(cls: type, raw: Any, prefix: str) -> Any:
    """Turn a mapping into dataclass `cls`, rejecting unknown keys and wrong types."""
    where = prefix.rstrip(".") or "config"
    if not isinstance(raw, dict):
        raise BadInput(f"config field '{where}' must be a mapping, got {_excerpt(raw)}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in names:
            raise BadInput(
                f"unknown config field '{prefix}{_clip(str(key), EXCERPT_CHARS)}'; "
                f"allowed here: {', '.join(names)}"
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
            raise BadInput(f"config field '{name}' must be a list, got {_excerpt(value)}")
        (item,) = typing.get_args(hint)
        return [_convert(item, v, name) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise BadInput(f"config field '{name}' must be a mapping, got {_excerpt(value)}")
        return {str(k): _convert(str, v, f"{name}.{k}") for k, v in value.items()}
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is str and isinstance(value, str):
        return value
    if hint is bool and isinstance(value, bool):
        return value
    raise BadInput(f"config field '{name}' must be {hint.__name__}, got {_excerpt(value)}")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _excerpt(value: Any) -> str:
    """`repr(value)` cut to EXCERPT_CHARS, so a message never echoes a whole huge value."""
    return _clip(repr(value), EXCERPT_CHARS)


def _clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, the cut marked with "..."."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
