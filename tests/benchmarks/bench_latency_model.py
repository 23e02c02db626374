"""Benchmark: how well the calibrated latency model predicts held-out models.

Run on demand (no data needed: random weights, random inputs):
    python tests/benchmarks/bench_latency_model.py [--models digits-cnn,cnn8,...]
        [--runtimes onnxruntime,torch] [--batches 1,16] [--held-out 12]

For each model (the zoo's digits-cnn, cnn8 and resnet18-cifar, and torchvision's
mobilenet_v2 by import path), runtime and batch size: calibrate a latency model as a
study does (`search.latency_model`, the default space's sparsity grid), then draw
held-out plans with another seed (random per-layer sparsity; bits all <= 8, so the int8
form ships, or one layer at 32 bits, so the float form ships), time each as a trial is
timed (`search.compress.measure_latency`, the median of `--repeats`) and compare with
the prediction; each is timed twice, and the share of second timings within +-10% of
the first is the noise floor no predictor can beat. Prints a table (share within +-10%
of the measured median, median |error|, calibration seconds) and writes
tests/benchmarks/results/latency-model-accuracy.md with the load average, as timings on
a busy machine are noisier.
"""

from __future__ import annotations

import argparse
import copy
import os
import random
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from search.compress import measure_latency, prune, quantize_weights, weighted_layers
from search.config import LatencyConfig
from search.latency_model import calibrate, study_sparsities
from search.zoo import DataInfo, build_model

RESULTS = Path(__file__).parent / "results" / "latency-model-accuracy.md"
INFO = {
    "digits-cnn": DataInfo(10, 1, 8, (0.5,), (0.5,)),
    "cnn8": DataInfo(10, 1, 28, (0.5,), (0.5,)),
    "resnet18-cifar": DataInfo(10, 3, 32, (0.5,) * 3, (0.5,) * 3),
    "tests.benchmarks.bench_latency_model:mobilenet_v2": DataInfo(
        10, 3, 32, (0.5,) * 3, (0.5,) * 3
    ),
}
SPARSITY = (0.0, 0.75, 0.05)  # the default space's range and step


def mobilenet_v2(info: DataInfo) -> nn.Module:
    """torchvision's MobileNetV2 (depthwise convolutions), for `info`'s classes."""
    import torchvision

    return torchvision.models.mobilenet_v2(num_classes=info.num_classes)


def held_out(base: nn.Module, shape: tuple[int, ...], seed: int, count: int) -> list[nn.Module]:
    """Random compressed models: per-layer sparsity on the grid, int8 or float bits."""
    rng = random.Random(seed)
    layers = list(weighted_layers(base))
    low, high, step = SPARSITY
    grid = [low + i * step for i in range(int(round((high - low) / step)) + 1)]
    models = []
    for index in range(count):
        model = copy.deepcopy(base).eval()
        prune(model, {name: rng.choice(grid) for name in layers[:-1]}, torch.rand(1, *shape))
        bits = {name: rng.choice([2, 4, 6, 8]) for name in layers}
        if index % 2:
            bits[rng.choice(layers)] = 32  # one float layer: the float form ships
        models.append(quantize_weights(model, bits))
    return models


def run_case(
    name: str, runtime: str, batch: int, count: int, repeats: int
) -> dict[str, float | str]:
    info = INFO[name]
    shape = info.input_shape
    torch.manual_seed(0)
    base = build_model(name, info).eval()
    config = LatencyConfig(batch_size=batch, runtime=runtime, repeats=repeats, threads=1)
    device = torch.device("cpu")
    model = calibrate(base, shape, config, device, study_sparsities(base, *SPARSITY, seed=0))
    images = [torch.rand(64, *shape)]
    errors, repeated = [], []
    for compressed in held_out(base, shape, seed=1, count=count):
        measured = measure_latency(compressed, shape, config, device, lambda: images).median_ms
        again = measure_latency(compressed, shape, config, device, lambda: images).median_ms
        predicted, _ = model.predict(compressed, config.int8)
        errors.append(predicted / measured - 1)
        repeated.append(again / measured - 1)  # the noise floor: a timing against a timing
    within = sum(abs(e) <= 0.10 for e in errors) / len(errors)
    agree = sum(abs(e) <= 0.10 for e in repeated) / len(repeated)
    return {
        "model": name.rsplit(":", 1)[-1],
        "runtime": runtime,
        "batch": batch,
        "held-out": len(errors),
        "within +-10%": f"{100 * within:.0f}%",
        "median |error|": f"{100 * statistics.median(abs(e) for e in errors):.1f}%",
        "worst error": f"{100 * max(errors, key=abs):+.1f}%",
        "re-timed within +-10%": f"{100 * agree:.0f}%",
        "calibration s": f"{model.seconds:.1f}",
    }


def table(rows: list[dict[str, float | str]]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(row[k]) for k in keys) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(INFO))
    parser.add_argument("--runtimes", default="onnxruntime,torch")
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--held-out", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    clock = time.perf_counter()
    rows = []
    for name in args.models.split(","):
        name = next((key for key in INFO if key.endswith(name)), name)
        for runtime in args.runtimes.split(","):
            for batch in (int(b) for b in args.batches.split(",")):
                rows.append(run_case(name, runtime, batch, args.held_out, args.repeats))
                print(table(rows[-1:]).splitlines()[-1], flush=True)
    text = table(rows)
    load = f"load average {load_before[0]:.2f} at start, {os.getloadavg()[0]:.2f} at end"
    print(text)
    print(load, f"({time.perf_counter() - clock:.0f} s)")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        "# Latency model accuracy (tests/benchmarks/bench_latency_model.py)\n\n"
        f"{os.cpu_count()} cores, 1 thread, {args.repeats} repeats per timing; {load}.\n\n"
        f"{text}\n"
    )


if __name__ == "__main__":
    main()
