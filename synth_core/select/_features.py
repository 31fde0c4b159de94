"""The feature set of the selection objective.

A *feature* is a tuple of 1, 2 or 3 column indices (always stored sorted ascending). Its
*cells* are the joint bins of those columns, flattened row-major: for columns ``(a, b, c)``
with ``nb``/``nc`` bins the cell of a row is ``code_a * nb * nc + code_b * nc + code_c``.
All features' cells are laid end to end in one long vector of length ``total_cells``; the
global cell index of a row for feature ``f`` is ``offsets[f] + local cell``.

To keep the numba kernels branch-free every feature is stored with three column slots:
``cols[f]`` pads unused slots with column 0 and ``strides[f]`` gives them stride 0, so the
global cell is always ``offsets[f] + sum_k codes[r, cols[f, k]] * strides[f, k]``.

Weights follow the metric: each present phase (uni, bi, tri) weighs ``1 / n_phases`` and
the features within a phase share it equally, so ``sum(weights) == 1`` and
``sum_f weights[f] * error_f`` is the objective.

:func:`with_guard` appends one more feature after the triples, phase 3 ("guard"): the privacy
guard's closeness stratum (:mod:`synth_core.select._guard`), a code column of its own, weighted apart
from the metric's phases.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from synth_core.errors import InputError

PHASE_NAMES = ("uni", "bi", "tri", "guard")
GUARD_PHASE = 3
MAX_BINS = 255


@dataclass(frozen=True, eq=False)
class FeatureSet:
    """Features of the objective, in order: all uni features, then pairs, then triples.

    Attributes (``F`` = number of features):
        n_bins: (n_cols,) int64, bins per column.
        cols: (F, 3) int64, the feature's columns, unused slots padded with 0.
        strides: (F, 3) int64, multiplier of each slot in the flattened cell (0 = unused).
        arity: (F,) int64, 1, 2 or 3.
        n_cells: (F,) int64, number of joint cells.
        offsets: (F,) int64, start of the feature's cells in the concatenated vector.
        phase: (F,) int64, 0 = uni, 1 = bi, 2 = tri (equals ``arity - 1``), 3 = guard.
        weights: (F,) float64, (1 / n_phases) * (1 / n_features_in_phase).
        cell_weights: (total_cells,) float64, the weight of the feature owning each cell.
        total_cells: length of the concatenated cell vector.
    """

    n_bins: np.ndarray
    cols: np.ndarray
    strides: np.ndarray
    arity: np.ndarray
    n_cells: np.ndarray
    offsets: np.ndarray
    phase: np.ndarray
    weights: np.ndarray
    cell_weights: np.ndarray
    total_cells: int

    @property
    def n_features(self) -> int:
        return int(self.cols.shape[0])

    @property
    def n_cols(self) -> int:
        return int(self.n_bins.shape[0])

    def columns(self, f: int) -> tuple[int, ...]:
        """The column tuple of feature ``f``."""
        return tuple(int(c) for c in self.cols[f, : self.arity[f]])

    def feature_slice(self, f: int) -> slice:
        """Slice of feature ``f``'s cells in the concatenated vector."""
        start = int(self.offsets[f])
        return slice(start, start + int(self.n_cells[f]))

    def phase_features(self, phase: int) -> np.ndarray:
        """Indices of the features of one phase (0 uni, 1 bi, 2 tri)."""
        return np.flatnonzero(self.phase == phase)


def _as_n_bins(n_bins: Sequence[int] | np.ndarray) -> np.ndarray:
    arr = np.asarray(n_bins)
    if arr.ndim != 1 or arr.size == 0:
        raise InputError("n_bins must be a non-empty 1-D sequence of bin counts")
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.asarray(arr, dtype=np.float64) == np.round(arr)):
            raise InputError("n_bins must hold integers")
    arr = arr.astype(np.int64)
    if arr.min() < 1 or arr.max() > MAX_BINS:
        bad = int(np.flatnonzero((arr < 1) | (arr > MAX_BINS))[0])
        raise InputError(f"column {bad}: n_bins={int(arr[bad])} outside [1, {MAX_BINS}]")
    return arr


