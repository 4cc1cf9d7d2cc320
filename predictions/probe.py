"""Sanity protocol ``probe``: linear-probe and kNN accuracy of every method's features.

The comparison the essay's author published (a decoder-free InfoMax encoder against a sparse
autoencoder, by linear probe), run for every selected method at width [64]: probe accuracy
(PROTOCOL.md §6), kNN accuracy (k=20, cosine), active fraction (mean share of features with
a > 0 per test input), dead-feature fraction (features constant on train), deployed
parameters, and the training diagnostics (activation scale max|a| on train, encoder weight
norm). Primary metric: probe accuracy, predicted direction: subject higher.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt

from bench import plots
from bench.config import ConfigError
from bench.data import DATASETS
from bench.probe import knn_accuracy, linear_probe
from bench.protocol import PREDICTIONS, Prediction, PredictionConfig


@dataclass(frozen=True)
class ProbeConfig(PredictionConfig):
    knn_k: int = 20

    def check(self) -> None:
        if self.knn_k < 1:
            raise ValueError(f"knn_k: must be >= 1, got {self.knn_k}")
        if self.width < 1:
            raise ValueError(f"width: must be >= 1, got {self.width}")


@PREDICTIONS.register()
class Probe(Prediction):
    """Linear probe of every method's frozen features (the foundation's sanity protocol)."""

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
        "(log grid 1e-4..1e1), and scored once on test. kNN: k=20, cosine. Verdict: paired "
        "differences over seeds (subject - baseline), 95% t-interval, paired t and Wilcoxon p, "
        "Holm-corrected across baselines."
    )
    primary_metric = "probe_acc"
    direction = "higher"
    Config = ProbeConfig

    def check(self, ctx) -> None:
        ds = ctx.dataset()
        if ds.n_classes is None:
            labelled = [n for n in DATASETS.names() if n != "ica"]
            raise ConfigError(f"probe: dataset '{ds.name}' has no class labels (choices: {', '.join(labelled)})")

    def run(self, ctx):
        ds = ctx.dataset()
        rows = []
        for enc in ctx.encoders():
            f = [enc.features(s.x) for s in (ds.train, ds.val, ds.test)]
            pr = linear_probe(f[0], ds.train.y, f[1], ds.val.y, f[2], ds.test.y, ds.n_classes)
            knn = knn_accuracy(f[0], ds.train.y, f[2], ds.test.y, ds.n_classes, k=self.cfg.knn_k)
            diag = enc.meta.get("diagnostics", {})
            values = {
                "probe_acc": float(pr.test_acc[0]),
                "probe_val_acc": float(pr.val_acc[0]),
                "probe_l2": float(pr.l2[0]),
                "knn_acc": knn,
                "active_fraction": float((f[2] > 0).float().mean()),
                "dead_fraction": float((f[0].std(0) < 1e-6).float().mean()),
                "n_params": float(diag.get("n_params_encoder", float("nan"))),
                "act_scale": diag.get("act_scale", float("nan")),
                "weight_norm": diag.get("encoder_weight_norm", float("nan")),
                "chance": 1.0 / ds.n_classes,
            }
            for term, v in (enc.meta.get("final_loss") or {}).items():
                values[f"final_{term}"] = v
            rows += [ctx.row(enc, k, v) for k, v in values.items()]
        return rows

    def figures(self, df):
        plots.theme()
        chance = df.loc[df["metric"] == "chance", "value"]
        chance = float(chance.iloc[0]) if len(chance) else None
        fig, axes = plt.subplots(1, 2, figsize=(10, 0.3 * df["method"].nunique() + 1.8), sharey=False)
        plots.metric_points(df, "probe_acc", "linear-probe test accuracy (mean, 95% CI, seeds)", axes[0], chance=chance)
        plots.metric_points(df, "knn_acc", "kNN test accuracy (k=20, cosine)", axes[1], chance=chance)
        fig.suptitle(f"Probe accuracy per method on {', '.join(df['dataset'].dropna().unique())} (subject in red)")
        fig.tight_layout()
        fig2, axes2 = plt.subplots(1, 2, figsize=(10, 0.3 * df["method"].nunique() + 1.8))
        plots.metric_points(df[df["value"] > 0], "act_scale", "activation scale max|a| on train (log; collapsed = 0 not shown)", axes2[0], log=True)
        plots.metric_points(df, "active_fraction", "active fraction (a > 0) per test input", axes2[1])
        fig2.suptitle("Training diagnostics: InfoMax's -log Var term is unbounded below")
        fig2.tight_layout()
        return [("probe_accuracy", fig), ("diagnostics", fig2)]

    def tables(self, df):
        tabs = super().tables(df)
        summary = plots.mean_ci_table(df[df["metric"].isin(
            ["probe_acc", "knn_acc", "active_fraction", "dead_fraction", "n_params", "act_scale"])], ["method", "metric"])
        wide = summary.pivot(index="method", columns="metric", values="mean").reset_index()
        from bench.protocol import Table

        tabs.append(Table("Per-method means over seeds", wide))
        return tabs
