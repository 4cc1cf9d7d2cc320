"""P3's figures, from the tidy table: accuracy against deployed parameters, Delta_B, multipliers."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bench.protocol import SUBJECT
from bench.report import plots
from predictions.efficiency.curves import isotonic

CONVENTIONAL = {"supervised": "#1f77b4", "supervised_mlp2": "#2ca02c", "supervised_cnn": "#9467bd"}
CENSOR_MARK = {
    "": ("o", "reached inside B's sweep"),
    "left": ("v", "left-censored (m <= shown)"),
    "right": ("^", "right-censored (m > shown)"),
}


def _color(m: str) -> str:
    return plots.SUBJECT_COLOR if m == SUBJECT else CONVENTIONAL.get(m, plots.OTHER_COLOR)


def accuracy_vs_params(curves: pd.DataFrame, ax) -> None:
    """Per method: mean probe accuracy over seeds against P (log x) with its 95% t band, and the
    isotonic fit of that mean (dashed). ``raw`` (P = 0) is a dotted horizontal line. A point is a
    (width, channels) pair: ``supervised_cnn`` sweeps its channel width at one width."""
    lo, hi = 1.0, 0.0
    for m, g in curves.groupby("method", sort=True):
        g = g.dropna(subset=["acc"])
        if g.empty:
            continue
        g = g.assign(channels=g["channels"].fillna(0) if "channels" in g.columns else 0)
        t = plots.mean_ci_table(g.rename(columns={"acc": "value"}), ["width", "channels"])
        p = (
            g.groupby(["width", "channels"])["params"]
            .mean()
            .reindex(pd.MultiIndex.from_frame(t[["width", "channels"]]))
            .to_numpy(float)
        )
        if not np.all(p > 0):
            ref = float(t["mean"].mean())
            ax.axhline(ref, color="k", ls=":", lw=1)
            ax.text(0.01, ref, f"{m} (P = 0)", fontsize=7, va="bottom", transform=ax.get_yaxis_transform())
            lo, hi = min(lo, ref), max(hi, ref)
            continue
        order = np.argsort(p)
        p, mean, half = p[order], t["mean"].to_numpy(float)[order], t["half"].fillna(0).to_numpy(float)[order]
        c, lw = _color(m), 2.2 if m == SUBJECT else 1.0
        ax.plot(p, mean, color=c, lw=lw, marker="o", ms=2.5, zorder=4 if m == SUBJECT else 2)
        ax.fill_between(p, mean - half, mean + half, color=c, alpha=0.2 if m == SUBJECT else 0.08, lw=0)
        ax.plot(*isotonic(p, mean), color=c, lw=0.8, ls="--", alpha=0.8)
        lo, hi = min(lo, float(np.nanmin(mean - half))), max(hi, float(np.nanmax(mean + half)))
        ax.text(
            p[-1], mean[-1], f" {m}", fontsize=6, color=c, va="center", fontweight="bold" if m == SUBJECT else "normal"
        )
    if hi > lo:  # bands of 2-3 seeds can be wider than [0, 1]: the axis stays on accuracies
        ax.set_ylim(max(0.0, lo - 0.02), min(1.0, hi) + 0.02)
    ax.set_xscale("log")
    ax.set_xlabel("deployed parameters P (floats the encoder reads; log)")
    ax.set_ylabel("linear-probe test accuracy")


def delta_points(deltas: pd.DataFrame, ax) -> None:
    """Delta_B per baseline (mean over seeds, 95% CI, each seed), with the margin's bound -delta."""
    d = deltas.copy()
    margin = float(d["margin"].dropna().iloc[0]) if "margin" in d and d["margin"].notna().any() else 0.0
    d["value"] = d["value"] - margin
    d["metric"] = "Delta"
    plots.metric_points(d, "Delta", "Delta_B = mean_K [acc_S(K) - acc_B(2 P_S(K))]", ax)
    ax.axvline(-margin, color=plots.SUBJECT_COLOR, ls="--", lw=1)
    ax.axvline(0, color="k", ls=":", lw=0.8)
    ax.text(-margin, ax.get_ylim()[1], f" -delta = {-margin:g}", fontsize=7, va="top", color=plots.SUBJECT_COLOR)


