"""The built-in extras: flops, params and robust_accuracy_l2, each selectable in a study."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from objectives import get_objective
from objectives.builtin import l2_threat
from objectives.counting import count_flops, count_nonzero_params
from search.compress import quantize_weights
from search.core import BadInput
from search.robust import clean_accuracy, robust_accuracy
from search.study import compress, config_from_dict, run_trial
from spaces import Plan


def test_flops_are_counted_exactly_on_a_known_model() -> None:
    """Guards: 2 operations per multiply-accumulate of every conv and linear layer."""
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 10)
    )
    conv_macs = 4 * 1 * 3 * 3 * 8 * 8
    linear_macs = 4 * 8 * 8 * 10
    assert count_flops(model, (1, 8, 8)) == 2 * (conv_macs + linear_macs)


def test_params_count_nonzero_weights_on_their_quantized_grid() -> None:
    """Guards: zero weights, and weights that 2-bit quantization rounds to zero, don't count."""
    layer = nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.01], [0.6, -1.0, 0.0, 0.2]]))
    assert count_nonzero_params(layer) == 5
    quantize_weights(layer, {"": 2})  # grid {-2..1} x max|w| per row: 0.01, 0.2 -> 0
    assert count_nonzero_params(layer) == 3
    assert torch.equal(layer.parametrizations.weight.original[0, 3], torch.tensor(0.01))


def test_flops_and_params_drop_when_channels_are_pruned(tiny_setup) -> None:
    """Guards: physically removed channels show in both counts; the base is untouched."""
    shape = tiny_setup.input_shape
    counts = {}
    for sparsity in (0.0, 0.5):
        plan = Plan(sparsity={name: sparsity for name in tiny_setup.prunable})
        model = compress(tiny_setup.base_model, plan, shape, tiny_setup.device)
        counts[sparsity] = (count_flops(model, shape), count_nonzero_params(model))
    assert counts[0.5][0] < 0.5 * counts[0.0][0]
    assert counts[0.5][1] < 0.5 * counts[0.0][1]
    assert counts[0.0][1] == sum(
        int(torch.count_nonzero(p)) for p in tiny_setup.base_model.parameters()
    )


def test_l2_robust_accuracy_is_at_most_clean_and_falls_with_budget(
    tiny_setup, val_batch_loader
) -> None:
    """Guards: the second threat model is a real attack: robust <= clean, and a large L2
    budget takes most of the accuracy away."""
    model, threat = tiny_setup.base_model, tiny_setup.config.evaluation
    clean = clean_accuracy(model, val_batch_loader, tiny_setup.device)
    robust = {}
    for budget in (0.5, 4.0):
        l2 = l2_threat(dataclasses.replace(threat, l2_epsilon=budget))
        assert (l2.norm, l2.epsilon, l2.steps) == ("l2", budget, threat.steps)
        robust[budget] = robust_accuracy(model, val_batch_loader, l2, tiny_setup.device)
    assert robust[4.0] <= robust[0.5] <= clean
    assert robust[4.0] < 0.5 * clean


def test_extras_are_selectable_and_scored_in_a_trial(tiny_setup, tiny_config) -> None:
    """Guards: a study may optimise the extras; a trial reports them beside the built-ins."""
    tiny_config["objectives"] = ["robust_accuracy_l2", "flops", "params"]
    config = config_from_dict(tiny_config)
    assert [get_objective(n).direction for n in config.objectives] == [
        "maximize",
        "minimize",
        "minimize",
    ]
    setup = dataclasses.replace(tiny_setup, config=config)
    params = {"epsilon": 0.0, "epochs": 0, **{f"sparsity.{name}": 0.25 for name in setup.prunable}}
    metrics = run_trial(setup, params).metrics
    assert 0 <= metrics["robust_accuracy_l2"] <= metrics["clean_accuracy"]
    assert metrics["flops"] > 0 and metrics["params"] > 0
    assert metrics["flops"] == float(int(metrics["flops"]))


@pytest.mark.parametrize("value", [0, -1.0, 101.0])
def test_bad_l2_epsilon_is_bad_input(tiny_config, value) -> None:
    """Guards: the L2 budget is checked like every other field."""
    tiny_config["evaluation"]["l2_epsilon"] = value
    with pytest.raises(BadInput, match="evaluation.l2_epsilon"):
        config_from_dict(tiny_config)
