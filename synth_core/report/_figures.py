"""The report's pictures: matplotlib on the Agg canvas, each returned as base64-encoded PNG.

Figures are built with :class:`matplotlib.figure.Figure` rather than pyplot, so nothing global
is left open between pictures, and saved without the ``Software`` PNG text chunk, so that the
same data give the same bytes and no web address hides inside a picture.
"""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")  # no display, ever (before any figure exists)
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from synth_core.report._data import ColumnView, PairView

DPI = 80
COLOURS = {"training": "#1f77b4", "holdout": "#8c8c8c", "synthetic": "#ff7f0e"}
LABEL_CHARS = 14  # longer bin labels are cut, so that the axes stay readable
STYLE = {"font.size": 8, "axes.titlesize": 9}  # applied per figure, never to the caller's global settings


def _figure(width: float, height: float, *, left=0.12, bottom=0.18, right=0.97, top=0.9, **subplots):
    """A figure with fixed margins (the constrained layout engine costs more than the drawing)."""
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=left, bottom=bottom, right=right, top=top)
    return fig, fig.subplots(**subplots)


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _short(label: str) -> str:
    label = str(label)
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"


@matplotlib.rc_context(STYLE)
def stages_png(stages: pd.DataFrame) -> str:
    """Accuracy parts by selection stage (``stage`` plus one column per part)."""
    fig, ax = _figure(5.6, 2.8, bottom=0.14)
    for part in ("univariate", "bivariate", "trivariate", "coherence", "overall"):
        if part in stages and stages[part].notna().any():
            ax.plot(stages["stage"], stages[part].astype(float) * 100, marker="o", label=part)
    ax.set_ylabel("accuracy vs training (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)


@matplotlib.rc_context(STYLE)
def curve_png(x, y, xlabel: str, ylabel: str) -> str:
    """One curve with markers (e.g. a pool's proxy objective against its size)."""
    fig, ax = _figure(5.0, 2.6)
    ax.plot(np.asarray(x, dtype=float), np.asarray(y, dtype=float), marker="o")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    return _png(fig)


@matplotlib.rc_context(STYLE)
def trend_png(trend: pd.DataFrame) -> str:
    """Overall accuracy of the output and of a random pool sample over the last runs."""
    fig, ax = _figure(5.6, 2.6, bottom=0.18)
    x = np.arange(1, len(trend) + 1)
    for col, label in (("eval_overall", "output"), ("eval_random_overall", "random pool sample")):
        if col in trend and trend[col].notna().any():
            ax.plot(x, trend[col].astype(float) * 100, marker="o", label=label)
    ax.set_xlabel("run (oldest first)")
    ax.set_ylabel("overall accuracy (%)")
    ax.set_xticks(x)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)


@matplotlib.rc_context(STYLE)
def column_png(col: ColumnView) -> str:
    """One column on the metric's bins: numeric and datetime bins as histograms (steps),
    categories as grouped bars; training, holdout and synthetic side by side."""
    fig, ax = _figure(4.0, 2.5, left=0.14, bottom=0.34, top=0.89)
    n = len(col.labels)
    x = np.arange(n)
    tables = list(col.shares)
    if col.kind == "categorical":
        width = 0.8 / len(tables)
        for i, t in enumerate(tables):
            ax.bar(x + (i - (len(tables) - 1) / 2) * width, col.shares[t] * 100, width, label=t, color=COLOURS[t])
    else:
        for t in tables:
            ax.stairs(col.shares[t] * 100, np.arange(n + 1) - 0.5, label=t, color=COLOURS[t],
                      fill=t == "training", alpha=0.35 if t == "training" else 1.0, linewidth=1.6)
    ax.set_xticks(x, [_short(v) for v in col.labels], rotation=60, ha="right", fontsize=6)
    ax.set_ylabel("share of rows (%)")
    ax.set_title(f"{_short(col.name)}: accuracy {col.accuracy * 100:.1f} %")
    return _png(fig)


@matplotlib.rc_context(STYLE)
def pair_png(pair: PairView) -> str:
    """A column pair's binned joint shares, training beside synthetic, on one colour scale."""
    fig, axes = _figure(6.6, 3.0, left=0.16, bottom=0.3, right=0.98, top=0.84, ncols=2, sharey=True)
    top = max(pair.training.max(), pair.synthetic.max(), 1e-12) * 100
    # the y axis is shared: its labels are set once (tick objects are most of a figure's cost)
    axes[0].set_yticks(np.arange(len(pair.labels[0])), [_short(v) for v in pair.labels[0]], fontsize=5)
    for ax, table, name in zip(axes, (pair.training, pair.synthetic), ("training", "synthetic")):
        ax.imshow(table * 100, cmap="viridis", vmin=0, vmax=top, aspect="auto", interpolation="nearest")
        ax.set_title(name)
        ax.set_xticks(np.arange(len(pair.labels[1])), [_short(v) for v in pair.labels[1]], fontsize=5, rotation=60,
                      ha="right")
        ax.set_xlabel(_short(pair.columns[1]))
    axes[0].set_ylabel(_short(pair.columns[0]))
    fig.suptitle(f"{pair.columns[0]} × {pair.columns[1]}: accuracy {pair.accuracy * 100:.1f} % "
                 f"(one colour scale, darkest 0 %, brightest {top:.1f} % of rows)", fontsize=8)
    return _png(fig)


