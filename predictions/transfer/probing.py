"""P2 transfer, the probes: every budget and draw of one encoder on one target, batched.

Classification (:func:`budget_probe`): the target's train features are scaled once with all
target train inputs (no labels; the same for every method; :func:`scale_codes`: one scalar for
all units, so no rotation of a code changes its probe, or v1's per-unit standardisation, the
sensitivity row), and each of the G labelled subsets (budgets x draws) gets its own multinomial
logistic regression on its own rows,

    loss_g(W_g, b_g) = sum_{i in S_g} CE(x_i W_g + b_g, y_i) / |S_g| + l2 / 2 ||W_g||^2.

The subsets are gathered, grouped by size (all draws of one budget have one size), into
(G_b, n_b, K) stacks, so a closure touches sum_g |S_g| rows rather than G times all N train rows.
The G problems are independent, and so is their optimisation (:func:`fit_subsets`): a batched
L-BFGS with each probe's own curvature history, line search and stopping rule, so a probe's fit
does not depend on which other subsets share the batch. The L2 path runs strongest penalty first
(warm starts), the L2 is chosen per probe on the full target val split (ties -> the stronger
penalty), and the fit at the fixed sensitivity L2 is kept from the same path. Accuracy on the
target test split.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from bench.evaluate.probe import FIRST_ITER, L2_GRID, accuracy, standardize

RIDGE_GRID = tuple(float(v) for v in torch.logspace(-4, 3, 8, dtype=torch.float64))
SCALINGS = ("scalar", "unit")  # the main rows' rotation-invariant scaling; v1's per-unit standardisation


def scale_codes(train: torch.Tensor, *others: torch.Tensor, scaling: str = "scalar") -> list[torch.Tensor]:
    """Scale codes with statistics of ``train`` (all target train inputs, no labels).

    ``scalar``: centre with the train mean code and divide every unit by one scalar
    ``s = sqrt(tr Cov_train / K)`` (1 for a constant code), so ``(x - mu) / s`` maps a rotated
    code ``x Q`` to the rotated scaled code: an L2-penalised linear probe reads both alike.
    ``unit``: v1's per-unit standardisation (:func:`bench.evaluate.probe.standardize`), which whitens a
    decorrelated code (noise directions included), so it is not rotation invariant.

    Args:
        train: (N, K) codes; others: (M, K) codes scaled with train's statistics.
    Returns:
        float64 tensors, train first.
    """
    if scaling == "unit":
        return [a.double() for a in standardize(train.float(), *(o.float() for o in others))]
    if scaling != "scalar":
        raise ValueError(f"scaling: one of {SCALINGS}, got {scaling!r}")
    x = train.double()
    mean = x.mean(0, keepdim=True)
    s = float(x.var(0).sum().div(x.shape[1]).sqrt()) if len(x) > 1 else 0.0
    s = s if s > 1e-8 else 1.0
    return [(a.double() - mean) / s for a in (train, *others)]


@dataclass
class BudgetProbes:
    """Per labelled subset g: the val-chosen L2, its test accuracy, and the fixed-L2 test accuracy."""

    test_acc: torch.Tensor  # (G,) float64
    l2: torch.Tensor  # (G,)
    fixed_acc: torch.Tensor  # (G,)


# (G, P) parameters, (G,) bool: which to evaluate -> (G,) losses, (G, P) gradients (rows not asked: any)
LossGrad = Callable[[torch.Tensor, torch.Tensor | None], tuple[torch.Tensor, torch.Tensor]]


def batched_lbfgs(
    fg: LossGrad,
    theta: torch.Tensor,
    max_iter: int = FIRST_ITER,
    history: int = 20,
    tolerance_grad: float = 1e-6,
    tolerance_change: float = 1e-10,
    max_ls: int = 25,
    compact: bool = True,
) -> torch.Tensor:
    """Minimise G independent smooth functions of (G, P) parameters, each by its own L-BFGS.

    Problem g keeps its own (s, y) pairs, H0 scaling ``s'y / y'y``, backtracking Armijo line
    search (sufficient decrease 1e-4, quadratic interpolation, step first ``min(1, 1 / |grad|_1)``
    then 1) and ``torch.optim.LBFGS``'s stopping rules (max |grad| <= tolerance_grad; step,
    loss change or directional derivative below tolerance_change; ``max_iter`` iterations). All
    G iterate in lockstep, so problem g's iterates depend on its own function only. A pair with
    ``s'y <= 1e-10`` is not stored (its slot of the ring of ``history`` stays empty for g).

    ``compact``: a problem that has stopped never moves again, so once fewer than half of the rows
    in the working state are still active, the state (parameters, gradients, the (s, y) history)
    is cut down to the active rows: the bookkeeping of each iteration then costs what the active
    problems need, not G (most small subsets stop long before the last one). Every operation is
    row-wise, so the iterates are the same with ``compact=False`` (tests/test_measure_speed_equivalence.py).
    """
    full = theta.clone()
    rows = torch.arange(theta.shape[0], device=theta.device)  # the working state's rows of ``full``

    def fg_rows(th: torch.Tensor, which: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if len(rows) == len(full):
            return fg(th, which)
        at = full.clone()
        at[rows] = th
        asked = torch.zeros(len(full), dtype=torch.bool, device=th.device)
        asked[rows] = True if which is None else which
        f_all, g_all = fg(at, asked)
        return f_all[rows], g_all[rows]

    g_count = theta.shape[0]
    f, g = fg(theta, None)
    active = g.abs().amax(1) > tolerance_grad
    s_hist = theta.new_zeros(history, *theta.shape)
    y_hist = theta.new_zeros(history, *theta.shape)
    rho = theta.new_zeros(history, g_count)
    gamma = theta.new_ones(g_count)
    for it in range(max_iter):
        if not bool(active.any()):
            break
        if compact and 2 * int(active.sum()) < len(rows):  # drop the stopped problems from the state
            live = torch.nonzero(active).flatten()
            full[rows] = theta
            rows, theta, f, g, active = rows[live], theta[live], f[live], g[live], active[live]
            s_hist, y_hist, rho, gamma = s_hist[:, live], y_hist[:, live], rho[:, live], gamma[live]
        if it == 0:
            d = -g
            t = (1.0 / g.abs().sum(1).clamp_min(1e-30)).clamp(max=1.0)
        else:  # two-loop recursion, newest pair first
            slots = [(it - 1 - j) % history for j in range(min(it, history))]
            q, alphas = -g, []
            for j in slots:
                a = rho[j] * (s_hist[j] * q).sum(1)
                q = q - a[:, None] * y_hist[j]
                alphas.append(a)
            d = q * gamma[:, None]
            for j, a in zip(reversed(slots), reversed(alphas), strict=True):
                d = d + s_hist[j] * (a - rho[j] * (y_hist[j] * d).sum(1))[:, None]
            t = torch.ones_like(f)
        gtd = (g * d).sum(1)
        active = active & (gtd < -tolerance_change)
        searching, step = active.clone(), torch.zeros_like(f)
        f_new, g_new = f.clone(), g.clone()
        for _ in range(max_ls):
            if not bool(searching.any()):
                break
            ft, gt = fg_rows(theta + t[:, None] * d, searching)
            ok = searching & (ft <= f + 1e-4 * t * gtd) & torch.isfinite(ft)
            f_new, g_new = torch.where(ok, ft, f_new), torch.where(ok[:, None], gt, g_new)
            step = torch.where(ok, t, step)
            searching = searching & ~ok
            quad = -gtd * t * t / (2 * (ft - f - gtd * t))  # minimiser of the interpolating parabola
            quad = torch.where(torch.isfinite(quad), quad, 0.5 * t)
            t = torch.where(searching, torch.minimum(torch.maximum(quad, 0.1 * t), 0.5 * t), t)
        active = active & (step > 0)  # a failed line search ends that problem where it stands
        s = (step * active)[:, None] * d
        y = g_new - g
        ys = (y * s).sum(1)
        keep = active & (ys > 1e-10)
        slot = it % history
        s_hist[slot], y_hist[slot] = s * keep[:, None], y * keep[:, None]
        rho[slot] = torch.where(keep, 1.0 / torch.where(keep, ys, 1.0), 0.0)
        gamma = torch.where(keep, ys / (y * y).sum(1).clamp_min(1e-30), gamma)
        theta = theta + s
        change = (f_new - f).abs()
        f, g = torch.where(active, f_new, f), torch.where(active[:, None], g_new, g)
        active = (
            active
            & (g.abs().amax(1) > tolerance_grad)
            & (s.abs().amax(1) > tolerance_change)
            & (change >= tolerance_change)
        )
    full[rows] = theta
    return full


def fit_subsets(
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    l2: float,
    subsets: Sequence[np.ndarray],
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
    max_iter: int = FIRST_ITER,
) -> tuple[torch.Tensor, torch.Tensor]:
    """G independent multinomial logistic regressions, probe g on the rows ``subsets[g]`` of x.

    ``loss_g = mean_{i in S_g} CE(x_i W_g + b_g, y_i) + l2 / 2 ||W_g||^2``, minimised by
    :func:`batched_lbfgs` from ``init`` (zeros if None). The subsets are gathered into one
    (G_b, n_b, K) stack per size, so a loss evaluation costs ``sum_g |S_g|`` rows, and only the
    probes the L-BFGS asks for (those still searching) are evaluated.

    Args:
        x: (N, K) standardised features, or (S, N, K) S scalings of them: then the S x G probes
            (scaling-major: probe ``s G + g`` is subset g of scaling s) are one batched problem,
            each still its own L-BFGS (the iterates of one do not depend on the others).
        y: (N,) labels in [0, n_classes); subsets: G index arrays.
        init: warm start (W (S G, K, C), b (S G, C)).
    Returns:
        W (S G, K, C) and b (S G, C), in x's dtype.
    """
    xs_all = x[None] if x.dim() == 2 else x
    k, c, n_sub = x.shape[-1], n_classes, len(subsets)
    g_count = len(xs_all) * n_sub
    kc = k * c
    sizes = np.array([len(s) for s in subsets])
    groups = []  # (ids (G_b,), x (G_b, n_b, K), one-hot y (G_b, n_b, C)) per (scaling, subset size)
    for si, xx in enumerate(xs_all):
        for n in np.unique(sizes):
            ids = np.flatnonzero(sizes == n)
            idx = torch.as_tensor(np.stack([np.asarray(subsets[i]) for i in ids]), dtype=torch.int64, device=x.device)
            onehot = torch.nn.functional.one_hot(y[idx], c).to(x.dtype)
            groups.append((torch.as_tensor(ids + si * n_sub, device=x.device), xx[idx], onehot))

    def loss_grad(theta: torch.Tensor, which: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        f, grad = theta.new_zeros(g_count), torch.zeros_like(theta)
        for ids, xs, oh in groups:
            if which is not None:  # only the probes asked for (each probe's rows are its own)
                asked = which[ids]
                if not bool(asked.any()):
                    continue
                if not bool(asked.all()):
                    pick = torch.nonzero(asked).flatten()
                    ids, xs, oh = ids[pick], xs[pick], oh[pick]
            th = theta[ids]
            w, b = th[:, :kc].view(-1, k, c), th[:, kc:]
            logp = torch.log_softmax(torch.baddbmm(b[:, None, :], xs, w), -1)  # (G_b, n_b, C)
            n = xs.shape[1]
            f[ids] = -(logp * oh).sum((1, 2)) / n + 0.5 * l2 * w.pow(2).sum((1, 2))
            dz = (logp.exp() - oh) / n
            grad[ids] = torch.cat([(xs.transpose(1, 2) @ dz + l2 * w).flatten(1), dz.sum(1)], 1)
        return f, grad

    if init is None:
        theta = x.new_zeros(g_count, kc + c)
    else:
        theta = torch.cat([init[0].to(x.dtype).flatten(1), init[1].to(x.dtype)], 1)
    theta = batched_lbfgs(loss_grad, theta, max_iter=max_iter)
    return theta[:, :kc].reshape(g_count, k, c), theta[:, kc:].clone()


def budget_probe(
    f_train: torch.Tensor,
    y_train: torch.Tensor,
    f_val: torch.Tensor,
    y_val: torch.Tensor,
    f_test: torch.Tensor,
    y_test: torch.Tensor,
    n_classes: int,
    subsets: Sequence[np.ndarray],
    l2_grid: Sequence[float] = L2_GRID,
    fixed_l2: float = 1e-2,
    scaling: str = "scalar",
) -> BudgetProbes:
    """G = len(subsets) probes of one encoder on one target, G independent problems fitted batched.

    Args:
        f_*: (N, K) frozen features of the target's splits (scaled here with all of train:
            :func:`scale_codes` by ``scaling``).
        subsets: G arrays of train indices (the labelled subsets of every budget and draw).
        l2_grid: L2 strengths the val split chooses from; fixed_l2: the sensitivity row's L2
            (fitted on the same path; chosen by val only if it is in ``l2_grid``).
    """
    return budget_probes(
        f_train, y_train, f_val, y_val, f_test, y_test, n_classes, subsets, l2_grid, fixed_l2, (scaling,)
    )[scaling]


def budget_probes(
    f_train: torch.Tensor,
    y_train: torch.Tensor,
    f_val: torch.Tensor,
    y_val: torch.Tensor,
    f_test: torch.Tensor,
    y_test: torch.Tensor,
    n_classes: int,
    subsets: Sequence[np.ndarray],
    l2_grid: Sequence[float] = L2_GRID,
    fixed_l2: float = 1e-2,
    scalings: Sequence[str] = SCALINGS,
) -> dict[str, BudgetProbes]:
    """:func:`budget_probe` under every scaling of ``scalings`` at once: the S x G probes are ONE
    batched problem (:func:`fit_subsets` on the (S, N, K) stack of scaled codes), so the L-BFGS
    bookkeeping that dominates these small fits is paid once, not S times. Each probe is still its
    own L-BFGS; the results equal S separate :func:`budget_probe` calls
    (tests/test_measure_speed_equivalence.py).

    Returns:
        ``{scaling: BudgetProbes}``.
    """
    scaled = [scale_codes(f_train, f_val, f_test, scaling=sc) for sc in scalings]
    if len(subsets) == 0:
        empty = torch.zeros(0, dtype=torch.float64)
        return {sc: BudgetProbes(empty, empty.clone(), empty.clone()) for sc in scalings}
    x_tr, x_va, x_te = (torch.stack([sp[i] for sp in scaled]) for i in range(3))  # (S, N, K) per split
    n_sub = len(subsets)

    def accs(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [accuracy(x[i], y, w[i * n_sub : (i + 1) * n_sub], b[i * n_sub : (i + 1) * n_sub]) for i in range(len(x))]
        )

    grid = {float(v) for v in l2_grid}
    best_val = best_test = best_l2 = fixed = None
    init = None
    for l2 in sorted(grid | {float(fixed_l2)}, reverse=True):
        init = fit_subsets(x_tr if len(scalings) > 1 else x_tr[0], y_train, n_classes, l2, subsets, init=init)
        test = accs(x_te, y_test, *init)
        if l2 == float(fixed_l2):
            fixed = test
        if l2 not in grid:
            continue
        val = accs(x_va, y_val, *init)
        if best_val is None:
            best_val, best_test, best_l2 = val, test, torch.full_like(val, l2)
            continue
        better = val > best_val
        best_val = torch.where(better, val, best_val)
        best_test = torch.where(better, test, best_test)
        best_l2 = torch.where(better, torch.full_like(best_l2, l2), best_l2)
    out = {}
    for i, sc in enumerate(scalings):
        part = slice(i * n_sub, (i + 1) * n_sub)
        out[sc] = BudgetProbes(best_test[part].cpu(), best_l2[part].cpu(), fixed[part].cpu())
    return out
