"""The int8 ONNX that ships: the trial's own codes, int8 kernels in onnxruntime, parity.

Models are the tiny study's base model pruned and fake-quantized as a trial does it
(`search.study.compress`), without fine-tuning; the study-level checks (a study timed by
onnxruntime, its export and parity) are in tests/test_onnx_study.py.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

from search.compress import (
    ORT_FLOAT_FORM,
    ORT_INT8_FORM,
    OrtModule,
    calibration_batches,
    channel_scale,
    fold_batchnorm,
    int8_onnx,
    layer_bits,
    measure_latency,
    ort_session,
    quant_range,
    shipped_onnx,
    weighted_layers,
)
from search.front import agreement
from search.robust import clean_accuracy
from search.study import StudySetup, compress
from search.zoo import make_loader
from spaces import Plan

MIXED = (4, 8, 3, 8, 4)  # per weighted layer of digits-cnn: conv1..conv3, fc1, fc2


def _model(setup: StudySetup, bits: tuple[int, ...]) -> nn.Module:
    plan = Plan(
        sparsity={name: 0.25 for name in setup.prunable},
        bits=dict(zip(setup.quantizable, bits, strict=True)),
        epochs=0,
    )
    return compress(setup.base_model, plan, setup.input_shape, setup.device).eval()


def _calibration(setup: StudySetup) -> list[torch.Tensor]:
    return calibration_batches(make_loader(setup.splits.train, 256), 256)


@pytest.fixture(scope="module")
def mixed(tiny_setup: StudySetup) -> tuple[nn.Module, onnx.ModelProto]:
    model = _model(tiny_setup, MIXED)
    return model, int8_onnx(model, tiny_setup.input_shape, _calibration(tiny_setup))


def _initializers(graph: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in graph.graph.initializer}


def test_int8_initializers_are_the_trials_codes_and_scales(mixed) -> None:
    model, graph = mixed
    stored = _initializers(graph)
    _, factors = fold_batchnorm(model)
    bits = layer_bits(model)
    assert sorted(bits.values()) == sorted(MIXED)
    for name, layer in weighted_layers(model).items():
        codes, scale = stored[f"{name}.weight_quantized"], stored[f"{name}.weight_scale"]
        assert codes.dtype == np.int8 and codes.shape == tuple(layer.weight.shape)
        original = layer.parametrizations["weight"].original
        trial_scale = channel_scale(original, bits[name]).numpy()
        fake_quant = layer.weight.detach().numpy()  # what the trial scored
        view = (-1,) + (1,) * (codes.ndim - 1)
        expected = np.round(fake_quant / trial_scale.reshape(view)).astype(np.int8)
        if name in factors:  # BatchNorm folded: codes kept (sign), scale times |factor|
            sign = np.where(factors[name] < 0, -1, 1).astype(np.int8)
            np.testing.assert_array_equal(codes * sign.reshape(view), expected)
            np.testing.assert_allclose(scale, trial_scale * np.abs(factors[name]), rtol=1e-6)
        else:  # a linear layer: the trial's own scale, bit for bit
            np.testing.assert_array_equal(codes, expected)
            np.testing.assert_array_equal(scale, trial_scale)
        low, high = quant_range(bits[name])
        assert low <= codes.min() and codes.max() <= high, name
        assert len(np.unique(codes)) <= 2 ** bits[name], name
    assert not any(name.endswith((".weight", ".bias")) for name in stored)  # no float left


def test_four_bit_layer_sits_on_its_grid_inside_int8(mixed) -> None:
    model, graph = mixed
    codes = _initializers(graph)["conv1.weight_quantized"]
    assert layer_bits(model)["conv1"] == 4
    assert codes.dtype == np.int8
    assert set(np.unique(codes)) <= set(range(-8, 8))
    assert 2 < len(np.unique(codes)) <= 16


def test_onnxruntime_runs_it_with_int8_kernels(tiny_setup, mixed, tmp_path: Path) -> None:
    _, graph = mixed
    optimized = tmp_path / "optimized.onnx"
    session = ort_session(graph, threads=1, optimized_path=optimized)
    session.run(None, {"images": np.zeros((2, *tiny_setup.input_shape), np.float32)})
    ops = {node.op_type for node in onnx.load(str(optimized)).graph.node}
    assert "QLinearConv" in ops, ops
    assert ops & {"QGemm", "QLinearMatMul", "MatMulInteger"}, ops
    assert not ops & {"Conv", "FusedConv", "Gemm", "DequantizeLinear"}, ops  # nothing float


def test_int8_onnx_agrees_with_the_scored_model(tiny_setup, mixed) -> None:
    model, graph = mixed
    shipped = OrtModule(ort_session(graph))
    loader = make_loader(tiny_setup.splits.test, 256)
    cpu = torch.device("cpu")
    scored = clean_accuracy(model, loader, cpu)
    assert abs(clean_accuracy(shipped, loader, cpu) - scored) <= 0.01
    assert agreement(model, shipped, loader, cpu) >= 0.98


def test_a_float_layer_ships_the_float_onnx_only(tiny_setup) -> None:
    model = _model(tiny_setup, (8, 8, 32, 8, 8))
    graph, form = shipped_onnx(model, tiny_setup.input_shape, _calibration(tiny_setup))
    assert form == ORT_FLOAT_FORM
    assert not any(numpy_helper.to_array(i).dtype == np.int8 for i in graph.graph.initializer)
    with pytest.raises(ValueError, match="conv3"):
        int8_onnx(model, tiny_setup.input_shape, _calibration(tiny_setup))


@pytest.mark.parametrize(
    ("bits", "form"), [((8,) * 5, ORT_INT8_FORM), ((8, 32, 8, 8, 8), ORT_FLOAT_FORM)]
)
def test_onnxruntime_latency_times_the_shipped_file(tiny_setup, bits, form) -> None:
    model = _model(tiny_setup, bits)
    before = copy.deepcopy(model.state_dict())
    config = dataclasses.replace(tiny_setup.config.latency, runtime="onnxruntime")
    stats = measure_latency(
        model, tiny_setup.input_shape, config, torch.device("cpu"), lambda: _calibration(tiny_setup)
    )
    assert stats.form == form
    assert stats.other_forms == {}
    assert 0 < stats.min_ms <= stats.median_ms <= stats.max_ms
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
