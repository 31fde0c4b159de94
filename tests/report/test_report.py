"""The quality report: sections, embedded pictures only, readable numbers, verdicts with teeth,
determinism, and ``synth evaluate --report`` (written atomically, bad paths refused first)."""

from __future__ import annotations

import base64
import html as htmllib
import re

import numpy as np
import pandas as pd
import pytest

from synth_core.cli import main
from synth_core.metrics import evaluate
from synth_core.report import Status, build_report, write_report
from synth_core.report._data import cramers_v, report_data, roc_curve

N = 1000


def _table(n: int, rng: np.random.Generator) -> pd.DataFrame:
    age = rng.integers(18, 80, n)
    return pd.DataFrame({
        "age": age,
        "income": (age * 900 + rng.normal(0, 8000, n)).round(0),
        "job": rng.choice(["clerk", "nurse", "driver", "cook"], n, p=[0.4, 0.3, 0.2, 0.1]),
        "city": rng.choice(["north", "south"], n),
        "when": pd.to_datetime("2021-01-01") + pd.to_timedelta(rng.integers(0, 365, n), "D"),
    })


@pytest.fixture(scope="module")
def flat():
    rng = np.random.default_rng(2)  # a draw whose fresh table passes the gate (as most seeds do)
    training, holdout = _table(N, rng), _table(N, rng)
    fair = _table(N, rng)  # a fresh draw from the same process: nothing to leak
    leaky = training.sample(N, random_state=1).reset_index(drop=True)  # every row a training row
    return {"training": training, "holdout": holdout, "fair": fair, "leaky": leaky}


@pytest.fixture(scope="module")
def reports(flat):
    out = {}
    for name in ("fair", "leaky"):
        ev = evaluate(flat["training"], flat[name], flat["holdout"], seed=0, details=True)
        out[name] = (ev, build_report(ev, title=f"{name} table"))
    return out


def _visible(html: str) -> str:
    """The page without its embedded pictures."""
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)


def test_sections_and_pictures_are_embedded(reports):
    ev, report = reports["fair"]
    html = report.html
    for ident in ("headline", "stages", "columns", "pairs", "privacy"):
        assert f'<section id="{ident}">' in html
    assert '<section id="sequences">' not in html  # flat data
    sources = re.findall(r'<img [^>]*src="([^"]+)"', html)
    n_columns, n_pairs = len(ev.accuracy.univariate), len(ev.accuracy.bivariate)
    # every column, every pair (at most 10), the association matrix, distances, ROC curves
    assert len(sources) == n_columns + min(n_pairs, 10) + 1 + 1 + 1
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    lowered = html.lower()
    for forbidden in ("http:", "https:", "<script", "<link", "url(", "@import"):
        assert forbidden not in lowered


def test_columns_are_shown_worst_first_with_their_accuracy(reports):
    ev, report = reports["fair"]
    captions = re.findall(r"<figcaption>([^<:]+): ([\d.]+) % \(max", report.html)
    worst_first = ev.accuracy.univariate.sort_values(["accuracy", "column"])
    assert [c for c, _ in captions] == list(worst_first["column"])
    assert [float(v) for _, v in captions] == [round(a * 100, 2) for a in worst_first["accuracy"]]


def test_numbers_are_rounded_with_units(reports):
    ev, report = reports["fair"]
    text = _visible(report.html)
    # the gate words its reasons with 4
    assert not re.search(r"\d\.\d{5,}", text), re.search(r".{40}\d\.\d{5,}.{20}", text)
    overall = ev.accuracy.to_dict()["overall"]
    assert f"{overall * 100:.2f} %" in text
    assert f"{N:,} rows" in text


def test_leaky_and_fair_tables_get_different_verdicts(reports):
    fair_ev, fair = reports["fair"]
    leaky_ev, leaky = reports["leaky"]
    assert fair_ev.privacy_gate.passed and not leaky_ev.privacy_gate.passed
    assert '<div class="big pass">passed</div>' in fair.html
    assert '<div class="big fail">FAILED</div>' in leaky.html
    assert '<li class="fail">' in leaky.html and '<li class="fail">' not in fair.html
    # the distances behind the picture: every leaky unit sits on a training unit
    leaky_dcr = report_data(leaky_ev).dcr
    assert np.all(leaky_dcr["training"] == 0) and np.all(report_data(fair_ev).dcr["training"] > 0)
    assert "100.0 %" in _visible(leaky.html)  # dcr share of a full copy


def test_same_evaluation_same_bytes(flat, reports):
    _, first = reports["fair"]
    again = build_report(evaluate(flat["training"], flat["fair"], flat["holdout"], seed=0, details=True),
                         title="fair table")
    assert again.html == first.html


