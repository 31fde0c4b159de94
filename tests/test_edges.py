"""Edges of ``synth select`` / ``synth evaluate`` and the writers: no lost data, no tracebacks,
reproducible files (issue 11). Small tables only: every test here runs in a second or two."""

from __future__ import annotations

import gzip
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synth_core.cli import main
from synth_core.errors import InputError
from synth_core.io import _host, read_table, remove_stale_temporaries, write_table

REPO = Path(__file__).resolve().parents[1]


def _tables(n_train: int = 300, n_pool: int = 1500, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)

    def draw(n: int, shift: float) -> pd.DataFrame:
        age = rng.integers(18, 80, n)
        return pd.DataFrame({
            "age": age,
            "job": np.where(age + rng.normal(0, 10, n) > 45 + shift, "senior", "junior"),
            "hours": np.round(rng.normal(40 + shift, 8, n), 1),
        })

    return draw(n_train, 0.0), draw(n_pool, 5.0)


@pytest.fixture()
def files(tmp_path):
    training, pool = _tables()
    paths = {"root": tmp_path, "training": tmp_path / "training.csv", "pool": tmp_path / "pool.csv",
             "holdout": tmp_path / "holdout.csv"}
    write_table(training, paths["training"])
    write_table(pool, paths["pool"])
    write_table(_tables(seed=1)[0], paths["holdout"])
    return paths


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


# --------------------------------------------------------------------------------------------
# --output: checked before any work


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
    training, pool = _tables()
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



# --------------------------------------------------------------------------------------------
# pool folders with a corrupt manifest


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


def test_generate_pool_refuses_a_corrupt_manifest(tmp_path):
    from synth_core.generate._pool import _check_or_write_manifest

    (tmp_path / "pool.json").write_text("{broken")
    with pytest.raises(InputError, match="unreadable pool manifest .*pool.json"):
        _check_or_write_manifest(tmp_path, {"n_shards": 1})


# --------------------------------------------------------------------------------------------
# pool column types


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
        with pytest.raises(InputError, match=r"pool\.csv: column '" + column + "'.*" + needle.replace("(", r"\(").replace(")", r"\)")):
            conform_table(frame, training, name="pool.csv")


def test_sequential_output_uses_the_same_conversion():
    from synth_core.select.sequential import select_groups

    rng = np.random.default_rng(0)
    training = pd.DataFrame({"g": np.repeat(np.arange(30), 3), "v": rng.integers(0, 5, 90), "t": "x"})
    pool = pd.DataFrame({"g": np.repeat(np.arange(90), 3), "v": rng.integers(0, 5, 270).astype(float), "t": "x"})
    sel = select_groups(training, pool, "g", 20, coherence=False, refine=False)
    assert sel.output(pool).dtypes.to_dict() == training.dtypes.to_dict()
    pool.loc[sel.layout.rows_of(sel.final.groups)[0], "v"] = 1.5
    with pytest.raises(InputError, match="column 'v' has non-integer values"):
        sel.output(pool)


# --------------------------------------------------------------------------------------------
# one column


def test_one_column_table_is_selected_univariately(tmp_path, capsys):
    training, pool = _tables()
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


def test_ipf_without_pairs_rakes_the_margins():
    from synth_core.select.flat._ipf import fit_weights

    rng = np.random.default_rng(0)
    train = rng.integers(0, 4, (400, 1)).astype(np.uint8)
    pool = np.minimum(rng.geometric(0.5, (4000, 1)) - 1, 3).astype(np.uint8)
    fit = fit_weights(pool, train, [4], np.zeros((0, 2), dtype=np.int64))
    weighted = np.bincount(pool[:, 0], weights=fit.weights, minlength=4) / fit.weights.sum()
    np.testing.assert_allclose(weighted, np.bincount(train[:, 0], minlength=4) / 400, atol=1e-9)


# --------------------------------------------------------------------------------------------
# files: reproducible bytes, permissions, no left-overs


def test_csv_gz_output_is_byte_identical_across_runs_folders_and_names(files):
    outputs = [files["root"] / "a" / "first.csv.gz", files["root"] / "b" / "second.csv.gz"]
    for out in outputs:
        assert _select(files, out) == 0
        time.sleep(1.1)  # a header with a time stamp would now differ
    assert outputs[0].read_bytes() == outputs[1].read_bytes()
    with gzip.open(outputs[0], "rt") as fh:
        assert fh.readline().strip() == "age,job,hours"


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_output_permissions_follow_the_umask(files, umask):
    old = os.umask(umask)
    try:
        for name in ("out.csv", "out.csv.gz", "out.parquet"):
            write_table(pd.read_csv(files["training"]), files["root"] / name)
            assert (files["root"] / name).stat().st_mode & 0o777 == 0o666 & ~umask
    finally:
        os.umask(old)


