"""The study's threat model in words, for headers and logs (no torch needed to say it)."""

from __future__ import annotations

from search.config import EvaluationConfig

NORMS = {"linf": "Linf", "l2": "L2"}


def describe(threat: EvaluationConfig, final: bool = False) -> str:
    """One line naming the threat model, e.g. 'PGD-10 x1 restart, Linf eps=0.1'."""
    norm = f"{NORMS[threat.norm]} eps={threat.epsilon:g}"
    if not final:
        return f"PGD-{threat.steps} (step {threat.step_size:g}) x{threat.restarts}, {norm}"
    if threat.final_attack == "apgd":
        return f"APGD-CE + APGD-DLR ({threat.final_steps} steps x{threat.final_restarts}), {norm}"
    if threat.final_attack == "autoattack":
        return f"AutoAttack (standard: 100 APGD/FAB steps, 5,000 Square queries), {norm}"
    return f"PGD-{threat.final_steps} x{threat.final_restarts} restarts, {norm}"
