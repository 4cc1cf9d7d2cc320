"""Prediction 4, interpretability, the protocol: "Each feature corresponds to an independent factor"
(docs/protocol.md §8 P4).

Settings (``settings=``; each names its own dataset, so the run's ``dataset`` is not used):

- ``ica_linear`` / ``ica_nonlinear``: ``ica`` with that mixing at K = number of sources. MCC
  (Pearson, Spearman) on the pre-activations z = Wx + b of Linear+activation encoders (the
  features otherwise) and on the activations (ceiling 0.816 for a ReLU of Laplace sources).
- ``dsprites_wide`` / ``dsprites_narrow``: ``dsprites`` at K = ``width`` [64] and K =
  ``narrow_width`` [5]: DCI (extra-trees importances), MIG at each of ``mig_bins``, SAP,
  modularity, and the ridge R^2 of ``factors`` (pos_x, pos_y, scale) at ``factor_budgets``
  labelled train examples in total (:mod:`predictions.interpretability.ridge`). Orientation is
  reduced modulo each shape's symmetry and reported per factor, left out of the averages
  (``AVERAGED``).
- ``real``: each of ``real_datasets`` at K = ``width``: label purity of each unit's top-m test
  images (ties broken at random by keys drawn from (seed, dataset), never the method) minus its
  permuted-label value, ``unnameable_at_m`` (a count per encoder: dead units plus units with fewer
  than m test rows above their lowest test score), k-sparse probing (units chosen on train), and
  the atlas of ``atlas_methods`` (matrices ``atlas_weight``, ``atlas_top``, ``atlas_top_label``,
  ``atlas_unit``, and the top inputs' thumbnails ``atlas_thumb``, ``atlas_thumb_index``, ``atlas_thumb_shape``).

Every code is first clipped to its train [0.1%, 99.9%] range (one outlier row changes no metric).
Tidy rows carry the condition columns ``setting``, ``feature`` (pre / act), ``corr``
(pearson / spearman), ``bins``, ``factor``, ``k`` (sparse probing), ``m`` (purity), ``budget``
(ridge R^2: "16" .. "all", or "16,64,256,all" for ``r2_mean``); ``gaussian_tc`` (manipulation
check), ``pairwise_mi`` and ``dead_fraction`` on every setting's test codes; ``protocol_seconds``
per encoder. Every row is one encoder's (``row``), so it carries that job's ``under_trained`` flag.
What the report makes of them is :mod:`predictions.interpretability.view`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from bench.evaluate import factors as fx
from bench.evaluate import metrics
from bench.protocol import PREDICTIONS, SUBJECT, EncoderSource, Prediction, PredictionConfig, data_tag, row
from predictions.interpretability import ridge

SETTINGS = ("ica_linear", "ica_nonlinear", "dsprites_wide", "dsprites_narrow", "real")
AVERAGED = ("shape", "scale", "pos_x", "pos_y")  # dSprites factors averaged over (orientation: per factor)
ATLAS_TOP = 9


@dataclass(frozen=True)
class InterpretabilityConfig(PredictionConfig):
    settings: tuple[str, ...] = SETTINGS
    real_datasets: tuple[str, ...] = ("mnist5k", "digits")
    narrow_width: int = 5  # dSprites K = number of factors
    mig_bins: tuple[int, ...] = (20, 10, 50)  # the first is the reported MIG, the others sensitivity
    purity_m: int = 20
    purity_m_small: int = 10  # on datasets with fewer than 500 test images (digits)
    n_perm: int = 20
    probe_ks: tuple[int, ...] = (1, 5)
    tree_train: int = fx.TREE_TRAIN
    trees: int = fx.TREE_COUNT
    tree_depth: int = fx.TREE_DEPTH
    mi_bins: int = 20  # pairwise MI between units
    figure_methods: tuple[str, ...] = (SUBJECT, "beta_vae", "fastica")
    atlas_methods: tuple[str, ...] = (SUBJECT, "fastica", "sae")
    factors: tuple[str, ...] = ("pos_x", "pos_y", "scale")  # dSprites ridge R^2 targets
    factor_budgets: tuple[str, ...] = ("16", "64", "256", "all")  # labelled train examples in total
    factor_draws: tuple[int, ...] = (10, 5, 3, 1)  # per budget

    def check(self) -> None:
        super().check()
        bad = [s for s in self.settings if s not in SETTINGS]
        if bad or not self.settings:
            raise ValueError(f"settings: unknown {bad} (choices: {', '.join(SETTINGS)})")
        if self.narrow_width < 1:
            raise ValueError(f"narrow_width: must be >= 1, got {self.narrow_width}")
        if not self.mig_bins or min(self.mig_bins) < 2 or self.mi_bins < 2:
            raise ValueError(f"mig_bins, mi_bins: need values >= 2, got {list(self.mig_bins)}, {self.mi_bins}")
        if min(self.purity_m, self.purity_m_small, self.n_perm) < 1 or not self.probe_ks or min(self.probe_ks) < 1:
            raise ValueError("purity_m, purity_m_small, n_perm, probe_ks: must be >= 1")
        if min(self.tree_train, self.trees, self.tree_depth) < 1:
            raise ValueError("tree_train, trees, tree_depth: must be >= 1")
        try:
            [ridge.budget_size(b) for b in self.factor_budgets]
        except ValueError:
            raise ValueError(f"factor_budgets: need integers >= 1 or 'all', got {list(self.factor_budgets)}") from None
        if not self.factor_budgets or len(self.factor_draws) != len(self.factor_budgets) or min(self.factor_draws) < 1:
            raise ValueError(f"factor_draws: need one number of draws >= 1 per budget, got {list(self.factor_draws)}")
        if not self.factors:
            raise ValueError("factors: need at least one dSprites factor")


def pre_activations(method: nn.Module, x: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """z = Wx + b of a single-layer Linear+activation encoder (what each unit reads), else the
    features; the flag says which."""
    if method.encoder_weight() is None:
        return features, False
    with torch.no_grad():
        return torch.cat([method.encoder(x[i : i + 8192]) for i in range(0, len(x), 8192)]), True


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


@PREDICTIONS.register()
class Interpretability(Prediction):
    """P4: does each feature correspond to an independent factor? MCC, DCI, MIG, purity, atlas."""

    name = "interpretability"
    Config = InterpretabilityConfig
    needs = frozenset()  # each setting loads its own dataset (ica, dsprites, labelled images)

    def run(self, src: EncoderSource) -> list[dict]:
        rows: list[dict] = []
        for setting in self.cfg.settings:
            if setting.startswith("ica"):
                rows += self._ica(src, setting)
            elif setting.startswith("dsprites"):
                rows += self._dsprites(src, setting)
            else:
                for name in self.cfg.real_datasets:
                    rows += self._real(src, name)
        return rows

    def _common(self, enc, f_test: np.ndarray, setting: str, t0: float) -> list[dict]:
        f = torch.from_numpy(f_test)
        return [
            row(enc, "gaussian_tc", metrics.gaussian_tc(f), setting=setting),
            row(enc, "pairwise_mi", metrics.pairwise_mi_binned(f, bins=self.cfg.mi_bins), setting=setting),
            row(enc, "dead_fraction", metrics.dead_fraction(f), setting=setting),
            row(enc, "protocol_seconds", time.perf_counter() - t0, setting=setting),
        ]

    # --------------------------------------------------------------------------- ica
    def _ica(self, src: EncoderSource, setting: str) -> list[dict]:
        data = {"mixing": setting.removeprefix("ica_")}
        ds = src.dataset("ica", data)
        rows = []
        for measured in src.measure(
            self.measure_ica, setting, min(src.seeds), widths=[ds.train.factors.shape[1]], dataset="ica", data=data
        ):
            rows += measured
        for r in rows:  # the same tag the runner gives this setting's failed / skipped jobs
            r["data"] = data_tag(data)
        return rows

    def measure_ica(self, enc, src, setting: str, first: int) -> list[dict]:
        """MCC (Pearson, Spearman; pre-activations and activations) of one encoder on ``ica``."""
        t0 = time.perf_counter()
        ds = src.dataset("ica", {"mixing": setting.removeprefix("ica_")})
        s_tr, s_te = _np(ds.train.factors), _np(ds.test.factors)
        rows = []
        a_tr, a_te = (enc.features(s.x) for s in (ds.train, ds.test))
        z_tr, is_pre = pre_activations(enc.method, ds.train.x, a_tr)
        z_te, _ = pre_activations(enc.method, ds.test.x, a_te)
        codes = {"pre": fx.clip_to_train(_np(z_tr), _np(z_te)), "act": fx.clip_to_train(_np(a_tr), _np(a_te))}
        note = {} if is_pre else {"note": "no Linear+activation encoder: pre = features"}
        for feature, (c_tr, c_te) in codes.items():
            for kind in ("pearson", "spearman"):
                value, corr = fx.mcc(c_tr, s_tr, c_te, s_te, kind)
                rows.append(
                    row(
                        enc,
                        "mcc",
                        value,
                        setting=setting,
                        feature=feature,
                        corr=kind,
                        **(note if feature == "pre" else {}),
                    )
                )
                if (
                    kind == "pearson"
                    and feature == "pre"
                    and enc.spec.seed == first
                    and enc.spec.method in self.cfg.figure_methods
                ):
                    src.matrix(enc, f"corr_{setting}", corr)
        rows += self._common(enc, codes["act"][1], setting, t0)
        return rows

    # --------------------------------------------------------------------------- dsprites
    def _dsprites(self, src: EncoderSource, setting: str) -> list[dict]:
        c = self.cfg
        width = c.width if setting == "dsprites_wide" else c.narrow_width
        rows = []
        for measured in src.measure(
            self.measure_dsprites, setting, width, min(src.seeds), widths=[width], dataset="dsprites"
        ):
            rows += measured
        return rows

    def measure_dsprites(self, enc, src, setting: str, width: int, first: int) -> list[dict]:
        """DCI, MIG, SAP, modularity and the ridge R^2 of the continuous factors of one encoder on ``dsprites``."""
        c = self.cfg
        ds = src.dataset("dsprites")
        names = list(ds.factor_names)
        v_tr, v_te = (fx.reduce_orientation(_np(s.factors)).astype(np.int64) for s in (ds.train, ds.test))
        avg = [names.index(n) for n in AVERAGED]
        rows = []
        t0 = time.perf_counter()
        if enc.spec.width != width:  # raw: K = D whatever was asked; a row with its reason, not a K = D score
            why = f"width {enc.spec.width} (K = D), not K = {width}"
            return [
                row(enc, m, float("nan"), setting=setting, note=why, **({"bins": c.mig_bins[0]} if m == "mig" else {}))
                for m in ("dci_d", "dci_c", "dci_i", "mig", "sap", "modularity")
            ] + [row(enc, "r2_mean", float("nan"), setting=setting, budget=",".join(c.factor_budgets), note=why)]
        f_tr, f_va, f_te = fx.clip_to_train(*(_np(enc.features(s.x)) for s in (ds.train, ds.val, ds.test)))

        def add(metric, value, **cond):
            rows.append(row(enc, metric, value, setting=setting, **cond))

        r, acc = fx.importance_matrix(
            f_tr,
            v_tr,
            f_te,
            v_te,
            seed=enc.spec.seed,
            max_train=c.tree_train,
            n_estimators=c.trees,
            max_depth=c.tree_depth,
        )
        d, comp = fx.dci(r[:, avg])
        why = {} if np.isfinite(d) else {"note": "no unit carries importance (every unit constant on train)"}
        add("dci_d", d, **why)
        add("dci_c", comp, **why)
        add("dci_i", float(acc[avg].mean()))
        for j, n in enumerate(names):
            add("dci_i_factor", acc[j], factor=n)
        for b in c.mig_bins:
            mi, h = fx.mutual_info_matrix(fx.discretize(f_tr, f_te, b), v_te)
            gaps = fx.mig_per_factor(mi, h)
            add("mig", float(gaps[avg].mean()), bins=b)
            if b == c.mig_bins[0]:
                add("modularity", fx.modularity(mi[:, avg]), bins=b)
                for j, n in enumerate(names):
                    add("mig_factor", gaps[j], factor=n, bins=b)
        sap = fx.sap_per_factor(f_tr, v_tr, f_te, v_te)
        add("sap", float(sap[avg].mean()))
        for j, n in enumerate(names):
            add("sap_factor", sap[j], factor=n)
        rows += self._ridge(enc, ds, (f_tr, f_va, f_te), setting)
        if enc.spec.seed == first and enc.spec.method in c.figure_methods:
            src.matrix(enc, f"importance_{setting}", r)
        rows.extend(self._common(enc, f_te, setting, t0))
        return rows

    def _ridge(self, enc, ds, f: tuple[np.ndarray, ...], setting: str) -> list[dict]:
        """Ridge R^2 of ``factors`` per budget (mean over draws) and ``r2_mean`` over factors and budgets."""
        c = self.cfg
        names = list(ds.factor_names)
        missing = [n for n in c.factors if n not in names]
        if missing:
            raise ValueError(f"factors: dsprites has {names}, not {missing}")
        cols = [names.index(n) for n in c.factors]
        t = [s.factors[:, cols].cpu() for s in (ds.train, ds.val, ds.test)]
        r2 = ridge.budget_r2([torch.from_numpy(a) for a in f], t, c.factor_budgets, c.factor_draws, enc.spec.seed)
        rows = [
            row(enc, "r2", v, setting=setting, factor=n, budget=b)
            for b, vals in r2.items()
            for n, v in zip(c.factors, vals.tolist(), strict=True)
        ]
        mean = float(np.mean([v.mean() for v in r2.values()]))
        return rows + [row(enc, "r2_mean", mean, setting=setting, budget=",".join(c.factor_budgets))]

    # --------------------------------------------------------------------------- real data
    def _real(self, src: EncoderSource, name: str) -> list[dict]:
        rows = []
        for measured in src.measure(self.measure_real, name, min(src.seeds), widths=[self.cfg.width], dataset=name):
            rows += measured
        return rows

    def measure_real(self, enc, src, name: str, first: int) -> list[dict]:
        """Label purity, sparse probing and (first seed) the atlas of one encoder on real images."""
        c = self.cfg
        t0 = time.perf_counter()
        ds = src.dataset(name)
        y_tr, y_te = (s.y.cpu().numpy() for s in (ds.train, ds.test))
        m = c.purity_m if len(y_te) >= 500 else c.purity_m_small
        rows = []
        f_tr, f_te = fx.clip_to_train(*(_np(enc.features(s.x)) for s in (ds.train, ds.test)))
        p = fx.purity(f_tr, y_tr, f_te, y_te, ds.n_classes, m=m, n_perm=c.n_perm, seed=enc.spec.seed, dataset=name)
        for metric, value in (
            ("purity", p.mean),
            ("purity_permuted", float(p.permuted.mean())),
            ("purity_excess", p.excess),
            ("unnameable_at_m", float(p.unnameable.sum())),
        ):
            rows.append(row(enc, metric, value, setting="real", m=m))
        for k, value in fx.sparse_probe(f_tr, y_tr, f_te, y_te, ds.n_classes, c.probe_ks).items():
            rows.append(row(enc, "sparse_auroc", value, setting="real", k=k))
        if enc.spec.seed == first and enc.spec.method in c.atlas_methods:
            self._atlas(src, enc, ds, p)
        rows += self._common(enc, f_te, "real", t0)
        return rows

    def _atlas(self, src: EncoderSource, enc, ds, p: fx.Purity) -> None:
        """What the atlas page draws, per unit: incoming weights (K, D) when single-layer, the
        top-9 test indices and their labels (K, 9), (majority label, purity, tail, dead, unnameable)
        (K, 5), and the thumbnails of those test images (:func:`thumbnails`): the report draws the
        atlas from the run's own tables, never from the dataset."""
        w = enc.method.encoder_weight()
        if w is not None:
            src.matrix(enc, "atlas_weight", _np(w))
        top = p.top[:ATLAS_TOP].T
        src.matrix(enc, "atlas_top", top)
        src.matrix(enc, "atlas_top_label", ds.test.y.cpu().numpy()[top])
        src.matrix(enc, "atlas_unit", np.stack([p.majority, p.purity, p.tail, p.dead, p.unnameable], axis=1))
        if ds.image_shape:
            index = np.unique(top)
            for name, values in thumbnails(
                _np(ds.test.x[torch.as_tensor(index, device=ds.test.x.device)]), index, tuple(ds.image_shape[1:])
            ).items():
                src.matrix(enc, name, values)


