"""Accuracy curves of P1 (docs/protocol.md §8 P1): structured, end-to-end and unstructured pruning.

Everything here works on feature matrices (plus an optional incoming-weight matrix), so the
planted controls of §9 feed features directly, without training; the removal orders come from
:mod:`predictions.pruning.criteria`.

``rank`` is the rotation-invariant companion of the unit curves: instead of a subset of units it
keeps the top ``(1 - p) K`` principal components of the centred train features (eigenvectors of
their covariance, not their correlation: per-unit standardisation would make a whitened code's
components arbitrary), standardises the kept components and refits the probe. Unit pruning
depends on the basis (a rotated code spreads its information over all units and resists unit
pruning with the same information); ``rank`` does not, though it still depends on each unit's
scale.

Probe modes: ``refit`` fits a new probe on the kept (standardised) features; ``frozen`` keeps
the full probe and sets removed features to their train mean (0 after standardisation), i.e.
zeroes their probe weights; ``head`` (a model with its own trained classifier, e.g. the
``supervised`` baseline) zeroes the removed hidden units and applies the model's own head.

Probes: :func:`bench.evaluate.probe.linear_probe`, the suite's one probe. The full probe and every pruned
variant choose their own L2 strength on val from the full grid of §6; all masks of all criteria
are one batched problem. Its path starts (at the strongest penalty) from the full probe's fit at
that same penalty restricted to each mask (``fast``, :attr:`Curves.start`), which is close to the
pruned solution there; the reference path (``fast=False``) starts it from the val-chosen full
probe, fitted at a much weaker penalty, and needs ~10x the L-BFGS calls for that first fit (mnist5k).
The two paths' curves differ no more than the reference's own do under a rounding-level change
of its input (tests/test_measure_speed_equivalence.py).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

from bench.evaluate import metrics
from bench.evaluate.probe import L2_GRID, accuracy, linear_probe, standardize
from predictions.pruning.criteria import (
    CRITERIA,
    PRIMARY_CRITERIA,
    criterion_orders,
    masks_from_orders,
    rank_features,
    val_halves,
)

FRACTIONS = tuple(round(0.1 * i, 1) for i in range(10))
SPARSITIES = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98)


@dataclass
class Curves:
    """Accuracy curves over the fractions, per (criterion, probe mode).

    ``test[(criterion, mode)]`` and ``val[(criterion, mode)]`` (val: half B) are (F,) arrays
    aligned with ``fractions``; the entry at p = 0 is the unpruned model's accuracy itself, so
    ``r(0) = 1`` exactly. ``("rank", "refit")`` holds the principal-component curve, whose own
    p = 0 entry is the probe on all components. ``skipped`` maps a criterion that does not apply
    to why.
    """

    fractions: tuple[float, ...]
    test: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    val: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    l2: float = math.nan
    test_acc: float = math.nan  # unpruned
    val_acc: float = math.nan  # unpruned, on half B of val
    probe: tuple[torch.Tensor, torch.Tensor] | None = None  # the full probe (W (K, C), b (C,))
    start: tuple[torch.Tensor, torch.Tensor] | None = None  # the full probe's fit at the strongest L2


@dataclass
class Summary:
    """Per (criterion, mode): retained accuracy r (F,), test AURC, val AURC (half B), prunable
    fraction; per mode: the best criterion, the one of ``PRIMARY_CRITERIA`` with the highest val
    AURC (ties: the first listed)."""

    retained: dict[tuple[str, str], np.ndarray]
    aurc: dict[tuple[str, str], float]
    aurc_val: dict[tuple[str, str], float]
    prunable: dict[tuple[str, str], float]
    best: dict[str, str]


def summarize(
    curves: Curves,
    chance: float,
    tol: float = 0.01,
    lo: float = 0.1,
    hi: float = 0.9,
    candidates: Sequence[str] = PRIMARY_CRITERIA,
) -> Summary:
    """AURC (:func:`bench.evaluate.metrics.aurc`), prunable fraction and the val-chosen best criterion.

    An encoder whose unpruned accuracy is within ``tol`` of chance has nothing to prune away:
    its r, AURC and prunable fraction are nan and it has no best criterion.
    """
    p = np.array(curves.fractions)
    out = Summary({}, {}, {}, {}, {})
    defined = curves.test_acc - chance > tol and curves.val_acc - chance > tol
    for key, acc in curves.test.items():
        acc0, acc0_val = acc[0], curves.val[key][0]  # the curve's own p = 0 (rank: all components)
        out.retained[key] = metrics.retained_accuracy(acc, acc0 if defined else chance, chance, tol)
        out.aurc[key] = metrics.aurc(p, out.retained[key], lo, hi)
        r_val = metrics.retained_accuracy(curves.val[key], acc0_val if defined else chance, chance, tol)
        out.aurc_val[key] = metrics.aurc(p, r_val, lo, hi)
        out.prunable[key] = metrics.prunable_fraction(p, acc, tol) if defined else math.nan
    for crit in candidates:
        for (c, mode), v in out.aurc_val.items():
            if c == crit and np.isfinite(v) and (mode not in out.best or v > out.aurc_val[(out.best[mode], mode)]):
                out.best[mode] = crit
    return out


def _probe_logits(w: torch.Tensor, b: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda xs: torch.einsum("gnk,kc->gnc", xs, w.to(xs.dtype)) + b.to(xs.dtype)


def _curve(acc: torch.Tensor, shape: tuple[int, int], fractions, pruned: list[int], a0: float) -> np.ndarray:
    """(F,) curve: ``a0`` at p = 0, the mean over the R orders of the (R, P) accuracies elsewhere."""
    curve = np.full(len(fractions), a0)
    curve[pruned] = acc.view(shape).mean(0).cpu().numpy()
    return curve


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
    rank: bool = True,
    fast: bool = True,
) -> Curves:
    """Prune features by every criterion at every fraction; probe modes ``refit`` and ``frozen``.

    Args:
        f_*: (N, K) raw features of each split; y_*: (N,) labels.
        weight: (K, D) incoming weights (``magnitude``), or None.
        fractions: pruned fractions, 0 included (the unpruned reference).
        rank: also the ``rank`` curve (principal components, refit).
        fast: warm-start the refit path from the full probe's fit at the strongest L2 (False: from
            the val-chosen full probe, the reference path).
    Returns:
        :class:`Curves` with test and val-half-B accuracies per (criterion, mode); ``random`` is
        the mean over ``random_draws`` orders.
    """
    fractions = tuple(float(p) for p in fractions)
    if 0.0 not in fractions:
        raise ValueError("fractions: must include 0 (the unpruned reference)")
    half_a, half_b = val_halves(y_val)
    z_tr, z_va, z_te = standardize(f_train.float(), f_val.float(), f_test.float())
    full = linear_probe(
        z_tr, y_train, z_va, y_val, z_te, y_test, n_classes, l2_grid=l2_grid, standardized=True, keep_path=True
    )
    w0, b0 = full.weight[0], full.bias[0]
    ws, bs = full.path[float(max(l2_grid))]
    zb, yb = z_va[half_b], y_val[half_b]
    out = Curves(
        fractions,
        l2=float(full.l2[0]),
        probe=(w0, b0),
        start=(ws[0], bs[0]),
        test_acc=float(full.test_acc[0]),
        val_acc=float(accuracy(zb, yb, w0[None], b0[None])[0]),
    )
    knock = (_probe_logits(w0, b0), z_va[half_a], y_val[half_a])
    orders, out.skipped = criterion_orders(criteria, f_train, knock, weight, random_draws, seed)
    pruned = [i for i, p in enumerate(fractions) if p > 0]
    if orders and pruned:
        masks = {c: masks_from_orders(o, [fractions[i] for i in pruned]) for c, o in orders.items()}  # (R, P, K)
        flat = torch.cat([m.reshape(-1, m.shape[-1]) for m in masks.values()])  # (G, K)
        frozen = (w0[None] * flat[:, :, None], b0[None].expand(len(flat), -1))
        warm = (ws * flat[:, :, None], bs.expand(len(flat), -1)) if fast else frozen
        refit = linear_probe(
            z_tr,
            y_train,
            z_va,
            y_val,
            z_te,
            y_test,
            n_classes,
            masks=flat,
            l2_grid=l2_grid,
            standardized=True,
            init=warm,
        )
        fits = {"refit": (refit.weight, refit.bias), "frozen": frozen}
        start = 0
        for c, m in masks.items():
            g = m.shape[0] * m.shape[1]
            for mode, (w, b) in fits.items():
                w, b = w[start : start + g], b[start : start + g]
                out.test[(c, mode)] = _curve(accuracy(z_te, y_test, w, b), m.shape[:2], fractions, pruned, out.test_acc)
                out.val[(c, mode)] = _curve(accuracy(zb, yb, w, b), m.shape[:2], fractions, pruned, out.val_acc)
            start += g
    if rank:
        _rank_curve(out, f_train, y_train, f_val, y_val, f_test, y_test, n_classes, half_b, l2_grid)
    return out


def _rank_curve(out: Curves, f_train, y_train, f_val, y_val, f_test, y_test, n_classes, half_b, l2_grid) -> None:
    """The ``rank`` curve: keep the top ``(1 - p) K`` principal components, standardise, refit."""
    p_tr, p_va, p_te = standardize(*rank_features(f_train, f_val, f_test))
    k = p_tr.shape[1]
    keep = [k - round(p * k) for p in out.fractions]
    masks = (torch.arange(k, device=p_tr.device)[None, :] < torch.tensor(keep, device=p_tr.device)[:, None]).float()
    r = linear_probe(
        p_tr, y_train, p_va, y_val, p_te, y_test, n_classes, masks=masks, l2_grid=l2_grid, standardized=True
    )
    out.test[("rank", "refit")] = r.test_acc.cpu().numpy()
    out.val[("rank", "refit")] = accuracy(p_va[half_b], y_val[half_b], r.weight, r.bias).cpu().numpy()


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
    ``importance`` knocks units out under the head on val half A; val curves are on half B.
    Mode ``head`` in the curves.

    Args:
        a_*: (N, K) hidden activations of each split (the deployed features).
    """
    fractions = tuple(float(p) for p in fractions)
    k = a_train.shape[1]
    half_a, half_b = val_halves(y_val)

    def logits_fn(xs: torch.Tensor) -> torch.Tensor:
        return head(xs.reshape(-1, k)).view(xs.shape[0], xs.shape[1], -1)

    def accs(a: torch.Tensor, y: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        pred = logits_fn(a[None] * masks[:, None, :].to(a.dtype)).argmax(-1)
        return (pred == y[None]).double().mean(1)

    with torch.no_grad():
        orders, skipped = criterion_orders(
            criteria, a_train, (logits_fn, a_val[half_a], y_val[half_a]), weight, random_draws, seed
        )
        ones = torch.ones(1, k, device=a_test.device)
        splits = ((a_test, y_test), (a_val[half_b], y_val[half_b]))
        a0_test, a0_val = (float(accs(a, y, ones)[0]) for a, y in splits)
        out = Curves(fractions, skipped=skipped, test_acc=a0_test, val_acc=a0_val)
        pruned = [i for i, p in enumerate(fractions) if p > 0]
        for c, o in orders.items():
            m = masks_from_orders(o, [fractions[i] for i in pruned])
            for (a, y), store, a0 in zip(splits, (out.test, out.val), (a0_test, a0_val), strict=True):
                acc = accs(a, y, m.reshape(-1, k)) if pruned else torch.zeros(0)
                store[(c, "head")] = _curve(acc, m.shape[:2], fractions, pruned, a0)
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
    for m, name in params:  # global_unstructured flattens with view(-1): a channels_last conv weight
        getattr(m, name).data = getattr(m, name).data.contiguous()  # (supervised_cnn) needs the dense layout
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
    sparsities: Sequence[float] = SPARSITIES,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
    unpruned: Sequence[torch.Tensor] | None = None,
    l2_grid: Sequence[float] = L2_GRID,
) -> Unstructured:
    """Global magnitude pruning of the deployed encoder at each sparsity, probe refit.

    Each sparsity's features are standardised with their own train statistics; the probes of
    all sparsities are fitted as one batched problem, each choosing its L2 strength on val from
    the full grid, warm-started from the unpruned probe ``init`` = (W (K, C), b (C,)) when given
    (the protocol passes :attr:`Curves.start`, the unpruned probe's fit at the strongest L2, where
    the path begins; the reference path passed the val-chosen unpruned probe).

    Args:
        method: the trained :class:`bench.train.methods.Method` (not modified).
        splits: ((x, y) train, (x, y) val, (x, y) test) inputs and labels.
        unpruned: the unpruned features of the three splits, if already computed (sparsity 0).
    """
    feats, comp = [], []
    for s in sparsities:
        if s == 0 and unpruned is not None:
            f, ratio = list(unpruned), 1.0
        else:
            dup, ratio = magnitude_pruned(method, s)
            f = [dup.encode_all(x) for x, _ in splits]
            del dup
        feats.append(standardize(*[v.float() for v in f]))
        comp.append(ratio)
    x = [torch.stack([fs[i] for fs in feats]) for i in range(3)]  # (G, N, K) per split
    (_, y_tr), (_, y_va), (_, y_te) = splits
    g = len(sparsities)
    warm = None if init is None else (init[0][None].expand(g, -1, -1), init[1][None].expand(g, -1))
    r = linear_probe(x[0], y_tr, x[1], y_va, x[2], y_te, n_classes, l2_grid=l2_grid, standardized=True, init=warm)
    return Unstructured(
        tuple(float(s) for s in sparsities), r.test_acc.cpu().numpy(), r.val_acc.cpu().numpy(), np.array(comp)
    )
