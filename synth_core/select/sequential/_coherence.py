"""Coherence pre-selection: pick pool groups whose sequences behave like the training sequences.

The metric's coherence has three parts per data column (``qa-metrics.md`` section 5): the
next-row pair ``(value at t, value at t+1)``, the number of distinct 30-bin categories per
sequence and the number of sequences per 30-bin category (top 9 plus "(other)"). All three are
features of :mod:`synth_core.select.sequential._sequences`; this stage optimises them alone.

Design: start from a seeded uniform random subset of ``n_target`` pool groups, then run the
group swap refinement (:func:`synth_core.select.sequential._group_refine.refine_groups`) on the problem restricted
to the coherence features (:meth:`SequentialProblem.restrict`): exact swap deltas on those
features only, strict decreases only, count budgets only. Same seed, same pool: same groups.
The full refinement that follows keeps the coherence features in its objective, so it does not
undo this stage.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synth_core.errors import InputError
from synth_core.select.sequential._group_refine import GroupRefineResult, refine_groups
from synth_core.select.sequential._sequences import COHERENCE_KINDS, SequentialProblem, random_groups


@dataclass(frozen=True)
class CoherenceResult:
    groups: np.ndarray  # sorted pool group indices
    start: np.ndarray  # the seeded random start
    objective_start: float  # coherence-only objective of the start
    objective: float  # coherence-only objective of the result
    refine: GroupRefineResult


def coherence_subset(
    problem: SequentialProblem,
    n_target: int | None = None,
    seed: int = 0,
    *,
    start=None,
    max_swaps: int = 1_000_000,
    max_rounds: int = 100,
    **refine_options,
) -> CoherenceResult:
    """``n_target`` pool groups (default ``problem.n_target``) matching the coherence parts.

    ``start``: an explicit starting subset (default: :func:`random_groups` with ``seed``).
    ``refine_options`` go to :func:`refine_groups` (e.g. ``pairs_per_removal``, ``verify``).
    """
    n_target = problem.n_target if n_target is None else int(n_target)
    if not 1 <= n_target <= problem.n_pool:
        raise InputError(f"n_target {n_target:,} must be between 1 and the pool's {problem.n_pool:,} groups")
    if n_target != problem.n_target:
        problem = problem.resized(n_target)
    view = problem.restrict(COHERENCE_KINDS)
    if start is None:
        start = random_groups(problem.n_pool, n_target, seed)
    start = np.sort(np.asarray(start, dtype=np.int64))
    if start.shape[0] != n_target:
        raise InputError(f"start has {start.shape[0]} groups, expected {n_target}")
    before = view.objective(view.counts(start))
    refine_options.setdefault("label", "coherence")
    result = refine_groups(view, start, max_swaps=max_swaps, max_rounds=max_rounds, **refine_options)
    return CoherenceResult(result.groups, start, before, result.objective, result)


__all__ = ["CoherenceResult", "coherence_subset"]
