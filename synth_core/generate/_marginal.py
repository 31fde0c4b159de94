"""The DP marginal model (:mod:`synth_core.dp`) behind the generator interface the pool code uses, so
that ``generate_pool`` draws its shards as it does from a MOSTLY AI generator."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from synth_core.errors import InputError

MARKER = "generator.json"  # {"generator": "marginal", ...} beside the model's files


class MarginalHandle:
    """A fitted DP marginal model (:func:`synth_core.dp.fit_marginal_model`) as a flat generator
    (``kind``, ``columns``, ``sample``, the DP spend as ``dp_epsilon``/``dp_delta``)."""

    kind = "flat"
    group_key = None

    def __init__(self, folder: str | Path):
        from synth_core.dp import marginal_record

        self.folder = Path(folder)
        record = marginal_record(self.folder)
        self.generator_id = f"marginal:{self.folder.name}"
        self.columns = list(record["columns"])
        self.dp_epsilon = float(record["epsilon"])
        self.dp_delta = float(record["delta"])

    def sample(self, n: int, *, seed: int, temperature: float = 1.0, key_offset: int = 0) -> pd.DataFrame:
        from synth_core.dp import sample_marginal_model

        if float(temperature) != 1.0:
            raise InputError("the DP marginal model samples at temperature 1 only")
        return sample_marginal_model(self.folder, int(n), int(seed))

    def close(self) -> None:
        """Nothing to release (the interface of :class:`GeneratorHandle`)."""


def is_marginal(folder: str | Path) -> bool:
    marker = Path(folder) / MARKER
    return marker.is_file() and json.loads(marker.read_text()).get("generator") == "marginal"


def load_generator(folder: str | Path):
    """The generator stored in ``folder``: a :class:`MarginalHandle` or a MOSTLY AI ``GeneratorHandle``."""
    from synth_core.generate._generator import GeneratorHandle

    return MarginalHandle(folder) if is_marginal(folder) else GeneratorHandle.load(folder)
