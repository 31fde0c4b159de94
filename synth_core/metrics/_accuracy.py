"""Accuracy exactly as mostlyai-qa defines it: univariate, bivariate, trivariate, coherence.

Definitions follow ``qa-metrics.md`` (sections 1-5) for mostlyai-qa 1.9.8/1.10.11:

* every table is reduced to qa's accuracy frame (:mod:`synth_core.metrics._sampling`) and binned with
  qa's discretisation fitted on training ∪ holdout (:mod:`synth_core.metrics._binning`);
* the accuracy of a column, pair or triple is ``1 − ½·L1`` of the binned frequency tables,
  rounded to 5 decimals before averaging; ``*_max`` uses the expected L1 of two samples of the
  same sizes from the reference distribution;
* sequential tables add ``Sequence Length`` as a column and three coherence parts (next-row
  pairs, distinct categories per sequence, sequences per category on 30-bin codes);
* ``overall`` is the mean of the available parts.

With ``seed=N`` the random draws replay qa's under ``qa.set_random_state(N)``, so the numbers are
equal to qa's. Deviations, both documented in the README: (1) with more than 10,000 column
triples qa's random pick happens after steps we do not run, so we average a seeded sample of
10,000 triples (``numpy.random.default_rng(seed)``); (2) qa replaces values of text-like columns
(> 5 % unique values) by one random GPT-2 token; we bin such columns as categorical values.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from synth_core.errors import InputError
from synth_core.metrics._binning import OTHER_BIN, Binner, fit_column
from synth_core.metrics._contingency import as_feature_array, counts_l1, feature_l1, to_accuracy
from synth_core.metrics._sampling import NXT, TGT, coherence_rows, harmonise, prepare_frames

MAX_TRIPLES = 10_000
MAX_L1 = 2.0  # the L1 distance of two tables of proportions never exceeds 2
COHERENCE_BINS = 30
TOP_CATEGORIES = 9  # qa's "sequences per category": top 9 plus "(other)"
FIELDS = (
    "overall",
    "univariate",
    "bivariate",
    "trivariate",
    "coherence",
    "overall_max",
    "univariate_max",
    "bivariate_max",
    "trivariate_max",
    "coherence_max",
)


def _mean(values) -> float | None:
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()) if values.size else None


def _round7(value: float | None) -> float | None:
    return None if value is None else round(float(value), 7)


@dataclass(frozen=True)
class AccuracyDetails:
    """What the accuracy was computed from, for pictures of it (``accuracy(..., details=True)``).

    ``reference_codes`` are qa's reference frame (training rows first, then holdout rows) and
    ``synthetic_codes`` the synthetic frame, both binned with ``bins`` (one :class:`ColumnBins`
    per frame column, in the order of ``names``, the ``tgt::``/``nxt::`` frame columns).
    """

    names: list[str]
    bins: list[Any]
    reference_codes: np.ndarray
    synthetic_codes: np.ndarray
    n_training: int

    def split(self) -> dict[str, np.ndarray]:
        """Code matrices per table: ``training``, ``holdout`` (possibly empty) and ``synthetic``."""
        ref = self.reference_codes
        return {"training": ref[: self.n_training], "holdout": ref[self.n_training :],
                "synthetic": self.synthetic_codes}


@dataclass
class AccuracyReport:
    """qa's accuracy fields plus the per-item tables behind them.

    ``univariate``: columns ``column, accuracy, accuracy_max``;
    ``bivariate``: ``column_1, column_2, accuracy, accuracy_max``;
    ``trivariate``: ``column_1, column_2, column_3, accuracy, accuracy_max``;
    ``coherence``: ``column, part, accuracy, accuracy_max`` with part in
    ``next_row | categories_per_sequence | sequences_per_category``.
    """

    fields: dict[str, float | None]
    univariate: pd.DataFrame
    bivariate: pd.DataFrame
    trivariate: pd.DataFrame
    coherence: pd.DataFrame
    n_triples_total: int = 0
    sequential: bool = False
    rows: dict[str, int] = field(default_factory=dict)
    details: AccuracyDetails | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, float | None]:
        """mostlyai-qa's ``Accuracy`` fields (7 decimals), e.g. ``{"overall": 0.97, ...}``."""
        return dict(self.fields)

    @property
    def overall(self) -> float:
        return self.fields["overall"]

    def worst_columns(self, k: int = 5) -> pd.DataFrame:
        return self.univariate.sort_values(["accuracy", "column"]).head(k).reset_index(drop=True)

    def worst_pairs(self, k: int = 5) -> pd.DataFrame:
        return self.bivariate.sort_values(["accuracy", "column_1", "column_2"]).head(k).reset_index(drop=True)


def _strip(name: str) -> str:
    return name.split("::", 1)[1] if "::" in name else name


