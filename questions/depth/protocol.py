"""Open question ``depth``: how does InfoMax interact with depth? (docs/protocol.md 11.4)

Greedy stacks of ``depth`` [3] layers of width K (:mod:`baselines.stack`: each layer trained on the frozen,
train-standardised output of the one below, with its own method and the dataset's budget) for each family
[infomax, ae, rbm (a DBN: an RBM layer reads the probabilities below, unstandardised)], on

* ``mnist5k`` at K = [64] (its quick / full epochs),
* ``mnist1d`` at K = [128], pretraining N = [16,384] draws, [8,192] optimisation steps at the run's batch,
* ``dsprites`` at K = [64], ``dedupe`` (docs/protocol.md 11.0), label = shape (its epochs).

Controls: an untrained ``random`` layer on each trained layer (``f/random``, ``f/f/random``; layer 1's is the
plain ``random`` job) and an ``identity`` layer on the subject's first (``infomax/identity``). References:
``infomax_mlp3`` (the subject's loss on the top of a three-layer MLP, end to end), ``supervised_mlp3`` (the
label oracle) and a plain ``infomax`` layer 2K wide (width against depth). Each arm is one job per seed
(:mod:`questions.depth.arms`); a stack's layers get the dataset's budget through the stack's own config, since
a fit method ignores the job's epochs. Every encoder is read by one cached measurement, layer by layer
(:mod:`questions.depth.measures`). What needs several jobs (G_l = acc(trained l) - acc(random l on the same
l - 1), paired by seed; dMI_l; the reading) is the view's (:mod:`questions.depth.estimands`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bench.evaluate import metrics
from bench.evaluate.probe import linear_probe
from bench.protocol import PREDICTIONS, SUBJECT, EncoderSource, Prediction, PredictionConfig, row
from bench.train.methods import METHODS
from bench.train.trainer import data_info
from questions.depth import measures
from questions.depth.arms import arms, plain_arm, stack_arm

QUICK = ("stack", "random", "infomax", "infomax_mlp3", "supervised_mlp3")
DATASETS = ("mnist5k", "mnist1d", "dsprites")
# the datasets' epochs per profile, as bench.config.EPOCHS and BUDGET_PROFILE give them (a plugin may not import
# the configuration, and a source does not say its budget; tests/test_question_depth.py holds them equal): a
# fit method ignores the job's epochs, so the stacks need the number itself
BUDGETS = {"mnist5k": {"quick": 40, "full": 100}, "dsprites": {"quick": 10, "full": 50}}
BUDGET_PROFILE = {"quick": "quick", "full": "full", "confirm": "quick"}


@dataclass(frozen=True)
class DepthConfig(PredictionConfig):
    """``dataset`` and ``width`` are not used: each dataset has its own width (below)."""

    datasets: tuple[str, ...] = DATASETS
    families: tuple[str, ...] = (SUBJECT, "ae", "rbm")
    depth: int = 3
    width_mnist5k: int = 64
    width_mnist1d: int = 128
    width_dsprites: int = 64
    pretrain_n_mnist1d: int = 16384
    steps_mnist1d: int = 8192  # optimisation steps per layer on mnist1d (docs/protocol.md 11.0's budget)
    epochs: int = 0  # > 0: every job's epochs; 0: the dataset's budget for the profile (mnist1d: steps_mnist1d)
    n_eval: int = 2000  # test inputs for MI, kNN, TC, CKA and energy dependence
    n_knn_train: int = 4000  # probe-train rows the kNN regressors are fitted on
    mi_bins: int = 20
    knn_k: int = 10
    kappa_n: int = 10  # labelled examples per class of the few-label probe
    kappa_draws: int = 5
    aurc: bool = False  # P1's AURC per layer (random order, frozen probe): 3-7 s a layer, so asked for, not default

    def check(self) -> None:
        super().check()
        bad = [d for d in self.datasets if d not in DATASETS]
        if bad or not self.datasets or len(set(self.datasets)) != len(self.datasets):
            raise ValueError(f"datasets: need distinct names among {', '.join(DATASETS)}, got {list(self.datasets)}")
        unknown = [f for f in self.families if f not in METHODS]
        if unknown or not self.families or len(set(self.families)) != len(self.families):
            raise ValueError(f"families: need distinct registered methods, got {list(self.families)}")
        if self.depth < 2:
            raise ValueError(f"depth: need >= 2 layers, got {self.depth}")
        for name in ("width_mnist5k", "width_mnist1d", "width_dsprites", "pretrain_n_mnist1d", "steps_mnist1d"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.epochs < 0 or self.n_eval < 4 or self.n_knn_train < self.knn_k or self.mi_bins < 2:
            raise ValueError("epochs >= 0, n_eval >= 4, n_knn_train >= knn_k and mi_bins >= 2 are needed")
        if self.kappa_n < 1 or self.kappa_draws < 1:
            raise ValueError("kappa_n, kappa_draws: must be >= 1")


def epochs_for_steps(steps: int, n: int, batch_size: int) -> int:
    """Epochs that give ``steps`` optimisation steps on ``n`` samples (ceil(n / batch) steps per epoch), as the
    scaling question's helper of the same name computes them (a test holds the two equal)."""
    return max(1, round(steps / -(-n // batch_size)))


def spec_arm(spec) -> str:
    """The arm of a job: a stack's layers joined by ``/``, else ``method@width``."""
    if spec.method == "stack":
        return stack_arm(spec.method_cfg.layers)
    return plain_arm(spec.method, spec.width)


@PREDICTIONS.register()
class Depth(Prediction):
    """How does InfoMax interact with depth? Greedy stacks, their random and identity controls, references."""

    name = "depth"
    Config = DepthConfig

    def default_methods(self, available: list[str], profile: str = "quick") -> list[str]:
        return [m for m in QUICK if m in METHODS]  # stack and the 3-layer references are unlisted: named here

    def width_of(self, dataset: str) -> int:
        return getattr(self.cfg, f"width_{dataset}")

    def data_of(self, dataset: str) -> dict[str, Any] | None:
        if dataset == "mnist1d":
            return {"pretrain_n": self.cfg.pretrain_n_mnist1d}
        if dataset == "dsprites":
            return {"dedupe": True}
        return None

    def epochs_of(self, dataset: str, profile: str, batch_size: int) -> int:
        if self.cfg.epochs:
            return self.cfg.epochs
        if dataset == "mnist1d":
            return epochs_for_steps(self.cfg.steps_mnist1d, self.cfg.pretrain_n_mnist1d, batch_size)
        return BUDGETS[dataset][BUDGET_PROFILE[profile]]

    def run(self, src: EncoderSource) -> list[dict[str, Any]]:
        c, rows = self.cfg, []
        for name in c.datasets:
            data, width = self.data_of(name), self.width_of(name)
            epochs, batch = self.epochs_of(name, src.profile, src.batch_size), src.batch_size
            info = data_info(src.dataset(name, data))
            for arm in arms(c.families, c.depth, width):
                if arm.method not in src.methods:
                    continue
                tag = {"arm": arm.name, "role": arm.role, "family": arm.family, "epochs": epochs}
                cfg = None
                if arm.layers:
                    why = METHODS.get(arm.layers[0]).unsupported(info)
                    if why:  # the stack cannot see its layers' needs when the runner checks it: said here
                        rows += [
                            self._skipped(name, width, s, f"layer 1 ({arm.layers[0]}): {why}", tag) for s in src.seeds
                        ]
                        continue
                    cfg = {"layers": arm.layers, "epochs": epochs, "batch_size": batch}
                measured = src.measure(
                    self.measure_layers,
                    data,
                    methods=[arm.method],
                    widths=[arm.width],
                    dataset=name,
                    data=data,
                    method_cfg=cfg,
                    epochs=epochs,
                )
                for rs in measured:
                    rows.extend({**r, **tag} for r in rs)
        return rows

    @staticmethod
    def _skipped(dataset: str, width: int, seed: int, why: str, tag: dict[str, Any]) -> dict[str, Any]:
        return {
            "dataset": dataset,
            "method": "stack",
            "width": width,
            "seed": seed,
            "metric": "job_skipped",
            "value": 1.0,
            "note": why,
            **tag,
        }

    def measure_layers(self, enc, src, data: dict[str, Any] | None) -> list[dict[str, Any]]:
        """Every layer of one encoder: probe, redundancy, energy dependence, CKA, kappa, AURC, position R^2."""
        c = self.cfg
        ds = src.dataset(enc.spec.dataset, data)
        splits = (ds.probe_train, ds.val, ds.test)
        ys = [s.y for s in splits]
        feats = [measures.layers_of(enc.method, s.x) for s in splits]  # split -> layer -> (N, K)
        n_layers, n_eval = len(feats[0]), min(c.n_eval, len(ds.test.x))
        n_knn = min(c.n_knn_train, len(ds.probe_train.x))
        codes = [ds.test.x[:n_eval]] + [f[:n_eval] for f in feats[2]]
        cka = measures.cka_map(codes)
        src.matrix(enc, f"cka_layers:{spec_arm(enc.spec)}", cka)
        seed, n_classes = enc.spec.seed, ds.n_classes
        rows = []
        for layer in range(1, n_layers + 1):
            f = [feats[s][layer - 1] for s in range(3)]

            def add(metric: str, value: float, _layer: int = layer, **cond: Any) -> None:
                rows.append(row(enc, metric, value, layer=_layer, n_layers=n_layers, **cond))

            pr = linear_probe(f[0], ys[0], f[1], ys[1], f[2], ys[2], n_classes)
            add("acc", float(pr.test_acc[0]))
            add("val_acc", float(pr.val_acc[0]))
            add("chance", 1.0 / n_classes)
            fe = f[2][:n_eval]
            add("mi", metrics.pairwise_mi_binned(fe, bins=c.mi_bins))
            add("knn_r2", metrics.nonlinear_predictability(f[0][:n_knn], fe, k=c.knn_k))
            add("gaussian_tc", metrics.gaussian_tc(fe))
            add("energy_dep", measures.energy_dependence(fe))
            add("dead_fraction", metrics.dead_fraction(f[0]))
            add("act_scale", float(f[0].abs().max()) if f[0].numel() else math.nan)
            add("cka_prev", float(cka[layer, layer - 1]))
            kappa, why = measures.kappa_at(f, ys, n_classes, c.kappa_n, c.kappa_draws, seed)
            add("kappa", kappa, budget=str(c.kappa_n), **({"note": why} if why else {}))
            if c.aurc:
                add("aurc", measures.aurc_random_frozen(f, ys, n_classes, seed))
            if ds.factor_names and all(n in ds.factor_names for n in measures.POSITION):
                r2 = measures.position_r2(f, ds)
                for factor, v in r2.items():
                    add("factor_r2", v, factor=factor)
                add("pos_r2", sum(r2.values()) / len(r2))
        return rows
