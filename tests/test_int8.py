"""Real int8 kernels (torch.ao FX): same predictions as the fake-quant view, timed beside it.

The compressed models are what a trial produces: the tiny base model pruned and
fake-quantized by `search.trial.compress`, then fine-tuned for one epoch (clean), as
trials with epochs >= 1 are. (Pruned but not fine-tuned, at sparsity 0.4-0.5, the model's
accuracy falls to about 50-60% and int8 agreement to about 95-98%: many near-ties flip.)
"""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from torch.nn.utils import parametrize

from search.compress import (
    FLOAT_FORM,
    calibration_batches,
    form_name,
    int8_applicable,
    int8_engine,
    layer_bits,
    measure_latency,
    to_int8,
)
from search.robust import finetune
from search.study import StudySetup, compress, config_from_dict
from search.zoo import make_loader
from spaces import Plan

SPARSITY = 0.25

pytestmark = pytest.mark.skipif(int8_engine() is None, reason="this CPU has no quantized engine")


@pytest.fixture(scope="module")
def setup() -> StudySetup:
    from conftest import TINY

    return StudySetup.build(config_from_dict(copy.deepcopy(TINY)))


@pytest.fixture(scope="module")
def test_split(setup: StudySetup) -> tuple[torch.Tensor, torch.Tensor]:
    test = setup.splits.test
    images = torch.stack([test[i][0] for i in range(len(test))])
    labels = torch.tensor([int(test[i][1]) for i in range(len(test))])
    return images, labels


def _torch_latency(setup: StudySetup):
    """The study's latency settings with the torch runtime, whose forms these tests time."""
    return dataclasses.replace(setup.config.latency, runtime="torch")


def _calibration(setup: StudySetup) -> list[torch.Tensor]:
    train = make_loader(setup.splits.train, 256)
    return calibration_batches(train, setup.config.latency.calibration_samples)


_MODELS: dict[tuple, torch.nn.Module] = {}


def compressed(setup: StudySetup, bits: int, float_layer: str | None = None):
    """The base pruned at SPARSITY, quantized at `bits` (one layer left float), tuned 1 epoch."""
    key = (bits, float_layer)
    if key not in _MODELS:
        plan = Plan(
            sparsity={name: SPARSITY for name in setup.prunable},
            bits={name: bits for name in setup.quantizable},
            epochs=1,
        )
        if float_layer is not None:
            plan.bits[float_layer] = 32
        model = compress(setup.base_model, plan, setup.input_shape, setup.device)
        torch.manual_seed(0)
        train = make_loader(setup.splits.train, setup.config.data.batch_size, shuffle=True)
        finetune(model, train, plan, setup.config.finetune, setup.device)
        _MODELS[key] = model.eval()
    return _MODELS[key]


def _has_parametrizations(model: torch.nn.Module) -> bool:
    return any(parametrize.is_parametrized(m) for m in model.modules())


def test_calibration_batches_take_the_first_images(setup) -> None:
    train = make_loader(setup.splits.train, 256)
    batches = calibration_batches(train, 300)
    assert [len(b) for b in batches] == [256, 44]
    first = next(iter(train))[0]
    assert torch.equal(batches[0], first)


@pytest.mark.parametrize("bits", [8, 4])
def test_int8_predictions_match_fake_quant(setup, test_split, bits: int) -> None:
    model = compressed(setup, bits)
    assert set(layer_bits(model).values()) == {bits}
    assert int8_applicable(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images, _ = test_split

    converted = to_int8(model, _calibration(setup), torch.rand(1, *setup.input_shape))

    assert converted is not model
    assert _has_parametrizations(model), "to_int8 stripped the fake-quant view"
    assert layer_bits(model) == {name: bits for name in setup.quantizable}
    assert not _has_parametrizations(converted)
    after = model.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], v) for k, v in before.items())
    # it really runs integer kernels
    kinds = {type(m).__module__ for m in converted.modules()}
    assert any("quantized" in kind for kind in kinds), kinds

    with torch.no_grad():
        fake = model(images).argmax(1)
        real = converted(images).argmax(1)
    agreement = (fake == real).float().mean().item()
    assert agreement >= 0.99, f"{bits}-bit: int8 agrees on {agreement:.4f} of test inputs"


@pytest.mark.parametrize("float_layer", ["conv1", "fc2"])
def test_a_float_layer_rules_out_int8(setup, float_layer: str) -> None:
    model = compressed(setup, 8, float_layer=float_layer)
    assert float_layer not in layer_bits(model)
    assert len(layer_bits(model)) == len(setup.quantizable) - 1
    assert not int8_applicable(model)
    stats = measure_latency(
        model, setup.input_shape, _torch_latency(setup), setup.device, lambda: _calibration(setup)
    )
    assert stats.form == FLOAT_FORM
    assert stats.other_forms == {}
    assert 0 < stats.min_ms <= stats.median_ms <= stats.max_ms


def test_unquantized_model_is_not_int8_applicable(setup) -> None:
    assert not int8_applicable(setup.base_model)


@pytest.mark.parametrize("bits", [8, 4])
def test_latency_times_both_forms_and_reports_the_faster(setup, bits: int) -> None:
    model = compressed(setup, bits)
    stats = measure_latency(
        model, setup.input_shape, _torch_latency(setup), setup.device, lambda: _calibration(setup)
    )
    forms = {stats.form, *stats.other_forms}
    assert forms == {FLOAT_FORM, form_name()}
    assert len(stats.other_forms) == 1
    (other,) = stats.other_forms.values()
    assert 0 < stats.median_ms <= other
    assert stats.min_ms <= stats.median_ms <= stats.max_ms
    assert _has_parametrizations(model)  # timing left the scored model as it was


def test_int8_switch_and_missing_calibration_time_float_only(setup) -> None:
    model = compressed(setup, 8)
    off = dataclasses.replace(_torch_latency(setup), int8=False)
    stats = measure_latency(
        model, setup.input_shape, off, setup.device, lambda: _calibration(setup)
    )
    assert (stats.form, stats.other_forms) == (FLOAT_FORM, {})
    stats = measure_latency(model, setup.input_shape, _torch_latency(setup), setup.device)
    assert (stats.form, stats.other_forms) == (FLOAT_FORM, {})
