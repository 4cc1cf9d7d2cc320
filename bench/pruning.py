"""Pruning mechanics of P1 (PROTOCOL.md §8 P1): feature masks, batched probes, weight pruning.

Everything here works on feature matrices (plus an optional incoming-weight matrix), so the
planted controls of §9 feed features directly, without training. The protocol that asks for
encoders, writes tidy rows and draws figures is :mod:`predictions.pruning`.

Structured pruning removes a fraction ``p`` of the K features. Each criterion gives a
*removal order* (a permutation of the K features, removed first to last); fraction ``p``
removes its first ``round(p K)`` entries:

* ``magnitude``: smallest incoming-weight norm ``||W_k||_2`` first (needs a weight matrix);
* ``variance``: smallest train variance of the raw (unstandardised) feature first;
* ``random``: ``random_draws`` [5] random orders, accuracies averaged over the draws;
* ``importance``: smallest val-accuracy drop when the feature alone is knocked out of the full
  frozen probe first (ties broken by the smaller rise of val cross-entropy);
* ``redundancy``: dead features first, then repeatedly the kept feature with the largest
  ``|corr|`` (on train) to any other kept feature (ties: the larger mean ``|corr|`` to the kept
  set). It finds duplicates, which no single-feature score can.

Probe modes: ``refit`` fits a new probe on the kept (standardised) features; ``frozen`` keeps
the full probe and sets removed features to their train mean (0 after standardisation), i.e.
zeroes their probe weights; ``head`` (a model with its own trained classifier, e.g. the
``supervised`` baseline) zeroes the removed hidden units and applies the model's own head.

Probes and cost. Features are standardised with train statistics (PROTOCOL.md §6). The full
probe picks its L2 strength on val from :data:`bench.probe.L2_GRID`; each pruned variant picks
its own on val between that strength and the next weaker one (:func:`refit_l2s`): reusing the
full probe's strength unchanged over-regularises variants that lost duplicated features (the
planted control of §9 drops from a prunable fraction of 0.7 to 0.6). Nothing is selected on
test. All masks of all criteria are fitted as ONE batched L-BFGS problem per L2 value
(:func:`fit_logreg_batched`: :func:`bench.probe.fit_logreg`'s objective in a faster layout),
in float32, warm-started from the full probe's weights restricted to each mask (30
iterations), then from that fit at the weaker strength (15); the unstructured variants
likewise. Measured on mnist5k (K = 64, one CPU thread, 6 encoders): about 2 s per encoder
for the structured part, AURCs within 0.007 (the primary within 0.005) of fitting every
variant on the full grid to 200 iterations (12 s).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import prune

from bench import metrics
from bench.metrics import DEAD_TOL, correlation
from bench.probe import L2_GRID, standardize

CRITERIA = ("magnitude", "variance", "random", "importance", "redundancy")
FRACTIONS = tuple(round(0.1 * i, 1) for i in range(10))
SPARSITIES = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98)
# L-BFGS on these small problems is thousands of small vector ops; each op over more than
# 32k elements opens an OpenMP region, and on a CPU shared with other processes every region's
# barrier waits for a descheduled thread. Measured on 2 busy cores, one encoder's protocol on
# digits: 144 s with 2 threads, 4.5 s with 1. The fits therefore run single-threaded.
PROBE_THREADS = 1
MAX_ITER = 30  # L-BFGS iterations per warm-started fit: AURCs within 0.005 of the full grid at 200 (mnist5k)


# ----------------------------------------------------------------------------- probes
def fit_logreg_batched(
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    l2: float,
    masks: torch.Tensor | None = None,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
    max_iter: int = MAX_ITER,
) -> tuple[torch.Tensor, torch.Tensor]:
    """G masked multinomial logistic regressions at once: :func:`bench.probe.fit_logreg`'s problem.

    The same objective, ``sum_g [mean_n CE(x_n m_g W_g + b_g, y_n) + l2 / 2 ||m_g W_g||^2]``
    and the same L-BFGS settings, in a faster layout: the G probes' logits come from one
    matmul as (N, G, C) and the cross-entropy is ``logsumexp - gather`` (``F.cross_entropy`` on
    G N rows of C = 10 classes is about 2.4x slower on CPU). ``x`` may also hold one feature
    matrix per probe (G, N, K) (the unstructured variants).

    Args:
        x: (N, K) features shared by the G probes, or (G, N, K). y: (N,) labels.
        masks: (G, K) 0/1 keep-masks or None (all kept). init: warm start (W (G, K, C), b (G, C)).
    Returns:
        W (G, K, C) (zero on masked features) and b (G, C).
    """
    shared = x.dim() == 2
    n, k = x.shape[-2], x.shape[-1]
    g = masks.shape[0] if masks is not None else (1 if shared else x.shape[0])
    m3 = (torch.ones(g, k, device=x.device) if masks is None else masks).to(x.dtype)[:, :, None]
    if init is None:
        w0 = torch.zeros(g, k, n_classes, device=x.device, dtype=x.dtype)
        b0 = torch.zeros(g, n_classes, device=x.device, dtype=x.dtype)
    else:
        w0, b0 = (t.to(x.dtype) for t in init)
    w = w0.clone().requires_grad_(True)
    b = b0.clone().requires_grad_(True)
    target = _label_index(y, x, g)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=max_iter, history_size=20,
                            tolerance_grad=1e-5, tolerance_change=1e-9, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        wm = w * m3
        logits = _logits(x, wm, b)
        ce = (torch.logsumexp(logits, -1).sum() - logits.gather(2, target).sum()) / n
        loss = ce + 0.5 * l2 * wm.pow(2).sum()
        loss.backward()
        return loss

    with torch_threads(PROBE_THREADS):
        opt.step(closure)
    return (w * m3).detach(), b.detach()


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` intra-op threads, then restore the previous setting."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _logits(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Logits of G linear probes w (G, K, C), b (G, C): (N, G, C) on x (N, K); (G, N, C) on x (G, N, K)."""
    g, k, c = w.shape
    if x.dim() == 2:
        return (x @ w.permute(1, 0, 2).reshape(k, g * c)).view(x.shape[0], g, c) + b[None]
    return torch.baddbmm(b[:, None, :], x, w)


