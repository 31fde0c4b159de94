"""Generation: train a MOSTLY AI generator locally (``_generator``; the SDK's internals in
``_sdk``) and sample a candidate pool from it in resumable shards (``_pool``), of a fixed size or
grown until one more shard no longer improves the selection's proxy objective (``AdaptivePool``,
``grow_pool``). A DP flat dataset's generator is the DP marginal model instead (``_marginal``).
"""

from synth_core.generate._generator import (
    AUTO_EPOCHS,
    DPTraining,
    GeneratorHandle,
    TrainingSettings,
    epoch_budget,
    train_flat,
    train_sequential,
)
from synth_core.generate._marginal import MarginalHandle, load_generator
from synth_core.generate._pool import (
    MIN_POOL_ROWS,
    AdaptivePool,
    AdaptiveResult,
    adaptive_plan,
    generate_pool,
    grow_pool,
    pool_dp_record,
    pool_units,
    proxy_objective,
    read_curve,
    read_pool,
    rows_per_unit,
    shard_sizes,
    stop_reason,
)
from synth_core.generate._sdk import EngineError

__all__ = [
    "AUTO_EPOCHS",
    "MIN_POOL_ROWS",
    "AdaptivePool",
    "AdaptiveResult",
    "DPTraining",
    "EngineError",
    "GeneratorHandle",
    "MarginalHandle",
    "TrainingSettings",
    "adaptive_plan",
    "epoch_budget",
    "generate_pool",
    "grow_pool",
    "load_generator",
    "pool_dp_record",
    "proxy_objective",
    "read_curve",
    "pool_units",
    "read_pool",
    "rows_per_unit",
    "shard_sizes",
    "stop_reason",
    "train_flat",
    "train_sequential",
]
