"""What the quality report shows, taken from an evaluation's own figures (no recomputation of a
metric): per-column frequency tables on the metric's bins, the worst pairs' binned tables,
association matrices, coherence parts, sequence lengths, distances and attack ROC curves.

Everything here is plain numpy/pandas on :attr:`synth_core.metrics._evaluate.Evaluation.details`
(``evaluate(..., details=True)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from synth_core.errors import InputError

TGT = "tgt::"
WORST_PAIRS = 10
MAX_MATRIX_COLUMNS = 30  # beyond this the association matrix shows the worst columns only
WORST_COHERENCE = 8
TABLES = ("training", "holdout", "synthetic")


@dataclass(frozen=True)
class ColumnView:
    """One column on the metric's bins: proportions per table, its accuracy and kind."""

    name: str
    kind: str
    labels: list[str]
    shares: dict[str, np.ndarray]  # table → proportion per bin (holdout absent without one)
    accuracy: float
    accuracy_max: float


@dataclass(frozen=True)
class PairView:
    """One column pair: binned joint proportions of training and synthetic."""

    columns: tuple[str, str]
    labels: tuple[list[str], list[str]]
    training: np.ndarray
    synthetic: np.ndarray
    accuracy: float


@dataclass(frozen=True)
class ReportData:
    """Everything the page draws, in the order it draws it."""

    columns: list[ColumnView]
    pairs: list[PairView]
    association: dict[str, Any] | None  # names, training, synthetic (Cramér's V matrices)
    coherence: pd.DataFrame  # column, next_row, categories_per_sequence, sequences_per_category
    sequence_lengths: dict[str, np.ndarray] | None
    dcr: dict[str, np.ndarray] | None  # training, holdout: distance per sampled synthetic unit
    roc: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # attack → fpr, tpr


def report_data(evaluation) -> ReportData:
    """Collect the report's views from an evaluation made with ``details=True``.

    Raises
    ------
    InputError
        The evaluation was made without ``details=True``.
    """
    details = evaluation.details
    if details is None or details.get("accuracy") is None:
        raise InputError("the quality report needs evaluate(..., details=True)")
    acc = evaluation.accuracy
    binned = details["accuracy"]
    codes = binned.split()
    if len(codes["holdout"]) == 0:
        codes.pop("holdout")
    index = {name[len(TGT):]: j for j, name in enumerate(binned.names) if name.startswith(TGT)}
    columns = _columns(acc.univariate, binned.bins, codes, index)
    pairs = _pairs(acc.bivariate, binned.bins, codes, index)
    association = _association([c.name for c in columns], binned.bins, codes, index)
    privacy = details.get("privacy")
    return ReportData(
        columns=columns,
        pairs=pairs,
        association=association,
        coherence=_coherence(acc.coherence),
        sequence_lengths=details.get("sequence_lengths"),
        dcr=None if privacy is None else {"training": privacy["dcr_training"], "holdout": privacy["dcr_holdout"]},
        roc={} if privacy is None else roc_curves(privacy.get("attack_scores") or []),
    )


def _shares(codes: np.ndarray, n_codes: int) -> np.ndarray:
    counts = np.bincount(codes, minlength=n_codes).astype(np.float64)
    return counts / max(counts.sum(), 1.0)


def _columns(univariate: pd.DataFrame, bins: list, codes: dict[str, np.ndarray],
             index: dict[str, int]) -> list[ColumnView]:
    """Every column, worst first (ties by name), with its proportions per table."""
    out = []
    for r in univariate.sort_values(["accuracy", "column"], kind="stable").itertuples():
        j = index[r.column]
        b = bins[j]
        shares = {t: _shares(c[:, j], b.n_codes) for t, c in codes.items()}
        out.append(ColumnView(r.column, b.kind, list(b.labels), shares, float(r.accuracy), float(r.accuracy_max)))
    return out


