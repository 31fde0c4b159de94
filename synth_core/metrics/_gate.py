"""The publication gate: three checks, their thresholds, and one place for the defaults.

The pipelines (``refined_output``'s blocking checks), ``synth evaluate --json`` (its
``privacy_gate``) and ``synth select`` judge an output with these functions, so a table passes
or fails the same way everywhere; the pipelines and ``synth select`` drive all three through one
call, :func:`synth_core.metrics._judge.judge`. Each check returns a :class:`CheckResult`.

``accuracy_floor``
    ``overall`` ≥ the floor (``accuracy_floor``, or ``overall_max − floor_margin`` when unset)
    and ≥ the overall accuracy of a random pool sample of the same size (when given).
``privacy_gate``
    The distance rules are two-sided: an output measurably *farther* from training than from
    unseen records marks members as surely as one pulled towards training (an attacker who
    knows a similarity filter ran flips the score), so ``dcr_share`` and the membership audit
    fail in either direction. The exact-copy rule stays one-sided: its interval is calibrated to
    about 2.5-5 % false alarms on fair splits (``bench_exact_copy_gate.py``), and a mirror at
    the same level would double them; a deficit of copies shows in the audit and ``dcr_share``.

    * ``dcr_share`` ≤ ``max_dcr_share`` (0.52, the MOSTLY AI Prize's rule), judged only when the
      share's 95 % interval lies above 0.5, so that small holdouts do not fail by chance; and
      its mirror, ``dcr_share`` ≥ 1 − ``max_dcr_share`` unless the interval covers 0.5;
    * ``nndr_ratio`` ≥ ``min_nndr_ratio`` (0.5, the Prize's rule);
    * exact copies: fails when the data show, at 95 % confidence, more copies of training than
      of the holdout once both are size-matched (the lower end of ``exact_copy_excess_ci`` above
      ``exact_copy_tolerance``, 0), for rows and for whole sequences. Raw shares are no rule: a
      larger training table holds more of the values discrete data repeat, and a holdout of a
      few hundred units leaves a share ±0.02 of noise. Calibration:
      ``benchmarks/bench_exact_copy_gate.py``;
    * the membership audit: fails when the lower end of ``membership_auc_two_sided_ci``
      exceeds ``max_membership_auc`` (0.52), i.e. when the data show with 95 % confidence that
      an attacker holding the synthetic table, free to read "close" or "far" as "member" (the
      direction chosen on one fold, measured on the other), separates training records from
      unseen ones better than AUC 0.52. A rule on the interval, not on the value, keeps small
      holdouts (wide intervals) from failing by chance while large ones (narrow intervals)
      catch small leaks. Calibration: ``benchmarks/bench_privacy_audit.py`` (``docs/metrics.md``).
``integrity``
    Row (group) count equals the target, schema and dtypes equal training's, selected pool
    indices unique and inside the pool; for sequences no empty group and lengths within
    training's range.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

CHECKS = ("accuracy_floor", "privacy_gate", "integrity")


@dataclass(frozen=True)
class GateSettings:
    """Every threshold of the gate, with its default.

    Attributes
    ----------
    accuracy_floor : float or None, default None
        Minimum overall accuracy; None means ``overall_max − floor_margin``.
    floor_margin : float, default 0.03
        How far below qa's ``overall_max`` (the accuracy a holdout-sized real sample reaches)
        the default floor lies.
    max_dcr_share : float, default 0.52
    min_nndr_ratio : float, default 0.5
    exact_copy_tolerance : float, default 0.0
        Fail on exact copies (rows, and whole sequences) when the 95 % interval of the
        size-matched excess of training's copies over the holdout's lies entirely above it.
    max_membership_auc : float, default 0.52
        Fail when the 95 % interval of the membership AUC lies entirely above it.
    eval_seed : int, default 1
        Seed of the evaluation (qa's ``set_random_state``, privacy samples).
    """

    accuracy_floor: float | None = None
    floor_margin: float = 0.03
    max_dcr_share: float = 0.52
    min_nndr_ratio: float = 0.5
    exact_copy_tolerance: float = 0.0
    max_membership_auc: float = 0.52
    eval_seed: int = 1

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> GateSettings:
        """Settings from a mapping (a run's merged config, say); other keys are ignored and
        missing ones keep their defaults."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


@dataclass(frozen=True)
class CheckResult:
    """The verdict of one check.

    Attributes
    ----------
    name : str
        ``accuracy_floor``, ``privacy_gate`` or ``integrity``.
    passed : bool
    reasons : tuple of str
        One line per failed condition, with the value and the threshold; empty when passed.
    figures : dict
        The values and thresholds the verdict used (numbers, or None when not measured).
    summary : str
        What was checked, for a passed check's description.
    """

    name: str
    passed: bool
    reasons: tuple[str, ...] = ()
    figures: dict[str, Any] = field(default_factory=dict)
    summary: str = ""

    @property
    def description(self) -> str:
        """The reasons joined by "; ", or the summary when passed."""
        return "; ".join(self.reasons) if self.reasons else self.summary

    def to_dict(self) -> dict[str, Any]:
        """``{"passed": bool, "reasons": [...]}``, the form ``synth evaluate --json`` prints."""
        return {"passed": bool(self.passed), "reasons": list(self.reasons)}


def accuracy_floor(
    accuracy: Mapping[str, Any], random_sample: Mapping[str, Any] | None = None, settings: GateSettings | None = None
) -> CheckResult:
    """Judge overall accuracy against the floor and a random pool sample.

    Parameters
    ----------
    accuracy : mapping
        qa's accuracy fields of the output (``AccuracyReport.to_dict()``): ``overall`` and
        ``overall_max`` are used.
    random_sample : mapping, optional
        The same fields for a random pool sample of the same size; skipped when None.
    settings : GateSettings, optional

    Returns
    -------
    CheckResult
    """
    settings = settings or GateSettings()
    overall, overall_max = float(accuracy["overall"]), float(accuracy["overall_max"])
    floor = overall_max - settings.floor_margin if settings.accuracy_floor is None else float(settings.accuracy_floor)
    reasons = []
    if overall < floor:
        reasons.append(f"overall {overall:.5f} < floor {floor:.5f}")
    baseline = None if random_sample is None else float(random_sample["overall"])
    if baseline is not None and overall < baseline:
        reasons.append(f"overall {overall:.5f} < random pool sample {baseline:.5f}")
    summary = f"overall {overall:.5f} vs floor {floor:.5f}" + (
        f" and random pool sample {baseline:.5f}" if baseline is not None else ""
    )
    return CheckResult(
        "accuracy_floor",
        not reasons,
        tuple(reasons),
        {"overall": overall, "floor": floor, "random_pool_sample": baseline, "overall_max": overall_max},
        summary,
    )


def privacy_gate(privacy, settings: GateSettings | None = None) -> CheckResult:
    """Judge privacy figures (module docstring for the rule).

    Parameters
    ----------
    privacy : PrivacyResult or mapping
        From :func:`synth_core.metrics._privacy.privacy_metrics` (or its ``to_dict()``). Figures that
        are None or missing (whole-sequence copies of flat data; the audit when the holdout has
        fewer than four units; the copy interval of a result from before it existed) are not
        judged.
    settings : GateSettings, optional

    Returns
    -------
    CheckResult
    """
    settings = settings or GateSettings()
    p = privacy if isinstance(privacy, Mapping) else privacy.to_dict()
    tol = settings.exact_copy_tolerance
    reasons = []
    dcr_low = (p.get("dcr_share_ci") or (None, None))[0]
    # the Prize's value rule, powered: a share above it fails only when its 95 % interval also
    # excludes 0.5 (a holdout of 50 rows leaves ±0.14 of noise; at 20,000 units the two agree)
    if p["dcr_share"] > settings.max_dcr_share and (dcr_low is None or dcr_low > 0.5):
        interval = "" if dcr_low is None else f" (95% CI {dcr_low:.4f}–{p['dcr_share_ci'][1]:.4f}, above 0.5)"
        reasons.append(f"dcr_share {p['dcr_share']:.4f}{interval} > max_dcr_share {settings.max_dcr_share}")
    # the mirror rule: an output held away from training marks members as surely as one pulled in
    dcr_high = (p.get("dcr_share_ci") or (None, None))[1]
    if p["dcr_share"] < 1.0 - settings.max_dcr_share and (dcr_high is None or dcr_high < 0.5):
        interval = "" if dcr_high is None else f" (95% CI {dcr_low:.4f}–{dcr_high:.4f}, below 0.5)"
        reasons.append(f"dcr_share {p['dcr_share']:.4f}{interval} < {1.0 - settings.max_dcr_share:.2f} "
                       f"(1 − max_dcr_share): the output sits farther from training than from unseen records")
    if p["nndr_ratio"] < settings.min_nndr_ratio:
        reasons.append(f"nndr_ratio {p['nndr_ratio']:.4f} < min_nndr_ratio {settings.min_nndr_ratio}")
    for suffix in ("", "_sequences"):  # rows, then whole sequences
        line = _copy_reason(p, suffix, tol)
        if line:
            reasons.append(line)
    auc, ci = p.get("membership_auc"), p.get("membership_auc_ci")
    two, two_ci = p.get("membership_auc_two_sided"), p.get("membership_auc_two_sided_ci")
    if two is not None and two_ci is not None:  # the audit of both directions subsumes the one-sided
        if two_ci[0] > settings.max_membership_auc:
            side = {"closer": "closer to", "farther": "farther from"}.get(p.get("membership_direction"), "apart from")
            reasons.append(
                f"membership_auc_two_sided {two:.4f} (95% CI {two_ci[0]:.4f}-{two_ci[1]:.4f}, attack "
                f"{p.get('membership_attack_two_sided')}: members sit {side} the synthetic data) lies above "
                f"max_membership_auc {settings.max_membership_auc}"
            )
    elif auc is not None and ci is not None and ci[0] > settings.max_membership_auc:
        reasons.append(
            f"membership_auc {auc:.4f} (95% CI {ci[0]:.4f}-{ci[1]:.4f}, attack {p.get('membership_attack')}) "
            f"lies above max_membership_auc {settings.max_membership_auc}"
        )
    dcr_ci = p.get("dcr_share_ci") or (None, None)
    figures = {
        "dcr_share": p["dcr_share"],
        "dcr_share_ci_low": dcr_ci[0],
        "dcr_share_ci_high": dcr_ci[1],
        "max_dcr_share": settings.max_dcr_share,
        "nndr_ratio": p["nndr_ratio"],
        "min_nndr_ratio": settings.min_nndr_ratio,
        "exact_copy_training": p["exact_copy_training"],
        "exact_copy_holdout": p["exact_copy_holdout"],
        "exact_copy_training_sequences": p.get("exact_copy_training_sequences"),
        "exact_copy_holdout_sequences": p.get("exact_copy_holdout_sequences"),
        **{f"exact_copy_{name}{suffix}": value for suffix in ("", "_sequences")
           for name, value in _matched_figures(p, suffix).items()},
        "exact_copy_tolerance": tol,
        "membership_auc": auc,
        "membership_auc_ci_low": None if ci is None else ci[0],
        "membership_auc_ci_high": None if ci is None else ci[1],
        "max_membership_auc": settings.max_membership_auc,
        "membership_auc_two_sided": two,
        "membership_auc_two_sided_ci_low": None if two_ci is None else two_ci[0],
        "membership_auc_two_sided_ci_high": None if two_ci is None else two_ci[1],
        "membership_direction": p.get("membership_direction"),
    }
    return CheckResult(
        "privacy_gate",
        not reasons,
        tuple(reasons),
        figures,
        "dcr_share, nndr_ratio, exact copies and the membership audit within thresholds",
    )


def _matched_figures(p: Mapping[str, Any], suffix: str) -> dict[str, Any]:
    """The size-matched copy figures of rows (``suffix`` "") or whole sequences ("_sequences")."""
    ci = p.get(f"exact_copy_excess_ci{suffix}") or (None, None)
    return {
        "training_matched": p.get(f"exact_copy_training_matched{suffix}"),
        "holdout_matched": p.get(f"exact_copy_holdout_matched{suffix}"),
        "excess": p.get(f"exact_copy_excess{suffix}"),
        "excess_ci_low": ci[0],
        "excess_ci_high": ci[1],
    }


def _copy_reason(p: Mapping[str, Any], suffix: str, tol: float) -> str | None:
    """The reason line of the exact-copy rule, or None when it holds or was not measured (flat
    data's sequences; a result from before the size-matched test, which has no interval)."""
    f = _matched_figures(p, suffix)
    low, high = f["excess_ci_low"], f["excess_ci_high"]
    if low is None or f["excess"] is None or low <= tol:
        return None
    trn, hol = p[f"exact_copy_training{suffix}"], p[f"exact_copy_holdout{suffix}"]
    # the smaller side's matched share is its raw share: name only the one that differs
    hol_matched = f["holdout_matched"]
    hol_text = f"{hol:.4f}" + ("" if f"{hol_matched:.4f}" == f"{hol:.4f}" else f" (size-matched {hol_matched:.4f})")
    return (f"exact_copy_training{suffix} {trn:.4f} (size-matched {f['training_matched']:.4f}) exceeds "
            f"exact_copy_holdout{suffix} {hol_text} by {f['excess']:.4f} (95% CI {low:.4f}–{high:.4f})"
            + (f", above exact_copy_tolerance {tol}" if tol else ""))


def integrity(
    final: pd.DataFrame,
    training: pd.DataFrame,
    *,
    target: int,
    rows: np.ndarray,
    n_pool: int,
    group_key: str | None = None,
) -> CheckResult:
    """Judge the output's shape and provenance.

    Parameters
    ----------
    final : DataFrame
        The output table.
    training : DataFrame
        The training table (its columns, dtypes and, for sequences, lengths are the reference).
    target : int
        Rows (flat) or groups (sequences) the output must have.
    rows : ndarray
        Selected pool row (flat) or group (sequential) indices.
    n_pool : int
        Rows (groups) in the pool.
    group_key : str, optional
        Sequential data: the group column.

    Returns
    -------
    CheckResult
    """
    problems = []
    if group_key is None and len(final) != target:
        problems.append(f"row count {len(final):,} differs from the target {target:,}")
    if list(final.columns) != list(training.columns):
        problems.append("columns differ from training's")
    else:
        wrong = [c for c in training.columns if final[c].dtype != training[c].dtype]
        if wrong:
            problems.append(f"column {wrong[0]!r} has dtype {final[wrong[0]].dtype}, "
                            f"training has {training[wrong[0]].dtype}")
    rows = np.asarray(rows)
    if rows.size and (rows.min() < 0 or rows.max() >= n_pool):
        problems.append("a selected index lies outside the pool")
    if np.unique(rows).size != rows.size:
        problems.append("a pool row was selected twice")
    if group_key is not None:
        lengths = final.groupby(group_key, sort=False).size()
        train_lengths = training.groupby(group_key, sort=False).size()
        if len(lengths) != target:
            problems.append(f"group count {len(lengths):,} differs from the target {target:,}")
        if (lengths == 0).any():
            problems.append("an empty group")
        if len(lengths) and (lengths.min() < train_lengths.min() or lengths.max() > train_lengths.max()):
            problems.append(
                f"sequence lengths {lengths.min()}-{lengths.max()} outside the training range "
                f"{train_lengths.min()}-{train_lengths.max()}"
            )
    summary = "size, schema and row indices as expected"
    return CheckResult(
        "integrity",
        not problems,
        tuple(problems),
        {"rows": len(final), "target": target, "pool_rows": n_pool},
        summary,
    )
