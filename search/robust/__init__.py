"""Robustness: the threat model's attacks, fine-tuning strategies and sanity checks.

Attacks (torchattacks, plus BAP's cut-off-scale attack in `_cutoff_scale`) run on the
differentiable fake-quant view of a model, so quantization cannot mask gradients.
Fine-tuning is standard, adversarial, blind (BAP) or TRADES, optionally keeping its
best epoch (Rice et al. 2020); the sanity checks catch gradient
masking (robust <= clean, large epsilon breaks it, more steps do not help, transfer
from the base is not stronger).
"""

from typing import TYPE_CHECKING

from search.core._lazy import lazy_exports

if TYPE_CHECKING:
    from search.robust._attacks import (
        AttackFactory,
        clean_accuracy,
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
    from search.robust._threat_model import NORMS, describe
    from search.robust._trades import kl_to, trades_examples, trades_loss, trades_objective

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "NORMS": ("search.robust._threat_model", "NORMS"),
        "AttackFactory": ("search.robust._attacks", "AttackFactory"),
        "clean_accuracy": ("search.robust._attacks", "clean_accuracy"),
        "describe": ("search.robust._threat_model", "describe"),
        "final_attacks": ("search.robust._attacks", "final_attacks"),
        "robust_accuracy": ("search.robust._attacks", "robust_accuracy"),
        "search_attacks": ("search.robust._attacks", "search_attacks"),
        "BudgetState": ("search.robust._budgeted", "BudgetState"),
        "batch_indices": ("search.robust._budgeted", "batch_indices"),
        "cosine_lr": ("search.robust._budgeted", "cosine_lr"),
        "finetune_images": ("search.robust._budgeted", "finetune_images"),
        "Assessment": ("search.robust._cascade", "Assessment"),
        "TransferSet": ("search.robust._cascade", "TransferSet"),
        "assess_attacks": ("search.robust._cascade", "assess_attacks"),
        "transfer_set": ("search.robust._cascade", "transfer_set"),
        "CutoffScale": ("search.robust._cutoff_scale", "CutoffScale"),
        "EpochCheckpoint": ("search.robust._epoch_checkpoint", "EpochCheckpoint"),
        "BatchLoss": ("search.robust._finetune", "BatchLoss"),
        "Perturb": ("search.robust._finetune", "Perturb"),
        "cutoff_scale_examples": ("search.robust._finetune", "cutoff_scale_examples"),
        "finetune": ("search.robust._finetune", "finetune"),
        "make_batch_loss": ("search.robust._finetune", "make_batch_loss"),
        "make_perturb": ("search.robust._finetune", "make_perturb"),
        "run_epochs": ("search.robust._finetune", "run_epochs"),
        "trades_beta": ("search.robust._finetune", "trades_beta"),
        "train_base": ("search.robust._finetune", "train_base"),
        "train_step": ("search.robust._finetune", "train_step"),
        "KeepBest": ("search.robust._keep_best", "KeepBest"),
        "Check": ("search.robust._sanity", "Check"),
        "large_epsilon_breaks": ("search.robust._sanity", "large_epsilon_breaks"),
        "model_checks": ("search.robust._sanity", "model_checks"),
        "more_steps_do_not_help": ("search.robust._sanity", "more_steps_do_not_help"),
        "robust_not_above_clean": ("search.robust._sanity", "robust_not_above_clean"),
        "transfer_not_stronger": ("search.robust._sanity", "transfer_not_stronger"),
        "warn_failures": ("search.robust._sanity", "warn_failures"),
        "kl_to": ("search.robust._trades", "kl_to"),
        "trades_examples": ("search.robust._trades", "trades_examples"),
        "trades_loss": ("search.robust._trades", "trades_loss"),
        "trades_objective": ("search.robust._trades", "trades_objective"),
    },
)

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
