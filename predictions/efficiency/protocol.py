"""P3 parameter efficiency (docs/protocol.md, P3): "Smaller InfoMax models match larger conventional models".

Width sweep K in ``widths`` [quick and confirm 8..128, full 4..256] for every method and seed on
the run's dataset (width-64 encoders are cache hits from ``pruning`` and ``probe``), except
``supervised_cnn``, whose size variable is its channel width c (stages c x (1, 2, 4, 8)): it is
swept over ``cnn_channels`` at projection width ``cnn_width`` (64; its rows have width 64 and the
condition column ``channels`` = c; c = 8 is the CNN every other prediction trains). For every
encoder:

* ``probe_acc``: the standard linear probe (L2 on val, test once; :func:`bench.evaluate.probe.linear_probe`);
* ``params_deployed``: P, every float the deployed encoder reads (:func:`curves.deployed_floats`);
  ``params_train``: the training-only parameters (heads, decoders, projectors), counted apart;
* ``train_steps``: ``epochs * ceil(N_train / batch)`` for gradient methods (NaN with the reason
  for methods fitted once: PCA, FastICA, GMM, and for ``raw``/``random``, never trained).

Points a method cannot have are n/a rows (``probe_acc`` NaN with the reason): ``pca`` and
``fastica`` stop at K = D; ``raw`` has one width (K = D, P = 0). Then, from the probe table alone
(:func:`curves.delta_rows`, every curve read through its per-seed isotonic fit), per baseline B and
seed: ``gap_2p`` at each K, the primary ``delta_2p`` = ``Delta_B + delta`` (width 0: an aggregate
over ``primary_widths``), B's gain per doubling ``g_2p`` and the descriptive ``multiplier``.

On ``mnist5k`` (where the CNN's channel sweep is declared), a sweep whose P (counted on the
untrained models, before anything trains) does not bracket ``2 P_S(K)`` for every K of
``primary_widths`` is refused by the config's ``check()`` (one line, exit 2). On other datasets the
sweep is exploratory: a K whose ``2 P_S(K)`` lies outside it is n/a with the reason.

Secondary (``secondary=true``, ``study=unseen_classes``): every method, the subject included, is
trained on ``<dataset>[0-4]`` (labels for label-trained models) and probed on ``<dataset>[5-9]`` at
every width; ``source`` = the training dataset. The in-domain subject (trained on ``[5-9]``) is a
reference only (``study=in_domain_reference``: its probe rows, no derived rows).

In ``confirm`` the run's methods are the subject, its PA members and ``raw`` (the untrained
reference of the 90/95/99% table): the other baselines' curves are exploratory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bench.data import base_name, load_dataset
from bench.evaluate.probe import linear_probe
from bench.protocol import PREDICTIONS, SUBJECT, EncoderSource, Prediction, PredictionConfig, row
from predictions.efficiency.curves import CNN, PA, curve_points, delta_rows, deployed_floats

QUICK_WIDTHS = (8, 16, 32, 64, 128)
FULL_WIDTHS = (4, 8, 16, 32, 64, 128, 256)
MARGIN = 0.01  # delta: one point of accuracy, declared in advance (docs/protocol.md, P3)
CAPPED_AT_D = ("pca", "fastica")  # at most D components
STUDIES = ("main", "unseen_classes", "in_domain_reference")
CNN_SWEEP_DATASETS = ("mnist5k",)  # where the CNN's channel sweep is declared (and must bracket 2 P_S(K))


@dataclass(frozen=True)
class EfficiencyConfig(PredictionConfig):
    """``width`` is not used (the sweep is ``widths``); ``widths`` empty = the profile's default."""

    widths: tuple[int, ...] = ()
    primary_widths: tuple[int, ...] = (16, 32, 64)  # the Ks the primary averages over
    cnn_channels: tuple[int, ...] = (4, 5, 6, 8, 10, 12)  # supervised_cnn's channel widths c
    cnn_width: int = 64  # supervised_cnn's projection width in the sweep
    secondary: bool = True
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
        if not self.cnn_channels or min(self.cnn_channels) < 2 or len(set(self.cnn_channels)) < len(self.cnn_channels):
            raise ValueError(f"cnn_channels: need distinct channel widths >= 2, got {self.cnn_channels}")
        if self.cnn_width < 1:
            raise ValueError(f"cnn_width: must be >= 1, got {self.cnn_width}")
        if base_name(self.dataset) in CNN_SWEEP_DATASETS:
            from bench.train.trainer import data_info

            why = cnn_sweep_error(
                data_info(load_dataset(self.dataset)), self.primary_widths, self.cnn_channels, self.cnn_width
            )
            if why:
                raise ValueError(why)


