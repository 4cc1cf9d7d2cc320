"""Prediction 1, prunability, the protocol: "InfoMax-pretrained models can't be pruned" (docs/protocol.md §8 P1).

For every encoder (default: every registered method but ``raw``, width [64], on [mnist5k]):
structured pruning by each criterion of :mod:`predictions.pruning.criteria` with probe modes
``refit`` and ``frozen`` and the ``rank`` curve (:mod:`predictions.pruning.curves`); for a
method with its own trained classifier also mode ``head`` (its hidden units pruned under its
own head, no refit: the end-to-end setting behind the "50-90% prunable" folklore); unstructured
global magnitude pruning of the deployed encoder's Linear/Conv weights; redundancy measures the
subject does not optimise (pairwise MI, nonlinear predictability, max weight cosine, dead
fraction) and the manipulation checks (Gaussian TC, mean |corr|, effective rank), on test.
What the report makes of them is :mod:`predictions.pruning.view`.

Tidy rows (condition columns ``criterion``, ``fraction``, ``probe_mode``, ``sparsity``):
``acc`` and ``retained`` per (criterion, mode, fraction); ``aurc``, ``aurc_val``,
``prunable_fraction`` per (criterion, mode); ``aurc_best``, ``prunable_fraction_best``
(criterion = the val-chosen one; NaN with a note when undefined); ``probe_acc``, ``probe_l2``,
``chance``, ``head_acc``; ``unstructured_acc`` and ``compression_ratio`` per sparsity; the
diagnostics; ``skipped`` (value 1, with a note) for a criterion or a mode that does not apply;
``protocol_seconds``. The test correlation matrix of the lowest seed of ``heatmap_methods`` goes
to the matrices table (``corr``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import nn

from bench.evaluate import metrics
from bench.protocol import PREDICTIONS, SUBJECT, EncoderSource, Prediction, PredictionConfig, row
from predictions.pruning import curves


@dataclass(frozen=True)
class PruningConfig(PredictionConfig):
    fractions: tuple[float, ...] = curves.FRACTIONS
    criteria: tuple[str, ...] = curves.CRITERIA
    random_draws: int = 5
    sparsities: tuple[float, ...] = curves.SPARSITIES
    tolerance: float = 0.01  # prunable fraction: accuracy loss allowed (1 point)
    aurc_low: float = 0.1
    aurc_high: float = 0.9
    mi_bins: int = 20
    knn_k: int = 10  # nonlinear predictability
    heatmap_methods: tuple[str, ...] = (SUBJECT, "sae", "pca")

    def check(self) -> None:
        super().check()
        if self.width < 2:
            raise ValueError(f"width: must be >= 2, got {self.width}")
        if 0.0 not in self.fractions or any(not 0 <= p < 1 for p in self.fractions):
            raise ValueError(f"fractions: need values in [0, 1) including 0, got {list(self.fractions)}")
        bad = [c for c in self.criteria if c not in curves.CRITERIA]
        if bad or not self.criteria:
            raise ValueError(f"criteria: unknown {bad} (choices: {', '.join(curves.CRITERIA)})")
        if self.random_draws < 1:
            raise ValueError(f"random_draws: must be >= 1, got {self.random_draws}")
        if any(not 0 <= s < 1 for s in self.sparsities):
            raise ValueError(f"sparsities: need values in [0, 1), got {list(self.sparsities)}")
        if not 0 < self.tolerance < 1:
            raise ValueError(f"tolerance: must be in (0, 1), got {self.tolerance}")
        if not 0 <= self.aurc_low < self.aurc_high <= 1:
            raise ValueError(f"aurc_low, aurc_high: need 0 <= low < high <= 1, got {self.aurc_low}, {self.aurc_high}")
        if self.mi_bins < 2:
            raise ValueError(f"mi_bins: must be >= 2, got {self.mi_bins}")
        if self.knn_k < 1:
            raise ValueError(f"knn_k: must be >= 1, got {self.knn_k}")


def _head(method, features: torch.Tensor, n_classes: int) -> nn.Module | None:
    """The method's own trained classifier over its (N, K) features (``method.classifier()``), if
    it has one and it maps the features to the dataset's classes."""
    head = method.classifier()
    if head is None:
        return None
    head.eval()
    with torch.no_grad():
        out = head(features[:2])
    return head if tuple(out.shape) == (min(2, len(features)), n_classes) else None