def test_details_leave_the_figures_unchanged(flat, reports):
    ev, _ = reports["fair"]
    plain = evaluate(flat["training"], flat["fair"], flat["holdout"], seed=0)
    assert plain.details is None
    assert plain.to_dict() == {**ev.to_dict(), "elapsed_s": plain.to_dict()["elapsed_s"]}


def test_pipeline_context_and_no_holdout(flat):
    two = ["age", "job"]  # few pictures: this test is about the page around them
    ev = evaluate(flat["training"][two], flat["fair"][two], None, seed=0, details=True)
    stages = pd.DataFrame({"stage": ["random", "ipf", "refined"], "overall": [0.95, 0.97, 0.98123456],
                           "elapsed_s": [1.0, 2.5, 3.5]})
    trend = pd.DataFrame({"eval_overall": [0.97, 0.98], "eval_random_overall": [0.95, 0.95]})
    report = build_report(ev, stages=stages, trend=trend, selection={"near_copies_avoided": 12.0})
    text = _visible(report.html)
    assert "98.12 %" in text and "2.5 s" in text
    assert "Trend over the last runs" in text
    assert "Not evaluated" in text  # privacy without a holdout
    assert set(report.key_figures) >= {"accuracy by stage"}


def test_a_dp_run_states_its_budget_in_the_headline(reports):
    from synth_core.dp import PrivacyStatement

    ev, plain = reports["fair"]
    assert "differential privacy" not in _visible(plain.html)
    composed = PrivacyStatement(0.05, 5e-7, 30.0, 3.9, 5e-7, generator_source="engine")
    text = _visible(build_report(ev, dp=composed.to_dict()).html)
    assert f"ε = {composed.epsilon:.3g}, δ = {composed.delta:.1e}" in text
    assert f"generator ε 3.9 (δ 5.0e-07) + selection ε {composed.selection_epsilon:.3g} (δ 5.0e-07)" in text
    assert f"Differential privacy: (ε, δ) = ({composed.epsilon:.4g}, 1e-06) for the output" in text
    assert "Not covered: the evaluation on this page" in text
    # a given pool: its generator is not known to be DP, so only selection's part is stated, and said to be so
    alone = PrivacyStatement(0.05, 5e-7, 30.0, None, None).to_dict()
    text = _visible(build_report(ev, dp=alone).html)
    assert f"ε = {composed.selection_epsilon:.3g}" in text and "depends on how the pool was made" in text
    assert "for the output" not in text


def _before(html: str, first: str, then: str) -> bool:
    return first in html and then in html and html.index(first) < html.index(then)


def test_a_refused_run_is_headed_not_published_with_every_reason(reports):
    ev, plain = reports["fair"]
    reasons = ["accuracy_floor: overall 0.87236 < floor 1.00000", "integrity: 299 rows, target 300"]
    html = build_report(ev, title="flat/x", status=Status.refused(reasons)).html
    assert "<title>Not published · flat/x</title>" in html
    banner = html[html.index('<div id="status"'):html.index("<nav>")]
    assert '<div class="verdict fail">Not published</div>' in banner
    assert [f'<li class="fail">{htmllib.escape(r)}</li>' in banner for r in reasons] == [True, True]
    assert _before(html, banner, '<section id="headline">')  # the verdict comes first
    # the rest of the report is all there
    assert re.findall(r'<section id="(\w+)">', html) == re.findall(r'<section id="(\w+)">', plain.html)


def test_a_published_run_says_so_and_keeps_its_heading(reports):
    ev, plain = reports["fair"]
    html = build_report(ev, title="flat/x", status=Status.published()).html
    assert "<title>flat/x</title>" in html and "<h1>flat/x</h1>" in html
    assert '<div class="verdict pass">Published</div>' in html and '<li class="fail">' not in html
    assert html.replace(html[html.index('<div id="status"'):html.index("<nav>")], "") == \
        build_report(ev, title="flat/x").html  # the banner is all that was added


def test_synth_evaluate_heads_a_failed_privacy_gate_with_its_reasons(reports):
    """``synth evaluate`` publishes nothing, so its page says what the gate would do; it judges privacy only."""
    leaky_ev, leaky = reports["leaky"]
    _, fair = reports["fair"]
    assert 'id="status"' not in fair.html  # nothing to head a passed gate with
    banner = leaky.html[leaky.html.index('<div id="status"'):leaky.html.index("<nav>")]
    assert "Would not be published" in banner
    for reason in leaky_ev.privacy_gate.reasons:
        assert f'<li class="fail">privacy_gate: {htmllib.escape(reason)}</li>' in banner
    assert leaky.html.count('<li class="fail">') == len(leaky_ev.privacy_gate.reasons)  # listed once, at the top