def sweep_widths(cfg: EfficiencyConfig, profile: str) -> tuple[int, ...]:
    """The widths of the sweep: ``cfg.widths``, else the profile's default (``confirm``: quick's)."""
    return tuple(sorted(cfg.widths)) if cfg.widths else FULL_WIDTHS if profile == "full" else QUICK_WIDTHS


def counted_params(method: str, info, width: int, **cfg: Any) -> int:
    """P of an untrained ``method`` (default config, ``cfg`` fields replaced) at ``width``: no training."""
    from bench.catalog import load_all
    from bench.train.methods import METHODS

    load_all()  # the subject and the baselines registered (a config may be checked before the run loads them)
    cls = METHODS.get(method)
    return deployed_floats(cls(cls.Config(**cfg), info, width))


def cnn_sweep_error(info, primary_widths, channels, cnn_width: int) -> str:
    """Why the CNN's channel sweep cannot be read at ``2 P_S(K)`` for every primary K ("" if it can).

    P_S(K) and the CNN's P at each c are counted on untrained models (the hand counts' formulas are
    checked against the same counts in the tests): the sweep must bracket every ``2 P_S(K)``, since
    the isotonic reading never extrapolates."""
    p_cnn = [counted_params(CNN, info, cnn_width, channels=c) for c in channels]
    lo, hi = min(p_cnn), max(p_cnn)
    need = {k: 2 * counted_params(SUBJECT, info, k) for k in primary_widths}
    out = {k: p for k, p in need.items() if not lo <= p <= hi}
    if not out:
        return ""
    return (
        f"cnn_channels: the CNN's P over c in {tuple(channels)} (projection {cnn_width}) spans [{lo}, {hi}], which "
        f"does not bracket 2 P_S(K) = {', '.join(f'{p} (K={k})' for k, p in out.items())}; choose channel widths "
        f"that do (supervised_cnn.channels is c)"
    )


