"""Inference risks: what an attacker holding the synthetic table learns about a record he
partly knows, measured against a control set of records the generator never saw.

Two attacks in the manner of anonymeter (Giomi et al., PETS 2023), written for this project's
units and distance (:mod:`synth_core.metrics._privacy`: categorical codes, numbers as ranks in
[0, 1], one vector per sequence):

``attribute_inference``
    The attacker knows every column of a target but one, the secret. He takes the synthetic
    unit closest to the target on the known columns and reads its secret. A guess is right
    when it equals the secret (categorical codes, missing-value flags) or lies within
    :data:`NUMERIC_TOLERANCE` of it (numbers, in rank units: within 5 percentiles of the real
    data). Up to :data:`MAX_SECRETS` columns, drawn at random (seeded), take the secret's role
    in turn; the figure is the mean over them, the worst column is named.
``linkability``
    The attacker holds two tables on the same people with disjoint columns (a random half of
    the columns each, seeded) and links them through the synthetic table: a target's two parts
    are linked when their closest synthetic units on either half are the same unit.

``singling_out``
    The attacker wants a description that fits exactly one person. From a synthetic unit he
    builds the shortest conjunction of its values (columns in a random order; a category
    equal, a number within :data:`SINGLING_OUT_WINDOW` rank units) that fits no other unit of
    the synthetic table, and the description succeeds on a table when it fits exactly one of
    its units. Members and controls are equally many, so a generator that learned the
    population singles out either as often; one that reproduces its training records hands
    the attacker descriptions of them.

A success rate alone says little: common values are guessed right for anybody. Each attack
therefore runs on members (training units) and on controls (holdout units, which the generator
never saw), and the risk is the share of the members' success that the controls do not
explain: ``(r_members − r_controls) / (1 − r_controls)``, about 0 when the synthetic table
tells the attacker nothing about the people it was trained on beyond what it tells about
anybody. The 95 % interval propagates the two rates' binomial errors (delta method); across
secret columns the errors are combined as if independent, which the shared targets make a
little optimistic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from synth_core.metrics._membership import Z95, Encoded

NUMERIC_TOLERANCE = 0.05  # a numeric guess is right within this many rank units
MAX_SECRETS = 6  # secret columns tried by the attribute-inference attack
MAX_TARGETS = 1_000  # members (and as many controls) attacked
MAX_SYNTHETIC = 10_000  # synthetic units the attacker searches (a sample dilutes a leak; the cost grows with it)
SINGLING_OUT_WINDOW = 0.005  # a number fits a description within this many rank units (half a percentile)
SINGLING_OUT_QUERIES = 2_000  # synthetic units the attacker tries to describe
MAX_SINGLING_OUT = 25_000  # units per table (members, controls, synthetic): a subsample would dilute a copy


@dataclass(frozen=True)
class InferenceRisk:
    """One attack's figures.

    Attributes
    ----------
    risk : float
        ``(r_members − r_controls) / (1 − r_controls)``; about 0 when nothing leaks.
    risk_ci : tuple of float
        Its 95 % interval.
    members_rate, controls_rate : float
        Shares of successful attacks on members and on controls.
    n_targets : int
        Members attacked (as many controls).
    worst : str or None
        Attribute inference: the encoded column whose secret was inferred with the highest risk
        (``cat<i>`` or ``num<i>``, in the distance's column order).
    """

    risk: float
    risk_ci: tuple[float, float]
    members_rate: float
    controls_rate: float
    n_targets: int
    worst: str | None = None


def inference_risks(members: Encoded, controls: Encoded, synthetic: Encoded, seed: int = 0) -> dict[str, InferenceRisk]:
    """Attribute-inference and linkability risk of ``synthetic`` (module docstring).

    Parameters
    ----------
    members, controls : Encoded
        Training units and holdout units of the same number (at most :data:`MAX_TARGETS` each
        are attacked).
    synthetic : Encoded
        The attacker's table (at most :data:`MAX_SYNTHETIC` units are searched).
    seed : int, default 0
        Draws the targets, the synthetic sample, the secret columns and the linkability split.

    Returns
    -------
    dict
        ``{"attribute_inference": InferenceRisk, "linkability": InferenceRisk}``; empty when a
        table has no unit or the units fewer than two columns.
    """
    rng = np.random.default_rng([seed, 0x1F])
    n = min(members.n, controls.n, MAX_TARGETS)
    n_cat, n_num = members.cat.shape[1], members.num.shape[1]
    if n < 1 or synthetic.n < 1 or n_cat + n_num < 2:
        return {}
    targets = {"members": _take(members, rng.choice(members.n, n, replace=False)),
               "controls": _take(controls, rng.choice(controls.n, n, replace=False))}
    if synthetic.n > MAX_SYNTHETIC:
        synthetic = _take(synthetic, np.sort(rng.choice(synthetic.n, MAX_SYNTHETIC, replace=False)))
    columns = [("cat", i) for i in range(n_cat)] + [("num", i) for i in range(n_num)]

    per_secret = []  # (column, risk, variance, members' rate, controls' rate)
    for k in np.sort(rng.choice(len(columns), min(MAX_SECRETS, len(columns)), replace=False)):
        kind, col = columns[k]
        use_cat = np.array([i for i in range(n_cat) if (kind, i) != ("cat", col)], dtype=np.int64)
        use_num = np.array([i for i in range(n_num) if (kind, i) != ("num", col)], dtype=np.int64)
        rates = {}
        for who, t in targets.items():
            nearest = _nearest(t, synthetic, use_cat, use_num)
            if kind == "cat":
                right = t.cat[:, col] == synthetic.cat[nearest, col]
            else:
                truth, guess = t.num[:, col], synthetic.num[nearest, col]
                right = np.where(np.isnan(truth), np.isnan(guess), np.abs(truth - guess) <= NUMERIC_TOLERANCE)
            rates[who] = float(np.mean(right))
        per_secret.append((f"{kind}{col}", *_risk(rates["members"], rates["controls"], n),
                           rates["members"], rates["controls"]))
    risk = float(np.mean([p[1] for p in per_secret]))
    se = float(np.sqrt(sum(p[2] for p in per_secret))) / len(per_secret)
    worst = max(per_secret, key=lambda p: p[1])[0]
    attribute = InferenceRisk(risk, _interval(risk, se), float(np.mean([p[3] for p in per_secret])),
                              float(np.mean([p[4] for p in per_secret])), n, worst)

    in_first = np.zeros(len(columns), dtype=bool)
    in_first[rng.permutation(len(columns))[: (len(columns) + 1) // 2]] = True
    sides = []
    for part in (in_first, ~in_first):
        chosen = [columns[k] for k in np.flatnonzero(part)]
        sides.append((np.array([i for kind, i in chosen if kind == "cat"], dtype=np.int64),
                      np.array([i for kind, i in chosen if kind == "num"], dtype=np.int64)))
    link = {}
    for who, t in targets.items():
        a, b = (_nearest(t, synthetic, *side) for side in sides)
        link[who] = float(np.mean(a == b))
    link_risk, link_var = _risk(link["members"], link["controls"], n)
    linkability = InferenceRisk(link_risk, _interval(link_risk, np.sqrt(link_var)), link["members"],
                                link["controls"], n)
    return {"attribute_inference": attribute, "linkability": linkability}


def singling_out(members: Encoded, controls: Encoded, synthetic: Encoded, seed: int = 0) -> InferenceRisk | None:
    """Singling-out risk of ``synthetic`` (module docstring): members and controls of the same
    number (at most :data:`MAX_SINGLING_OUT`); ``None`` when a table is empty or the units have
    fewer than two columns, or when no synthetic unit can be described uniquely."""
    rng = np.random.default_rng([seed, 0x50])
    n = min(members.n, controls.n, MAX_SINGLING_OUT)
    n_cat, n_num = members.cat.shape[1], members.num.shape[1]
    if n < 1 or synthetic.n < 2 or n_cat + n_num < 2:
        return None
    members = _take(members, np.sort(rng.choice(members.n, n, replace=False)))
    controls = _take(controls, np.sort(rng.choice(controls.n, n, replace=False)))
    if synthetic.n > MAX_SINGLING_OUT:
        synthetic = _take(synthetic, np.sort(rng.choice(synthetic.n, MAX_SINGLING_OUT, replace=False)))
    queries = rng.choice(synthetic.n, min(SINGLING_OUT_QUERIES, synthetic.n), replace=False).astype(np.int64)
    # column order per query: categorical columns as 0..n_cat-1, numeric as n_cat..
    order = np.argsort(rng.random((len(queries), n_cat + n_num)), axis=1).astype(np.int64)
    length = np.zeros(len(queries), dtype=np.int64)
    _describe(synthetic.cat, synthetic.num, queries, order, SINGLING_OUT_WINDOW, length)
    kept = length > 0
    if not kept.any():
        return None
    q, o, ln = queries[kept], order[kept], length[kept]
    rates = {}
    for who, t in (("members", members), ("controls", controls)):
        fits = np.zeros(len(q), dtype=np.int64)
        _count_fits(synthetic.cat, synthetic.num, q, o, ln, SINGLING_OUT_WINDOW, t.cat, t.num, fits)
        rates[who] = float(np.mean(fits == 1))
    risk, var = _risk(rates["members"], rates["controls"], len(q))
    return InferenceRisk(risk, _interval(risk, np.sqrt(var)), rates["members"], rates["controls"], int(len(q)))


@numba.njit(cache=True, nogil=True)
def _fits(s_cat, s_num, i, r_cat, r_num, j, col, n_cat, window):
    """Whether unit ``j`` of ``r`` shares unit ``i``'s value of column ``col`` (categories equal;
    numbers within ``window``, or both missing)."""
    if col < n_cat:
        return s_cat[i, col] == r_cat[j, col]
    a, b = s_num[i, col - n_cat], r_num[j, col - n_cat]
    if a != a or b != b:
        return (a != a) and (b != b)
    return abs(a - b) <= window


@numba.njit(cache=True, nogil=True)
def _describe(s_cat, s_num, queries, order, window, length):
    """For each query unit, the number of its first columns (in its order) whose values fit no
    other synthetic unit; 0 when even all columns fit another unit (it cannot be singled out)."""
    n_cat = s_cat.shape[1]
    n = s_num.shape[0]
    alive = np.empty(n, dtype=np.int64)
    for k in range(queries.shape[0]):
        i = queries[k]
        m = 0
        for j in range(n):
            if j != i:
                alive[m] = j
                m += 1
        for step in range(order.shape[1]):
            col = order[k, step]
            kept = 0
            for a in range(m):
                j = alive[a]
                if _fits(s_cat, s_num, i, s_cat, s_num, j, col, n_cat, window):
                    alive[kept] = j
                    kept += 1
            m = kept
            if m == 0:
                length[k] = step + 1
                break


@numba.njit(cache=True, nogil=True)
def _count_fits(s_cat, s_num, queries, order, length, window, t_cat, t_num, out):
    """How many units of the target table fit each query's description (stops counting at 2)."""
    n_cat = s_cat.shape[1]
    for k in range(queries.shape[0]):
        i = queries[k]
        count = 0
        for j in range(t_num.shape[0]):
            ok = True
            for step in range(length[k]):
                if not _fits(s_cat, s_num, i, t_cat, t_num, j, order[k, step], n_cat, window):
                    ok = False
                    break
            if ok:
                count += 1
                if count > 1:
                    break
        out[k] = count


