"""Exact k nearest neighbours under a mixed categorical / numeric distance (numba kernels).

A row is a vector of integer *signature* codes plus a vector of numbers. The squared distance
of two rows is

    (number of signature codes that differ) + Σ over numbers present in both rows of (a − b)².

The caller puts into the signature every categorical column (codes compared for equality
only) and, for every numeric column that has a missing value anywhere, a 0/1 "is missing"
flag. That is the distance of :mod:`synth_core.metrics._privacy`: a categorical mismatch adds 1, NaN vs
NaN adds 0, NaN vs a number adds 1 (through the flag; the difference of the two numbers is NaN
and adds nothing).

Why this layout is fast and still exact
---------------------------------------
Every signature mismatch adds a whole 1, while the numeric part of a close pair is usually
well below 1 (numbers are rank-transformed to [0, 1]). The reference rows are sorted into
*blocks* of equal signature, and any row of a block ``t`` codes away from the query is at least
``t`` away. A query scans, in this order and only while its current k-th smallest distance
exceeds the block's count of differences:

1. the block of its own signature;
2. the blocks one code away. They are found without looking at the others: per signature
   column ``c`` the blocks are sorted by a hash of their signature with code ``c`` left out, and
   a block that differs from the query only in ``c`` has the query's hash (a hash collision
   only adds a candidate, whose exact count of differences then rules it out);
3. the blocks two or more codes away, which few queries need, in one pass over every block.

Inside a block the rows are sorted by the first numeric feature, and the scan walks outwards
from the query's position in that order, stopping in a direction as soon as ``t +
(difference in that feature)²`` reaches the k-th smallest distance, since every row further out
is at least that far. A candidate's sum is abandoned as soon as it reaches the k-th smallest
distance. None of this skips a row that could enter the k smallest, so the result equals a
brute-force search.

When blocks prune little (many codes differ between neighbours, or many numeric columns carry
most of the distance: wide tables), a second exact search takes over, chosen by timing both on
a batch of queries: matrix products of embeddings whose squared distances are lower bounds of
the true ones, followed by exact measurement of every reference the bound cannot rule out
(:class:`_GemmSearch`). On 80 columns of 10,000 rows it is 16 times faster than the blocks.

Determinism: a pair's distance is always summed in the same order (the signature count, then
the numbers in column order), and every query is searched on its own, so the results are the
same for any number of threads and any order of the queries. Queries are cut into chunks that
run on ``numba.get_num_threads()`` Python threads (the kernel releases the GIL).
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import pandas as pd


def k_nearest_distances(q_cat, q_num, r_cat, r_num, k: int, method: str = "auto") -> np.ndarray:
    """Squared distances from each query row to its ``k`` nearest reference rows, ascending.

    Parameters
    ----------
    q_cat : ndarray of shape (n_queries, n_cat), integer
    r_cat : ndarray of shape (n_refs, n_cat), integer
        Categorical codes, shared between queries and references (missing is a code too).
    q_num : ndarray of shape (n_queries, n_num), float64
    r_num : ndarray of shape (n_refs, n_num), float64
        Numeric features, NaN for missing. Their column order is the order of summation, so
        give every search that must be compared with another the same order; the first column
        orders the rows inside a block, so the feature with the largest spread is best there.
    k : int
        Neighbours per query (at least 1). Missing neighbours (fewer than ``k`` reference
        rows) are ``inf``.
    method : {"auto", "blocked", "gemm"}
        ``"auto"`` times the blocked search on a batch of 64 queries; when the rest would take
        more than a second it times the matrix-product search (:class:`_GemmSearch`) on the next
        batch and keeps the faster. Both are exact and sum alike, so the choice never changes
        a result.

    Returns
    -------
    ndarray of shape (n_queries, k), float64
    """
    if method not in ("auto", "blocked", "gemm"):
        raise ValueError(f"method must be auto, blocked or gemm, got {method!r}")
    q_cat = np.asarray(q_cat, dtype=np.int64).reshape(len(q_num), -1)
    r_cat = np.asarray(r_cat, dtype=np.int64).reshape(len(r_num), -1)
    q_num = np.ascontiguousarray(q_num, dtype=np.float64)
    r_num = np.ascontiguousarray(r_num, dtype=np.float64)
    if int(k) < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    q_sig, r_sig = _signatures(q_cat, q_num, r_cat, r_num)
    out = np.full((len(q_num), int(k)), math.inf)
    n_q = len(q_num)

    def gemm() -> _GemmSearch:
        return _GemmSearch(q_cat, q_sig, q_num, r_cat, np.ascontiguousarray(r_sig), r_num)

    if method == "gemm":
        gemm().run(0, n_q, out)
        return out
    args = (*_block_layout(q_sig, q_num, r_sig, r_num), out)

    def blocked(lo: int, hi: int) -> None:
        _run_chunks(lambda a, b: _k_nearest(*args, a, b), hi - lo, offset=lo)

    if method == "blocked":
        blocked(0, n_q)
    else:
        _auto_search(blocked, gemm, out)
    return out


def _signatures(q_cat, q_num, r_cat, r_num) -> tuple[np.ndarray, np.ndarray]:
    """The signature codes of queries and references: the categorical codes plus a 0/1 flag per
    numeric column with a missing value anywhere, columns ordered by how often two references
    differ there (most often first: a count of differences passes its bound sooner)."""
    # a missing number costs 1 against a present one: a flag in the signature carries it
    flagged = np.isnan(q_num).any(axis=0) | np.isnan(r_num).any(axis=0)
    q_sig = np.hstack([q_cat, np.isnan(q_num[:, flagged]).astype(np.int64)])
    r_sig = np.hstack([r_cat, np.isnan(r_num[:, flagged]).astype(np.int64)])
    if r_sig.shape[1]:
        mismatch = [1.0 - np.sum((np.unique(r_sig[:, c], return_counts=True)[1] / len(r_sig)) ** 2)
                    for c in range(r_sig.shape[1])]
        order = np.argsort(-np.asarray(mismatch), kind="stable")
        q_sig, r_sig = q_sig[:, order], r_sig[:, order]
    return q_sig, r_sig


def _block_layout(q_sig, q_num, r_sig, r_num) -> tuple:
    """The blocked search's inputs (:func:`_k_nearest`'s arguments before ``out``): references
    sorted into blocks of equal signature, by the first numeric feature inside a block, each
    query's own block and the leave-one-out hashes that find the blocks one code away."""
    block = signature_ids(np.vstack([r_sig, q_sig]))
    r_block, q_block = block[: len(r_sig)], block[len(r_sig):]
    first = r_num[:, 0] if r_num.shape[1] else np.zeros(len(r_num))
    rows = np.lexsort((first, r_block))  # by block, then by the first feature (NaN last)
    r_block = r_block[rows]
    starts = np.flatnonzero(np.r_[True, r_block[1:] != r_block[:-1]]) if len(rows) else np.zeros(0, np.int64)
    # a query's own block: ids are shared, so map block id -> block number
    lookup = np.full(int(block.max()) + 1 if len(block) else 0, -1, dtype=np.int64)
    lookup[r_block[starts]] = np.arange(len(starts))
    b_sig = np.ascontiguousarray(r_sig[rows][starts])
    b_hash, q_hash = _leave_one_out_hashes(b_sig), _leave_one_out_hashes(q_sig)
    b_by_hash = np.argsort(b_hash, axis=0, kind="stable").T.copy()  # per column c: blocks by hash
    return (
        np.ascontiguousarray(q_sig),
        q_num,
        lookup[q_block],
        np.ascontiguousarray(q_hash),
        np.ascontiguousarray(r_num[rows]),
        b_sig,
        np.append(starts, len(rows)).astype(np.int64),
        b_by_hash,
        np.take_along_axis(b_hash, b_by_hash.T, axis=0).T.copy(),  # those hashes, sorted per column
    )


