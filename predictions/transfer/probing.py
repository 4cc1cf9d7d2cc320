"""P2 transfer, the probes: every budget and draw of one encoder on one target as ONE problem.

Classification (:func:`budget_probe`): the target's train features are standardised once with
all target train inputs (no labels; the same for every method), and the G labelled subsets
(budgets x draws) become G logistic regressions on that shared matrix, probe g weighting its
own rows ``1 / n_g`` and every other row 0 (``bench.probe.fit_logreg``'s ``weight``):

    loss_g(W_g, b_g) = sum_{i in S_g} CE(x_i W_g + b_g, y_i) / |S_g| + l2 / 2 ||W_g||^2.

The L2 path runs once for all G (strongest penalty first, warm starts), the L2 is chosen per
probe on the full target val split (ties -> the stronger penalty), and the fit at the fixed
sensitivity L2 is kept from the same path. Accuracy on the target test split.

Regression (:func:`ridge_r2`, dSprites factors): ridge on centred subsets, the penalty chosen
per (subset, factor) on val, R^2 on test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from bench.probe import L2_GRID, accuracy, fit_logreg, standardize

RIDGE_GRID = tuple(float(v) for v in torch.logspace(-4, 3, 8, dtype=torch.float64))


@dataclass
class BudgetProbes:
    """Per labelled subset g: the val-chosen L2, its test accuracy, and the fixed-L2 test accuracy."""

    test_acc: torch.Tensor  # (G,) float64
    l2: torch.Tensor  # (G,)
    fixed_acc: torch.Tensor  # (G,)


def subset_weights(subsets: Sequence[np.ndarray], n_train: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(G, N) row weights: ``1 / |S_g|`` on the rows of subset g, 0 elsewhere."""
    w = torch.zeros(len(subsets), n_train, dtype=torch.float64)
    for g, idx in enumerate(subsets):
        w[g, torch.as_tensor(idx, dtype=torch.int64)] = 1.0 / len(idx)
    return w.to(device)


def budget_probe(
    f_train: torch.Tensor, y_train: torch.Tensor, f_val: torch.Tensor, y_val: torch.Tensor,
    f_test: torch.Tensor, y_test: torch.Tensor, n_classes: int, subsets: Sequence[np.ndarray],
    l2_grid: Sequence[float] = L2_GRID, fixed_l2: float = 1e-2,
) -> BudgetProbes:
    """G = len(subsets) probes of one encoder on one target, fitted as one batched L-BFGS problem.

    Args:
        f_*: (N, K) frozen features of the target's splits (standardised here with all of train).
        subsets: G arrays of train indices (the labelled subsets of every budget and draw).
        l2_grid: L2 strengths the val split chooses from; fixed_l2: the sensitivity row's L2
            (fitted on the same path; chosen by val only if it is in ``l2_grid``).
    """
    x_tr, x_va, x_te = standardize(f_train.float(), f_val.float(), f_test.float())
    g, k = len(subsets), x_tr.shape[1]
    weight = subset_weights(subsets, len(x_tr), x_tr.device)
    masks = torch.ones(g, k, device=x_tr.device)
    grid = {float(v) for v in l2_grid}
    best_val = best_test = best_l2 = fixed = None
    init = None
    for l2 in sorted(grid | {float(fixed_l2)}, reverse=True):
        init = fit_logreg(x_tr, y_train, n_classes, l2, masks, init=init, weight=weight)
        test = accuracy(x_te, y_test, *init)
        if l2 == float(fixed_l2):
            fixed = test
        if l2 not in grid:
            continue
        val = accuracy(x_va, y_val, *init)
        if best_val is None:
            best_val, best_test, best_l2 = val, test, torch.full_like(val, l2)
            continue
        better = val > best_val
        best_val = torch.where(better, val, best_val)
        best_test = torch.where(better, test, best_test)
        best_l2 = torch.where(better, torch.full_like(best_l2, l2), best_l2)
    return BudgetProbes(best_test.cpu(), best_l2.cpu(), fixed.cpu())


def r2_score(target: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """Coefficient of determination per column, ``1 - sum (t - p)^2 / sum (t - mean t)^2``, over dim -2."""
    sse = (target - pred).pow(2).sum(-2)
    sst = (target - target.mean(-2, keepdim=True)).pow(2).sum(-2)
    return 1.0 - sse / sst.clamp_min(1e-12)


@torch.no_grad()
def ridge_r2(
    f_train: torch.Tensor, t_train: torch.Tensor, f_val: torch.Tensor, t_val: torch.Tensor,
    f_test: torch.Tensor, t_test: torch.Tensor, subsets: Sequence[np.ndarray],
    alphas: Sequence[float] = RIDGE_GRID,
) -> torch.Tensor:
    """Test R^2 (G, F) of ridge probes fitted on G train subsets of equal size, per target column.

    Features standardised with all train inputs; on subset S (centred features X, targets T),
    ``beta_a = (X^T X / |S| + a I)^-1 X^T T / |S|`` for every ``a`` in ``alphas`` at once through
    the eigendecomposition of the Gram matrix, intercept unpenalised; ``a`` chosen per (subset,
    factor) by the val R^2 (ties -> the stronger penalty).

    Args:
        f_*: (N, K) frozen features; t_*: (N, F) regression targets (e.g. factor indices).
        subsets: G index arrays of one length.
    """
    x_tr, x_va, x_te = (a.double() for a in standardize(f_train.float(), f_val.float(), f_test.float()))
    idx = torch.as_tensor(np.stack(subsets), dtype=torch.int64, device=x_tr.device)
    xs, ts = x_tr[idx], t_train.double()[idx]  # (G, n, K), (G, n, F)
    mx, mt = xs.mean(1, keepdim=True), ts.mean(1, keepdim=True)
    xc, tc = xs - mx, ts - mt
    n = xs.shape[1]
    evals, evecs = torch.linalg.eigh(xc.transpose(1, 2) @ xc / n)  # (G, K), (G, K, K)
    proj = evecs.transpose(1, 2) @ (xc.transpose(1, 2) @ tc / n)  # (G, K, F)
    a = torch.tensor(sorted(alphas, reverse=True), dtype=torch.float64, device=x_tr.device)
    beta = evecs[None] @ (proj[None] / (evals[None, :, :, None] + a[:, None, None, None]))  # (A, G, K, F)

    def predict(x: torch.Tensor) -> torch.Tensor:
        return (x[None, None] - mx[None]) @ beta + mt[None]  # (A, G, N, F)

    val = r2_score(t_val.double()[None, None], predict(x_va))  # (A, G, F)
    test = r2_score(t_test.double()[None, None], predict(x_te))
    choice = val.argmax(0)  # first maximum: the strongest penalty among ties
    return test.gather(0, choice[None])[0].float()
