"""A submitted config is data: parse it, refuse what would run code or touch server
files, then validate it exactly as `search run` does.

Validation imports whatever an import path names (objectives, model, data, space
factories), so import paths are refused *before* validation unless the operator
started the service with `--allow-plugins`. The same switch guards fields that name
files or folders on the server (checkpoint, data root, artifacts) or download data:
the service decides where a study's files go, so one study's files cannot land on
another's. Every refusal is one line naming the field, like the CLI's errors.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from search.config import StudyConfig
from search.core import BadInput
from search.study import config_from_dict

JSON_TYPES = ("application/json",)
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
TRUST_HINT = "start the service with --allow-plugins to trust submitted configs"
# fields naming a file or folder on the server, or making it download
SERVER_FIELDS = (("artifacts",), ("model", "checkpoint"), ("data", "root"), ("ray", "storage_path"))


def parse_body(body: bytes, content_type: str) -> dict[str, Any]:
    """The config mapping of a request body: JSON, or YAML like a `search run` file."""
    kind = content_type.split(";")[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput("CONFIG: the request body is not UTF-8 text") from None
    if kind in YAML_TYPES:
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise BadInput(f"CONFIG is not valid YAML: {' '.join(str(exc).split())}") from None
    elif kind in JSON_TYPES or not kind:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadInput(f"CONFIG is not valid JSON: {exc}") from None
    else:
        raise BadInput(
            f"Content-Type {kind!r} is not a config; allowed: {', '.join(JSON_TYPES + YAML_TYPES)}"
        )
    if not isinstance(raw, dict):
        raise BadInput(f"CONFIG must be a mapping of fields, got {type(raw).__name__}")
    return raw


def import_paths(raw: dict[str, Any]) -> list[tuple[str, str]]:
    """Every (field, value) of a raw config that names code to import."""
    found = []
    objectives = raw.get("objectives")
    if isinstance(objectives, list):
        found += [("objectives", o) for o in objectives if isinstance(o, str) and ":" in o]
    for section, key in (("model", "name"), ("data", "name"), ("space", "factory")):
        value = _get(raw, (section, key))
        if isinstance(value, str) and (":" in value or key == "factory"):
            found.append((f"{section}.{key}", value))
    return found


def check_trusted(raw: dict[str, Any], allow_plugins: bool, storage: str) -> None:
    """Refuse plug-ins, server paths and foreign storages in a submitted config."""
    given_storage = raw.get("storage")
    if given_storage is not None and given_storage != storage:
        raise BadInput(
            "config field 'storage': a submitted study runs on the service's "
            f"storage; leave the field out (got {given_storage!r})"
        )
    if allow_plugins:
        return
    for field, value in import_paths(raw):
        raise BadInput(
            f"config field '{field}': {value!r} is an import path, and this "
            f"service imports no code named by a request; {TRUST_HINT}"
        )
    for path in SERVER_FIELDS:
        value = _get(raw, path)
        if value is not None:
            raise BadInput(
                f"config field '{'.'.join(path)}' names a path on the server "
                f"({value!r}); a submitted config may not; {TRUST_HINT}"
            )
    if _get(raw, ("data", "download")) is True:
        raise BadInput(
            f"config field 'data.download': a submitted config may not make the "
            f"server download data; {TRUST_HINT}"
        )


def submitted_config(raw: dict[str, Any], allow_plugins: bool, storage: str) -> StudyConfig:
    """The validated config of a submission, with the same messages as `search run`."""
    check_trusted(raw, allow_plugins, storage)
    config = config_from_dict({**raw, "storage": None})
    if len(config.study) > 100:
        raise BadInput(
            f"config field 'study' must be at most 100 characters, got {len(config.study)}"
        )
    return config


def _get(raw: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = raw
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node