def _pairs(bivariate: pd.DataFrame, bins: list, codes: dict[str, np.ndarray], index: dict[str, int]) -> list[PairView]:
    """The worst :data:`WORST_PAIRS` pairs as joint proportion tables (rows: first column)."""
    out = []
    for r in bivariate.sort_values(["accuracy", "column_1", "column_2"], kind="stable").head(WORST_PAIRS).itertuples():
        a, b = index[r.column_1], index[r.column_2]
        na, nb = bins[a].n_codes, bins[b].n_codes
        joint = {t: _shares(codes[t][:, a] * nb + codes[t][:, b], na * nb).reshape(na, nb)
                 for t in ("training", "synthetic")}
        out.append(PairView((r.column_1, r.column_2), (list(bins[a].labels), list(bins[b].labels)),
                            joint["training"], joint["synthetic"], float(r.accuracy)))
    return out


def cramers_v(x: np.ndarray, y: np.ndarray, nx: int, ny: int) -> float:
    """Cramér's V of two code vectors (0: independent, 1: one determines the other).

    Codes that never occur are left out of the degrees of freedom, so a column with one value
    gives 0 rather than a division by zero.
    """
    table = np.bincount(x * ny + y, minlength=nx * ny).reshape(nx, ny).astype(np.float64)
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    n = table.sum()
    k = min(table.shape) - 1
    if n == 0 or k < 1:
        return 0.0
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / n
    chi2 = float(((table - expected) ** 2 / expected).sum())
    return float(np.sqrt(min(chi2 / (n * k), 1.0)))


def _association(names: list[str], bins: list, codes: dict[str, np.ndarray], index: dict[str, int]) -> dict | None:
    """Cramér's V between binned columns for training and synthetic (worst columns first,
    at most :data:`MAX_MATRIX_COLUMNS`, then in name order so the matrix reads alphabetically)."""
    picked = sorted(names[:MAX_MATRIX_COLUMNS])
    if len(picked) < 2:
        return None
    out: dict[str, Any] = {"names": picked}
    for t in ("training", "synthetic"):
        m = np.eye(len(picked))
        for i in range(len(picked)):
            for k in range(i + 1, len(picked)):
                a, b = index[picked[i]], index[picked[k]]
                m[i, k] = m[k, i] = cramers_v(codes[t][:, a], codes[t][:, b], bins[a].n_codes, bins[b].n_codes)
        out[t] = m
    return out


def _coherence(coherence: pd.DataFrame) -> pd.DataFrame:
    """The three coherence parts per column, worst (lowest mean) first, at most :data:`WORST_COHERENCE`."""
    parts = ["next_row", "categories_per_sequence", "sequences_per_category"]
    if coherence is None or len(coherence) == 0:
        return pd.DataFrame(columns=["column", *parts])
    wide = coherence.pivot_table(index="column", columns="part", values="accuracy", aggfunc="first")
    wide = wide.reindex(columns=parts)
    wide["mean"] = wide.mean(axis=1)
    wide = wide.reset_index().sort_values(["mean", "column"], kind="stable").head(WORST_COHERENCE)
    return wide[["column", *parts]].reset_index(drop=True)


def roc_curve(members: np.ndarray, non_members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates of the score threshold sweeping from high to low (ties
    step diagonally, as they count half in the AUC)."""
    scores = np.concatenate([members, non_members])
    is_member = np.r_[np.ones(len(members)), np.zeros(len(non_members))]
    order = np.argsort(-scores, kind="stable")
    scores, is_member = scores[order], is_member[order]
    last = np.r_[scores[1:] != scores[:-1], True]  # one point per distinct threshold
    tp = np.cumsum(is_member)[last]
    fp = np.cumsum(1 - is_member)[last]
    return np.r_[0.0, fp / max(len(non_members), 1)], np.r_[0.0, tp / max(len(members), 1)]


def roc_curves(folds: list[dict]) -> dict[str, dict[str, np.ndarray]]:
    """One ROC curve per attack over the audit's folds pooled (member and non-member scores
    of all folds together)."""
    if not folds:
        return {}
    out = {}
    for attack in folds[0]:
        members = np.concatenate([f[attack][0] for f in folds])
        non_members = np.concatenate([f[attack][1] for f in folds])
        fpr, tpr = roc_curve(members, non_members)
        out[attack] = {"fpr": fpr, "tpr": tpr}
    return out
