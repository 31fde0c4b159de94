"""Sequential tables as the metric sees them: group layout, per-row and per-group codes, features.

Design, rationale and measured figures: ``docs/design/sequences.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd

from synth_core.errors import InputError
from synth_core.metrics import (
    MAX_COLUMNS,
    NA_BIN,
    OTHER_BIN,
    SEQUENCE_LENGTH,
    ColumnBins,
    coerce_like,
    fit_column,
    harmonise,
)
from synth_core.select.sequential import _group_kernels as gk

ACCURACY_BINS = 10
COHERENCE_BINS = 30
TOP_CATEGORIES = 9
MAX_TRIPLES = 2000
MAX_EXACT_SCALE = 2.0**50  # row-weight scale × rows must stay below this for exact integer counts

KINDS = ("uni", "bi", "tri", "next", "cats", "seqs", "guard")
ROW_KINDS = ("uni", "bi", "tri", "next")
COHERENCE_KINDS = ("next", "cats", "seqs")
GROUP_CODE_KINDS = ("cats", "guard")  # features read from one code per group


# --------------------------------------------------------------------------------------------
# layout


@dataclass(frozen=True)
class GroupLayout:
    """Rows grouped by key: groups numbered in order of first appearance, rows kept in file order.

    ``order[starts[g] : starts[g] + lengths[g]]`` are group ``g``'s original row positions in
    file order. All index arrays are int64.
    """

    keys: np.ndarray  # (n_groups,) key value of each group
    order: np.ndarray  # (n_rows,) original row positions sorted by (group, file order)
    starts: np.ndarray  # (n_groups,)
    lengths: np.ndarray  # (n_groups,)

    @property
    def n_groups(self) -> int:
        return int(self.lengths.shape[0])

    @property
    def n_rows(self) -> int:
        return int(self.order.shape[0])

    @classmethod
    def from_keys(cls, keys: pd.Series, what: str = "table") -> GroupLayout:
        if keys.isna().any():
            raise InputError(f"{what}: group key {keys.name!r} has missing values")
        codes, uniques = pd.factorize(keys, sort=False)
        codes = codes.astype(np.int64)
        n_groups = len(uniques)
        lengths = np.bincount(codes, minlength=n_groups).astype(np.int64)
        order = np.argsort(codes, kind="stable").astype(np.int64)
        starts = np.zeros(n_groups, dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        return cls(np.asarray(uniques), order, starts, lengths)

    def positions(self) -> np.ndarray:
        """0-based position within its group of every row in sorted order."""
        return np.arange(self.n_rows, dtype=np.int64) - np.repeat(self.starts, self.lengths)

    def take(self, groups: np.ndarray) -> GroupLayout:
        """The layout of ``groups`` alone (their original row positions kept)."""
        groups = np.asarray(groups, dtype=np.int64)
        lengths = self.lengths[groups]
        starts = np.zeros(groups.shape[0], dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        return GroupLayout(self.keys[groups], self.rows_of(groups), starts, lengths)

    def rows_of(self, groups: np.ndarray) -> np.ndarray:
        """Original row positions of ``groups`` (in the given group order, file order within)."""
        groups = np.asarray(groups, dtype=np.int64)
        lens = self.lengths[groups]
        firsts = np.repeat(self.starts[groups] - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens)
        return self.order[firsts + np.arange(int(lens.sum()), dtype=np.int64)]


@dataclass(frozen=True)
class GroupedTable:
    """A table in the metric's group view (see docs/design/sequences.md).

    ``row_codes`` has one row per weighted row (group ``g``'s are
    ``wstarts[g] : wstarts[g] + wlengths[g]``) and ``2d + 1`` uint8 columns: column 0 is the
    ``Sequence Length`` code, columns ``1 … d`` the ``tgt::`` codes of the data columns, columns
    ``d+1 … 2d`` the ``nxt::`` codes of the successor row. ``group_codes`` (n_groups, d) uint8:
    distinct-categories-per-sequence codes; ``group_masks`` (n_groups, d) uint16: bitmask of the
    sequences-per-category buckets.
    """

    layout: GroupLayout
    wstarts: np.ndarray
    wlengths: np.ndarray
    row_codes: np.ndarray
    group_codes: np.ndarray
    group_masks: np.ndarray

    @property
    def n_groups(self) -> int:
        return self.layout.n_groups

    @property
    def n_rows(self) -> int:
        return self.layout.n_rows

    @property
    def lengths(self) -> np.ndarray:
        return self.layout.lengths

    @property
    def keys(self) -> np.ndarray:
        return self.layout.keys

    def take(self, groups: np.ndarray, extra_group_codes: np.ndarray | None = None) -> GroupedTable:
        """The table of ``groups`` alone, in the given order; ``extra_group_codes`` (one uint8 per
        given group) becomes a last column of ``group_codes``."""
        groups = np.asarray(groups, dtype=np.int64)
        wl = self.wlengths[groups]
        ws = np.zeros(groups.shape[0], dtype=np.int64)
        np.cumsum(wl[:-1], out=ws[1:])
        rows = np.repeat(self.wstarts[groups] - ws, wl) + np.arange(int(wl.sum()), dtype=np.int64)
        codes = self.group_codes[groups]
        if extra_group_codes is not None:
            codes = np.column_stack([codes, np.asarray(extra_group_codes, dtype=np.uint8)])
        return GroupedTable(self.layout.take(groups), ws, wl, np.ascontiguousarray(self.row_codes[rows]),
                            np.ascontiguousarray(codes), np.ascontiguousarray(self.group_masks[groups]))


# --------------------------------------------------------------------------------------------
# the encoder (all bins fitted on training)


def _encode_values(column: pd.Series, bins: list[ColumnBins]) -> list[np.ndarray]:
    """Codes of ``column`` under several bins, encoding each distinct value once."""
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    uniq = pd.Series(uniques) if len(uniques) else pd.Series([], dtype=column.dtype)
    out = []
    for b in bins:
        na_code = b.labels.index(NA_BIN)
        table = b.encode(uniq) if len(uniq) else np.zeros(0, dtype=np.int64)
        mapped = np.full(codes.shape[0], na_code, dtype=np.uint8)
        ok = codes >= 0
        mapped[ok] = table[codes[ok]]
        out.append(mapped)
    return out


@dataclass
class SequenceEncoder:
    """The metric's discretisation of a sequential table, fitted on training.

    Use :meth:`fit` then :meth:`transform` (any table with the group key and the data columns).
    """

    group_key: str
    seed: int = 0
    columns: list[str] = field(default_factory=list)  # data columns, qa order (alphabetical, ≤ 300)
    dtypes: dict = field(default_factory=dict)  # harmonised training dtypes
    length_bins: ColumnBins | None = None
    tgt_bins: list[ColumnBins] = field(default_factory=list)
    nxt_bins: list[ColumnBins] = field(default_factory=list)
    coh_bins: list[ColumnBins] = field(default_factory=list)
    distinct_bins: list[ColumnBins] = field(default_factory=list)
    bucket_of_code: list[np.ndarray] = field(default_factory=list)  # per column: code -> bucket
    bucket_labels: list[tuple[str, ...]] = field(default_factory=list)

    @property
    def n_columns(self) -> int:
        return len(self.columns)

    @property
    def row_names(self) -> list[str]:
        """Names of the ``row_codes`` columns."""
        return ["tgt::" + SEQUENCE_LENGTH] + ["tgt::" + c for c in self.columns] + ["nxt::" + c for c in self.columns]

    @property
    def row_n_codes(self) -> np.ndarray:
        bins = [self.length_bins] + self.tgt_bins + self.nxt_bins
        return np.array([b.n_codes for b in bins], dtype=np.int64)

    def fit(self, training: pd.DataFrame) -> SequenceEncoder:
        key = self.group_key
        if key not in training.columns:
            raise InputError(f"group key {key!r} not found in the training table")
        self.columns = sorted(str(c) for c in training.columns if c != key)[:MAX_COLUMNS]
        if not self.columns:
            raise InputError("training table has no data columns besides the group key")
        layout = GroupLayout.from_keys(training[key], "training")
        values = {c: harmonise(training[c]).reset_index(drop=True) for c in self.columns}
        self.dtypes = {c: v.dtype for c, v in values.items()}

        # one qa-style accuracy sample: a seeded position per group (first-appearance order)
        rng = np.random.RandomState(self.seed)
        sel = ((layout.lengths - 1) * rng.random_sample(layout.n_groups)).astype(np.int64)
        first = layout.order[layout.starts + sel]
        has_next = sel + 1 < layout.lengths
        nxt = layout.order[np.minimum(layout.starts + sel + 1, layout.n_rows - 1)]
        lengths = pd.Series(layout.lengths).astype("Float64")
        self.length_bins = fit_column("tgt::" + SEQUENCE_LENGTH, lengths, ACCURACY_BINS, kind="numeric")
        self.tgt_bins, self.nxt_bins, self.coh_bins = [], [], []
        for c in self.columns:
            v = values[c]
            t = v.iloc[first].reset_index(drop=True)
            n = v.iloc[nxt].reset_index(drop=True).where(pd.Series(has_next), other=None)
            self.tgt_bins.append(fit_column("tgt::" + c, t, ACCURACY_BINS))
            self.nxt_bins.append(fit_column("nxt::" + c, n, ACCURACY_BINS))
            self.coh_bins.append(fit_column(c, v, COHERENCE_BINS, style="bounded"))
            if self.coh_bins[-1].n_codes > 64:
                raise InputError(f"column {c!r}: more than 64 coherence codes")

        # coherence per group: distinct codes and category buckets
        masks = self._code_masks(layout, values)
        self.distinct_bins, self.bucket_of_code, self.bucket_labels = [], [], []
        for j, c in enumerate(self.columns):
            distinct = np.bitwise_count(masks[:, j]).astype(np.int64)
            self.distinct_bins.append(fit_column(c, pd.Series(distinct), ACCURACY_BINS, kind="numeric"))
            col = self.coh_bins[j]
            m = col.n_codes
            n_seq = np.array([int(((masks[:, j] >> np.uint64(k)) & np.uint64(1)).sum()) for k in range(m)])
            top = np.argsort(-n_seq, kind="stable")[:TOP_CATEGORIES]
            in_top = np.zeros(m, dtype=bool)
            in_top[top] = True
            other = col.labels.index(OTHER_BIN) if col.kind == "categorical" else m
            slot = np.where(in_top, np.arange(m), other)
            slots = np.unique(slot)
            self.bucket_of_code.append(np.searchsorted(slots, slot).astype(np.int64))
            labels = list(col.labels) + [OTHER_BIN]
            self.bucket_labels.append(tuple(labels[s] for s in slots))
        return self

    def _code_masks(self, layout: GroupLayout, values: dict) -> np.ndarray:
        """Per group and column: uint64 bitmask of the 30-bin coherence codes of its rows."""
        masks = np.zeros((layout.n_groups, len(self.columns)), dtype=np.uint64)
        for j, c in enumerate(self.columns):
            (codes,) = _encode_values(values[c], [self.coh_bins[j]])
            bits = np.left_shift(np.uint64(1), codes[layout.order].astype(np.uint64))
            masks[:, j] = np.bitwise_or.reduceat(bits, layout.starts)
        return masks

    def transform(self, table: pd.DataFrame, what: str = "table") -> GroupedTable:
        """The group view of ``table`` under the training bins."""
        key = self.group_key
        if key not in table.columns:
            raise InputError(f"group key {key!r} not found in the {what} table")
        lacking = [c for c in self.columns if c not in table.columns]
        if lacking:
            raise InputError(f"{what} table lacks training column {lacking[0]!r}")
        if len(table) == 0:
            raise InputError(f"{what} table has no rows")
        layout = GroupLayout.from_keys(table[key], what)
        d = len(self.columns)
        n_rows, n_groups = layout.n_rows, layout.n_groups
        lengths = layout.lengths
        wlengths = np.maximum(lengths - 1, 1)
        wstarts = np.zeros(n_groups, dtype=np.int64)
        np.cumsum(wlengths[:-1], out=wstarts[1:])
        pos = layout.positions()
        row_len = np.repeat(lengths, lengths)
        weighted = np.flatnonzero(pos <= np.maximum(row_len - 2, 0))  # sorted-row indices
        succ = np.minimum(weighted + 1, n_rows - 1)
        has_succ = row_len[weighted] >= 2
        n_w = weighted.shape[0]

        row_codes = np.empty((n_w, 2 * d + 1), dtype=np.uint8)
        sl = self.length_bins.encode(pd.Series(lengths).astype("Float64"))
        row_codes[:, 0] = np.repeat(sl, wlengths)
        group_codes = np.empty((n_groups, d), dtype=np.uint8)
        group_masks = np.empty((n_groups, d), dtype=np.uint16)
        for j, c in enumerate(self.columns):
            col = coerce_like(harmonise(table[c]).reset_index(drop=True), self.dtypes[c])
            tgt, nxt, coh = _encode_values(col, [self.tgt_bins[j], self.nxt_bins[j], self.coh_bins[j]])
            tgt = tgt[layout.order]
            nxt = nxt[layout.order]
            row_codes[:, 1 + j] = tgt[weighted]
            row_codes[:, 1 + d + j] = np.where(has_succ, nxt[succ], np.uint8(self.nxt_bins[j].na_code))
            bits = np.left_shift(np.uint64(1), coh[layout.order].astype(np.uint64))
            cmask = np.bitwise_or.reduceat(bits, layout.starts)
            distinct = np.bitwise_count(cmask).astype(np.int64)
            group_codes[:, j] = self.distinct_bins[j].encode(pd.Series(distinct))
            bucket = self.bucket_of_code[j]
            bmask = np.zeros(n_groups, dtype=np.uint16)
            for k in range(bucket.shape[0]):
                hit = ((cmask >> np.uint64(k)) & np.uint64(1)).astype(np.uint16)
                bmask |= hit << np.uint16(bucket[k])
            group_masks[:, j] = bmask
        return GroupedTable(layout, wstarts, wlengths.astype(np.int64), row_codes, group_codes, group_masks)


# --------------------------------------------------------------------------------------------
# features


@dataclass(frozen=True, eq=False)
class FeatureSpec:
    """The objective's features and their cells (one concatenated cell vector).

    ``kind[f]`` indexes :data:`KINDS`. Row features (uni/bi/tri/next) use ``cols``/``strides``
    over the ``row_codes`` columns (unused slots: column 0, stride 0); group features (cats/seqs)
    use ``cols[f, 0]`` = data column index. ``weight[f]`` is the metric's weight of the feature,
    ``denom[f]`` its total at the target size, ``cell_w = weight / denom`` per cell.
    """

    kind: np.ndarray
    cols: np.ndarray
    strides: np.ndarray
    n_cells: np.ndarray
    offsets: np.ndarray
    weight: np.ndarray
    names: tuple
    total_cells: int

    @property
    def n_features(self) -> int:
        return int(self.kind.shape[0])

    def select(self, mask: np.ndarray) -> tuple[FeatureSpec, np.ndarray]:
        """A spec with the features of ``mask`` only (weights unchanged) and the cell index map."""
        idx = np.flatnonzero(mask)
        n_cells = self.n_cells[idx]
        offsets = np.zeros(idx.shape[0], dtype=np.int64)
        np.cumsum(n_cells[:-1], out=offsets[1:])
        cell_map = np.concatenate([np.arange(self.offsets[f], self.offsets[f] + self.n_cells[f]) for f in idx])
        spec = FeatureSpec(
            self.kind[idx], self.cols[idx], self.strides[idx], n_cells, offsets, self.weight[idx],
            tuple(self.names[f] for f in idx), int(n_cells.sum()),
        )
        return spec, cell_map.astype(np.int64)

    def kernel_spec(self, unit_weight: np.ndarray | None = None) -> tuple:
        """The tuple the numba kernels take: ``(rcols, rstrides, roffsets, rw, ccols, coffsets, cw,
        scols, soffsets, sw)``; ``unit_weight`` (F,) is each feature's weight per unit count
        (default 1, for counting only)."""
        if unit_weight is None:
            unit_weight = np.ones(self.n_features, dtype=np.float64)
        uw = np.asarray(unit_weight, dtype=np.float64)
        row = np.isin(self.kind, [KINDS.index(k) for k in ROW_KINDS])
        cats = np.isin(self.kind, [KINDS.index(k) for k in GROUP_CODE_KINDS])
        seqs = self.kind == KINDS.index("seqs")
        c = np.ascontiguousarray
        return (
            c(self.cols[row]), c(self.strides[row]), c(self.offsets[row]), c(uw[row]),
            c(self.cols[cats, 0]), c(self.offsets[cats]), c(uw[cats]),
            c(self.cols[seqs, 0]), c(self.offsets[seqs]), c(uw[seqs]),
        )


def _triples(train: GroupedTable, weights: np.ndarray, n_codes: np.ndarray, tgt: list[int],
             max_triples: int) -> np.ndarray:
    """Triples of ``tgt`` positions: all when at most ``max_triples``, else the top ones by the
    sum of their pairwise mutual informations on the weighted training rows (``synth_core.select._mi``)."""
    n_tgt = len(tgt)
    if math.comb(n_tgt, 3) <= max_triples:
        return np.array(list(combinations(range(n_tgt), 3)), dtype=np.int64).reshape(-1, 3)
    from synth_core.select._mi import top_triples

    codes = np.ascontiguousarray(train.row_codes[:, tgt])
    ranked = top_triples(codes, n_codes[tgt], k=max_triples, weights=weights)
    return np.sort(ranked.triples, axis=1)


def build_features(
    encoder: SequenceEncoder,
    train: GroupedTable,
    row_weights: np.ndarray,
    *,
    sequential: bool = True,
    max_triples: int = MAX_TRIPLES,
) -> FeatureSpec:
    """The metric's feature set (see docs/design/sequences.md) with qa's weights."""
    d = encoder.n_columns
    n_codes = encoder.row_n_codes
    names = encoder.row_names
    # tgt columns: Sequence Length (column 0) only for sequential data
    tgt = list(range(0 if sequential else 1, d + 1))
    feats: list[tuple[int, tuple[int, ...]]] = [(0, (c,)) for c in tgt]
    feats += [(1, p) for p in combinations(tgt, 2)]
    local = _triples(train, row_weights, n_codes, tgt, max_triples) if len(tgt) >= 3 else []
    feats += [(2, tuple(tgt[int(k)] for k in t)) for t in local]
    if sequential:
        feats += [(3, (1 + j, 1 + d + j)) for j in range(d)]
        feats += [(4, (j,)) for j in range(d)]
        feats += [(5, (j,)) for j in range(d)]

    F = len(feats)
    kind = np.array([k for k, _ in feats], dtype=np.int64)
    cols = np.zeros((F, 3), dtype=np.int64)
    strides = np.zeros((F, 3), dtype=np.int64)
    n_cells = np.zeros(F, dtype=np.int64)
    fnames = []
    for f, (k, cs) in enumerate(feats):
        cols[f, : len(cs)] = cs
        if k <= 3:
            sizes = [int(n_codes[c]) for c in cs]
            for s in range(len(cs)):
                strides[f, s] = int(np.prod(sizes[s + 1:], dtype=np.int64))
            n_cells[f] = int(np.prod(sizes, dtype=np.int64))
            fnames.append(tuple(names[c] for c in cs))
        elif k == 4:
            n_cells[f] = encoder.distinct_bins[cs[0]].n_codes
            fnames.append(("distinct::" + encoder.columns[cs[0]],))
        else:
            n_cells[f] = len(encoder.bucket_labels[cs[0]])
            fnames.append(("seqs::" + encoder.columns[cs[0]],))
    offsets = np.zeros(F, dtype=np.int64)
    np.cumsum(n_cells[:-1], out=offsets[1:])

    phases = [p for p in (0, 1, 2) if np.any(kind == p)] + ([3] if sequential else [])
    weight = np.zeros(F, dtype=np.float64)
    for p in phases:
        if p < 3:
            members = kind == p
            weight[members] = 1.0 / (len(phases) * int(members.sum()))
        else:
            for k in (3, 4, 5):
                members = kind == k
                weight[members] = 1.0 / (len(phases) * 3 * int(members.sum()))
    return FeatureSpec(kind, cols, strides, n_cells, offsets, weight, tuple(fnames), int(n_cells.sum()))


# --------------------------------------------------------------------------------------------
# the selection problem


def _weight_scale(*tables: GroupedTable) -> tuple[float, bool]:
    """Row-weight scale ``M`` (lcm of the ``max(L−1, 1)``) and whether counts are exact integers."""
    values = np.unique(np.concatenate([t.wlengths for t in tables]))
    m = 1
    for v in values.tolist():
        m = math.lcm(m, int(v))
        if m > 2**40:
            return 1.0, False
    rows = sum(t.n_rows for t in tables)
    if m * rows >= MAX_EXACT_SCALE:
        return 1.0, False
    return float(m), True


@dataclass(eq=False)
class SequentialProblem:
    """Everything the group selection needs: pool and training in group view, features, targets.

    ``target`` = training counts × ``n_target / n_train_groups``; ``cell_w`` = weight / total per
    cell, so ``objective(counts) = Σ cell_w · |counts − target|`` (see docs/design/sequences.md).
    """

    encoder: SequenceEncoder
    training: GroupedTable
    pool: GroupedTable
    spec: FeatureSpec
    n_target: int
    scale: float  # row-weight scale M
    exact: bool  # counts are exact integers
    train_counts: np.ndarray
    mean_buckets: np.ndarray  # (F,) training's mean buckets per group (seqs features; 1 elsewhere)
    target: np.ndarray = field(init=False)
    cell_w: np.ndarray = field(init=False)
    unit_w: np.ndarray = field(init=False)  # (F,) weight per unit count = weight / total
    pool_data: tuple = field(init=False)
    kspec: tuple = field(init=False)
    max_rows: int = field(init=False)  # scratch size of a swap: twice the most weighted rows

    def __post_init__(self) -> None:
        spec = self.spec
        n = float(self.n_target)
        self.target = self.train_counts * (n / self.training.n_groups)
        row = np.isin(spec.kind, [KINDS.index(k) for k in ROW_KINDS])
        denom = np.where(row, n * self.scale, n * self.mean_buckets)
        self.unit_w = spec.weight / denom
        self.cell_w = np.repeat(self.unit_w, spec.n_cells)
        self.pool_data = group_data(self.pool, self.scale)
        self.kspec = spec.kernel_spec(self.unit_w)
        self.max_rows = 2 * int(max(self.pool.wlengths.max(), self.training.wlengths.max()))

    @property
    def n_pool(self) -> int:
        return self.pool.n_groups

    def resized(self, n_target: int) -> SequentialProblem:
        """The same problem for another subset size (targets and totals rescaled)."""
        return SequentialProblem(
            self.encoder, self.training, self.pool, self.spec, int(n_target), self.scale, self.exact,
            self.train_counts, self.mean_buckets,
        )

    def guarded(self, guard, closeness_weight: float) -> SequentialProblem:
        """The problem the search runs on under the privacy guard: the candidate pool groups only
        (in pool order), plus a feature that holds the subset's closeness-stratum histogram at
        the candidates' (weight ``closeness_weight``; :mod:`synth_core.select._guard`)."""
        if guard is None or not guard.enabled:
            return self
        spec = self.spec
        cols = np.vstack([spec.cols, [[self.pool.group_codes.shape[1], 0, 0]]])
        extended = FeatureSpec(
            np.append(spec.kind, KINDS.index("guard")), cols, np.vstack([spec.strides, [[0, 0, 0]]]),
            np.append(spec.n_cells, guard.n_strata), np.append(spec.offsets, spec.total_cells),
            np.append(spec.weight, float(closeness_weight)), spec.names + (("guard::closeness",),),
            spec.total_cells + guard.n_strata,
        )
        # training "counts" of the guard cells: the candidates' shares at training's size, so the
        # target (counts x n / training groups) is the candidates' histogram at the subset's size
        shares = guard.stratum_target(1)
        return SequentialProblem(
            self.encoder, self.training, self.pool.take(guard.candidates, guard.strata), extended, self.n_target,
            self.scale, self.exact, np.append(self.train_counts, shares * self.training.n_groups),
            np.append(self.mean_buckets, 1.0),
        )

    def reweighted(self, guard_weight: float) -> SequentialProblem:
        """The same problem (tables shared) with the guard feature weighing ``guard_weight``."""
        guard = self.spec.kind == KINDS.index("guard")
        spec = self.spec
        weighted = FeatureSpec(spec.kind, spec.cols, spec.strides, spec.n_cells, spec.offsets,
                               np.where(guard, float(guard_weight), spec.weight), spec.names, spec.total_cells)
        return SequentialProblem(self.encoder, self.training, self.pool, weighted, self.n_target, self.scale,
                                 self.exact, self.train_counts, self.mean_buckets)

    def accuracy_objective(self, counts: np.ndarray) -> float:
        """:meth:`objective` over the metric's features only (a guard feature left out)."""
        metric = np.repeat(self.spec.kind != KINDS.index("guard"), self.spec.n_cells)
        return float(np.dot(self.cell_w[metric], np.abs(counts - self.target)[metric]))

    def restrict(self, kinds=COHERENCE_KINDS) -> SequentialProblem:
        """The problem restricted to the features of ``kinds`` (e.g. coherence only); a guard
        feature is always kept."""
        mask = np.isin(self.spec.kind, [KINDS.index(k) for k in (*kinds, "guard")])
        if not mask.any():
            raise InputError(f"no features of kinds {kinds}")
        spec, cell_map = self.spec.select(mask)
        return SequentialProblem(
            self.encoder, self.training, self.pool, spec, self.n_target, self.scale, self.exact,
            self.train_counts[cell_map], self.mean_buckets[mask],
        )

    def counts(self, groups: np.ndarray) -> np.ndarray:
        """Cell counts of the pool ``groups``, recomputed from scratch."""
        groups = np.ascontiguousarray(groups, dtype=np.int64)
        out = np.zeros(self.spec.total_cells, dtype=np.float64)
        gk.accumulate(groups, 1.0, self.pool_data, self.kspec, out)
        return out

    def objective(self, counts: np.ndarray) -> float:
        """``Σ cell_w · |counts − target|`` (≈ 2 × (1 − the metric's overall accuracy))."""
        return float(np.dot(self.cell_w, np.abs(counts - self.target)))

    def feature_errors(self, counts: np.ndarray) -> np.ndarray:
        """Per feature ``Σ_cells |c − t| / total`` (the metric's L1, 0 … 2)."""
        spec = self.spec
        weighted = self.cell_w * np.abs(counts - self.target)
        per = np.add.reduceat(weighted, spec.offsets) if spec.total_cells else np.zeros(0)
        return per / np.where(spec.weight > 0, spec.weight, 1.0)

    def breakdown(self, counts: np.ndarray) -> dict[str, float]:
        """Estimated accuracies per part (``1 − mean error / 2``) and the objective."""
        err = self.feature_errors(counts)
        out: dict[str, float] = {}
        for k, name in enumerate(KINDS):
            m = self.spec.kind == k
            if m.any() and name != "guard":
                out[name] = float(1.0 - err[m].mean() / 2.0)
        parts = [out[k] for k in COHERENCE_KINDS if k in out]
        if parts:
            out["coherence"] = float(np.mean(parts))
        phases = [out[k] for k in ("uni", "bi", "tri", "coherence") if k in out]
        out["overall"] = float(np.mean(phases))
        out["objective"] = self.accuracy_objective(counts)
        return out