@PREDICTIONS.register()
class Efficiency(Prediction):
    """P3 parameter efficiency: probe accuracy against deployed parameters over a width sweep."""

    name = "efficiency"
    Config = EfficiencyConfig

    def default_methods(self, available: list[str], profile: str = "quick") -> list[str]:
        """``confirm``: the subject, its PA members and ``raw`` (untrained); otherwise every method."""
        if profile == "confirm":
            return [m for m in available if m in (SUBJECT, *PA, "raw")]
        return super().default_methods(available, profile)

    def run(self, src: EncoderSource) -> list[dict[str, Any]]:
        cfg: EfficiencyConfig = self.cfg  # type: ignore[assignment]
        widths = sweep_widths(cfg, src.profile)
        rows = self._study(src, None, None, list(src.methods), widths, "main")
        if cfg.secondary:
            rows += self._secondary(src, widths)
        return rows

    def _secondary(self, src: EncoderSource, widths: tuple[int, ...]) -> list[dict[str, Any]]:
        cfg: EfficiencyConfig = self.cfg  # type: ignore[assignment]
        target, source = f"{cfg.dataset}{cfg.target_classes}", f"{cfg.dataset}{cfg.source_classes}"
        try:
            src.dataset(target)
            src.dataset(source)
        except Exception as e:  # noqa: BLE001 - a dataset without class subsets: no secondary
            return [
                {
                    "dataset": target,
                    "method": SUBJECT,
                    "width": 0,
                    "seed": s,
                    "metric": "secondary_skipped",
                    "value": math.nan,
                    "note": str(e),
                    "study": "unseen_classes",
                }
                for s in src.seeds
            ]
        rows = self._study(src, target, source, list(src.methods), widths, "unseen_classes")
        if SUBJECT in src.methods:  # the in-domain subject: a reference, never a compared curve
            rows += self._study(src, target, target, [SUBJECT], widths, "in_domain_reference")
        return rows

    def _study(
        self,
        src: EncoderSource,
        target: str | None,
        source: str | None,
        methods: list[str],
        widths: tuple[int, ...],
        study: str,
    ) -> list[dict[str, Any]]:
        """Train every (method, point, seed) on ``source`` (the run's dataset when None), probe on
        ``target`` (the same when None), then derive the primary's rows (not for a reference study)."""
        cfg: EfficiencyConfig = self.cfg  # type: ignore[assignment]
        ds = src.dataset(target)
        d = ds.train.x.shape[1]
        rows: list[dict[str, Any]] = []
        for m in methods:
            if m in CAPPED_AT_D:
                rows += [
                    {
                        "dataset": source or ds.name,
                        "method": m,
                        "width": k,
                        "seed": s,
                        "metric": "probe_acc",
                        "value": math.nan,
                        "note": f"{m} has at most D = {d} components (K = {k} > D)",
                    }
                    for k in widths
                    if k > d
                    for s in src.seeds
                ]
        capped = [m for m in methods if m in CAPPED_AT_D]
        swept = [m for m in methods if m not in CAPPED_AT_D and m != CNN]
        for ms, ks in ((capped, [k for k in widths if k <= d]), (swept, list(widths))):
            if ms and ks:
                for measured in src.measure(self.measure_encoder, ds.name, methods=ms, widths=ks, dataset=source):
                    rows += measured
        if CNN in methods:
            for c in cfg.cnn_channels:
                for measured in src.measure(
                    self.measure_encoder,
                    ds.name,
                    methods=[CNN],
                    widths=[cfg.cnn_width],
                    dataset=source,
                    method_cfg={"channels": c},
                ):
                    rows += measured
        for r in rows:
            r["study"] = study
            if target is not None:
                r["source"], r["dataset"] = r["dataset"], ds.name
        if study != "in_domain_reference":
            rows += self._derived(pd.DataFrame(rows), ds.name, study)
        return rows

    def measure_encoder(self, enc, src, probed_on: str) -> list[dict[str, Any]]:
        """Probe accuracy on ``probed_on``, P, training-only parameters and training steps of one
        encoder; the CNN's rows carry its channel width c (column ``channels``)."""
        ds = src.dataset(probed_on)
        n_train = int(src.dataset(enc.spec.dataset).train.x.shape[0])
        f = [enc.features(s.x) for s in (ds.train, ds.val, ds.test)]
        pr = linear_probe(f[0], ds.train.y, f[1], ds.val.y, f[2], ds.test.y, ds.n_classes)
        m = enc.method
        cond = {"channels": enc.spec.method_cfg.channels} if enc.spec.method == CNN else {}
        out = [
            row(enc, "probe_acc", float(pr.test_acc[0]), **cond),
            row(enc, "probe_val_acc", float(pr.val_acc[0]), **cond),
            row(enc, "params_deployed", deployed_floats(m), **cond),
            row(enc, "params_train", m.n_params_train(), **cond),
        ]
        if m.kind == "gradient":
            out.append(row(enc, "train_steps", enc.spec.epochs * math.ceil(n_train / enc.spec.batch_size), **cond))
        else:
            why = "fitted once (not gradient steps)" if m.kind == "fit" else "not trained"
            out.append(row(enc, "train_steps", math.nan, note=why, **cond))
        return out

    def _derived(self, rows: pd.DataFrame, dataset: str, study: str) -> list[dict[str, Any]]:
        """The primary, g_B and the multipliers, from the probe table alone (:func:`curves.delta_rows`)."""
        cfg: EfficiencyConfig = self.cfg  # type: ignore[assignment]
        if rows.empty or "metric" not in rows:
            return []
        curves = curve_points(rows)
        if curves.empty:
            return []
        if SUBJECT not in set(curves["method"]):
            curves = pd.concat(
                [
                    curves,
                    pd.DataFrame(
                        [
                            {"method": SUBJECT, "width": k, "seed": s, "acc": math.nan, "params": math.nan}
                            for k in cfg.primary_widths
                            for s in sorted(set(curves["seed"]))
                        ]
                    ),
                ]
            )
        recs = delta_rows(curves, SUBJECT, tuple(cfg.primary_widths), MARGIN)
        for r in recs:
            r.update(dataset=dataset, study=study, n_params_encoder=None, n_params_train=None, train_seconds=None)
        return recs
