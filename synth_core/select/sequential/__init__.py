"""Sequential selection: whole groups of a pool, coherence pre-selection then group swaps.

``_pipeline`` is the one definition of the pipeline, called by ``synth select --group-key`` and by
the Dagster assets; ``_sequences`` encodes groups as the metric sees them, ``_coherence`` picks
coherent groups, ``_group_refine`` (with numba ``_group_kernels``) swaps whole groups.
"""

from synth_core.select.sequential._pipeline import (
    SequentialPlan,
    SequentialSettings,
    groups_table,
    prepare_groups,
    random_stage,
    select_groups,
    stage_coherence,
    stage_group_refine,
)
from synth_core.select.sequential._sequences import GroupLayout, build_problem, random_groups

__all__ = [
    "GroupLayout",
    "SequentialPlan",
    "SequentialSettings",
    "build_problem",
    "groups_table",
    "prepare_groups",
    "random_groups",
    "random_stage",
    "select_groups",
    "stage_coherence",
    "stage_group_refine",
]
