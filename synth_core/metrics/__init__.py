"""The metric engine: accuracy exactly as mostlyai-qa defines it, privacy (distances, copies, the
membership audit), the publication gate and the one-call evaluation.

Private modules, in the order data flows through them: ``_binning`` (the metric's discretisation),
``_sampling`` (qa's view of a table), ``_contingency`` (numba kernels of binned tables),
``_accuracy`` (univariate … coherence), ``_units`` (the rows or sequences privacy compares),
``_nn_kernels`` and ``_privacy`` (exact nearest neighbours, DCR, NNDR, copies), ``_membership``
(the attacks), ``_gate`` (thresholds and verdicts), ``_evaluate`` (everything for
``synth evaluate``), ``_judge`` (the gate's one driver: an evaluated output in, the three
checks out).
"""

# The rows or sequences privacy compares; the selection guard encodes its units the same way.
from synth_core.metrics import _units as units
from synth_core.metrics._accuracy import FIELDS, accuracy, codes_accuracy
from synth_core.metrics._binning import NA_BIN, OTHER_BIN, Binner, ColumnBins, column_kind, fit_column
from synth_core.metrics._evaluate import check_inputs, evaluate, format_evaluation
from synth_core.metrics._gate import CHECKS, CheckResult, GateSettings, accuracy_floor, integrity, privacy_gate
from synth_core.metrics._judge import Verdict, judge
from synth_core.metrics._membership import near_copies
from synth_core.metrics._privacy import exact_copies, privacy_metrics
from synth_core.metrics._sampling import MAX_COLUMNS, SEQUENCE_LENGTH, coerce_like, harmonise

__all__ = [
    "Binner",
    "CHECKS",
    "CheckResult",
    "ColumnBins",
    "FIELDS",
    "GateSettings",
    "MAX_COLUMNS",
    "NA_BIN",
    "OTHER_BIN",
    "SEQUENCE_LENGTH",
    "Verdict",
    "accuracy",
    "accuracy_floor",
    "check_inputs",
    "codes_accuracy",
    "coerce_like",
    "column_kind",
    "evaluate",
    "exact_copies",
    "fit_column",
    "format_evaluation",
    "harmonise",
    "integrity",
    "judge",
    "near_copies",
    "privacy_gate",
    "privacy_metrics",
    "units",
]