def test_stale_temporary_files_are_removed_by_the_next_write(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    host = _host()  # as synth_core.io writes it into a temporary name
    stale = tmp_path / f".out.csv.synth-{host}-{dead.pid}-0a1b2c3d.tmp"
    live = tmp_path / f".out.csv.synth-{host}-{os.getpid()}-0a1b2c3d.tmp"  # a write in progress
    other_old = tmp_path / ".out.csv.synth-otherhost-1-0a1b2c3d.tmp"
    other_new = tmp_path / ".out.csv.synth-otherhost-2-0a1b2c3d.tmp"
    foreign = tmp_path / ".someone-elses.tmp"
    for path in (stale, live, other_old, other_new, foreign):
        path.write_text("partial")
    day_ago = time.time() - 2 * 24 * 3600
    os.utime(other_old, (day_ago, day_ago))
    write_table(pd.DataFrame({"a": [1]}), tmp_path / "out.csv")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([live.name, other_new.name, foreign.name, "out.csv"])
    assert remove_stale_temporaries(tmp_path) == []


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    class Unwritable(pd.DataFrame):
        def to_parquet(self, *args, **kwargs):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_table(Unwritable({"a": [1]}), tmp_path / "out.parquet")
    assert list(tmp_path.iterdir()) == []


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


# --------------------------------------------------------------------------------------------
# evaluate: the *_max figures stay in their domain


def test_evaluate_one_synthetic_row_gives_maxima_within_0_and_1(files, capsys):
    one = files["root"] / "one.csv"
    write_table(pd.read_csv(files["pool"]).head(1), one)
    code = main(["evaluate", "--training", str(files["training"]), "--synthetic", str(one), "--json"])
    assert code == 0
    accuracy = json.loads(capsys.readouterr().out)["accuracy"]
    for name in ("overall_max", "univariate_max", "bivariate_max", "trivariate_max"):
        assert 0.0 <= accuracy[name] <= 1.0, (name, accuracy[name])


# --------------------------------------------------------------------------------------------
# progress ETA respects every cap


def test_progress_eta_is_the_earliest_cap(caplog):
    from synth_core.select._progress import Progress

    now = [0.0]
    logger = logging.getLogger("test.edges.progress")
    p = Progress(logger, "refine", total=20_000, unit="swaps", limits={"rounds_done": 20}, every_s=1.0,
                 clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger=logger.name):
        now[0] = 10.0
        p.update(100, rounds_done=0)  # no round finished yet: the swap rate is all there is
        now[0] = 20.0
        p.update(150, rounds_done=4)  # 5 s per round, 16 rounds left: 80 s, not 2,647 s by swaps
    lines = [r.getMessage() for r in caplog.records]
    assert "ETA 1990 s" in lines[0]
    assert "ETA 80 s" in lines[1] and "rounds_done=4/20" in lines[1]


def test_refinement_eta_respects_the_round_cap(monkeypatch, caplog):
    from synth_core.select import _progress as progress
    from synth_core.select._features import build_feature_set
    from synth_core.select._objective import target_counts
    from synth_core.select.flat._refine import refine_swaps

    monkeypatch.setattr(progress, "DEFAULT_EVERY_S", 0.0)
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 5, (3000, 4)).astype(np.uint8)
    train = np.minimum(rng.geometric(0.4, (500, 4)) - 1, 4).astype(np.uint8)
    fs = build_feature_set(np.full(4, 5), [(0, 1), (2, 3)])
    with caplog.at_level(logging.INFO, logger="synth_core.select.flat._refine"):
        refine_swaps(codes, np.arange(300), fs, target_counts(train, fs, 300), max_swaps=1_000_000, max_rounds=2,
                     swaps_per_round=256)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refine: ")]
    assert lines and all("/512 swaps" in line and "rounds_done=" in line for line in lines)


# --------------------------------------------------------------------------------------------
# IPF never returns a subset worse than its start


def test_ipf_keeps_the_start_when_raking_makes_the_draw_worse():
    """24 columns of 8 categories, 80 training rows: every pair table is sparse, raking zeroes
    almost every pool row and the rows drawn from its weights fit worse than a uniform draw."""
    from synth_core.select.flat import _pipeline as select
    from synth_core.select.flat._ipf import integerise

    rng = np.random.default_rng(1)
    training = pd.DataFrame({f"c{i}": rng.integers(0, 8, 80).astype(str) for i in range(24)})
    pool = pd.DataFrame({f"c{i}": rng.integers(0, 8, 1500).astype(str) for i in range(24)})
    settings = select.SelectionSettings()
    problem = select.stage_mi_pairs(select.make_problem(training, pool, 150), settings)
    uniform = integerise(np.ones(problem.n_pool), 150, settings.seed, oversize=settings.oversize)
    ipf = select.stage_ipf(problem, settings)
    assert ipf.objectives[-1] > ipf.objectives[0]  # the raking went wrong here ...
    assert problem.objective_of(ipf.rows) <= problem.objective_of(uniform)  # ... and IPF kept its start
    assert ipf.kept_sweep == 0 and np.array_equal(ipf.rows, uniform)


# --------------------------------------------------------------------------------------------
# wide tables: the objective keeps the pairs with the highest MI


def test_wide_tables_keep_the_top_pairs_by_mutual_information():
    from synth_core.select import _mi as mi
    from synth_core.select.flat import _pipeline as select
    assert mi.default_pair_count(15) == 105 and mi.default_pair_count(80) == 3160
    assert mi.default_pair_count(300) == mi.DEFAULT_MAX_PAIRS == 3160
    rng = np.random.default_rng(0)
    base = rng.integers(0, 4, 200)
    training = pd.DataFrame({f"c{i:02d}": (base + (rng.random(200) < i / 90) * rng.integers(0, 4, 200)) % 4
                             for i in range(90)})  # 4,005 pairs; dependence falls with the index
    problem = select.stage_mi_pairs(select.make_problem(training, training, 100), select.SelectionSettings())
    assert len(problem.pairs) == 3160 and problem.feature_set.n_features == 90 + 3160
    assert np.all(np.diff(problem.pair_mi) <= 0)
    everything = mi.pairwise_mi(problem.train_codes, problem.binner.n_codes)[np.triu_indices(90, 1)]
    assert problem.pair_mi[-1] >= np.sort(everything)[::-1][3159]
