"""Prediction 2, transfer, the figures: from the tidy table alone (the view passes itself for its comparison frames)."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bench.protocol import ROLE_LABELS, SUBJECT
from bench.report import plots

if TYPE_CHECKING:
    from predictions.transfer.view import TransferView

BUDGETS = ("1", "5", "10", "50", "all")
ALL_AT = 200.0  # where "all" sits on the log axis of labels per class (its tick says "all")


def _x(budget: str, all_at: float = ALL_AT) -> float:
    return all_at if budget == "all" else float(budget)


def _order(methods) -> list[str]:
    ms = sorted(set(methods))
    return [m for m in ms if m != SUBJECT] + ([SUBJECT] if SUBJECT in ms else [])  # subject drawn last


def _line(ax, t: pd.DataFrame, pal: dict[str, str], m: str, ls: str = "-") -> None:
    subj = m == SUBJECT
    ref = m in ("raw", "random")
    ax.plot(
        t["x"],
        t["mean"],
        color="k" if ref else pal[m],
        lw=2.2 if subj else 1.0,
        ls=":" if ref else ls,
        alpha=1 if subj else 0.75,
        zorder=3 if subj else 2,
        label=m,
        marker="o" if subj else None,
        ms=3,
    )
    ax.fill_between(
        t["x"],
        t["mean"] - t["half"].fillna(0),
        t["mean"] + t["half"].fillna(0),
        color=pal[m],
        alpha=0.18 if subj else 0.06,
        lw=0,
        zorder=1,
    )


def _log_budget_axis(ax, budgets: list[str], all_at: float = ALL_AT) -> None:
    ax.set_xscale("log")
    ticks = [_x(b, all_at) for b in budgets]
    ax.set_xticks(ticks, budgets)
    ax.minorticks_off()


def _legend(fig, methods: list[str], pal: dict[str, str]) -> None:
    from matplotlib.lines import Line2D

    handles = (
        [Line2D([], [], color=pal[SUBJECT], lw=2.2, marker="o", ms=3, label=SUBJECT)] if SUBJECT in methods else []
    )
    handles += [
        Line2D([], [], color=pal[m], lw=1.2, label=m)
        for m in methods
        if m != SUBJECT and pal[m] != plots.OTHER_COLOR and m not in ("raw", "random")
    ]
    others = [m for m in methods if pal[m] == plots.OTHER_COLOR and m not in ("raw", "random")]
    if others:
        handles.append(Line2D([], [], color=plots.OTHER_COLOR, lw=1.0, label=f"baselines ({len(others)})"))
    if {"raw", "random"} & set(methods):
        handles.append(Line2D([], [], color="k", lw=1.0, ls=":", label="raw / random (reference)"))
    fig.legend(
        handles=handles,
        loc="upper center",
        ncol=min(len(handles), 5),
        frameon=False,
        fontsize=8,
        bbox_to_anchor=(0.5, 0.99),
    )


def all_figures(df: pd.DataFrame, view: TransferView) -> list:
    plots.theme()
    figs = []
    for name, fig in (
        ("kappa_vs_labels", kappa_figure(df)),
        ("primary", verdict_figure(df, view)),
        ("gap_per_budget", gap_figure(df)),
    ):
        if fig is not None:
            figs.append((name, fig))
    return figs


def kappa_figure(df: pd.DataFrame):
    """cca against labels per class (log x), one column per pair, transfer (top) and in-domain (bottom)."""
    sel = df[
        (df["metric"] == "kappa") & plots.is_value(df, "l2_mode", "val") & plots.is_value(df, "scaling", "scalar")
    ].dropna(subset=["value"])
    if sel.empty:
        return None
    pairs = list(dict.fromkeys(sel["pair"]))
    methods = _order(sel["method"])
    pal = plots.method_palette(methods)
    budgets = [b for b in BUDGETS if b in set(sel["budget"])]
    t = plots.mean_ci_table(sel, ["pair", "reference", "method", "budget"])
    t["x"] = t["budget"].map(_x)
    fig, axes = plt.subplots(2, len(pairs), figsize=(3.6 * len(pairs) + 0.8, 6.6), sharey=True, squeeze=False)
    axes[0, 0].set_ylim(min(-0.05, float(t["mean"].min()) - 0.05), 1.05)  # 2-3 seeds' t-bands would swamp it
    for j, pid in enumerate(pairs):
        for i, ref in enumerate(("transfer", "in_domain")):
            ax = axes[i, j]
            for m in methods:
                tm = t[(t["pair"] == pid) & (t["reference"] == ref) & (t["method"] == m)].sort_values("x")
                if len(tm):
                    _line(ax, tm, pal, m)
            _log_budget_axis(ax, budgets)
            ax.axhline(0, color="k", lw=0.6, ls="--")
            src = sel.loc[sel["pair"] == pid, "source"].iloc[0]
            tgt = sel.loc[sel["pair"] == pid, "target"].iloc[0]
            ax.set_title(f"{src} -> {tgt}" if ref == "transfer" else f"in-domain: {tgt} -> {tgt}", fontsize=8)
            if j == 0:
                ax.set_ylabel(f"cca ({ref.replace('_', '-')})")
            if i == 1:
                ax.set_xlabel("labelled target examples per class (log)")
    _legend(fig, methods, pal)
    fig.suptitle(
        "Chance-corrected accuracy against labels per class (mean and 95% CI over seeds; subject in red)",
        fontsize=9,
        y=0.94,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    return fig


def verdict_figure(df: pd.DataFrame, view: TransferView):
    """The primary and the co-primary as dot-and-whisker per baseline: mean paired difference and 95% CI
    (references hollow); no verdicts (the report's verdict tables carry them, in ``confirm`` only)."""
    frames = [(v, view.verdict_frame(df, v)) for v in view.primaries]
    frames = [(v, f) for v, f in frames if not f.empty]
    if not frames:
        return None
    n = max(len(f) for _, f in frames)
    fig, axes = plt.subplots(1, len(frames), figsize=(5.6 * len(frames), 0.3 * n + 2.2), squeeze=False)
    for ax, (v, f) in zip(axes[0], frames, strict=True):
        f = f.sort_values("mean_diff", na_position="first").reset_index(drop=True)
        y = np.arange(len(f))
        lo = (f["mean_diff"] - f["ci_low"]).fillna(0).clip(lower=0)
        hi = (f["ci_high"] - f["mean_diff"]).fillna(0).clip(lower=0)
        ax.errorbar(f["mean_diff"], y, xerr=[lo, hi], fmt="none", ecolor="#333333", elinewidth=1.1, capsize=3)
        ref = f["baseline"].isin(("raw", "random")).to_numpy()
        ax.scatter(
            f["mean_diff"], y, s=40, zorder=3, edgecolor="k", lw=0.5, color=["white" if r else "#1f77b4" for r in ref]
        )
        ax.set_yticks(
            y, [b + (" (reference)" if r else "") for b, r in zip(f["baseline"], ref, strict=True)], fontsize=7
        )
        ax.axvline(0, color="k", lw=0.8)
        ax.set_xlabel("subject - baseline (per-seed paired difference)")
        ax.set_title(textwrap.fill(f"{ROLE_LABELS[v.role or 'primary']}: {v.title}", 70), fontsize=8)
    fig.suptitle(
        "Paired differences subject - baseline, mean and 95% t-interval over seeds "
        "(label-trained methods: no co-primary, n/a by design)",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def gap_figure(df: pd.DataFrame):
    """cca step-matched - cca in-domain per budget, averaged over the primary pairs within a seed."""
    sel = df[
        (df["metric"] == "gap") & plots.is_value(df, "l2_mode", "val") & plots.is_value(df, "scaling", "scalar")
    ].dropna(subset=["value"])
    emb = [p for p in ("mnist_digits", "mnist_lo_hi", "digits_lo_hi") if p in set(sel["pair"])]
    sel = sel[sel["pair"].isin(emb)]
    if sel.empty:
        return None
    per_seed = sel.groupby(["method", "budget", "seed"], as_index=False)["value"].mean()
    t = plots.mean_ci_table(per_seed, ["method", "budget"])
    t["x"] = t["budget"].map(_x)
    methods = _order(t["method"])
    pal = plots.method_palette(methods)
    budgets = [b for b in BUDGETS if b in set(t["budget"])]
    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    for m in methods:
        _line(ax, t[t["method"] == m].sort_values("x"), pal, m)
    ax.axhline(0, color="k", lw=0.8)
    _log_budget_axis(ax, budgets)
    ax.set_xlabel("labelled target examples per class (log)")
    ax.set_ylabel("cca step-matched - cca in-domain")
    _legend(fig, methods, pal)
    ax.set_title(
        f"What moving costs, per budget, mean over {', '.join(emb)} (95% CI over seeds); "
        "label-trained methods have none",
        fontsize=8,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig
