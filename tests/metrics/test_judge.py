"""The gate's one driver (synth_core.metrics.judge): which figures feed which check, and the verdict."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synth_core.metrics import CHECKS, GateSettings, Verdict, evaluate, judge
from synth_core.metrics._accuracy import AccuracyReport
from synth_core.metrics._evaluate import Evaluation
from tests.metrics.figures import CLEAN

TRAINING = pd.DataFrame({"g": [1, 1, 2, 3, 3, 3], "x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]})


def report(overall: float, overall_max: float = 0.97) -> AccuracyReport:
    empty = pd.DataFrame()
    return AccuracyReport({"overall": overall, "overall_max": overall_max}, empty, empty, empty, empty)


def evaluation(overall: float = 0.95, privacy: dict | None = CLEAN) -> Evaluation:
    return Evaluation(report(overall), privacy, rows={}, elapsed_s=0.0)


def flat(output: Evaluation, random_sample=None, settings: GateSettings | None = None, **integrity) -> Verdict:
    """Judge a flat output: by default the first three training rows, selected as pool rows 0-2 of 10."""
    args = {"final": TRAINING.iloc[:3], "training": TRAINING, "target": 3, "selected": np.arange(3), "n_pool": 10,
            **integrity}
    return judge(output, report(0.94) if random_sample is None else random_sample, settings=settings, **args)


def test_every_check_passes():
    verdict = flat(evaluation())
    assert verdict.passed and verdict.failed == () and verdict.reasons == ()
    assert tuple(check.name for check in verdict.checks) == CHECKS
    assert verdict.to_dict() == {name: {"passed": True, "reasons": []} for name in CHECKS}
    accuracy = verdict["accuracy_floor"]
    assert accuracy.figures == {"overall": 0.95, "floor": pytest.approx(0.94), "random_pool_sample": 0.94,
                                "overall_max": 0.97}
    assert accuracy.summary == "overall 0.95000 vs floor 0.94000 and random pool sample 0.94000"
    assert verdict["privacy_gate"].figures["dcr_share"] == 0.505
    assert verdict["integrity"].figures == {"rows": 3, "target": 3, "pool_rows": 10}


def test_accuracy_floor_fails_below_the_floor_and_below_the_random_sample():
    verdict = flat(evaluation(overall=0.93))
    assert not verdict.passed and [c.name for c in verdict.failed] == ["accuracy_floor"]
    assert verdict["accuracy_floor"].reasons == ("overall 0.93000 < floor 0.94000",
                                                 "overall 0.93000 < random pool sample 0.94000")
    assert verdict.reasons == (("accuracy_floor: overall 0.93000 < floor 0.94000; "
                                "overall 0.93000 < random pool sample 0.94000"),)
    assert verdict["privacy_gate"].passed and verdict["integrity"].passed
    # above the floor, below the random pool sample alone
    beaten = flat(evaluation(overall=0.95), report(0.951))
    assert beaten["accuracy_floor"].reasons == ("overall 0.95000 < random pool sample 0.95100",)
    # the configured floor replaces overall_max - floor_margin
    assert flat(evaluation(), settings=GateSettings(accuracy_floor=0.96))["accuracy_floor"].reasons == (
        "overall 0.95000 < floor 0.96000",)


@pytest.mark.parametrize("sample", [report(0.951), report(0.951).to_dict(), Evaluation(report(0.951), None, {}, 0.0)],
                         ids=["report", "mapping", "evaluation"])
def test_the_random_sample_in_any_form(sample):
    verdict = flat(evaluation(overall=0.95), sample)
    assert verdict["accuracy_floor"].figures["random_pool_sample"] == 0.951
    assert not verdict.passed


def test_privacy_gate_fails_on_the_outputs_figures_with_the_given_settings():
    leaky = evaluation(privacy={**CLEAN, "nndr_ratio": 0.49})
    verdict = flat(leaky)
    assert [c.name for c in verdict.failed] == ["privacy_gate"]
    assert verdict.reasons == ("privacy_gate: nndr_ratio 0.4900 < min_nndr_ratio 0.5",)
    assert verdict.to_dict()["privacy_gate"] == {"passed": False, "reasons": ["nndr_ratio 0.4900 < min_nndr_ratio 0.5"]}
    # judged with the driver's thresholds, whatever verdict the evaluation carries
    assert flat(leaky, settings=GateSettings(min_nndr_ratio=0.4)).passed
    copies = flat(evaluation(privacy={**CLEAN, "dcr_share": 0.5301, "dcr_share_ci": [0.5231, 0.5371]}))
    assert copies["privacy_gate"].reasons == (
        "dcr_share 0.5301 (95% CI 0.5231–0.5371, above 0.5) > max_dcr_share 0.52",)


def test_privacy_gate_without_figures_is_not_evaluated():
    verdict = flat(evaluation(privacy=None))
    assert verdict["privacy_gate"] is None and verdict.passed
    assert verdict.to_dict()["privacy_gate"] is None
    assert [name for name, check in verdict.items() if check is None] == ["privacy_gate"]
    # the other checks still decide
    low = flat(evaluation(overall=0.90, privacy=None))
    assert not low.passed and [c.name for c in low.failed] == ["accuracy_floor"]


def test_flat_integrity():
    bad = flat(evaluation(), final=TRAINING.iloc[:3].astype({"x": "float32"}), target=4, selected=np.array([0, 0, 11]))
    assert [c.name for c in bad.failed] == ["integrity"]
    assert bad["integrity"].reasons == (
        "row count 3 differs from the target 4",
        "column 'x' has dtype float32, training has float64",
        "a selected index lies outside the pool",
        "a pool row was selected twice",
    )
    assert bad["integrity"].figures == {"rows": 3, "target": 4, "pool_rows": 10}
    # flat data: the row count is judged, not groups (three rows of two groups pass)
    assert flat(evaluation())["integrity"].passed


def test_sequential_integrity():
    good = flat(evaluation(), final=TRAINING[TRAINING["g"] != 1], target=2, selected=np.array([4, 1]), n_pool=5,
                group_key="g")
    assert good.passed and good["integrity"].figures == {"rows": 4, "target": 2, "pool_rows": 5}
    long_group = pd.DataFrame({"g": [7] * 4 + [8], "x": np.arange(5.0)})
    bad = flat(evaluation(), final=long_group, target=3, selected=np.array([0, 1]), n_pool=5, group_key="g")
    # five rows for a flat target of 3 would fail; for sequences the groups count
    assert bad["integrity"].reasons == ("group count 2 differs from the target 3",
                                        "sequence lengths 1-4 outside the training range 1-3")
    assert bad.reasons == (("integrity: group count 2 differs from the target 3; "
                            "sequence lengths 1-4 outside the training range 1-3"),)


def test_every_check_fails_at_once_in_checks_order():
    verdict = flat(evaluation(overall=0.90, privacy={**CLEAN, "nndr_ratio": 0.2}), selected=np.array([0, 1, 1]))
    assert [c.name for c in verdict.failed] == list(CHECKS)
    assert [r.split(":")[0] for r in verdict.reasons] == list(CHECKS)


def test_a_verdict_holds_the_three_checks_in_order():
    checks = flat(evaluation()).checks
    with pytest.raises(ValueError, match="in this order"):
        Verdict(checks[::-1])
    with pytest.raises(ValueError):
        Verdict(checks[:2])
    assert Verdict((checks[0], None, checks[2])).passed


def test_judges_a_real_evaluation_like_the_evaluation_itself():
    """On evaluate()'s own output the privacy check equals the evaluation's verdict with the same settings,
    and copies of training fail it while unseen rows pass."""
    rng = np.random.default_rng(0)
    n = 1200
    table = pd.DataFrame({"a": rng.integers(0, 40, n), "b": rng.normal(size=n).round(3),
                          "c": rng.choice(list("pqrstu"), n)})
    training, holdout, unseen = table.iloc[:400], table.iloc[400:800], table.iloc[800:].reset_index(drop=True)
    settings = GateSettings(eval_seed=3)
    verdicts = {}
    for name, output in (("unseen", unseen), ("copies", training.reset_index(drop=True))):
        ev = evaluate(training, output, holdout, seed=settings.eval_seed, gate=settings)
        base = evaluate(training, unseen, holdout, seed=settings.eval_seed, gate=settings, privacy=False)
        verdict = judge(ev, base, final=output, training=training, target=400, selected=np.arange(400), n_pool=800,
                        settings=settings)
        assert verdict["privacy_gate"] == ev.privacy_gate
        assert verdict["accuracy_floor"].figures["overall"] == ev.accuracy.overall
        verdicts[name] = verdict
    assert verdicts["unseen"]["privacy_gate"].passed and verdicts["unseen"]["integrity"].passed
    assert not verdicts["copies"]["privacy_gate"].passed
    assert verdicts["copies"]["privacy_gate"].figures["nndr_ratio"] == 0.0
