"""What the independence question reads of one code (docs/protocol.md 11.2): pure functions of arrays.

* :func:`val_halves`: val split in two stratified halves. Half A chooses the probe's L2, half B is the
  "val" on which the view chooses lambda* (docs/protocol.md 11.2a), so no split serves two selections
  (P1 splits val in halves for the same reason); test is read once.
* :func:`outcomes`: clean accuracy and retained accuracy of one frozen probe under every perturbation of
  :mod:`bench.evaluate.robustness` (unit zeroing, input noise, occlusion), on val half B and on test.
* :func:`redundancy`: the dose a code received: Gaussian TC (the manipulation check: what the subject's
  TC term pushes on), binned pairwise MI and kNN predictability (what it does not optimise directly),
  mean |corr| and the dead fraction.
* :func:`transfer_kappa`: P2's chance-corrected transfer accuracy at n labelled target examples per
  class (the pair's own labelled draws and batched probe, :mod:`predictions.transfer`).
* :func:`rotations`: the rotation matrices R(t) of :func:`bench.evaluate.rotation.rotation_ladder`.
* :func:`factor_outcomes`: MCC against the true factors and, for each dependent pair of factors, the
  |corr| of the two units matched to them against the factors' own correlation; the correlation of
  squares (energy dependence) of units and factors; :func:`marginal_tv`, how far a coupling moved the marginals.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from bench.evaluate import factors as fx
from bench.evaluate import metrics
from bench.evaluate import robustness as R
from bench.evaluate.rotation import rotation_ladder
from predictions.transfer import pairs as P
from predictions.transfer.probing import budget_probe

Encode = Callable[[torch.Tensor], torch.Tensor]
KNN_ROWS = 2000  # test rows the kNN predictability reads (mnist1d's test has 10,000: the cost is linear in them)


def val_halves(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two disjoint halves of a labelled split, stratified: within each class the rows alternate A, B, A, ...
    in their order (A gets the odd one out). Deterministic (no random draw). Returns sorted index tensors
    on ``y``'s device."""
    yc = y.detach().cpu()
    a, b = [], []
    for c in torch.unique(yc):
        idx = torch.nonzero(yc == c).flatten()
        a.append(idx[0::2])
        b.append(idx[1::2])
    return tuple(torch.sort(torch.cat(h)).values.to(y.device) for h in (a, b))  # type: ignore[return-value]


def outcomes(
    encode: Encode,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    n_classes: int,
    *,
    image_shape: tuple[int, int, int] | None = None,
    seed: int = 0,
    fractions: Sequence[float] = R.ZERO_FRACTIONS,
    sigmas: Sequence[float] = R.NOISE_SIGMAS,
    occlusions: Sequence[float] = R.OCCLUSIONS,
) -> list[dict]:
    """Clean and perturbed accuracy of one frozen probe, on val half B (``split="val"``) and test.

    The probe (:func:`bench.evaluate.robustness.fit_frozen_probe`) is fitted on ``x_train``'s clean features
    with its L2 chosen on val half A (:func:`val_halves`); every perturbation of
    :func:`bench.evaluate.robustness.perturbed_accuracies` (seeded by ``seed``: the same draws for every code
    of that seed) is scored with it. Retained accuracy r = (acc - chance) / (acc_clean - chance).

    Returns:
        Rows ``{"split", "perturbation", "level", "accuracy", "retained"}``: the clean row (``"none"``) and
        one per perturbed level, then per split the mean retained accuracy of each perturbation kind and of
        every perturbed level (``"level": nan``, ``"summary": True``; ``"all"`` weighs every level equally,
        :func:`bench.evaluate.robustness.summarize`).
    """
    a, b = val_halves(y_val)
    with torch.no_grad():
        f_train, f_a = encode(x_train), encode(x_val[a])
    probe = R.fit_frozen_probe(f_train, y_train, f_a, y_val[a], n_classes)
    x_sd = x_train.std(0)
    rows: list[dict] = []
    for split, x, y in (("val", x_val[b], y_val[b]), ("test", x_test, y_test)):
        acc = R.perturbed_accuracies(
            probe,
            encode,
            x,
            y,
            x_sd,
            image_shape=image_shape,
            fractions=fractions,
            sigmas=sigmas,
            occlusions=occlusions,
            seed=seed,
        )
        clean = acc[0][2]
        r = metrics.retained_accuracy(np.array([v for _, _, v, _ in acc]), clean, probe.chance, R.MIN_GAP)
        these = [
            {"split": split, "perturbation": kind, "level": level, "accuracy": v, "retained": float(ri)}
            for (kind, level, v, _), ri in zip(acc, r, strict=True)
        ]
        rows += these
        summary = R.summarize(these, split)
        rows += [
            {"split": split, "perturbation": k, "level": math.nan, "retained": v, "summary": True}
            for k, v in summary.items()
        ]
    return rows


