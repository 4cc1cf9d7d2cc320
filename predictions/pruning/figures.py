"""Prediction 1, prunability, the figures: from the tidy table (and the matrices table) alone."""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bench.protocol import SUBJECT
from bench.report import plots
from predictions.pruning.names import CRITERIA

MODES = ("refit", "frozen", "head")
CURVES = (*CRITERIA, "rank")


def all_figures(df: pd.DataFrame, matrices: pd.DataFrame) -> list:
    plots.theme()
    figs = [("retained_accuracy", retained_figure(df)), ("aurc", aurc_figure(df))]
    for name, fig in (
        ("basis", basis_figure(df)),
        ("unstructured", unstructured_figure(df)),
        ("diagnostics", diagnostics_figure(df)),
        ("correlation_heatmaps", heatmap_figure(matrices)),
    ):
        if fig is not None:
            figs.append((name, fig))
    return figs


def _methods_order(methods) -> list[str]:
    ms = sorted(set(methods))
    return [m for m in ms if m != SUBJECT] + ([SUBJECT] if SUBJECT in ms else [])  # subject drawn last


def _line(ax, t: pd.DataFrame, x: str, pal: dict[str, str], method: str) -> None:
    subj = method == SUBJECT
    ax.plot(
        t[x],
        t["mean"],
        color=pal[method],
        lw=2.2 if subj else 1.0,
        alpha=1 if subj else 0.75,
        zorder=3 if subj else 2,
        label=method,
    )
    ax.fill_between(
        t[x],
        t["mean"] - t["half"].fillna(0),
        t["mean"] + t["half"].fillna(0),
        color=pal[method],
        alpha=0.18 if subj else 0.08,
        lw=0,
        zorder=1,
    )


def _legend(fig, pal: dict[str, str], methods: list[str]) -> None:
    from matplotlib.lines import Line2D

    named = [m for m in methods if pal[m] != plots.OTHER_COLOR]
    handles = [Line2D([], [], color=pal[m], lw=2.2 if m == SUBJECT else 1.2, label=m) for m in reversed(named)]
    others = [m for m in methods if pal[m] == plots.OTHER_COLOR]
    if others:
        handles.append(Line2D([], [], color=plots.OTHER_COLOR, lw=1.0, label=f"baselines ({len(others)})"))
    fig.legend(
        handles=handles,
        loc="upper center",
        ncol=min(len(handles), 6),
        frameon=False,
        bbox_to_anchor=(0.5, 0.985),
        fontsize=8,
    )


def _end_labels(ax, ends: list[tuple[float, float, str]], pal: dict[str, str], gap: float = 0.022) -> None:
    """Method names at the right end of their lines, nudged apart vertically (gap in axis fractions)."""
    lo, hi = ax.get_ylim()
    step = gap * (hi - lo)
    placed: list[float] = []
    for y, x, m in sorted(ends):
        y_text = max(y, placed[-1] + step) if placed else y
        placed.append(y_text)
        ax.annotate(
            m,
            (x, y),
            xytext=(x * 1.08, y_text),
            fontsize=6,
            va="center",
            color=pal[m],
            weight="bold" if m == SUBJECT else "normal",
            arrowprops={"arrowstyle": "-", "lw": 0.3, "color": pal[m]} if abs(y_text - y) > step / 2 else None,
        )