def _triples(n_tgt: int, max_triples: int, seed: int) -> list[tuple[int, int, int]]:
    triples = list(itertools.combinations(range(n_tgt), 3))
    if len(triples) > max_triples:
        pick = np.random.default_rng(seed).choice(len(triples), size=max_triples, replace=False)
        triples = [triples[i] for i in np.sort(pick)]
    return triples


def _feature_table(names, features, l1, expected, labels) -> pd.DataFrame:
    data: dict[str, Any] = {}
    for pos, label in enumerate(labels):
        data[label] = [_strip(names[f[pos]]) for f in features]
    data["accuracy"] = to_accuracy(l1)
    data["accuracy_max"] = accuracy_max(expected)
    return pd.DataFrame(data)


def accuracy_max(expected_l1) -> np.ndarray:
    """mostlyai-qa's ``accuracy_max`` from the expected L1 distance of two samples, within the domain.

    qa approximates the expected L1 per cell by a half-normal, ``sqrt(2/pi * variance)``, and
    sums over the cells; for a tiny sample the sum exceeds 2, the largest L1 distance there is,
    and ``accuracy_max`` turns negative (one synthetic row against census: -1.16). An expected
    distance is at most 2, so the sum is capped there: such an item's maximum is 0, and every
    value qa computes within the domain is unchanged.
    """
    return to_accuracy(np.minimum(np.asarray(expected_l1, dtype=np.float64), MAX_L1))


def _sorted_distinct(keys: np.ndarray, n_keys: int) -> np.ndarray:
    """``np.unique(keys)`` for non-negative int64 keys below ``n_keys``: marked in a boolean table
    when that is not much larger than ``keys`` (linear instead of a sort), else sorted."""
    if n_keys > 8 * len(keys) + 1024:
        return np.unique(keys)
    seen = np.zeros(n_keys, dtype=bool)
    seen[keys] = True
    return np.flatnonzero(seen)


def _pairs_codes(group: np.ndarray, codes: np.ndarray, n_codes: int) -> np.ndarray:
    """Distinct (group, code) pairs as one int64 per pair, sorted."""
    n_groups = int(group.max()) + 1 if len(group) else 0
    return _sorted_distinct(group.astype(np.int64) * n_codes + codes.astype(np.int64), n_groups * n_codes)


def _uni_bi_tri(ref_codes, syn_codes, n_codes, names, *, seed: int, max_triples: int):
    """Univariate, bivariate, trivariate and next-row tables from code matrices.

    ``names`` are qa's frame columns (``tgt::``/``nxt::`` prefixed, alphabetical within a prefix).
    """
    tgt = [i for i, n in enumerate(names) if n.startswith(TGT)]
    nxt = {names[i][len(NXT):]: i for i, n in enumerate(names) if n.startswith(NXT)}
    uni = [(i,) for i in tgt]
    bi = list(itertools.combinations(tgt, 2))
    tri = [tuple(tgt[k] for k in t) for t in _triples(len(tgt), max_triples, seed)]
    next_row = [(i, nxt[names[i][len(TGT):]]) for i in tgt if names[i][len(TGT):] in nxt]

    features = uni + bi + tri + next_row
    l1, expected = feature_l1(ref_codes, syn_codes, np.asarray(n_codes, dtype=np.int64), as_feature_array(features))
    cuts = np.cumsum([0, len(uni), len(bi), len(tri), len(next_row)])
    part = lambda k: slice(cuts[k], cuts[k + 1])  # noqa: E731
    uni_t = _feature_table(names, uni, l1[part(0)], expected[part(0)], ["column"])
    bi_t = _feature_table(names, bi, l1[part(1)], expected[part(1)], ["column_1", "column_2"])
    tri_t = _feature_table(names, tri, l1[part(2)], expected[part(2)], ["column_1", "column_2", "column_3"])
    nxt_t = _feature_table(names, next_row, l1[part(3)], expected[part(3)], ["column"])
    return (uni_t, bi_t, tri_t, math.comb(len(tgt), 3)), nxt_t