def group_data(table: GroupedTable, scale: float) -> tuple:
    """The arrays the numba kernels take for one table: (X, wstarts, wlengths, group weights, G, B)."""
    gw = scale / table.wlengths.astype(np.float64)
    return (
        np.ascontiguousarray(table.row_codes),
        table.wstarts,
        table.wlengths,
        gw,
        np.ascontiguousarray(table.group_codes),
        np.ascontiguousarray(table.group_masks),
    )


def build_problem(
    training: pd.DataFrame,
    pool: pd.DataFrame,
    group_key: str,
    n_target: int | None = None,
    *,
    seed: int = 0,
    max_triples: int = MAX_TRIPLES,
    encoder: SequenceEncoder | None = None,
) -> SequentialProblem:
    """Fit the bins on training, encode training and pool, build features and targets."""
    if group_key not in training.columns:
        raise InputError(f"group key {group_key!r} not found in the training table")
    if group_key not in pool.columns:
        raise InputError(f"group key {group_key!r} not found in the pool table")
    lacking = [c for c in training.columns if c not in pool.columns]
    if lacking:
        raise InputError(f"pool table lacks training column {lacking[0]!r}")
    enc = encoder or SequenceEncoder(group_key, seed=seed).fit(training)
    train = enc.transform(training, "training")
    pool_t = enc.transform(pool, "pool")
    n_target = train.n_groups if n_target is None else int(n_target)
    if n_target < 1:
        raise InputError(f"n_target must be at least 1, got {n_target}")
    if n_target > pool_t.n_groups:
        raise InputError(f"n_target {n_target:,} exceeds the pool's {pool_t.n_groups:,} groups")
    scale, exact = _weight_scale(train, pool_t)
    sequential = bool((train.lengths > 1).any())  # qa's 1:N setup: the key repeats
    row_w = np.repeat(scale / train.wlengths.astype(np.float64), train.wlengths)
    spec = build_features(enc, train, row_w, sequential=sequential, max_triples=max_triples)
    kspec = spec.kernel_spec()
    train_counts = np.zeros(spec.total_cells, dtype=np.float64)
    gk.accumulate(np.arange(train.n_groups, dtype=np.int64), 1.0, group_data(train, scale), kspec, train_counts)
    totals = np.add.reduceat(train_counts, spec.offsets)
    mean_buckets = np.where(spec.kind == KINDS.index("seqs"), totals / train.n_groups, 1.0)
    return SequentialProblem(enc, train, pool_t, spec, n_target, scale, exact, train_counts, mean_buckets)


def random_groups(n_pool: int, n_target: int, seed: int) -> np.ndarray:
    """A seeded uniform subset of ``n_target`` of ``n_pool`` group indices, sorted."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_pool, size=n_target, replace=False)).astype(np.int64)


__all__ = [
    "GroupLayout",
    "GroupedTable",
    "SequenceEncoder",
    "FeatureSpec",
    "SequentialProblem",
    "build_features",
    "build_problem",
    "group_data",
    "random_groups",
]
