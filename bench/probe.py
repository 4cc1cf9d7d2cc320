"""The standard evaluation (PROTOCOL.md §6): linear probe and kNN on frozen features.

Implemented in torch rather than scikit-learn so that it runs on the run's device and so
that many probes (one per L2 strength and per feature mask, as the pruning protocol needs)
are fitted as one batched problem: the objective is a sum of independent convex problems,
so one L-BFGS run on the sum solves each of them.

Probe: standardise with train statistics -> multinomial logistic regression with
``loss_g = mean CE(X m_g W_g + b_g, y) + l2_g / 2 * ||W_g||^2``, ``l2`` from
``L2_GRID = logspace(-4, 1, 6)`` chosen on val (ties -> the stronger penalty), accuracy on test.
The val-chosen model is the one fitted on train: nothing is selected on the test split.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

L2_GRID = tuple(float(v) for v in torch.logspace(-4, 1, 6, dtype=torch.float64))


def standardize(train: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    """Centre and scale every array with the train mean / std (constant features -> 0)."""
    mean = train.mean(0, keepdim=True)
    std = train.std(0, keepdim=True)
    std = torch.where(std > 1e-8, std, torch.ones_like(std))
    return [(a - mean) / std for a in (train, *others)]


def fit_logreg(
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    l2: float,
    masks: torch.Tensor | None = None,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
    max_iter: int = 200,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit G independent multinomial logistic regressions with one L2 strength at once.

    All G problems share ``l2`` (so they share their conditioning and one L-BFGS run on the
    sum of their losses converges for each); they differ in their feature mask.

    Args:
        x: (N, K) standardised features; y: (N,) labels in [0, n_classes).
        l2: L2 strength. masks: (G, K) 0/1 feature masks, or None for one unmasked model.
        init: warm start (W (G, K, C), b (G, C)), e.g. the solution at a stronger penalty.
    Returns:
        W (G, K, C) (zero on masked features) and b (G, C).
    """
    k = x.shape[1]
    m = torch.ones(1, k, device=x.device, dtype=x.dtype) if masks is None else masks.to(x.dtype)
    g = m.shape[0]
    m3 = m[:, :, None]
    if init is None:
        w0 = torch.zeros(g, k, n_classes, device=x.device, dtype=x.dtype)
        b0 = torch.zeros(g, n_classes, device=x.device, dtype=x.dtype)
    else:
        w0, b0 = init
    w = w0.clone().requires_grad_(True)
    b = b0.clone().requires_grad_(True)
    target = y.repeat(g)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=max_iter, history_size=20,
                            tolerance_grad=1e-5, tolerance_change=1e-9, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        wm = w * m3
        logits = torch.einsum("nk,gkc->gnc", x, wm) + b[:, None, :]
        ce = F.cross_entropy(logits.reshape(-1, n_classes), target, reduction="sum") / x.shape[0]
        loss = ce + 0.5 * l2 * wm.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return (w * m3).detach(), b.detach()


def accuracy(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(G,) accuracies of G linear classifiers (w: (G, K, C), b: (G, C)) on (x, y)."""
    pred = (torch.einsum("nk,gkc->gnc", x, w) + b[:, None, :]).argmax(-1)
    return (pred == y[None, :]).to(torch.float64).mean(1)


@dataclass
class ProbeResult:
    """Per mask: the val-chosen L2, its val and test accuracy, and its weights."""

    test_acc: torch.Tensor  # (M,)
    val_acc: torch.Tensor  # (M,)
    l2: torch.Tensor  # (M,)
    weight: torch.Tensor  # (M, K, C), on standardised features
    bias: torch.Tensor  # (M, C)


def linear_probe(
    f_train: torch.Tensor,
    y_train: torch.Tensor,
    f_val: torch.Tensor,
    y_val: torch.Tensor,
    f_test: torch.Tensor,
    y_test: torch.Tensor,
    n_classes: int,
    masks: torch.Tensor | None = None,
    l2_grid: tuple[float, ...] = L2_GRID,
    standardized: bool = False,
) -> ProbeResult:
    """Linear probe with L2 chosen on val, for one feature set or M masks of it.

    Args:
        f_*: (N, K) frozen features of each split (standardised here with train statistics
            unless ``standardized``). masks: (M, K) 0/1 masks (refit on kept features) or None.
    """
    if not standardized:
        f_train, f_val, f_test = standardize(f_train.double(), f_val.double(), f_test.double())
    dev, k = f_train.device, f_train.shape[1]
    masks = torch.ones(1, k, device=dev) if masks is None else masks.to(dev)
    fits, vals = [], []
    init = None
    for l2 in sorted(l2_grid, reverse=True):  # strong -> weak penalty, each warm-started
        init = fit_logreg(f_train, y_train, n_classes, l2, masks, init=init)
        fits.append(init)
        vals.append(accuracy(f_val, y_val, *init))
    val = torch.stack(vals, 1)  # (M, L), L ordered strong -> weak
    best = val.argmax(1)  # first maximum: ties -> the stronger penalty (the simpler model)
    ar = torch.arange(masks.shape[0], device=dev)
    w = torch.stack([f[0] for f in fits], 1)[ar, best]
    b = torch.stack([f[1] for f in fits], 1)[ar, best]
    grid = torch.tensor(sorted(l2_grid, reverse=True), device=dev, dtype=torch.float64)
    test = accuracy(f_test, y_test, w, b)
    return ProbeResult(test, val[ar, best], grid[best], w, b)


@torch.no_grad()
def knn_accuracy(
    f_train: torch.Tensor, y_train: torch.Tensor, f_test: torch.Tensor, y_test: torch.Tensor,
    n_classes: int, k: int = 20, chunk: int = 2048,
) -> float:
    """k-nearest-neighbour accuracy, cosine similarity, majority vote (ties -> lowest label)."""
    tr = F.normalize(f_train.float(), dim=1, eps=1e-12)
    te = F.normalize(f_test.float(), dim=1, eps=1e-12)
    k = min(k, tr.shape[0])
    correct = 0
    for i in range(0, te.shape[0], chunk):
        idx = (te[i : i + chunk] @ tr.T).topk(k, dim=1).indices
        votes = F.one_hot(y_train[idx], n_classes).sum(1)
        correct += int((votes.argmax(1) == y_test[i : i + chunk]).sum())
    return correct / te.shape[0]
