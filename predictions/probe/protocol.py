"""Sanity protocol ``probe``: linear-probe and kNN accuracy of every method's features.

The comparison the essay's author published (a decoder-free InfoMax encoder against a sparse
autoencoder, by linear probe), run for every selected method at width [64]: probe accuracy
(docs/protocol.md §6), kNN accuracy (k=20, cosine), active fraction (mean share of features with
a > 0 per test input), dead-feature fraction (features constant on train), deployed
parameters, and the training diagnostics (activation scale max|a| on train, encoder weight
norm). What the report makes of them is :mod:`predictions.probe.view`.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.evaluate.probe import knn_accuracy, linear_probe
from bench.protocol import PREDICTIONS, EncoderSource, Prediction, PredictionConfig, row


@dataclass(frozen=True)
class ProbeConfig(PredictionConfig):
    knn_k: int = 20

    def check(self) -> None:
        super().check()
        if self.knn_k < 1:
            raise ValueError(f"knn_k: must be >= 1, got {self.knn_k}")


@PREDICTIONS.register()
class Probe(Prediction):
    """Linear probe of every method's frozen features (the foundation's sanity protocol)."""

    name = "probe"
    Config = ProbeConfig

    def run(self, src: EncoderSource) -> list[dict]:
        rows = []
        for measured in src.measure(self.measure_encoder):
            rows += measured
        return rows

    def measure_encoder(self, enc, src) -> list[dict]:
        """Probe, kNN and training diagnostics of one encoder."""
        ds = src.dataset(enc.spec.dataset)
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
        return [row(enc, k, v) for k, v in values.items()]
