"""Fake quantization, bit packing, the packed safetensors file and `bake`."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from safetensors import safe_open
from torch import nn
from torch.nn.utils import parametrize

from search.compress import (
    PACKED,
    SCALE,
    FakeQuantWeight,
    bake,
    layer_bits,
    layer_widths,
    load_packed,
    pack_codes,
    prune,
    prune_to_widths,
    quant_range,
    quantize_tensor,
    quantize_weights,
    save_packed,
    size_bytes,
    unpack_codes,
    weighted_layers,
)
from search.zoo import DataInfo, build_model

BITS = list(range(2, 9))
INFO = DataInfo(num_classes=10, in_channels=1, image_size=8, mean=(0.3,), std=(0.45,))


def _digits_cnn(seed: int = 0) -> nn.Module:
    """A digits CNN with non-trivial BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    model = build_model("digits-cnn", INFO)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(16, 1, 8, 8))
    return model.eval()


def _layer_names(model: nn.Module) -> list[str]:
    return list(weighted_layers(model))


def _expected_scale(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-output-channel scale computed independently of the code under test."""
    _, qmax = quant_range(bits)
    return weight.detach().abs().flatten(1).max(dim=1).values / qmax


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("layer_kind", ["conv", "linear"])
def test_fake_quant_weights_lie_on_per_channel_grid(bits: int, layer_kind: str) -> None:
    """Guards: every fake-quantized weight is scale * integer in [qmin, qmax], nearest point."""
    torch.manual_seed(bits)
    layer = nn.Conv2d(3, 6, 3) if layer_kind == "conv" else nn.Linear(20, 7)
    model = nn.Sequential()
    model.add_module("layer", layer)
    quantize_weights(model, {"layer": bits})

    original = layer.parametrizations.weight.original
    quantized = layer.weight.detach()
    scale = _expected_scale(original, bits)
    view = (-1,) + (1,) * (original.dim() - 1)
    ratio = quantized / scale.view(view)
    qmin, qmax = quant_range(bits)

    assert torch.allclose(ratio, ratio.round(), atol=1e-4), "weights are off the grid"
    assert ratio.round().min() >= qmin and ratio.round().max() <= qmax
    for channel in ratio.round().flatten(1):
        assert channel.unique().numel() <= 2**bits
    # Nearest grid point: never more than half a step away from the float weight.
    error = (quantized - original.detach()).abs().flatten(1).max(dim=1).values
    assert torch.all(error <= scale / 2 * (1 + 1e-4) + 1e-7)
    # The largest |w| of each channel lands exactly on +-qmax.
    assert torch.allclose(
        ratio.abs().flatten(1).max(dim=1).values,
        torch.full((ratio.shape[0],), float(qmax)),
        atol=1e-4,
    )


@pytest.mark.parametrize("bits", BITS)
def test_quantize_tensor_codes_match_fake_quant(bits: int) -> None:
    """Guards: the integer codes the packer stores are the ones training saw."""
    torch.manual_seed(100 + bits)
    weight = torch.randn(5, 4, 3, 3)
    codes, scale = quantize_tensor(weight, bits)
    qmin, qmax = quant_range(bits)
    assert codes.dtype == torch.int32
    assert codes.shape == weight.shape
    assert int(codes.min()) >= qmin and int(codes.max()) <= qmax
    fake = FakeQuantWeight(bits)(weight)
    assert torch.allclose(codes.float() * scale.view(-1, 1, 1, 1), fake, atol=1e-6)


@pytest.mark.parametrize("bits", BITS)
def test_straight_through_gradient_reaches_original_weight(bits: int) -> None:
    """Guards: gradients pass the rounding (STE), so training and attacks are not masked."""
    torch.manual_seed(bits)
    layer = nn.Linear(12, 5)
    plain = copy.deepcopy(layer)
    quantize_weights(nn.Sequential(layer), {"0": bits})
    x = torch.randn(8, 12)

    layer(x).sum().backward()
    plain(x).sum().backward()

    grad = layer.parametrizations.weight.original.grad
    assert grad is not None
    assert grad.abs().sum() > 0
    # d(sum(Wx))/dW does not depend on W, so an identity STE gives the float gradient.
    assert torch.allclose(grad, plain.weight.grad, atol=1e-5)


def test_quantize_weights_skips_float_layers_and_refuses_double_quantization() -> None:
    """Guards: 32 bits means 'leave float'; a layer cannot be quantized twice."""
    model = _digits_cnn()
    quantize_weights(model, {"conv1": 4, "conv2": 32, "fc2": 8})
    assert layer_bits(model) == {"conv1": 4, "fc2": 8}
    assert not parametrize.is_parametrized(model.conv2, "weight")
    with pytest.raises(ValueError, match="conv1"):
        quantize_weights(model, {"conv1": 6})


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("numel", [1, 7, 64, 1001])
def test_pack_unpack_round_trip(bits: int, numel: int) -> None:
    """Guards: packing is lossless for every code incl. qmin/qmax, and densely sized."""
    qmin, qmax = quant_range(bits)
    generator = torch.Generator().manual_seed(bits * 1000 + numel)
    codes = torch.randint(qmin, qmax + 1, (numel,), generator=generator, dtype=torch.int32)
    codes[0] = qmin
    if numel > 1:
        codes[-1] = qmax
    packed = pack_codes(codes, bits)
    assert packed.dtype == torch.uint8
    assert packed.numel() == math.ceil(numel * bits / 8)
    unpacked = unpack_codes(packed, bits, numel)
    assert unpacked.dtype == torch.int32
    assert torch.equal(unpacked, codes)


@pytest.mark.parametrize("bits", BITS)
def test_pack_round_trip_of_multidimensional_codes(bits: int) -> None:
    """Guards: conv-shaped codes survive flatten -> pack -> unpack -> reshape."""
    weight = torch.randn(6, 3, 3, 3, generator=torch.Generator().manual_seed(bits))
    codes, _ = quantize_tensor(weight, bits)
    packed = pack_codes(codes, bits)
    back = unpack_codes(packed, bits, codes.numel()).reshape(codes.shape)
    assert torch.equal(back, codes)


MIXED_BITS = {"conv1": 2, "conv2": 4, "conv3": 8, "fc1": 3, "fc2": 32}


def _file_bytes(path) -> int:
    with safe_open(str(path), framework="pt") as handle:
        names = handle.keys()
        tensors = [handle.get_tensor(name) for name in names]
    return sum(t.numel() * t.element_size() for t in tensors)


def test_size_bytes_equals_tensor_bytes_of_saved_file(tmp_path) -> None:
    """Guards: the size metric is exactly what `save_packed` writes (no drift)."""
    model = quantize_weights(_digits_cnn(), MIXED_BITS)
    path = tmp_path / "model.safetensors"
    save_packed(model, path, {"note": "test"})
    assert size_bytes(model) == _file_bytes(path)
    with safe_open(str(path), framework="pt") as handle:
        keys = set(handle.keys())
    for name, bits in MIXED_BITS.items():
        if bits < 32:
            assert name + PACKED in keys and name + SCALE in keys
            assert name + ".weight" not in keys
        else:
            assert name + ".weight" in keys
    assert not any(".parametrizations." in k for k in keys)


def test_size_bytes_of_float_model_is_its_state_dict() -> None:
    """Guards: with nothing quantized, size is the plain state dict's bytes."""
    model = _digits_cnn()
    expected = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    assert size_bytes(model) == expected


def test_size_bytes_shrinks_from_8_to_4_bits_by_the_packed_difference() -> None:
    """Guards: halving the bits halves the packed weight bytes, scales and the rest unchanged."""
    names = _layer_names(_digits_cnn())
    size8 = size_bytes(quantize_weights(_digits_cnn(), dict.fromkeys(names, 8)))
    size4 = size_bytes(quantize_weights(_digits_cnn(), dict.fromkeys(names, 4)))
    float_size = size_bytes(_digits_cnn())
    assert size4 < size8 < float_size
    numels = [m.weight.numel() for m in weighted_layers(_digits_cnn()).values()]
    assert size8 - size4 == sum(n - math.ceil(n * 4 / 8) for n in numels)


def test_load_packed_reproduces_quantized_outputs(tmp_path) -> None:
    """Guards: the exported file, dequantized into a fresh model, computes the same logits."""
    model = quantize_weights(_digits_cnn(), MIXED_BITS)
    path = tmp_path / "model.safetensors"
    save_packed(model, path, {"study": "unit"})
    state, bits, metadata = load_packed(path)
    assert bits == {k: v for k, v in MIXED_BITS.items() if v < 32}
    assert metadata["study"] == "unit"

    fresh = build_model("digits-cnn", INFO)
    fresh.load_state_dict(state)  # strict: every key present, none extra
    fresh.eval()
    x = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(fresh(x), model(x), atol=1e-5)


def test_load_packed_into_pruned_architecture(tmp_path) -> None:
    """Guards: a pruned + quantized model exports and reloads into prune_to_widths shapes."""
    model = _digits_cnn()
    prune(model, {"conv1": 0.5, "conv3": 0.25, "fc1": 0.5}, torch.rand(1, 1, 8, 8))
    quantize_weights(model, {"conv1": 3, "conv2": 5, "conv3": 6, "fc1": 2, "fc2": 7})
    path = tmp_path / "pruned.safetensors"
    save_packed(model, path, {})
    assert size_bytes(model) == _file_bytes(path)
    state, _, _ = load_packed(path)

    fresh = prune_to_widths(
        build_model("digits-cnn", INFO), layer_widths(model), torch.rand(1, 1, 8, 8)
    )
    fresh.load_state_dict(state)
    fresh.eval()
    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.allclose(fresh(x), model(x), atol=1e-5)


def test_bake_on_deepcopy_leaves_original_parametrized() -> None:
    """Guards (regression): baking a copy must not strip the shared parametrized class."""
    model = quantize_weights(_digits_cnn(), {"conv1": 4, "conv2": 3, "fc1": 2, "fc2": 8})
    x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        before = model(x)

    baked = bake(copy.deepcopy(model))

    for name in ("conv1", "conv2", "fc1", "fc2"):
        assert parametrize.is_parametrized(getattr(model, name), "weight")
        assert not parametrize.is_parametrized(getattr(baked, name), "weight")
        assert type(getattr(baked, name)) in (nn.Conv2d, nn.Linear)
        assert isinstance(getattr(baked, name).weight, nn.Parameter)
    assert layer_bits(model) == {"conv1": 4, "conv2": 3, "fc1": 2, "fc2": 8}
    assert layer_bits(baked) == {}
    assert not any(".parametrizations." in k for k in baked.state_dict())
    with torch.no_grad():
        assert torch.equal(model(x), before)
        assert torch.allclose(baked(x), before, atol=1e-6)
    # The original still trains through its fake quantization.
    model(x).sum().backward()
    assert model.conv1.parametrizations.weight.original.grad is not None


def test_bake_in_place_leaves_an_earlier_copy_parametrized() -> None:
    """Guards: baking the original does not break a deep copy made before."""
    model = quantize_weights(_digits_cnn(), {"conv2": 4, "fc1": 5})
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    copy_ = copy.deepcopy(model)
    with torch.no_grad():
        expected = copy_(x)
    bake(model)
    assert parametrize.is_parametrized(copy_.conv2, "weight")
    assert layer_bits(copy_) == {"conv2": 4, "fc1": 5}
    with torch.no_grad():
        assert torch.equal(copy_(x), expected)
        assert torch.allclose(model(x), expected, atol=1e-6)
