"""Edges of ``synth evaluate``: the *_max figures stay in their domain (issue 11)."""

from __future__ import annotations

import json

import pandas as pd

from synth_core.cli import main
from synth_core.io import write_table


def test_evaluate_one_synthetic_row_gives_maxima_within_0_and_1(files, capsys):
    one = files["root"] / "one.csv"
    write_table(pd.read_csv(files["pool"]).head(1), one)
    code = main(["evaluate", "--training", str(files["training"]), "--synthetic", str(one), "--json"])
    assert code == 0
    accuracy = json.loads(capsys.readouterr().out)["accuracy"]
    for name in ("overall_max", "univariate_max", "bivariate_max", "trivariate_max"):
        assert 0.0 <= accuracy[name] <= 1.0, (name, accuracy[name])
