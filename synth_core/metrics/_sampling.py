"""The metric's view of a table: qa-compatible accuracy and coherence frames.

mostlyai-qa does not compare raw tables. It first builds, per table, an *accuracy frame* with one
row per sequence (``qa-metrics.md`` section 1.2): the sequence length, one uniformly drawn
position ``t ∈ {0 … L−2}`` (``tgt::`` columns) and its successor (``nxt::`` columns). Flat tables
are the special case of one-row sequences. Coherence uses all rows, binned with 30 bins.

All randomness is drawn from one ``numpy.random.RandomState`` in qa's order (section 1.6), so with
``RandomState(seed)`` the frames equal qa's under ``qa.set_random_state(seed)``:

1. training: permutation of its keys (rows for flat data), then one uniform per key;
2. holdout: the same;
3. synthetic: the same;
4. coherence (training ∪ holdout, then synthetic): permutation of keys, permutation of rows.

Step 4 matters only when a sequence has more than 100 rows (qa keeps 100 random rows of it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from synth_core.errors import InputError

TGT = "tgt::"
NXT = "nxt::"
SEQUENCE_LENGTH = "Sequence Length"
MAX_COLUMNS = 300  # qa keeps the first 300 columns in alphabetical order
MAX_SEQUENCE_ROWS = 100  # qa's coherence keeps at most 100 random rows per sequence


def harmonise(column: pd.Series) -> pd.Series:
    """mostlyai-qa's dtype harmonisation: datetimes → ``datetime64[ns]``, numbers → ``Float64``, else object."""
    try:
        if pd.api.types.is_datetime64_any_dtype(column.dtype):
            if getattr(column.dt, "tz", None) is not None:
                return column.dt.tz_localize(None).astype("datetime64[ns]")
            return column.astype("datetime64[ns]")
        if pd.api.types.is_numeric_dtype(column.dtype):
            return column.astype("Float64")
        return column.astype("object")
    except (TypeError, ValueError, OverflowError):
        return column


def coerce_like(column: pd.Series, reference_dtype) -> pd.Series:
    """Coerce a holdout/synthetic column to the training column's harmonised dtype, like qa."""
    if pd.api.types.is_numeric_dtype(reference_dtype):
        column = pd.to_numeric(column, errors="coerce")
    elif pd.api.types.is_datetime64_any_dtype(reference_dtype):
        column = pd.to_datetime(column, errors="coerce")
        if getattr(column.dt, "tz", None) is not None:
            column = column.dt.tz_localize(None)
    try:
        return column.astype(reference_dtype)
    except (TypeError, ValueError):
        return column.astype("object")


