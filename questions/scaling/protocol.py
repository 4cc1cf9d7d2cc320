"""Open question ``scaling``: does InfoMax scale? (docs/protocol.md 11.1)

Four axes, each a curve per (method, seed):

* ``n_mnist1d``: pretraining set size N on ``mnist1d`` (nested prefixes of one pool) at K = [128], every N
  trained for the same number of optimisation steps [8,192 at batch 128], so data is not confounded with
  steps; the largest N once more at [2x] the steps (``n_mnist1d_2x``: if it moves, that point was
  compute-limited);
* ``n_mnist5k``: N on ``mnist5k`` (nested stratified prefixes of train, [437 .. 3,500]) at K = [64], steps
  equal to [100] epochs at 3,500;
* ``k``: width K on ``mnist5k`` at P3's budget and widths (its encoders are cache hits) plus [256]
  (``full``: [256, 512, 1024]);
* ``k_b2k``: the K axis's widths K >= the batch B again for the InfoMax pair at B = max(B, 2K) and
  lambda_lse = B / B' (equal samples: the same epochs), the sensitivity to the batch correlation's rank
  (at B = 128 it has rank <= 127, so TC >= K^2/127 - K);
* ``steps``: epochs [25 .. 400] on ``mnist5k`` at K = 64;
* ``n_<dataset>`` (declared, run where ``data.root`` has them; ``full``'s default: ``mnist``,
  ``fashion_mnist``, ``cifar10``): N = train / [8, 4, 2, 1] nested stratified prefixes at K = [64],
  steps equal to [30] epochs at the full train. A dataset absent under ``data.root`` becomes ``job_skipped``
  rows with the reason, and the rest runs.

Every encoder is read the same way (one measurement, cached): a linear probe (docs/protocol.md section 6)
fit on the dataset's fixed probe-train labels (all 3,500 train labels on ``mnist5k``; the 4,000 separate
probe draws on ``mnist1d``), its L2 chosen on val, scored once on test: test accuracy and error, the
chance level, the dead fraction and activation scale on probe-train, and seconds of training per sample
seen. The estimates (error halvings per doubling, the reading words) are the view's.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from bench.evaluate.metrics import dead_fraction
from bench.evaluate.probe import linear_probe
from bench.protocol import PREDICTIONS, EncoderSource, Prediction, PredictionConfig, row

PAIR = ("infomax", "infomax_noem")  # the B = 2K sensitivity: the TC floor is the InfoMax family's
FULL_SIZE = ("mnist", "fashion_mnist", "cifar10")  # the full profile's declared full-size N axes
QUICK = ("infomax", "infomax_noem", "random", "raw", "pca", "fastica", "ae", "dae", "rbm", "simclr", "supervised")
FULL_EXTRA = ("vicreg", "barlow_twins", "mae", "supervised_cnn")


@dataclass(frozen=True)
class ScalingConfig(PredictionConfig):
    """``dataset`` and ``width`` are not used: every axis names its own (below)."""

    n_mnist1d: tuple[int, ...] = (1024, 4096, 16384, 65536, 262144)
    width_mnist1d: int = 128
    steps_mnist1d: int = 8192  # optimisation steps at every N (batch 128)
    n_mnist5k: tuple[int, ...] = (437, 875, 1750, 3500)
    width_mnist5k: int = 64
    epochs_at_full_mnist5k: int = 100  # the step budget: this many epochs at the full 3,500
    widths: tuple[int, ...] = ()  # the K axis; empty: P3's widths for the profile, plus 256 (full: 256..1024)
    epochs_axis: tuple[int, ...] = (25, 50, 100, 200, 400)
    largest_rerun: int = 2  # the largest N again at this many times the steps (0: not rerun)
    batch_sensitivity: bool = True  # k_b2k: the InfoMax pair at B = max(B, 2K) where K >= B
    full_size: tuple[str, ...] | None = None  # None: the profile's (quick none, full FULL_SIZE); () none
    full_size_divisors: tuple[int, ...] = (8, 4, 2, 1)  # N = train / d, nested prefixes
    width_full_size: int = 64
    epochs_full_size: int = 30  # the step budget: this many epochs at the full train

    def check(self) -> None:
        super().check()
        for name in ("n_mnist1d", "n_mnist5k", "epochs_axis"):
            v = getattr(self, name)
            if not v or any(x < 1 for x in v) or list(v) != sorted(set(v)):
                raise ValueError(f"{name}: need increasing positive values, got {v}")
        if any(k < 1 for k in self.widths):
            raise ValueError(f"widths: every width must be >= 1, got {self.widths}")
        if self.steps_mnist1d < 1 or self.epochs_at_full_mnist5k < 1 or self.largest_rerun < 0:
            raise ValueError("steps_mnist1d, epochs_at_full_mnist5k: must be >= 1; largest_rerun >= 0")
        d = self.full_size_divisors
        if not d or any(x < 1 for x in d) or list(d) != sorted(set(d), reverse=True):
            raise ValueError(f"full_size_divisors: need decreasing positive values, got {d}")
        if self.width_full_size < 1 or self.epochs_full_size < 1:
            raise ValueError("width_full_size, epochs_full_size: must be >= 1")
        if self.full_size:
            from bench.data import DATASETS

            unknown = [n for n in self.full_size if n not in DATASETS.names()]
            if unknown:
                raise ValueError(f"full_size: unknown dataset {unknown[0]!r} (choices: {', '.join(DATASETS.names())})")


def epochs_for_steps(steps: int, n: int, batch_size: int) -> int:
    """Epochs that give ``steps`` optimisation steps on ``n`` samples (the trainer drops no batch: a
    partial last batch is a step too, so the count is ceil(n / batch_size) steps per epoch)."""
    per_epoch = -(-n // batch_size)
    return max(1, round(steps / per_epoch))


@PREDICTIONS.register()
class Scaling(Prediction):
    """Does InfoMax scale? Error halvings per doubling of N, K and steps, against the baselines."""

    name = "scaling"
    Config = ScalingConfig

    def default_methods(self, available: list[str], profile: str = "quick") -> list[str]:
        wanted = QUICK + (FULL_EXTRA if profile == "full" else ())
        return [m for m in wanted if m in available]

    def _k_axis(self, src: EncoderSource) -> list[int]:
        from predictions.efficiency.protocol import EfficiencyConfig, sweep_widths

        extra = (256, 512, 1024) if src.profile == "full" else (256,)
        widths = self.cfg.widths or (*sweep_widths(EfficiencyConfig(), src.profile), *extra)
        return sorted(set(widths))

    def _full_size(self, src: EncoderSource) -> tuple[str, ...]:
        if self.cfg.full_size is not None:
            return self.cfg.full_size
        return FULL_SIZE if src.profile == "full" else ()

    def run(self, src: EncoderSource) -> list[dict[str, Any]]:
        c, rows = self.cfg, []
        batch = src.batch_size

        def add(axis: str, measured, **cond) -> None:
            for rs in measured:
                rows.extend({**r, "axis": axis, **cond} for r in rs)

        full_5k = c.n_mnist5k[-1]
        for n in c.n_mnist1d:
            e = epochs_for_steps(c.steps_mnist1d, n, batch)
            add("n_mnist1d", self._measure(src, "mnist1d", {"pretrain_n": n}, c.width_mnist1d, e), n=n, epochs=e)
        if c.largest_rerun:
            n = c.n_mnist1d[-1]
            e = epochs_for_steps(c.steps_mnist1d * c.largest_rerun, n, batch)
            add("n_mnist1d_2x", self._measure(src, "mnist1d", {"pretrain_n": n}, c.width_mnist1d, e), n=n, epochs=e)
        for n in c.n_mnist5k:
            e = max(1, round(c.epochs_at_full_mnist5k * full_5k / n))
            data = None if n == full_5k else {"pretrain_n": n}  # the full set: the default's cache entry
            add("n_mnist5k", self._measure(src, "mnist5k", data, c.width_mnist5k, e), n=n, epochs=e)
        ks = self._k_axis(src)
        for k in ks:
            add("k", self._measure(src, "mnist5k", None, k, None), n=full_5k)
        for k in [k for k in ks if k >= batch] if c.batch_sensitivity else []:
            big = max(batch, 2 * k)  # equal samples: the default epochs, so fewer, larger steps
            for method in [m for m in PAIR if m in src.methods]:
                mcfg = {"lambda_lse": batch / big} if method == "infomax" else None
                measured = self._measure(src, "mnist5k", None, k, None, [method], mcfg, big)
                add("k_b2k", measured, n=full_5k, batch_size=big)
        for e in c.epochs_axis:
            add("steps", self._measure(src, "mnist5k", None, c.width_mnist5k, e), n=full_5k, epochs=e)
        for name in self._full_size(src):
            rows += self._full_size_axis(src, name, add)
        return rows

    def _full_size_axis(self, src: EncoderSource, name: str, add) -> list[dict[str, Any]]:
        """N = train / d on a full-size dataset at equal steps; ``job_skipped`` rows where it is absent."""
        from bench.data import DataNotFoundError

        c = self.cfg
        try:
            full = len(src.dataset(name).train.x)
        except DataNotFoundError as e:
            why = f"needs {name} under data.root: {e}".splitlines()[0]
            print(f"scaling: skipping the N axis on {name}: {why}", file=sys.stderr)
            return [
                {"dataset": name, "method": m, "width": c.width_full_size, "seed": s, "axis": f"n_{name}"}
                | {"metric": "job_skipped", "value": 1.0, "note": why}
                for m in src.methods
                for s in src.seeds
            ]
        for d in c.full_size_divisors:
            n = full // d
            e = max(1, round(c.epochs_full_size * full / n))
            data = None if n == full else {"pretrain_n": n}
            add(f"n_{name}", self._measure(src, name, data, c.width_full_size, e), n=n, epochs=e)
        return []

    def _measure(self, src, dataset, data, width, epochs, methods=None, method_cfg=None, batch_size=None):
        return src.measure(
            self.measure_code,
            methods=methods,
            dataset=dataset,
            data=data,
            widths=[width],
            epochs=epochs,
            method_cfg=method_cfg,
            batch_size=batch_size,
        )

    def measure_code(self, enc, src) -> list[dict[str, Any]]:
        """The fixed-label probe of one encoder, and its training diagnostics."""
        ds = src.dataset(enc.spec.dataset)  # probe-train, val and test do not depend on the pretraining N
        probe_train = ds.probe_train
        f = [enc.features(s.x) for s in (probe_train, ds.val, ds.test)]
        pr = linear_probe(f[0], probe_train.y, f[1], ds.val.y, f[2], ds.test.y, ds.n_classes)
        acc = float(pr.test_acc[0])
        pretrain_n = enc.spec.data_cfg.pretrain_n
        n = len(src.dataset(enc.spec.dataset, {"pretrain_n": pretrain_n} if pretrain_n else None).train.x)
        n_seen = enc.spec.epochs * n
        values = {
            "test_acc": acc,
            "test_error": 1.0 - acc,
            "val_acc": float(pr.val_acc[0]),
            "chance": 1.0 / ds.n_classes,
            "dead_fraction": dead_fraction(f[0]),
            "act_scale": float(f[0].abs().max()) if f[0].numel() else float("nan"),
            "seconds_per_sample": enc.train_seconds / n_seen if n_seen else float("nan"),
        }
        return [row(enc, k, v) for k, v in values.items()]
