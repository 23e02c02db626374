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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/benchmarks

from autoattack_check import stored_trial  # noqa: E402

from search.robust import clean_accuracy, final_attacks, robust_accuracy  # noqa: E402


def main() -> None:
    storage, study_name, number = sys.argv[1], sys.argv[2], int(sys.argv[3])
    images = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
    stored = stored_trial(storage, study_name, number, images)
    model, loader, device, threat = stored.model, stored.loader, stored.device, stored.threat
    steps = [int(s) for s in sys.argv[5:]] or [threat.final_steps, 100]
    print(
        f"{study_name} trial {number}: clean {clean_accuracy(model, loader, device):.3f} "
        f"on {stored.images} test images; final attack {threat.final_attack}, "
        f"{threat.final_restarts} restart(s)"
    )
    print("steps  robust  CPU-s")
    for count in steps:
        start = time.process_time()
        at = dataclasses.replace(threat, final_steps=count)
        attacks = final_attacks(at, seed=stored.seed, n_classes=stored.num_classes)
        robust = robust_accuracy(model, loader, at, device, attacks=attacks)
        print(f"{count:5d}  {robust:.3f}  {time.process_time() - start:6.0f}", flush=True)


if __name__ == "__main__":
    main()
