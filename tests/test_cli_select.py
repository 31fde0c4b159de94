"""``synth select`` on a pool from any generator: stage table, determinism, bad input."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from synth_core.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory, census_paths):
    root = tmp_path_factory.mktemp("select")
    training = pd.read_csv(census_paths["training"]).sample(n=3000, random_state=0).reset_index(drop=True)
    holdout = pd.read_csv(census_paths["holdout"]).sample(n=3000, random_state=1).reset_index(drop=True)
    # a pool from "another generator": holdout-like rows with noise, 10x the target
    rng = np.random.default_rng(5)
    pool = pd.read_csv(census_paths["holdout"]).sample(n=20_000, random_state=2, replace=True).reset_index(drop=True)
    pool["age"] = pool["age"] + rng.integers(-6, 7, len(pool))
    swap = rng.random(len(pool)) < 0.3
    pool.loc[swap, "occupation"] = pool["occupation"].sample(frac=1, random_state=3).to_numpy()[swap]
    paths = {"root": root}
    for name, frame in (("training", training), ("holdout", holdout)):
        paths[name] = root / f"{name}.csv"
        frame.to_csv(paths[name], index=False)
    paths["pool"] = root / "pool.parquet"
    pool.to_parquet(paths["pool"])
    pool.drop(columns=["age"]).to_csv(root / "pool_lacking.csv", index=False)
    (root / "empty.csv").write_text("")
    return paths


def _digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_select_prints_stage_table_and_is_deterministic(files, capsys):
    outputs = []
    for run in range(2):
        out = files["root"] / f"out{run}.csv"
        code = main(["select", "--training", str(files["training"]), "--pool", str(files["pool"]),
                     "--holdout", str(files["holdout"]), "--size", "2000", "--output", str(out)])
        printed = capsys.readouterr().out
        assert code == 0
        outputs.append(out)
    for stage in ("random", "ipf", "trimmed", "refined"):
        assert f"\n{stage} " in printed
    assert "dcr_share" in printed  # privacy only because --holdout was given
    assert _digest(outputs[0]) == _digest(outputs[1])
    result = pd.read_csv(outputs[0])
    training = pd.read_csv(files["training"])
    assert len(result) == 2000 and list(result.columns) == list(training.columns)


def test_select_json_shows_selection_beats_the_random_sample(files, capsys):
    out = files["root"] / "out.parquet"
    code = main(["select", "--training", str(files["training"]), "--pool", str(files["pool"]),
                 "--output", str(out), "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 0
    stages = {s["stage"]: s for s in payload["stages"]}
    assert stages["refined"]["rows"] == 3000  # --size defaults to the training row count
    assert stages["refined"]["accuracy"]["overall"] > stages["random"]["accuracy"]["overall"] + 0.01
    assert stages["refined"]["objective"] <= stages["trimmed"]["objective"] <= stages["random"]["objective"]
    assert "privacy" not in stages["refined"]  # no holdout, no privacy figures
    assert len(pd.read_parquet(out)) == 3000


@pytest.mark.parametrize(
    "pool, size, expected",
    [
        ("pool_lacking.csv", None, "lacks training column 'age'"),
        ("pool.parquet", "50000", "larger than the pool"),
        ("empty.csv", None, "pool file is empty"),
    ],
)
def test_select_bad_input_exits_2_without_output(files, capsys, pool, size, expected):
    out = files["root"] / f"bad-{pool}.csv"
    args = ["select", "--training", str(files["training"]), "--pool", str(files["root"] / pool), "--output", str(out)]
    if size:
        args += ["--size", size]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
