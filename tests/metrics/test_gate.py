"""The gate's rules (synth_core.metrics._gate): each condition fails on its own, with its reason."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from synth_core.metrics import GateSettings, accuracy_floor, integrity, privacy_gate
from tests.metrics.figures import CLEAN

# a leak the size-matched test shows: rows, then whole sequences (the holdout the larger side there)
COPIES = {"exact_copy_training": 0.1350, "exact_copy_holdout": 0.1280, "exact_copy_training_matched": 0.1390,
          "exact_copy_holdout_matched": 0.1280, "exact_copy_excess": 0.0110, "exact_copy_excess_ci": [0.0012, 0.0208]}
SEQUENCE_COPIES = {"exact_copy_training_sequences": 0.01, "exact_copy_holdout_sequences": 0.002,
                   "exact_copy_training_matched_sequences": 0.01, "exact_copy_holdout_matched_sequences": 0.0015,
                   "exact_copy_excess_sequences": 0.0085, "exact_copy_excess_ci_sequences": [0.003, 0.014]}


def test_defaults_live_in_one_place():
    g = GateSettings()
    assert (g.accuracy_floor, g.floor_margin, g.max_dcr_share, g.min_nndr_ratio, g.exact_copy_tolerance,
            g.max_membership_auc, g.eval_seed) == (None, 0.03, 0.52, 0.5, 0.0, 0.52, 1)
    from synth_orchestration.configs import GateConfig

    config = GateConfig()
    for name, value in config.model_dump().items():
        assert getattr(g, name) == value, name
    assert (GateSettings.from_mapping({"max_dcr_share": 0.6, "max_swaps": 9})
            == dataclasses.replace(g, max_dcr_share=0.6))


def test_privacy_gate_passes_clean_figures():
    verdict = privacy_gate(CLEAN)
    assert verdict.passed and verdict.reasons == () and verdict.to_dict() == {"passed": True, "reasons": []}
    assert verdict.figures["membership_auc_ci_low"] == 0.508 and verdict.figures["max_membership_auc"] == 0.52


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"dcr_share": 0.5301, "dcr_share_ci": [0.5231, 0.5371]},
         "dcr_share 0.5301 (95% CI 0.5231–0.5371, above 0.5) > max_dcr_share 0.52"),
        ({"nndr_ratio": 0.49}, "nndr_ratio 0.4900 < min_nndr_ratio 0.5"),
        (COPIES, "exact_copy_training 0.1350 (size-matched 0.1390) exceeds exact_copy_holdout 0.1280 by 0.0110 "
                 "(95% CI 0.0012–0.0208)"),
        (SEQUENCE_COPIES, "exact_copy_training_sequences 0.0100 (size-matched 0.0100) exceeds "
                          "exact_copy_holdout_sequences 0.0020 (size-matched 0.0015) by 0.0085 (95% CI 0.0030–0.0140)"),
        ({"membership_auc": 0.53, "membership_auc_ci": [0.5201, 0.5399]},
         "membership_auc 0.5300 (95% CI 0.5201-0.5399, attack distance) lies above max_membership_auc 0.52"),
    ],
)
def test_privacy_gate_fails_each_condition_alone(change, reason):
    verdict = privacy_gate({**CLEAN, **change})
    assert not verdict.passed and verdict.reasons == (reason,)
    assert verdict.description == reason


def test_membership_rule_is_on_the_interval():
    # a high value with a wide interval (a small holdout) is no evidence
    assert privacy_gate({**CLEAN, "membership_auc": 0.58, "membership_auc_ci": [0.49, 0.67]}).passed
    # no audit (holdout of fewer than four units): not judged
    assert privacy_gate({**CLEAN, "membership_auc": None, "membership_auc_ci": None}).passed
    strict = GateSettings(max_membership_auc=0.505)
    assert not privacy_gate(CLEAN, strict).passed


def test_exact_copy_rule_is_on_the_size_matched_interval():
    # The passenger table's case: raw shares 13.5 % against 12.8 % (the old rule's "+ 0.001" failed
    # it), size-matched a small excess whose interval holds 0: no evidence of copying.
    fair = {**CLEAN, **COPIES, "exact_copy_training_matched": 0.1290, "exact_copy_excess": 0.0010,
            "exact_copy_excess_ci": [-0.030, 0.032]}
    verdict = privacy_gate(fair)
    assert verdict.passed and verdict.figures["exact_copy_excess_ci_low"] == -0.030
    assert verdict.figures["exact_copy_training_matched"] == 0.1290 and verdict.figures["exact_copy_tolerance"] == 0.0
    # the interval decides, not the value: an interval that starts at 0 is not above it
    assert privacy_gate({**CLEAN, **COPIES, "exact_copy_excess_ci": [0.0, 0.02]}).passed
    # a tolerance moves the bar for the lower end
    loose = privacy_gate({**CLEAN, **COPIES}, GateSettings(exact_copy_tolerance=0.005))
    assert loose.passed
    strict = privacy_gate({**CLEAN, **COPIES, "exact_copy_excess_ci": [0.006, 0.02]},
                          GateSettings(exact_copy_tolerance=0.005))
    assert strict.reasons[0].endswith("(95% CI 0.0060–0.0200), above exact_copy_tolerance 0.005")
    # a result from before the size-matched test (no interval) leaves its copies unjudged
    old = {k: v for k, v in {**CLEAN, **COPIES}.items() if "matched" not in k and "excess" not in k}
    assert privacy_gate(old).passed


def test_accuracy_floor():
    acc = {"overall": 0.95, "overall_max": 0.97}
    ok = accuracy_floor(acc, {"overall": 0.94})
    assert ok.passed and ok.figures["floor"] == pytest.approx(0.94)
    low = accuracy_floor({"overall": 0.93, "overall_max": 0.97}, {"overall": 0.94})
    assert low.reasons == ("overall 0.93000 < floor 0.94000", "overall 0.93000 < random pool sample 0.94000")
    assert accuracy_floor(acc, None, GateSettings(accuracy_floor=0.96)).reasons == ("overall 0.95000 < floor 0.96000",)


def test_integrity_flat_and_sequential():
    training = pd.DataFrame({"g": [1, 1, 2, 3, 3, 3], "x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]})
    assert integrity(training.iloc[:3], training, target=3, rows=np.arange(3), n_pool=10).passed
    bad = integrity(training.iloc[:3].astype({"x": "float32"}), training, target=4, rows=np.array([0, 0, 11]),
                    n_pool=10)
    assert bad.reasons == (
        "row count 3 differs from the target 4",
        "column 'x' has dtype float32, training has float64",
        "a selected index lies outside the pool",
        "a pool row was selected twice",
    )
    long_group = pd.DataFrame({"g": [7] * 4 + [8], "x": np.arange(5.0)})
    seq = integrity(long_group, training, target=3, rows=np.array([0, 1]), n_pool=5, group_key="g")
    assert seq.reasons == ("group count 2 differs from the target 3",
                           "sequence lengths 1-4 outside the training range 1-3")


def test_dcr_share_rule_is_powered_both_ways():
    # a 48-row holdout: 0.5625 lies well within the noise of a fair output (the interval holds 0.5)
    small = privacy_gate({**CLEAN, "dcr_share": 0.5625, "dcr_share_ci": [0.4228, 0.6930]})
    assert small.passed
    # the same share measured on 20,000 units is a leak
    large = privacy_gate({**CLEAN, "dcr_share": 0.5625, "dcr_share_ci": [0.5556, 0.5694]})
    assert not large.passed and large.reasons[0].startswith("dcr_share 0.5625 (95% CI 0.5556–0.5694")
    # a share within the Prize's rule passes even when its interval excludes 0.5
    assert privacy_gate({**CLEAN, "dcr_share": 0.515, "dcr_share_ci": [0.508, 0.522]}).passed