def redundancy(f_train: torch.Tensor, f_test: torch.Tensor, knn_k: int = 10, mi_bins: int = 20) -> dict[str, float]:
    """The dependence between the units of a code, on test (kNN regressors fitted on train): Gaussian TC
    (nats), mean binned pairwise MI (nats, Miller-Madow), kNN predictability (mean test R^2 of each unit
    from the others, on the first :data:`KNN_ROWS` test rows), mean |corr| and dead fraction."""
    return {
        "gaussian_tc": metrics.gaussian_tc(f_test),
        "pairwise_mi": metrics.pairwise_mi_binned(f_test, bins=mi_bins),
        "knn_predictability": metrics.nonlinear_predictability(f_train, f_test[:KNN_ROWS], k=knn_k),
        "mean_abs_corr": metrics.mean_abs_offdiag_corr(f_test),
        "dead_fraction": metrics.dead_fraction(f_test),
    }


def transfer_kappa(
    encode: Encode, target, seed: int, pair: str, budget: str = "10", draws: int = 5
) -> dict[str, float]:
    """P2's transfer kappa at ``budget`` labelled target examples per class, mean over ``draws`` draws.

    The labelled subsets are P2's (:func:`predictions.transfer.pairs.draw_subsets`: seeded by seed, pair,
    budget and draw, never the method), the probe P2's batched one with its scalar scaling
    (:func:`predictions.transfer.probing.budget_probe`); its L2 is chosen on the target's val half A
    and it is scored on val half B (``"val"``) and on test (``"test"``)."""
    subsets = P.draw_subsets(target.train.y, budget, draws, seed, pair)
    a, b = val_halves(target.val.y)
    with torch.no_grad():
        f_tr, f_va, f_te = (encode(s.x) for s in (target.train, target.val, target.test))
    out = {}
    for split, f, y in (("val", f_va[b], target.val.y[b]), ("test", f_te, target.test.y)):
        res = budget_probe(f_tr, target.train.y, f_va[a], target.val.y[a], f, y, target.n_classes, subsets)
        out[split] = float(P.kappa(res.test_acc, target.n_classes).mean())
    return out


def rotations(k: int, ts: Sequence[float], seed: int) -> list[torch.Tensor]:
    """The (K, K) float64 rotations R(t) = expm(t S) of :func:`bench.evaluate.rotation.rotation_ladder`
    (one S per seed, ||S||_F = sqrt(K)): the ladder applied to the identity. R(0) is the identity."""
    return rotation_ladder(torch.eye(k, dtype=torch.float64), ts, seed=seed)


def train_whiteness(f_train: torch.Tensor) -> float:
    """Largest |off-diagonal| of the train correlation matrix of a code (0 for a whitened code)."""
    c = metrics.correlation(f_train)
    return float((c - torch.diag(torch.diagonal(c))).abs().max())


