"""Run configuration of the assets (typed; shown and editable in the Dagster launchpad).

Every default comes from the library's settings (:class:`synth_core.select.flat._pipeline.SelectionSettings`,
:class:`synth_core.select.sequential._pipeline.SequentialSettings`, :class:`synth_core.select._guard.GuardSettings`,
:class:`synth_core.metrics._gate.GateSettings`, :class:`synth_core.generate._generator.TrainingSettings`), so
``synth select`` and the pipelines run the same selection. A dataset's overrides in the datasets
file sit between these defaults and values set explicitly in a run's config;
:func:`flat_settings` and :func:`sequential_settings` turn the merged values back into the
library's settings.
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from synth_core.generate import MIN_POOL_ROWS, AdaptivePool
from synth_core.metrics import GateSettings
from synth_core.select import GuardSettings
from synth_core.select.flat import SelectionSettings
from synth_core.select.sequential import SequentialSettings

_GATE = GateSettings()
_GUARD = GuardSettings()
_FLAT = SelectionSettings()
_SEQ = SequentialSettings()
_POOL = AdaptivePool()


class TrainingConfig(dg.Config):
    """MOSTLY AI training. Under an epoch limit (no time limit) training is reproducible."""

    model_size: str = Field(default="small", description="small | medium | large")
    max_training_time_min: float | None = Field(default=None, description="wall-clock cap; None = epochs only")
    max_epochs: float | None = Field(default=None, description="epoch cap; None = sized to the data: about 60,000 "
                                     "training samples seen (rows, or groups of a sequential table), 3 to 40 epochs")
    value_protection: bool = True
    seed: int = 0
    device: str = Field(default="auto", description="auto | cpu | cuda")


class PoolConfig(dg.Config):
    """The candidate pool: a fixed ``pool_factor`` × target, or (``adaptive_pool``) grown shard by shard
    until one more shard no longer improves the selection's proxy objective by ``pool_tolerance``
    (:class:`synth_core.generate._pool.AdaptivePool`; ``pool_factor`` is then the maximum)."""

    pool_factor: float = Field(default=_POOL.max_factor, gt=0,
                               description="pool size = pool_factor × target (rows or groups); adaptive: the maximum")
    min_pool_rows: int = Field(default=MIN_POOL_ROWS, ge=0,
                               description="the pool holds at least this many table rows whatever pool_factor gives "
                               "(small tables: a larger pool costs seconds and fits far better); not under "
                               "differential privacy")
    shard_size: int = Field(default=100_000, gt=0, description="rows (groups) per shard: bounds memory")
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    seed: int = 0
    adaptive_pool: bool = Field(default=_POOL.enabled, description="grow the pool while a shard still pays")
    min_pool_factor: float = Field(default=_POOL.min_factor, gt=0, description="adaptive: the pool's starting size")
    pool_step_factor: float = Field(default=_POOL.step_factor, gt=0,
                                    description="adaptive: units per added shard (at most shard_size), × target")
    pool_tolerance: float = Field(default=_POOL.tolerance, ge=0.0,
                                  description="adaptive: stop when a shard lowers the proxy objective by no more "
                                  "than this share")
    pool_min_shard_rows: int = Field(default=_POOL.min_shard_rows, ge=0,
                                     description="adaptive: table rows per added shard at least (each generation "
                                     "job has a fixed start); a maximum one shard past the start is a fixed pool")


class GuardConfig(dg.Config):
    """The privacy guard (:mod:`synth_core.select._guard`), decided once per run where the selection problem is built:
    which pool units selection may use and the closeness strata it must keep."""

    privacy_guard: bool = Field(
        default=_GUARD.enabled,
        description="keep replicas and near-copies of training records out of the selection and hold its closeness "
        "to training at the pool's; off: slightly higher accuracy, an output closer to training than a random pool "
        "sample (docs/metrics.md)",
    )
    near_copy_quantile: float = Field(
        default=_GUARD.near_copy_quantile, ge=0.0, lt=0.5,
        description="near-copy threshold: this quantile of training's leave-one-out nearest-neighbour distances",
    )
    closeness_weight: float = Field(default=_GUARD.closeness_weight, ge=0.0,
                                    description="weight of the closeness strata in the selection objective")


def guard_settings(values: dict) -> GuardSettings:
    """The guard's settings from a run's merged :class:`GuardConfig` values."""
    return GuardSettings(enabled=bool(values["privacy_guard"]), near_copy_quantile=float(values["near_copy_quantile"]),
                         closeness_weight=float(values["closeness_weight"]))


class MIConfig(GuardConfig):
    """The selection problem: binning, the privacy guard, MI-ranked pairs and triples, targets."""

    top_pairs: int | None = Field(default=_FLAT.top_pairs, description="None = all pairs up to 80 columns, the top "
                                  "3,160 by mutual information beyond")
    top_triples: int | None = Field(default=_FLAT.top_triples, description="None = all when ≤ 2,000, the top 2,000 "
                                    "by MI up to 20,000 (≈ 50 columns), none beyond")
    seed: int = _FLAT.seed


class IPFConfig(dg.Config):
    """IPF weights on the selected pairs, rounded to an oversized subset (``oversize`` × target)."""

    tol: float = Field(default=_FLAT.ipf_tol, gt=0, description="stop when the max relative table change falls below")
    max_sweeps: int = Field(default=_FLAT.ipf_max_sweeps, gt=0)
    oversize: float = Field(default=_FLAT.oversize, ge=1.0)
    seed: int = _FLAT.seed


class GateConfig(dg.Config):
    """Thresholds of the publication gate (the blocking checks of ``refined_output``); the defaults are
    :class:`synth_core.metrics._gate.GateSettings`'s, where the rule is documented."""

    accuracy_floor: float | None = Field(
        default=_GATE.accuracy_floor,
        description=f"overall accuracy must reach this; None = {_GATE.floor_margin} below qa's overall_max (the "
        "accuracy a holdout-sized sample of the real data would reach)",
    )
    max_dcr_share: float = _GATE.max_dcr_share
    min_nndr_ratio: float = _GATE.min_nndr_ratio
    exact_copy_tolerance: float = Field(
        default=_GATE.exact_copy_tolerance,
        description="fail on exact copies (rows, whole sequences) when the 95% interval of training's size-matched "
        "excess over the holdout's copies lies entirely above this",
    )
    max_membership_auc: float = Field(
        default=_GATE.max_membership_auc,
        description="fail when the 95% interval of the membership-inference AUC lies entirely above this",
    )
    eval_seed: int = Field(default=_GATE.eval_seed, description="qa.set_random_state equivalent for the evaluation")


