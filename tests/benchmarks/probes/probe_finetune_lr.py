"""Probe: the fine-tuning recipe at one fixed compression, to choose the preset's lr.

Compresses the preset's base model uniformly (sparsity 0.5, 8 bits), fine-tunes it
adversarially at eps 0.1 by images seen (cosine over the budget, as the rungs do) and
prints validation robust (search attack) and clean accuracy per variant:

    python tests/benchmarks/probes/probe_finetune_lr.py [OVERRIDES] [VARIANTS] [BUDGET]

OVERRIDES: JSON of dotted config fields; VARIANTS: JSON list of FinetuneConfig fields,
e.g. '[{"lr": 0.001}, {"lr": 0.003}]'; BUDGET: training images (default 18000).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time

import torch

from search.config import read_config
from search.robust import clean_accuracy, finetune_images, robust_accuracy
from search.study._setup import StudySetup
from search.study._trial import compress
from spaces import Plan


def main() -> None:
    overrides = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    variants = json.loads(sys.argv[2]) if len(sys.argv) > 2 else [{"lr": 0.001}]
    budget = int(sys.argv[3]) if len(sys.argv) > 3 else 18000
    config = read_config(preset="fashion-mnist", overrides=overrides)
    start = time.process_time()
    setup = StudySetup.build(config)
    print("setup cpu-s", round(time.process_time() - start), flush=True)
    base_clean = clean_accuracy(setup.base_model, setup.val_loader, setup.device)
    print("base clean val", base_clean, flush=True)
    plan = Plan(
        sparsity={name: 0.5 for name in setup.prunable},
        bits={name: 8 for name in setup.quantizable},
        epsilon=0.1,
        strategy="adversarial",
    )
    for variant in variants:
        torch.manual_seed(0)
        model = compress(setup.base_model, plan, setup.input_shape, setup.device)
        recipe = dataclasses.replace(config.finetune, **variant)
        start = time.process_time()
        state = None
        for mark in sorted({b for b in (6000, budget) if b <= budget}):
            state = finetune_images(
                model,
                setup.splits.train,
                plan,
                recipe,
                setup.device,
                until=mark,
                total=budget,
                batch_size=config.data.batch_size,
                seed=1,
                state=state,
            )
            row = {
                **variant,
                "images": mark,
                "robust": robust_accuracy(model, setup.val_loader, config.evaluation, setup.device),
                "clean": clean_accuracy(model, setup.val_loader, setup.device),
                "cpu": round(time.process_time() - start),
            }
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