@matplotlib.rc_context(STYLE)
def association_png(assoc: dict) -> str:
    """Synthetic minus training Cramér's V of every column pair (binned)."""
    names = assoc["names"]
    diff = assoc["synthetic"] - assoc["training"]
    k = len(names)
    side = min(2.2 + 0.32 * k, 10.0)
    fig, ax = _figure(side + 1.4, side, left=0.2, bottom=0.2, right=0.9, top=0.97)
    top = max(float(np.abs(diff).max()), 0.01)
    image = ax.imshow(diff, cmap="RdBu_r", vmin=-top, vmax=top, interpolation="nearest")
    ax.set_xticks(np.arange(k), [_short(n) for n in names], rotation=70, ha="right", fontsize=6)
    ax.set_yticks(np.arange(k), [_short(n) for n in names], fontsize=6)
    if k <= 12:  # beyond that the numbers would overlap
        for i in range(k):
            for j in range(k):
                if i != j:
                    ax.text(j, i, f"{diff[i, j]:+.2f}", ha="center", va="center", fontsize=5)
    fig.colorbar(image, ax=ax, label="Cramér's V: synthetic − training")
    return _png(fig)


@matplotlib.rc_context(STYLE)
def sequence_lengths_png(lengths: dict[str, np.ndarray]) -> str:
    """Rows per sequence, share of sequences per length (lengths above the 99th percentile of
    all tables pooled into the last bar)."""
    fig, ax = _figure(5.6, 2.6, bottom=0.18)
    cap = int(np.percentile(np.concatenate(list(lengths.values())), 99)) + 1
    x = np.arange(1, cap + 1)
    width = 0.8 / len(lengths)
    for i, (t, values) in enumerate(lengths.items()):
        counts = np.bincount(np.minimum(values, cap), minlength=cap + 1)[1:]
        ax.bar(x + (i - (len(lengths) - 1) / 2) * width, counts / len(values) * 100, width, label=t, color=COLOURS[t])
    ax.set_xlabel(f"rows per sequence (last bar: ≥ {cap})")
    ax.set_ylabel("share of sequences (%)")
    ax.legend(fontsize=7)
    return _png(fig)


@matplotlib.rc_context(STYLE)
def coherence_png(coherence: pd.DataFrame) -> str:
    """The three coherence parts of the worst columns, as horizontal bars."""
    parts = [c for c in coherence.columns if c != "column"]
    height = 0.9 + 0.45 * len(coherence)
    fig, ax = _figure(6.4, height, left=0.2, bottom=0.5 / height, top=1 - 0.1 / height)
    y = np.arange(len(coherence))
    bar = 0.8 / len(parts)
    for i, part in enumerate(parts):
        ax.barh(y + (i - (len(parts) - 1) / 2) * bar, coherence[part].astype(float) * 100, bar,
                label=part.replace("_", " "))
    ax.set_yticks(y, [_short(c) for c in coherence["column"]])
    ax.invert_yaxis()
    ax.set_xlabel("accuracy (%)")
    ax.set_xlim(max(0.0, float(np.nanmin(coherence[parts].to_numpy(dtype=float))) * 100 - 5), 100)
    ax.legend(fontsize=6, loc="lower left")
    return _png(fig)


@matplotlib.rc_context(STYLE)
def dcr_png(dcr: dict[str, np.ndarray]) -> str:
    """Distance of each synthetic unit to its closest training and holdout unit."""
    fig, ax = _figure(5.6, 2.6, bottom=0.18)
    both = np.concatenate([dcr["training"], dcr["holdout"]])
    top = float(np.percentile(both, 99)) if both.size else 1.0
    edges = np.linspace(0.0, max(top, 1e-9), 41)
    for t in ("training", "holdout"):
        values = np.minimum(dcr[t], edges[-1])
        ax.hist(values, bins=edges, histtype="step", linewidth=1.6, color=COLOURS[t] if t == "training" else "#2ca02c",
                label=f"synthetic → {t}", weights=np.full(len(values), 100 / max(len(values), 1)))
    ax.set_xlabel("distance to closest record (last bin: ≥ 99th percentile)")
    ax.set_ylabel("share of synthetic units (%)")
    ax.legend(fontsize=7)
    return _png(fig)


@matplotlib.rc_context(STYLE)
def roc_png(roc: dict[str, dict[str, np.ndarray]], aucs: dict[str, float]) -> str:
    """ROC curve of each membership attack (members vs non-members) on log axes: an attack that is
    harmless on average can still single out a few members at a low false-positive rate, which
    only the lower left corner shows."""
    fig, ax = _figure(3.6, 3.4, left=0.16, bottom=0.14, top=0.97)
    lowest = 1.0
    for curve in roc.values():
        positive = np.asarray(curve["fpr"])[np.asarray(curve["fpr"]) > 0]
        lowest = min(lowest, positive.min() if positive.size else 1.0)
    lowest = max(min(lowest, 1e-2), 1e-4)
    ax.plot([lowest, 1], [lowest, 1], color="#bbbbbb", linestyle="--", label="no information")
    for attack, curve in roc.items():
        auc = aucs.get(attack)
        label = attack.replace("_", " ") + (f" (AUC {auc:.3f})" if auc is not None else "")
        fpr, tpr = np.asarray(curve["fpr"]), np.asarray(curve["tpr"])
        shown = (fpr > 0) & (tpr > 0)
        ax.plot(fpr[shown], tpr[shown], label=label, linewidth=1.4)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lowest, 1)
    ax.set_ylim(lowest, 1)
    ax.set_xlabel("false positive rate (log)")
    ax.set_ylabel("true positive rate (log)")
    ax.set_aspect("equal")
    ax.legend(fontsize=6, loc="lower right")
    return _png(fig)
