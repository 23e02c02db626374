"""Structured pruning with torch-pruning: channels really go, shapes stay consistent."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from search.compress import layer_widths, prunable_layers, prune, prune_to_widths, weighted_layers
from search.zoo import DataInfo, build_model

INFO = DataInfo(num_classes=10, in_channels=1, image_size=8, mean=(0.3,), std=(0.45,))
PRUNABLE = ["conv1", "conv2", "conv3", "fc1"]


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = build_model("digits-cnn", INFO)
    model.train()
    with torch.no_grad():
        model(torch.rand(16, 1, 8, 8))  # non-trivial BatchNorm statistics
    return model.eval()


def _example() -> torch.Tensor:
    return torch.rand(1, 1, 8, 8)


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _check_consistent(model: nn.Module) -> None:
    """Every layer's input width matches what feeds it (BN, next conv, flatten -> fc1)."""
    assert model.bn1.num_features == model.conv1.out_channels
    assert model.conv2.in_channels == model.conv1.out_channels
    assert model.bn2.num_features == model.conv2.out_channels
    assert model.conv3.in_channels == model.conv2.out_channels
    assert model.bn3.num_features == model.conv3.out_channels
    assert model.fc1.in_features == model.conv3.out_channels * (INFO.image_size // 4) ** 2
    assert model.fc2.in_features == model.fc1.out_features


def test_prunable_layers_are_all_but_the_classifier() -> None:
    """Guards: the final classifier is never offered for pruning."""
    model = _model()
    assert list(weighted_layers(model)) == [*PRUNABLE, "fc2"]
    assert list(prunable_layers(model)) == PRUNABLE
    assert layer_widths(model) == {"conv1": 32, "conv2": 64, "conv3": 64, "fc1": 128}


def test_prune_half_removes_channels_everywhere() -> None:
    """Guards: ratio 0.5 physically halves each prunable layer and keeps the output (N, 10)."""
    model = _model()
    before = layer_widths(model)
    params_before = _n_params(model)

    prune(model, dict.fromkeys(PRUNABLE, 0.5), _example())

    after = layer_widths(model)
    for name in PRUNABLE:
        assert 0 < after[name] < before[name], name
        assert abs(after[name] - before[name] * 0.5) <= 1, (name, after[name])
    assert _n_params(model) < params_before
    assert model.fc2.out_features == 10
    _check_consistent(model)
    with torch.no_grad():
        out = model(torch.rand(5, 1, 8, 8))
    assert out.shape == (5, 10)
    assert torch.isfinite(out).all()


def test_pruned_conv_keeps_original_filters() -> None:
    """Guards: pruning removes filters, it does not re-initialise the ones that stay."""
    model = _model()
    original = model.conv1.weight.detach().clone().flatten(1)
    prune(model, {"conv1": 0.5}, _example())
    kept = model.conv1.weight.detach().flatten(1)
    assert kept.shape[0] < original.shape[0]
    for row in kept:
        assert (original == row).all(dim=1).any()


@pytest.mark.parametrize("ratio", [0.25, 0.3, 0.75])
def test_prune_one_layer_leaves_the_others(ratio: float) -> None:
    """Guards: a ratio for one layer shrinks only that layer (by about that fraction)."""
    model = _model()
    before = layer_widths(model)
    prune(model, {"fc1": ratio}, _example())
    after = layer_widths(model)
    assert abs(after["fc1"] - round(before["fc1"] * (1 - ratio))) <= 1
    assert {k: v for k, v in after.items() if k != "fc1"} == {
        k: v for k, v in before.items() if k != "fc1"
    }
    _check_consistent(model)


def test_prune_ratio_zero_changes_nothing() -> None:
    """Guards: sparsity 0 leaves architecture and every weight untouched."""
    model = _model()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        expected = model(x)
    prune(model, dict.fromkeys(PRUNABLE, 0.0), _example())
    assert layer_widths(model) == {"conv1": 32, "conv2": 64, "conv3": 64, "fc1": 128}
    assert model.state_dict().keys() == state.keys()
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    with torch.no_grad():
        assert torch.equal(model(x), expected)


def test_prune_to_widths_reproduces_pruned_architecture() -> None:
    """Guards: a fresh model shrunk to recorded widths loads the pruned weights exactly."""
    pruned = _model(seed=1)
    prune(pruned, {"conv1": 0.5, "conv2": 0.25, "conv3": 0.5, "fc1": 0.6}, _example())
    widths = layer_widths(pruned)

    fresh = prune_to_widths(_model(seed=2), widths, _example())

    assert layer_widths(fresh) == widths
    assert {k: v.shape for k, v in fresh.state_dict().items()} == {
        k: v.shape for k, v in pruned.state_dict().items()
    }
    fresh.load_state_dict(pruned.state_dict())  # strict
    fresh.eval()
    x = torch.rand(6, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(fresh(x), pruned(x), atol=1e-6)
    assert fresh.fc2.out_features == 10


def test_prune_to_widths_with_full_widths_is_a_no_op() -> None:
    """Guards: recorded widths equal to the original change nothing."""
    model = _model()
    widths = layer_widths(model)
    n = _n_params(model)
    prune_to_widths(model, widths, _example())
    assert layer_widths(model) == widths
    assert _n_params(model) == n