def codes_accuracy(
    ref_codes: np.ndarray,
    syn_codes: np.ndarray,
    n_codes,
    columns: list[str],
    *,
    seed: int = 0,
    max_triples: int = MAX_TRIPLES,
) -> AccuracyReport:
    """mostlyai-qa's flat accuracy from code matrices binned on the reference (no re-binning).

    For flat tables the result equals :func:`accuracy` with the same reference, because qa's
    frame of a flat table is the table itself. Used by the selection stages, whose codes are
    already binned on training.
    """
    order = sorted(range(len(columns)), key=lambda j: columns[j])
    names = [TGT + columns[j] for j in order]
    ref = np.ascontiguousarray(ref_codes[:, order])
    syn = np.ascontiguousarray(syn_codes[:, order])
    n = np.asarray(n_codes, dtype=np.int64)[order]
    (uni_t, bi_t, tri_t, n_total), _ = _uni_bi_tri(ref, syn, n, names, seed=seed, max_triples=max_triples)
    empty = pd.DataFrame(columns=["column", "part", "accuracy", "accuracy_max"])
    fields = _aggregate(uni_t, bi_t, tri_t, empty)
    rows = {"reference": len(ref_codes), "synthetic": len(syn_codes)}
    return AccuracyReport(fields, uni_t, bi_t, tri_t, empty, n_triples_total=n_total, rows=rows)