@PREDICTIONS.register()
class Pruning(Prediction):
    """P1: can InfoMax features be pruned? Structured, unstructured and end-to-end curves."""

    name = "pruning"
    Config = PruningConfig
    needs = frozenset({"labels"})
    exclude_methods = ("raw",)
    fast = True  # False: the reference path of the probes' warm starts (curves.structured_pruning)

    # ------------------------------------------------------------------------------ run
    def run(self, src: EncoderSource) -> list[dict]:
        rows = []
        for measured in src.measure(self.measure_encoder, min(src.seeds)):
            rows += measured
        return rows

    def measure_encoder(self, enc, src, first_seed: int) -> list[dict]:
        """Every row of one encoder (run where the encoder is; cached by the runner)."""
        t0 = time.perf_counter()
        rows = self._encoder_rows(src, enc, src.dataset(enc.spec.dataset), enc.spec.seed == first_seed)
        rows.append(row(enc, "protocol_seconds", time.perf_counter() - t0))
        return rows

    def _encoder_rows(self, src, enc, ds, first_seed: bool) -> list[dict]:
        c = self.cfg
        chance = 1.0 / ds.n_classes
        method, seed = enc.method, enc.spec.seed
        f_tr, f_va, f_te = (enc.features(s.x) for s in (ds.train, ds.val, ds.test))
        w = method.encoder_weight()
        w = None if w is None else w.detach()
        rows = []

        def add(metric, value, **cond):
            rows.append(row(enc, metric, value, **cond))

        add("chance", chance)
        cv = curves.structured_pruning(
            f_tr,
            ds.train.y,
            f_va,
            ds.val.y,
            f_te,
            ds.test.y,
            ds.n_classes,
            weight=w,
            fractions=c.fractions,
            criteria=c.criteria,
            random_draws=c.random_draws,
            seed=seed,
            fast=self.fast,
        )
        add("probe_acc", cv.test_acc)
        add("probe_l2", cv.l2)
        self._curve_rows(add, cv, chance, ("refit", "frozen"))
        head = _head(method, f_tr, ds.n_classes)
        if head is not None:
            hc = curves.head_pruning(
                head,
                f_tr,
                f_va,
                ds.val.y,
                f_te,
                ds.test.y,
                weight=w,
                fractions=c.fractions,
                criteria=c.criteria,
                random_draws=c.random_draws,
                seed=seed,
            )
            add("head_acc", hc.test_acc)
            self._curve_rows(add, hc, chance, ("head",))
        self._unstructured_rows(add, method, ds, cv, (f_tr, f_va, f_te))
        for name, value in self._diagnostics(f_tr, f_te, w).items():
            why = "no single-layer encoder weight" if name == "max_weight_cosine" else "fewer than 2 live features"
            add(name, value, **({"note": why} if math.isnan(value) else {}))
        if w is None:
            add("skipped", 1.0, criterion="max_weight_cosine", note="no single-layer encoder weight")
        if first_seed and enc.spec.method in c.heatmap_methods:
            src.matrix(enc, "corr", metrics.correlation(f_te).cpu().numpy())
        return rows

    def _curve_rows(self, add, cv: curves.Curves, chance: float, modes: tuple[str, ...]) -> None:
        c = self.cfg
        for crit, why in cv.skipped.items():
            for mode in modes:
                add("skipped", 1.0, criterion=crit, probe_mode=mode, note=why)
                add("aurc", math.nan, criterion=crit, probe_mode=mode, note=why)
        s = curves.summarize(cv, chance, c.tolerance, c.aurc_low, c.aurc_high)
        why = f"unpruned accuracy within {c.tolerance} of chance: r(p) undefined"
        for (crit, mode), acc in cv.test.items():
            for p, a, r in zip(cv.fractions, acc, s.retained[(crit, mode)], strict=True):
                add("acc", a, criterion=crit, probe_mode=mode, fraction=p)
                add("retained", r, criterion=crit, probe_mode=mode, fraction=p)
            for metric, v in (("aurc", s.aurc), ("aurc_val", s.aurc_val), ("prunable_fraction", s.prunable)):
                value = v[(crit, mode)]
                add(metric, value, criterion=crit, probe_mode=mode, **({"note": why} if math.isnan(value) else {}))
        for mode in sorted({m for _, m in cv.test} - set(s.best)):  # sorted: a set's order changes per process
            add("skipped", 1.0, criterion="best", probe_mode=mode, note=why)
            add("aurc_best", math.nan, probe_mode=mode, note=why)
            add("prunable_fraction_best", math.nan, probe_mode=mode, note=why)
        for mode, best in s.best.items():
            add("aurc_best", s.aurc[(best, mode)], criterion=best, probe_mode=mode)
            add("prunable_fraction_best", s.prunable[(best, mode)], criterion=best, probe_mode=mode)

    def _unstructured_rows(self, add, method, ds, cv: curves.Curves, features) -> None:
        if not curves.prunable_weights(method.deployed_modules()):
            add(
                "skipped",
                1.0,
                criterion="unstructured",
                probe_mode="refit",
                note="no Linear/Conv weight in the deployed modules",
            )
            return
        un = curves.unstructured_pruning(
            method,
            [(s.x, s.y) for s in (ds.train, ds.val, ds.test)],
            ds.n_classes,
            self.cfg.sparsities,
            init=cv.start if self.fast else cv.probe,
            unpruned=features,
        )
        for s, a, cr in zip(un.sparsities, un.test, un.compression, strict=True):
            add("unstructured_acc", a, sparsity=s, probe_mode="refit")
            add("compression_ratio", cr, sparsity=s)

    def _diagnostics(self, f_train: torch.Tensor, f: torch.Tensor, w: torch.Tensor | None) -> dict[str, float]:
        return {
            "gaussian_tc": metrics.gaussian_tc(f),
            "pairwise_mi": metrics.pairwise_mi_binned(f, bins=self.cfg.mi_bins),
            "nonlinear_predictability": metrics.nonlinear_predictability(f_train, f, k=self.cfg.knn_k),
            "mean_abs_corr": metrics.mean_abs_offdiag_corr(f),
            "max_weight_cosine": math.nan if w is None else metrics.max_weight_cosine(w),
            "effective_rank": metrics.effective_rank(f, on="corr"),
            "effective_rank_cov": metrics.effective_rank(f, on="cov"),
            "dead_fraction": metrics.dead_fraction(f),
        }
