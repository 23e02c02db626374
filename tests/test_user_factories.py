"""A user's data and space by import path, and `search spaces` showing a space unrun."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from search.cli import main
from search.config import SpaceConfig
from search.core import BadInput
from search.robust import clean_accuracy
from search.study import StudySetup, config_from_dict, run_trial
from search.zoo import load_splits
from spaces import Param, Plan, decode, expand

USER_MODULE = '''
import torch
from sklearn.datasets import load_digits
from torch.utils.data import TensorDataset

from search.zoo._data import DataInfo, Splits
from spaces import Param, Plan, Space


def digits_600(config, seed):
    """A user's own tensors: 600 digits, split 400 / 100 / 100 by the seed."""
    digits = load_digits()
    images = torch.tensor(digits.images[:600] / 16.0, dtype=torch.float32).unsqueeze(1)
    labels = torch.tensor(digits.target[:600])
    order = torch.randperm(600, generator=torch.Generator().manual_seed(seed))
    part = lambda idx: TensorDataset(images[idx], labels[idx])
    info = DataInfo(num_classes=10, in_channels=1, image_size=8, mean=(0.3,), std=(0.4,))
    return Splits(part(order[:400]), part(order[400:500]), part(order[500:]), info)


def wrong_shape(config, seed):
    splits = digits_600(config, seed)
    return Splits(splits.train, splits.val, splits.test,
                  DataInfo(10, 3, 8, (0.3,) * 3, (0.4,) * 3))


def not_splits(config, seed):
    return [1, 2, 3]


def convs_and_rest(config, prunable, quantizable):
    """One sparsity for the convolutions, one for the rest; 8 bits; epochs from config."""
    convs = [name for name in prunable if name.startswith("conv")]
    rest = [name for name in prunable if name not in convs]
    params = [Param("sparsity.convs", "float", 0.0, config.sparsity[1], 0.25),
              Param("sparsity.rest", "float", 0.0, config.sparsity[1], 0.25),
              Param("epochs", "int", config.epochs[0], config.epochs[1])]

    def decode(values):
        sparsity = {name: values["sparsity.convs"] for name in convs}
        sparsity.update({name: values["sparsity.rest"] for name in rest})
        return Plan(sparsity=sparsity, bits={name: 8 for name in quantizable},
                    epochs=int(values["epochs"]), epsilon=0.05, strategy="adversarial")

    return Space(params, decode)


def names_a_missing_layer(config, prunable, quantizable):
    return Space([Param("epochs", "int", 0, 1)],
                 lambda values: Plan(sparsity={"no.such.layer": 0.5}))


def returns_params_only(config, prunable, quantizable):
    return [Param("epochs", "int", 0, 1)]
