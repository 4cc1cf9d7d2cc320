"""Open question ``convergence``: does EM structure matter at scale? (docs/protocol.md 11.3)

Axes, each asked for exactly as the ``scaling`` question asks (its config's defaults and
:func:`questions.scaling.protocol.epochs_for_steps`), so the same (method, data, width, epochs, seed) is
the same encoder and a run after ``scaling`` trains only what scaling does not:

* ``n_mnist1d``: pretraining N on ``mnist1d`` [1k .. 256k] at K = [128], [8,192] steps at every N;
* ``k``: width K on ``mnist5k`` at the profile's budget, [16 .. 256] (quick; the protocol's 512 and
  1,024 in ``full``);
* ``steps``: epochs [25 .. 400] on ``mnist5k`` at K = 64 (infomax and infomax_noem only);
* ``ica``: sources = K in [8, 32, 64] on ``ica`` (DataConfig ``sources``; width = sources; the EM pair);
* ``lambda_lse``: infomax with lambda_lse in [.1, 10] on ``mnist5k`` at K = 64 (and 1,024 in ``full``),
  beside lambda_lse = 1 of the ``k`` axis: the sensitivity of r_EM and Delta_EM to the EM weight; where 2K
  exceeds the run's batch B (full's 1,024) again at B' = 2K with lambda_lse scaled by B / B' (equal samples;
  a ``batch_size`` column).

Per encoder, one cached measurement (:meth:`Convergence.measure_code`): on labelled data the fixed-label
probe of ``scaling`` (test accuracy), and for infomax / infomax_noem kappa at 10 labels per class (P2's
few-shot probe on the same dataset: ``predictions.transfer`` ``draw_subsets`` / ``budget_probe`` /
``kappa``, 5 draws); on ``ica`` the MCC (Pearson, pre-activations clipped to the train range, units
matched to sources on train, scored on test); dead fraction and activation scale; for the EM pair each
loss term's gradient norm and r_EM (:func:`bench.evaluate.diagnostics.gradient_norms`) at the trained
weights on ONE fixed minibatch: the first ``batch_size`` rows of the job's own training split (the
nested mnist1d pool makes it the same 128 inputs at every N); the same at the job's own initial weights
(``*_init``: :func:`bench.train.trainer.seeded_build` with its seed), and ``stationarity``: at a stationary
point of the loss grad LSE = -grad (H + TC), so the trained r_EM tends to 1 there whatever the dilution.

Divergence: one ``diverged`` row per requested (EM-pair method, seed) of every cell: 1 when no code came
back (the runner's ``job_failed`` row gives the reason; a ``measure_failed`` row would also leave none),
else 0.

Several encoders at once (b, c): at every point of ``n_mnist1d`` and ``k``, :meth:`Convergence.run` loads
the encoders of the similarity methods through ``src.encoders`` (cache hits: the measurements trained
them) and computes, for every cross-seed pair of codes (:func:`bench.evaluate.pairwise.cross_seed_pairs`),
the debiased CKA on standardised units (``cka``) and, for the pairs within a method and those with
infomax, the unit-matched |corr| (``matched_corr``: a dead unit scores 0; ``matched_corr_live``: pairs with
a dead unit left out), plus one row-shuffle null per method pair. The inputs are fixed and shared by every
seed (``confirm`` gives each seed its own split): the first [2,000] test inputs of split seed 0 score
(``mnist5k`` has 750), the first [2,000] probe-train inputs of split seed 0 fit the unit matching.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from bench.evaluate import diagnostics, factors, pairwise, similarity
from bench.evaluate.metrics import dead_fraction
from bench.evaluate.probe import linear_probe
from bench.protocol import PREDICTIONS, EncoderSource, Prediction, PredictionConfig, row
from bench.train.trainer import seeded_build
from predictions.transfer import pairs as transfer_pairs
from predictions.transfer.probing import budget_probe
from questions.scaling.protocol import ScalingConfig, epochs_for_steps

EM_PAIR = ("infomax", "infomax_noem")
METHODS = ("infomax", "infomax_noem", "pca", "fastica", "ae", "simclr", "supervised")  # (c)'s seven
_SCALING = ScalingConfig()  # the shared axes: the same requests give the same encoders
QUICK_WIDTHS = (16, 32, 64, 128, 256)
FULL_WIDTHS = (16, 32, 64, 128, 256, 512, 1024)
KAPPA_BUDGET, KAPPA_DRAWS = "10", 5


@dataclass(frozen=True)
class ConvergenceConfig(PredictionConfig):
    """``dataset`` and ``width`` are not used: every axis names its own (the module docstring)."""

    n_mnist1d: tuple[int, ...] = _SCALING.n_mnist1d
    width_mnist1d: int = _SCALING.width_mnist1d
    steps_mnist1d: int = _SCALING.steps_mnist1d
    widths: tuple[int, ...] = ()  # the K axis; empty: QUICK_WIDTHS, or FULL_WIDTHS in full
    width_mnist5k: int = _SCALING.width_mnist5k
    epochs_axis: tuple[int, ...] = _SCALING.epochs_axis
    ica_sources: tuple[int, ...] = (8, 32, 64)
    lambda_lse: tuple[float, ...] = (0.1, 10.0)  # beside the default 1 (the k axis)
    lambda_widths: tuple[int, ...] = ()  # empty: (64,), and (64, 1024) in full
    n_similarity: int = 2000  # fixed inputs of (b) and (c)

    def check(self) -> None:
        super().check()
        for name in ("n_mnist1d", "epochs_axis", "ica_sources"):
            v = getattr(self, name)
            if not v or any(x < 1 for x in v) or list(v) != sorted(set(v)):
                raise ValueError(f"{name}: need increasing positive values, got {v}")
        if any(k < 1 for k in (*self.widths, *self.lambda_widths)):
            raise ValueError("widths, lambda_widths: every width must be >= 1")
        if any(not lam > 0 for lam in self.lambda_lse):
            raise ValueError(f"lambda_lse: need values > 0, got {self.lambda_lse}")
        if self.steps_mnist1d < 1 or self.n_similarity < 4:
            raise ValueError("steps_mnist1d: must be >= 1; n_similarity: must be >= 4")


@PREDICTIONS.register()
class Convergence(Prediction):
    """Does EM structure matter at scale? Delta_EM and r_EM along N, K and epochs; does everything converge?"""

    name = "convergence"
    Config = ConvergenceConfig
    needs = frozenset()  # every axis loads its own dataset (ica has no labels)

    def default_methods(self, available: list[str], profile: str = "quick") -> list[str]:
        return [m for m in METHODS if m in available]

    def _widths(self, src: EncoderSource) -> list[int]:
        return sorted(set(self.cfg.widths or (FULL_WIDTHS if src.profile == "full" else QUICK_WIDTHS)))

    def run(self, src: EncoderSource) -> list[dict[str, Any]]:
        c, rows = self.cfg, []
        em = [m for m in EM_PAIR if m in src.methods]
        full_5k = _SCALING.n_mnist5k[-1]
        scale_points = []  # (dataset, data, width, epochs, condition columns) of (b) and (c)
        for n in c.n_mnist1d:
            e = epochs_for_steps(c.steps_mnist1d, n, src.batch_size)
            cond = {"axis": "n_mnist1d", "n": n, "epochs": e}
            scale_points.append(("mnist1d", {"pretrain_n": n}, c.width_mnist1d, e, cond))
        for k in self._widths(src):
            scale_points.append(("mnist5k", None, k, None, {"axis": "k", "n": full_5k}))
        for dataset, data, width, epochs, cond in scale_points:
            rows += self._cell(src, src.methods, dataset, data, width, epochs, cond)
        for e in c.epochs_axis:
            cond = {"axis": "steps", "n": full_5k, "epochs": e}
            rows += self._cell(src, em, "mnist5k", None, c.width_mnist5k, e, cond)
        for s in c.ica_sources:
            rows += self._cell(src, em, "ica", {"sources": s}, s, None, {"axis": "ica"})
        if "infomax" in src.methods:
            lam_widths = c.lambda_widths or ((64, 1024) if src.profile == "full" else (64,))
            for k in lam_widths:
                for lam in c.lambda_lse:
                    cond = {"axis": "lambda_lse", "lambda_lse": lam, "n": full_5k}
                    rows += self._cell(src, ["infomax"], "mnist5k", None, k, None, cond, {"lambda_lse": lam})
                big = 2 * k  # B = 2K where that is larger than the run's batch (full's K = 1,024): equal samples
                for lam in c.lambda_lse if big > src.batch_size else ():
                    scaled = lam * src.batch_size / big  # the EM weight per sample as at the run's batch
                    cond = {"axis": "lambda_lse", "lambda_lse": lam, "n": full_5k, "batch_size": big}
                    mcfg = {"lambda_lse": scaled}
                    rows += self._cell(src, ["infomax"], "mnist5k", None, k, None, cond, mcfg, big)
        for dataset, data, width, epochs, cond in scale_points:
            rows += self._pairs(src, dataset, data, width, epochs, cond)
        return rows

    def _cell(
        self, src, methods, dataset, data, width, epochs, cond, method_cfg=None, batch_size=None
    ) -> list[dict[str, Any]]:
        """The measurement of every (method, seed) of one cell, and a ``diverged`` row per EM-pair job."""
        if not methods:
            return []
        got = []
        for rs in src.measure(
            self.measure_code,
            methods=methods,
            widths=[width],
            dataset=dataset,
            data=data,
            epochs=epochs,
            method_cfg=method_cfg,
            batch_size=batch_size,
        ):
            got += [{**r, **cond} for r in rs]
        have = {(r["method"], r["seed"]): r for r in got}
        for m in (m for m in methods if m in EM_PAIR):
            for s in src.seeds:
                base = have.get((m, s), {"dataset": dataset, "method": m, "width": width, "seed": s, **cond})
                extra = {"note": "no code: job_failed or measure_failed"} if (m, s) not in have else {}
                keep = {k: v for k, v in base.items() if k not in ("metric", "value", "note")}
                got.append({**keep, "metric": "diverged", "value": float((m, s) not in have), **extra})
        return got

    # ------------------------------------------------------------------------- per encoder (cached)
    def measure_code(self, enc, src) -> list[dict[str, Any]]:
        """Probe accuracy (and kappa at 10 per class) or MCC, dead fraction, activation scale, and for the
        EM pair every loss term's gradient norm and r_EM on one fixed training minibatch."""
        spec = enc.spec
        ds = src.dataset(spec.dataset, {"pretrain_n": spec.data_cfg.pretrain_n, "sources": spec.data_cfg.sources})
        values: dict[str, float] = {}
        if ds.n_classes:
            pt = ds.probe_train
            f = [enc.features(s.x) for s in (pt, ds.val, ds.test)]
            pr = linear_probe(f[0], pt.y, f[1], ds.val.y, f[2], ds.test.y, ds.n_classes)
            values |= {"test_acc": float(pr.test_acc[0]), "val_acc": float(pr.val_acc[0])}
            if spec.method in EM_PAIR:
                values["kappa_10"] = _kappa(f, pt.y, ds, spec.seed)
            train_f = f[0]
        else:  # ica: the sources are the factors
            values["mcc"] = _mcc(enc, ds)
            train_f = enc.features(ds.train.x)
        values["dead_fraction"] = dead_fraction(train_f)
        values["act_scale"] = diagnostics.activation_scale(train_f)
        if spec.method in EM_PAIR:
            batch = ds.train.x[: spec.batch_size]
            device = next(enc.method.parameters()).device
            init = seeded_build(spec.method, spec.method_cfg, ds, spec.width, spec.seed, device)  # its own init
            for model, suffix in ((enc.method, ""), (init, "_init")):
                values |= {f"{k}{suffix}": v for k, v in _gradients(model, batch).items()}
        return [row(enc, k, v, epochs=spec.epochs) for k, v in values.items()]

    # ------------------------------------------------------------------------- several encoders
    def _pairs(self, src, dataset, data, width, epochs, cond) -> list[dict[str, Any]]:
        """Pair rows of one scale point: CKA for every cross-seed pair of codes, unit-matched |corr| for the
        pairs within a method and those with infomax, and a row-shuffle null per method pair."""
        fixed = src.dataset(dataset, {"split_seed": 0})  # the same inputs for every seed, whatever its split
        n = self.cfg.n_similarity
        x_fit, x_score = fixed.probe_train.x[:n], fixed.test.x[:n]
        fit, score = {}, {}
        methods = [m for m in METHODS if m in src.methods]
        for enc in src.encoders(methods=methods, widths=[width], dataset=dataset, data=data, epochs=epochs):
            key = (enc.spec.method, enc.spec.seed)
            with torch.no_grad():
                fit[key], score[key] = enc.features(x_fit), enc.features(x_score)
        if len(score) < 2:
            return []
        keys = list(score)
        all_pairs = pairwise.cross_seed_pairs(keys)
        rows = []

        def add(a, b, metric, value, **extra):
            rows.append(
                {
                    "dataset": dataset,
                    "method": a[0],
                    "width": width,
                    "seed": a[1],
                    "other": b[0],
                    "other_seed": b[1],
                    "metric": metric,
                    "value": float(value),
                    **cond,
                    **extra,
                }
            )

        for (a, b), v in pairwise.cka_pairs(score, all_pairs).items():
            add(a, b, "cka", v)
        matched = [(a, b) for a, b in all_pairs if a[0] == b[0] or "infomax" in (a[0], b[0])]
        for (a, b), u in pairwise.matched_pairs(fit, score, matched).items():
            add(a, b, "matched_corr", u.score, dead=u.dead_a + u.dead_b)
            add(a, b, "matched_corr_live", u.score_live, dead=u.dead_a + u.dead_b)
        by_method: dict[str, list] = {}
        for k in sorted(keys):
            by_method.setdefault(k[0], []).append(k)
        names = sorted(by_method)
        for i, ma in enumerate(names):
            for mb in names[i:]:
                pick = [(a, b) for a in by_method[ma] for b in by_method[mb] if a[1] != b[1]]
                if pick:
                    a, b = pick[0]
                    null = similarity.shuffle_null(score[a], score[b], seed=0)
                    add(a, b, "cka_null_mean", null.mean)
                    add(a, b, "cka_null_sd", null.sd)
        return rows


