"""synth_core: the pure library behind the synthetic-data product.

Data loading, discretisation, metrics, privacy, selection, the generator wrapper and the
metric store. No Dagster import anywhere in this package.
"""

from synth_core.errors import InputError

__all__ = ["InputError"]
