"""Open question ``scaling``, the view: error halvings per doubling, the reading words, the curves.

Per method and axis, each seed's curve of test error e against x (N, K or epochs) gives b = -slope of log2 e
on log2 x (error halvings per doubling) over every point and, as b_end, over the last two doublings; their
mean and 95% t-interval over seeds (:mod:`bench.evaluate.estimates`). The answer reads the ``mnist1d`` N axis,
the longest: "still scaling" (b_end above 0), "stops" (b_end covers 0 where the baselines' do not), "lands
with X" (inside X's interval), or "undetermined". ``raw`` and ``random`` learn nothing from N, so they are
never references for "stops".
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bench.evaluate import estimates, scaling_law
from bench.protocol import SUBJECT, VIEWS, Table, View
from bench.report import plots

AXES = {  # axis -> (x column, label, dataset)
    "n_mnist1d": ("n", "pretraining N (mnist1d, equal steps)"),
    "n_mnist5k": ("n", "pretraining N (mnist5k, equal steps)"),
    "k": ("width", "width K (mnist5k, P3's budget)"),
    "steps": ("epochs", "epochs (mnist5k, K = 64)"),
}
NO_N = ("raw", "random")  # nothing to learn from more data: never a reference for "stops"


def _curve(df: pd.DataFrame, axis: str, metric: str = "test_error") -> pd.DataFrame:
    x = AXES[axis][0]
    sel = df[(df["axis"] == axis) & (df["metric"] == metric)]
    return sel[["method", "seed", x, "value"]].rename(columns={x: "x"}).dropna()


def slopes(df: pd.DataFrame, axis: str, doublings: float | None = None) -> dict[str, estimates.Estimate]:
    """Method -> b (``doublings`` None) or b_end (2) on ``axis``; methods with fewer than two points skipped."""
    out = {}
    for m, g in _curve(df, axis).groupby("method"):
        if g["x"].nunique() >= 2:
            out[str(m)] = estimates.halvings(g["seed"], g["x"], g["value"].clip(lower=1e-6), doublings)
    return out


@VIEWS.register()
class ScalingView(View):
    """Does InfoMax scale? Error halvings per doubling of N, K and steps, against the baselines."""

    kind = "question"
    in_all = False
    order = 1.0
    name = "scaling"
    title = "Does InfoMax scale?"
    question = (
        "\u201cDoes InfoMax scale? RBMs didn't scale. Autoencoders did but weren't enough. Contrastive learning "
        "scales. Foundation model objectives scale massively. Where does InfoMax land?\u201d"
    )
    statement = question
    protocol = (
        "Each method is pretrained at several sizes of its unlabelled data N (nested prefixes; mnist1d at "
        "K = 128 and mnist5k at K = 64), always for the same number of optimisation steps (8,192 at batch 128 on "
        "mnist1d, 100 epochs at N = 3,500 on mnist5k), so more data is not more steps; the largest mnist1d N "
        "again at twice the steps shows whether that point was compute-limited. Also along width K (P3's "
        "sweep + 256) and epochs (25..400). Every encoder: a linear probe on fixed probe-train labels, L2 chosen "
        "on val, test error e once. Per seed: b = error halvings per doubling (-slope of log2 e on log2 x), and "
        "b_end over the last two doublings; 95% t-intervals over seeds. No verdicts: estimates and a reading."
    )
    main_figure = "error_curves"

    def answer(self, df: pd.DataFrame) -> str:
        b_end = slopes(df, "n_mnist1d", 2)
        if SUBJECT not in b_end:
            return "undetermined: the subject has no mnist1d N curve in this run"
        refs = [m for m in b_end if m not in NO_N and m != SUBJECT]
        reading = scaling_law.readings(b_end, references=refs or None)[SUBJECT]
        e = b_end[SUBJECT]
        where = f"b_end = {e.mean:.2f} [{e.ci_low:.2f}, {e.ci_high:.2f}] error halvings per doubling of N on mnist1d"
        word = reading.word
        lands = [m for m in reading.lands_with if m not in NO_N]
        tail = f"; it lands with {', '.join(lands)}" if lands else ""
        if word == "undetermined":
            return f"undetermined: {where}{tail}"
        return f"InfoMax {word}: {where}{tail}."

    def tables(self, df: pd.DataFrame) -> list[Table]:
        tabs = []
        for axis, (_, label) in AXES.items():
            if not (df.get("axis") == axis).any():
                continue
            b, b_end = slopes(df, axis), slopes(df, axis, 2)
            rows = []
            for m in sorted(b):
                rows.append(
                    {
                        "method": m,
                        "seeds": b[m].n,
                        "b (all points)": b[m].mean,
                        "b 95% CI": f"[{b[m].ci_low:.3f}, {b[m].ci_high:.3f}]",
                        "b_end": b_end[m].mean if m in b_end else np.nan,
                        "b_end 95% CI": f"[{b_end[m].ci_low:.3f}, {b_end[m].ci_high:.3f}]" if m in b_end else "",
                    }
                )
            if rows:
                tabs.append(Table(f"Error halvings per doubling of {label}", pd.DataFrame(rows)))
            mean = (
                _curve(df, axis)
                .groupby(["method", "x"])["value"]
                .mean()
                .unstack("x")
                .reset_index()
                .rename_axis(None, axis=1)
            )
            tabs.append(Table(f"Mean test error by {label}", mean))
        return tabs

    def figures(self, df: pd.DataFrame, matrices: pd.DataFrame):
        plots.theme()
        present = [a for a in AXES if (df.get("axis") == a).any()]
        if not present:
            return []
        cols = min(2, len(present))
        rows = -(-len(present) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.0 * rows), squeeze=False)
        for ax in axes.flat[len(present) :]:
            ax.axis("off")
        for ax, axis in zip(axes.flat, present, strict=False):
            c = _curve(df, axis)
            for m, g in c.groupby("method"):
                mean = g.groupby("x")["value"].mean()
                sub = m == SUBJECT
                ax.plot(
                    mean.index,
                    mean.values,
                    marker="o",
                    lw=2.2 if sub else 1.0,
                    color="#c0392b" if sub else None,
                    alpha=1.0 if sub else 0.7,
                    label=m,
                    zorder=3 if sub else 2,
                )
            ax.set_xscale("log", base=2)
            ax.set_yscale("log", base=2)
            ax.set_xlabel(AXES[axis][1])
            ax.set_ylabel("test error (log2)")
        axes.flat[cols - 1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.suptitle("Test error against data, width and steps (mean over seeds; subject in red)")
        fig.tight_layout()
        return [("error_curves", fig)]
