"""Reading tables: files, and folders of pool shards (what ``synth select --pool`` accepts); writing
them: permissions, no left-overs (``files``: tests/conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import time

import numpy as np
import pandas as pd
import pytest

from synth_core.errors import InputError
from synth_core.io import _host, read_table, remove_stale_temporaries, write_table


def _pool_folder(tmp_path, n_shards: int = 3, rows: int = 50):
    folder = tmp_path / "pool"
    folder.mkdir()
    rng = np.random.default_rng(0)
    parts = []
    for k in range(n_shards):
        part = pd.DataFrame({"a": rng.integers(0, 9, rows), "b": rng.choice(["x", "y"], rows)})
        write_table(part, folder / f"shard-{k:05d}.parquet")
        parts.append(part)
    (folder / "pool.json").write_text(json.dumps({"n_shards": n_shards}))
    return folder, pd.concat(parts, ignore_index=True)


def test_shard_folder_reads_as_one_table_in_shard_order(tmp_path):
    folder, expected = _pool_folder(tmp_path)
    pd.testing.assert_frame_equal(read_table(folder, what="pool"), expected)


def test_incomplete_or_empty_shard_folder_is_refused(tmp_path):
    folder, _ = _pool_folder(tmp_path)
    (folder / "shard-00001.parquet").unlink()
    with pytest.raises(InputError, match=r"pool folder .* is incomplete: 2 of 3 shards"):
        read_table(folder, what="pool")
    empty = tmp_path / "nothing"
    empty.mkdir()
    with pytest.raises(InputError, match="holds no shard-"):
        read_table(empty, what="pool")


def test_select_cli_takes_a_shard_folder(tmp_path, capsys):
    from synth_core.cli import main

    folder, pool = _pool_folder(tmp_path, rows=200)
    training = pool.sample(n=100, random_state=1)
    write_table(training, tmp_path / "training.csv")
    code = main(["select", "--training", str(tmp_path / "training.csv"), "--pool", str(folder),
                 "--output", str(tmp_path / "out.parquet")])
    assert code == 0
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert len(out) == 100 and list(out.columns) == ["a", "b"]
    assert "refined" in capsys.readouterr().out


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
