"""Privacy metrics: distance to closest record (DCR) with its interval, NNDR, exact copies, and a
membership-inference audit (:mod:`synth_core.metrics._membership`).

Design, rationale and measured figures: ``docs/design/privacy-metrics.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import gammaln
from scipy.stats import norm

from synth_core.errors import InputError
from synth_core.metrics._inference import MAX_SINGLING_OUT, MAX_SYNTHETIC, MAX_TARGETS, inference_risks, singling_out
from synth_core.metrics._membership import Z95, Encoded, Fold, MembershipResult, membership_audit
from synth_core.metrics._nn_kernels import k_nearest_distances
from synth_core.metrics._units import (
    apply_ranks,
    check_columns,
    encode_columns,
    excluded_columns,
    fit_ranks,
    row_ids,
    sequence_keys,
    sequence_units,
)

DEFAULT_SAMPLE = 50_000  # units per reference (rows, or groups)
DEFAULT_MEMBERS = 25_000  # members (and as many non-members) scored by the audit
NNDR_EPS = 1e-8
REFERENCES = ("training", "holdout")
TABLES = (*REFERENCES, "synthetic")


@dataclass(frozen=True)
class PrivacyResult:
    """Privacy metrics of a synthetic table against its training and holdout tables.

    Attributes
    ----------
    dcr_share : float
        Share of synthetic units closer to the training reference than to the holdout
        reference (ties count half). About 0.5 when nothing leaks.
    dcr_training, dcr_holdout : float
        Mean distance of a synthetic unit to its closest training / holdout reference unit.
    dcr_training_p5, dcr_holdout_p5 : float
        5th percentiles of those distances.
    nndr_ratio : float
        ``median NNDR(synthetic→training) / median NNDR(synthetic→holdout)`` with
        ``NNDR = (d1 + 1e-8) / (d2 + 1e-8)``; well below 1 when synthetic units hug training units.
    exact_copy_training, exact_copy_holdout : float
        Share of all synthetic rows equal (on every compared column, NaN equal to NaN) to some
        row of the full training / holdout table.
    exact_copy_training_sequences, exact_copy_holdout_sequences : float or None
        Sequential data only: share of synthetic groups whose whole sequence (rows in order, key
        excluded) equals some training / holdout sequence.
    n : int
        Units (rows, or groups for sequential data) in each of the two references.
    n_synthetic : int
        Synthetic units used for the distances (``n``, or all when there are fewer).
    rows : dict
        Rows whose values enter the distances, per table (the units for flat data).
    dcr_share_ci : tuple of float, optional
        95 % Wilson interval of ``dcr_share`` over the synthetic units.
    membership_auc : float, optional
        The highest AUC of the membership-inference attacks (None when the audit did not run).
    membership_auc_ci : tuple of float, optional
        95 % interval of that attack's AUC.
    membership_attack : str, optional
        The attack that reached ``membership_auc``.
    membership_auc_by_attack : dict, optional
        Every attack's AUC.
    membership_n : int, optional
        Members scored over both folds (and as many non-members).
    membership_auc_two_sided : float, optional
        The highest AUC when each attack may flip its score, the direction chosen on the other
        fold: above 0.5 when members sit measurably closer to the synthetic data *or* farther
        from it (:mod:`synth_core.metrics._membership`). The gate judges this one.
    membership_auc_two_sided_ci : tuple of float, optional
    membership_attack_two_sided : str, optional
    membership_direction : {"closer", "farther"}, optional
        Where members sit relative to the synthetic data for that attack.
    membership_auc_ci_by_attack : dict, optional
        Every attack's 95 % interval.
    membership_tpr_at_fpr : dict, optional
        Per attack, the true-positive rate at false-positive rates 1 % and 0.1 % (keys "0.01",
        "0.001"; None where the holdout is too small to place the rate).
    attribute_inference_risk, attribute_inference_risk_ci : optional
        How much better an attacker holding the synthetic table infers a hidden column of a
        training record than of a holdout record (the control set), from its other columns:
        ``(r_members − r_controls) / (1 − r_controls)``, about 0 when nothing leaks, with its 95 %
        interval (:mod:`synth_core.metrics._inference`).
    attribute_inference_worst : str, optional
        The encoded column inferred with the highest risk.
    linkability_risk, linkability_risk_ci : optional
        The same for linking two halves of a record's columns through the synthetic table.
    singling_out_risk, singling_out_risk_ci : optional
        The same for descriptions built from synthetic units that fit exactly one record
        (members and controls equally many).
    excluded_columns : dict
        Columns left out of distances and exact copies, with the reason.
    exact_copy_training_matched, exact_copy_holdout_matched : float, optional
        The copy shares size-matched to ``n = min(|training|, |holdout|)`` units: the mean over
        synthetic rows of the probability that a random ``n``-unit subsample of the table holds the
        row (docs/design/privacy-metrics.md). The smaller side's equals its raw share.
    exact_copy_excess : float, optional
        ``exact_copy_training_matched − exact_copy_holdout_matched``; about 0 when nothing is copied.
    exact_copy_excess_ci : tuple of float, optional
        Its 95 % interval over random training / holdout splits (:func:`copy_test`). The gate
        fails when the lower end lies above ``exact_copy_tolerance`` (0).
    exact_copy_training_matched_sequences, exact_copy_holdout_matched_sequences : float, optional
    exact_copy_excess_sequences, exact_copy_excess_ci_sequences : optional
        The same for whole sequences (sequential data only).
    """

    dcr_share: float
    dcr_training: float
    dcr_holdout: float
    dcr_training_p5: float
    dcr_holdout_p5: float
    nndr_ratio: float
    exact_copy_training: float
    exact_copy_holdout: float
    exact_copy_training_sequences: float | None
    exact_copy_holdout_sequences: float | None
    n: int
    n_synthetic: int
    rows: dict[str, int] = field(default_factory=dict)
    dcr_share_ci: tuple[float, float] | None = None
    membership_auc: float | None = None
    membership_auc_ci: tuple[float, float] | None = None
    membership_attack: str | None = None
    membership_auc_by_attack: dict[str, float] | None = None
    membership_n: int | None = None
    membership_auc_two_sided: float | None = None
    membership_auc_two_sided_ci: tuple[float, float] | None = None
    membership_attack_two_sided: str | None = None
    membership_direction: str | None = None
    membership_auc_ci_by_attack: dict[str, tuple[float, float]] | None = None
    membership_tpr_at_fpr: dict[str, dict[str, float | None]] | None = None
    attribute_inference_risk: float | None = None
    attribute_inference_risk_ci: tuple[float, float] | None = None
    attribute_inference_worst: str | None = None
    linkability_risk: float | None = None
    linkability_risk_ci: tuple[float, float] | None = None
    singling_out_risk: float | None = None
    singling_out_risk_ci: tuple[float, float] | None = None
    excluded_columns: dict[str, str] = field(default_factory=dict)
    exact_copy_training_matched: float | None = None
    exact_copy_holdout_matched: float | None = None
    exact_copy_excess: float | None = None
    exact_copy_excess_ci: tuple[float, float] | None = None
    exact_copy_training_matched_sequences: float | None = None
    exact_copy_holdout_matched_sequences: float | None = None
    exact_copy_excess_sequences: float | None = None
    exact_copy_excess_ci_sequences: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values: floats rounded to 6 decimals, ints, strings, lists, None.

        ``PrivacyResult(**result.to_dict())`` rebuilds an equal-valued result.
        """
        return {key: _plain(value) for key, value in asdict(self).items()}