def retained_figure(df: pd.DataFrame):
    sel = df[df["metric"] == "retained"].dropna(subset=["value"])
    crits = [c for c in CURVES if c in set(sel["criterion"])]
    modes = [m for m in MODES if m in set(sel["probe_mode"])]
    methods = _methods_order(sel["method"])
    pal = plots.method_palette(methods)
    fig, axes = plt.subplots(
        len(crits),
        len(modes),
        figsize=(2.9 * len(modes) + 0.8, 2.0 * len(crits) + 1.0),
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    t = plots.mean_ci_table(sel, ["method", "criterion", "probe_mode", "fraction"])
    for i, crit in enumerate(crits):
        for j, mode in enumerate(modes):
            ax = axes[i, j]
            for m in methods:
                tt = t[(t["method"] == m) & (t["criterion"] == crit) & (t["probe_mode"] == mode)]
                tt = tt.sort_values("fraction")
                if len(tt):
                    _line(ax, tt, "fraction", pal, m)
                    if mode == "head":
                        ax.text(0.02, float(tt["mean"].iloc[-1]), m, fontsize=6, color="k", va="center")
            ax.axhline(1.0, color="k", lw=0.5, ls=":")
            ax.axhline(0.0, color="k", lw=0.5)
            if i == 0:
                ax.set_title(f"probe {mode}" if mode != "head" else "own head (end-to-end)", fontsize=9)
            if j == 0:
                ax.set_ylabel(f"{crit}\nretained r(p)", fontsize=8)
            if i == len(crits) - 1:
                ax.set_xlabel("fraction of features pruned p", fontsize=8)
    axes[0, 0].set_ylim(-0.05, 1.1)
    _legend(fig, pal, methods)
    fig.suptitle(
        "Retained accuracy r(p) = (acc(p) - chance) / (acc(0) - chance); rows: criterion; mean and 95% CI",
        y=0.955,
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    return fig


def _dots(ax, sel: pd.DataFrame, label: str) -> None:
    """Mean and 95% CI per method as a point range (a zoomed axis stays honest), sorted, subject red."""
    t = plots.mean_ci_table(sel.dropna(subset=["value"]), ["method"]).sort_values("mean")
    pal = plots.method_palette(t["method"])
    y = np.arange(len(t))
    half = t["half"].fillna(0)
    ax.hlines(y, t["mean"] - half, t["mean"] + half, colors=[pal[m] for m in t["method"]], lw=1.4)
    ax.scatter(
        t["mean"], y, c=[pal[m] for m in t["method"]], s=[40 if m == SUBJECT else 18 for m in t["method"]], zorder=3
    )
    ax.set_yticks(y, list(t["method"]))
    for tick, m in zip(ax.get_yticklabels(), t["method"], strict=True):
        if m == SUBJECT:
            tick.set_fontweight("bold")
            tick.set_color(plots.SUBJECT_COLOR)
    if SUBJECT in set(t["method"]):
        ax.axvline(float(t.loc[t["method"] == SUBJECT, "mean"].iloc[0]), color=plots.SUBJECT_COLOR, lw=0.6, ls="--")
    ax.set_xlabel(textwrap.fill(label, 34))  # a panel a quarter of the page wide: a long label wraps
    ax.set_ylim(-0.6, len(t) - 0.4)


def aurc_figure(df: pd.DataFrame):
    n = df["method"].nunique()
    fig, axes = plt.subplots(1, 4, figsize=(13, 0.26 * n + 1.9))
    refit = plots.is_value(df, "probe_mode", "refit")
    aurc = df["metric"] == "aurc"
    _dots(axes[0], df[refit & (df["metric"] == "aurc_best")], "AURC, best criterion (val-chosen): primary")
    _dots(axes[1], df[refit & plots.is_value(df, "criterion", "rank") & aurc], "rank AURC (principal components)")
    _dots(axes[2], df[refit & plots.is_value(df, "criterion", "magnitude") & aurc], "AURC, magnitude criterion")
    _dots(axes[3], df[refit & (df["metric"] == "prunable_fraction_best")], "prunable fraction (1-point loss), best")
    fig.suptitle(
        "Prunability per method, refit probe (mean and 95% CI over seeds; subject in red, dashed at its "
        "mean; lower = harder to prune)",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def basis_figure(df: pd.DataFrame):
    """Where each method sits: unit AURC against acc(0), and against the basis-free rank AURC."""
    refit = plots.is_value(df, "probe_mode", "refit")
    per = {
        "acc0": df[df["metric"] == "probe_acc"],
        "unit": df[refit & (df["metric"] == "aurc_best")],
        "rank": df[refit & plots.is_value(df, "criterion", "rank") & (df["metric"] == "aurc")],
    }
    means = pd.DataFrame({k: v.dropna(subset=["value"]).groupby("method")["value"].mean() for k, v in per.items()})
    means = means.dropna()
    if means.empty:
        return None
    pal = plots.method_palette(means.index)
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for ax, (x, y, xl, yl) in zip(
        axes,
        (
            ("acc0", "unit", "unpruned probe accuracy acc(0)", "unit AURC, best criterion"),
            ("rank", "unit", "rank AURC (basis-free)", "unit AURC, best criterion"),
        ),
        strict=True,
    ):
        for m, r in means.iterrows():
            subj = m == SUBJECT
            ax.scatter(r[x], r[y], s=60 if subj else 22, color=pal[m], zorder=3, edgecolor="k", lw=0.4)
            ax.annotate(
                m,
                (r[x], r[y]),
                xytext=(3, 2),
                textcoords="offset points",
                fontsize=6.5,
                weight="bold" if subj else "normal",
                color=plots.SUBJECT_COLOR if subj else "#333333",
            )
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
    lo = float(np.nanmin(means[["rank", "unit"]].to_numpy())) - 0.02
    axes[1].plot([lo, 1], [lo, 1], color="k", lw=0.6, ls=":")
    axes[1].text(
        lo + 0.01,
        0.99,
        "on the diagonal: removing units costs what dropping the weakest principal\n"
        "components costs; below it: the informative directions are spread over the units;\n"
        "above it: the components are arbitrary (a whitened code has no 'weakest' one)",
        fontsize=7,
        va="top",
    )
    fig.suptitle(
        "What a low AURC means: accuracy to lose (left) and the basis (right); method means over seeds", fontsize=9
    )
    fig.tight_layout()
    return fig


def unstructured_figure(df: pd.DataFrame):
    acc = df[df["metric"] == "unstructured_acc"].dropna(subset=["value"])
    if not len(acc):
        return None
    comp = df[df["metric"] == "compression_ratio"].groupby(["method", "sparsity"])["value"].mean()
    t = plots.mean_ci_table(acc, ["method", "sparsity"])
    t["compression"] = [comp.get((m, s), np.nan) for m, s in zip(t["method"], t["sparsity"], strict=True)]
    methods = _methods_order(t["method"])
    pal = plots.method_palette(methods)
    fig, ax = plt.subplots(figsize=(8, 6.5))
    ends = []
    for m in methods:
        tm = t[t["method"] == m].sort_values("compression")
        _line(ax, tm, "compression", pal, m)
        ends.append((float(tm["mean"].iloc[-1]), float(tm["compression"].iloc[-1]), m))
    _end_labels(ax, ends, pal)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("compression ratio = total / nonzero encoder weights (log2)")
    ax.set_ylabel("test accuracy, probe refit")
    _legend(fig, pal, methods)
    ax.set_title("Unstructured global magnitude pruning (sparsity 0 .. 0.98), mean and 95% CI", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def diagnostics_figure(df: pd.DataFrame):
    if "pairwise_mi" not in set(df["metric"]):
        return None
    n = df["method"].nunique()
    fig, axes = plt.subplots(2, 4, figsize=(14, 2 * (0.26 * n + 1.4)))
    spec = [
        ("pairwise_mi", "mean pairwise MI (nats)", False),
        ("nonlinear_predictability", "kNN R^2 from the other features", False),
        ("max_weight_cosine", "max cosine of incoming weights", False),
        ("dead_fraction", "dead fraction", False),
        ("gaussian_tc", "Gaussian TC (nats, log)", True),
        ("mean_abs_corr", "mean |off-diagonal corr|", False),
        ("effective_rank", "effective rank / K (corr)", False),
        ("effective_rank_cov", "effective rank / K (cov)", False),
    ]
    for ax, (metric, label, log) in zip(axes.flat, spec, strict=True):
        if len(df[(df["metric"] == metric)].dropna(subset=["value"])):
            plots.metric_bars(df.dropna(subset=["value"]), metric, label, ax, log=log)
        else:
            ax.set_axis_off()
    axes[0, 0].set_title("redundancy the subject does not optimise (secondaries: MI, kNN R^2)", loc="left", fontsize=8)
    axes[1, 0].set_title("manipulation checks: the subject's own TC proxies (no verdict)", loc="left", fontsize=8)
    fig.suptitle("Redundancy on test features (mean, 95% CI; subject in red)", fontsize=9)
    fig.tight_layout()
    return fig


def heatmap_figure(matrices: pd.DataFrame):
    sel = matrices[matrices["matrix"] == "corr"]
    if not len(sel):
        return None
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    methods = [SUBJECT] + sorted(m for m in sel["method"].unique() if m != SUBJECT)
    methods = [m for m in methods if m in set(sel["method"])]
    fig, axes = plt.subplots(1, len(methods), figsize=(3.6 * len(methods) + 0.8, 3.9), squeeze=False)
    im = None
    for ax, m in zip(axes[0], methods, strict=True):
        g = sel[sel["method"] == m]
        g = g[g["seed"] == g["seed"].min()]
        k = int(g["i"].max()) + 1
        r = np.zeros((k, k))
        r[g["i"].to_numpy(int), g["j"].to_numpy(int)] = g["value"]
        dist = np.clip(1 - np.abs(r), 0, None)
        np.fill_diagonal(dist, 0)
        order = leaves_list(linkage(squareform((dist + dist.T) / 2, checks=False), "average")) if k > 2 else range(k)
        im = ax.imshow(r[np.ix_(order, order)], cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(
            f"{m} (seed {int(g['seed'].min())})",
            fontsize=9,
            weight="bold" if m == SUBJECT else "normal",
            color=plots.SUBJECT_COLOR if m == SUBJECT else "k",
        )
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="Pearson correlation (test)")
    fig.suptitle(
        "Feature correlation matrices on test inputs, features ordered by average-linkage clustering of 1 - |corr|",
        fontsize=9,
    )
    return fig
