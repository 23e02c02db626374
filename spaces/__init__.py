"""Search spaces: which knobs a study searches, and their ranges.

`expand` and `decode` (spaces.space) serve both the built-in space (spaces.layerwise)
and a user space named by import path in `space.factory` (spaces.user documents the
contract). Parameters are typed per kind: `FloatParam`, `IntParam`, `CategoricalParam`.
"""

from spaces.params import CategoricalParam, FloatParam, IntParam, Param, Plan, Space, make_param
from spaces.space import decode, expand

__all__ = [
    "CategoricalParam",
    "FloatParam",
    "IntParam",
    "Param",
    "Plan",
    "Space",
    "decode",
    "expand",
    "make_param",
]