def _gradients(model, batch: torch.Tensor) -> dict[str, float]:
    """Each weighted loss term's gradient norm and r_EM (:func:`bench.evaluate.diagnostics.gradient_norms`), and
    ``stationarity`` = ||grad (all terms)|| / ||grad (H + TC)||: near 0 the weights sit at a stationary point of
    the loss, where grad LSE = -grad (H + TC) and r_EM is 1 by construction, whatever the dilution."""
    params = list(model.parameters())
    with _grad_enabled(params):
        out = diagnostics.gradient_norms(model, batch, model.loss_terms, params)

        def summed(b: torch.Tensor) -> dict[str, torch.Tensor]:
            t = model.loss_terms(b)
            infomax = [v for k, v in t.items() if k in diagnostics.INFOMAX_TERMS]
            return {"all": sum(t.values()), **({"infomax": sum(infomax)} if infomax else {})}

        both = diagnostics.gradient_norms(model, batch, summed, params, em=(), infomax=())
    den = both.get("grad_norm_infomax", 0.0)
    out["stationarity"] = both["grad_norm_all"] / den if den else math.nan
    return out


class _grad_enabled:
    """Temporarily let every parameter take a gradient (a cached encoder may be loaded frozen)."""

    def __init__(self, params: list[torch.Tensor]):
        self.params, self.before = params, [p.requires_grad for p in params]

    def __enter__(self):
        for p in self.params:
            p.requires_grad_(True)

    def __exit__(self, *exc):
        for p, b in zip(self.params, self.before, strict=True):
            p.requires_grad_(b)


