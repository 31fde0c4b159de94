"""``synth history``: the trend of final accuracy and privacy per run, read from the metric store.

Each run of a pipeline records, under the asset ``<kind>/refined_output``, the accuracy of the final
output against training ∪ holdout (``eval_overall``), that of a random sample of the same pool
(``eval_random_overall``) and the privacy figures (``dcr_share``, ``nndr_ratio``,
``exact_copy_training``). A run that got as far as ``<kind>/quality_report`` also recorded
``published`` = 1 there. This module prints one line per run, oldest first, and can plot the trend.

No Dagster import: the store is a plain DuckDB file (:mod:`synth_core.ops._store`).
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import duckdb
import pandas as pd

from synth_core.errors import InputError
from synth_core.io import atomic_path
from synth_core.ops._layout import FINAL_ASSET, KINDS, REPORT_ASSET, asset_name
from synth_core.ops._store import DEFAULT_RELATIVE_PATH, MetricStore

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STATE_ENV = "SYNTH_STATE_DIR"

#: (store metric, column heading) of the final asset, in print order.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("eval_overall", "accuracy"),
    ("eval_random_overall", "random"),
    ("dcr_share", "dcr_share"),
    ("nndr_ratio", "nndr_ratio"),
    ("exact_copy_training", "exact_copy"),
)


def default_store_path() -> Path:
    """``$SYNTH_STATE_DIR/metrics.duckdb`` when the variable is set, else ``<repo>/.synth/metrics.duckdb``."""
    state = os.environ.get(STATE_ENV)
    if state:
        return Path(state) / DEFAULT_RELATIVE_PATH.name
    return PROJECT_ROOT / DEFAULT_RELATIVE_PATH


def load_history(store_path: str | os.PathLike, dataset: str | None = None) -> pd.DataFrame:
    """One row per finished run (oldest first).

    Columns: ``recorded_at``, ``dataset``, ``kind``, ``run_id``, the metrics of :data:`COLUMNS`
    (NaN when a run did not record one) and ``published`` (bool).
    Raises :class:`InputError` when the store file does not exist, or when ``dataset`` never
    appears in it.
    """
    path = Path(store_path)
    if not path.is_file():
        raise InputError(f"metric store not found: {path} (run a pipeline first, or pass --store)")
    try:
        return _load(MetricStore(path), path, dataset)
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot read metric store {path}: {first}") from None


def _load(store: MetricStore, path: Path, dataset: str | None) -> pd.DataFrame:
    metrics = [m for m, _ in COLUMNS]
    parts = []
    for kind in KINDS:
        runs = store.history(dataset, metrics, asset=asset_name(kind, FINAL_ASSET))
        if runs.empty:
            continue
        published = store.history(dataset, ["published"], asset=asset_name(kind, REPORT_ASSET))
        done = set(zip(published["run_id"], published["dataset"])) if not published.empty else set()
        runs = runs.assign(kind=kind)
        runs["published"] = [(r, d) in done for r, d in zip(runs["run_id"], runs["dataset"])]
        parts.append(runs)
    columns = ["recorded_at", "dataset", "kind", "run_id", *metrics, "published"]
    if not parts:
        if dataset is not None:
            known = sorted(set(store.frame()["dataset"]))
            if dataset not in known:
                listed = ", ".join(known) if known else "none"
                raise InputError(f"dataset {dataset!r} has no records in {path} (datasets there: {listed})")
        return pd.DataFrame(columns=columns)
    table = pd.concat(parts, ignore_index=True)[columns]
    return table.sort_values(["recorded_at", "dataset", "run_id"], kind="stable").reset_index(drop=True)


def _cell(value, width: int, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"{'-':>{width}}"
    return f"{float(value):>{width}.{digits}f}"


def format_history(table: pd.DataFrame) -> str:
    """Fixed-width text table, one line per run."""
    name_width = max([7, *(len(str(d)) for d in table["dataset"])])
    header = (
        f"{'time (UTC)':<16}  {'dataset':<{name_width}}  {'kind':<10}  {'run':<8}  "
        + "  ".join(f"{title:>10}" for _, title in COLUMNS)
        + f"  {'published':>9}"
    )
    lines = [header, "-" * len(header)]
    for row in table.itertuples(index=False):
        row = row._asdict()
        when = pd.Timestamp(row["recorded_at"]).strftime("%Y-%m-%d %H:%M")
        values = "  ".join(_cell(row[m], 10, 6 if m == "exact_copy_training" else 4) for m, _ in COLUMNS)
        lines.append(
            f"{when:<16}  {row['dataset']:<{name_width}}  {row['kind']:<10}  {str(row['run_id'])[:8]:<8}  "
            f"{values}  {'yes' if row['published'] else 'no':>9}"
        )
    return "\n".join(lines)


def plot_history(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """PNG of accuracy and dcr_share over time, one line per dataset; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, (acc_ax, dcr_ax) = plt.subplots(2, 1, figsize=(8, 5.5), dpi=100, sharex=True)
    try:
        for name, runs in table.groupby("dataset", sort=True):
            when = pd.to_datetime(runs["recorded_at"])
            line = acc_ax.plot(when, runs["eval_overall"], marker="o", label=f"{name}")[0]
            acc_ax.plot(when, runs["eval_random_overall"], linestyle=":", marker=".", color=line.get_color(), alpha=0.7)
            dcr_ax.plot(when, runs["dcr_share"], marker="o", color=line.get_color(), label=f"{name}")
        acc_ax.set_ylabel("overall accuracy")
        acc_ax.set_title("final output (solid) vs random pool sample (dotted)", fontsize=9)
        dcr_ax.axhline(0.5, color="grey", linewidth=0.8)
        dcr_ax.axhline(0.52, color="red", linestyle="--", linewidth=0.8, label="default gate 0.52")
        dcr_ax.set_ylabel("dcr_share")
        dcr_ax.set_xlabel("recorded at (UTC)")
        for ax in (acc_ax, dcr_ax):
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="best")
        fig.autofmt_xdate()
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return path


def run_history(args) -> int:
    """The ``synth history`` command: print the table; ``--plot FILE`` also writes a PNG."""
    store_path = Path(getattr(args, "store", None) or default_store_path())
    dataset = getattr(args, "dataset", None)
    plot = getattr(args, "plot", None)
    table = load_history(store_path, dataset)
    if table.empty:
        what = f"dataset {dataset!r}" if dataset else "any dataset"
        print(f"no finished run of {what} in {store_path} (a run records its figures at <kind>/{FINAL_ASSET})")
        if plot:
            print(f"synth history: no plot written to {plot}: nothing to plot", file=sys.stderr)
        return 0
    print(format_history(table))
    if plot:
        written = plot_history(table, plot)
        print(f"plot: {written}")
    return 0