def _auto_search(blocked, gemm, out: np.ndarray) -> None:
    """Fill ``out`` with the faster of the two exact searches (``method="auto"``).

    ``blocked(lo, hi)`` runs the blocked search on queries ``lo:hi``; ``gemm()`` builds the
    matrix-product search. The blocked search is timed on a second batch of queries (the first
    may include compiling); when the rest would take longer than ``BLOCKED_BUDGET_S``, the
    matrix-product search is timed on the next batch and the faster one does the rest.
    """
    n_q = len(out)
    first, second = min(PILOT_QUERIES, n_q), min(2 * PILOT_QUERIES, n_q)
    blocked(0, first)
    started = time.perf_counter()
    blocked(first, second)
    done = second
    estimate = (time.perf_counter() - started) * (n_q - done) / max(second - first, 1)
    if estimate > BLOCKED_BUDGET_S:
        # Blocks prune little here (many codes differ, or the numbers dominate): time the
        # matrix-product search on the next batch and keep the faster one for the rest.
        search = gemm()
        search.run(done, done + 1, out[done : done + 1])  # compiles its kernels
        nxt = min(done + 1 + PILOT_QUERIES, n_q)
        started = time.perf_counter()
        search.run(done + 1, nxt, out[done + 1 : nxt])
        rate = (time.perf_counter() - started) / max(nxt - done - 1, 1)
        done = nxt
        if _prefer_gemm(estimate, rate * (n_q - done)):
            search.run(done, n_q, out[done:])
            return
    blocked(done, n_q)


