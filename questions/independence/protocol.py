"""Open question ``independence``: is independence the right target? (docs/protocol.md 11.2)

Four parts, each asked for with ``src.measure`` (every measurement reads one encoder and is cached):

* ``dose`` (a, causal, inside the subject): ``infomax`` and ``infomax_noem`` at lambda_tc in [0, .1, .3, 1,
  3, 10] (``tc=corr``, the default) and at [1] with ``tc=logdet``, on ``mnist5k`` (K = [64], the default
  budget) and ``mnist1d`` (N = [16,384], K = 64, [8,192] optimisation steps: section 11.0's budget).
  :meth:`measure_code`: clean accuracy and retained accuracy under unit zeroing, input noise and
  occlusion through one frozen probe (L2 chosen on val half A; rows on val half B and on test), transfer
  kappa at n = [10] on P2's pair ``mnist_digits`` (``mnist5k`` encoders only: ``mnist1d`` has no pair), and
  the dose delivered (Gaussian TC, pairwise MI, kNN predictability, mean |corr|, dead fraction).
* ``rotation`` (b, no training): whitened ``pca`` (``whiten=true``) and ``fastica`` (white by construction)
  at K = 64 on ``mnist5k``, each code rotated by R(t) = expm(t S) for t in [0, .25, .5, 1, 2] (S drawn
  from the job's seed); :meth:`measure_rotation` reads every rung like :meth:`measure_code` (the rotation
  composed after the encoder, so noise and occlusion pass through both).
* ``factors`` (c): ``ica`` (K = [8] sources, linear mixing) with Laplace sources under a Gaussian copula
  at rho in [0, .25, .5, .75] (rho = 0 is the independent ``ica`` of before, its cache entry) and the
  elliptical law; ``dsprites`` with ``dedupe=true`` and position coupling s in [none, .4, .2] at K = [5];
  arms ``infomax``, ``infomax`` at lambda_tc = 0, ``fastica``, ``ae``. :meth:`measure_factors`: MCC on
  pre-activations, the matched pair's |corr| against the factors' own Pearson correlation, and the
  correlation of squares of units and factors.
* ``zoo`` (d, observational): every method of the run (but ``raw``: K = D) at ``mnist5k`` K = 64 read by
  :meth:`measure_code` with its default config (the subject's entry is the dose sweep's lambda_tc = 1).

Rows carry ``part``, ``arm`` (the method, with ``[field=value]`` for a non-default config), ``lambda_tc`` and
``tc`` (dose), ``t`` (rotation), ``setting``/``law``/``rho`` (factors) and the measurement's own
``split``/``perturbation``/``level``. Everything that needs several encoders (lambda*, D, slopes, the zoo's
rank correlations) is the view's (:mod:`questions.independence.analysis`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from bench.data.embedded import copula_pairs
from bench.data.mnist1d import DEFAULT_PRETRAIN
from bench.protocol import PREDICTIONS, EncoderSource, Prediction, PredictionConfig, row
from predictions.transfer import pairs as P
from questions.independence import measures as M

QUICK = ("infomax", "infomax_noem", "random", "pca", "fastica", "ae", "dae", "rbm", "simclr", "supervised")
PARTS = ("dose", "rotation", "factors", "zoo")
DSPRITES_FACTORS = ("scale", "pos_x", "pos_y")  # ordinal factors (shape is nominal, orientation circular)


@dataclass(frozen=True)
class IndependenceConfig(PredictionConfig):
    """``width`` (64) is the K of the dose, rotation and zoo parts; ``dataset`` is not used (each part names its own)."""

    parts: tuple[str, ...] = PARTS
    lambdas: tuple[float, ...] = (0.0, 0.1, 0.3, 1.0, 3.0, 10.0)  # lambda_tc with tc=corr
    logdet_lambdas: tuple[float, ...] = (1.0,)  # lambda_tc with tc=logdet
    dose_methods: tuple[str, ...] = ("infomax", "infomax_noem")
    dose_datasets: tuple[str, ...] = ("mnist5k", "mnist1d")
    mnist1d_n: int = DEFAULT_PRETRAIN  # pretraining draws on mnist1d
    steps_mnist1d: int = 8192  # optimisation steps on mnist1d (section 11.0); mnist5k: the default budget
    transfer_pair: str = "mnist_digits"  # P2 pair whose source is a dose dataset ("": no transfer kappa)
    transfer_budget: str = "10"
    transfer_draws: int = 5
    knn_k: int = 10
    mi_bins: int = 20
    rotation_methods: tuple[str, ...] = ("fastica", "pca")  # pca runs whitened
    ts: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0)
    factor_methods: tuple[str, ...] = ("infomax", "fastica", "ae")  # + infomax at lambda_tc = 0
    ica_sources: int = 8
    rhos: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75)  # Gaussian-copula rho of the ica pairs
    elliptical: bool = True
    couplings: tuple[float | None, ...] = (None, 0.4, 0.2)  # dsprites position coupling s (none: uniform)
    dsprites_width: int = 5

    def check(self) -> None:
        super().check()
        bad = [p for p in self.parts if p not in PARTS]
        if bad or not self.parts:
            raise ValueError(f"parts: unknown {bad} (choices: {', '.join(PARTS)})")
        if not self.lambdas or any(v < 0 for v in (*self.lambdas, *self.logdet_lambdas)):
            raise ValueError(f"lambdas, logdet_lambdas: need values >= 0, got {list(self.lambdas)}")
        if not self.ts or self.ts[0] != 0.0 or list(self.ts) != sorted(set(self.ts)):
            raise ValueError(f"ts: need increasing values starting at 0 (the unrotated code), got {list(self.ts)}")
        if not self.rhos or any(not 0.0 <= r < 1.0 for r in self.rhos):
            raise ValueError(f"rhos: need values in [0, 1), got {list(self.rhos)}")
        if any(s is not None and not s > 0 for s in self.couplings):
            raise ValueError(f"couplings: need values > 0 or none (uniform), got {list(self.couplings)}")
        if min(self.mnist1d_n, self.steps_mnist1d, self.ica_sources, self.dsprites_width, self.knn_k) < 1:
            raise ValueError("mnist1d_n, steps_mnist1d, ica_sources, dsprites_width, knn_k: must be >= 1")
        if self.transfer_pair and self.transfer_pair not in P.PAIRS:
            raise ValueError(f"transfer_pair: unknown '{self.transfer_pair}' (choices: {', '.join(P.PAIRS)}, or '')")
        if self.transfer_draws < 1 or P.budget_size(self.transfer_budget) is None:
            raise ValueError("transfer_budget: a number of examples per class; transfer_draws: >= 1")


def arm(method: str, overrides: dict[str, Any] | None = None) -> str:
    """The arm's name: the method, with ``[field=value,...]`` for the overridden fields of its config."""
    if not overrides:
        return method
    return f"{method}[{','.join(f'{k}={v:g}' if isinstance(v, float) else f'{k}={v}' for k, v in overrides.items())}]"


