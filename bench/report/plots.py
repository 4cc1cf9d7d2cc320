"""Shared figure helpers for reports (matplotlib on the tidy table; the subject highlighted)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.evaluate import stats  # noqa: E402
from bench.protocol import SUBJECT  # noqa: E402

SUBJECT_COLOR = "#d62728"
OTHER_COLOR = "#7f8c9d"
ABLATION_COLOR = "#f4a582"


# The reports' style: what seaborn's set_theme(context="paper", style="whitegrid") set, as plain rcParams
# (light grid behind the data, grey text, no tick marks, paper-sized fonts, seaborn's "deep" colour cycle).
THEME = {
    "axes.axisbelow": True,
    "axes.edgecolor": ".8",
    "axes.grid": True,
    "axes.labelcolor": ".15",
    "axes.linewidth": 1.0,
    "axes.labelsize": 9.6,
    "axes.titlesize": 9.6,
    "font.size": 9.6,
    "axes.prop_cycle": matplotlib.cycler(
        color=[
            "#4C72B0",
            "#DD8452",
            "#55A868",
            "#C44E52",
            "#8172B3",
            "#937860",
            "#DA8BC3",
            "#8C8C8C",
            "#CCB974",
            "#64B5CD",
        ]
    ),
    "font.sans-serif": ["Arial", "DejaVu Sans", "Liberation Sans", "Bitstream Vera Sans", "sans-serif"],
    "grid.color": ".8",
    "legend.fontsize": 8.8,
    "legend.title_fontsize": 9.6,
    "lines.linewidth": 1.2,
    "lines.markersize": 4.8,
    "lines.solid_capstyle": "round",
    "patch.edgecolor": "w",
    "patch.force_edgecolor": True,
    "patch.linewidth": 0.8,
    "text.color": ".15",
    "xtick.bottom": False,
    "ytick.left": False,
    "xtick.color": ".15",
    "ytick.color": ".15",
    "xtick.labelsize": 8.8,
    "ytick.labelsize": 8.8,
    "xtick.major.size": 4.8,
    "ytick.major.size": 4.8,
    "xtick.minor.size": 3.2,
    "ytick.minor.size": 3.2,
    "xtick.major.width": 1.0,
    "ytick.major.width": 1.0,
    "xtick.minor.width": 0.8,
    "ytick.minor.width": 0.8,
}


def theme() -> None:
    plt.rcParams.update(THEME)


def method_palette(methods) -> dict[str, str]:
    return {
        m: SUBJECT_COLOR if m == SUBJECT else ABLATION_COLOR if m.startswith(("infomax", "lse_")) else OTHER_COLOR
        for m in methods
    }


def is_value(df: pd.DataFrame, col: str, value) -> pd.Series:
    """Boolean mask ``df[col] == value``; missing cells, and a missing column, are False."""
    if col not in df.columns:
        return pd.Series(False, index=df.index)
    return df[col].eq(value).fillna(False).astype(bool)


def select(df: pd.DataFrame, metric: str, where: dict | None = None) -> pd.DataFrame:
    """Rows of ``metric`` matching every ``where`` item (missing cells never match)."""
    sel = df[df["metric"] == metric]
    for col, value in (where or {}).items():
        sel = sel[is_value(sel, col, value)]
    return sel


def mean_ci_cell(v: pd.Series, fmt: str = "g") -> str:
    """'mean +- 95% t half-width' of the finite values, 3 / 2 digits in format ``fmt`` ('n/a' when none)."""
    mean, _, high = stats.t_interval(v.astype(float).to_numpy())
    if not np.isfinite(mean):
        return "n/a"
    return (
        f"{mean:.3{fmt}}" if not np.isfinite(high) or high == mean else f"{mean:.3{fmt}} \u00b1 {high - mean:.2{fmt}}"
    )


def mean_ci_table(df: pd.DataFrame, by: list[str], level: float = 0.95) -> pd.DataFrame:
    """Mean, t-interval half-width (``stats.t_interval``) and n of the finite ``value``s per group.

    One row per group of ``df.groupby(by, dropna=False)``, in its order; the ``value``s of a group
    reach ``t_interval`` in row order (as ``groupby(...).apply`` hands them over), so the numbers are
    those of a per-group apply, without its per-group pandas overhead."""
    if df.empty:
        return pd.DataFrame(columns=[*by, "mean", "half", "n"])
    grouped = df.groupby(by, dropna=False)["value"]
    keys = grouped.size().index  # the groups, in the order ngroup numbers them
    codes = grouped.ngroup().to_numpy()
    values = df["value"].to_numpy(float)
    order = np.argsort(codes, kind="stable")  # stable: rows keep their order within a group
    bounds = np.searchsorted(codes[order], np.arange(len(keys) + 1))
    rows = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        v = values[order[lo:hi]]
        mean, _, high = stats.t_interval(v, level=level)
        rows.append((mean, high - mean, float(np.isfinite(v).sum())))
    out = pd.DataFrame(rows, index=keys, columns=["mean", "half", "n"])
    return out.reset_index()


def metric_bars(df: pd.DataFrame, metric: str, label: str, ax=None, log: bool = False, chance: float | None = None):
    """Horizontal bars: mean of ``metric`` per method with 95% CI whiskers, sorted, subject red."""
    sub = df[df["metric"] == metric]
    t = mean_ci_table(sub, ["method"]).sort_values("mean", ascending=True)
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 0.32 * len(t) + 1.3))
    pal = method_palette(t["method"])
    y = np.arange(len(t))
    ax.barh(
        y,
        t["mean"],
        xerr=t["half"].fillna(0),
        color=[pal[m] for m in t["method"]],
        error_kw={"elinewidth": 1, "capsize": 2},
        height=0.7,
    )
    ax.set_yticks(y, [f"{m}" for m in t["method"]])
    for tick, m in zip(ax.get_yticklabels(), t["method"], strict=True):
        if m == SUBJECT:
            tick.set_fontweight("bold")
    if chance is not None:
        ax.axvline(chance, color="k", ls=":", lw=1)
        ax.text(chance, len(t) - 0.4, " chance", fontsize=7, va="bottom")
    if log:
        from matplotlib.ticker import NullFormatter

        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels of a short log axis overlap
    ax.set_xlabel(label)
    ax.set_ylabel("")
    return ax


def metric_points(
    df: pd.DataFrame,
    metric: str,
    label: str,
    ax=None,
    log: bool = False,
    chance: float | None = None,
    order: list[str] | None = None,
):
    """Dot-and-whisker: per method the mean (large dot) with its 95% CI and every seed (small
    dots), sorted by mean, subject in red. The axis is zoomed to the data, so differences of
    a point or two stay visible (chance is marked when it is in range)."""
    sub = df[(df["metric"] == metric) & df["value"].notna()]
    if sub.empty:  # every job failed or was skipped: say so instead of drawing nothing (or crashing)
        if ax is None:
            _, ax = plt.subplots(figsize=(6.5, 1.6))
        ax.text(
            0.5,
            0.5,
            f"no {metric} values (every job failed or was skipped)",
            ha="center",
            va="center",
            transform=ax.transAxes,
            fontsize=8,
        )
        ax.set_axis_off()
        return ax
    t = mean_ci_table(sub, ["method"]).sort_values("mean", ascending=True)
    if order is not None:
        t = t.set_index("method").loc[[m for m in order if m in set(t["method"])]].reset_index()
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 0.32 * len(t) + 1.3))
    pal = method_palette(t["method"])
    pos = {m: i for i, m in enumerate(t["method"])}
    seeds = sub[sub["method"].isin(pos)]
    ax.scatter(
        seeds["value"],
        seeds["method"].astype(object).map(pos).astype(float) + 0.18,
        s=9,
        color="#999999",
        zorder=2,
        lw=0,
    )
    ax.errorbar(
        t["mean"],
        list(pos.values()),
        xerr=t["half"].fillna(0),
        fmt="none",
        ecolor="#333333",
        elinewidth=1.2,
        capsize=3,
        zorder=3,
    )
    ax.scatter(
        t["mean"], list(pos.values()), s=46, color=[pal[m] for m in t["method"]], zorder=4, edgecolor="black", lw=0.5
    )
    ax.set_yticks(list(pos.values()), list(pos))
    for tick in ax.get_yticklabels():
        if tick.get_text() == SUBJECT:
            tick.set_fontweight("bold")
            tick.set_color(SUBJECT_COLOR)
    if log:
        ax.set_xscale("log")
    if chance is not None:
        lo, hi = ax.get_xlim()
        if lo <= chance <= hi:
            ax.axvline(chance, color="k", ls=":", lw=1)
            ax.text(chance, len(t) - 0.5, " chance", fontsize=7, va="bottom")
    ax.set_ylim(-0.6, len(t) - 0.4)
    ax.set_xlabel(label)
    return ax
