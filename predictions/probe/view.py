"""The sanity protocol ``probe``, the view: probe accuracy verdicts, per-method means, figures.

Primary metric: probe accuracy (docs/protocol.md §6), predicted direction: subject higher.
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from bench.protocol import VIEWS, Table, Verdict, View
from bench.report import plots


@VIEWS.register()
class ProbeView(View):
    """Linear probe of every method's frozen features (the foundation's sanity protocol)."""

    in_all = False  # the minimal example prediction: not part of prediction=all
    name = "probe"
    title = "Linear probe: are InfoMax features good features?"
    statement = (
        "\u201cGood features are independent factors of variation. If you find them, they're "
        "useful for everything. Classification, generation, segmentation, transfer\u2014all "
        "become easy. [...] End-to-end training finds them partially, redundantly, "
        "task-specifically. InfoMax finds them directly.\u201d"
    )
    protocol = (
        "Each method is trained without labels (except `supervised`) on the train split at the same "
        "width, epochs and batch size. Frozen features are standardised with train statistics; a "
        "multinomial logistic regression is fitted on train with its L2 strength chosen on val "
        "(log grid 1e-4..1e1), and scored once on test. kNN: k=20, cosine. Per member: paired "
        "differences over seeds (subject - baseline), mean and 95% t-interval, d_z; a sanity protocol, "
        "families as in every prediction (PA, AB, REF)."
    )
    verdicts = (Verdict("probe_acc", "higher", {}, "probe_acc"),)

    def figures(self, df, matrices):
        plots.theme()
        chance = df.loc[df["metric"] == "chance", "value"]
        chance = float(chance.iloc[0]) if len(chance) else None
        fig, axes = plt.subplots(1, 2, figsize=(10, 0.3 * df["method"].nunique() + 1.8), sharey=False)
        plots.metric_points(df, "probe_acc", "linear-probe test accuracy (mean, 95% CI, seeds)", axes[0], chance=chance)
        plots.metric_points(df, "knn_acc", "kNN test accuracy (k=20, cosine)", axes[1], chance=chance)
        fig.suptitle(f"Probe accuracy per method on {', '.join(df['dataset'].dropna().unique())} (subject in red)")
        fig.tight_layout()
        fig2, axes2 = plt.subplots(1, 2, figsize=(10, 0.3 * df["method"].nunique() + 1.8))
        plots.metric_points(
            df[df["value"] > 0],
            "act_scale",
            "activation scale max|a| on train (log; collapsed = 0 not shown)",
            axes2[0],
            log=True,
        )
        plots.metric_points(df, "active_fraction", "active fraction (a > 0) per test input", axes2[1])
        fig2.suptitle("Training diagnostics: InfoMax's -log Var term is unbounded below")
        fig2.tight_layout()
        return [("probe_accuracy", fig), ("diagnostics", fig2)]

    def tables(self, df):
        tabs = self.verdict_tables(df)
        summary = plots.mean_ci_table(
            df[
                df["metric"].isin(["probe_acc", "knn_acc", "active_fraction", "dead_fraction", "n_params", "act_scale"])
            ],
            ["method", "metric"],
        )
        wide = summary.pivot(index="method", columns="metric", values="mean").reset_index()
        tabs.append(Table("Per-method means over seeds", wide))
        return tabs
