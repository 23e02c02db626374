"""Built-in objectives: the four metrics every trial reports, and extras a study may pick.

Every trial computes robust_accuracy, clean_accuracy, latency_ms and size_bytes (the
per-trial sanity check needs the first two). The extras (flops, params,
robust_accuracy_l2) cost something, so they run only when the config's `objectives`
names them.
"""

from __future__ import annotations

import dataclasses

from objectives.counting import count_flops, count_nonzero_params
from objectives.registry import objective
from search import compress, robust
from search.config import EvaluationConfig
from search.context import TrialContext


@objective("robust_accuracy", direction="maximize")
def robust_accuracy(ctx: TrialContext) -> float:
    """Validation accuracy under the study's fixed evaluation attack."""
    return robust.robust_accuracy(
        ctx.model, ctx.val_loader, ctx.config.evaluation, ctx.device, seed=ctx.seed
    )


@objective("clean_accuracy", direction="maximize")
def clean_accuracy(ctx: TrialContext) -> float:
    """Validation accuracy on unperturbed inputs."""
    return robust.clean_accuracy(ctx.model, ctx.val_loader, ctx.device)


@objective("latency_ms", direction="minimize", deterministic=False)
def latency_ms(ctx: TrialContext) -> float:
    """Median forward time of the fastest deployable form (float or int8 kernels): timed
    now, or with `latency.mode: predicted` the study's latency model's prediction."""
    if ctx.config.latency.mode == "predicted":
        if ctx.latency_model is None:
            raise ValueError("latency.mode predicted needs the study's latency model")
        predicted, form = ctx.latency_model.predict(ctx.model, ctx.config.latency.int8)
        ctx.notes["latency"] = {"predicted_ms": predicted, "form": form}
        return predicted
    calibration = ctx.calibration_images if ctx.train_loader is not None else None
    stats = compress.measure_latency(
        ctx.model, ctx.input_shape, ctx.config.latency, ctx.device, calibration
    )
    ctx.notes["latency"] = {
        "min_ms": stats.min_ms,
        "max_ms": stats.max_ms,
        "form": stats.form,
        "other_forms_ms": stats.other_forms,
    }
    return stats.median_ms


@objective("size_bytes", direction="minimize")
def size_bytes(ctx: TrialContext) -> float:
    """Exact bytes of the exported weights, sub-8-bit weights packed."""
    return float(compress.size_bytes(ctx.model))


@objective("flops", direction="minimize")
def flops(ctx: TrialContext) -> float:
    """FLOPs of one forward pass on one input (multiply-accumulate = 2), counted by torch."""
    return float(count_flops(ctx.model, ctx.input_shape, ctx.device))


@objective("params", direction="minimize")
def params(ctx: TrialContext) -> float:
    """Nonzero parameters of the pruned, quantized model."""
    return float(count_nonzero_params(ctx.model))


@objective("robust_accuracy_l2", direction="maximize")
def robust_accuracy_l2(ctx: TrialContext) -> float:
    """Validation accuracy under L2 PGD at evaluation.l2_epsilon: a second threat model."""
    return robust.robust_accuracy(
        ctx.model, ctx.val_loader, l2_threat(ctx.config.evaluation), ctx.device, seed=ctx.seed
    )


def l2_threat(threat: EvaluationConfig) -> EvaluationConfig:
    """The study's threat model moved to L2 at `l2_epsilon`.

    Same steps and restarts, step size 2.5 * epsilon / steps (Madry et al.'s rule), so the
    second threat model needs no setting of its own beyond its budget.
    """
    return dataclasses.replace(
        threat,
        norm="l2",
        epsilon=threat.l2_epsilon,
        step_size=2.5 * threat.l2_epsilon / threat.steps,
    )
