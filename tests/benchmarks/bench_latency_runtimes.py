"""Benchmark: which runtime's latency follows the work (FLOPs) of a pruned model.

Run on demand (no data needed: random weights, random inputs):
    python tests/benchmarks/bench_latency_runtimes.py [--repeats 200] [--threads 1]

cnn8 on Fashion-MNIST-shaped input (1x28x28), pruned uniformly at sparsities 0, 0.5, 0.7
and 0.9, every layer at 8 bits, timed at batch 1 in four forms: torch float32, torch.ao
int8, onnxruntime float ONNX, onnxruntime int8 ONNX (the file an export ships). Each
runtime's fixed per-call cost is the time of an identity. The last lines compare the
latency ratio of the largest to the smallest model with their FLOP ratio: a runtime
whose latency follows the work has a latency ratio near the FLOP ratio, one dominated
by per-call overhead a ratio near 1.
"""

from __future__ import annotations

import argparse
import copy
import statistics

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper
from torch import nn

from objectives.counting import count_flops
from search.compress import (
    deployable,
    float_onnx,
    int8_onnx,
    ort_session,
    prune,
    quantize_weights,
    time_module,
    time_session,
    to_int8,
    weighted_layers,
)
from search.config import LatencyConfig
from search.zoo import DataInfo, build_model

SHAPE = (1, 28, 28)
SPARSITIES = (0.0, 0.5, 0.7, 0.9)
FORMS = ("torch float ms", "torch.ao int8 ms", "ORT float ms", "ORT int8 ms")


def compressed(base: nn.Module, sparsity: float) -> nn.Module:
    model = copy.deepcopy(base).eval()
    layers = list(weighted_layers(model))
    prune(model, {name: sparsity for name in layers[:-1]}, torch.rand(1, *SHAPE))
    return quantize_weights(model, {name: 8 for name in layers}).eval()


def median_ms(timings: list[float]) -> float:
    return statistics.median(timings)


def form_latencies(model: nn.Module, config: LatencyConfig) -> list[float]:
    calibration = [torch.rand(64, *SHAPE) for _ in range(4)]
    torch_input = torch.rand(1, *SHAPE)
    array = torch_input.numpy()
    return [
        median_ms(time_module(deployable(model), torch_input, config)),
        median_ms(time_module(to_int8(model, calibration, torch_input), torch_input, config)),
        median_ms(
            time_session(ort_session(float_onnx(model, SHAPE), config.threads), array, config)
        ),
        median_ms(
            time_session(
                ort_session(int8_onnx(model, SHAPE, calibration), config.threads), array, config
            )
        ),
    ]


def identity_costs(config: LatencyConfig) -> tuple[float, float]:
    """Per-call cost of an identity: torch module call, onnxruntime session run."""
    torch_ms = median_ms(time_module(nn.Identity(), torch.rand(1, *SHAPE), config))
    tensor = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, *SHAPE])
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, *SHAPE])
    graph = helper.make_graph(
        [helper.make_node("Identity", ["images"], ["logits"])], "identity", [tensor], [out]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    array = np.random.default_rng(0).random((1, *SHAPE), np.float32)
    ort_ms = median_ms(time_session(ort_session(model, config.threads), array, config))
    return torch_ms, ort_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    config = LatencyConfig(batch_size=1, threads=args.threads, warmup=20, repeats=args.repeats)
    torch.manual_seed(0)
    info = DataInfo(num_classes=10, in_channels=1, image_size=28, mean=(0.286,), std=(0.353,))
    base = build_model("cnn8", info).eval()
    rows = []
    for sparsity in SPARSITIES:
        model = compressed(base, sparsity)
        rows.append((sparsity, count_flops(model, SHAPE), form_latencies(model, config)))
    torch_call, ort_call = identity_costs(config)
    print(f"cnn8, 1x28x28, 8 bits, batch 1, {args.threads} thread(s), median of {args.repeats}")
    print(f"per-call cost (identity): torch {torch_call:.4f} ms, onnxruntime {ort_call:.4f} ms")
    print(f"{'sparsity':>8} {'MFLOPs':>8} " + " ".join(f"{f:>16}" for f in FORMS))
    for sparsity, flops, times in rows:
        print(f"{sparsity:>8.1f} {flops / 1e6:>8.2f} " + " ".join(f"{t:>16.4f}" for t in times))
    flop_ratio = rows[0][1] / rows[-1][1]
    print(
        f"FLOP ratio largest/smallest: {flop_ratio:.1f} "
        f"(target: latency ratio >= {flop_ratio / 2:.1f})"
    )
    for index, form in enumerate(FORMS):
        ratio = rows[0][2][index] / rows[-1][2][index]
        print(f"  {form:<16} latency ratio {ratio:6.2f} = {ratio / flop_ratio:.2f} x FLOP ratio")


if __name__ == "__main__":
    main()
