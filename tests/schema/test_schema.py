"""Column typing: one decision per column, from training, applied to every table."""

import numpy as np
import pandas as pd
import pytest

from synth_core.errors import InputError
from synth_core.generate._generator import _column_configs
from synth_core.metrics import column_kind
from synth_core.schema import Schema, engine_encoding, infer_schema, parse_overrides
from synth_core.schema._infer import detect_datetime_format


@pytest.fixture
def sessions():
    """An e-commerce-like table: month names, ISO dates, an index, free text, a constant, an empty column."""
    rng = np.random.default_rng(0)
    n = 400
    return pd.DataFrame({
        "index": np.arange(n),
        "Month": rng.choice(["Feb", "Mar", "May", "June", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], n),
        "visited": [f"2021-{m:02d}-{d:02d}" for m, d in zip(rng.integers(1, 13, n), rng.integers(1, 29, n))],
        "joined": [f"{d:02d}/{m:02d}/2019" for m, d in zip(rng.integers(1, 13, n), rng.integers(13, 29, n))],
        "comment": [f"said {i} things" for i in range(n)],
        "pages": rng.poisson(3, n),
        "revenue": rng.lognormal(2, 1, n),
        "weekend": rng.random(n) < 0.3,
        "site": "shop",
        "unused": np.nan,
    })


def test_every_kind_is_inferred(sessions):
    kinds = infer_schema(sessions).kinds()
    assert kinds == {"index": "identifier", "Month": "categorical", "visited": "datetime", "joined": "datetime",
                     "comment": "identifier", "pages": "integer", "revenue": "float", "weekend": "boolean",
                     "site": "constant", "unused": "empty"}
    assert infer_schema(sessions)["joined"].datetime_format == "%d/%m/%Y"


def test_apply_gives_the_dtypes_every_consumer_reads(sessions):
    schema = infer_schema(sessions)
    typed = schema.apply(sessions)
    assert schema.left_out == ["index", "comment", "unused"]
    assert list(typed.columns) == ["Month", "visited", "joined", "pages", "revenue", "weekend", "site"]
    # the metric's binning and the engine's encoding read the kind off the dtype
    assert column_kind(typed["visited"]) == "datetime" and column_kind(typed["Month"]) == "categorical"
    assert engine_encoding(typed["Month"]) == "TABULAR_CATEGORICAL"
    assert engine_encoding(typed["visited"]) == "TABULAR_DATETIME"
    assert engine_encoding(typed["pages"]) == "TABULAR_NUMERIC_AUTO"


def test_restore_writes_dates_back_in_the_source_format(sessions):
    schema = infer_schema(sessions)
    restored = schema.restore(schema.apply(sessions))
    assert restored["visited"].tolist() == sessions["visited"].tolist()
    assert restored["joined"].tolist() == sessions["joined"].tolist()


def test_month_names_never_pass_for_dates():
    assert detect_datetime_format(pd.Series(["Feb", "Mar", "June", "Nov"])) is None
    assert detect_datetime_format(pd.Series(["2020-01-31", None, "2021-12-01"])) == "%Y-%m-%d"
    assert detect_datetime_format(pd.Series(["2020-01-31", "soon"])) is None


def test_two_digit_years_as_survey_tools_export_them():
    # a survey export's timestamps: month/day/two-digit year, no zero padding
    assert detect_datetime_format(pd.Series(["8/6/20 18:57", "12/31/19 9:05", None])) == "%m/%d/%y %H:%M"
    assert detect_datetime_format(pd.Series(["8/6/20", "12/31/19"])) == "%m/%d/%y"
    assert detect_datetime_format(pd.Series(["31/12/19", "8/6/20"])) == "%d/%m/%y"
    assert detect_datetime_format(pd.Series(["8/6/20", "version 2"])) is None