def _take(units: Encoded, rows: np.ndarray) -> Encoded:
    return Encoded(np.ascontiguousarray(units.cat[rows]), np.ascontiguousarray(units.num[rows]))


def _risk(members: float, controls: float, n: int) -> tuple[float, float]:
    """The risk and its variance (delta method over the two rates' binomial variances)."""
    room = max(1.0 - controls, 1.0 / n)  # controls always right: no room to leak, the risk is 0 at most
    risk = (members - controls) / room
    var_m, var_c = members * (1 - members) / n, controls * (1 - controls) / n
    return float(risk), float(var_m / room**2 + var_c * ((members - 1.0) / room**2) ** 2)


def _interval(value: float, se: float) -> tuple[float, float]:
    return (float(value - Z95 * se), float(value + Z95 * se))


def _nearest(targets: Encoded, synthetic: Encoded, use_cat: np.ndarray, use_num: np.ndarray) -> np.ndarray:
    """Index of each target's closest synthetic unit on the given columns (ties: lowest index)."""
    out = np.empty(targets.n, dtype=np.int64)
    _nearest_kernel(targets.cat, targets.num, synthetic.cat, synthetic.num, use_cat, use_num, out)
    return out


@numba.njit(cache=True, nogil=True)
def _nearest_kernel(q_cat, q_num, r_cat, r_num, use_cat, use_num, out):
    """Brute-force nearest neighbour under the privacy distance restricted to some columns: a
    categorical mismatch adds 1, numbers present in both add their squared difference, a number
    against a missing value adds 1 and two missing values nothing. A candidate is dropped as soon
    as its partial sum reaches the best so far, so the first of equals wins."""
    for i in range(q_cat.shape[0]):
        best, arg = np.inf, 0
        for j in range(r_cat.shape[0]):
            d = 0.0
            for c in use_cat:
                if q_cat[i, c] != r_cat[j, c]:
                    d += 1.0
                    if d >= best:
                        break
            if d >= best:
                continue
            for c in use_num:
                a, b = q_num[i, c], r_num[j, c]
                if a == a and b == b:
                    d += (a - b) * (a - b)
                elif (a == a) != (b == b):
                    d += 1.0
                if d >= best:
                    break
            if d < best:
                best, arg = d, j
        out[i] = arg
