"""Selection: pick from a generated pool the subset whose binned statistics match training best.

What both kinds share lives here: the objective's features and counts (``_features``,
``_objective``, ``_mi``, numba ``_kernels`` and ``_heap``), the swap loop (``_swap_rounds``), the
privacy guard (``_guard``, ``_guard_kernels``) and progress lines (``_progress``). The pipelines
are :mod:`synth_core.select.flat` (rows) and :mod:`synth_core.select.sequential` (whole groups).
"""

from synth_core.select._features import FeatureSet
from synth_core.select._guard import GuardSettings, PoolGuard

__all__ = [
    "FeatureSet",
    "GuardSettings",
    "PoolGuard",
]
