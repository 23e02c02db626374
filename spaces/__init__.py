"""Search spaces: which knobs a study searches, and their ranges.

`expand` and `decode` serve both the built-in space (spaces.layerwise) and a user space
named by import path in `space.factory` (spaces.custom documents the contract).
"""

from spaces.custom import Space, decode, expand
from spaces.params import Param, Plan

__all__ = ["Param", "Plan", "Space", "decode", "expand"]
