"""The gate's one driver: an evaluated output in, the three checks' verdict out.

``synth select`` and the pipelines' ``refined_output`` evaluate what they must (the CLI every
stage, for its table; the pipelines the output with the report's details) and hand the output's
evaluation, the random pool sample's accuracy and the integrity inputs to :func:`judge`. What they
do with the :class:`Verdict` (print it and set the exit status; record it as Dagster check results)
is theirs; which figures feed which check is decided here only:

* ``accuracy_floor``: the output's accuracy against the floor and the random pool sample's accuracy;
* ``privacy_gate``: the output's privacy figures, judged with the given settings; not evaluated
  (None) when the evaluation has none (no holdout);
* ``integrity``: the output table against training's schema and the target, the selected indices
  against the pool: rows for flat data, groups (with their lengths) when a group key is given.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from synth_core.metrics._accuracy import AccuracyReport
from synth_core.metrics._evaluate import Evaluation
from synth_core.metrics._gate import CHECKS, CheckResult, GateSettings, accuracy_floor, integrity, privacy_gate


@dataclass(frozen=True)
class Verdict:
    """The three checks of the gate, in :data:`CHECKS` order.

    Attributes
    ----------
    checks : tuple of CheckResult or None
        ``accuracy_floor``, ``privacy_gate``, ``integrity``; None for a check that was not
        evaluated (``privacy_gate`` without a holdout), which does not fail the verdict.
    """

    checks: tuple[CheckResult | None, ...]

    def __post_init__(self) -> None:
        names = tuple(name if check is None else check.name for name, check in zip(CHECKS, self.checks))
        if len(self.checks) != len(CHECKS) or names != CHECKS:
            raise ValueError(f"a verdict holds the checks {CHECKS} in this order, got {names}")

    @property
    def passed(self) -> bool:
        """Every evaluated check passed."""
        return all(check is None or check.passed for check in self.checks)

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        """The checks that failed, in :data:`CHECKS` order."""
        return tuple(check for check in self.checks if check is not None and not check.passed)

    @property
    def reasons(self) -> tuple[str, ...]:
        """One line per failed check: ``"<name>: <reasons joined by '; '>"``; empty when passed."""
        return tuple(f"{check.name}: {check.description}" for check in self.failed)

    def items(self) -> Iterator[tuple[str, CheckResult | None]]:
        """(name, check) pairs in :data:`CHECKS` order."""
        return zip(CHECKS, self.checks)

    def __getitem__(self, name: str) -> CheckResult | None:
        return self.checks[CHECKS.index(name)]

    def to_dict(self) -> dict[str, dict[str, Any] | None]:
        """``{name: {"passed": bool, "reasons": [...]} or None}``, the form ``synth select --json`` prints."""
        return {name: None if check is None else check.to_dict() for name, check in self.items()}


def judge(
    output: Evaluation,
    random_sample: Evaluation | AccuracyReport | Mapping[str, Any] | None,
    *,
    final: pd.DataFrame,
    training: pd.DataFrame,
    target: int,
    selected: np.ndarray,
    n_pool: int,
    group_key: str | None = None,
    settings: GateSettings | None = None,
) -> Verdict:
    """Judge an output with the gate's three checks.

    Parameters
    ----------
    output : Evaluation
        The output's evaluation (:func:`synth_core.metrics.evaluate`, seeded with
        ``settings.eval_seed``): its accuracy feeds ``accuracy_floor``, its privacy figures
        ``privacy_gate`` (not evaluated when None: no holdout).
    random_sample : Evaluation, AccuracyReport or mapping, optional
        The accuracy of a random pool sample of the output's size (an evaluation, its accuracy
        report or that report's ``to_dict()``); the output must reach it. None skips that rule.
    final : DataFrame
        The output table, as judged (typed like training).
    training : DataFrame
        Training: its columns and dtypes (and, for sequences, its group lengths) are the reference.
    target : int
        Rows (flat) or groups (sequences) the output must have.
    selected : ndarray
        The selected pool rows (flat) or groups (sequences).
    n_pool : int
        Rows (groups) in the pool.
    group_key : str, optional
        Sequential data: the group column.
    settings : GateSettings, optional
        Thresholds (default: :class:`GateSettings`'s).

    Returns
    -------
    Verdict
    """
    settings = settings or GateSettings()
    return Verdict((
        accuracy_floor(output.accuracy.to_dict(), _accuracy_fields(random_sample), settings),
        None if output.privacy is None else privacy_gate(output.privacy, settings),
        integrity(final, training, target=target, rows=selected, n_pool=n_pool, group_key=group_key),
    ))


def _accuracy_fields(sample: Evaluation | AccuracyReport | Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if isinstance(sample, Evaluation):
        sample = sample.accuracy
    return sample.to_dict() if isinstance(sample, AccuracyReport) else sample
