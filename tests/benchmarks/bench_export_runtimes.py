"""Benchmark: an export's members under both latency runtimes, with its shipped bytes.

    python tests/benchmarks/bench_export_runtimes.py EXPORT_DIR [--repeats N]

For each member of an export (`search pareto --export`): `size_bytes` (packed weights)
beside the bytes of each shipped file, the int8 ONNX's parity with the scored model
(from metrics.json), and the latency of the shipped file in onnxruntime against the
faster torch form, timed here one model at a time (batch 1, one thread, median).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch
import yaml

from search.compress import calibration_batches, load_model_with_info, measure_latency
from search.config import parse_config
from search.zoo import load_splits, make_loader


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export", type=Path)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    members = sorted(args.export.glob("trial-*"), key=lambda p: int(p.name.split("-")[1]))
    recipe = yaml.safe_load((members[0] / "recipe.yaml").read_text())
    config = parse_config(recipe["config"])
    splits = load_splits(config.data, config.seed)
    train = make_loader(splits.train, 256)  # the export's own calibration images
    calibration = calibration_batches(train, config.latency.calibration_samples)
    header = (
        "trial | size_bytes | safetensors B | model.onnx B | model.int8.onnx B | "
        "int8 clean / scored clean | agreement | int8 transfer robust | ORT ms | torch ms (form)"
    )
    print(header)
    print("|".join("---" for _ in header.split("|")))
    for member in members:
        metrics = json.loads((member / "metrics.json").read_text())
        model, info = load_model_with_info(member / "model.safetensors")
        timed = {}
        for runtime in ("onnxruntime", "torch"):
            latency = dataclasses.replace(
                config.latency, runtime=runtime, repeats=args.repeats, warmup=20
            )
            stats = measure_latency(
                model, info.input_shape, latency, torch.device("cpu"), lambda: calibration
            )
            timed[runtime] = stats
        files = metrics.get("bytes", {})
        parity = metrics.get("int8_onnx") or {}
        print(
            " | ".join(
                str(x)
                for x in (
                    metrics["trial"],
                    int(metrics["validation"]["size_bytes"]),
                    files.get("model.safetensors", "-"),
                    files.get("model.onnx", "-"),
                    files.get("model.int8.onnx", "-"),
                    f"{parity.get('clean_accuracy', float('nan')):.3f} / "
                    f"{parity.get('scored_clean_accuracy', float('nan')):.3f}"
                    if parity
                    else "-",
                    f"{parity['agreement']:.3f}" if parity else "-",
                    f"{parity.get('transfer_robust_accuracy', float('nan')):.3f}"
                    if parity
                    else "-",
                    f"{timed['onnxruntime'].median_ms:.4f}",
                    f"{timed['torch'].median_ms:.4f} ({timed['torch'].form})",
                )
            )
        )


if __name__ == "__main__":
    main()
