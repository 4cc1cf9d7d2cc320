"""The convergence flag of a gradient-trained job (docs/protocol.md, the convergence flag).

A job is **under-trained** when the section 6 probe's val score on its training dataset rose by
more than :data:`THRESHOLD` over the last half of its budget. The trainer measures the score
twice, at half the budget (after ``epochs // 2`` epochs; at initialisation when ``epochs == 1``)
and at the end (:func:`bench.train.trainer.fit_encoder`), and stores

* ``meta["convergence"] = {"metric", "half", "end", "threshold", "half_epoch", "seconds"}``;
* ``meta["under_trained"] = end - half > threshold`` (None when either score is not finite).

The score: on a labelled dataset (``dsprites``: label = shape, its ``y``), the val accuracy of the
linear probe (standardised with train statistics, multinomial logistic regression fit on train,
L2 chosen on val from :data:`bench.evaluate.probe.L2_GRID`: the best val accuracy over the grid), metric
``probe_val_acc``; on ``ica`` (factors, no labels) the val MCC of :func:`bench.evaluate.factors.mcc`
(Pearson, matching learnt on train) on the pre-activations z = Wx + b of a single-layer encoder
(the features otherwise) clipped to their train range, as the interpretability prediction reads
it, metric ``val_mcc``. Both thresholds are 0.01 (1 point of accuracy; 0.01 of MCC).

Cost: two scores per job (features of train and val, and the probe's six L-BFGS fits). The probe
is fit on at most :data:`MAX_PROBE_TRAIN` train rows (a fixed subset, the same at half and end):
every embedded dataset at its default size (``dsprites``: 14000 train rows) is probed whole,
exactly as section 6 does; the full-size torchvision sets (42500 to 51000 train rows) are
subsampled, which cuts a probe there from ~4 s to ~1 s on one CPU thread.

Measuring must not change the trained weights: :class:`Tracker` runs under
``torch.random.fork_rng`` (the global RNG streams that training draws from are restored), puts the
method's every module back in the train / eval mode it found it in, and reads features under ``no_grad``
(``tests/test_convergence.py`` checks that the weights are bit-identical with and without it).
Non-gradient methods (``pca``, ``fastica``, ``gmm``, ``raw``, ``random``) get no flag (None).
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from bench.evaluate import factors, probe

if TYPE_CHECKING:
    from bench.data import Dataset
    from bench.train.methods import Method

THRESHOLD = 0.01  # probe val accuracy (1 point) and val MCC alike
MAX_PROBE_TRAIN = 15000  # train rows the probe is fit on (a fixed subset beyond that)


def metric_name(ds: Dataset) -> str | None:
    """``probe_val_acc`` on labelled data, ``val_mcc`` on factors without labels, else None."""
    if ds.n_classes is not None and ds.train.y is not None:
        return "probe_val_acc"
    if ds.train.factors is not None:
        return "val_mcc"
    return None


def probe_val_acc(
    f_train: torch.Tensor, y_train: torch.Tensor, f_val: torch.Tensor, y_val: torch.Tensor, n_classes: int
) -> float:
    """Val accuracy of the section 6 probe: fit on train at each L2 of the grid, the best on val."""
    f_train, f_val = probe.standardize(f_train.float(), f_val.float())
    w, b, _ = probe.probe_path(f_train, y_train, f_val, y_val, n_classes)
    return float(probe.accuracy(f_val, y_val, w, b)[0])


def val_mcc(z_train: torch.Tensor, s_train: torch.Tensor, z_val: torch.Tensor, s_val: torch.Tensor) -> float:
    """Val MCC (Pearson) of codes clipped to their train range, units matched to sources on train."""

    def np64(t: torch.Tensor) -> np.ndarray:
        return t.detach().cpu().double().numpy()

    c_train, c_val = factors.clip_to_train(np64(z_train), np64(z_val))
    value, _ = factors.mcc(c_train, np64(s_train), c_val, np64(s_val))  # a constant unit correlates 0
    return float(value)


@torch.no_grad()
def _codes(method: Method, x: torch.Tensor) -> torch.Tensor:
    """Features (the caller has put the method in eval mode: encode_all would leave it there)."""
    return torch.cat([method.encode(x[i : i + 8192]) for i in range(0, len(x), 8192)])


@torch.no_grad()
def _pre(method: Method, x: torch.Tensor) -> torch.Tensor:
    """z = Wx + b of a single-layer encoder (what each unit reads, as P4 reads it), else the features."""
    if method.encoder_weight() is None:
        return _codes(method, x)
    return torch.cat([method.encoder(x[i : i + 8192]) for i in range(0, len(x), 8192)])


def score(method: Method, ds: Dataset, metric: str) -> float:
    """The job's val score on its training dataset ``ds`` (NaN when its codes are not finite)."""
    if metric == "val_mcc":
        z_tr, z_va = _pre(method, ds.train.x), _pre(method, ds.val.x)
        if not (torch.isfinite(z_tr).all() and torch.isfinite(z_va).all()):
            return math.nan
        return val_mcc(z_tr, ds.train.factors, z_va, ds.val.factors)
    rows = probe_rows(len(ds.train.x), MAX_PROBE_TRAIN)
    if rows is not None:
        rows = rows.to(ds.train.x.device)
    x_tr, y_tr = (ds.train.x, ds.train.y) if rows is None else (ds.train.x[rows], ds.train.y[rows])
    f_tr, f_va = _codes(method, x_tr), _codes(method, ds.val.x)
    if not (torch.isfinite(f_tr).all() and torch.isfinite(f_va).all()):
        return math.nan
    return probe_val_acc(f_tr, y_tr, f_va, ds.val.y, ds.n_classes)


