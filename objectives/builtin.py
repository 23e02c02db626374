"""Built-in objectives: the four metrics every trial reports."""

from __future__ import annotations

from objectives.registry import objective
from search import evaluation, latency, packing
from search.context import TrialContext


@objective("robust_accuracy", direction="maximize")
def robust_accuracy(ctx: TrialContext) -> float:
    """Validation accuracy under the study's fixed evaluation attack."""
    return evaluation.robust_accuracy(ctx.model, ctx.val_loader, ctx.config.evaluation,
                                      ctx.device, seed=ctx.seed)


@objective("clean_accuracy", direction="maximize")
def clean_accuracy(ctx: TrialContext) -> float:
    """Validation accuracy on unperturbed inputs."""
    return evaluation.clean_accuracy(ctx.model, ctx.val_loader, ctx.device)


@objective("latency_ms", direction="minimize")
def latency_ms(ctx: TrialContext) -> float:
    """Median forward time of the fastest deployable form (float or int8 kernels)."""
    calibration = ctx.calibration_images if ctx.train_loader is not None else None
    stats = latency.measure_latency(ctx.model, ctx.input_shape, ctx.config.latency, ctx.device,
                                    calibration)
    ctx.notes["latency"] = {"min_ms": stats.min_ms, "max_ms": stats.max_ms, "form": stats.form,
                            "other_forms_ms": stats.other_forms}
    return stats.median_ms


@objective("size_bytes", direction="minimize")
def size_bytes(ctx: TrialContext) -> float:
    """Exact bytes of the exported weights, sub-8-bit weights packed."""
    return float(packing.size_bytes(ctx.model))