def _label_index(y: torch.Tensor, x: torch.Tensor, g: int) -> torch.Tensor:
    """Labels laid out like :func:`_logits`' output, for ``gather`` along the class axis."""
    return y[:, None, None].expand(len(y), g, 1) if x.dim() == 2 else y[None, :, None].expand(g, len(y), 1)


@torch.no_grad()
def batched_accuracy(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(G,) accuracies of G linear probes on x (N, K) or (G, N, K) with labels y (N,)."""
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
    max_iter: int = MAX_ITER,
    path_iter: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """G probes, each with its own L2 strength chosen on val: :func:`bench.probe.linear_probe`'s rule.

    Fits ``l2s`` from the strongest penalty to the weakest, each warm-started from the
    previous (the first from ``init``, with ``max_iter`` L-BFGS iterations, the next ones with
    ``path_iter``, default ``max_iter``), and keeps, per probe, the fit with the best val
    accuracy (ties: the stronger penalty).

    Args:
        x, x_val: (N, K) standardised features shared by the probes, or (G, N, K) each.
        masks: (G, K) keep-masks or None. init: warm start (W (G, K, C), b (G, C)).
    Returns:
        W (G, K, C), b (G, C) and the chosen L2 strengths (G,).
    """
    best = None
    for i, l2 in enumerate(sorted(l2s, reverse=True)):
        iters = max_iter if i == 0 or path_iter is None else path_iter
        init = fit_logreg_batched(x, y, n_classes, l2, masks, init=init, max_iter=iters)
        acc = batched_accuracy(x_val, y_val, *init)
        if best is None:
            best = [acc, init[0].clone(), init[1].clone(), torch.full_like(acc, l2)]
            continue
        better = acc > best[0]
        best[0] = torch.where(better, acc, best[0])
        best[1][better], best[2][better], best[3][better] = init[0][better], init[1][better], l2
    return best[1], best[2], best[3]


def refit_l2s(l2: float, grid: Sequence[float] = L2_GRID) -> tuple[float, ...]:
    """The L2 strengths a pruned variant chooses from: the full probe's ``l2`` and the next weaker one.

    A variant with fewer features rarely wants a stronger penalty than the full set; it can want
    a weaker one: when copies of a feature are removed, the weight the copies shared moves onto
    the one that is left, and the same penalty then costs it more (the planted control of
    PROTOCOL.md §9 reads a prunable fraction of 0.6 instead of 0.7 without it).
    """
    g = sorted(grid, reverse=True)
    i = min(range(len(g)), key=lambda j: abs(math.log(g[j]) - math.log(l2)))
    return tuple(g[i : i + 2])


# ----------------------------------------------------------------------------- orders
def magnitude_order(weight: torch.Tensor) -> torch.Tensor:
    """(K,) removal order: ascending L2 norm of each unit's incoming weights ``weight`` (K, D)."""
    return torch.argsort(weight.detach().double().norm(dim=1), stable=True)


def variance_order(f_train: torch.Tensor) -> torch.Tensor:
    """(K,) removal order: ascending train variance of the raw features ``f_train`` (N, K)."""
    return torch.argsort(f_train.double().var(0), stable=True)


def random_orders(k: int, draws: int, seed: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(draws, K) random removal orders from a generator seeded with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randperm(k, generator=g) for _ in range(draws)]).to(device)