def thumbnails(
    images: np.ndarray, index: np.ndarray, shape: tuple[int, int], max_side: int = 16
) -> dict[str, np.ndarray]:
    """The stored thumbnails of the test images ``index`` (rows of ``images``, each ``shape`` flattened):
    ``atlas_thumb`` (n, h' w') mean-pooled by an integer factor to at most ``max_side`` pixels a side
    (MNIST 28 -> 14; digits 8 stays 8) and quantised to 256 grey levels over their common range (the
    atlas rescales each tile to its own range: only the levels matter); ``atlas_thumb_index`` (n, 1),
    the test rows they are; ``atlas_thumb_shape`` (1, 4): h', w', h, w."""
    h, w = shape
    f = max(1, -(-max(h, w) // max_side))
    while h % f or w % f:  # an integer factor that divides both sides
        f -= 1
    x = images.reshape(len(images), h // f, f, w // f, f).mean(axis=(2, 4))
    lo, hi = float(x.min()), float(x.max())
    q = np.round((x - lo) / (hi - lo + 1e-12) * 255).reshape(len(images), -1)
    return {
        "atlas_thumb": q,
        "atlas_thumb_index": np.asarray(index).reshape(-1, 1),
        "atlas_thumb_shape": np.array([[h // f, w // f, h, w]]),
    }