def pre_activations(method, x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """z = W x + b of a single-layer Linear+activation encoder (what each unit reads) and True; else the
    deployed features and False."""
    if method.encoder_weight() is None:
        return method.encode_all(x), False
    with torch.no_grad():
        return torch.cat([method.encoder(x[i : i + 8192]) for i in range(0, len(x), 8192)]), True


def _abs_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(K, F) |Pearson correlation| of the columns of a (N, K) and b (N, F); 0 for a constant column."""
    a = a - a.mean(0)
    b = b - b.mean(0)
    na, nb = np.linalg.norm(a, axis=0), np.linalg.norm(b, axis=0)
    return np.abs((a.T @ b) / np.maximum(np.outer(na, nb), 1e-300))


def square_corr(z_train: np.ndarray, z: np.ndarray) -> float:
    """Mean over unit pairs of corr(u_i^2, u_j^2), u the code standardised with train mean and sd: energy
    dependence, which an uncorrelated code can still have (elliptical sources: 0.2 by construction)."""
    sd = z_train.std(0)
    u = (z - z_train.mean(0)) / np.where(sd > 0, sd, 1.0)
    c = np.corrcoef((u * u).T)
    k = c.shape[0]
    off = c[~np.eye(k, dtype=bool)]
    return float(np.nanmean(off)) if k > 1 else math.nan


def factor_outcomes(
    z_train: np.ndarray, s_train: np.ndarray, z_test: np.ndarray, s_test: np.ndarray, pairs: Sequence[tuple[int, int]]
) -> dict[str, float]:
    """A code against its true factors (docs/protocol.md 11.2c); codes are clipped to their train range first.

    * ``mcc``: :func:`bench.evaluate.factors.mcc` (Pearson, matching on train, scored on test);
    * per dependent pair (a, b) of factors, with u_a, u_b the units the same train matching gives them:
      ``pair_unit_corr`` = |corr_test(u_a, u_b)|, ``pair_source_corr`` = corr_test(s_a, s_b) (Pearson, the same
      statistic: like with like), ``pair_excess`` = the first minus |the second| (0: the code keeps the
      factors' dependence; -|rho|: it removed it), each the mean over the pairs;
    * ``sq_corr``, ``sq_corr_sources``: :func:`square_corr` of the code and of the factors, on test.
    """
    z_tr, z_te = fx.clip_to_train(z_train, z_test)
    value, _ = fx.mcc(z_tr, s_train, z_te, s_test)
    units, sources = linear_sum_assignment(-_abs_corr(z_tr, s_train))
    unit_of = dict(zip(sources.tolist(), units.tolist(), strict=True))
    unit_c, source_c = [], []
    for a, b in pairs:
        if a in unit_of and b in unit_of:
            unit_c.append(float(_abs_corr(z_te[:, [unit_of[a]]], z_te[:, [unit_of[b]]])[0, 0]))
            source_c.append(float(np.corrcoef(s_test[:, a], s_test[:, b])[0, 1]))
    out = {"mcc": value, "sq_corr": square_corr(z_tr, z_te), "sq_corr_sources": square_corr(s_train, s_test)}
    if unit_c:
        out["pair_unit_corr"] = float(np.mean(unit_c))
        out["pair_source_corr"] = float(np.mean(source_c))
        out["pair_excess"] = float(np.mean(np.array(unit_c) - np.abs(source_c)))
    return out


def marginal_tv(v: np.ndarray, levels: int) -> float:
    """Mean over the columns of ``v`` (N, F) integer grid indices in [0, levels) of the total variation distance
    of their empirical law from the uniform one: 0 for dsprites' uncoupled positions, > 0 where a coupling also
    moves the marginals (docs/protocol.md 11.2c)."""
    tv = [0.5 * np.abs(np.bincount(c.astype(int), minlength=levels) / len(c) - 1.0 / levels).sum() for c in v.T]
    return float(np.mean(tv))