def test_the_columns_table_shows_what_the_run_did_with_each_column(reports):
    ev, plain = reports["fair"]
    schema = [{"column": "age", "kind": "numeric", "action": "model", "note": ""},
              {"column": "customer_id", "kind": "id", "action": "drop", "note": "unique per row"},
              {"column": "city", "kind": "categorical", "action": "model"}]  # no note: shown empty
    html = build_report(ev, title="fair table", schema=schema).html
    section = html[html.index('<section id="schema">'):]
    section = section[:section.index("</section>")]
    assert "<h2>Columns</h2>" in section
    assert "<th>column</th><th>kind</th><th>action</th><th>note</th>" in section
    assert "<tr><td>customer_id</td><td>id</td><td>drop</td><td>unique per row</td></tr>" in section
    assert "<tr><td>city</td><td>categorical</td><td>model</td><td></td></tr>" in section
    assert _before(html, '<section id="headline">', '<section id="schema">')
    for absent in (None, []):
        assert build_report(ev, title="fair table", schema=absent).html == plain.html


def test_sequences_show_lengths_and_coherence():
    rng = np.random.default_rng(3)

    def panel(n_groups: int, offset: int) -> pd.DataFrame:
        lengths = rng.integers(2, 7, n_groups)
        key = np.repeat(np.arange(n_groups) + offset, lengths)
        return pd.DataFrame({"key": key, "x": rng.normal(0, 1, key.size).round(2),
                             "c": rng.choice(["a", "b", "c"], key.size)})

    ev = evaluate(panel(150, 0), panel(150, 10_000), panel(150, 20_000), group_key="key", seed=0, details=True)
    html = build_report(ev).html
    assert '<section id="sequences">' in html
    assert 'alt="sequence lengths"' in html and 'alt="coherence parts"' in html
    assert "categories_per_sequence" in html
    assert "150 groups" in html


def test_roc_and_cramers_v_by_hand():
    fpr, tpr = roc_curve(np.array([3.0, 2.0]), np.array([1.0, 0.0]))
    assert np.trapezoid(tpr, fpr) == 1.0 and tpr[2] == 1.0 and fpr[2] == 0.0
    fpr, tpr = roc_curve(np.array([1.0, 1.0]), np.array([1.0, 1.0]))  # ties: the diagonal
    assert list(fpr) == [0.0, 1.0] and list(tpr) == [0.0, 1.0]
    x = np.array([0, 1, 2, 0, 1, 2])
    assert cramers_v(x, x, 3, 3) == pytest.approx(1.0)
    assert cramers_v(np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]), 2, 2) == 0.0
    assert cramers_v(x, np.zeros(6, dtype=np.int64), 3, 1) == 0.0  # a constant column


def _write(flat, tmp_path) -> dict:
    paths = {}
    for name in ("training", "holdout", "fair"):
        paths[name] = tmp_path / f"{name}.parquet"
        flat[name][["age", "job", "city"]].to_parquet(paths[name])  # three columns: few pictures to draw
    return paths


def test_cli_writes_the_report(flat, tmp_path, capsys):
    paths = _write(flat, tmp_path)
    out = tmp_path / "report.html"
    code = main(["evaluate", "--training", str(paths["training"]), "--holdout", str(paths["holdout"]),
                 "--synthetic", str(paths["fair"]), "--report", str(out), "--json"])
    assert code == 0
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>") and '<section id="privacy">' in html
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fair.parquet", "holdout.parquet", "report.html",
                                                         "training.parquet"]  # no temporary left


@pytest.mark.parametrize("case", ["missing_folder", "not_html", "is_input", "is_folder"])
def test_cli_refuses_a_bad_report_path_first(flat, tmp_path, capsys, case):
    paths = _write(flat, tmp_path)
    target = {"missing_folder": tmp_path / "nope" / "r.html", "not_html": tmp_path / "r.txt",
              "is_input": paths["training"], "is_folder": tmp_path / "dir.html"}[case]
    if case == "is_folder":
        target.mkdir()
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    # a missing synthetic file: the report path must be refused before any table is read
    code = main(["evaluate", "--training", str(paths["training"]), "--holdout", str(paths["holdout"]),
                 "--synthetic", str(tmp_path / "absent.parquet"), "--report", str(target)])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "--report" in err
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before


def test_write_report_is_atomic(reports, tmp_path):
    _, report = reports["fair"]
    path = write_report(tmp_path / "r.html", report)
    assert path.read_text() == report.html and [p.name for p in tmp_path.iterdir()] == ["r.html"]
