"""Standard AutoAttack beside the project's final attack, on one stored model.

A reviewer's question about any robust accuracy is whether the attack was strong enough.
`check` answers it for one trial of a study: on the first N images of the test split
(the seeded subset the study re-assesses on, or all test images when N exceeds it) it
scores clean accuracy, the study's final attack (search.robust.final_attacks) and
standard AutoAttack at its published budgets (search.robust.standard_autoattack), all
on the same images, so the gap between the last two is the attack's, not the data's.
Results are cached beside the study (STUDY.autoattack.json) with the CPU-seconds each
attack took: the models do not change, and AutoAttack on a CPU takes minutes.

`split` says where a gap between the two comes from: the final attack's parts, then
AutoAttack's four, as one cascade on the same images, with robust accuracy after each.
What an AutoAttack part still breaks after the final attack is what the final attack
misses; the standard 100-step APGD-CE's share says whether more steps would close it.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch.utils.data import DataLoader

    from search.config import EvaluationConfig


@dataclass(frozen=True)
class StoredTrial:
    """One stored trial's model on the first N test images, as its study scores it."""

    model: torch.nn.Module  # on the study's device, in eval mode
    num_classes: int
    threat: EvaluationConfig  # the study's evaluation section
    seed: int
    device: torch.device
    images: int  # how many test images the loader holds
    loader: DataLoader


def stored_trial(storage: str, study_name: str, number: int, images: int) -> StoredTrial:
    """Trial NUMBER of a stored study, with a loader over the first IMAGES images of its
    test subset (all of them when IMAGES exceeds it); read back as `search pareto` does."""
    import optuna
    from torch.utils.data import Subset

    from search.core import resolve_device
    from search.study import artifact_store, config_from_dict, trial_model
    from search.zoo import load_splits, make_loader

    study = optuna.load_study(study_name=study_name, storage=storage)
    config = config_from_dict(study.user_attrs["config"])
    device = resolve_device(config.device)
    splits = load_splits(config.data, config.seed)
    test = Subset(splits.test, range(min(images, len(splits.test))))  # type: ignore[arg-type]
    model, info = trial_model(study.trials[number], artifact_store(storage, config.artifacts))
    return StoredTrial(
        model=model.to(device).eval(),
        num_classes=info.num_classes,
        threat=config.evaluation,
        seed=config.seed,
        device=device,
        images=len(test),
        loader=make_loader(test, 250),
    )


def check(storage: str, study_name: str, trial_number: int, images: int) -> dict[str, Any]:
    """{clean, final, autoattack, images, final_cpu_seconds, autoattack_cpu_seconds}."""
    cache = Path(storage.removeprefix("sqlite:///")).with_suffix(".autoattack.json")
    saved = json.loads(cache.read_text()) if cache.is_file() else {}
    key = f"{trial_number}:{images}"
    if key in saved:
        return saved[key]

    from search.robust import clean_accuracy, final_attacks, robust_accuracy

    stored = stored_trial(storage, study_name, trial_number, images)
    model, loader, device, threat = stored.model, stored.loader, stored.device, stored.threat
    row: dict[str, Any] = {"images": stored.images, "clean": clean_accuracy(model, loader, device)}
    start = time.process_time()
    final = final_attacks(threat, seed=stored.seed, n_classes=stored.num_classes)
    row["final"] = robust_accuracy(model, loader, threat, device, attacks=final)
    row["final_cpu_seconds"] = time.process_time() - start
    start = time.process_time()
    standard = dataclasses.replace(threat, final_attack="autoattack")
    autoattack = final_attacks(standard, seed=stored.seed, n_classes=stored.num_classes)
    row["autoattack"] = robust_accuracy(model, loader, threat, device, attacks=autoattack)
    row["autoattack_cpu_seconds"] = time.process_time() - start
    row["final_attack"] = threat.final_attack
    saved[key] = row
    cache.write_text(json.dumps(saved, indent=2) + "\n")
    return row


def split(storage: str, study_name: str, trial_number: int, images: int) -> dict[str, Any]:
    """{images, stages: [[name, robust after it], ...] from "clean", cpu_seconds}: the
    final attack's parts, then standard AutoAttack's, each on what the earlier left."""
    cache = Path(storage.removeprefix("sqlite:///")).with_suffix(".autoattack.json")
    saved = json.loads(cache.read_text()) if cache.is_file() else {}
    key = f"split:{trial_number}:{images}"
    if key in saved:
        return saved[key]

    from search.robust import (
        AUTOATTACK_PARTS,
        NORMS,
        final_attacks,
        robust_after_each,
        standard_autoattack,
    )

    stored = stored_trial(storage, study_name, trial_number, images)
    threat = stored.threat
    final = final_attacks(threat, seed=stored.seed, n_classes=stored.num_classes)
    names = [
        f"final {i}/{len(final)} ({threat.final_attack}, {threat.final_steps} steps)"
        for i in range(1, len(final) + 1)
    ]

    def part(index: int) -> Any:
        return lambda m: standard_autoattack(
            m, NORMS[threat.norm], threat.epsilon, stored.num_classes, stored.seed
        ).attacks[index]

    parts = [part(i) for i in range(len(AUTOATTACK_PARTS))]
    start = time.process_time()
    robust = robust_after_each(stored.model, stored.loader, stored.device, [*final, *parts])
    row = {
        "images": stored.images,
        "stages": [
            [name, value]
            for name, value in zip(["clean", *names, *AUTOATTACK_PARTS], robust, strict=True)
        ],
        "cpu_seconds": time.process_time() - start,
    }
    saved[key] = row
    cache.write_text(json.dumps(saved, indent=2) + "\n")
    return row