@dataclass(frozen=True)
class GroupIndex:
    """Rows grouped by key, in qa's *sorted* key order.

    ``group[i]`` is row i's group number (0 … n_groups−1 in sorted key order), ``position[i]`` its
    0-based position within the group in file order, ``lengths`` the group sizes, ``order`` the row
    indices sorted by (group, position) and ``starts`` each group's first slot in ``order``.
    """

    group: np.ndarray
    position: np.ndarray
    lengths: np.ndarray
    order: np.ndarray
    starts: np.ndarray
    first_seen: np.ndarray  # group numbers in order of first appearance in the file

    @property
    def n_groups(self) -> int:
        return len(self.lengths)

    @classmethod
    def from_keys(cls, keys: pd.Series | None, n_rows: int) -> GroupIndex:
        if keys is None:
            group = np.arange(n_rows, dtype=np.int64)
            n_groups = n_rows
        else:
            try:
                group, uniques = pd.factorize(keys, sort=True)
            except TypeError:
                raise InputError(f"group key {keys.name!r} mixes types that cannot be ordered") from None
            if (group < 0).any():
                raise InputError(f"group key {keys.name!r} has missing values")
            group = group.astype(np.int64)
            n_groups = len(uniques)
        lengths = np.bincount(group, minlength=n_groups).astype(np.int64)
        order = np.argsort(group, kind="stable")
        starts = np.zeros(n_groups, dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        position = np.empty(n_rows, dtype=np.int64)
        position[order] = np.arange(n_rows, dtype=np.int64) - np.repeat(starts, lengths)
        _, first_idx = np.unique(group, return_index=True)
        first_seen = group[np.sort(first_idx)]
        return cls(group, position, lengths, order, starts, first_seen)


def accuracy_frame(
    table: pd.DataFrame,
    group_key: str | None,
    rng: np.random.RandomState,
    *,
    sequential: bool,
    reference_dtypes: dict | None = None,
) -> pd.DataFrame:
    """One table's accuracy frame, drawing from ``rng`` exactly as qa does.

    Columns: ``tgt::Sequence Length`` (sequential only), ``tgt::<c>`` and ``nxt::<c>``
    (sequential only) for the first 300 data columns in alphabetical order. Rows come in qa's
    order (the shuffled keys), which matters for ties in category ranking.
    """
    data_columns = sorted(c for c in table.columns if c != group_key)[:MAX_COLUMNS]
    keys = table[group_key] if group_key is not None else None
    groups = GroupIndex.from_keys(keys, len(table))

    # qa shuffles the keys (flat: the rows) first; the permutation only orders the output rows.
    key_order = groups.first_seen if group_key is not None else np.arange(groups.n_groups)
    shuffled = key_order[rng.permutation(len(key_order))]
    # One uniform per key in sorted key order picks the position t ∈ {0 … L−2}.
    selected = ((groups.lengths - 1) * rng.random_sample(groups.n_groups)).astype(np.int64)

    first_rows = groups.order[groups.starts + selected]
    has_next = selected + 1 < groups.lengths
    next_rows = groups.order[np.minimum(groups.starts + selected + 1, len(table) - 1)]

    first_rows = first_rows[shuffled]
    next_rows = next_rows[shuffled]
    has_next = has_next[shuffled]

    values = table[data_columns]
    out: dict[str, pd.Series] = {}
    if sequential:
        out[TGT + SEQUENCE_LENGTH] = pd.Series(groups.lengths[shuffled]).astype("Int64")
    tgt = values.iloc[first_rows].reset_index(drop=True)
    for c in data_columns:
        out[TGT + c] = tgt[c]
    if sequential:
        nxt = values.iloc[next_rows].reset_index(drop=True)
        for c in data_columns:
            col = nxt[c]
            if not has_next.all():
                col = col.where(pd.Series(has_next), other=None)
            out[NXT + c] = col
    frame = pd.DataFrame(out)
    frame = frame.apply(harmonise)
    if reference_dtypes is not None:
        for c, dtype in reference_dtypes.items():
            frame[c] = coerce_like(frame[c], dtype)
    return frame


@dataclass
class QAFrames:
    """The three accuracy frames plus the raw tables used for coherence."""

    training: pd.DataFrame
    holdout: pd.DataFrame | None
    synthetic: pd.DataFrame
    sequential: bool

    @property
    def reference(self) -> pd.DataFrame:
        """mostlyai-qa's ``ori``: training ∪ holdout accuracy frames."""
        if self.holdout is None:
            return self.training
        return pd.concat([self.training, self.holdout], axis=0, ignore_index=True)


def is_sequential(training: pd.DataFrame, group_key: str | None) -> bool:
    """mostlyai-qa's setup rule: 1:N when the key repeats in the training table."""
    return group_key is not None and not training[group_key].is_unique


def prepare_frames(
    training: pd.DataFrame,
    synthetic: pd.DataFrame,
    holdout: pd.DataFrame | None,
    *,
    group_key: str | None,
    rng: np.random.RandomState,
) -> QAFrames:
    """mostlyai-qa's accuracy frames for training, holdout and synthetic, in qa's RNG order (steps 1-3)."""
    sequential = is_sequential(training, group_key)
    trn = accuracy_frame(training, group_key, rng, sequential=sequential)
    dtypes = trn.dtypes.to_dict()
    hol = None
    if holdout is not None:
        hol = accuracy_frame(holdout, group_key, rng, sequential=sequential, reference_dtypes=dtypes)
    syn = accuracy_frame(synthetic, group_key, rng, sequential=sequential, reference_dtypes=dtypes)
    return QAFrames(trn, hol, syn, sequential)


def coherence_rows(table: pd.DataFrame, group_key: str, rng: np.random.RandomState) -> pd.DataFrame:
    """mostlyai-qa's coherence sample: all rows of every sequence, at most 100 random rows of a longer one.

    Draws a permutation of the keys and one of the rows (qa's RNG steps 4/5).
    """
    keys = table[group_key]
    n_keys = keys.nunique(dropna=False)
    rng.permutation(n_keys)  # qa shuffles the keys; with no sample-size cap it keeps them all
    row_perm = rng.permutation(len(table))
    groups = GroupIndex.from_keys(keys, len(table))
    if groups.lengths.max() <= MAX_SEQUENCE_ROWS:
        return table
    shuffled = table.iloc[row_perm]
    rank = shuffled.groupby(group_key, sort=False).cumcount().to_numpy()
    return shuffled[rank < MAX_SEQUENCE_ROWS].reset_index(drop=True)
