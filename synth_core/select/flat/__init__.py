"""Flat selection: MI pairs → IPF subset → trimmed subset → refined subset.

``_pipeline`` is the one definition of the pipeline, called by ``synth select`` and by the Dagster
assets; its stages are ``_ipf`` (fit and integerise weights), ``_trim`` (greedy trimming) and
``_refine`` (swap refinement).
"""

from synth_core.select.flat._pipeline import (
    DP_TOP_TRIPLES,
    DPSettings,
    SelectionProblem,
    SelectionSettings,
    dp_targets,
    ipf_sweeps,
    output_table,
    prepare,
    prepare_dp,
    random_subset,
    refine_plan,
    run_selection,
    save_rows,
    stage_ipf,
    stage_mi_pairs,
    stage_refine,
    stage_trim,
    trim_exact,
)

__all__ = [
    "DP_TOP_TRIPLES",
    "DPSettings",
    "SelectionProblem",
    "SelectionSettings",
    "dp_targets",
    "ipf_sweeps",
    "output_table",
    "prepare",
    "prepare_dp",
    "random_subset",
    "refine_plan",
    "run_selection",
    "save_rows",
    "stage_ipf",
    "stage_mi_pairs",
    "stage_refine",
    "stage_trim",
    "trim_exact",
]