def _coherence(
    reference_rows: pd.DataFrame, synthetic_rows: pd.DataFrame, group_key: str, columns: list[str]
) -> pd.DataFrame:
    """Distinct-categories-per-sequence and sequences-per-category accuracies (qa section 5)."""
    ref = reference_rows[columns].apply(harmonise)
    syn = synthetic_rows[columns].apply(harmonise)
    binner = Binner(n_bins=COHERENCE_BINS, style="bounded").fit(ref)
    ref_codes = binner.transform(ref)
    syn_codes = binner.transform(syn)
    ref_group, _ = pd.factorize(reference_rows[group_key], sort=True)
    syn_group, _ = pd.factorize(synthetic_rows[group_key], sort=True)
    n_ref_groups = int(ref_group.max()) + 1
    n_syn_groups = int(syn_group.max()) + 1

    records = []
    for j, col in enumerate(binner.columns_):
        m = col.n_codes
        ref_pairs = _pairs_codes(ref_group, ref_codes[:, j], m)
        syn_pairs = _pairs_codes(syn_group, syn_codes[:, j], m)

        # distinct categories per sequence, binned once more with qa's 10-bin numeric rule
        ref_distinct = np.bincount(ref_pairs // m, minlength=n_ref_groups)
        syn_distinct = np.bincount(syn_pairs // m, minlength=n_syn_groups)
        bins = fit_column(col.name, pd.Series(ref_distinct), 10, kind="numeric")
        ref_binned = np.bincount(bins.encode(pd.Series(ref_distinct)), minlength=bins.n_codes)
        syn_binned = np.bincount(bins.encode(pd.Series(syn_distinct)), minlength=bins.n_codes)
        l1, expected = counts_l1(ref_binned, syn_binned)
        records.append((col.name, "categories_per_sequence", l1, expected))

        # sequences per category: top 9 categories of the reference, the rest merged
        ref_counts, syn_counts = _sequences_per_category(col, ref_pairs, syn_pairs)
        l1, expected = counts_l1(ref_counts, syn_counts)
        records.append((col.name, "sequences_per_category", l1, expected))

    frame = pd.DataFrame(records, columns=["column", "part", "l1", "expected"])
    frame["accuracy"] = to_accuracy(frame.pop("l1").to_numpy())
    frame["accuracy_max"] = accuracy_max(frame.pop("expected").to_numpy())
    return frame


def _sequences_per_category(col, ref_pairs: np.ndarray, syn_pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Aligned count vectors of qa's "sequences per category" for one column.

    The top 9 categories by number of reference sequences (ties: category order) keep their
    own entry; all other categories are merged into "(other)" (the column's own "(other)"
    category where it has one). Entries come in the order qa's outer merge sums them: category
    order when both sides keep the same categories, otherwise sorted by label — the summation
    order decides the last bit, and the last bit decides the 5-decimal rounding.
    """
    m = col.n_codes
    ref_seqs = np.bincount(ref_pairs % m, minlength=m)
    top = np.argsort(-ref_seqs, kind="stable")[:TOP_CATEGORIES]
    in_top = np.zeros(m, dtype=bool)
    in_top[top] = True
    other_slot = col.labels.index(OTHER_BIN) if col.kind == "categorical" else m
    mapped = np.where(in_top, np.arange(m), other_slot)
    labels = list(col.labels) + [OTHER_BIN]

    def side(pairs: np.ndarray) -> dict[str, int]:
        groups, codes = pairs // m, pairs % m
        n_groups = int(groups.max()) + 1 if len(groups) else 0
        merged = _sorted_distinct(groups * (m + 1) + mapped[codes], n_groups * (m + 1)) % (m + 1)
        counts = np.bincount(merged, minlength=m + 1)
        if (~in_top[codes]).any():  # qa drops the categories left empty after merging
            keep = [k for k in range(m + 1) if counts[k] > 0]
        else:
            keep = list(range(m))
        return {labels[k]: int(counts[k]) for k in keep}

    ref, syn = side(ref_pairs), side(syn_pairs)
    order = list(ref) if list(ref) == list(syn) else sorted(set(ref) | set(syn))
    return (np.array([ref.get(k, 0) for k in order], dtype=np.int64),
            np.array([syn.get(k, 0) for k in order], dtype=np.int64))


def accuracy(
    training: pd.DataFrame,
    synthetic: pd.DataFrame,
    holdout: pd.DataFrame | None = None,
    *,
    group_key: str | None = None,
    seed: int = 0,
    max_triples: int = MAX_TRIPLES,
    details: bool = False,
) -> AccuracyReport:
    """mostlyai-qa's accuracy of ``synthetic`` against training ∪ holdout.

    Parameters
    ----------
    training, synthetic, holdout : DataFrame
        ``synthetic`` and ``holdout`` must contain every training column (extra columns are
        ignored). ``holdout`` is optional; qa's reference ``ori`` is training ∪ holdout.
    group_key : str, optional
        Key linking the rows of a sequence (sequential data).
    seed : int
        Replays qa's random draws of ``qa.set_random_state(seed)``.
    max_triples : int
        Above this many column triples a seeded sample of this size is averaged.
    details : bool, default False
        Keep the binned frames in ``AccuracyReport.details`` (:class:`AccuracyDetails`), for
        the quality report; the figures are the same either way.
    """
    for name, table in (("synthetic", synthetic), ("holdout", holdout)):
        if table is None:
            continue
        lacking = [c for c in training.columns if c not in table.columns]
        if lacking:
            raise InputError(f"{name} table lacks training column {lacking[0]!r}")
    if group_key is not None:
        for name, table in (("training", training), ("synthetic", synthetic), ("holdout", holdout)):
            if table is not None and group_key not in table.columns:
                raise InputError(f"group key {group_key!r} not found in the {name} table")
    columns = list(training.columns)
    synthetic = synthetic[columns]
    holdout = holdout[columns] if holdout is not None else None

    rng = np.random.RandomState(seed)
    frames = prepare_frames(training, synthetic, holdout, group_key=group_key, rng=rng)
    reference = frames.reference
    binner = Binner(n_bins=10).fit(reference)
    ref_codes = binner.transform(reference)
    syn_codes = binner.transform(frames.synthetic)
    n_codes = binner.n_codes
    names = binner.names

    tables, l1_next = _uni_bi_tri(ref_codes, syn_codes, n_codes, names, seed=seed, max_triples=max_triples)
    uni_t, bi_t, tri_t, n_triples_total = tables

    coherence_t = pd.DataFrame(columns=["column", "part", "accuracy", "accuracy_max"])
    if frames.sequential and len(columns) > 1:
        nxt_t = l1_next
        nxt_t.insert(1, "part", "next_row")
        ori_raw = training if holdout is None else pd.concat([training, holdout], axis=0, ignore_index=True)
        ref_rows = coherence_rows(ori_raw, group_key, rng)
        syn_rows = coherence_rows(synthetic, group_key, rng)
        data_columns = [c for c in columns if c != group_key]
        coherence_t = pd.concat(
            [nxt_t, _coherence(ref_rows, syn_rows, group_key, data_columns)], ignore_index=True
        )

    fields = _aggregate(uni_t, bi_t, tri_t, coherence_t)
    rows = {"training": len(training), "synthetic": len(synthetic)}
    if holdout is not None:
        rows["holdout"] = len(holdout)
    return AccuracyReport(
        fields=fields,
        univariate=uni_t,
        bivariate=bi_t,
        trivariate=tri_t,
        coherence=coherence_t,
        n_triples_total=n_triples_total,
        sequential=frames.sequential,
        rows=rows,
        details=(AccuracyDetails(names, list(binner.columns_), ref_codes, syn_codes, len(frames.training))
                 if details else None),
    )


def _aggregate(uni: pd.DataFrame, bi: pd.DataFrame, tri: pd.DataFrame, coh: pd.DataFrame) -> dict:
    out: dict[str, float | None] = {}
    parts = {"univariate": uni, "bivariate": bi, "trivariate": tri}
    for suffix, column in (("", "accuracy"), ("_max", "accuracy_max")):
        means = {name: _mean(t[column]) for name, t in parts.items()}
        coherence_parts = [
            _mean(coh.loc[coh["part"] == p, column])
            for p in ("next_row", "categories_per_sequence", "sequences_per_category")
        ]
        coherence_parts = [m for m in coherence_parts if m is not None]
        means["coherence"] = float(np.mean(coherence_parts)) if coherence_parts else None
        available = [m for m in means.values() if m is not None]
        out["overall" + suffix] = float(np.mean(available)) if available else None
        for name, value in means.items():
            out[name + suffix] = value
    return {name: _round7(out[name]) for name in FIELDS}