def probe_rows(n: int, limit: int) -> torch.Tensor | None:
    """The train rows the probe is fit on: None (all) up to ``limit``, else a fixed random subset
    of ``limit`` rows (sorted; its own generator, so no RNG stream of training is touched)."""
    if n <= limit:
        return None
    return torch.randperm(n, generator=torch.Generator().manual_seed(0))[:limit].sort().values


class Tracker:
    """Scores one job at half its budget and at the end, without touching its training."""

    def __init__(self, method: Method, ds: Dataset, epochs: int):
        self.method, self.ds = method, ds
        self.metric = metric_name(ds)
        self.half_epoch = epochs // 2  # epochs completed when "half" is read (0: at initialisation)
        self.scores: dict[str, float] = {}
        self.seconds = 0.0

    def record(self, when: str) -> None:
        """Score the method now as ``when`` ("half" | "end"); RNG, grad and train mode untouched."""
        if self.metric is None:
            return
        t0 = time.perf_counter()
        m = self.method
        modes = [(mod, mod.training) for mod in m.modules()]  # each module's own mode (a target net may differ)
        dev = next(iter(m.parameters()), torch.empty(0)).device
        try:
            with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
                m.eval()
                self.scores[when] = score(m, self.ds, self.metric)
        finally:
            for mod, mode in modes:
                mod.training = mode
            self.seconds += time.perf_counter() - t0

    def on_epoch(self, epoch: int) -> None:
        """The trainer's per-epoch hook: score after ``half_epoch`` epochs."""
        if epoch + 1 == self.half_epoch:
            self.record("half")

    def meta(self) -> dict[str, Any]:
        """``{"under_trained": bool | None, "convergence": {...} | None}`` for the job's meta."""
        if self.metric is None or set(self.scores) != {"half", "end"}:
            return {"under_trained": None, "convergence": None}
        half, end = self.scores["half"], self.scores["end"]
        flag = bool(end - half > THRESHOLD) if math.isfinite(half) and math.isfinite(end) else None
        return {
            "under_trained": flag,
            "convergence": {
                "metric": self.metric,
                "half": half,
                "end": end,
                "threshold": THRESHOLD,
                "half_epoch": self.half_epoch,
                "seconds": self.seconds,
            },
        }
