"""TRADES: the clean loss plus beta times the KL divergence to the worst nearby point.

Zhang et al. 2019, "Theoretically Principled Trade-off between Robustness and Accuracy"
(arXiv 1901.08573). Distance Measure: Linf.

    loss = CE(f(x), y) + beta * KL(f(x) || f(x'))

where x' maximises the same KL inside the epsilon ball: PGD on the KL (not on the label
loss), from a small random start (the KL's gradient at x' = x is zero), with the
project's step size 2.5 * epsilon / steps, projected on the ball and on [0, 1]. The
inner maximisation runs in eval mode (batch-norm statistics untouched, as in the
paper's code); the outer loss in the mode the caller set. beta trades clean accuracy
(small) against robustness (large); the paper's best is 6.

Weights train through the fake-quant parametrizations like every other strategy, and
the random start draws from torch's global generator, which the budgeted fine-tune
saves and restores, so TRADES resumes exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

RANDOM_START = 0.001  # the paper's code: x + 0.001 * N(0, 1)


def kl_to(clean_logits: torch.Tensor, other_logits: torch.Tensor) -> torch.Tensor:
    """KL(p_clean || p_other), summed over classes and averaged over the batch."""
    return F.kl_div(
        F.log_softmax(other_logits, dim=1),
        F.softmax(clean_logits, dim=1),
        reduction="batchmean",
    )


def trades_examples(
    model: nn.Module, images: torch.Tensor, epsilon: float, steps: int
) -> torch.Tensor:
    """The points x' in the Linf ball of `epsilon` around `images` that maximise
    KL(f(x) || f(x')) after `steps` signed-gradient steps (the model's mode is kept)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            clean = model(images)
        step_size = 2.5 * epsilon / steps
        adversarial = images + RANDOM_START * torch.randn_like(images)
        adversarial = adversarial.clamp(0.0, 1.0).detach()
        for _ in range(steps):
            adversarial.requires_grad_(True)
            loss = kl_to(clean, model(adversarial))
            (grad,) = torch.autograd.grad(loss, adversarial)
            adversarial = adversarial.detach() + step_size * grad.sign()
            adversarial = torch.min(torch.max(adversarial, images - epsilon), images + epsilon)
            adversarial = adversarial.clamp(0.0, 1.0).detach()
    finally:
        model.train(was_training)
    return adversarial


def trades_loss(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    epsilon: float,
    steps: int,
    beta: float,
) -> torch.Tensor:
    """TRADES' training loss of one batch (crafts its own x')."""
    adversarial = trades_examples(model, images, epsilon, steps)
    return trades_objective(model, images, adversarial, labels, beta)


def trades_objective(
    model: nn.Module,
    images: torch.Tensor,
    adversarial: torch.Tensor,
    labels: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """CE(f(x), y) + beta * KL(f(x) || f(x')) for given x' (what TRADES minimises)."""
    clean = model(images)
    return F.cross_entropy(clean, labels) + beta * kl_to(clean, model(adversarial))
