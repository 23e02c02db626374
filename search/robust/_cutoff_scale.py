"""Blind adversarial pruning's cut-off-scale attack, as a torchattacks `Attack`.

Blind Adversarial Pruning: Balance Accuracy, Efficiency and Robustness
(Ye et al., arXiv 2004.05913). [https://arxiv.org/abs/2004.05913]

Distance Measure: Linf

Adversarial training at a fixed epsilon makes pruned models' robustness depend heavily
on that epsilon. BAP instead lets each sample find its own budget: signed-gradient
steps of size 2.5 * eps / steps inside the eps ball, frozen at the first step where the
sample is misclassified (the cut-off), then scaled by `scale` < 1, which puts the
example just inside the decision boundary it found. Samples that never cross keep their
last perturbation; samples already misclassified get none. `eps` only bounds the
budget. Fine-tuning (strategy "blind") trains on these examples.

Arguments:
    model (nn.Module): model to attack (pixels in [0, 1] in, logits out).
    eps (float): the largest perturbation (Linf).
    steps (int): number of signed-gradient steps.
    scale (float): factor (0 < scale < 1) applied to each cut-off perturbation.

Examples::
    >>> attack = CutoffScale(model, eps=0.1, steps=3, scale=0.8)
    >>> adv_images = attack(images, labels)
"""

from __future__ import annotations

import torch
from torch import nn
from torchattacks.attack import Attack


class CutoffScale(Attack):
    """BAP's cut-off-scale examples (see the module docstring for the paper and model)."""

    def __init__(
        self, model: nn.Module, eps: float = 8 / 255, steps: int = 10, scale: float = 0.8
    ) -> None:
        super().__init__("CutoffScale", model)
        self.eps = eps
        self.steps = steps
        self.scale = scale
        self.supported_mode = ["default"]

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        images = images.clone().detach().to(self.device)
        labels = labels.clone().detach().to(self.device)
        step = 2.5 * self.eps / self.steps
        delta = torch.zeros_like(images)
        cut = torch.zeros_like(images)
        with torch.no_grad():
            active = self.get_logits(images).argmax(1) == labels  # wrong ones: no change
        for _ in range(self.steps):
            if not active.any():
                break
            delta.requires_grad_(True)
            loss = nn.functional.cross_entropy(self.get_logits(images + delta), labels)
            (grad,) = torch.autograd.grad(loss, delta)
            with torch.no_grad():
                moved = (delta + step * grad.sign()).clamp(-self.eps, self.eps)
                moved = (images + moved).clamp(0, 1) - images
                delta = torch.where(active.view(-1, 1, 1, 1), moved, delta.detach())
                crossed = active & (self.get_logits(images + delta).argmax(1) != labels)
                cut[crossed] = delta[crossed]
                active &= ~crossed
        cut[active] = delta[active].detach()
        return (images + self.scale * cut).clamp(0, 1).detach()
