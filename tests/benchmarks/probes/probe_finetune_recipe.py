"""Probe: the fine-tuning recipe at one fixed compression: PGD, TRADES, blind; last epoch
against the best epoch (keep_best, Rice et al. 2020).

Compresses the preset's base model uniformly (sparsity 0.5, 8 bits) and fine-tunes it
by epochs at eps 0.1 (the preset's `finetune` section: lr, steps, images per epoch) with
each strategy. Every run scores each epoch on the keep-best held-out images (the first
`finetune.keep_best_samples` validation images, the study's search attack) and ends
with both models: the last epoch's and the best epoch's. Scoring restores the random
generator, so keeping the best does not change the run: one run gives both rows.

    python tests/benchmarks/probes/probe_finetune_recipe.py [--preset fashion-mnist-small]
        [--epochs N] [--variants JSON] [--set FIELD=VALUE ...] [--log PATH]

VARIANTS: a JSON list of {"strategy": ..., FinetuneConfig fields...}; the default is PGD,
TRADES at beta 1 and 6, and blind. Prints one JSON line per epoch and a table per model
(validation robust / clean, as trials are scored, and the same on the test subset, which
keep-best never saw); the same lines go to the log (default
tests/benchmarks/results/probe_finetune_recipe-PRESET.log).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Subset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/benchmarks
from paper_protocol import paper_pgd  # noqa: E402

from search.compress import size_bytes
from search.config import read_config
from search.robust import KeepBest, clean_accuracy, finetune, robust_accuracy
from search.study import StudySetup, compress
from search.zoo import load_splits, make_loader
from spaces import Plan

DEFAULT_VARIANTS = [
    {"strategy": "adversarial"},
    {"strategy": "trades", "trades_beta": 1.0},
    {"strategy": "trades", "trades_beta": 6.0},
    {"strategy": "blind"},
]
# variant keys that set the compression plan (default sparsity 0.5, 8 bits, eps 0.1);
# every other key but the strategy is a FinetuneConfig field
PLAN_KEYS = ("strategy", "sparsity", "bits", "epsilon")
RESULTS = Path(__file__).resolve().parents[1] / "results"


class Log:
    """Print a line and keep it in the log file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = path.open("a")

    def __call__(self, line: str) -> None:
        print(line, flush=True)
        self.file.write(line + "\n")
        self.file.flush()


def scores(
    setup: StudySetup, model: torch.nn.Module, test: Any, paper_images: Any
) -> dict[str, float]:
    cfg, device = setup.config, setup.device
    paper_robust, paper_clean = paper_pgd(model, paper_images)
    return {
        "val_robust": robust_accuracy(model, setup.val_loader, cfg.evaluation, device, cfg.seed),
        "val_clean": clean_accuracy(model, setup.val_loader, device),
        "test_robust": robust_accuracy(model, test, cfg.evaluation, device, cfg.seed),
        "test_clean": clean_accuracy(model, test, device),
        "paper_robust": paper_robust,  # the paper's own protocol (paper_protocol.py)
        "paper_clean": paper_clean,
        "paper_images": len(paper_images),
    }


