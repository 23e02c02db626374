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
        robust_after_each,
        search_attacks,
    )
    from search.robust._autoattack import AUTOATTACK_PARTS, standard_autoattack
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

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
