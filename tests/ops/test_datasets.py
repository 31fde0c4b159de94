"""Loading a declared dataset: column kinds decided on training, stated kinds, one-line refusals."""

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from synth_core.errors import InputError
from synth_core.io import write_table
from synth_core.ops import DatasetSpec, load_dataset


@pytest.fixture
def source(tmp_path):
    rng = np.random.default_rng(0)
    n = 500
    frame = pd.DataFrame({
        "session": [f"s{i:05d}" for i in range(n)],
        "Month": rng.choice(["Feb", "Mar", "May", "June", "Nov", "Dec"], n),
        "joined": [f"{d:02d}.{m:02d}.2020" for d, m in zip(rng.integers(1, 29, n), rng.integers(1, 13, n))],
        "zip": rng.choice([1010, 2020, 3030], n),
        "spent": np.round(rng.lognormal(3, 1, n), 2),
    })
    write_table(frame, tmp_path / "sessions.csv")
    return tmp_path


def _spec(**extra) -> DatasetSpec:
    return DatasetSpec(name="sessions", source="sessions.csv", **extra)


def test_kinds_are_decided_on_training_and_applied_to_the_holdout(source):
    tables = load_dataset(_spec(), source)
    assert tables.column_kinds() == {"session": "identifier", "Month": "categorical", "joined": "datetime",
                                     "zip": "integer", "spent": "float"}
    assert "session" not in tables.training.columns and "session" not in tables.holdout.columns
    assert tables.training["joined"].dtype == tables.holdout["joined"].dtype == "datetime64[ns]"
    assert tables.schema["joined"].datetime_format == "%d.%m.%Y"


def test_stated_kinds_win_over_inference(source):
    tables = load_dataset(_spec(columns={"zip": "categorical", "Month": "drop", "session": "categorical"}), source)
    kinds = tables.column_kinds()
    assert kinds["zip"] == "categorical" and kinds["Month"] == "drop" and kinds["session"] == "categorical"
    assert isinstance(tables.training["zip"].dtype, pd.CategoricalDtype) and "Month" not in tables.training


def test_a_datetime_format_states_the_kind(source):
    tables = load_dataset(_spec(datetime_formats={"joined": "%d.%m.%Y"}), source)
    assert tables.schema["joined"].stated and tables.training["joined"].dt.year.eq(2020).all()


@pytest.mark.parametrize("extra, message", [
    ({"columns": {"Month": "float"}}, "dataset 'sessions': training: column 'Month': value"),
    ({"columns": {"nope": "drop"}}, "column 'nope' (columns/datetime_formats) not found in the source"),
    ({"datetime_formats": {"Month": "%Y-%m-%d"}}, "is not a datetime in the format %Y-%m-%d"),
])
def test_a_statement_that_does_not_fit_is_one_line(source, extra, message):
    with pytest.raises(InputError, match="^[^\n]*$") as info:
        load_dataset(_spec(**extra), source)
    assert message in str(info.value)


def test_an_unknown_kind_is_refused_when_declared():
    with pytest.raises(ValidationError, match="unknown kind 'date'"):
        _spec(columns={"joined": "date"})