def epochs_for_steps(steps: int, n: int, batch_size: int) -> int:
    """Epochs that give ``steps`` optimisation steps on ``n`` samples (a partial last batch is a step)."""
    return max(1, round(steps / -(-n // batch_size)))


def _data_of(enc) -> dict[str, Any]:
    """The DataConfig fields of the data ``enc`` trained on, as overrides (a measurement resolves
    ``src.dataset`` against the run's data options, not the request's)."""
    d = enc.spec.data_cfg
    return {k: getattr(d, k) for k in ("n", "sources", "mixing", "sources_law", "copula_rho", "pos_coupling", "dedupe")}


@PREDICTIONS.register()
class Independence(Prediction):
    """Is independence the right target? A lambda_tc dose-response, a rotation ladder, dependent factors, the zoo."""

    name = "independence"
    Config = IndependenceConfig
    needs = frozenset()  # each part loads its own datasets (labelled images, mnist1d, ica, dsprites)

    def default_methods(self, available: list[str], profile: str = "quick") -> list[str]:
        if profile == "full":  # the zoo of 11.2d: every method but raw (K = D)
            return [m for m in available if m != "raw"]
        return [m for m in QUICK if m in available]

    def check_profile(self, profile: str) -> None:
        """``confirm`` exists for the directional claim of 11.2a: it needs the dose sweep with lambda_tc = 10 and
        another dose (the family is every dataset x outcome of that sweep)."""
        c = self.cfg
        if profile == "confirm" and ("dose" not in c.parts or 10.0 not in c.lambdas or len(c.lambdas) < 2):
            raise ValueError("parts, lambdas: profile=confirm needs the dose part with lambda_tc 10 and another dose")

    def run(self, src: EncoderSource) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for part in self.cfg.parts:
            rows += getattr(self, f"_{part}")(src)
        return rows

    def _among(self, src: EncoderSource, wanted) -> list[str]:
        return [m for m in wanted if m in src.methods]

    @staticmethod
    def _add(rows: list, measured, **cond) -> None:
        for rs in measured:
            rows.extend({**r, **cond} for r in rs)

    def _pair_for(self, dataset: str) -> str:
        c = self.cfg
        return c.transfer_pair if c.transfer_pair and P.PAIRS[c.transfer_pair].source == dataset else ""

    # --------------------------------------------------------------------------- (a) dose
    def _dose(self, src: EncoderSource) -> list[dict[str, Any]]:
        c, rows = self.cfg, []
        methods = self._among(src, c.dose_methods)
        for dataset in c.dose_datasets:
            data, epochs = None, None
            if dataset == "mnist1d":
                data = None if c.mnist1d_n == DEFAULT_PRETRAIN else {"pretrain_n": c.mnist1d_n}
                epochs = epochs_for_steps(c.steps_mnist1d, c.mnist1d_n, src.batch_size)
            arms = [({"lambda_tc": v}, v, "corr") for v in c.lambdas]
            arms += [({"lambda_tc": v, "tc": "logdet"}, v, "logdet") for v in c.logdet_lambdas]
            for mcfg, lam, tc in arms:
                for m in methods:
                    default = lam == 1.0 and tc == "corr"  # the method's own config: the zoo's entry
                    measured = src.measure(
                        self.measure_code,
                        self._pair_for(dataset),
                        methods=[m],
                        dataset=dataset,
                        data=data,
                        widths=[c.width],
                        method_cfg=mcfg,
                        epochs=epochs,
                    )
                    self._add(rows, measured, part="dose", arm=arm(m, None if default else mcfg), lambda_tc=lam, tc=tc)
        return rows

    def measure_code(self, enc, src, pair: str) -> list[dict[str, Any]]:
        """Clean accuracy, robustness, transfer kappa (when ``pair``) and the dose of one encoder (dose, zoo)."""
        c, seed = self.cfg, enc.spec.seed
        ds = src.dataset(enc.spec.dataset)  # probe-train, val and test do not depend on the pretraining N
        tr = ds.probe_train
        outs = M.outcomes(
            enc.features, tr.x, tr.y, ds.val.x, ds.val.y, ds.test.x, ds.test.y, ds.n_classes,
            image_shape=ds.image_shape, seed=seed,
        )  # fmt: skip
        rows = _outcome_rows(enc, outs)
        with torch.no_grad():
            f_tr, f_te = enc.features(tr.x), enc.features(ds.test.x)
        rows += [row(enc, k, v) for k, v in M.redundancy(f_tr, f_te, c.knn_k, c.mi_bins).items()]
        if pair:
            target = src.dataset(P.PAIRS[pair].target)
            kap = M.transfer_kappa(enc.features, target, seed, pair, c.transfer_budget, c.transfer_draws)
            rows += [row(enc, "kappa", v, split=s, pair=pair, budget=c.transfer_budget) for s, v in kap.items()]
        return rows

    # --------------------------------------------------------------------------- (b) rotation
    def _rotation(self, src: EncoderSource) -> list[dict[str, Any]]:
        c, rows = self.cfg, []
        for m in self._among(src, c.rotation_methods):
            mcfg = {"whiten": True} if m == "pca" else None
            measured = src.measure(
                self.measure_rotation, tuple(c.ts), methods=[m], dataset="mnist5k", widths=[c.width], method_cfg=mcfg
            )
            self._add(rows, measured, part="rotation", arm=arm(m, mcfg))
        return rows

    def measure_rotation(self, enc, src, ts: tuple[float, ...]) -> list[dict[str, Any]]:
        """Every rung t of the rotation ladder of one whitened code: its probe accuracy, robustness and dependence."""
        c, seed = self.cfg, enc.spec.seed
        ds = src.dataset(enc.spec.dataset)
        tr = ds.probe_train
        with torch.no_grad():
            f_tr, f_te = enc.features(tr.x), enc.features(ds.test.x)
        rows = [row(enc, "train_whiteness", M.train_whiteness(f_tr))]
        for t, rot in zip(ts, M.rotations(f_tr.shape[1], ts, seed), strict=True):
            r = rot.to(device=f_tr.device, dtype=f_tr.dtype)

            def encode(x, r=r):
                return enc.features(x) @ r

            outs = M.outcomes(
                encode, tr.x, tr.y, ds.val.x, ds.val.y, ds.test.x, ds.test.y, ds.n_classes,
                image_shape=ds.image_shape, seed=seed,
            )  # fmt: skip
            rows += _outcome_rows(enc, outs, t=t)
            z_tr, z_te = f_tr @ r, f_te @ r
            rows.append(row(enc, "gaussian_tc_train", M.metrics.gaussian_tc(z_tr), t=t))
            rows += [row(enc, k, v, t=t) for k, v in M.redundancy(z_tr, z_te, c.knn_k, c.mi_bins).items()]
        return rows

    # --------------------------------------------------------------------------- (c) factors
    def _factor_arms(self, src: EncoderSource) -> list[tuple[str, dict | None]]:
        arms = []
        for m in self._among(src, self.cfg.factor_methods):
            arms.append((m, None))
            if m == "infomax":
                arms.append((m, {"lambda_tc": 0.0}))
        return arms

    def _factors(self, src: EncoderSource) -> list[dict[str, Any]]:
        c, rows = self.cfg, []
        settings = [("ica", "copula", r) for r in c.rhos] + ([("ica", "elliptical", math.nan)] if c.elliptical else [])
        settings += [("dsprites", "coupled", math.inf if s is None else s) for s in c.couplings]
        for setting, law, rho in settings:
            if setting == "ica":
                data: dict[str, Any] = {"mixing": "linear", "sources": c.ica_sources}
                if law == "elliptical":
                    data["sources_law"] = "elliptical"
                elif rho:
                    data |= {"sources_law": "copula", "copula_rho": rho}  # rho = 0: the independent ica of before
                width = c.ica_sources
            else:
                data = {"dedupe": True} | ({} if math.isinf(rho) else {"pos_coupling": rho})
                width = c.dsprites_width
            for m, mcfg in self._factor_arms(src):
                measured = src.measure(
                    self.measure_factors,
                    setting,
                    methods=[m],
                    dataset=setting,
                    data=data,
                    widths=[width],
                    method_cfg=mcfg,
                )
                self._add(rows, measured, part="factors", arm=arm(m, mcfg), setting=setting, law=law, rho=rho)
        return rows

    def measure_factors(self, enc, src, setting: str) -> list[dict[str, Any]]:
        """MCC on pre-activations, the matched pair's |corr| against the factors', and energy dependence."""
        ds = src.dataset(setting, _data_of(enc))
        cols = [ds.factor_names.index(n) for n in DSPRITES_FACTORS] if setting == "dsprites" else None
        z = [M.pre_activations(enc.method, s.x) for s in (ds.train, ds.test)]
        s_tr, s_te = (s.factors.detach().cpu().double().numpy() for s in (ds.train, ds.test))
        if cols is not None:
            s_tr, s_te = s_tr[:, cols], s_te[:, cols]
        if setting == "ica":
            pairs = copula_pairs(s_tr.shape[1])
        else:
            pairs = [(DSPRITES_FACTORS.index("pos_x"), DSPRITES_FACTORS.index("pos_y"))]
        zs = [v.detach().cpu().double().numpy() for v, _ in z]
        out = M.factor_outcomes(zs[0], s_tr, zs[1], s_te, pairs)
        if setting == "dsprites":  # coupling moves the position marginals too (a confound of the dependence)
            out["marginal_tv"] = M.marginal_tv(s_te[:, list(pairs[0])], 16)
        note = {} if z[0][1] else {"note": "no Linear+activation encoder: pre = features"}
        return [row(enc, k, v, **note) for k, v in out.items()]

    # --------------------------------------------------------------------------- (d) zoo
    def _zoo(self, src: EncoderSource) -> list[dict[str, Any]]:
        c, rows = self.cfg, []
        for m in src.methods:
            if m == "raw":  # K = D = 784, not the zoo's K: no comparable redundancy
                continue
            measured = src.measure(
                self.measure_code, self._pair_for("mnist5k"), methods=[m], dataset="mnist5k", widths=[c.width]
            )
            self._add(rows, measured, part="zoo", arm=m)
        return rows


def _outcome_rows(enc, outs: list[dict], **cond) -> list[dict[str, Any]]:
    """Tidy rows of :func:`questions.independence.measures.outcomes`: ``acc`` (clean), ``retained`` per
    perturbed level (its accuracy beside) and ``retained_mean`` per perturbation kind and ``all``."""
    rows = []
    for o in outs:
        split, kind = o["split"], o["perturbation"]
        if o.get("summary"):
            rows.append(row(enc, "retained_mean", o["retained"], split=split, perturbation=kind, **cond))
        elif kind == "none":
            rows.append(row(enc, "acc", o["accuracy"], split=split, **cond))
        else:
            level, acc = o["level"], o["accuracy"]
            rows.append(
                row(enc, "retained", o["retained"], split=split, perturbation=kind, level=level, accuracy=acc, **cond)
            )
    return rows
