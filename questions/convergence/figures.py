"""Open question ``convergence``, the figures (torch-free; the view's): Delta_EM against N and K with r_EM
beside (the main figure), S(infomax, B) along N and K, and (b)'s cross-seed unit-matched |corr|."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bench.evaluate import estimates
from bench.report import plots
from questions.convergence import estimands as E

RED = "#c0392b"


def _band(ax, xs, ests, color=RED, label=None, scale: float = 1.0) -> None:
    m = np.array([e.mean for e in ests]) * scale
    lo = np.array([e.ci_low for e in ests]) * scale
    hi = np.array([e.ci_high for e in ests]) * scale
    ax.plot(xs, m, marker="o", color=color, lw=2, label=label)
    ok = np.isfinite(lo) & np.isfinite(hi)
    if ok.any():
        ax.fill_between(np.asarray(xs)[ok], lo[ok], hi[ok], color=color, alpha=0.2, lw=0)


def delta_em(df: pd.DataFrame):
    axes_present = [a for a in E.SCALE_AXES if E.delta_summary(df, a, "test_acc") is not None]
    if not axes_present:
        return None
    fig, axs = plt.subplots(2, len(axes_present), figsize=(5.0 * len(axes_present), 7.0), squeeze=False)
    for j, axis in enumerate(axes_present):
        s = E.delta_summary(df, axis, "test_acc")
        ax = axs[0, j]
        _band(ax, s.xs, s.per_x, scale=100)
        ax.axhline(0, color="k", lw=0.8)
        for b in (-1, 1):
            ax.axhline(b, color="grey", lw=0.8, ls="--")
        ax.set_xscale("log", base=2)
        ax.set_ylabel("Delta_EM accuracy (points)")
        ax.set_title(
            f"{E.AXES[axis][1]}: slope {s.slope.mean * 100:+.2f} pts/doubling" if s.slope else axis, fontsize=9
        )
        ax = axs[1, j]
        x = E.AXES[axis][0]
        for metric, color, label in (("r_em", "#2c3e50", "trained"), ("r_em_init", "#16a085", "at init")):
            sel = E._sel(df, axis, metric)
            sel = sel[(sel["method"] == E.SUBJECT) & (sel["value"] > 0)]
            if not sel.empty:
                ests = [
                    estimates.estimate(g["seed"].tolist(), np.log2(g["value"].to_numpy(float)))
                    for _, g in sel.groupby(x)
                ]
                _band(ax, sorted(sel[x].unique()), ests, color=color, label=label)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        ax.set_xscale("log", base=2)
        ax.set_xlabel(E.AXES[axis][1])
        ax.set_ylabel("log2 r_EM (infomax)")
    fig.suptitle(
        "Delta_EM (infomax - infomax_noem, mean and 95% CI over seeds; dashed: the 1-point TOST margin)\n"
        "with r_EM = ||grad LSE|| / ||grad (H + TC)|| beside",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def similarity_curves(df: pd.DataFrame, methods):
    present = [(a, E.pair_trends(df, a, methods)) for a in E.SCALE_AXES]
    present = [(a, t) for a, t in present if t]
    if not present:
        return None
    fig, axs = plt.subplots(1, len(present), figsize=(5.2 * len(present), 4.0), squeeze=False)
    for ax, (axis, trends) in zip(axs.flat, present, strict=True):
        for t in trends:
            if E.SUBJECT not in (t.a, t.b):
                continue
            other = t.b if t.a == E.SUBJECT else t.a
            ax.plot(t.xs, t.s, marker="o", label=other, lw=1.2)
        ax.axhline(E.CONVERGED, color="grey", ls="--", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_xlabel(E.AXES[axis][1])
        ax.set_ylabel("S(infomax, B)")
    axs.flat[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle("Ceiling-normalised debiased CKA of infomax with each method (dashed: 0.9)", fontsize=10)
    fig.tight_layout()
    return fig


def stability(df: pd.DataFrame):
    present = [(a, E.stability(df, a)) for a in E.SCALE_AXES]
    present = [(a, s) for a, s in present if s]
    if not present:
        return None
    fig, axs = plt.subplots(1, len(present), figsize=(5.0 * len(present), 3.8), squeeze=False)
    for ax, (axis, ss) in zip(axs.flat, present, strict=True):
        xs = [s.x for s in ss]
        ax.plot(xs, [s.subject for s in ss], marker="o", color=RED, lw=2, label="infomax")
        ax.plot(xs, [s.noem for s in ss], marker="s", color="#7f8c8d", lw=1.5, label="infomax_noem")
        ax.set_xscale("log", base=2)
        ax.set_xlabel(E.AXES[axis][1])
        ax.set_ylabel("cross-seed matched |corr| (live)")
    axs.flat[-1].legend(fontsize=7)
    fig.suptitle("(b) Are the units the same across seeds?", fontsize=10)
    fig.tight_layout()
    return fig


def figures(df: pd.DataFrame, methods) -> list:
    plots.theme()
    out = []
    for name, make in (
        ("delta_em", delta_em),
        ("similarity", lambda d: similarity_curves(d, methods)),
        ("stability", stability),
    ):
        fig = make(df)
        if fig is not None:
            out.append((name, fig))
    return out
