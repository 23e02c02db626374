"""The layer-wise search space: parameter names, ranges, and decoding into a Plan."""

from __future__ import annotations

import pytest

from search.config import SpaceConfig
from search.core import BadInput
from spaces import Param, Plan, decode, expand

PRUNABLE = ["conv1", "conv2", "conv3", "fc1"]
QUANTIZABLE = [*PRUNABLE, "fc2"]
GROUPS = {"convs": "conv*", "dense": "fc*"}


def _space(**kwargs) -> SpaceConfig:
    config = SpaceConfig(**kwargs)
    config.validate()
    return config


def _names(params: list[Param]) -> list[str]:
    return [p.name for p in params]


def test_layer_granularity_names_every_layer() -> None:
    """Guards: one sparsity per prunable layer, one bits per weighted layer (classifier too)."""
    params = expand(_space(granularity="layer"), PRUNABLE, QUANTIZABLE)
    assert _names(params) == [
        *(f"sparsity.{n}" for n in PRUNABLE),
        *(f"bits.{n}" for n in QUANTIZABLE),
        "epsilon",
        "epochs",
        "strategy",
    ]
    assert "sparsity.fc2" not in _names(params)


def test_global_granularity_has_one_knob_each() -> None:
    """Guards: 'global' gives plain 'sparsity' and 'bits'."""
    params = expand(_space(granularity="global"), PRUNABLE, QUANTIZABLE)
    assert _names(params) == ["sparsity", "bits", "epsilon", "epochs", "strategy"]


def test_group_granularity_uses_group_names() -> None:
    """Guards: 'group' gives one knob per configured group, named after it."""
    params = expand(_space(granularity="group", groups=GROUPS), PRUNABLE, QUANTIZABLE)
    assert _names(params) == [
        "sparsity.convs",
        "sparsity.dense",
        "bits.convs",
        "bits.dense",
        "epsilon",
        "epochs",
        "strategy",
    ]


def test_param_ranges_follow_config() -> None:
    """Guards: ranges, steps and choices are the configured ones."""
    config = _space(
        sparsity=[0.1, 0.6],
        sparsity_step=0.1,
        bits=[8, 4, 2, 4],
        epsilon=[0.0, 0.3],
        epsilon_step=0.05,
        epochs=[1, 4],
    )
    by_name = {p.name: p for p in expand(config, PRUNABLE, QUANTIZABLE)}
    sparsity = by_name["sparsity.conv2"]
    assert (sparsity.kind, sparsity.low, sparsity.high, sparsity.step) == ("float", 0.1, 0.6, 0.1)
    bits = by_name["bits.fc2"]
    assert bits.kind == "categorical"
    assert bits.choices == (2, 4, 8)
    eps = by_name["epsilon"]
    assert (eps.kind, eps.low, eps.high, eps.step) == ("float", 0.0, 0.3, 0.05)
    epochs = by_name["epochs"]
    assert (epochs.kind, epochs.low, epochs.high) == ("int", 1, 4)


def test_fixed_epsilon_has_no_step() -> None:
    """Guards: a degenerate epsilon range [e, e] is not given a step."""
    params = expand(_space(epsilon=[0.1, 0.1]), PRUNABLE, QUANTIZABLE)
    eps = next(p for p in params if p.name == "epsilon")
    assert eps.low == eps.high == 0.1
    assert eps.step is None


def test_layer_decode_maps_each_value_to_its_layer() -> None:
    """Guards: per-layer values land on their own layer, covering every layer."""
    config = _space(granularity="layer")
    params = {f"sparsity.{n}": 0.1 * (i + 1) for i, n in enumerate(PRUNABLE)}
    params.update({f"bits.{n}": b for n, b in zip(QUANTIZABLE, [2, 3, 4, 8, 32], strict=True)})
    params.update(epsilon=0.05, epochs=1)
    plan = decode(config, params, PRUNABLE, QUANTIZABLE)
    assert isinstance(plan, Plan)
    assert plan.sparsity == pytest.approx({"conv1": 0.1, "conv2": 0.2, "conv3": 0.3, "fc1": 0.4})
    assert plan.bits == {"conv1": 2, "conv2": 3, "conv3": 4, "fc1": 8, "fc2": 32}
    assert plan.epsilon == 0.05
    assert plan.epochs == 1
    assert all(isinstance(b, int) for b in plan.bits.values())


def test_group_decode_spreads_group_value_over_members() -> None:
    """Guards: a group's value reaches every layer its pattern matches."""
    config = _space(granularity="group", groups=GROUPS)
    params = {
        "sparsity.convs": 0.3,
        "sparsity.dense": 0.5,
        "bits.convs": 4,
        "bits.dense": 6,
        "epsilon": 0.0,
        "epochs": 0,
    }
    plan = decode(config, params, PRUNABLE, QUANTIZABLE)
    assert plan.sparsity == {"conv1": 0.3, "conv2": 0.3, "conv3": 0.3, "fc1": 0.5}
    assert plan.bits == {"conv1": 4, "conv2": 4, "conv3": 4, "fc1": 6, "fc2": 6}


