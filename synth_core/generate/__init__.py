"""Generation: train a MOSTLY AI generator locally (``_generator``) and sample a candidate pool
from it in resumable shards (``_pool``).
"""

from synth_core.generate._generator import GeneratorHandle, TrainingSettings, train_flat, train_sequential
from synth_core.generate._pool import generate_pool, read_pool, shard_sizes

__all__ = [
    "GeneratorHandle",
    "TrainingSettings",
    "generate_pool",
    "read_pool",
    "shard_sizes",
    "train_flat",
    "train_sequential",
]
