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
    unseen = pd.read_csv(census_paths["holdout"])
    holdout = unseen.sample(n=3000, random_state=1)
    # a pool from "another generator": unseen rows with noise, 10x the target. Never the evaluation
    # holdout's own rows: a pool built on them sits closer to the holdout than to training, which
    # the two-sided privacy gate rightly refuses (members farther from the output than non-members)
    rng = np.random.default_rng(5)
    pool = unseen.drop(index=holdout.index).sample(n=20_000, random_state=2, replace=True).reset_index(drop=True)
    holdout = holdout.reset_index(drop=True)
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


@pytest.fixture(scope="module")
def leaky(files, census_paths):
    """The pool above with 10 % of its rows replaced by copies of training rows and 10 % by near-copies."""
    from synth_core.metrics import near_copies

    training = pd.read_csv(files["training"])
    pool = pd.read_parquet(files["pool"])
    rng = np.random.default_rng(11)
    k = len(pool) // 10
    pos = rng.choice(len(pool), 2 * k, replace=False)
    pool.iloc[pos[:k]] = training.iloc[rng.choice(len(training), k)].to_numpy()
    pool.iloc[pos[k:]] = near_copies(training.iloc[:k], training, share=1.0, seed=12).to_numpy()
    path = files["root"] / "leaky.parquet"
    pool.astype(pd.read_parquet(files["pool"]).dtypes.to_dict()).to_parquet(path)
    kind = np.zeros(len(pool), dtype=int)
    kind[pos[:k]], kind[pos[k:]] = 1, 2
    return path, kind


def _select(files, pool, out, *extra):
    return main(["select", "--training", str(files["training"]), "--pool", str(pool),
                 "--holdout", str(files["holdout"]), "--size", "2000", "--output", str(out), "--json", *extra])


def test_guard_keeps_copies_out_and_the_gate_judges_what_is_left(files, leaky, capsys):
    path, kind = leaky
    out = files["root"] / "guarded.csv"
    code = _select(files, path, out)
    payload = json.loads(capsys.readouterr().out)
    guard = payload["guard"]
    assert guard["pool_replicas_removed"] >= 0.09 * len(kind)  # the copies (a few training rows drawn twice)
    # near-copies go down to a fair generator's share; this pool repeats its own rows (drawn with
    # replacement), which raises the pool's estimate of that share, so a part of them stays
    assert guard["near_copies_avoided"] >= 0.4 * (kind == 2).sum()
    refined = payload["stages"][-1]
    assert refined["privacy"]["exact_copy_training"] == 0.0  # not one copy
    assert refined["details"]["closeness_error"] < 0.02
    # what is left still leans towards training, and the gate says so: nothing is written
    assert code == 3 and not payload["passed"] and payload["output"] is None and not out.exists()
    assert not payload["checks"]["privacy_gate"]["passed"]
    assert _select(files, path, out, "--force") == 3 and out.exists()
    capsys.readouterr()
    final = pd.read_csv(out)
    training = pd.read_csv(files["training"])
    assert len(final.merge(training.drop_duplicates(), how="inner")) == 0  # not one row of the output is a training row


def test_without_the_guard_the_copies_are_taken_and_nothing_is_written(files, leaky, capsys):
    path, kind = leaky
    out = files["root"] / "unguarded.csv"
    code = _select(files, path, out, "--no-privacy-guard")
    captured = capsys.readouterr()
    payload = json.loads(captured.out)
    assert code == 3 and not payload["passed"] and payload["output"] is None and not out.exists()
    refined = payload["stages"][-1]["privacy"]
    random = payload["stages"][0]["privacy"]
    # selection prefers the copies: more of them in the output than in a random pool sample
    assert refined["exact_copy_training"] > 1.5 * random["exact_copy_training"] > 0.1
    assert "privacy_gate" in captured.err and "exact_copy_training" in captured.err
    assert _select(files, path, out, "--no-privacy-guard", "--force") == 3 and out.exists()


def test_drop_removes_an_identifier_from_selection_and_output(files, capsys, tmp_path):
    training = pd.read_csv(files["training"]).assign(customer_id=lambda f: np.arange(len(f)))
    pool = pd.read_parquet(files["pool"]).assign(customer_id=lambda f: np.arange(len(f)) + 10**6)
    training.to_csv(tmp_path / "training.csv", index=False)
    pool.to_parquet(tmp_path / "pool.parquet")
    out = tmp_path / "out.csv"
    code = main(["select", "--training", str(tmp_path / "training.csv"), "--pool", str(tmp_path / "pool.parquet"),
                 "--size", "1000", "--output", str(out), "--drop", "customer_id"])
    assert code == 0 and "customer_id" not in pd.read_csv(out).columns
    capsys.readouterr()
    code = main(["select", "--training", str(tmp_path / "training.csv"), "--pool", str(tmp_path / "pool.parquet"),
                 "--size", "1000", "--output", str(out), "--drop", "no_such"])
    assert code == 2 and "no column 'no_such' to drop" in capsys.readouterr().err
