"""P4 interpretability, the dSprites ridge probe: R^2 of continuous factors from frozen codes.

A secondary of P4 (docs/protocol.md, P4): ridge R^2 of ``pos_x``, ``pos_y`` and ``scale`` from a
code, with {16, 64, 256, all} labelled train examples in total. Subsets are drawn at random without
replacement, seeded by (seed, "dsprites", budget, draw) only, never by the method, so every method
gets the same labelled rows. Per subset: ridge on centred, train-standardised features for every
penalty of :data:`RIDGE_GRID` at once; the penalty is chosen per (subset, factor) on the val split
(ties -> the stronger), R^2 scored on test, averaged over draws.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import torch

from bench.evaluate.probe import standardize

RIDGE_GRID = tuple(float(v) for v in torch.logspace(-4, 3, 8, dtype=torch.float64))
ALL = "all"


def budget_size(budget: str) -> int | None:
    """``"16"`` -> 16; ``"all"`` -> None. Raises ValueError for anything else."""
    if budget == ALL:
        return None
    n = int(budget)
    if n < 1:
        raise ValueError(f"budget must be >= 1 or 'all', got {budget!r}")
    return n


def random_subsets(n_train: int, budget: str, draws: int, seed: int, key: str = "dsprites") -> list[np.ndarray]:
    """``draws`` sorted index arrays of ``budget`` train rows in total (one array of every row for
    ``all`` or a budget >= n_train), from (seed, key, budget, draw) only."""
    n = budget_size(budget)
    if n is None or n >= n_train:
        return [np.arange(n_train)]
    out = []
    for d in range(draws):
        ss = np.random.SeedSequence([int(seed), zlib.crc32(key.encode()), zlib.crc32(budget.encode()), int(d)])
        out.append(np.sort(np.random.default_rng(ss).choice(n_train, n, replace=False)))
    return out


def r2_score(target: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """Coefficient of determination per column, ``1 - sum (t - p)^2 / sum (t - mean t)^2``, over dim -2."""
    sse = (target - pred).pow(2).sum(-2)
    sst = (target - target.mean(-2, keepdim=True)).pow(2).sum(-2)
    return 1.0 - sse / sst.clamp_min(1e-12)


@torch.no_grad()
def ridge_r2(
    f_train: torch.Tensor,
    t_train: torch.Tensor,
    f_val: torch.Tensor,
    t_val: torch.Tensor,
    f_test: torch.Tensor,
    t_test: torch.Tensor,
    subsets: Sequence[np.ndarray],
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


def budget_r2(
    f: Sequence[torch.Tensor], t: Sequence[torch.Tensor], budgets: Sequence[str], draws: Sequence[int], seed: int
) -> dict[str, np.ndarray]:
    """Budget -> (F,) test R^2 averaged over that budget's draws; ``f``, ``t``: (train, val, test)
    features (N, K) and targets (N, F)."""
    n_train = len(f[0])
    out = {}
    for b, d in zip(budgets, draws, strict=True):
        subsets = random_subsets(n_train, b, d, seed)
        out[b] = ridge_r2(f[0], t[0], f[1], t[1], f[2], t[2], subsets).mean(0).double().cpu().numpy()
    return out
