"""Standard AutoAttack beside the project's final attack, on one stored model.

A reviewer's question about any robust accuracy is whether the attack was strong enough.
`check` answers it for one trial of a study: on the first N images of the test split
(the seeded subset the study re-assesses on, or all test images when N exceeds it) it
scores clean accuracy, the study's final attack (search.robust.final_attacks) and
standard AutoAttack at its published budgets (search.robust.standard_autoattack), all
on the same images, so the gap between the last two is the attack's, not the data's.
Results are cached beside the study (STUDY.autoattack.json) with the CPU-seconds each
attack took: the models do not change, and AutoAttack on a CPU takes minutes.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any


def check(storage: str, study_name: str, trial_number: int, images: int) -> dict[str, Any]:
    """{clean, final, autoattack, images, final_cpu_seconds, autoattack_cpu_seconds}."""
    cache = Path(storage.removeprefix("sqlite:///")).with_suffix(".autoattack.json")
    saved = json.loads(cache.read_text()) if cache.is_file() else {}
    key = f"{trial_number}:{images}"
    if key in saved:
        return saved[key]

    import optuna
    from torch.utils.data import Subset

    from search.core import resolve_device
    from search.robust import clean_accuracy, final_attacks, robust_accuracy
    from search.study import artifact_store, config_from_dict, trial_model
    from search.zoo import load_splits, make_loader

    study = optuna.load_study(study_name=study_name, storage=storage)
    config = config_from_dict(study.user_attrs["config"])
    device = resolve_device(config.device)
    splits = load_splits(config.data, config.seed)
    test = Subset(splits.test, range(min(images, len(splits.test))))  # type: ignore[arg-type]
    loader = make_loader(test, 250)
    artifacts = artifact_store(storage, config.artifacts)
    model, info = trial_model(study.trials[trial_number], artifacts)
    model = model.to(device).eval()
    threat = config.evaluation
    row: dict[str, Any] = {"images": len(test), "clean": clean_accuracy(model, loader, device)}
    start = time.process_time()
    final = final_attacks(threat, seed=config.seed, n_classes=info.num_classes)
    row["final"] = robust_accuracy(model, loader, threat, device, attacks=final)
    row["final_cpu_seconds"] = time.process_time() - start
    start = time.process_time()
    standard = dataclasses.replace(threat, final_attack="autoattack")
    autoattack = final_attacks(standard, seed=config.seed, n_classes=info.num_classes)
    row["autoattack"] = robust_accuracy(model, loader, threat, device, attacks=autoattack)
    row["autoattack_cpu_seconds"] = time.process_time() - start
    row["final_attack"] = threat.final_attack
    saved[key] = row
    cache.write_text(json.dumps(saved, indent=2) + "\n")
    return row