'''


@pytest.fixture
def user_module(importable_module) -> str:
    return importable_module("user_factories", USER_MODULE)


def test_data_factory_by_import_path_feeds_a_trial(user_module, tiny_config) -> None:
    """Guards: `data.name: pkg.module:function` data trains the base and scores a trial,
    split by the seed and subset by val_samples like the built-ins."""
    tiny_config["data"] = {"name": f"{user_module}:digits_600", "val_samples": 50}
    tiny_config["space"]["factory"] = f"{user_module}:convs_and_rest"
    config = config_from_dict(tiny_config)
    splits = load_splits(config.data, seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (400, 50, 100)
    again = load_splits(config.data, seed=0)
    assert splits.train.tensors[1].tolist() == again.train.tensors[1].tolist()

    setup = StudySetup.build(config)
    assert [p.name for p in setup.space()] == ["sparsity.convs", "sparsity.rest", "epochs"]
    outcome = run_trial(setup, {"sparsity.convs": 0.5, "sparsity.rest": 0.25, "epochs": 0})
    assert outcome.plan.sparsity == {"conv1": 0.5, "conv2": 0.5, "conv3": 0.5, "fc1": 0.25}
    assert set(outcome.plan.bits.values()) == {8}
    # the base learnt the user's digits; the pruned, unfine-tuned copy keeps some of it
    assert clean_accuracy(setup.base_model, setup.val_loader, setup.device) > 0.5
    assert outcome.metrics["clean_accuracy"] > 0.15  # chance is 0.1


@pytest.mark.parametrize(
    ("factory", "words"),
    [
        ("not_splits", "not a search.data.Splits"),
        ("wrong_shape", "shape (3, 8, 8)"),
        ("no_such_function", "has no 'no_such_function'"),
    ],
)
def test_bad_data_factory_is_bad_input(user_module, tiny_config, factory, words) -> None:
    """Guards: a data factory's mistake is one line naming data.name, not a crash later."""
    tiny_config["data"] = {"name": f"{user_module}:{factory}"}
    with pytest.raises(BadInput, match="data.name") as info:
        load_splits(config_from_dict(tiny_config).data, seed=0)
    assert words in str(info.value)


def test_user_space_expands_and_decodes(user_module) -> None:
    """Guards: the factory gets the space section and layer names; decode gives the plan,
    and a zero epsilon or standard strategy is normalised as in the built-in space."""
    config = SpaceConfig(factory=f"{user_module}:convs_and_rest", sparsity=[0.0, 0.5])
    prunable, quantizable = ["conv1", "fc1"], ["conv1", "fc1", "fc2"]
    params = expand(config, prunable, quantizable)
    assert params[0] == Param("sparsity.convs", "float", 0.0, 0.5, 0.25)
    plan = decode(
        config, {"sparsity.convs": 0.25, "sparsity.rest": 0.5, "epochs": 2}, prunable, quantizable
    )
    assert plan == Plan(
        sparsity={"conv1": 0.25, "fc1": 0.5},
        bits={"conv1": 8, "fc1": 8, "fc2": 8},
        epsilon=0.05,
        epochs=2,
        strategy="adversarial",
    )


@pytest.mark.parametrize(
    ("factory", "words"),
    [
        ("names_a_missing_layer", "'no.such.layer', which is not a prunable layer"),
        ("returns_params_only", "not a spaces.Space"),
    ],
)
def test_bad_user_space_is_bad_input_before_running(user_module, factory, words) -> None:
    """Guards: a space that cannot work fails when expanded, naming space.factory."""
    config = SpaceConfig(factory=f"{user_module}:{factory}")
    with pytest.raises(BadInput, match="space.factory") as info:
        expand(config, ["conv1"], ["conv1", "fc"])
    assert words in str(info.value)


def test_search_spaces_prints_the_expanded_space(
    tiny_config, write_config, capsys, tmp_path: Path, monkeypatch
) -> None:
    """Guards: `search spaces --config FILE` lists every parameter with its range, as
    text and JSON, and writes nothing."""
    monkeypatch.chdir(tmp_path)
    tiny_config["space"].update(sparsity=[0.0, 0.5], bits=[4, 8])
    path = write_config(tiny_config)
    before = sorted(tmp_path.iterdir())
    assert main(["spaces", "--config", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    for layer in ("conv1", "conv2", "conv3", "fc1"):
        assert f"sparsity.{layer}: float in [0.0, 0.5] step 0.05" in lines
    assert "bits.fc2: one of [4, 8]" in lines
    assert "epsilon: float in [0.0, 0.1] step 0.02" in lines
    assert "epochs: int in [0, 1]" in lines
    assert main(["spaces", str(path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} >= {"sparsity.conv1", "bits.conv1", "epsilon", "epochs"}
    assert sorted(tmp_path.iterdir()) == before


def test_search_spaces_shows_a_user_space(user_module, tiny_config, write_config, capsys) -> None:
    """Guards: a space by import path is shown the same way."""
    tiny_config["space"]["factory"] = f"{user_module}:convs_and_rest"
    assert main(["spaces", "--config", str(write_config(tiny_config))]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "sparsity.convs: float in [0.0, 0.75] step 0.25",
        "sparsity.rest: float in [0.0, 0.75] step 0.25",
        "epochs: int in [0, 1]",
    ]


def test_search_spaces_refuses_two_configs(tiny_config, write_config, capsys) -> None:
    """Guards: a positional config and --config together are bad input (exit 2)."""
    path = str(write_config(tiny_config))
    assert main(["spaces", path, "--config", path]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--config" in err[0]