def _normalise_tuples(tuples: Iterable[Sequence[int]] | np.ndarray, arity: int, n_cols: int, what: str):
    arr = np.asarray(list(tuples) if not isinstance(tuples, np.ndarray) else tuples, dtype=np.int64)
    if arr.size == 0:
        return np.zeros((0, arity), dtype=np.int64)
    if arr.ndim != 2 or arr.shape[1] != arity:
        raise InputError(f"{what} must be a sequence of {arity}-tuples of column indices")
    if arr.min() < 0 or arr.max() >= n_cols:
        raise InputError(f"{what}: column index outside [0, {n_cols})")
    arr = np.sort(arr, axis=1)
    if np.any(arr[:, 1:] == arr[:, :-1]):
        raise InputError(f"{what}: a feature repeats a column")
    uniq = np.unique(arr, axis=0)
    if uniq.shape[0] != arr.shape[0]:
        raise InputError(f"{what}: duplicate feature")
    return arr


def build_feature_set(
    n_bins: Sequence[int] | np.ndarray,
    pairs: Iterable[Sequence[int]] | np.ndarray = (),
    triples: Iterable[Sequence[int]] | np.ndarray = (),
    *,
    include_uni: bool = True,
) -> FeatureSet:
    """Build the feature set: all columns (uni, unless ``include_uni=False``), then the given
    pairs, then the given triples, each in the given order (columns sorted within a tuple).

    Raises :class:`InputError` for out-of-range columns, repeated columns within a tuple,
    duplicate features, or an empty feature set.
    """
    nb = _as_n_bins(n_bins)
    d = nb.shape[0]
    groups = []
    if include_uni:
        groups.append(np.arange(d, dtype=np.int64)[:, None])
    groups.append(_normalise_tuples(pairs, 2, d, "pairs"))
    groups.append(_normalise_tuples(triples, 3, d, "triples"))

    cols_list, arity_list = [], []
    for g in groups:
        if g.shape[0] == 0:
            continue
        padded = np.zeros((g.shape[0], 3), dtype=np.int64)
        padded[:, : g.shape[1]] = g
        cols_list.append(padded)
        arity_list.append(np.full(g.shape[0], g.shape[1], dtype=np.int64))
    if not cols_list:
        raise InputError("the feature set is empty (no uni, pair or triple features)")
    cols = np.concatenate(cols_list)
    arity = np.concatenate(arity_list)
    F = cols.shape[0]

    used = np.arange(3)[None, :] < arity[:, None]
    bins = np.where(used, nb[cols], 1)  # (F, 3)
    n_cells = bins.prod(axis=1)
    strides = np.zeros((F, 3), dtype=np.int64)
    # stride of slot k = product of bins of later used slots
    strides[:, 2] = 1
    strides[:, 1] = bins[:, 2]
    strides[:, 0] = bins[:, 1] * bins[:, 2]
    strides = np.where(used, strides, 0)
    offsets = np.zeros(F, dtype=np.int64)
    np.cumsum(n_cells[:-1], out=offsets[1:])
    total_cells = int(n_cells.sum())
    if total_cells >= 2**62:
        raise InputError("feature set too large")

    phase = arity - 1
    present = np.unique(phase)
    weights = np.zeros(F, dtype=np.float64)
    for p in present:
        members = phase == p
        weights[members] = 1.0 / (len(present) * int(members.sum()))
    cell_weights = np.repeat(weights, n_cells)

    for a in (nb, cols, strides, arity, n_cells, offsets, phase, weights, cell_weights):
        a.setflags(write=False)
    return FeatureSet(
        n_bins=nb,
        cols=np.ascontiguousarray(cols),
        strides=np.ascontiguousarray(strides),
        arity=arity,
        n_cells=n_cells,
        offsets=offsets,
        phase=phase,
        weights=weights,
        cell_weights=cell_weights,
        total_cells=total_cells,
    )


