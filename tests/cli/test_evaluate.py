"""``synth evaluate``: JSON contract, readable output, bad input as one line with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from synth_core.cli import main


def _run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("evaluate")

    def make(n, shift=0.0):
        return pd.DataFrame(
            {
                "num": rng.normal(shift, 1, n).round(3),
                "cat": rng.choice(["a", "b", "c", "ä"], n),
                "when": pd.to_datetime("2020-01-01") + pd.to_timedelta(rng.integers(0, 300, n), "D"),
                "mixed": rng.choice(["1", "x", "2.5"], n),
                "all_nan": np.nan,
                "constant": 3,
            }
        )

    paths = {}
    for name, frame in (("training", make(600)), ("holdout", make(600)), ("synthetic", make(600, 0.3))):
        paths[name] = root / f"{name}.parquet"
        frame.to_parquet(paths[name])
    make(600).to_csv(root / "training.csv.gz", index=False)
    make(600, 0.3).assign(extra=1).to_csv(root / "synthetic_extra.csv", index=False)
    make(600).drop(columns=["cat"]).to_csv(root / "lacking.csv", index=False)
    # an identifier column: the synthetic table copies training rows under fresh ids
    with_ids = make(600).assign(id=np.arange(600) * 3 + 1000)
    with_ids.to_parquet(root / "ids_training.parquet")
    make(600).assign(id=np.arange(600) + 5000).to_parquet(root / "ids_holdout.parquet")
    with_ids.iloc[:300].assign(id=np.arange(300) + 90_000).to_parquet(root / "ids_synthetic.parquet")
    (root / "empty.csv").write_text("num,cat\n")
    (root / "garbage.parquet").write_bytes(b"not a parquet file")
    paths["root"] = root
    return paths


def test_json_has_exactly_the_documented_fields(tables, capsys):
    code, out, err = _run(
        ["evaluate", "--training", str(tables["training"]), "--holdout", str(tables["holdout"]),
         "--synthetic", str(tables["synthetic"]), "--json"], capsys)
    assert code == 0
    payload = json.loads(out)  # stdout is one JSON object
    assert {"accuracy", "privacy", "rows", "elapsed_s"} <= set(payload)
    assert set(payload["accuracy"]) == {
        "overall", "univariate", "bivariate", "trivariate", "coherence",
        "overall_max", "univariate_max", "bivariate_max", "trivariate_max", "coherence_max"}
    assert 0.5 < payload["accuracy"]["overall"] < 1.0
    assert payload["accuracy"]["coherence"] is None
    assert 0.3 < payload["privacy"]["dcr_share"] < 0.7
    assert payload["rows"] == {"training": 600, "synthetic": 600, "holdout": 600}
    priv = payload["privacy"]
    low, high = priv["dcr_share_ci"]
    assert low < priv["dcr_share"] < high and high - low < 0.1
    low, high = priv["membership_auc_ci"]
    assert low <= priv["membership_auc"] <= high and 0.3 < priv["membership_auc"] < 0.7
    assert set(priv["membership_auc_by_attack"]) == {"distance", "density_ratio"}
    assert priv["excluded_columns"] == {}
    # the verdict with default thresholds; the shifted table is no copy of training
    assert payload["privacy_gate"] == {"passed": True, "reasons": []}


def test_without_holdout_there_is_no_privacy_verdict(tables, capsys):
    args = ["evaluate", "--training", str(tables["training"]), "--synthetic", str(tables["synthetic"])]
    code, out, _ = _run(args + ["--json"], capsys)
    payload = json.loads(out)
    assert code == 0 and payload["privacy"] is None and payload["privacy_gate"] is None
    code, out, _ = _run(args, capsys)
    assert "privacy: not evaluated (no holdout to compare with)" in out


def test_readable_output_shows_intervals_and_the_verdict(tables, capsys):
    code, out, _ = _run(["evaluate", "--training", str(tables["training"]), "--holdout", str(tables["holdout"]),
                         "--synthetic", str(tables["synthetic"])], capsys)
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert "95% CI" in lines["dcr_share"]
    assert "95% CI" in lines["membership_auc"] and "best attack" in lines["membership_auc"]
    assert "privacy_gate: passed" in out


def test_identifier_columns_are_detected_and_reported(tables, capsys):
    root = tables["root"]
    args = ["evaluate", "--training", str(root / "ids_training.parquet"),
            "--holdout", str(root / "ids_holdout.parquet"),
            "--synthetic", str(root / "ids_synthetic.parquet"), "--json"]
    code, out, err = _run(args, capsys)
    payload = json.loads(out)
    assert code == 0  # a measurement: the verdict is in the output, not the exit code
    assert "privacy: column 'id' looks like an identifier (unique per row in training)" in err
    assert payload["privacy"]["excluded_columns"] == {"id": "unique per row in training"}
    # the ids no longer hide the copies
    assert payload["privacy"]["exact_copy_training"] == 1.0
    gate = payload["privacy_gate"]
    assert gate["passed"] is False and any(r.startswith("exact_copy_training ") for r in gate["reasons"])

    code, out, err = _run(args + ["--drop", "id", "--drop", "constant"], capsys)
    payload = json.loads(out)
    assert code == 0 and "identifier" not in err
    assert payload["privacy"]["excluded_columns"] == {"id": "dropped", "constant": "dropped"}
    assert payload["privacy"]["exact_copy_training"] == 1.0
    # dropped columns leave the accuracy too
    from synth_core.metrics import evaluate

    frames = [pd.read_parquet(root / f"ids_{t}.parquet") for t in ("training", "synthetic", "holdout")]
    ev = evaluate(*frames, drop=["id", "constant"], membership=False)
    assert set(ev.accuracy.univariate["column"]) == {"num", "cat", "when", "mixed", "all_nan"}


def test_drop_of_an_unknown_column_is_one_line(tables, capsys):
    code, out, err = _run(["evaluate", "--training", str(tables["training"]), "--synthetic", str(tables["synthetic"]),
                           "--drop", "nope"], capsys)
    assert code == 2 and out == ""
    assert err.strip() == f"synth evaluate: error: {tables['training']}: no column 'nope' to drop"


def test_select_accepts_drop_too():
    from synth_core.cli._main import build_parser

    args = build_parser().parse_args(["select", "--training", "t", "--pool", "p", "--output", "o",
                                      "--drop", "a", "--drop", "b"])
    assert args.drop == ["a", "b"]


def test_readable_output_lists_worst_columns_and_pairs(tables, capsys):
    code, out, _ = _run(["evaluate", "--training", str(tables["root"] / "training.csv.gz"),
                         "--synthetic", str(tables["root"] / "synthetic_extra.csv")], capsys)
    assert code == 0
    assert "worst 5 columns" in out and "worst 5 pairs" in out
    # the shifted numeric column is the worst one
    worst_line = out.split("worst 5 columns")[1].splitlines()[1]
    assert worst_line.strip().endswith("num")


def test_extra_columns_are_ignored_with_a_warning(tables, capsys):
    code, _, err = _run(["evaluate", "--training", str(tables["root"] / "training.csv.gz"),
                         "--synthetic", str(tables["root"] / "synthetic_extra.csv")], capsys)
    assert code == 0 and "ignoring 1 column(s) not in training: extra" in err


@pytest.mark.parametrize(
    "synthetic, expected",
    [
        ("missing.csv", "synthetic file not found"),
        ("empty.csv", "synthetic file has no rows"),
        ("garbage.parquet", "cannot read synthetic file"),
        ("lacking.csv", "lacks training column 'cat'"),
        ("table.xlsx", "unsupported file type"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tables, capsys, synthetic, expected):
    code, out, err = _run(["evaluate", "--training", str(tables["training"]),
                           "--synthetic", str(tables["root"] / synthetic)], capsys)
    assert code == 2 and out == ""
    assert expected in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_group_key_absent_is_named(tables, capsys):
    code, _, err = _run(["evaluate", "--training", str(tables["training"]),
                         "--synthetic", str(tables["synthetic"]), "--group-key", "user"], capsys)
    assert code == 2 and "group key 'user' not found" in err


def test_evaluate_imports_neither_torch_mostlyai_nor_dagster(tables):
    script = (
        "import sys\n"
        "from synth_core.cli import main\n"
        f"code = main(['evaluate', '--training', {str(tables['training'])!r}, '--holdout', {str(tables['holdout'])!r},"
        f" '--synthetic', {str(tables['synthetic'])!r}, '--json'])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'mostlyai', 'dagster'))\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stderr
    json.loads(proc.stdout)


def test_column_states_a_kind_as_a_dataset_does(tables, capsys):
    base = ["evaluate", "--training", str(tables["training"]), "--synthetic", str(tables["synthetic"]), "--json"]
    code, out, _ = _run(base, capsys)
    numeric = json.loads(out)["accuracy"]
    code, out, _ = _run(base + ["--column", "num=categorical", "--column", "cat=drop"], capsys)
    stated = json.loads(out)["accuracy"]
    assert code == 0 and stated["univariate"] != numeric["univariate"]  # num binned as labels, cat left out


@pytest.mark.parametrize("item, needle", [("num", "expected NAME=KIND"), ("num=date", "unknown kind 'date'"),
                                          ("cat=float", "column 'cat': value")])
def test_a_bad_column_statement_exits_2_in_one_line(tables, capsys, item, needle):
    code, _, err = _run(["evaluate", "--training", str(tables["training"]), "--synthetic", str(tables["synthetic"]),
                         "--column", item], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, err
