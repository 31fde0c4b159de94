"""synth_core: the pure library behind the synthetic-data product.

Data loading, discretisation, metrics, privacy, selection, the generator wrapper and the
metric store. No Dagster import anywhere in this package.
"""

import os

# numba's OpenMP threads spin while idle by default; on two busy cores that starves the other
# thread (an IPF sweep over 2.5 M rows: 62 s spinning, 21 s passive). Set before any library can
# load libgomp, which is why it lives here and not in kernels.py.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from synth_core.errors import InputError

__all__ = [
    "InputError",
]
