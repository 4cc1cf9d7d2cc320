"""P3 parameter efficiency (PROTOCOL.md §8 P3): "Smaller InfoMax models match larger conventional models".

Width sweep K in ``widths`` [quick 8..128, full 4..256] for every method and seed on the run's
dataset (width-64 encoders are cache hits from ``pruning`` and ``probe``). For every encoder:

* ``probe_acc``: the standard linear probe (L2 on val, test once; :func:`bench.probe.linear_probe`);
* ``params_deployed``: P, every float the deployed encoder reads (:func:`curves.deployed_floats`);
  ``params_train``: the training-only parameters (heads, decoders, projectors), counted apart;
* ``train_steps``: ``epochs * ceil(N_train / batch)`` for gradient methods (NaN with the reason
  for methods fitted once: PCA, FastICA, GMM, and for ``raw``/``random``, never trained).

Points a method cannot have are n/a rows (``probe_acc`` NaN with the reason): ``pca`` and
``fastica`` stop at K = D; ``raw`` has one width (K = D, P = 0). Then, from the probe table alone
(:func:`curves.delta_rows`), per baseline B and seed: ``gap_2p`` at each K, the primary
``delta_2p`` = ``Delta_B + margin`` (width 0: an aggregate over ``primary_widths``) and the
descriptive ``multiplier`` with its censoring.

Secondary (``secondary=true``): the same on ``<dataset>[5-9]`` with the label-trained models of
``secondary_methods`` trained on ``<dataset>[0-4]`` (they cannot have seen the probe's classes)
and the subject trained on ``[5-9]``'s inputs as usual; its rows have ``study=unseen_classes`` and
``source`` = the training dataset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bench.probe import linear_probe
from bench.protocol import PREDICTIONS, SUBJECT, EncoderSource, Prediction, PredictionConfig, row
from predictions.efficiency.curves import delta_rows, deployed_floats

QUICK_WIDTHS = (8, 16, 32, 64, 128)
FULL_WIDTHS = (4, 8, 16, 32, 64, 128, 256)
MARGIN = 0.01  # delta: one point of accuracy, declared in advance (PROTOCOL.md §8 P3)
CAPPED_AT_D = ("pca", "fastica")  # at most D components


@dataclass(frozen=True)
class EfficiencyConfig(PredictionConfig):
    """``width`` is not used (the sweep is ``widths``); ``widths`` empty = the profile's default."""

    widths: tuple[int, ...] = ()
    primary_widths: tuple[int, ...] = (16, 32, 64)  # the Ks the primary averages over
    secondary: bool = True
    secondary_methods: tuple[str, ...] = ("supervised", "supervised_mlp2", "supervised_cnn")
    source_classes: str = "[0-4]"
    target_classes: str = "[5-9]"

    def check(self) -> None:
        super().check()
        if any(k < 1 for k in self.widths):
            raise ValueError(f"widths: every width must be >= 1, got {self.widths}")
        if not self.primary_widths or any(k < 1 for k in self.primary_widths):
            raise ValueError(f"primary_widths: need widths >= 1, got {self.primary_widths}")
        if self.widths and not set(self.primary_widths) <= set(self.widths):
            raise ValueError(f"primary_widths: {self.primary_widths} must be in widths {self.widths}")


def sweep_widths(cfg: EfficiencyConfig, profile: str) -> tuple[int, ...]:
    """The widths of the sweep: ``cfg.widths``, else the profile's default."""
    return tuple(sorted(cfg.widths)) if cfg.widths else FULL_WIDTHS if profile == "full" else QUICK_WIDTHS