def multipliers(mult: pd.DataFrame, fig) -> None:
    """Small multiples: m_B(K) per baseline against K (log y), each seed, marked by its censoring."""
    bases = sorted(mult["method"].unique())
    cols = min(5, max(len(bases), 1))
    rows = int(np.ceil(len(bases) / cols)) or 1
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, b in zip(axes, bases, strict=False):
        g = mult[(mult["method"] == b) & mult["value"].notna()]
        for cens, (marker, _) in CENSOR_MARK.items():
            s = g[g["censored"].fillna("") == cens]
            ax.scatter(
                s["width"],
                s["value"],
                marker=marker,
                s=14,
                color=_color(b) if cens == "" else "#555555",
                facecolors="none" if cens else None,
                lw=0.8,
            )
        ax.set_title(b, fontsize=7)
        if g.empty or not (g["value"] > 0).all():
            ax.text(0.5, 0.5, "n/a (no multiplier)", ha="center", va="center", fontsize=7, transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        ax.axhline(1, color="k", lw=0.6, ls=":")
        ax.axhline(2, color=plots.SUBJECT_COLOR, lw=0.6, ls="--")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.tick_params(labelsize=6)
    for ax in axes[len(bases) :]:
        ax.axis("off")
    handles = [plt.Line2D([], [], marker=mk, ls="", color="#555555", label=lab) for mk, lab in CENSOR_MARK.values()]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=7, frameon=False)


def all_figures(curves_by_study: dict[str, pd.DataFrame], deltas: pd.DataFrame, mult: pd.DataFrame):
    """The report's three figures (``[(name, Figure)]``)."""
    plots.theme()
    n = max(len(curves_by_study), 1)
    fig1, axes = plt.subplots(1, n, figsize=(6.5 * n, 5.2), squeeze=False)
    for ax, (study, c) in zip(axes[0], curves_by_study.items(), strict=False):
        accuracy_vs_params(c, ax)
        ax.set_title(f"{study}: {', '.join(map(str, c['dataset'].dropna().unique()))}", fontsize=9)
    fig1.suptitle(
        "Probe accuracy against deployed parameters (mean, 95% CI over seeds; dashed: isotonic fit; subject in red)",
        fontsize=9,
    )
    fig1.tight_layout()
    studies = list(dict.fromkeys(deltas["study"].dropna())) if len(deltas) else []
    fig2, axes2 = plt.subplots(
        1,
        max(len(studies), 1),
        figsize=(6.5 * max(len(studies), 1), 0.3 * max(deltas["method"].nunique(), 1) + 1.8),
        squeeze=False,
    )
    for ax, st in zip(axes2[0], studies, strict=False):
        delta_points(deltas[deltas["study"] == st], ax)
        ax.set_title(st, fontsize=9)
    fig2.suptitle("Primary: subject at P against each baseline at 2P; predicted: Delta_B > -delta", fontsize=9)
    fig2.tight_layout()
    fig3 = plt.figure(figsize=(11, 2.1 * int(np.ceil(max(mult["method"].nunique(), 1) / 5)) + 0.8))
    multipliers(mult, fig3)
    fig3.suptitle(
        "Multiplier m_B(K) = P_B(acc_S(K)) / P_S(K) per seed against the subject's K (dashed: 2; "
        "dotted: 1); hollow triangles are censored bounds",
        fontsize=9,
    )
    fig3.tight_layout(rect=(0, 0.05, 1, 0.95))
    return [("accuracy_vs_params", fig1), ("delta_2p", fig2), ("multipliers", fig3)]
