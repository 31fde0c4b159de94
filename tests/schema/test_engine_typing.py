"""The schema's decision reaches the real engine: month names train as categories, date-like text as dates."""

import numpy as np
import pandas as pd
import pytest

from synth_core.schema import infer_schema

pytest.importorskip("mostlyai.sdk")


@pytest.mark.slow
def test_month_names_and_date_text_train_and_come_back_in_the_source_format(tmp_path):
    from synth_core.generate import TrainingSettings, train_flat
    from synth_core.generate._pool import generate_pool, read_pool

    rng = np.random.default_rng(0)
    n = 600
    months = ["Feb", "Mar", "May", "June", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    source = pd.DataFrame({
        "Month": rng.choice(months, n),
        "visited": [f"2021-{m:02d}-{d:02d}" for m, d in zip(rng.integers(1, 13, n), rng.integers(1, 29, n))],
        "pages": rng.poisson(3, n),
        "Revenue": rng.random(n) < 0.2,
    })
    schema = infer_schema(source)
    training = schema.apply(source)
    handle = train_flat(training, tmp_path / "gen", TrainingSettings(model_size="small", max_epochs=1,
                                                                    max_training_time_min=None, seed=1,
                                                                    device="cpu"), name="sessions")
    pool = read_pool(generate_pool(handle, 300, tmp_path / "pool", seed=1).out_dir)
    assert pool["visited"].dtype == training["visited"].dtype  # dates, not text of thousands of values
    assert set(pool["Month"].dropna()) <= set(months)
    written = schema.restore(pool)
    assert written["visited"].dropna().str.fullmatch(r"2021-\d\d-\d\d").all()
