"""Benchmark: what the front of a finished study buys against its base model.

Run on demand, after a study exists (e.g. the default `search run`):
    python tests/benchmarks/bench_front.py [--storage URL] [--study NAME] [--members 3]

Prints, for the base model and up to `--members` front members (the most robust on
validation): validation and test robust accuracy under the search attack and the final
(stronger) attack, latency of the deployable forms at batch 1 and 64 (median of
repeats, each form on a fresh instance, one model at a time), and size in bytes.
"""

from __future__ import annotations

import argparse
import dataclasses

import optuna
import torch

from search.compress import calibration_batches, measure_latency, size_bytes
from search.core import resolve_device
from search.front import assess_front, front_trials
from search.robust import clean_accuracy, describe, final_attacks, robust_accuracy
from search.study import (
    DEFAULT_STORAGE,
    artifact_store,
    config_from_dict,
    load_base,
    open_storage,
    trial_model,
)
from search.zoo import load_splits, make_loader


def latency_pair(
    model: torch.nn.Module, shape: tuple[int, ...], config, device, calibration
) -> str:
    cells = []
    for batch in (1, 64):
        stats = measure_latency(
            model, shape, dataclasses.replace(config.latency, batch_size=batch), device, calibration
        )
        forms = {stats.form: stats.median_ms, **stats.other_forms}
        cells.append(
            " / ".join(f"{ms:.3f} {'int8' if 'int8' in f else 'fp32'}" for f, ms in forms.items())
        )
    return " | ".join(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--storage", default=DEFAULT_STORAGE)
    parser.add_argument("--study", default="aer-digits")
    parser.add_argument("--members", type=int, default=3)
    args = parser.parse_args()
    study = optuna.load_study(study_name=args.study, storage=open_storage(args.storage))
    config = config_from_dict(study.user_attrs["config"])
    artifacts = artifact_store(args.storage, config.artifacts)
    device = resolve_device(config.device)
    splits = load_splits(config.data, config.seed)
    val, test = make_loader(splits.val, 256), make_loader(splits.test, 256)
    shape = splits.info.input_shape
    train = make_loader(splits.train, 256)

    def calibration() -> list[torch.Tensor]:
        return calibration_batches(train, config.latency.calibration_samples)

    threat = config.evaluation
    final = final_attacks(threat, seed=config.seed)
    base = load_base(study, config, splits, artifacts, device)
    reports = assess_front(study, config, artifacts)
    members = sorted(
        front_trials(study), key=lambda t: -t.user_attrs["metrics"]["robust_accuracy"]
    )[: args.members]

    print(f"search attack: {describe(threat)}")
    print(f"final attack:  {describe(threat, final=True)}")
    header = (
        f"{'model':<10}{'val clean':>10}{'val rob':>9}{'val rob*':>9}{'test clean':>11}"
        f"{'test rob':>9}{'test rob*':>10}{'size B':>9}  latency ms b1 | b64"
    )
    print(header)
    rows = [("base", base, None)]
    for trial in members:
        model, _ = trial_model(trial, artifacts)
        rows.append((f"trial {trial.number}", model.to(device), reports[trial.number]))
    for name, model, _report in rows:
        cells = [
            clean_accuracy(model, val, device),
            robust_accuracy(model, val, threat, device, config.seed),
            robust_accuracy(model, val, threat, device, config.seed, attacks=final),
            clean_accuracy(model, test, device),
            robust_accuracy(model, test, threat, device, config.seed),
            robust_accuracy(model, test, threat, device, config.seed, attacks=final),
        ]
        print(
            f"{name:<10}"
            + "".join(f"{c:>{w}.3f}" for c, w in zip(cells, (10, 9, 9, 11, 9, 10), strict=True))
            + f"{size_bytes(model):>9,}  "
            + latency_pair(model, shape, config, device, calibration)
        )
    print("rob = search attack, rob* = final attack; latency lists every deployable form")


if __name__ == "__main__":
    main()