def knockout_scores(
    logits_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Accuracy drop and cross-entropy rise when each feature alone is set to 0.

    Args:
        logits_fn: maps (G, N, K) feature batches to (G, N, C) logits.
        x: (N, K) features (standardised for a probe: 0 is the train mean); y: (N,) labels.
    Returns:
        ``(acc_drop, ce_rise)``, each (K,): full model minus the model with feature k zeroed.
    """
    k = x.shape[1]
    keep = 1.0 - torch.eye(k, device=x.device, dtype=x.dtype)
    full = logits_fn(x[None])[0]
    ko = logits_fn(x[None, :, :] * keep[:, None, :])  # (K, N, C)
    acc_full = (full.argmax(-1) == y).double().mean()
    acc_ko = (ko.argmax(-1) == y[None]).double().mean(1)
    ce_full = F.cross_entropy(full, y).double()
    ce_ko = F.cross_entropy(ko.reshape(-1, ko.shape[-1]), y.repeat(k), reduction="none").view(k, -1).double().mean(1)
    return acc_full - acc_ko, ce_ko - ce_full


def importance_order(acc_drop: torch.Tensor, ce_rise: torch.Tensor) -> torch.Tensor:
    """(K,) removal order: ascending accuracy drop, ties by ascending cross-entropy rise."""
    by_ce = torch.argsort(ce_rise, stable=True)
    return by_ce[torch.argsort(acc_drop[by_ce], stable=True)]


def redundancy_order(f_train: torch.Tensor, tol: float = DEAD_TOL) -> torch.Tensor:
    """(K,) greedy removal order by redundancy, on train features ``f_train`` (N, K).

    Dead features first; then, while more than one feature is kept, remove the kept feature
    ``j`` maximising ``max_{k kept, k != j} |R_jk|`` (ties within 1e-12: the larger mean
    ``|R_jk|`` over the kept set), R the train correlation. The last kept feature closes it.
    """
    r = correlation(f_train, tol).abs()
    k = r.shape[0]
    dead = torch.diagonal(r) < 0.5
    r.fill_diagonal_(0.0)
    order = torch.nonzero(dead).flatten().tolist()
    kept = ~dead
    neg = torch.tensor(-1.0, dtype=r.dtype, device=r.device)
    for _ in range(int(kept.sum()) - 1):
        sub = torch.where(kept[:, None] & kept[None, :], r, neg)
        top = torch.where(kept, sub.max(1).values, neg)
        tied = kept & (top >= top.max() - 1e-12)
        mean = torch.where(tied, (sub.clamp(min=0)).sum(1), neg)
        j = int(mean.argmax())
        order.append(j)
        kept[j] = False
    order += torch.nonzero(kept).flatten().tolist()
    assert len(order) == k
    return torch.tensor(order, device=f_train.device)


def masks_from_orders(orders: torch.Tensor, fractions: Sequence[float]) -> torch.Tensor:
    """(R, F, K) 0/1 keep-masks: order r at fraction p removes ``order[r, :round(p K)]``."""
    r, k = orders.shape
    rank = torch.empty_like(orders)
    rank.scatter_(1, orders, torch.arange(k, device=orders.device).expand(r, k))
    n_remove = torch.tensor([round(p * k) for p in fractions], device=orders.device)
    return (rank[:, None, :] >= n_remove[None, :, None]).to(torch.float32)


# ----------------------------------------------------------------------------- structured
@dataclass
class Curves:
    """Accuracy curves over the fractions, per (criterion, probe mode).

    ``test[(criterion, mode)]`` and ``val[(criterion, mode)]`` are (F,) arrays aligned with
    ``fractions``; the entry at p = 0 is the unpruned model's accuracy itself, so
    ``r(0) = 1`` exactly. ``skipped`` maps a criterion that does not apply to why.
    """

    fractions: tuple[float, ...]
    test: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    val: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    l2: float = math.nan
    test_acc: float = math.nan  # unpruned
    val_acc: float = math.nan
    probe: tuple[torch.Tensor, torch.Tensor] | None = None  # the full probe (W (K, C), b (C,))


def criterion_orders(
    criteria: Sequence[str],
    f_train: torch.Tensor,
    knockout: tuple[Callable, torch.Tensor, torch.Tensor] | None,
    weight: torch.Tensor | None = None,
    random_draws: int = 5,
    seed: int = 0,
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Removal orders per criterion: ``{criterion: (R, K)}`` and ``{criterion: why skipped}``.

    Args:
        f_train: (N, K) raw train features (variance, redundancy).
        knockout: ``(logits_fn, x_val, y_val)`` for ``importance`` (see :func:`knockout_scores`).
        weight: (K, D) incoming weights for ``magnitude``, or None (then it is skipped).
    """
    k = f_train.shape[1]
    orders, skipped = {}, {}
    for c in criteria:
        if c == "magnitude":
            if weight is None or weight.shape[0] != k:
                skipped[c] = "no single-layer incoming weight matrix (encoder_weight() is None)"
                continue
            orders[c] = magnitude_order(weight)[None]
        elif c == "variance":
            orders[c] = variance_order(f_train)[None]
        elif c == "random":
            orders[c] = random_orders(k, random_draws, seed, f_train.device)
        elif c == "importance":
            orders[c] = importance_order(*knockout_scores(*knockout))[None]
        elif c == "redundancy":
            orders[c] = redundancy_order(f_train)[None]
        else:
            raise ValueError(f"criterion: unknown '{c}' (choices: {', '.join(CRITERIA)})")
    return {c: o.to(f_train.device) for c, o in orders.items()}, skipped


@dataclass
class Summary:
    """Per (criterion, mode): retained accuracy r (F,), test AURC, val AURC, prunable fraction;
    per mode: the best criterion, the one with the highest val AURC (ties: the first listed)."""

    retained: dict[tuple[str, str], np.ndarray]
    aurc: dict[tuple[str, str], float]
    aurc_val: dict[tuple[str, str], float]
    prunable: dict[tuple[str, str], float]
    best: dict[str, str]


def summarize(curves: Curves, chance: float, tol: float = 0.01, lo: float = 0.1, hi: float = 0.9) -> Summary:
    """AURC (:func:`bench.metrics.aurc`), prunable fraction and the val-chosen best criterion.

    An encoder whose unpruned accuracy is within ``tol`` of chance has nothing to prune away:
    its r, AURC and prunable fraction are nan and it has no best criterion.
    """
    p = np.array(curves.fractions)
    out = Summary({}, {}, {}, {}, {})
    defined = curves.test_acc - chance > tol and curves.val_acc - chance > tol
    for key, acc in curves.test.items():
        out.retained[key] = metrics.retained_accuracy(acc, curves.test_acc, chance, tol)
        out.aurc[key] = metrics.aurc(p, out.retained[key], lo, hi)
        r_val = metrics.retained_accuracy(curves.val[key], curves.val_acc, chance, tol)
        out.aurc_val[key] = metrics.aurc(p, r_val, lo, hi)
        out.prunable[key] = metrics.prunable_fraction(p, acc, tol) if defined else math.nan
    for (crit, mode), v in out.aurc_val.items():
        if np.isfinite(v) and (mode not in out.best or v > out.aurc_val[(out.best[mode], mode)]):
            out.best[mode] = crit
    return out


def _probe_logits(w: torch.Tensor, b: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda xs: torch.einsum("gnk,kc->gnc", xs, w.to(xs.dtype)) + b.to(xs.dtype)


def structured_pruning(
    f_train: torch.Tensor,
    y_train: torch.Tensor,
    f_val: torch.Tensor,
    y_val: torch.Tensor,
    f_test: torch.Tensor,
    y_test: torch.Tensor,
    n_classes: int,
    weight: torch.Tensor | None = None,
    fractions: Sequence[float] = FRACTIONS,
    criteria: Sequence[str] = CRITERIA,
    random_draws: int = 5,
    seed: int = 0,
    l2_grid: Sequence[float] = L2_GRID,
    max_iter: int = MAX_ITER,
) -> Curves:
    """Prune features by every criterion at every fraction; probe modes ``refit`` and ``frozen``.

    Args:
        f_*: (N, K) raw features of each split; y_*: (N,) labels.
        weight: (K, D) incoming weights (``magnitude``), or None.
        fractions: pruned fractions, 0 included (the unpruned reference).
    Returns:
        :class:`Curves` with test and val accuracies per (criterion, mode); ``random`` is the
        mean over ``random_draws`` orders.
    """
    fractions = tuple(float(p) for p in fractions)
    if 0.0 not in fractions:
        raise ValueError("fractions: must include 0 (the unpruned reference)")
    z_tr, z_va, z_te = standardize(f_train.float(), f_val.float(), f_test.float())
    w0, b0, l2 = probe_path(z_tr, y_train, z_va, y_val, n_classes, l2_grid, max_iter=max_iter)
    w0, b0, l2 = w0[0], b0[0], float(l2[0])
    out = Curves(fractions, l2=l2, probe=(w0, b0),
                 test_acc=float(batched_accuracy(z_te, y_test, w0[None], b0[None])[0]),
                 val_acc=float(batched_accuracy(z_va, y_val, w0[None], b0[None])[0]))
    orders, out.skipped = criterion_orders(criteria, f_train, (_probe_logits(w0, b0), z_va, y_val), weight,
                                           random_draws, seed)
    pruned = [i for i, p in enumerate(fractions) if p > 0]
    if not orders or not pruned:
        return out
    masks = {c: masks_from_orders(o, [fractions[i] for i in pruned]) for c, o in orders.items()}  # (R, P, K)
    flat = torch.cat([m.reshape(-1, m.shape[-1]) for m in masks.values()])  # (G, K)
    init = (w0[None] * flat[:, :, None], b0[None].expand(len(flat), -1))
    refit = probe_path(z_tr, y_train, z_va, y_val, n_classes, refit_l2s(l2, l2_grid), flat, init, max_iter,
                       max_iter // 2)
    fits = {"refit": refit[:2], "frozen": init}
    start = 0
    for c, m in masks.items():
        g = m.shape[0] * m.shape[1]
        for mode, (w, b) in fits.items():
            for z, y, store, a0 in ((z_te, y_test, out.test, out.test_acc), (z_va, y_val, out.val, out.val_acc)):
                a = batched_accuracy(z, y, w[start : start + g], b[start : start + g]).view(m.shape[0], m.shape[1])
                curve = np.full(len(fractions), a0)
                curve[pruned] = a.mean(0).cpu().numpy()
                store[(c, mode)] = curve
        start += g
    return out


def head_pruning(
    head: Callable[[torch.Tensor], torch.Tensor],
    a_train: torch.Tensor,
    a_val: torch.Tensor,
    y_val: torch.Tensor,
    a_test: torch.Tensor,
    y_test: torch.Tensor,
    weight: torch.Tensor | None = None,
    fractions: Sequence[float] = FRACTIONS,
    criteria: Sequence[str] = CRITERIA,
    random_draws: int = 5,
    seed: int = 0,
) -> Curves:
    """End-to-end pruning of a model's hidden units under its own trained head (no refit).

    A removed unit outputs 0 (the unit is deleted from the network: its outgoing weights no
    longer contribute), and ``head`` maps the (N, K) hidden activations to (N, C) logits.
    ``importance`` knocks units out under the head on val. Mode ``head`` in the curves.

    Args:
        a_*: (N, K) hidden activations of each split (the deployed features).
    """
    fractions = tuple(float(p) for p in fractions)
    k = a_train.shape[1]

    def logits_fn(xs: torch.Tensor) -> torch.Tensor:
        return head(xs.reshape(-1, k)).view(xs.shape[0], xs.shape[1], -1)

    with torch.no_grad():
        orders, skipped = criterion_orders(criteria, a_train, (logits_fn, a_val, y_val), weight, random_draws, seed)

        def accs(a: torch.Tensor, y: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
            pred = logits_fn(a[None] * masks[:, None, :].to(a.dtype)).argmax(-1)
            return (pred == y[None]).double().mean(1)

        a0_test = float(accs(a_test, y_test, torch.ones(1, k, device=a_test.device))[0])
        a0_val = float(accs(a_val, y_val, torch.ones(1, k, device=a_val.device))[0])
        out = Curves(fractions, skipped=skipped, test_acc=a0_test, val_acc=a0_val)
        pruned = [i for i, p in enumerate(fractions) if p > 0]
        for c, o in orders.items():
            m = masks_from_orders(o, [fractions[i] for i in pruned])
            for a, y, store, a0 in ((a_test, y_test, out.test, a0_test), (a_val, y_val, out.val, a0_val)):
                curve = np.full(len(fractions), a0)
                if pruned:
                    curve[pruned] = accs(a, y, m.reshape(-1, k)).view(m.shape[0], m.shape[1]).mean(0).cpu().numpy()
                store[(c, "head")] = curve
    return out


# ----------------------------------------------------------------------------- unstructured
PRUNABLE = (nn.Linear, nn.modules.conv._ConvNd)


def prunable_weights(modules: Sequence[nn.Module]) -> list[tuple[nn.Module, str]]:
    """Every ``weight`` of an ``nn.Linear`` / ``nn.Conv*`` inside ``modules`` (each once)."""
    seen, out = set(), []
    for root in modules:
        for m in root.modules():
            if isinstance(m, PRUNABLE) and getattr(m, "weight", None) is not None and id(m) not in seen:
                seen.add(id(m))
                out.append((m, "weight"))
    return out


def magnitude_pruned(method: nn.Module, sparsity: float) -> tuple[nn.Module, float]:
    """A copy of ``method`` with global L1 (magnitude) unstructured pruning of its deployed weights.

    ``torch.nn.utils.prune.global_unstructured`` with ``L1Unstructured`` zeroes the
    ``round(sparsity * total)`` smallest-|w| entries over all Linear/Conv weights of
    ``method.deployed_modules()`` jointly; biases, norms and embeddings are kept. The method
    passed in is never modified.

    Returns:
        ``(pruned copy, compression ratio = total / nonzero pruned-weight entries)``.
    """
    dup = copy.deepcopy(method)
    params = prunable_weights(dup.deployed_modules())
    if not params:
        raise ValueError("no Linear/Conv weights in the deployed modules")
    if sparsity > 0:
        prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=float(sparsity))
    total = sum(m.weight.numel() for m, _ in params)
    nonzero = sum(int((m.weight != 0).sum()) for m, _ in params)
    dup.eval()
    return dup, total / max(nonzero, 1)


@dataclass
class Unstructured:
    """Per sparsity: test and val accuracy of a refit probe, and the compression ratio."""

    sparsities: tuple[float, ...]
    test: np.ndarray
    val: np.ndarray
    compression: np.ndarray


def unstructured_pruning(
    method: nn.Module,
    splits: Sequence[tuple[torch.Tensor, torch.Tensor]],
    n_classes: int,
    l2: float,
    sparsities: Sequence[float] = SPARSITIES,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
    unpruned: Sequence[torch.Tensor] | None = None,
    l2_grid: Sequence[float] = L2_GRID,
    max_iter: int = MAX_ITER,
    chunk: int = 8192,
) -> Unstructured:
    """Global magnitude pruning of the deployed encoder at each sparsity, probe refit.

    Each sparsity's features are standardised with their own train statistics; the probes of
    all sparsities are fitted as one batched problem, each choosing on val between the
    encoder's val-chosen ``l2`` and the next weaker (:func:`refit_l2s`), warm-started from the
    unpruned probe ``init`` = (W (K, C), b (C,)) when given.

    Args:
        method: the trained :class:`bench.methods.Method` (not modified).
        splits: ((x, y) train, (x, y) val, (x, y) test) inputs and labels.
        unpruned: the unpruned features of the three splits, if already computed (sparsity 0).
    """
    w0, b0 = (None, None) if init is None else (init[0][None], init[1][None])
    feats, comp = [], []
    for s in sparsities:
        if s == 0 and unpruned is not None:
            f, ratio = list(unpruned), 1.0
        else:
            dup, ratio = magnitude_pruned(method, s)
            with torch.no_grad():
                f = [torch.cat([dup.encode(x[i : i + chunk]) for i in range(0, len(x), chunk)]) for x, _ in splits]
            del dup
        feats.append(standardize(*[v.float() for v in f]))
        comp.append(ratio)
    x = [torch.stack([fs[i] for fs in feats]) for i in range(3)]  # (G, N, K) per split
    (_, y_tr), (_, y_va), (_, y_te) = splits
    g = len(sparsities)
    init = None if w0 is None else (w0.expand(g, -1, -1), b0.expand(g, -1))
    w, b, _ = probe_path(x[0], y_tr, x[1], y_va, n_classes, refit_l2s(l2, l2_grid), init=init, max_iter=max_iter,
                         path_iter=max_iter // 2)
    return Unstructured(tuple(float(s) for s in sparsities), batched_accuracy(x[2], y_te, w, b).cpu().numpy(),
                        batched_accuracy(x[1], y_va, w, b).cpu().numpy(), np.array(comp))
