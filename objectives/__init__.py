"""Scoring functions of a trial: built-ins and plugged-in objectives."""

from objectives.registry import DIRECTIONS, Objective, available, get_objective, objective

BUILT_IN_METRICS = ("robust_accuracy", "clean_accuracy", "latency_ms", "size_bytes")

__all__ = ["BUILT_IN_METRICS", "DIRECTIONS", "Objective", "available", "get_objective",
           "objective"]
