"""The standard evaluation (docs/protocol.md §6): the linear probe and kNN on frozen features.

One estimator, used by every prediction: standardise with train statistics, then multinomial
logistic regression

    loss_g(W, b) = mean_n CE(x_n m_g W_g + b_g, y_n) + l2 / 2 * ||m_g W_g||^2,

with the L2 strength chosen on val from ``L2_GRID = logspace(-4, 1, 6)`` (ties -> the stronger
penalty), accuracy on test. ``m_g`` is a 0/1 feature mask: many probes (one per mask, as the
pruning protocol needs, or one per feature set) are fitted as ONE batched L-BFGS problem,
since the objective is a sum of independent convex problems. The regularisation path runs
from the strongest penalty to the weakest, each fit warm-started from the previous one.
It is the same problem as scikit-learn's ``LogisticRegression(C = 1 / (l2 N))`` (a test checks
the accuracies agree within 0.005), written in torch so that it runs on the run's device.
The val-chosen model is the one fitted on train: nothing is selected on the test split.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

L2_GRID = tuple(float(v) for v in torch.logspace(-4, 1, 6, dtype=torch.float64))
# L-BFGS iterations: the first (strongest) penalty from the warm start, then each weaker one
# from the previous solution. Checked against converged fits in tests/test_probe.py.
FIRST_ITER = 100
PATH_ITER = 100


def standardize(train: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    """Centre and scale every array with the train mean / std (constant features -> 0).

    Works on (N, K) arrays or on (G, N, K) stacks of G feature sets (statistics per set)."""
    mean = train.mean(-2, keepdim=True)
    std = train.std(-2, keepdim=True)
    std = torch.where(std > 1e-8, std, torch.ones_like(std))
    return [(a - mean) / std for a in (train, *others)]


def _logits(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Logits of G probes w (G, K, C), b (G, C): (N, G, C) on shared x (N, K); (G, N, C) on x (G, N, K)."""
    g, k, c = w.shape
    if x.dim() == 2:
        return (x @ w.permute(1, 0, 2).reshape(k, g * c)).view(x.shape[0], g, c) + b[None]
    return torch.baddbmm(b[:, None, :], x, w)


def _label_index(y: torch.Tensor, x: torch.Tensor, g: int) -> torch.Tensor:
    """Labels laid out like :func:`_logits`' output, for ``gather`` along the class axis."""
    return y[:, None, None].expand(len(y), g, 1) if x.dim() == 2 else y[None, :, None].expand(g, len(y), 1)


