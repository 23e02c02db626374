"""Probe: is the final attack's step count enough? The same attack at more steps.

The issue's rule: if the standard 100 APGD steps change a number by more than a point,
they become the final attack's default. This scores one stored trial (a front member or
a from-scratch reference) on the first N test images under the study's final attack at
each step count given, same images and seed, and prints one row per count:

    python tests/benchmarks/probes/probe_final_steps.py STORAGE STUDY TRIAL [N] [STEPS ...]

Defaults: N = 1000, STEPS = the study's `final_steps` and 100.
"""

from __future__ import annotations

import dataclasses
import sys
import time

import optuna
from torch.utils.data import Subset

from search.core import resolve_device
from search.robust import clean_accuracy, final_attacks, robust_accuracy
from search.study import artifact_store, config_from_dict, trial_model
from search.zoo import load_splits, make_loader


def main() -> None:
    storage, study_name, number = sys.argv[1], sys.argv[2], int(sys.argv[3])
    images = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
    study = optuna.load_study(study_name=study_name, storage=storage)
    config = config_from_dict(study.user_attrs["config"])
    threat = config.evaluation
    steps = [int(s) for s in sys.argv[5:]] or [threat.final_steps, 100]
    device = resolve_device(config.device)
    splits = load_splits(config.data, config.seed)
    test = Subset(splits.test, range(min(images, len(splits.test))))  # type: ignore[arg-type]
    loader = make_loader(test, 250)
    model, info = trial_model(study.trials[number], artifact_store(storage, config.artifacts))
    model = model.to(device).eval()
    print(
        f"{study_name} trial {number}: clean {clean_accuracy(model, loader, device):.3f} "
        f"on {len(test)} test images; final attack {threat.final_attack}, "
        f"{threat.final_restarts} restart(s)"
    )
    print("steps  robust  CPU-s")
    for count in steps:
        start = time.process_time()
        at = dataclasses.replace(threat, final_steps=count)
        attacks = final_attacks(at, seed=config.seed, n_classes=info.num_classes)
        robust = robust_accuracy(model, loader, at, device, attacks=attacks)
        print(f"{count:5d}  {robust:.3f}  {time.process_time() - start:6.0f}", flush=True)


if __name__ == "__main__":
    main()
