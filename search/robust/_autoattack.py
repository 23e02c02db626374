"""Standard AutoAttack (Croce and Hein 2020) as its authors run it.

torchattacks' `AutoAttack(version="standard")` builds the right four attacks (APGD-CE,
APGD-T, FAB-T, Square) but leaves APGD, APGD-T and FAB at torchattacks' default of 10
iterations, where the standard version runs 100 (Square: 5,000 queries, which
torchattacks does pass). A number published as "AutoAttack" must come from the 100-step
version, so the project builds it here from the same torchattacks classes. Each attack
runs only on the examples every earlier one left standing (torchattacks' MultiAttack).
"""

from __future__ import annotations

from torch import nn
from torchattacks import APGD, APGDT, FAB, MultiAttack, Square

AUTOATTACK_PARTS = ("APGD-CE", "APGD-T", "FAB-T", "Square")  # `standard_autoattack`'s order
STANDARD_STEPS = 100  # APGD-CE, APGD-T and FAB-T iterations in the standard version
SQUARE_QUERIES = 5000


def standard_autoattack(
    model: nn.Module,
    norm: str,
    eps: float,
    n_classes: int = 10,
    seed: int = 0,
    steps: int = STANDARD_STEPS,
    queries: int = SQUARE_QUERIES,
) -> MultiAttack:
    """APGD-CE, APGD-T (all other classes as targets), FAB-T and Square (AUTOATTACK_PARTS,
    its `.attacks` one by one); `norm` is torchattacks' spelling ("Linf" or "L2"). Leave
    `steps` and `queries` at the standard version's budgets for any number called
    AutoAttack (tests shrink them for speed)."""
    return MultiAttack(
        [
            APGD(model, norm=norm, eps=eps, steps=steps, loss="ce", seed=seed),
            APGDT(model, norm=norm, eps=eps, steps=steps, n_classes=n_classes, seed=seed),
            FAB(
                model,
                norm=norm,
                eps=eps,
                steps=steps,
                multi_targeted=True,
                n_classes=n_classes,
                seed=seed,
            ),
            Square(model, norm=norm, eps=eps, n_queries=queries, seed=seed),
        ]
    )
