"""Models by import path: a user's factory runs through the whole trial pipeline."""

from __future__ import annotations

import pytest
import torch

from search.compress import layer_widths, size_bytes
from search.core import BadInput
from search.study import StudySetup, config_from_dict, run_trial
from search.zoo import build_model

FACTORY = '''
from torch import nn

def build(info):
    """A user's model: its own layer names, no normalisation layer."""
    return nn.Sequential(
        nn.Conv2d(info.in_channels, 12, 3, padding=1), nn.ReLU(),
        nn.Flatten(),
        nn.Linear(12 * info.image_size ** 2, 24), nn.ReLU(),
        nn.Linear(24, info.num_classes),
    )

def not_a_model(info):
    return "nope"
'''


@pytest.fixture
def user_models(importable_module) -> str:
    return importable_module("user_models", FACTORY)


def test_import_path_factory_is_pruned_quantized_and_scored(user_models, tiny_config) -> None:
    """Guards: `pkg.module:factory` models go through prune -> quantize -> fine-tune -> score."""
    tiny_config["model"]["name"] = f"{user_models}:build"
    setup = StudySetup.build(config_from_dict(tiny_config))
    assert setup.prunable == ["0", "3"]
    params = {p.name: (p.high if p.kind != "categorical" else p.choices[0]) for p in setup.space()}
    params.update(epochs=1, epsilon=0.05, strategy="adversarial")
    outcome = run_trial(setup, params)
    widths = layer_widths(outcome.model)
    assert widths["0"] < 12 and widths["3"] < 24
    assert outcome.model(torch.rand(2, *setup.input_shape)).shape == (2, 10)
    assert outcome.metrics["size_bytes"] == size_bytes(outcome.model)
    assert 0 <= outcome.metrics["robust_accuracy"] <= outcome.metrics["clean_accuracy"] <= 1


def test_factory_returning_something_else_is_bad_input(user_models, tiny_config) -> None:
    """Guards: a factory that returns no nn.Module is named in one clear error."""
    setup_info = StudySetup.build(config_from_dict(tiny_config)).splits.info
    with pytest.raises(BadInput, match="not_a_model.*not a torch.nn.Module"):
        build_model(f"{user_models}:not_a_model", setup_info)


def test_missing_module_names_the_field(tiny_config) -> None:
    """Guards: an import path that does not import is reported against model.name."""
    tiny_config["model"]["name"] = "no_such_module_xyz:build"
    with pytest.raises(BadInput, match="model.name.*no_such_module_xyz"):
        config_from_dict(tiny_config)
