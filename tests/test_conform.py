"""synth_core.conform: a pool's columns converted to training's types, or refused in one line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synth_core.errors import InputError


def test_conform_rules():
    from synth_core.conform import conform_table

    training = pd.DataFrame({
        "n": [1, 2, 3], "f": [0.5, 1.0, 2.0], "s": pd.Series(["a", "b", "a"], dtype="str"),
        "c": pd.Categorical(["x", "y", "x"]), "b": [True, False, True],
    })
    ok = conform_table(pd.DataFrame({
        "n": pd.Series([4, 5, 6], dtype="Int64"), "f": [1, 2, 3], "s": pd.Series(["b", None, "a"], dtype=object),
        "c": ["y", "y", "x"], "b": [False, True, True], "extra": [0, 0, 0],
    }), training)
    assert ok.dtypes.to_dict() == training.dtypes.to_dict() and list(ok["n"]) == [4, 5, 6]
    refused = {
        "n": ([1.0, np.nan, 3.0], "missing values"),
        "s": ([0, 1, 0], "but training's is str"),
        "c": (["x", "z", "x"], "outside training's categories (e.g. 'z')"),
        "b": ([1, 0, 1], "but training's is bool"),
        "f": (["1.5", "x", "2"], "(e.g. 'x')"),
    }
    for column, (values, needle) in refused.items():
        frame = training.copy()
        frame[column] = values
        with pytest.raises(InputError, match=r"pool\.csv: column '" + column + "'.*"
                           + needle.replace("(", r"\(").replace(")", r"\)")):
            conform_table(frame, training, name="pool.csv")
