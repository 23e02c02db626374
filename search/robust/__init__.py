"""Robustness: the threat model's attacks, fine-tuning strategies and sanity checks.

Attacks (torchattacks, plus BAP's cut-off-scale attack in `_cutoff_scale`) run on the
differentiable fake-quant view of a model, so quantization cannot mask gradients.
Fine-tuning is standard, adversarial, blind (BAP) or TRADES, optionally keeping its
best epoch (Rice et al. 2020); the sanity checks catch gradient
masking (robust <= clean, large epsilon breaks it, more steps do not help, transfer
from the base is not stronger).
"""

from search.robust._attacks import (
    NORMS,
    AttackFactory,
    clean_accuracy,
    describe,
    final_attacks,
    robust_accuracy,
    search_attacks,
)
from search.robust._budgeted import (
    BudgetState,
    batch_indices,
    cosine_lr,
    finetune_images,
)
from search.robust._cascade import Assessment, TransferSet, assess_attacks, transfer_set
from search.robust._cutoff_scale import CutoffScale
from search.robust._epoch_checkpoint import EpochCheckpoint
from search.robust._finetune import (
    BatchLoss,
    Perturb,
    cutoff_scale_examples,
    finetune,
    make_batch_loss,
    make_perturb,
    run_epochs,
    trades_beta,
    train_base,
    train_step,
)
from search.robust._keep_best import KeepBest
from search.robust._sanity import (
    Check,
    large_epsilon_breaks,
    model_checks,
    more_steps_do_not_help,
    robust_not_above_clean,
    transfer_not_stronger,
    warn_failures,
)
from search.robust._trades import kl_to, trades_examples, trades_loss, trades_objective

__all__ = [
    "Assessment",
    "AttackFactory",
    "BatchLoss",
    "BudgetState",
    "Check",
    "CutoffScale",
    "EpochCheckpoint",
    "KeepBest",
    "NORMS",
    "Perturb",
    "batch_indices",
    "clean_accuracy",
    "cosine_lr",
    "cutoff_scale_examples",
    "describe",
    "final_attacks",
    "finetune",
    "finetune_images",
    "large_epsilon_breaks",
    "make_batch_loss",
    "make_perturb",
    "model_checks",
    "more_steps_do_not_help",
    "robust_accuracy",
    "robust_not_above_clean",
    "run_epochs",
    "search_attacks",
    "train_base",
    "train_step",
    "trades_beta",
    "trades_examples",
    "trades_loss",
    "trades_objective",
    "kl_to",
    "TransferSet",
    "assess_attacks",
    "transfer_not_stronger",
    "transfer_set",
    "warn_failures",
]
