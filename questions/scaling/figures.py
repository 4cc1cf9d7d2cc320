"""Open question ``scaling``, the figures (torch-free; the view's): test error against N, K and epochs on log-log
axes (the main figure), and the gain over ``random`` against K with the cost in K beside it."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bench.protocol import SUBJECT
from bench.report import plots
from questions.scaling import estimands as E

RED = "#c0392b"


def _style(method: str) -> dict:
    sub = method == SUBJECT
    return {
        "lw": 2.2 if sub else 1.0,
        "color": RED if sub else None,
        "alpha": 1.0 if sub else 0.7,
        "zorder": 3 if sub else 2,
        "marker": "o",
        "label": method,
    }


def error_curves(df: pd.DataFrame):
    present = [a for a in E.AXES if E.present(df, a)]
    if not present:
        return None
    cols = min(2, len(present))
    rows = -(-len(present) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.0 * rows), squeeze=False)
    for ax in axes.flat[len(present) :]:
        ax.axis("off")
    for ax, axis in zip(axes.flat, present, strict=False):
        for m, g in E.curve(df, axis).groupby("method"):
            mean = g.groupby("x")["value"].mean()
            ax.plot(mean.index, mean.values, **_style(str(m)))
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
        ax.set_xlabel(E.AXES[axis][1])
        ax.set_ylabel("test error (log2)")
    labelled = [ax for ax in axes.flat[: len(present)] if ax.get_legend_handles_labels()[0]]
    if labelled:  # one legend, right of the top row (an axis may hold no error curve: K with accuracy only)
        top = axes[0, cols - 1] if axes[0, cols - 1] in labelled else labelled[0]
        top.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle("Test error against data, width and steps (mean over seeds; subject in red)")
    fig.tight_layout()
    return fig


def gain_curves(df: pd.DataFrame):
    """g(K) with the subject's 95% band, and seconds per sample against K (log-log) beside it."""
    per_k = E.gains(df)
    cost = E.curve(df, "k", "seconds_per_sample")
    cost = cost[cost["value"] > 0]
    if not per_k and cost.empty:
        return None
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10.4, 4.0))
    for m in sorted(per_k):
        ks = sorted(per_k[m])
        mean = np.array([per_k[m][k].mean for k in ks]) * 100
        ax.plot(ks, mean, **_style(m))
        if m == SUBJECT:
            lo = np.array([per_k[m][k].ci_low for k in ks]) * 100
            hi = np.array([per_k[m][k].ci_high for k in ks]) * 100
            ok = np.isfinite(lo) & np.isfinite(hi)
            if ok.any():
                ax.fill_between(np.asarray(ks)[ok], lo[ok], hi[ok], color=RED, alpha=0.2, lw=0)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel(E.AXES["k"][1])
    ax.set_ylabel(f"gain over {E.REFERENCE} (accuracy points)")
    for m, g in cost.groupby("method"):
        mean = g.groupby("x")["value"].mean()
        bx.plot(mean.index, mean.values, **_style(str(m)))
    bx.set_xscale("log", base=2)
    bx.set_yscale("log", base=2)
    bx.set_xlabel(E.AXES["k"][1])
    bx.set_ylabel("training seconds per sample (log2)")
    target = bx if bx.get_legend_handles_labels()[0] else ax
    if target.get_legend_handles_labels()[0]:
        target.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(f"Gain over {E.REFERENCE} and cost along K (mean over seeds; subject in red, its 95% band)")
    fig.tight_layout()
    return fig


def figures(df: pd.DataFrame) -> list:
    plots.theme()
    out = [("error_curves", error_curves(df)), ("gain_curves", gain_curves(df))]
    return [(name, fig) for name, fig in out if fig is not None]
