"""Edges of ``synth select``: the output checked before any work, corrupt pool manifests, pool
columns that do not fit training, one column, reproducible bytes, a full disk; one-line errors,
no lost data, no tracebacks (issue 11). Small tables only (``files``: tests/conftest.py)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from synth_core.cli import main
from synth_core.io import read_table, write_table
from tests.tables import edge_tables

REPO = Path(__file__).resolve().parents[2]


def _select(files, output, *extra: str) -> int:
    return main(["select", "--training", str(files["training"]), "--pool", str(files["pool"]),
                 "--size", "200", "--output", str(output), *extra])


def _one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


def _snapshot(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


@pytest.mark.parametrize("role", ["training", "pool", "holdout"])
def test_output_that_is_an_input_is_refused_and_left_untouched(files, capsys, role):
    target = files[role]
    before = _snapshot(target)
    spellings = [target, target.parent / "." / ".." / target.parent.name / target.name]
    link = files["root"] / f"link-{role}.csv"
    link.symlink_to(target)
    hard = files["root"] / f"hard-{role}.csv"
    os.link(target, hard)
    for output in spellings + [link, hard]:
        code = _select(files, output, "--holdout", str(files["holdout"]))
        assert code == 2
        _one_line_error(capsys, "--output", "same file as --" + role)
        assert _snapshot(target) == before


def test_output_folder_or_unwritable_path_is_refused_before_any_work(files, capsys):
    # the training file does not exist: the output is checked first, so its error comes first
    missing_training = files["root"] / "no-such-training.csv"
    blocker = files["root"] / "a-file"
    blocker.write_text("x")
    for output, needle in [(files["root"], "is a folder"),
                           (blocker / "sub" / "out.csv", "is not a folder")]:
        code = main(["select", "--training", str(missing_training), "--pool", str(files["pool"]),
                     "--output", str(output)])
        assert code == 2
        _one_line_error(capsys, "--output", needle)
    assert sorted(p.name for p in files["root"].iterdir() if p.name.startswith(".")) == []
    # a missing parent that can be created is fine: it is created when the output is written
    assert _select(files, files["root"] / "new" / "deeper" / "out.csv") == 0
    assert (files["root"] / "new" / "deeper" / "out.csv").is_file()


def test_output_in_a_read_only_folder_is_refused(tmp_path):
    """As root every folder is writable, so the CLI then runs as ``nobody`` (skipped where
    ``nobody`` cannot run this interpreter)."""
    base = tmp_path
    training, pool = edge_tables()
    write_table(training, base / "training.csv")
    write_table(pool, base / "pool.csv")
    locked = base / "locked"
    locked.mkdir()
    argv = [sys.executable, "-m", "synth_core.cli", "select", "--training", str(base / "training.csv"),
            "--pool", str(base / "pool.csv"), "--output", str(locked / "out.csv")]
    kwargs: dict = {}
    if os.geteuid() == 0:
        try:
            import pwd

            nobody = pwd.getpwnam("nobody")
        except (ImportError, KeyError):
            pytest.skip("running as root and there is no user 'nobody' to run as")
        for folder in (tmp_path.parent.parent, tmp_path.parent, base):  # pytest's folders are 0700
            folder.chmod(folder.stat().st_mode | 0o005)
        kwargs["preexec_fn"] = lambda: (os.setgid(nobody.pw_gid), os.setuid(nobody.pw_uid))
        try:
            subprocess.run([sys.executable, "-c", "import pandas"], check=True, capture_output=True, timeout=60,
                           cwd=REPO, **kwargs)
        except (OSError, subprocess.SubprocessError):
            pytest.skip("running as root and 'nobody' cannot run this interpreter")
    locked.chmod(0o555)
    try:
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
        run = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO, timeout=120, **kwargs)
    finally:
        locked.chmod(0o755)
    assert run.returncode == 2, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "is not writable" in run.stderr and "--output" in run.stderr
    assert list(locked.iterdir()) == []


def test_unwritable_output_folder_is_one_line_even_as_root(files, capsys, monkeypatch):
    """Where the real check above cannot run (root), the refusal path is exercised with a
    folder whose file creation fails as on a read-only file system."""
    from synth_core import io
    real_open = os.open

    def read_only(path, flags, mode=0o777, **kwargs):
        if Path(path).parent == files["root"] / "ro" and flags & os.O_CREAT:
            raise OSError(30, "Read-only file system")
        return real_open(path, flags, mode, **kwargs)

    (files["root"] / "ro").mkdir()
    monkeypatch.setattr(io.os, "open", read_only)
    assert _select(files, files["root"] / "ro" / "out.csv") == 2
    _one_line_error(capsys, "--output", "is not writable (Read-only file system)")


def test_output_inside_the_pool_folder_is_refused(files, capsys):
    folder = files["root"] / "pool-folder"
    folder.mkdir()
    write_table(pd.read_csv(files["pool"]), folder / "shard-00000.parquet")
    code = main(["select", "--training", str(files["training"]), "--pool", str(folder),
                 "--output", str(folder / "shard-00001.parquet")])
    assert code == 2
    _one_line_error(capsys, "lies in the shard folder of --pool")
    assert sorted(p.name for p in folder.iterdir()) == ["shard-00000.parquet"]


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"n_shards": "three"}', ""])
def test_corrupt_pool_manifest_is_one_line_naming_the_file(files, capsys, text):
    folder = files["root"] / "pool-folder"
    folder.mkdir()
    write_table(pd.read_csv(files["pool"]), folder / "shard-00000.parquet")
    (folder / "pool.json").write_text(text)
    out = files["root"] / "out.csv"
    code = main(["select", "--training", str(files["training"]), "--pool", str(folder), "--output", str(out)])
    assert code == 2
    _one_line_error(capsys, str(folder / "pool.json"))
    assert not out.exists()


@pytest.mark.parametrize(
    "column, values, needles",
    [
        ("age", lambda p: p["age"].astype(str).where(p.index != 7, "age32"), ["'age'", "str", "int64", "'age32'"]),
        ("job", lambda p: (p["job"] == "senior").astype(int), ["'job'", "int64", "str"]),
        ("age", lambda p: p["age"] + 0.5, ["'age'", "non-integer", "int64"]),
    ],
)
def test_pool_column_that_does_not_fit_training_exits_2(files, capsys, column, values, needles):
    pool = pd.read_csv(files["pool"])
    pool[column] = values(pool)
    bad = files["root"] / "bad-pool.csv"
    write_table(pool, bad)
    out = files["root"] / "out.parquet"
    code = main(["select", "--training", str(files["training"]), "--pool", str(bad), "--output", str(out)])
    assert code == 2
    _one_line_error(capsys, str(bad), *needles)
    assert not out.exists()


def test_pool_columns_that_convert_without_loss_are_converted(files):
    pool = pd.read_csv(files["pool"])
    pool["age"] = pool["age"].astype("Int64")  # nullable, no missing values
    pool["hours"] = pool["hours"].astype("float32").astype("float64")
    pool["job"] = pool["job"].astype("category")
    parquet = files["root"] / "typed-pool.parquet"
    pool.astype({"age": "float64"}).to_parquet(parquet)  # 3.0 for 3
    out = files["root"] / "out.parquet"
    assert main(["select", "--training", str(files["training"]), "--pool", str(parquet), "--size", "200",
                 "--output", str(out)]) == 0
    training = read_table(files["training"])
    assert pd.read_parquet(out).dtypes.to_dict() == training.dtypes.to_dict()


def test_one_column_table_is_selected_univariately(tmp_path, capsys):
    training, pool = edge_tables()
    write_table(training[["age"]], tmp_path / "training.csv")
    write_table(pool[["age"]], tmp_path / "pool.csv")
    out = tmp_path / "out.csv"
    code = main(["select", "--training", str(tmp_path / "training.csv"), "--pool", str(tmp_path / "pool.csv"),
                 "--size", "200", "--output", str(out), "--json"])
    assert code == 0, capsys.readouterr().err
    stages = {s["stage"]: s for s in json.loads(capsys.readouterr().out)["stages"]}
    assert stages["refined"]["accuracy"]["bivariate"] is None
    assert stages["refined"]["objective"] < stages["random"]["objective"] / 2
    assert stages["refined"]["accuracy"]["univariate"] > stages["random"]["accuracy"]["univariate"]
    assert list(pd.read_csv(out).columns) == ["age"] and len(pd.read_csv(out)) == 200


def test_csv_gz_output_is_byte_identical_across_runs_folders_and_names(files):
    outputs = [files["root"] / "a" / "first.csv.gz", files["root"] / "b" / "second.csv.gz"]
    for out in outputs:
        assert _select(files, out) == 0
        time.sleep(1.1)  # a header with a time stamp would now differ
    assert outputs[0].read_bytes() == outputs[1].read_bytes()
    with gzip.open(outputs[0], "rt") as fh:
        assert fh.readline().strip() == "age,job,hours"


def test_disk_full_while_writing_is_one_line_and_leaves_nothing(files, capsys, monkeypatch):
    import errno

    from synth_core import io
    def no_space(df, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(io.pd.DataFrame, "to_csv", no_space)
    out = files["root"] / "out.csv"
    assert _select(files, out) == 1
    _one_line_error(capsys, f"{out}: No space left on device")
    assert not out.exists() and not [p for p in files["root"].iterdir() if p.name.startswith(".")]
