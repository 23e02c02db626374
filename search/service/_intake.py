"""A submitted config is data: parse it, refuse what would run code or touch server
files, then validate it exactly as `search run` does.

Validation imports whatever an import path names (objectives, model, data, space
factories), so import paths are refused *before* validation unless the operator
started the service with `--allow-plugins`. The same switch guards fields that name
files or folders on the server (checkpoint, data root, artifacts) or download data:
the service decides where a study's files go, so one study's files cannot land on
another's. A submission is also held to the service's sizes: a study name every
route can reach (ASCII, as the routes' paths allow), and no count of trials, epochs or
attack steps far past any real study's (one request must not occupy the machine for
months). Every refusal is one line naming the field, like the CLI's errors.
"""

from __future__ import annotations

import json
import re
from typing import Any

from search.config import StudyConfig, load_yaml_text
from search.core import BadInput
from search.service._settings import DEFAULT_MAX_TRIALS
from search.study import config_from_dict

JSON_TYPES = ("application/json",)
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
TRUST_HINT = "start the service with --allow-plugins to trust submitted configs"
# fields naming a file or folder on the server, or making it download
SERVER_FIELDS = (("artifacts",), ("model", "checkpoint"), ("data", "root"), ("ray", "storage_path"))
NAME_CHARS = "A-Za-z0-9_-"  # ASCII only: str.isalnum would take names no route can reach
MAX_NAME = 100
STUDY_NAME = re.compile(f"[{NAME_CHARS}]{{1,{MAX_NAME}}}")
# the largest value a submitted config may give each size: far past any real study,
# so only a request meant to occupy the machine (or a typo of zeros) is refused
SIZE_CAPS: tuple[tuple[str, int], ...] = (
    ("model.base_epochs", 1000),
    ("model.base_samples_per_epoch", 10_000_000),
    ("data.batch_size", 65_536),
    ("data.val_samples", 10_000_000),
    ("data.test_samples", 10_000_000),
    ("space.epochs", 1000),
    ("finetune.steps", 1000),
    ("finetune.samples_per_epoch", 10_000_000),
    ("evaluation.steps", 10_000),
    ("evaluation.restarts", 100),
    ("evaluation.final_steps", 10_000),
    ("evaluation.final_restarts", 100),
    ("sanity.steps_factor", 100),
    ("latency.batch_size", 65_536),
    ("latency.threads", 1024),
    ("latency.warmup", 100_000),
    ("latency.repeats", 100_000),
    ("latency.calibration_samples", 1_000_000),
    ("fidelity.min_images", 100_000_000),
    ("fidelity.max_images", 100_000_000),
    ("ray.max_failures", 100),
)


def parse_body(body: bytes, content_type: str) -> dict[str, Any]:
    """The config mapping of a request body: JSON, or YAML like a `search run` file."""
    kind = content_type.split(";")[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput("CONFIG: the request body is not UTF-8 text") from None
    if kind in YAML_TYPES:
        raw = load_yaml_text(text)  # `search run`'s reader: no aliases, bounded depth
    elif kind in JSON_TYPES:
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
    if _get(raw, ("latency", "device")) is not None:  # the server would send its token there
        raise BadInput(
            "config field 'latency.device': a submitted config may not make the server "
            f"contact a device agent; {TRUST_HINT}"
        )
    if _get(raw, ("data", "download")) is True:
        raise BadInput(
            f"config field 'data.download': a submitted config may not make the "
            f"server download data; {TRUST_HINT}"
        )


def submitted_config(
    raw: dict[str, Any],
    allow_plugins: bool,
    storage: str,
    max_trials: int = DEFAULT_MAX_TRIALS,
) -> StudyConfig:
    """The validated config of a submission, with the same messages as `search run`."""
    check_trusted(raw, allow_plugins, storage)
    config = config_from_dict({**raw, "storage": None})
    check_name(config.study)
    check_sizes(config, max_trials)
    return config


def check_name(name: str) -> None:
    """The one rule for names the service takes: what every route's path accepts."""
    if not STUDY_NAME.fullmatch(name):
        raise BadInput(
            f"config field 'study' must be 1 to {MAX_NAME} ASCII letters, digits, '-' or "
            f"'_' (the service's paths take no others), got {name[:MAX_NAME]!r}"
        )


def check_sizes(config: StudyConfig, max_trials: int) -> None:
    """Refuse a size past the service's cap, naming the field (HTTP 422)."""
    caps = (("trials", max_trials), ("warm_start", max_trials), *SIZE_CAPS)
    for name, cap in caps:
        value = _field(config, name)
        if value is not None and value > cap:
            hint = " (--max-trials)" if name in ("trials", "warm_start") else ""
            raise BadInput(
                f"config field '{name}' must be <= {cap} on this service{hint}, got {value}"
            )


def _field(config: StudyConfig, name: str) -> Any:
    """A config field by dotted name; a range gives its upper end, a missing field None."""
    node: Any = config
    for part in name.split("."):
        node = getattr(node, part, None)
    return max(node) if isinstance(node, list) and node else node


def _get(raw: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = raw
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node