def with_guard(feature_set: FeatureSet, n_strata: int, weight: float) -> FeatureSet:
    """``feature_set`` plus one feature on a new last column (the guard's stratum, ``n_strata``
    codes), weighted ``weight`` apart from the metric's phases.

    The metric's features keep their cells, so a target for the result is the metric's target
    followed by the stratum target.
    """
    fs = feature_set
    d = fs.n_cols
    if not 1 <= n_strata <= MAX_BINS:
        raise InputError(f"n_strata must lie in [1, {MAX_BINS}], got {n_strata}")
    frozen = dict(
        n_bins=np.append(fs.n_bins, n_strata),
        cols=np.vstack([fs.cols, [[d, 0, 0]]]),
        strides=np.vstack([fs.strides, [[1, 0, 0]]]),
        arity=np.append(fs.arity, 1),
        n_cells=np.append(fs.n_cells, n_strata),
        offsets=np.append(fs.offsets, fs.total_cells),
        phase=np.append(fs.phase, GUARD_PHASE),
        weights=np.append(fs.weights, float(weight)),
        cell_weights=np.append(fs.cell_weights, np.full(n_strata, float(weight))),
    )
    for a in frozen.values():  # np.append / np.vstack return fresh contiguous arrays
        a.setflags(write=False)
    return FeatureSet(**frozen, total_cells=fs.total_cells + n_strata)


def all_pairs(n_cols: int) -> np.ndarray:
    """All ``C(n_cols, 2)`` pairs, lexicographic."""
    return np.asarray(list(combinations(range(n_cols), 2)), dtype=np.int64).reshape(-1, 2)


def check_codes(codes: np.ndarray, n_bins: np.ndarray, what: str = "codes") -> np.ndarray:
    """Validate a code matrix against ``n_bins``; return it C-contiguous.

    The kernels index tables with the codes unchecked, so every public entry point calls
    this first: dtype uint8, 2-D, one column per bin count, every code < its column's bins.
    """
    if not isinstance(codes, np.ndarray) or codes.ndim != 2:
        raise InputError(f"{what}: expected a 2-D numpy array of bin codes")
    if codes.dtype != np.uint8:
        raise InputError(f"{what}: expected dtype uint8, got {codes.dtype}")
    if codes.shape[1] != n_bins.shape[0]:
        raise InputError(f"{what}: has {codes.shape[1]} columns, n_bins has {n_bins.shape[0]}")
    codes = np.ascontiguousarray(codes)
    if codes.shape[0]:
        top = codes.max(axis=0).astype(np.int64)
        bad = np.flatnonzero(top >= n_bins)
        if bad.size:
            j = int(bad[0])
            raise InputError(f"{what}: column {j} has code {int(top[j])} >= n_bins {int(n_bins[j])}")
    return codes


def check_row_weights(weights, n_rows: int, what: str = "weights") -> np.ndarray:
    """``None`` -> empty float64 array (the kernels' "unweighted" marker); else a float64
    vector of length ``n_rows`` with finite, non-negative entries."""
    if weights is None:
        return np.zeros(0, dtype=np.float64)
    w = np.ascontiguousarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.shape[0] != n_rows:
        raise InputError(f"{what}: expected {n_rows} row weights, got shape {w.shape}")
    if w.size and (not np.all(np.isfinite(w)) or w.min() < 0):
        raise InputError(f"{what}: row weights must be finite and non-negative")
    return w


def row_cells(codes: np.ndarray, feature_set: FeatureSet, *, max_elements: int = 50_000_000) -> np.ndarray:
    """Global cell index of every row for every feature, shape ``(n_rows, n_features)``, int64.

    Materialises ``n_rows * n_features`` indices, so it is for small cases and tests only
    (refuses more than ``max_elements``); the kernels compute cells on the fly instead.
    """
    from synth_core.select import _kernels as kernels
    codes = check_codes(codes, feature_set.n_bins)
    n = codes.shape[0]
    if n * feature_set.n_features > max_elements:
        raise ValueError(
            f"row_cells would materialise {n} x {feature_set.n_features} indices; "
            f"use the on-the-fly kernels instead"
        )
    out = np.empty((n, feature_set.n_features), dtype=np.int64)
    kernels.row_cells(codes, feature_set.cols, feature_set.strides, feature_set.offsets, out)
    return out