def _prefer_gemm(blocked_s: float, gemm_s: float) -> bool:
    """Whether the matrix-product search is expected to finish the remaining queries sooner."""
    return gemm_s < blocked_s


def _run_chunks(work, n: int, chunk: int = 512, offset: int = 0) -> None:
    """Call ``work(lo, hi)`` over ``offset .. offset + n`` in chunks on numba's thread count.

    The kernels release the GIL, so plain threads run them in parallel; a serial kernel
    compiles in about half the time of a ``parallel=True`` one, which a cold ``synth evaluate``
    feels. Chunks write disjoint rows, so the result does not depend on the thread count.
    """
    threads = max(1, min(numba.get_num_threads(), -(-n // chunk)))
    bounds = [(lo, min(lo + chunk, offset + n)) for lo in range(offset, offset + n, chunk)]
    if threads == 1:
        for lo, hi in bounds:
            work(lo, hi)
        return
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(work, lo, hi) for lo, hi in bounds]:
            future.result()


class _GemmSearch:
    """The exact search by matrix products, for data where blocks prune little.

    Every row is embedded so that the squared Euclidean distance of two embeddings is a lower
    bound of their distance: a categorical column as a one-hot vector scaled by 1/√2 (its 7 most
    frequent reference codes each get a position, the rest share one: two rare codes that
    differ then count 0 instead of 1); a numeric column as its value, and, when it has missing
    values, also a missing-flag of weight ``√(1 − h²)`` with missing values placed at the centre
    of the column's range (half-width ``h``): a missing against a present value then adds at most
    ``h² + 1 − h² = 1``, the true cost (a column wider than 2 keeps only its flag, of weight 1).
    Blocks of queries are multiplied with all references (BLAS, single precision), which gives
    every pair's bound; per query, the k smallest bounds give k exact distances, and every
    reference whose bound, less a rounding margin, does not exceed the k-th exact distance so far
    is measured exactly.
    The result is the k smallest exact distances, summed as the blocked search sums them.
    """

    LEVELS = 8  # one-hot positions per categorical column (the last for the rarer codes)
    CELLS = 8_000_000  # bounds held at a time (64 MB)

    def __init__(self, q_cat, q_sig, q_num, r_cat, r_sig, r_num) -> None:
        self.q_sig, self.q_num, self.r_sig, self.r_num = np.ascontiguousarray(q_sig), q_num, r_sig, r_num
        # single precision for the product: twice as fast, and its rounding (relative 6e-8 per
        # term) stays far inside the margin that _refine adds to every bound
        q_emb, r_emb = self._embed(q_cat, q_num, r_cat, r_num)
        self.q_emb, self.r_emb = q_emb.astype(np.float32), r_emb.astype(np.float32)
        self.q_norm = np.einsum("ij,ij->i", self.q_emb, self.q_emb, dtype=np.float64)
        self.r_norm = np.einsum("ij,ij->i", self.r_emb, self.r_emb, dtype=np.float64)

    def _embed(self, q_cat, q_num, r_cat, r_num) -> tuple[np.ndarray, np.ndarray]:
        q_parts, r_parts = [np.zeros((len(q_num), 0))], [np.zeros((len(r_num), 0))]
        scale = math.sqrt(0.5)
        for c in range(r_cat.shape[1]):
            codes, counts = np.unique(r_cat[:, c], return_counts=True)
            kept = np.sort(codes[np.argsort(-counts, kind="stable")][: self.LEVELS - 1])
            for part, col in ((q_parts, q_cat[:, c]), (r_parts, r_cat[:, c])):
                pos = np.minimum(np.searchsorted(kept, col), len(kept) - 1)
                slot = np.where(kept[pos] == col, pos, len(kept))  # len(kept): the rarer codes
                part.append(np.eye(len(kept) + 1)[slot] * scale)
        for j in range(r_num.shape[1]):
            q_col, r_col = q_num[:, j], r_num[:, j]
            q_nan, r_nan = np.isnan(q_col), np.isnan(r_col)
            if not (q_nan.any() or r_nan.any()):
                q_parts.append(q_col[:, None])
                r_parts.append(r_col[:, None])
                continue
            present = np.concatenate([q_col[~q_nan], r_col[~r_nan]])
            low, high = (present.min(), present.max()) if present.size else (0.0, 0.0)
            half = (high - low) / 2
            if half <= 1.0:
                weight = math.sqrt(1.0 - half * half)
                for part, col, nan in ((q_parts, q_col, q_nan), (r_parts, r_col, r_nan)):
                    part.append(np.column_stack([np.where(nan, low + half, col), nan * weight]))
            else:
                q_parts.append(q_nan[:, None] * 1.0)
                r_parts.append(r_nan[:, None] * 1.0)
        return np.ascontiguousarray(np.hstack(q_parts)), np.ascontiguousarray(np.hstack(r_parts))

    def run(self, lo: int, hi: int, out: np.ndarray) -> None:
        """Fill ``out[0:hi - lo]`` with the k smallest squared distances of queries ``lo:hi``."""
        step = max(64, self.CELLS // max(len(self.r_num), 1))
        for a in range(lo, hi, step):
            b = min(a + step, hi)
            products = self.q_emb[a:b] @ self.r_emb.T
            view = out[a - lo : b - lo]
            _run_chunks(
                lambda x, y: _refine(products, a, self.q_sig, self.q_num, self.q_norm, self.r_sig, self.r_num,
                                     self.r_norm, view, x, y),
                b - a,
                chunk=64,
            )


PILOT_QUERIES = 64  # queries searched first, to time the blocked search
BLOCKED_BUDGET_S = 1.0  # above this estimate for the rest, the matrix-product search is timed too

# odd 64-bit multipliers (fixed, so that runs are reproducible; any values would do)
_HASH_WEIGHTS = np.random.default_rng(20_240_611).integers(1, 2**62, 256, dtype=np.int64) * 2 + 1


def _leave_one_out_hashes(sig: np.ndarray) -> np.ndarray:
    """Per row and signature column ``c``, a hash of the row's codes other than ``c`` (int64,
    wrapping arithmetic): rows equal except in ``c`` share it."""
    n_sig = sig.shape[1]
    weights = np.resize(_HASH_WEIGHTS, n_sig).astype(np.uint64) + np.arange(n_sig, dtype=np.uint64) * np.uint64(2)
    terms = sig.astype(np.uint64) * weights
    total = terms.sum(axis=1, dtype=np.uint64)
    return (total[:, None] - terms).view(np.int64)


def signature_ids(sig: np.ndarray) -> np.ndarray:
    """One int64 id per distinct row of ``sig``, equal ids for equal rows (exact, no hashing)."""
    ids = np.zeros(len(sig), dtype=np.int64)
    for j in range(sig.shape[1]):
        codes = pd.factorize(sig[:, j])[0].astype(np.int64)
        ids = pd.factorize(ids * (int(codes.max()) + 1) + codes)[0].astype(np.int64)
    return ids


@numba.njit(cache=True, nogil=True)
def _scan_block(out, i, q_num, r_num, lo, hi, h):
    """Offer rows ``lo:hi`` of one block, whose signature differs from query ``i``'s in ``h``
    codes, to query ``i``'s k smallest squared distances ``out[i]`` (kept ascending)."""
    k = out.shape[1]
    n_num = q_num.shape[1]
    if lo >= hi:
        return
    # The block is sorted by the first feature; that order bounds the rows further out only
    # when the feature is present on both sides (missingness is constant within a block).
    ordered = n_num > 0 and q_num[i, 0] == q_num[i, 0] and r_num[lo, 0] == r_num[lo, 0]
    start = lo
    if ordered:
        a, b = lo, hi  # first row whose first feature is ≥ the query's
        qv = q_num[i, 0]
        while a < b:
            m = (a + b) // 2
            if r_num[m, 0] < qv:
                a = m + 1
            else:
                b = m
        start = a
    for direction in range(2 if ordered else 1):
        j, stop, step = (start, hi, 1) if direction == 0 else (start - 1, lo - 1, -1)
        while j != stop:
            s = h
            if ordered:
                d = q_num[i, 0] - r_num[j, 0]
                s += d * d
                if s >= out[i, k - 1]:
                    break  # every row further out in this direction is at least as far
            dropped = False
            for f in range(1 if ordered else 0, n_num):
                d = q_num[i, f] - r_num[j, f]
                if d == d:  # both present; a one-sided NaN is counted in the signature
                    s += d * d
                if s >= out[i, k - 1]:
                    dropped = True
                    break
            if not dropped:
                pos = k - 1
                while pos > 0 and out[i, pos - 1] > s:
                    out[i, pos] = out[i, pos - 1]
                    pos -= 1
                out[i, pos] = s
            j += step


@numba.njit(cache=True, nogil=True)
def _k_nearest(q_sig, q_num, q_block, q_hash, r_num, b_sig, b_start, b_by_hash, b_hash_sorted, out, lo, hi):
    """Fill ``out[lo:hi]`` with the k smallest squared distances (k = ``out.shape[1]``) from
    query rows ``lo:hi`` to the reference rows; ``out`` must hold ``inf`` on entry.

    Parameters
    ----------
    q_sig : ndarray of shape (n_queries, n_sig), int64
    q_num : ndarray of shape (n_queries, n_num), float64
    q_block : ndarray of shape (n_queries,), int64
        Block of the query's own signature in the reference, or -1.
    q_hash : ndarray of shape (n_queries, n_sig), int64
        Per column ``c``, the hash of the query's signature without ``c``.
    r_num : ndarray of shape (n_refs, n_num), float64
        Reference rows, sorted by block and within a block by the first feature.
    b_sig : ndarray of shape (n_blocks, n_sig), int64
        Each block's signature.
    b_start : ndarray of shape (n_blocks + 1,), int64
        Rows ``b_start[b]:b_start[b + 1]`` form block ``b``.
    b_by_hash : ndarray of shape (n_sig, n_blocks), int64
        Per column ``c``, the blocks ordered by the hash of their signature without ``c``.
    b_hash_sorted : ndarray of shape (n_sig, n_blocks), int64
        Those hashes, in that order.
    out : ndarray of shape (n_queries, k), float64
    lo, hi : int
    """
    n_sig = q_sig.shape[1]
    n_b = b_sig.shape[0]
    k = out.shape[1]
    for i in range(lo, hi):
        own = q_block[i]
        if own >= 0:
            _scan_block(out, i, q_num, r_num, b_start[own], b_start[own + 1], 0.0)
        if n_sig == 0 or out[i, k - 1] <= 1.0:
            continue
        # one code away: per column, the blocks whose other codes hash like the query's
        for c in range(n_sig):
            key = q_hash[i, c]
            pos = np.searchsorted(b_hash_sorted[c], key)
            while pos < n_b and b_hash_sorted[c, pos] == key:
                b = b_by_hash[c, pos]
                pos += 1
                if b_sig[b, c] == q_sig[i, c]:
                    continue  # the own block (or a collision), not one code away in column c
                h = 0
                for cc in range(n_sig):
                    if q_sig[i, cc] != b_sig[b, cc]:
                        h += 1
                if h == 1:
                    _scan_block(out, i, q_num, r_num, b_start[b], b_start[b + 1], 1.0)
        # two or more codes away: one pass over every block, for the few queries that need it
        # (one pass, not one per count: wide tables have many codes and large distances)
        if out[i, k - 1] <= 2.0:
            continue
        for b in range(n_b):
            h = 0
            for c in range(n_sig):
                if q_sig[i, c] != b_sig[b, c]:
                    h += 1
                    if h >= out[i, k - 1]:
                        break
            if 2 <= h < out[i, k - 1]:
                _scan_block(out, i, q_num, r_num, b_start[b], b_start[b + 1], float(h))


@numba.njit(cache=True, nogil=True)
def _offer(out, i, q_sig, q_num, qi, r_sig, r_num, j):
    """Measure reference row ``j`` exactly against query row ``qi`` and keep it in ``out[i]``
    (ascending) when it is among the k smallest; summed as :func:`_scan_block` sums."""
    k = out.shape[1]
    h = 0
    for c in range(q_sig.shape[1]):
        if q_sig[qi, c] != r_sig[j, c]:
            h += 1
    s = float(h)
    if s >= out[i, k - 1]:
        return
    for f in range(q_num.shape[1]):
        d = q_num[qi, f] - r_num[j, f]
        if d == d:
            s += d * d
        if s >= out[i, k - 1]:
            return
    pos = k - 1
    while pos > 0 and out[i, pos - 1] > s:
        out[i, pos] = out[i, pos - 1]
        pos -= 1
    out[i, pos] = s


@numba.njit(cache=True, nogil=True)
def _refine(products, row0, q_sig, q_num, q_norm, r_sig, r_num, r_norm, out, lo, hi):
    """Exact k nearest for rows ``lo:hi`` of a block of embedding products (query ``row0 + i``).

    A pair's lower bound is ``|q|² + |r|² − 2 q·r`` less a rounding margin (1e-4 of the norms:
    single-precision products of a few hundred terms err by well under 1e-5 of them). The
    references with the k smallest bounds are measured first; their k-th distance then limits
    which other references need measuring at all (see :class:`_GemmSearch`).
    """
    k = out.shape[1]
    n_r = products.shape[1]
    first = np.empty(k, dtype=np.int64)
    first_bound = np.empty(k)
    for i in range(lo, hi):
        qi = row0 + i
        first[:] = -1
        first_bound[:] = math.inf
        for j in range(n_r):
            v = q_norm[qi] + r_norm[j] - 2.0 * products[i, j]
            if v < first_bound[k - 1]:
                pos = k - 1
                while pos > 0 and first_bound[pos - 1] > v:
                    first_bound[pos] = first_bound[pos - 1]
                    first[pos] = first[pos - 1]
                    pos -= 1
                first_bound[pos] = v
                first[pos] = j
        for t in range(k):
            if first[t] >= 0:
                _offer(out, i, q_sig, q_num, qi, r_sig, r_num, first[t])
        for j in range(n_r):
            margin = 1e-4 * (1.0 + q_norm[qi] + r_norm[j])
            if q_norm[qi] + r_norm[j] - 2.0 * products[i, j] - margin > out[i, k - 1]:
                continue
            seen = False
            for t in range(k):
                if first[t] == j:
                    seen = True
            if not seen:
                _offer(out, i, q_sig, q_num, qi, r_sig, r_num, j)