@PREDICTIONS.register()
class Efficiency(Prediction):
    """P3 parameter efficiency: probe accuracy against deployed parameters over a width sweep."""

    name = "efficiency"
    Config = EfficiencyConfig

    def run(self, src: EncoderSource) -> list[dict[str, Any]]:
        cfg: EfficiencyConfig = self.cfg  # type: ignore[assignment]
        widths = sweep_widths(cfg, src.profile)
        rows = self._study(src, None, list(src.methods), widths, "main")
        if cfg.secondary:
            rows += self._secondary(src, widths)
        return rows

    def _secondary(self, src: EncoderSource, widths: tuple[int, ...]) -> list[dict[str, Any]]:
        cfg: EfficiencyConfig = self.cfg  # type: ignore[assignment]
        conventional = [m for m in src.methods if m in cfg.secondary_methods]
        if not conventional:
            return []
        target = f"{cfg.dataset}{cfg.target_classes}"
        try:
            src.dataset(target)
            src.dataset(f"{cfg.dataset}{cfg.source_classes}")
        except Exception as e:  # noqa: BLE001 - a dataset without class subsets: no secondary
            return [{"dataset": target, "method": SUBJECT, "width": 0, "seed": s, "metric": "secondary_skipped",
                     "value": math.nan, "note": str(e), "study": "unseen_classes"} for s in src.seeds]
        refs = [m for m in src.methods if m == "raw"]  # the reference of the 90/95/99% table, never trained
        return self._study(src, target, [SUBJECT, *conventional, *refs], widths, "unseen_classes")

    def _study(self, src: EncoderSource, target: str | None, methods: list[str] | None,
               widths: tuple[int, ...], study: str) -> list[dict[str, Any]]:
        """Probe every (method, width, seed) on ``target`` (the run's dataset when None), then derive."""
        cfg: EfficiencyConfig = self.cfg  # type: ignore[assignment]
        ds = src.dataset(target)
        d = ds.train.x.shape[1]
        source = f"{cfg.dataset}{cfg.source_classes}" if target is not None else None
        rows: list[dict[str, Any]] = []
        for m in methods:
            if m in CAPPED_AT_D:
                rows += [{"dataset": ds.name, "method": m, "width": k, "seed": s, "metric": "probe_acc",
                          "value": math.nan, "note": f"{m} has at most D = {d} components (K = {k} > D)"}
                         for k in widths if k > d for s in src.seeds]
        groups = [([m for m in methods if m in CAPPED_AT_D], [k for k in widths if k <= d]),
                  ([m for m in methods if m not in CAPPED_AT_D], list(widths))]
        for ms, ks in groups:
            if not ms or not ks:
                continue
            for measured in self._measured(src, ms, ks, target, source, ds.name):
                rows += measured
        for r in rows:
            r["study"] = study
            if target is not None:
                r["source"], r["dataset"] = r["dataset"], ds.name
        probe = pd.DataFrame([r for r in rows if r["metric"] in ("probe_acc", "params_deployed")])
        if len(probe):
            rows += self._derived(probe, ds.name, study)
        return rows

    def _measured(self, src: EncoderSource, methods: list[str], widths: list[int], target: str | None,
                  source: str | None, probed_on: str):
        """The study's measurements; in the secondary, label-trained methods train on ``source``."""
        if target is None:
            yield from src.measure(self.measure_encoder, probed_on, methods=methods, widths=widths)
            return
        from bench.methods import METHODS

        labelled = [m for m in methods if METHODS.get(m).uses_labels]
        unlabelled = [m for m in methods if m not in labelled]
        if unlabelled:
            yield from src.measure(self.measure_encoder, probed_on, methods=unlabelled, widths=widths, dataset=target)
        if labelled:
            yield from src.measure(self.measure_encoder, probed_on, methods=labelled, widths=widths, dataset=source)

    def measure_encoder(self, enc, src, probed_on: str) -> list[dict[str, Any]]:
        """Probe accuracy on ``probed_on``, P, training-only parameters and training steps of one encoder."""
        ds = src.dataset(probed_on)
        n_train = int(src.dataset(enc.spec.dataset).train.x.shape[0])
        f = [enc.features(s.x) for s in (ds.train, ds.val, ds.test)]
        pr = linear_probe(f[0], ds.train.y, f[1], ds.val.y, f[2], ds.test.y, ds.n_classes)
        m = enc.method
        out = [row(enc, "probe_acc", float(pr.test_acc[0])), row(enc, "probe_val_acc", float(pr.val_acc[0])),
               row(enc, "params_deployed", deployed_floats(m)), row(enc, "params_train", m.n_params_train())]
        if m.kind == "gradient":
            out.append(row(enc, "train_steps", enc.spec.epochs * math.ceil(n_train / enc.spec.batch_size)))
        else:
            why = "fitted once (not gradient steps)" if m.kind == "fit" else "not trained"
            out.append(row(enc, "train_steps", math.nan, note=why))
        return out

    def _derived(self, probe: pd.DataFrame, dataset: str, study: str) -> list[dict[str, Any]]:
        """The primary and the multipliers, from the probe table alone (:func:`curves.delta_rows`)."""
        cfg: EfficiencyConfig = self.cfg  # type: ignore[assignment]
        wide = probe.pivot_table(index=["method", "width", "seed"], columns="metric", values="value",
                                 aggfunc="first", dropna=False).reset_index()
        if "params_deployed" not in wide:
            wide["params_deployed"] = math.nan
        curves = wide.rename(columns={"probe_acc": "acc", "params_deployed": "params"})
        curves = curves.dropna(subset=["acc", "params"], how="all")  # the pivot's empty (method, width) cells
        if SUBJECT not in set(curves["method"]):
            curves = pd.concat([curves, pd.DataFrame([{"method": SUBJECT, "width": k, "seed": s, "acc": math.nan,
                                                       "params": math.nan} for k in cfg.primary_widths
                                                      for s in sorted(set(curves["seed"]))])])
        recs = delta_rows(curves, SUBJECT, tuple(cfg.primary_widths), MARGIN)
        for r in recs:
            r.update(dataset=dataset, study=study, n_params_encoder=None, n_params_train=None, train_seconds=None)
        return recs

