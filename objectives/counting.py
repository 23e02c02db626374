"""Counting what a compressed model costs: FLOPs of one forward pass, nonzero parameters.

Both count the deployable form (`search.latency.deployable`: pruned channels gone,
quantized values baked into plain weights), a copy, so the trial's model is untouched
and the numbers are those of what ships. They are exact and repeatable, unlike latency,
which makes them good objectives when timing on the search machine says little about
the target device.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where the counting happens: the registry stays light
    import torch
    from torch import nn


def count_flops(
    model: nn.Module, input_shape: tuple[int, ...], device: torch.device | str = "cpu"
) -> int:
    """Floating-point operations of one forward pass on one input, as torch counts them.

    torch.utils.flop_counter counts matrix products and convolutions, a
    multiply-accumulate as 2 operations; element-wise work (ReLU, BatchNorm, pooling) is
    not counted, as is usual for FLOP figures.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from search.compress import deployable

    module = deployable(model).to(device)
    example = torch.zeros(1, *input_shape, device=device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(example)
    return int(counter.get_total_flops())


def count_nonzero_params(model: nn.Module) -> int:
    """Parameters of the deployable form that are not zero (weights on their quantized grid).

    Pruned channels are gone, and a weight that quantization rounds to zero is not counted,
    so this is what a sparse format would have to store.
    """
    import torch

    from search.compress import deployable

    return sum(int(torch.count_nonzero(p)) for p in deployable(model).parameters())
