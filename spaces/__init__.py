"""Search spaces: which knobs a study searches, and their ranges."""

from spaces.layerwise import decode, expand
from spaces.params import Param, Plan

__all__ = ["Param", "Plan", "decode", "expand"]
