"""The depth question's per-layer measures of one encoder (torch): every layer read the same way.

For each layer l of an encoder (a stack's or a three-layer reference's ``layer_features``; a plain
method is one layer), on frozen features:

* the linear probe of docs/protocol.md §6 (:func:`bench.evaluate.probe.linear_probe`: probe-train labels,
  L2 chosen on val, test accuracy once): ``acc``, ``val_acc``; on ``dsprites`` the label is the shape,
  so ``acc`` is the shape accuracy;
* redundancy on the first ``n_eval`` test inputs (P1's instruments, :mod:`bench.evaluate.metrics`):
  ``mi`` (mean pairwise binned MI, Miller-Madow), ``knn_r2`` (kNN predictability, fitted on probe-train),
  ``gaussian_tc`` (the manipulation check: what the subject's proxy targets), ``dead_fraction``;
* ``energy_dep``: :func:`energy_dependence`, the dependence a decorrelated code can keep and a second
  layer could still find;
* ``cka_prev``: debiased CKA of standardised units (:func:`bench.evaluate.similarity.cka`) between layer l
  and layer l - 1 (layer 0 = the input), and the whole layer x layer map;
* ``kappa``: chance-corrected accuracy of P2's few-label probe (:func:`predictions.transfer.probing.budget_probe`,
  P2's primary scalar scaling: :data:`SCALING`) at ``n`` labelled examples per class, in domain (P2's is a
  transfer pair's target; here the pretraining dataset itself), mean over draws;
* ``aurc``: P1's area under the retained-accuracy curve, random unit order, frozen probe
  (:func:`predictions.pruning.curves.structured_pruning` and ``summarize``);
* on ``dsprites``, ``pos_r2``: ridge R^2 of ``pos_x`` and ``pos_y`` from the code (P4's
  :func:`predictions.interpretability.ridge.ridge_r2`, all train rows, penalty chosen on val), the nuisance
  that should fall while the class (shape) accuracy rises.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from bench.evaluate import metrics, similarity
from predictions.interpretability.ridge import ridge_r2
from predictions.pruning import curves
from predictions.transfer import pairs
from predictions.transfer.probing import budget_probe

POSITION = ("pos_x", "pos_y")
AURC_KEY = ("random", "frozen")
# P2's primary, rotation-invariant scaling (one scalar for all units); the identity control holds under it
# because an identity layer passes the layer below on unstandardised (baselines/stack.py)
SCALING = "scalar"


def energy_dependence(f: torch.Tensor) -> float:
    """Mean correlation of squared standardised activations over pairs of live units.

    ``mean_{i != j} corr(z_i^2, z_j^2)`` with ``z`` each unit z-scored on these rows (Schwartz &
    Simoncelli 2001; Hyvarinen, Hoyer & Inki 2001: the variance dependence left between linear filters
    of natural data). Decorrelated units can still co-vary in magnitude; a positive value is dependence a
    layer above could model. nan when fewer than 2 units are live or an entry is non-finite."""
    z = similarity.standardise(f)
    if not bool(torch.isfinite(z).all()):
        return math.nan
    live = z.abs().sum(0) > 0
    if int(live.sum()) < 2:
        return math.nan
    r = metrics.correlation(z[:, live].pow(2))
    k = r.shape[0]
    return float((r.sum() - torch.diagonal(r).sum()) / (k * (k - 1)))


def layers_of(method, x: torch.Tensor) -> list[torch.Tensor]:
    """Every layer's features of ``x``: ``layer_features`` where the method has it, else its one layer."""
    fn = getattr(method, "layer_features", None)
    return list(fn(x)) if fn is not None else [method.encode_all(x)]


def cka_map(codes: list[torch.Tensor]) -> np.ndarray:
    """Debiased CKA of standardised units between every pair of ``codes`` (same rows), symmetric."""
    n = len(codes)
    out = np.eye(n)
    for i in range(n):
        for j in range(i):
            out[i, j] = out[j, i] = similarity.cka(codes[i], codes[j])
        out[i, i] = similarity.cka(codes[i], codes[i])
    return out


def kappa_at(f, ys, n_classes: int, per_class: int, draws: int, seed: int) -> tuple[float, str]:
    """P2's few-label kappa in domain: ``per_class`` labelled train examples per class, ``draws`` draws
    (seeded by the job's seed only, never the method); ``(nan, why)`` where the labels are too few."""
    budget = str(per_class)
    why = pairs.infeasible(ys[0], n_classes, budget)
    if why:
        return math.nan, why
    subsets = pairs.draw_subsets(ys[0], budget, draws, seed, "depth")
    res = budget_probe(f[0], ys[0], f[1], ys[1], f[2], ys[2], n_classes, subsets, scaling=SCALING)
    return float(pairs.kappa(res.test_acc, n_classes).mean()), ""


def aurc_random_frozen(f, ys, n_classes: int, seed: int, draws: int = 5) -> float:
    """P1's AURC of the random unit order under the frozen probe (nan near chance)."""
    cv = curves.structured_pruning(
        f[0],
        ys[0],
        f[1],
        ys[1],
        f[2],
        ys[2],
        n_classes,
        criteria=("random",),
        random_draws=draws,
        seed=seed,
        rank=False,
    )
    return float(curves.summarize(cv, 1.0 / n_classes).aurc[AURC_KEY])


def position_r2(f, ds) -> dict[str, float]:
    """Ridge R^2 of each position factor of ``dsprites`` from the code (all train rows, val-chosen penalty)."""
    names = list(ds.factor_names)
    cols = [names.index(n) for n in POSITION]
    t = [s.factors[:, cols] for s in (ds.probe_train, ds.val, ds.test)]
    r2 = ridge_r2(f[0], t[0], f[1], t[1], f[2], t[2], [np.arange(len(f[0]))])[0]
    return {n: float(v) for n, v in zip(POSITION, r2.tolist(), strict=True)}