def _kappa(f: list[torch.Tensor], y_train: torch.Tensor, ds, seed: int) -> float:
    """Mean kappa over P2's draws of 10 labelled probe-train examples per class (L2 on val, scalar scaling)."""
    P = transfer_pairs
    if P.infeasible(y_train, ds.n_classes, KAPPA_BUDGET):
        return float("nan")
    subsets = P.draw_subsets(y_train, KAPPA_BUDGET, KAPPA_DRAWS, seed, f"convergence:{ds.name}")
    r = budget_probe(f[0], y_train, f[1], ds.val.y, f[2], ds.test.y, ds.n_classes, subsets)
    return float(np.mean(P.kappa(r.test_acc.detach().cpu().double().numpy(), ds.n_classes)))


def _mcc(enc, ds) -> float:
    """MCC of pre-activations (a single Linear encoder's ``Wx + b``, else the features) against the sources."""

    def pre(x: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            lin = getattr(enc.method, "encoder", None)
            z = lin(x) if isinstance(lin, torch.nn.Linear) else enc.features(x)
        return z.detach().cpu().double().numpy()

    z_tr, z_te = factors.clip_to_train(pre(ds.train.x), pre(ds.test.x))
    s_tr, s_te = (s.factors.detach().cpu().double().numpy() for s in (ds.train, ds.test))
    value, _ = factors.mcc(z_tr, s_tr, z_te, s_te)
    return float(value)