class RefineConfig(GateConfig):
    """Swap refinement plus the publication gate's thresholds."""

    max_swaps: int = Field(default=_FLAT.max_swaps, ge=0)
    max_rounds: int = Field(default=_FLAT.max_rounds, ge=0)
    seed: int = _FLAT.seed


def flat_settings(values: dict) -> SelectionSettings:
    """The library's selection settings from a run's merged config values (any of the flat stages';
    a stage's settings not among them keep their defaults)."""
    names = {"seed": "seed", "top_pairs": "top_pairs", "top_triples": "top_triples", "tol": "ipf_tol",
             "max_sweeps": "ipf_max_sweeps", "oversize": "oversize", "max_swaps": "max_swaps",
             "max_rounds": "max_rounds"}
    chosen = {field: values[key] for key, field in names.items() if key in values}
    guard = guard_settings(values) if "privacy_guard" in values else _GUARD
    return SelectionSettings(**chosen, guard=guard)


# ---------------------------------------------------------------------------------------------
# the sequential graph (pool sizes and targets count groups)


class GroupPoolConfig(PoolConfig):
    """The candidate pool of the sequential graph: as :class:`PoolConfig`, in groups."""

    pool_factor: float = Field(default=10.0, gt=0,
                               description="pool size = pool_factor × target groups; adaptive: the maximum")
    shard_size: int = Field(default=20_000, gt=0, description="groups per shard: bounds memory")


class CoherenceConfig(GuardConfig):
    """The group problem (bins, features, the privacy guard) and the swaps on the three coherence parts
    (qa's definitions)."""

    coherence_max_swaps: int = Field(default=_SEQ.coherence_max_swaps, ge=0)
    coherence_max_rounds: int = Field(default=_SEQ.coherence_max_rounds, ge=0)
    pairs_per_removal: int = Field(default=_SEQ.pairs_per_removal, ge=1,
                                   description="candidate additions tried per removed group")
    max_triples: int = Field(default=_SEQ.max_triples, ge=0,
                             description="objective's triples: all up to this many, else the top ones by MI")
    seed: int = _SEQ.seed


class GroupRefineConfig(GateConfig):
    """Group swaps on the full objective (uni/bi/tri as the metric weights rows, plus coherence)."""

    max_swaps: int = Field(default=_SEQ.max_swaps, ge=0)
    max_rounds: int = Field(default=_SEQ.max_rounds, ge=0)
    renumber_keys: bool = Field(default=False, description="replace the pool's keys by 0 … n−1 in the output")
    seed: int = _SEQ.seed


def sequential_settings(values: dict) -> SequentialSettings:
    """The library's group-selection settings from a run's merged config values."""
    names = ("seed", "max_triples", "pairs_per_removal", "coherence_max_swaps", "coherence_max_rounds", "max_swaps",
             "max_rounds")
    guard = guard_settings(values) if "privacy_guard" in values else _GUARD
    return SequentialSettings(**{k: values[k] for k in names if k in values}, guard=guard)


# every setting a dataset may override in its ``selection`` block, by graph
SELECTION_CONFIGS = {
    "flat": (PoolConfig, MIConfig, IPFConfig, RefineConfig),
    "sequential": (GroupPoolConfig, CoherenceConfig, GroupRefineConfig),
}