def fit_logreg(
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    l2: float,
    masks: torch.Tensor | None = None,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
    max_iter: int = FIRST_ITER,
    weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """G masked multinomial logistic regressions with one L2 strength, as one L-BFGS problem.

    The closure computes the loss and its gradient analytically in one pass, without autograd:
    with P the softmax of the logits Z and Y the one-hot labels, d CE / d Z = (P - Y) * row
    weight, so dW = m * (X^T (P - Y) w + l2 m W) and db = sum_n (P - Y) w. The logits of all G
    probes are ONE matmul laid out (G, C, N) (classes in the middle, rows contiguous), so that the
    softmax's reductions over C = 10 classes are vectorised over N: on CPU, a logsumexp /
    softmax over a last axis of 10 is ~10x slower, and autograd's backward of it slower still.
    All buffers are allocated once per fit. ``tests/test_probe.py`` checks this gradient against
    autograd's of the same loss.

    Args:
        x: (N, K) standardised features shared by the probes, or (G, N, K) one set per probe.
        y: (N,) labels in [0, n_classes). l2: L2 strength.
        masks: (G, K) 0/1 keep-masks, or None (all kept; G = 1 for shared x).
        init: warm start (W (G, K, C), b (G, C)).
        weight: (G, N) row weights, each row summing to 1: probe g's cross-entropy is
            ``sum_n weight[g, n] CE_gn`` instead of the mean over the N rows, so G probes on
            different subsets of shared x (weight 1/n_g on their rows, 0 elsewhere) are one problem.
    Returns:
        W (G, K, C) (zero on masked features) and b (G, C), in x's dtype.
    """
    loss_grad, w, b = _problem(x, y, n_classes, l2, masks, init, weight)
    opt = torch.optim.LBFGS(
        [w, b],
        lr=1,
        max_iter=max_iter,
        history_size=20,
        tolerance_grad=1e-6,
        tolerance_change=1e-10,
        line_search_fn="strong_wolfe",
    )

    def closure():
        loss, w.grad, b.grad = loss_grad()
        return loss

    opt.step(closure)
    return _masked_weight(w, masks, x.dtype), b.detach().clone()


def _masked_weight(w: torch.Tensor, masks: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """The solver's (G, C, K) weights, masked, laid out (G, K, C) as callers expect."""
    w = w.detach() if masks is None else w.detach() * masks.to(dtype)[:, None, :]
    return w.transpose(1, 2).contiguous()


def _problem(x, y, n_classes, l2, masks=None, init=None, weight=None):
    """The objective of :func:`fit_logreg` as ``loss_grad() -> (loss, dW, db)`` on the solver's
    variables W (G, C, K) (the transpose of the returned layout) and b (G, C), returned with it.

    ``loss = sum_g [sum_n w_gn CE(z_gn, y_n) + l2 / 2 ||m_g W_g||^2]``, w_gn = 1 / N unless
    ``weight``; the same sum as autograd's of ``logsumexp - gather`` on the (N, G, C) logits."""
    n, k = x.shape[-2], x.shape[-1]
    g = masks.shape[0] if masks is not None else (1 if x.dim() == 2 else x.shape[0])
    c, dev, dt = n_classes, x.device, x.dtype
    m = None if masks is None else masks.to(device=dev, dtype=dt)[:, None, :]  # (G, 1, K)
    if init is None:
        w = torch.zeros(g, c, k, device=dev, dtype=dt)
        b = torch.zeros(g, c, device=dev, dtype=dt)
    else:
        w = init[0].to(dt).transpose(1, 2).clone(memory_format=torch.contiguous_format)
        b = init[1].to(dt).clone()
    # Rows grouped by class (a fixed permutation: the loss is a sum over rows), so that the
    # entries z_{g, y_n, n} of the (G, C, N) logits are C strided slices, not a gather/scatter.
    order = torch.argsort(y, stable=True).to(dev)
    x = x.index_select(-2, order)
    counts = torch.bincount(y, minlength=c).tolist()
    ends = list(itertools.accumulate(counts))
    slices = [(j, slice(ends[j] - counts[j], ends[j])) for j in range(c) if counts[j]]
    shared = x.dim() == 2
    xt = x.T if shared else x.transpose(1, 2)  # (K, N) or (G, K, N): BLAS reads the transpose
    rw = None if weight is None else weight.to(device=dev, dtype=dt).index_select(1, order)[:, None, :]  # (G, 1, N)
    # exp(z - max) below exp(floor) ~ 1e-19 (float32) is clamped up to it: subnormal numbers from
    # exp and the products after it make CPU arithmetic ~100x slower (a GEMM over the (G, C, N)
    # probabilities with a fraction of them subnormal takes seconds). Changes nothing the loss can
    # represent: it adds < C exp(floor) to a sum >= 1, and < exp(floor) |x| to a gradient entry.
    floor = math.log(torch.finfo(dt).tiny) / 2
    z = torch.empty(g, c, n, device=dev, dtype=dt)
    mx = torch.empty(g, 1, n, device=dev, dtype=dt)
    s = torch.empty(g, 1, n, device=dev, dtype=dt)

    @torch.no_grad()
    def loss_grad():
        wm = w if m is None else w * m
        if shared:
            torch.addmm(b.reshape(g * c, 1), wm.view(g * c, k), xt, out=z.view(g * c, n))
        else:
            torch.baddbmm(b[:, :, None], wm, xt, out=z)
        torch.amax(z, 1, keepdim=True, out=mx)
        z.sub_(mx)  # z - max: CE_n = log sum_c exp(z_c - max) - (z_y - max), two terms >= 0
        if rw is None:  # sum_gn (z_y - max): no cancellation against the logsumexp's sum
            picked = sum(z[:, j, r].sum() for j, r in slices)
        else:
            picked = sum((rw[:, 0, r] * z[:, j, r]).sum() for j, r in slices)
        z.clamp_min_(floor).exp_()
        torch.sum(z, 1, keepdim=True, out=s)
        if rw is None:
            ce = (torch.log(s).sum() - picked) / n
            z.mul_(s.reciprocal_().mul_(1.0 / n))  # P / N
            for j, r in slices:
                z[:, j, r].sub_(1.0 / n)  # (P - Y) / N
        else:
            ce = (rw * torch.log(s)).sum() - picked
            z.mul_(rw / s)  # P w
            for j, r in slices:
                z[:, j, r].sub_(rw[:, 0, r])  # (P - Y) w
        dw = torch.mm(z.view(g * c, n), x).view(g, c, k) if shared else torch.bmm(z, x)
        dw.add_(wm, alpha=l2)
        if m is not None:
            dw.mul_(m)
        loss = ce + 0.5 * l2 * wm.pow(2).sum()
        return loss, dw, z.sum(-1)

    return loss_grad, w, b


@torch.no_grad()
def accuracy(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(G,) float64 accuracies of G probes (w (G, K, C), b (G, C)) on x (N, K) or (G, N, K)."""
    hit = _logits(x, w.to(x.dtype), b.to(x.dtype)).argmax(-1) == _label_index(y, x, w.shape[0])[..., 0]
    return hit.double().mean(0 if x.dim() == 2 else 1)


def probe_path(
    x: torch.Tensor,
    y: torch.Tensor,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    n_classes: int,
    l2s: Sequence[float] = L2_GRID,
    masks: torch.Tensor | None = None,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
    first_iter: int = FIRST_ITER,
    path_iter: int = PATH_ITER,
    path: dict[float, tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """G probes, each with its own L2 strength chosen on val from ``l2s``.

    Fits ``l2s`` from the strongest penalty to the weakest, each warm-started from the previous
    (the first from ``init``), and keeps, per probe, the fit with the best val accuracy (ties:
    the stronger penalty).

    Args:
        x, x_val: (N, K) standardised features shared by the probes, or (G, N, K) each.
        masks: (G, K) keep-masks or None. init: warm start (W (G, K, C), b (G, C)).
        path: if given, filled with every fit of the path, ``{l2: (W (G, K, C), b (G, C))}``.
    Returns:
        W (G, K, C), b (G, C) and the chosen L2 strengths (G,) (float64).
    """
    best = None
    for i, l2 in enumerate(sorted(l2s, reverse=True)):
        init = fit_logreg(x, y, n_classes, l2, masks, init=init, max_iter=first_iter if i == 0 else path_iter)
        if path is not None:
            path[float(l2)] = init
        acc = accuracy(x_val, y_val, *init)
        if best is None:
            best = [acc, init[0].clone(), init[1].clone(), torch.full_like(acc, l2)]
            continue
        better = acc > best[0]
        best[0] = torch.where(better, acc, best[0])
        best[1][better], best[2][better], best[3][better] = init[0][better], init[1][better], l2
    return best[1], best[2], best[3]


@dataclass
class ProbeResult:
    """Per probe: the val-chosen L2, its val and test accuracy, and its weights."""

    test_acc: torch.Tensor  # (G,) float64
    val_acc: torch.Tensor  # (G,)
    l2: torch.Tensor  # (G,)
    weight: torch.Tensor  # (G, K, C), on standardised features
    bias: torch.Tensor  # (G, C)
    path: dict[float, tuple[torch.Tensor, torch.Tensor]] | None = None  # every L2's fit (``keep_path``)


def _check_probe_inputs(n_classes: int, splits) -> None:
    """One-line ValueError for input the probe cannot score (before, an empty train set gave a
    silent chance accuracy, NaN features an L-BFGS RuntimeError or an accuracy of NaN logits, and
    mismatched lengths an IndexError)."""
    if n_classes < 1:
        raise ValueError(f"n_classes: need >= 1, got {n_classes}")
    ks = set()
    for name, f, y in splits:
        if f.dim() not in (2, 3) or y.dim() != 1 or f.shape[-2] != len(y) or len(y) < 1:
            raise ValueError(
                f"f_{name}, y_{name}: need (N, K) or (G, N, K) features and (N,) labels with "
                f"N >= 1, got {tuple(f.shape)} and {tuple(y.shape)}"
            )
        if not bool(torch.isfinite(f).all()):
            raise ValueError(f"f_{name}: features contain NaN or inf")
        if int(y.min()) < 0 or int(y.max()) >= n_classes:
            raise ValueError(f"y_{name}: labels must lie in 0..{n_classes - 1}, got {int(y.min())}..{int(y.max())}")
        ks.add(f.shape[-1])
    if len(ks) != 1:
        raise ValueError(f"f_train, f_val, f_test: need one number of features, got {sorted(ks)}")


def linear_probe(
    f_train: torch.Tensor,
    y_train: torch.Tensor,
    f_val: torch.Tensor,
    y_val: torch.Tensor,
    f_test: torch.Tensor,
    y_test: torch.Tensor,
    n_classes: int,
    masks: torch.Tensor | None = None,
    l2_grid: Sequence[float] = L2_GRID,
    standardized: bool = False,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
    keep_path: bool = False,
) -> ProbeResult:
    """The linear probe of docs/protocol.md §6, for one feature set, G masks of it, or G feature sets.

    Args:
        f_*: (N, K) frozen features of each split, or (G, N, K) stacks; standardised here with
            train statistics unless ``standardized``. masks: (G, K) 0/1 masks (refit on the kept
            features) or None. init: warm start (W (G, K, C), b (G, C)).
        keep_path: also return every L2's fit (:attr:`ProbeResult.path`), e.g. to warm-start
            pruned probes at the strongest penalty from the unpruned probe's fit there.
    Raises:
        ValueError: For an empty split, labels that do not match the features or lie outside
            ``0..n_classes - 1``, non-finite features, or splits with different K.
    """
    _check_probe_inputs(n_classes, (("train", f_train, y_train), ("val", f_val, y_val), ("test", f_test, y_test)))
    if not standardized:
        f_train, f_val, f_test = standardize(f_train.float(), f_val.float(), f_test.float())
    path = {} if keep_path else None
    w, b, l2 = probe_path(f_train, y_train, f_val, y_val, n_classes, l2_grid, masks, init, path=path)
    return ProbeResult(accuracy(f_test, y_test, w, b), accuracy(f_val, y_val, w, b), l2, w, b, path)


@torch.no_grad()
def knn_accuracy(
    f_train: torch.Tensor,
    y_train: torch.Tensor,
    f_test: torch.Tensor,
    y_test: torch.Tensor,
    n_classes: int,
    k: int = 20,
    chunk: int = 2048,
) -> float:
    """k-nearest-neighbour accuracy, cosine similarity, majority vote (ties -> lowest label).

    Raises:
        ValueError: For an empty train or test set, labels that do not match the features or lie
            outside ``0..n_classes - 1``, or non-finite features.
    """
    if len(f_train) < 1 or len(f_test) < 1:
        raise ValueError(f"knn_accuracy: need train and test rows, got {len(f_train)} and {len(f_test)}")
    if len(y_train) != len(f_train) or len(y_test) != len(f_test):
        raise ValueError(
            f"knn_accuracy: labels ({len(y_train)}, {len(y_test)}) do not match "
            f"features ({len(f_train)}, {len(f_test)})"
        )
    if int(y_train.min()) < 0 or int(y_train.max()) >= n_classes:
        raise ValueError(
            f"y_train: labels must lie in 0..{n_classes - 1}, got {int(y_train.min())}..{int(y_train.max())}"
        )
    if not (bool(torch.isfinite(f_train).all()) and bool(torch.isfinite(f_test).all())):
        raise ValueError("knn_accuracy: features contain NaN or inf")
    tr = F.normalize(f_train.float(), dim=1, eps=1e-12)
    te = F.normalize(f_test.float(), dim=1, eps=1e-12)
    k = min(k, tr.shape[0])
    correct = 0
    for i in range(0, te.shape[0], chunk):
        idx = (te[i : i + chunk] @ tr.T).topk(k, dim=1).indices
        votes = F.one_hot(y_train[idx], n_classes).sum(1)
        correct += int((votes.argmax(1) == y_test[i : i + chunk]).sum())
    return correct / te.shape[0]
