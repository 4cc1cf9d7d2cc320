"""Removal orders of P1's structured pruning (docs/protocol.md §8 P1): which features go first.

Each criterion gives a *removal order* (a permutation of the K features, removed first to
last); fraction ``p`` removes its first ``round(p K)`` entries (:func:`masks_from_orders`):

* ``magnitude``: smallest incoming-weight norm ``||W_k||_2`` first (needs a single-layer weight);
* ``variance``: smallest train variance of the raw (unstandardised) feature first;
* ``random``: ``random_draws`` [5] random orders, accuracies averaged over the draws;
* ``importance``: smallest accuracy drop when the feature alone is knocked out of the full
  frozen probe first (ties broken by the smaller rise of cross-entropy), scored on half A of val
  (:func:`val_halves`);
* ``redundancy``: dead features first, then repeatedly the kept feature with the largest
  ``|corr|`` (on train) to any other kept feature (ties: the larger mean ``|corr|`` to the kept
  set). It finds duplicates, which no single-feature score can.

The four criteria that apply to every method (:data:`PRIMARY_CRITERIA`: all but ``magnitude``)
compete for the *best criterion* of an encoder, chosen on val half B. ``rank`` is not a unit
order: :func:`rank_features` rotates the features onto their principal components, whose
trailing columns are then dropped (see :mod:`predictions.pruning.curves`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from bench.evaluate.metrics import DEAD_TOL, correlation
from predictions.pruning.names import CRITERIA, PRIMARY_CRITERIA  # noqa: F401 (re-exported)

DEAD_EIG = 1e-9  # rank: components with eigenvalue below this fraction of the largest are dead


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


def val_halves(y_val: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two disjoint, stratified halves (A, B) of the val indices, fixed by ``seed``.

    A scores the ``importance`` knock-outs, B chooses the best criterion: the half that built an
    order never judges it. Within each class the order is random, then alternated A, B, A, ...
    """
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(y_val), generator=g).to(y_val.device)
    order = perm[torch.argsort(y_val[perm], stable=True)]
    return order[0::2], order[1::2]


def rank_features(f_train: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    """Principal-component scores of every split, in descending order of train variance.

    ``P = (f - mean_train) V`` with V the eigenvectors of the centred train features'
    covariance (float64), sorted by descending eigenvalue; components whose eigenvalue is below
    :data:`DEAD_EIG` of the largest are dead and set to 0. Keeping the first m columns is the
    ``rank`` pruning of ``1 - m / K``; a rotation of the features (f -> f Q) leaves the scores
    unchanged up to each column's sign.
    """
    x = f_train.double()
    mean = x.mean(0, keepdim=True)
    xc = x - mean
    lam, vecs = torch.linalg.eigh(xc.T @ xc / len(x))
    lam, vecs = lam.flip(0), vecs.flip(1)
    live = lam > DEAD_EIG * lam[0].clamp(min=1e-300)
    vecs = vecs * live.to(vecs.dtype)
    return [((f.double() - mean) @ vecs).float() for f in (f_train, *others)]


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
        knockout: ``(logits_fn, x, y)`` for ``importance`` (see :func:`knockout_scores`).
        weight: (K, D) incoming weights for ``magnitude``, or None (then it is skipped).
    """
    k = f_train.shape[1]
    orders, skipped = {}, {}
    for c in criteria:
        if c == "magnitude":
            if weight is None or weight.shape[0] != k:
                skipped[c] = "no single-layer incoming weight matrix"
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