def test_the_engine_is_told_every_encoding_never_auto(sessions):
    typed = infer_schema(sessions).apply(sessions)
    configs = _column_configs(typed.assign(row=1), {}, ["row"])
    encodings = {c["name"]: c["model_encoding_type"] for c in configs}
    assert encodings.pop("row") == "AUTO"  # a key column: not modelled
    assert "AUTO" not in encodings.values()
    assert encodings["Month"] == "TABULAR_CATEGORICAL" and encodings["joined"] == "TABULAR_DATETIME"


def test_stated_kinds_win(sessions):
    schema = infer_schema(sessions, overrides={"pages": "categorical", "comment": "categorical", "site": "drop"})
    typed = schema.apply(sessions)
    assert schema.kinds()["pages"] == "categorical" and "site" not in typed.columns
    assert isinstance(typed["pages"].dtype, pd.CategoricalDtype) and column_kind(typed["pages"]) == "categorical"
    assert schema["pages"].stated and not schema["revenue"].stated


def test_a_stated_kind_that_does_not_fit_is_one_line_naming_the_column(sessions):
    with pytest.raises(InputError, match=r"column 'Month': value '\w+' is not a number"):
        infer_schema(sessions, overrides={"Month": "float"})
    with pytest.raises(InputError, match="no column 'nope'"):
        infer_schema(sessions, overrides={"nope": "drop"})
    with pytest.raises(InputError, match="unknown kind 'date'"):
        infer_schema(sessions, overrides={"visited": "date"})
    with pytest.raises(InputError, match="expected NAME=KIND"):
        parse_overrides(["Month"])


def test_other_tables_follow_training(sessions):
    schema = infer_schema(sessions.iloc[:300])
    holdout = schema.apply(sessions.iloc[300:], what="holdout")
    assert holdout.dtypes.equals(schema.apply(sessions.iloc[:300]).dtypes) and "index" not in holdout.columns
    # a value that does not fit stays as it is: conforming a pool names it, evaluation coerces as qa does
    odd = schema.apply(sessions.iloc[300:].assign(visited="2021-02-30"), what="pool")
    assert odd["visited"].eq("2021-02-30").all()


def test_measurements_unique_per_row_are_not_identifiers():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"income": rng.choice(10**7, 500, replace=False), "weight": rng.random(500),
                          "year": np.arange(1950, 2000)[np.arange(500) % 50]})
    assert infer_schema(frame).kinds() == {"income": "integer", "weight": "float", "year": "integer"}


def test_sequences_type_per_group_identifiers_and_keep_context():
    frame = pd.DataFrame({"user": np.repeat(np.arange(30), 3), "name": np.repeat([f"n{i}" for i in range(30)], 3),
                          "step": np.tile([1, 2, 3], 30), "segment": np.repeat([f"s{i}" for i in range(30)], 3)})
    schema = infer_schema(frame, group_key="user", keep=["segment"])
    assert schema.kinds() == {"name": "identifier", "step": "integer", "segment": "categorical"}
    assert "user" in schema.apply(frame).columns


def test_records_round_trip(sessions):
    schema = infer_schema(sessions, overrides={"pages": "float"})
    assert Schema.from_records(schema.records()) == schema


def test_nothing_to_model_is_refused():
    with pytest.raises(InputError, match="no column left to model"):
        infer_schema(pd.DataFrame({"id": [f"u{i}" for i in range(50)], "empty": np.nan}))


def test_index_columns_of_a_subsample_and_utc_timestamps():
    rng = np.random.default_rng(2)
    rows = np.sort(rng.choice(50_000, 400, replace=False))  # a seeded subsample keeps its index in order
    frame = pd.DataFrame({"rownames": rows + 1, "at": [f"2013-01-01T{h:02d}:00:00Z" for h in rng.integers(0, 24, 400)],
                          "flag": pd.Series([False] * 399 + [None], dtype=object)})
    schema = infer_schema(frame)
    assert schema.kinds() == {"rownames": "identifier", "at": "datetime", "flag": "constant"}
    typed = schema.apply(frame)
    assert str(typed["flag"].dtype) == "boolean" and typed["at"].dt.hour.between(0, 23).all()
    assert schema.restore(typed)["at"].tolist() == frame["at"].tolist()
