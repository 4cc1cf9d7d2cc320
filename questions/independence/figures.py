"""Figures of the independence question (docs/protocol.md 11.2), from the tidy table; torch-free.

* ``dose_response`` (the main figure): every outcome Y and every dose measure against lambda_tc, per dataset,
  subject (red) and ``infomax_noem`` (blue); mean over seeds with its 95% t-interval; ``tc=logdet`` as open
  diamonds; x on a symlog axis so that lambda_tc = 0 is drawn.
* ``rotation``: probe accuracy, Gaussian TC (train), pairwise MI and retained accuracy against t.
* ``dependent_factors``: MCC and the matched pair's excess |corr| against the factors' own correlation.
* ``zoo``: kNN predictability against mean retained accuracy, one point per method.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.evaluate.inference import t_interval  # noqa: E402
from bench.report import plots  # noqa: E402
from questions.independence import analysis as A  # noqa: E402

PANELS = (  # (title, metric, extra condition)
    ("clean accuracy (test)", "acc", {"split": "test"}),
    ("retained accuracy, mean (test)", "retained_mean", {"split": "test", "perturbation": "all"}),
    ("transfer kappa n = 10 (test)", "kappa", {"split": "test"}),
    ("Gaussian TC (nats)", "gaussian_tc", {}),
    ("pairwise MI (nats)", "pairwise_mi", {}),
    ("kNN predictability", "knn_predictability", {}),
)
COLORS = {"infomax": plots.SUBJECT_COLOR, "infomax_noem": "#4C72B0"}


def _mean_ci(g: pd.DataFrame, by: str) -> pd.DataFrame:
    rows = []
    for x, h in g.groupby(by):
        m, lo, hi = t_interval(h["value"].to_numpy(dtype=float))
        rows.append((x, m, lo, hi))
    return pd.DataFrame(rows, columns=["x", "mean", "lo", "hi"]).sort_values("x")


def _line(ax, pts: pd.DataFrame, **kw) -> None:
    err = np.vstack([pts["mean"] - pts["lo"], pts["hi"] - pts["mean"]])
    ax.errorbar(pts["x"], pts["mean"], yerr=np.nan_to_num(err), capsize=2, **kw)


def dose_figure(df: pd.DataFrame):
    """Two rows per dataset (the outcomes Y, then the dose delivered), three panels each."""
    dose = A.select(df, part="dose")
    if dose.empty:
        return None
    datasets = [d for d in A.DATASETS if d in set(dose["dataset"])] + sorted(set(dose["dataset"]) - set(A.DATASETS))
    ncol = 3
    nrow = 2 * len(datasets)
    fig, axes = plt.subplots(nrow, ncol, figsize=(10.5, 2.55 * nrow), squeeze=False)
    for i, dataset in enumerate(datasets):
        for j, (title, metric, extra) in enumerate(PANELS):
            ax = axes[2 * i + j // ncol, j % ncol]
            sel = A.select(dose, dataset=dataset, metric=metric, **extra)
            if sel.empty:
                ax.text(0.5, 0.5, "n/a", ha="center", va="center", transform=ax.transAxes, color=".5")
            for method, g in sel.groupby("method"):
                color = COLORS.get(str(method), plots.OTHER_COLOR)
                corr = _mean_ci(A.select(g, tc="corr"), "lambda_tc")
                _line(ax, corr, color=color, marker="o", lw=1.8 if method == "infomax" else 1.1, label=str(method))
                logdet = _mean_ci(A.select(g, tc="logdet"), "lambda_tc")
                if len(logdet):
                    _line(ax, logdet, color=color, marker="D", mfc="white", ls="none", label=f"{method}, tc=logdet")
            ax.set_xscale("symlog", linthresh=0.1)
            ax.set_title(f"{dataset}: {title}", fontsize=8.5)
            if 2 * i + j // ncol == nrow - 1:
                ax.set_xlabel("lambda_tc")
    labels = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            labels.setdefault(lab, h)
    if labels:
        fig.legend(
            list(labels.values()), list(labels), loc="upper center", ncol=len(labels), fontsize=7.5,
            bbox_to_anchor=(0.5, 0.975), frameon=False,
        )  # fmt: skip
    fig.suptitle("Dose-response in lambda_tc: outcomes and the dependence delivered (mean, 95% t-interval)", y=0.995)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def rotation_figure(df: pd.DataFrame):
    rot = A.select(df, part="rotation")
    if rot.empty:
        return None
    panels = (
        ("probe accuracy (test)", "acc", {"split": "test"}),
        ("Gaussian TC on train", "gaussian_tc_train", {}),
        ("pairwise MI (test)", "pairwise_mi", {}),
        ("retained, unit zeroing", "retained_mean", {"split": "test", "perturbation": "zero"}),
        ("retained, mean", "retained_mean", {"split": "test", "perturbation": "all"}),
    )
    fig, axes = plt.subplots(1, len(panels), figsize=(2.8 * len(panels), 2.8), squeeze=False)
    for ax, (title, metric, extra) in zip(axes[0], panels, strict=True):
        for arm, g in A.select(rot, metric=metric, **extra).groupby("arm"):
            _line(ax, _mean_ci(g, "t"), marker="o", label=str(arm))
        ax.set_title(title, fontsize=8.5)
        ax.set_xlabel("t (rotation angle, rad rms)")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Rotation ladder of whitened codes (mnist5k, K = 64): same information, different independence")
    fig.tight_layout()
    return fig


def factors_figure(df: pd.DataFrame):
    settings = [s for s in ("ica", "dsprites") if not A.factor_points(df, s).empty]
    if not settings:
        return None
    fig, axes = plt.subplots(2, len(settings), figsize=(4.2 * len(settings), 5.6), squeeze=False)
    for j, setting in enumerate(settings):
        pts = A.factor_points(df, setting)
        pts = pts[pts["law"] != "elliptical"]
        for arm, g in pts.groupby("arm"):
            agg = g.groupby("rho")[["pair_source_corr", "mcc", "pair_excess"]].mean().sort_values("pair_source_corr")
            style = {"color": plots.SUBJECT_COLOR, "lw": 1.8} if arm == "infomax" else {}
            axes[0, j].plot(agg["pair_source_corr"], agg["mcc"], marker="o", label=str(arm), **style)
            axes[1, j].plot(agg["pair_source_corr"], agg["pair_excess"], marker="o", label=str(arm), **style)
        axes[0, j].set_title(f"{setting}: MCC (pre-activations)", fontsize=8.5)
        axes[1, j].set_title(f"{setting}: matched pair |corr| - |factors' corr|", fontsize=8.5)
        axes[1, j].axhline(0, color=".5", lw=0.8)
        axes[1, j].set_xlabel("factors' Pearson correlation (dependent pair)")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Dependent true factors (mean over seeds)")
    fig.tight_layout()
    return fig


def zoo_figure(df: pd.DataFrame, corr: dict):
    frame = A.zoo_frame(df)
    if frame.empty:
        return None
    means = frame.groupby("method")[["redundancy", "robustness", "acc"]].mean()
    fig, ax = plt.subplots(figsize=(5.4, 4.2))
    colors = plots.method_palette(means.index)
    ax.scatter(means["redundancy"], means["robustness"], c=[colors[m] for m in means.index], s=30)
    for m, r in means.iterrows():
        ax.annotate(str(m), (r["redundancy"], r["robustness"]), fontsize=7, xytext=(3, 2), textcoords="offset points")
    ax.set_xlabel("kNN predictability (nonlinear redundancy)")
    ax.set_ylabel("mean retained accuracy (test)")
    ax.set_title(
        f"Zoo, mnist5k K = 64: Spearman {corr['rho']:.2f}, partial on accuracy {corr['partial']:.2f}", fontsize=8.5
    )
    fig.tight_layout()
    return fig