def _plain(value):
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, (int, np.integer)):
        return int(value)
    return round(float(value), 6)


def privacy_passes(result: PrivacyResult, **thresholds) -> tuple[bool, list[str]]:
    """Judge a :class:`PrivacyResult` by the publication gate's privacy rule.

    Kept for callers of the earlier API; :func:`synth_core.metrics._gate.privacy_gate` is the rule.
    Keyword arguments override fields of :class:`synth_core.metrics._gate.GateSettings`
    (``max_dcr_share``, ``min_nndr_ratio``, ``exact_copy_tolerance``, ``max_membership_auc``).

    Returns
    -------
    passed : bool
    reasons : list of str
        One line per failed figure; empty when passed.
    """
    from synth_core.metrics._gate import GateSettings, privacy_gate

    verdict = privacy_gate(result, GateSettings(**thresholds))
    return verdict.passed, list(verdict.reasons)


def privacy_metrics(
    training: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    *,
    group_key: str | None = None,
    sample_size: int | None = None,
    seed: int = 0,
    drop: Iterable[str] = (),
    detect_ids: bool = True,
    membership: bool = True,
    membership_size: int | None = None,
    collect: dict | None = None,
) -> PrivacyResult:
    """Distance-based privacy metrics and the membership audit of ``synthetic``.

    Parameters
    ----------
    training, holdout, synthetic : DataFrame
        The columns used are ``training``'s, less ``group_key``, ``drop`` and detected
        identifiers; the other two tables are reindexed to them.
    group_key : str, optional
        Column holding the group (sequence) id of sequential data. Units are then groups,
        each represented by one vector (docs/design/privacy-metrics.md).
    sample_size : int, optional
        Units per reference, default :data:`DEFAULT_SAMPLE` (50,000): both references get
        ``n = min(|training|, |holdout|, sample_size)`` units drawn without replacement, the
        synthetic sample ``n`` units (or all, when fewer).
    seed : int, default 0
        Seed of the subsampling (``numpy.random.default_rng``); same seed and inputs give
        identical numbers.
    drop : iterable of str
        Columns to leave out (reported as ``"dropped"``); each must be a training column.
    detect_ids : bool, default True
        Leave out columns that look like identifiers (:func:`id_like_columns`).
    membership : bool, default True
        Run the membership audit (:mod:`synth_core.metrics._membership`).
    membership_size : int, optional
        Members scored in all, default ``min(|training|, |holdout|, 25,000)`` units (rounded
        down to even), as many holdout units are the non-members; each fold's population
        sample is the other half of the holdout (up to ``sample_size`` units).
    collect : dict, optional
        When given, filled with the arrays behind the figures (for the quality report):
        ``dcr_training`` and ``dcr_holdout`` (distance of each sampled synthetic unit to its
        closest training / holdout unit) and ``attack_scores`` (per audit fold, attack name →
        member and non-member scores). The figures do not change.

    Returns
    -------
    PrivacyResult

    Raises
    ------
    InputError
        A column (or the group key) missing from a table, an empty table, a ``drop`` column
        that training lacks, no column left, or fewer than two units in a reference.

    Notes
    -----
    Exact copies are counted over the full tables (every synthetic row against every training /
    holdout row), not only over the sample; :func:`exact_copies` computes them alone.
    """
    frames = {"training": training, "holdout": holdout, "synthetic": synthetic}
    excluded = excluded_columns(training, group_key, drop, detect_ids)
    columns = check_columns(frames, group_key, excluded)
    cap = DEFAULT_SAMPLE if sample_size is None else int(sample_size)
    if cap < 2:
        raise InputError(f"sample_size must be at least 2, got {sample_size}")

    values, keys, is_cat = encode_columns(frames, columns)
    units, is_cat, row_counts, copies = _units_and_copies(frames, group_key, values, keys, is_cat, seed)
    count = {t: len(units[t]) for t in TABLES}
    n, picked = _sample_units(count, cap, seed, "groups" if group_key else "rows")
    n_syn = len(picked["synthetic"])
    encoded = _unit_encoder(units, picked, is_cat)
    figures = _distance_figures(encoded, picked, collect)
    scores_out = None if collect is None else collect.setdefault("attack_scores", [])
    audit = _membership(count, cap, membership_size, seed, encoded, scores_out) if membership else None
    risks = _inference(count, encoded, seed) if membership else {}
    return PrivacyResult(
        **figures,
        **copies,
        n=n,
        n_synthetic=n_syn,
        rows={t: int(row_counts[t][picked[t]].sum()) for t in TABLES},
        dcr_share_ci=wilson_interval(figures["dcr_share"], n_syn),
        **_audit_fields(audit),
        **_risk_fields(risks),
        excluded_columns=excluded,
    )


def exact_copies(
    training: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    *,
    group_key: str | None = None,
    drop: Iterable[str] = (),
    detect_ids: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """The ``exact_copy_*`` fields of :func:`privacy_metrics` alone (no distances, no audit).

    Parameters are :func:`privacy_metrics`'s (``seed`` moves only the interval of rows of
    sequences, :func:`copy_test`). Returns the fields by name, as :class:`PrivacyResult` holds
    them (the ``_sequences`` ones None for flat data).
    """
    frames = {"training": training, "holdout": holdout, "synthetic": synthetic}
    excluded = excluded_columns(training, group_key, drop, detect_ids)
    columns = check_columns(frames, group_key, excluded)
    _, keys, _ = encode_columns(frames, columns)
    return _copy_figures(keys, _group_codes(frames, group_key), seed)


def _units_and_copies(frames: dict[str, pd.DataFrame], group_key: str | None, values: dict[str, np.ndarray],
                      keys: dict[str, np.ndarray], is_cat: np.ndarray, seed: int):
    """The compared units (rows, or one vector per group), their categorical flags, each unit's
    rows, and the exact-copy figures over the full tables (the ``exact_copy_*`` fields)."""
    groups = _group_codes(frames, group_key)
    copies = _copy_figures(keys, groups, seed)
    if groups is None:
        return values, is_cat, {t: np.ones(len(values[t]), dtype=np.int64) for t in TABLES}, copies
    units, row_counts = {}, {}
    for t in TABLES:
        units[t], unit_cat, row_counts[t] = sequence_units(values[t], is_cat, groups[t])
    return units, unit_cat, row_counts, copies


def _group_codes(frames: dict[str, pd.DataFrame], group_key: str | None) -> dict[str, np.ndarray] | None:
    """Per table, group codes 0..g-1 in order of first appearance (None for flat data)."""
    if group_key is None:
        return None
    return {t: pd.factorize(frames[t][group_key], use_na_sentinel=False)[0] for t in TABLES}


def _copy_figures(keys: dict[str, np.ndarray], groups: dict[str, np.ndarray] | None, seed: int = 0) -> dict[str, Any]:
    """The ``exact_copy_*`` fields: rows (within their sequences when ``groups``), then whole
    sequences (None for flat data)."""
    ids = dict(zip(TABLES, row_ids([keys[t] for t in TABLES])))
    out = _copy_fields(copy_test(ids, groups, seed=seed), "")
    if groups is None:
        return {**out, **dict.fromkeys(_copy_fields(None, "_sequences"))}
    seqs = {t: sequence_keys(ids[t], groups[t]) for t in TABLES}
    # one integer per distinct sequence across the three tables (equal bytes ⇔ equal sequences)
    codes = pd.factorize(np.array([k for t in TABLES for k in seqs[t]], dtype=object))[0]
    bounds = np.cumsum([0] + [len(seqs[t]) for t in TABLES])
    seq_ids = {t: codes[bounds[i] : bounds[i + 1]] for i, t in enumerate(TABLES)}
    return {**out, **_copy_fields(copy_test(seq_ids), "_sequences")}


def _copy_fields(test: dict[str, Any] | None, suffix: str) -> dict[str, Any]:
    """:func:`copy_test`'s figures under their :class:`PrivacyResult` names (all None for None)."""
    names = {
        "training": "exact_copy_training", "holdout": "exact_copy_holdout",
        "training_matched": "exact_copy_training_matched", "holdout_matched": "exact_copy_holdout_matched",
        "excess": "exact_copy_excess", "excess_ci": "exact_copy_excess_ci",
    }
    return {field + suffix: None if test is None else test[key] for key, field in names.items()}


def presence_probability(count, total: int, n: int) -> np.ndarray:
    """Probability that ``n`` units drawn without replacement from ``total`` include at least one
    of ``count`` given units: ``1 − C(total − count, n) / C(total, n)`` (hypergeometric).

    Parameters
    ----------
    count : array_like of int
        Units holding the value (0 … ``total``).
    total : int
    n : int
        Units drawn (0 … ``total``).

    Returns
    -------
    ndarray of float
    """
    count = np.asarray(count, dtype=np.float64)
    out = np.ones(count.shape)
    rest = total - count
    some_miss = rest >= n  # otherwise every draw of n units must hit one
    r = rest[some_miss]
    # log C(rest, n) − log C(total, n), in log space: the binomials overflow any float
    log_miss = gammaln(r + 1) - gammaln(r - n + 1) + gammaln(total - n + 1) - gammaln(total + 1)
    out[some_miss] = -np.expm1(log_miss)
    out[count <= 0] = 0.0
    return out


def copy_test(keys: dict[str, np.ndarray], units: dict[str, np.ndarray] | None = None, *,
              seed: int = 0, z: float = Z95) -> dict[str, Any]:
    """Exact copies of training against those of the holdout, size-matched, with a 95 % interval.

    Parameters
    ----------
    keys : dict of str to ndarray of int
        ``training``, ``holdout``, ``synthetic``: one exact key per row, shared across tables.
    units : dict of str to ndarray of int, optional
        Per table, the unit (group code 0..g-1) of each row: rows of sequences. None: every row
        is a unit.
    seed : int, default 0
        Seed of the re-splits behind the interval.
    z : float
        Normal quantile of the two-sided level (95 %).

    Returns
    -------
    dict
        ``training``, ``holdout`` (raw shares of synthetic rows whose key some unit of the table
        holds), ``training_matched``, ``holdout_matched`` (the mean probability that a random
        subsample of ``min(|training|, |holdout|)`` units holds it), ``excess`` (their difference)
        and ``excess_ci``. Without memorisation the expected excess is 0 for every key.

    Notes
    -----
    Without memorisation, which real units went to training and which to the holdout has
    nothing to do with the output. The interval is the excess minus the upper and lower
    quantiles of the excess over :data:`RESPLITS` seeded random re-splits of the real units
    into training and holdout of their sizes, synthetic rows fixed: its lower end lies above 0
    when fewer than 2.5 % of the re-splits reach the observed excess. Rows with one key share
    their score, so duplicates in the output count as one cluster; a key the holdout holds or
    misses by chance adds that chance; keys that share real units (rows of sequences) move
    together; and the discrete, skewed spread of rare copies is kept as it is. Two cheaper
    intervals failed fair splits too often on the benchmark's tables: a cluster-robust variance
    from the residuals (fair census splits passed 91 %, the respiratory panel 82 %: the estimate
    collapses when no holdout copy happens to occur) and a normal interval with the exact
    per-key variance (a one-sided 4.1 % on the 24-cell Titanic table: skew).
    """
    sizes = [len(keys[t]) for t in TABLES]
    bounds = np.cumsum([0] + sizes)
    codes = np.unique(np.concatenate([np.asarray(keys[t]) for t in TABLES]), return_inverse=True)[1].ravel()
    code = {t: codes[bounds[i] : bounds[i + 1]] for i, t in enumerate(TABLES)}
    n_keys = int(codes.max()) + 1 if codes.size else 0
    held, n_units, pairs = {}, {}, None
    for t in REFERENCES:
        if units is None:
            n_units[t] = sizes[TABLES.index(t)]
            held[t] = np.bincount(code[t], minlength=n_keys)
        else:  # units (groups) holding each key, counting a key once per unit
            u = np.asarray(units[t], dtype=np.int64)
            n_units[t] = int(u.max()) + 1 if u.size else 0
            pairs = pairs or {}
            pairs[t] = np.unique(u * n_keys + code[t])
            held[t] = np.bincount(pairs[t] % n_keys, minlength=n_keys)
    n = min(n_units.values())
    syn = code["synthetic"]
    score = {t: presence_probability(held[t], n_units[t], n)[syn] for t in REFERENCES}
    excess = float(np.mean(score["training"] - score["holdout"]))
    weight = np.bincount(syn, minlength=n_keys) / len(syn)  # a key's synthetic rows: one cluster
    observed, null = _resplit_excess(held, pairs, n_keys, n_units, weight, np.random.default_rng([seed, 2]))
    level = float(norm.cdf(z))
    # order statistics, not interpolation: the re-split excess is discrete, and the observed
    # split (summed the same way) recurs among the re-splits; a tie is no excess
    low = observed - float(np.quantile(null, level, method="higher"))
    high = observed - float(np.quantile(null, 1 - level, method="lower"))
    return {
        "training": float(np.mean(held["training"][syn] > 0)),
        "holdout": float(np.mean(held["holdout"][syn] > 0)),
        "training_matched": float(score["training"].mean()),
        "holdout_matched": float(score["holdout"].mean()),
        "excess": excess,
        "excess_ci": (float(max(-1.0, low)), float(min(1.0, high))),
    }


RESPLITS = 1_000  # re-splits behind the interval of the exact-copy excess (its 97.5 % point: ± 0.09 sd)
_CHUNK = 200  # re-splits drawn at once (memory: chunk × keys counts)


def _resplit_excess(held: dict[str, np.ndarray], pairs: dict[str, np.ndarray] | None, n_keys: int,
                    n_units: dict[str, int], weight: np.ndarray, rng: np.random.Generator,
                    resplits: int = RESPLITS) -> tuple[float, np.ndarray]:
    """The observed excess and the excess over ``resplits`` random re-splits of the real units
    into training and holdout, synthetic rows fixed. Only keys of synthetic rows matter.

    When every unit holds one key (``pairs`` None), the training counts of the keys are
    multivariate hypergeometric and are drawn as such; otherwise (``pairs``: unit × key codes
    per reference, rows of sequences) whole units are re-split, so keys sharing a unit move
    together.
    """
    n_trn, n_hol = n_units["training"], n_units["holdout"]
    n = min(n_trn, n_hol)
    total = held["training"] + held["holdout"]
    rel = np.flatnonzero((weight > 0) & (total > 0))
    if rel.size == 0:  # no synthetic row equals any real one
        return 0.0, np.zeros(1)
    # keys in an order of their own (holders, weight), not of their codes: keys alike in both are
    # interchangeable, so relabelled or reordered data draw the same re-splits
    rel = rel[np.lexsort((weight[rel], total[rel]))]
    t, w = total[rel], weight[rel]
    ladder = np.arange(int(t.max()) + 1)  # presence for every possible count, looked up
    p_trn, p_hol = presence_probability(ladder, n_trn, n), presence_probability(ladder, n_hol, n)

    def excess(c: np.ndarray) -> np.ndarray:
        return (p_trn[c] - p_hol[t - c]) @ w

    # rounded to 1e-12 (far below any figure shown): a re-split that reproduces the observed
    # counts must tie with it exactly, whatever order the sums ran in
    observed = round(float(excess(held["training"][rel])), 12)
    if pairs is None:
        colors = np.append(t, n_trn + n_hol - t.sum())
        null = np.concatenate([
            excess(rng.multivariate_hypergeometric(colors, n_trn, size=min(_CHUNK, resplits - done),
                                                   method="marginals")[:, :-1])
            for done in range(0, resplits, _CHUNK)
        ])
        return observed, np.round(null, 12)
    position = np.full(n_keys, -1)
    position[rel] = np.arange(rel.size)
    unit_pairs = np.concatenate([pairs["training"] // n_keys, n_trn + pairs["holdout"] // n_keys])
    key_pairs = position[np.concatenate([pairs["training"] % n_keys, pairs["holdout"] % n_keys])]
    relevant = key_pairs >= 0
    unit_code, unit_of = np.unique(unit_pairs[relevant], return_inverse=True)
    key_of, unit_of = key_pairs[relevant], unit_of.ravel()
    m = unit_code.size
    null = np.empty(resplits)
    for r in range(resplits):
        # which of the m units holding a synthetic key a random split puts in training
        in_trn = np.zeros(m, dtype=bool)
        in_trn[rng.choice(m, rng.hypergeometric(n_trn, n_hol, m), replace=False)] = True
        null[r] = excess(np.bincount(key_of[in_trn[unit_of]], minlength=rel.size))
    return observed, np.round(null, 12)


def _audit_fields(audit: MembershipResult | None) -> dict[str, Any]:
    """The :class:`PrivacyResult` fields of the membership audit (None each when it did not run)."""
    fields = {
        "membership_auc": "auc", "membership_auc_ci": "auc_ci", "membership_attack": "attack",
        "membership_auc_by_attack": "attack_auc", "membership_n": "n_members",
        "membership_auc_two_sided": "auc_two_sided", "membership_auc_two_sided_ci": "auc_two_sided_ci",
        "membership_attack_two_sided": "attack_two_sided", "membership_direction": "direction",
        "membership_auc_ci_by_attack": "attack_auc_ci", "membership_tpr_at_fpr": "tpr_at_fpr",
    }
    return {name: None if audit is None else getattr(audit, attr) for name, attr in fields.items()}


def _sample_units(count: dict[str, int], cap: int, seed: int, unit: str) -> tuple[int, dict[str, np.ndarray]]:
    """``n = min(|training|, |holdout|, cap)`` and the sorted units drawn without replacement:
    ``n`` per reference, ``min(n, |synthetic|)`` synthetic ones (seeded by ``seed``).

    Raises
    ------
    InputError
        Fewer than two units (``unit``: "rows" or "groups") in training or holdout.
    """
    n = min(count["training"], count["holdout"], cap)
    if n < 2:
        raise InputError(
            f"need at least 2 {unit} in training and holdout, got {count['training']} and {count['holdout']}"
        )
    n_syn = min(n, count["synthetic"])
    rng = np.random.default_rng(seed)
    picked = {t: np.sort(rng.choice(count[t], n_syn if t == "synthetic" else n, replace=False)) for t in TABLES}
    return n, picked


def _unit_encoder(units: dict[str, np.ndarray], picked: dict[str, np.ndarray],
                  is_cat: np.ndarray) -> Callable[[str, np.ndarray], Encoded]:
    """``encoded(table, rows)``: those units of ``table`` ready for the nearest-neighbour search,
    numbers rank-transformed by the CDFs of the sampled references, categorical and numeric
    features each in the order that lets the search abandon candidates soonest."""
    ranks = fit_ranks([units[t][picked[t]] for t in REFERENCES], is_cat)
    reference = np.vstack([apply_ranks(units[t][picked[t]], ranks, is_cat) for t in REFERENCES])
    cat_cols, num_cols = _feature_order(reference, is_cat)

    def encoded(table: str, rows: np.ndarray) -> Encoded:
        x = apply_ranks(units[table][rows], ranks, is_cat)
        return Encoded(x[:, cat_cols].astype(np.int64), np.ascontiguousarray(x[:, num_cols]))

    return encoded


def _distance_figures(encoded: Callable[[str, np.ndarray], Encoded], picked: dict[str, np.ndarray],
                      collect: dict | None = None) -> dict[str, float]:
    """DCR share, mean and 5th-percentile DCR per reference and the NNDR ratio of the sampled
    synthetic units (the :class:`PrivacyResult` fields of those names); the per-unit distances
    go into ``collect`` when given."""
    syn = encoded("synthetic", picked["synthetic"])
    near = {t: k_nearest_distances(syn.cat, syn.num, *encoded(t, picked[t]), 2) for t in REFERENCES}
    (t1, t2), (h1, h2) = near["training"].T, near["holdout"].T
    dcr_trn, dcr_hol = np.sqrt(t1), np.sqrt(h1)
    nndr_trn = (dcr_trn + NNDR_EPS) / (np.sqrt(t2) + NNDR_EPS)
    nndr_hol = (dcr_hol + NNDR_EPS) / (np.sqrt(h2) + NNDR_EPS)
    if collect is not None:
        collect["dcr_training"], collect["dcr_holdout"] = dcr_trn, dcr_hol
    return {
        # Compare squared sums: no rounding from the square root can create or break a tie.
        "dcr_share": float(np.mean(t1 < h1) + 0.5 * np.mean(t1 == h1)),
        "dcr_training": float(dcr_trn.mean()),
        "dcr_holdout": float(dcr_hol.mean()),
        "dcr_training_p5": float(np.percentile(dcr_trn, 5)),
        "dcr_holdout_p5": float(np.percentile(dcr_hol, 5)),
        "nndr_ratio": float(np.median(nndr_trn) / np.median(nndr_hol)),
    }


def _inference(count, encoded, seed) -> dict:
    """Attribute-inference, linkability and singling-out risks, training units against holdout
    units as the control set (:mod:`synth_core.metrics._inference`; it draws its own targets)."""
    if min(count.values()) < 1:
        return {}
    # encode only what the attacks can use (a stream of its own: the other draws stay put)
    rng = np.random.default_rng([seed, 2])
    caps = {"training": MAX_TARGETS, "holdout": MAX_TARGETS, "synthetic": MAX_SYNTHETIC}
    rows = {t: np.sort(rng.choice(count[t], min(count[t], caps[t]), replace=False)) for t in caps}
    risks = inference_risks(*(encoded(t, rows[t]) for t in caps), seed=seed)
    # singling out needs the tables nearly whole: a sample would rarely hold the record a copy describes
    rng = np.random.default_rng([seed, 3])
    rows = {t: np.sort(rng.choice(count[t], min(count[t], MAX_SINGLING_OUT), replace=False)) for t in caps}
    found = singling_out(*(encoded(t, rows[t]) for t in caps), seed=seed)
    if found is not None:
        risks["singling_out"] = found
    return risks


def _risk_fields(risks: dict) -> dict[str, Any]:
    """The :class:`PrivacyResult` fields of the inference risks (None each when they did not run)."""
    out = {}
    for name in ("attribute_inference", "linkability", "singling_out"):
        r = risks.get(name)
        out[f"{name}_risk"] = None if r is None else r.risk
        out[f"{name}_risk_ci"] = None if r is None else r.risk_ci
    r = risks.get("attribute_inference")
    out["attribute_inference_worst"] = None if r is None else r.worst
    return out


def _membership(count, cap, membership_size, seed, encoded, scores_out=None) -> MembershipResult | None:
    """Draw the audit's two folds (:mod:`synth_core.metrics._membership`) and run it; None when the
    holdout has fewer than four units."""
    half = count["holdout"] // 2
    limit = DEFAULT_MEMBERS if membership_size is None else int(membership_size)
    m = min(count["training"] // 2, half, max(limit // 2, 1))  # per fold
    if m < 2:
        return None
    # a stream of its own, so that the audit's draws do not move the DCR sample
    rng = np.random.default_rng([seed, 1])
    members = rng.choice(count["training"], 2 * m, replace=False)
    holdout = rng.permutation(count["holdout"])
    halves = (holdout[:half], holdout[half : 2 * half])
    folds = []
    for a in range(2):
        population, scored = halves[a], halves[1 - a]
        folds.append(
            Fold(
                members=encoded("training", np.sort(members[a * m : (a + 1) * m])),
                non_members=encoded("holdout", np.sort(scored[:m])),
                population=encoded("holdout", np.sort(population[:cap])),
            )
        )
    n_syn = count["synthetic"]
    synthetic = np.sort(rng.choice(n_syn, cap, replace=False)) if n_syn > cap else np.arange(n_syn)
    return membership_audit(folds, encoded("synthetic", synthetic), scores_out=scores_out)


def wilson_interval(share: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial share over ``n`` units (95 % by default).

    Parameters
    ----------
    share : float
        Observed share in [0, 1].
    n : int
        Units behind it (at least 1).
    z : float
        Normal quantile of the two-sided level.

    Returns
    -------
    (low, high) : tuple of float
    """
    denom = 1.0 + z * z / n
    centre = (share + z * z / (2 * n)) / denom
    half = z / denom * np.sqrt(max(share * (1 - share), 0.0) / n + z * z / (4 * n * n))
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def _feature_order(ref: np.ndarray, is_cat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Categorical and numeric feature indices, each by decreasing expected contribution to a
    random pair's squared distance.

    The search abandons a candidate once its partial sum is too large, and orders rows by the
    first numeric feature, so the features that usually differ most go first.
    """
    expected = np.empty(ref.shape[1])
    for j in range(ref.shape[1]):
        col = ref[:, j]
        if is_cat[j]:
            p = np.unique(col, return_counts=True)[1] / col.size
            expected[j] = 1.0 - np.sum(p * p)
        else:
            nan = np.isnan(col)
            p = nan.mean()
            var = col[~nan].var() if (~nan).any() else 0.0
            expected[j] = 2 * p * (1 - p) + (1 - p) ** 2 * 2 * var
    order = np.argsort(-expected, kind="stable")
    return order[is_cat[order]], order[~is_cat[order]]
