"""Config validation: bad input fails fast with BadInput naming the field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from search.config import PRESETS_DIR, StudyConfig
from search.core import BadInput
from search.study import config_from_dict, load_config
from spaces import expand

PRUNABLE = ["conv1", "conv2", "conv3", "fc1"]
QUANTIZABLE = [*PRUNABLE, "fc2"]


def _with(base: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    raw = copy.deepcopy(base)
    node = raw
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return raw


# (dotted field, bad value, substrings the one-line message must contain)
BAD_FIELDS = [
    ("space.sparsity", [0.0, 1.0], ["space.sparsity"]),
    ("space.sparsity", [0.0, 1.5], ["space.sparsity"]),
    ("space.sparsity", [-0.1, 0.5], ["space.sparsity"]),
    ("space.bits", [4, 9], ["space.bits", "9"]),
    ("space.bits", [], ["space.bits"]),
    ("space.epsilon", [-0.1, 0.1], ["space.epsilon"]),
    ("evaluation.epsilon", -0.1, ["evaluation.epsilon"]),
    ("evaluation.epsilon", 0.0, ["evaluation.epsilon"]),
    ("space.epochs", [-1, 2], ["space.epochs"]),
    ("model.base_epochs", -1, ["model.base_epochs"]),
    ("trials", "ten", ["trials", "ten"]),
    ("trials", 0, ["trials"]),
    ("trials", True, ["trials"]),
    ("seed", 1.5, ["seed"]),
    ("space.epsilon", 0.1, ["space.epsilon", "list"]),
    ("data.name", "digitz", ["data.name", "digitz", "did you mean 'digits'"]),
    ("model.name", "digits-cn", ["model.name", "digits-cn", "did you mean 'digits-cnn'"]),
    ("model.name", "no_such_pkg_xyz.mod:factory", ["model.name", "no_such_pkg_xyz.mod"]),
    ("model.checkpoint", "/nonexistent/base.pt", ["model.checkpoint", "/nonexistent/base.pt"]),
    ("space.granularity", "layers", ["space.granularity", "layers", "did you mean 'layer'"]),
    ("sampler", "tpf", ["sampler", "tpf"]),
    ("device", "gpu", ["device", "gpu"]),
    ("study", "bad name!", ["study"]),
    ("objectives", ["latancy_ms"], ["objectives", "latancy_ms", "did you mean 'latency_ms'"]),
    ("objectives", ["size_bytes", "size_bytes"], ["objectives"]),
    ("objectives", [], ["objectives"]),
    ("data.val_fraction", 0.6, ["data.val_fraction"]),
    ("finetune.attack", "cw", ["finetune.attack"]),
    ("latency.repeats", 0, ["latency.repeats"]),
]


@pytest.mark.parametrize(
    ("field", "value", "expected"), BAD_FIELDS, ids=[f"{f}={v!r}" for f, v, _ in BAD_FIELDS]
)
def test_config_from_dict_rejects_bad_field(tiny_config, field, value, expected) -> None:
    """Guards: each invalid field raises BadInput whose one-line message names it."""
    with pytest.raises(BadInput) as info:
        config_from_dict(_with(tiny_config, field, value))
    message = str(info.value)
    assert "\n" not in message
    for part in expected:
        assert part in message, (part, message)


@pytest.mark.parametrize(
    ("field", "value", "expected"), BAD_FIELDS[:6], ids=[f"{f}={v!r}" for f, v, _ in BAD_FIELDS[:6]]
)
def test_load_config_rejects_bad_field_from_yaml(
    tiny_config, write_config, field, value, expected
) -> None:
    """Guards: the YAML path goes through the same validation."""
    path = write_config(_with(tiny_config, field, value))
    with pytest.raises(BadInput) as info:
        load_config(path)
    for part in expected:
        assert part in str(info.value)


@pytest.mark.parametrize(
    ("key", "typo", "hint"),
    [
        ("", "samplr", "sampler"),
        ("", "trails", "trials"),
        ("space.", "bitz", "bits"),
        ("evaluation.", "stepz", "steps"),
    ],
)
def test_unknown_key_names_key_and_suggests_close_match(tiny_config, key, typo, hint) -> None:
    """Guards: a misspelt key is rejected, naming it and suggesting the right one."""
    raw = copy.deepcopy(tiny_config)
    node = raw
    if key:
        node = raw.setdefault(key.rstrip("."), {})
    node[typo] = node.get(hint, 1)
    with pytest.raises(BadInput) as info:
        config_from_dict(raw)
    message = str(info.value)
    assert f"'{key}{typo}'" in message
    assert f"did you mean '{hint}'" in message


def test_section_that_is_not_a_mapping_is_rejected(tiny_config) -> None:
    """Guards: `model: digits-cnn` (a string, not a section) fails naming 'model'."""
    tiny_config["model"] = "digits-cnn"
    with pytest.raises(BadInput, match="'model'"):
        config_from_dict(tiny_config)


def test_valid_tiny_config_validates(tiny_config) -> None:
    """Guards: the tiny dict converts into a typed, validated StudyConfig."""
    config = config_from_dict(tiny_config)
    assert isinstance(config, StudyConfig)
    assert config.trials == 3
    assert config.model.base_epochs == 4
    assert config.space.epochs == [0, 1]
    assert config.evaluation.epsilon == 0.1
    assert isinstance(config.evaluation.epsilon, float)
    assert config.latency.repeats == 3
    # Unset fields keep their defaults.
    assert config.sampler == "tpe"
    assert config.data.name == "digits"
    assert config.validate() is config


def test_int_is_accepted_for_float_fields(tiny_config) -> None:
    """Guards: YAML `lr: 1` (an int) is a valid float and converted."""
    config = config_from_dict(_with(tiny_config, "finetune.lr", 1))
    assert config.finetune.lr == 1.0
    assert isinstance(config.finetune.lr, float)


def test_existing_checkpoint_is_accepted(tiny_config, tmp_path) -> None:
    """Guards: the checkpoint check only rejects files that are missing."""
    checkpoint = tmp_path / "base.pt"
    checkpoint.write_bytes(b"placeholder")
    config = config_from_dict(_with(tiny_config, "model.checkpoint", str(checkpoint)))
    assert config.model.checkpoint == str(checkpoint)


def test_to_dict_round_trips(tiny_config) -> None:
    """Guards: a stored config (to_dict) loads back to an equal config."""
    config = config_from_dict(tiny_config)
    assert config_from_dict(config.to_dict()) == config


def test_load_config_applies_dotted_overrides_and_skips_none(tiny_config, write_config) -> None:
    """Guards: CLI overrides set nested fields, create sections, and None means 'not given'."""
    path = write_config(tiny_config)
    config = load_config(
        path,
        overrides={
            "trials": 7,
            "evaluation.epsilon": 0.2,
            "data.batch_size": 32,  # section absent from the file
            "model.checkpoint": None,
            "seed": None,
        },
    )
    assert config.trials == 7
    assert config.evaluation.epsilon == 0.2
    assert config.evaluation.steps == 3  # sibling from the file kept
    assert config.data.batch_size == 32
    assert config.model.checkpoint is None
    assert config.model.base_epochs == 4
    assert config.seed == 0


def test_load_config_override_is_validated(tiny_config, write_config) -> None:
    """Guards: an override cannot sneak in an invalid value."""
    path = write_config(tiny_config)
    with pytest.raises(BadInput, match="trials"):
        load_config(path, overrides={"trials": 0})
    with pytest.raises(BadInput, match="did you mean 'trials'"):
        load_config(path, overrides={"trails": 5})


def test_load_config_without_file_gives_defaults() -> None:
    """Guards: no file and no preset -> the embedded default, the digits preset: the
    validated defaults but for the test subset it sizes for a 2-core machine."""
    config = load_config()
    assert config == load_config(preset="digits")
    assert config.data.test_samples == 200 and StudyConfig().data.test_samples is None
    config.data.test_samples = None
    assert config == StudyConfig()


def test_load_config_file_errors(tmp_path: Path) -> None:
    """Guards: missing file, invalid YAML and non-mapping YAML are BadInput naming the file."""
    missing = tmp_path / "nope.yaml"
    with pytest.raises(BadInput, match="nope.yaml"):
        load_config(missing)
    broken = tmp_path / "broken.yaml"
    broken.write_text("trials: [1, 2\n")
    with pytest.raises(BadInput, match="broken.yaml"):
        load_config(broken)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(BadInput, match="mapping"):
        load_config(listy)


def test_load_config_rejects_file_and_preset_together(tiny_config, write_config) -> None:
    """Guards: CONFIG and --preset are mutually exclusive."""
    with pytest.raises(BadInput, match="preset"):
        load_config(write_config(tiny_config), preset="digits")


def test_unknown_preset_is_rejected() -> None:
    """Guards: an unknown preset name is BadInput naming it."""
    with pytest.raises(BadInput, match="no-such-preset"):
        load_config(preset="no-such-preset")


def test_digits_preset_loads() -> None:
    """Guards: the shipped digits preset is a valid config."""
    if not (PRESETS_DIR / "digits.yaml").is_file():
        pytest.skip("no search/presets/digits.yaml yet")
    config = load_config(preset="digits")
    assert config.data.name == "digits"


def test_group_pattern_matching_no_layer_fails_at_expand(tiny_config) -> None:
    """Guards: a group pattern that matches no layer is BadInput naming the group."""
    raw = _with(tiny_config, "space.granularity", "group")
    raw["space"]["groups"] = {"convs": "conv*", "ghost": "bn*"}
    config = config_from_dict(raw)  # layer names are unknown until the model exists
    with pytest.raises(BadInput) as info:
        expand(config.space, PRUNABLE, QUANTIZABLE)
    assert "space.groups.ghost" in str(info.value)
    assert "bn*" in str(info.value)


def test_group_granularity_needs_groups(tiny_config) -> None:
    """Guards: granularity 'group' with no groups is rejected up front."""
    with pytest.raises(BadInput, match="space.groups"):
        config_from_dict(_with(tiny_config, "space.granularity", "group"))
