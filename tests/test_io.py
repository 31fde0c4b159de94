"""Reading tables: files, and folders of pool shards (what ``synth select --pool`` accepts)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from synth_core.errors import InputError
from synth_core.io import read_table, write_table


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