def test_global_decode_applies_one_value_everywhere() -> None:
    """Guards: global knobs cover all prunable and all quantizable layers."""
    config = _space(granularity="global")
    plan = decode(
        config, {"sparsity": 0.25, "bits": 5, "epsilon": 0.1, "epochs": 2}, PRUNABLE, QUANTIZABLE
    )
    assert plan.sparsity == dict.fromkeys(PRUNABLE, 0.25)
    assert plan.bits == dict.fromkeys(QUANTIZABLE, 5)


def test_single_bits_value_emits_no_bits_params_and_decodes_to_it() -> None:
    """Guards: a fixed bit-width is not searched, yet every layer gets it."""
    for granularity, extra in (("layer", {}), ("global", {}), ("group", {"groups": GROUPS})):
        config = _space(granularity=granularity, bits=[4], **extra)
        params = expand(config, PRUNABLE, QUANTIZABLE)
        assert not any(p.name.startswith("bits") for p in params), granularity
        chosen = {p.name: p.low for p in params}
        plan = decode(config, chosen, PRUNABLE, QUANTIZABLE)
        assert plan.bits == dict.fromkeys(QUANTIZABLE, 4), granularity


def test_zero_sparsity_range_emits_no_sparsity_params() -> None:
    """Guards: sparsity [0, 0] is not searched and decodes to 0 for every layer."""
    config = _space(sparsity=[0.0, 0.0], bits=[8])
    params = expand(config, PRUNABLE, QUANTIZABLE)
    assert _names(params) == ["epsilon", "epochs", "strategy"]
    plan = decode(config, {"epsilon": 0.0, "epochs": 0}, PRUNABLE, QUANTIZABLE)
    assert plan.sparsity == dict.fromkeys(PRUNABLE, 0.0)
    assert plan.bits == dict.fromkeys(QUANTIZABLE, 8)


def test_group_with_no_matching_layer_is_bad_input() -> None:
    """Guards: a dead group pattern is reported with the group name and the layers."""
    config = _space(granularity="group", groups={"convs": "conv*", "attn": "attn*"})
    with pytest.raises(BadInput) as info:
        expand(config, PRUNABLE, QUANTIZABLE)
    message = str(info.value)
    assert "space.groups.attn" in message
    assert "conv1" in message


def test_describe_is_readable() -> None:
    """Guards: Param.describe shows range/step or choices."""
    assert Param("bits.fc2", "categorical", choices=(4, 8)).describe() == "bits.fc2: one of [4, 8]"
    assert (
        Param("epsilon", "float", 0.0, 0.2, 0.02).describe()
        == "epsilon: float in [0.0, 0.2] step 0.02"
    )


def test_group_of_only_the_classifier_is_a_bits_group() -> None:
    """Guards: a group matching only the classifier (never pruned) still sets its bits."""
    config = _space(granularity="group", groups={"convs": "conv*", "hidden": "fc1", "head": "fc2"})
    names = _names(expand(config, PRUNABLE, QUANTIZABLE))
    assert "bits.head" in names
    assert "sparsity.head" not in names
    assert {"sparsity.convs", "sparsity.hidden", "bits.convs", "bits.hidden"} <= set(names)
    params = {
        "sparsity.convs": 0.2,
        "sparsity.hidden": 0.4,
        "bits.convs": 4,
        "bits.hidden": 2,
        "bits.head": 8,
        "epsilon": 0.0,
        "epochs": 0,
    }
    plan = decode(config, params, PRUNABLE, QUANTIZABLE)
    assert plan.bits == {"conv1": 4, "conv2": 4, "conv3": 4, "fc1": 2, "fc2": 8}
    assert plan.sparsity == {"conv1": 0.2, "conv2": 0.2, "conv3": 0.2, "fc1": 0.4}


def test_layers_outside_every_group_are_not_silently_left_float() -> None:
    """Guards: with bits limited to [4, 8], no layer may end up unquantized (32 bits).

    Either expand refuses groups that leave layers out, or decode gives those layers a
    value from the configured set.
    """
    config = _space(granularity="group", groups={"convs": "conv*"}, bits=[4, 8])
    try:
        params = expand(config, PRUNABLE, QUANTIZABLE)
    except BadInput:
        return
    chosen = {p.name: (p.choices[0] if p.kind == "categorical" else p.low) for p in params}
    plan = decode(config, chosen, PRUNABLE, QUANTIZABLE)
    assert set(plan.bits) == set(QUANTIZABLE)
    assert set(plan.bits.values()) <= {4, 8}
    assert set(plan.sparsity) == set(PRUNABLE)