def run_variant(
    setup: StudySetup, variant: dict[str, Any], epochs: int, test: Any, paper: Any, log: Log
) -> list[dict[str, Any]]:
    cfg = setup.config
    recipe = {k: v for k, v in variant.items() if k not in PLAN_KEYS}
    config = dataclasses.replace(cfg.finetune, **recipe)
    plan = Plan(
        sparsity={name: variant.get("sparsity", 0.5) for name in setup.prunable},
        bits={name: variant.get("bits", 8) for name in setup.quantizable},
        epsilon=variant.get("epsilon", 0.1),
        epochs=epochs,
        strategy=variant["strategy"],
    )
    torch.manual_seed(0)
    model = compress(setup.base_model, plan, setup.input_shape, setup.device)
    val = setup.val_loader.dataset
    count = min(config.keep_best_samples, len(val))  # type: ignore[arg-type]
    held_out = make_loader(Subset(val, range(count)), 256)

    last: dict[str, torch.Tensor] = {}

    def held_out_robust(candidate: torch.nn.Module) -> float:
        last.update({k: v.detach().clone() for k, v in candidate.state_dict().items()})
        value = robust_accuracy(candidate, held_out, cfg.evaluation, setup.device, cfg.seed)
        log(json.dumps({**variant, "epoch": len(keep.scores) + 1, "held_out_robust": value}))
        return value

    keep = KeepBest(model, held_out_robust)
    loader = make_loader(
        setup.splits.train,
        cfg.data.batch_size,
        shuffle=True,
        seed=cfg.seed,
        samples_per_epoch=config.samples_per_epoch,
    )
    start = time.process_time()
    finetune(model, loader, plan, config, setup.device, keep_best=keep)
    cpu = time.process_time() - start  # keep-best's held-out scoring included
    best = {"keep_best": True, "epoch": keep.best_epoch, **scores(setup, model, test, paper)}
    model.load_state_dict(last)
    final = {"keep_best": False, "epoch": epochs, **scores(setup, model, test, paper)}
    size = size_bytes(model)  # packed: the pruned shapes at the plan's bits
    return [{**variant, **row, "cpu": round(cpu), "size_bytes": size} for row in (final, best)]


def table(rows: list[dict[str, Any]]) -> list[str]:
    header = (
        "| variant | keep_best | epoch | val robust | val clean | test robust | test clean "
        "| paper protocol (robust / clean) |"
    )
    lines = [header, "|---|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        name = row["strategy"] + "".join(
            f" {key} {row[key]:g}" for key in ("trades_beta", *PLAN_KEYS[1:]) if key in row
        )
        lines.append(
            f"| {name} | {'yes' if row['keep_best'] else 'no'} | {row['epoch']} | "
            f"{row['val_robust']:.3f} | {row['val_clean']:.3f} | "
            f"{row['test_robust']:.3f} | {row['test_clean']:.3f} | "
            f"{row['paper_robust']:.3f} / {row['paper_clean']:.3f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="fashion-mnist-small")
    parser.add_argument("--epochs", type=int, help="default: the preset's space.epochs max")
    parser.add_argument("--variants", type=json.loads, default=DEFAULT_VARIANTS)
    parser.add_argument("--set", action="append", default=[], help="FIELD=VALUE (JSON)")
    parser.add_argument("--log", type=Path)
    parser.add_argument(
        "--paper-all",
        action="store_true",
        help="score the paper's protocol on the whole test split (default: the preset's subset)",
    )
    args = parser.parse_args()
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = json.loads(value)
    config = read_config(preset=args.preset, overrides=overrides)
    epochs = args.epochs or max(config.space.epochs)
    log = Log(args.log or RESULTS / f"probe_finetune_recipe-{args.preset}.log")
    log(
        f"# {time.strftime('%Y-%m-%d %H:%M:%S')} preset {args.preset}, {epochs} epochs, "
        f"overrides {overrides}, load average {os.getloadavg()}, "
        f"threads {torch.get_num_threads()}"
    )
    start = time.process_time()
    setup = StudySetup.build(config)
    log(f"# setup cpu-s {time.process_time() - start:.0f}")
    test = make_loader(setup.splits.test, 256)  # the preset's test subset (test_samples)
    paper = setup.splits.test
    if args.paper_all:  # all 10,000 of Fashion-MNIST, as the protocol asks
        whole = dataclasses.replace(config.data, test_samples=None)
        paper = load_splits(whole, config.seed).test
    rows = []
    for variant in args.variants:
        for row in run_variant(setup, variant, epochs, test, paper, log):
            log(json.dumps(row))
            rows.append(row)
    for line in table(rows):
        log(line)
    log(f"# load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
