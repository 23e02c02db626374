"""A trial's fine-tuning by epochs (no multi-fidelity): keep-best and resumable runs.

Two things long runs need that a short fine-tune does not:
- keep the best epoch (`finetune.keep_best`, Rice et al. 2020): for adversarial
  strategies over two or more epochs, each epoch is scored by the study's own search
  attack on the first `finetune.keep_best_samples` validation images, and the trial
  ends with the best epoch's weights. Those images are also among the ones the trial is
  scored on, so the validation number is slightly optimistic; the front's reported
  numbers come from the test split.
- survive a kill: a trial that starts from scratch (the adversarial-training
  baselines, hours on the full data) keeps its state after every epoch in the cache,
  under a hash of everything that decides its weights (the study's config less the
  fields a resumed study may change, and the trial's params). Rerunning the command
  starts a new trial with the same params (the baseline's space is one point), which
  finds the file and goes on from the last epoch; it ends with the weights an unkilled
  run ends with. The CPU-seconds of the killed attempts are added to the trial's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Subset

from search.core import cache_dir
from search.robust import KeepBest, finetune, robust_accuracy
from search.study._open import RESUMABLE_FIELDS
from search.study._setup import StudySetup
from search.zoo import make_loader, training_loader
from spaces import Plan


def run_checkpoint(setup: StudySetup, params: dict[str, Any]) -> Path:
    """Where a from-scratch trial with these params keeps its per-epoch state."""
    config = {k: v for k, v in setup.config.to_dict().items() if k not in RESUMABLE_FIELDS}
    text = json.dumps({"config": config, "params": params}, sort_keys=True, default=str)
    return cache_dir() / "runs" / f"train-{hashlib.sha256(text.encode()).hexdigest()[:16]}.pt"


def make_keep_best(setup: StudySetup, model: nn.Module, plan: Plan) -> KeepBest | None:
    """The best-epoch keeper of this trial, or None where it does not apply."""
    cfg = setup.config
    if not cfg.finetune.keep_best or plan.strategy == "standard" or plan.epochs < 2:
        return None
    val = setup.val_loader.dataset
    held_out = Subset(val, range(min(cfg.finetune.keep_best_samples, len(val))))  # type: ignore[arg-type]
    loader = make_loader(held_out, 256)

    def score(candidate: nn.Module) -> float:
        return robust_accuracy(candidate, loader, cfg.evaluation, setup.device, cfg.seed)

    return KeepBest(model, score)


def finetune_epochs(
    setup: StudySetup, model: nn.Module, plan: Plan, params: dict[str, Any]
) -> tuple[dict[str, Any], float]:
    """Fine-tune `model` in place as `plan` says, by epochs.

    Returns the notes to keep (the best epoch, when kept) and the CPU-seconds of
    earlier, killed attempts of the same run (0 when none).
    """
    cfg = setup.config
    keep_best = make_keep_best(setup, model, plan)
    checkpoint, earlier = None, 0.0
    if plan.from_scratch:  # trained like the base model: its data per epoch and its lr
        loader = training_loader(setup.splits, cfg.data, cfg.seed, cfg.model.base_samples_per_epoch)
        config = dataclasses.replace(cfg.finetune, lr=cfg.model.base_lr)
        checkpoint = run_checkpoint(setup, params)
        if checkpoint.is_file():
            saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
            earlier = float(saved["cpu_seconds"])
    else:
        loader, config = setup.train_loader, cfg.finetune
    finetune(
        model,
        loader,
        plan,
        config,
        setup.device,
        keep_best=keep_best,
        checkpoint_path=checkpoint,
    )
    notes = {"keep_best": keep_best.summary()} if keep_best is not None else {}
    return notes, earlier
