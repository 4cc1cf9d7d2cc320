"""Representation similarity as pure functions (docs/protocol.md §11, open questions).

Section numbers below (11.0 "Similarity", the shared measures; 11.2b, the rotation ladder; 11.5,
the planted controls) are those of the open questions' design, which §11 summarises.

Two codes are compared on the same n inputs: ``a`` (n, K_a) and ``b`` (n, K_b), torch tensors or
numpy arrays, any float dtype, any device; everything is computed in float64 on the inputs' device.

* :func:`cka` - linear CKA (Kornblith et al. 2019) with the unbiased HSIC estimator (Song et al.
  2012), the debiased CKA of Nguyen, Raghu & Kornblith 2021 and Davari et al. 2022; on per-unit
  standardised features (the primary) or raw activations; the biased CKA for comparison;
* :func:`hsic_unbiased`, :func:`hsic_biased` - the two HSIC estimators for linear kernels;
* :func:`shuffle_null` - CKA(a, b[perm]) over random row permutations: what "no shared structure" reads;
* :func:`cka_within`, :func:`ceiling_normalised`, :func:`similarity_matrix` - the cross-seed ceiling
  ``CKA_w`` of a method and ``S(A, B) = CKA(A, B) / sqrt(CKA_w(A) CKA_w(B))``;
* :func:`matched_unit_corr` - mean ``|corr|`` of units matched one to one (matching fit on train,
  scored on test): the same subspace is not the same features;
* :func:`skew_symmetric`, :func:`rotation_ladder` - a whitened code rotated by ``expm(t S)`` (§11.2b):
  same information, same Gaussian TC, different higher-order dependence.

Why the debiased estimator: the biased HSIC has an O(1/n) bias that grows with the width, so two
independent Gaussian codes of n = 500 read biased CKA ~0.11 at K = 64 and ~0.67 at K = 1,024 (a
"CKA vs width" curve would show convergence that is not there); the debiased CKA reads ~0 at both.
Why standardise: CKA on raw activations is dominated by the few units of largest variance, so a
lognormal per-unit rescaling of a code (same units, same information) moves its CKA with itself
far from 1; on standardised units it stays 1. Standardised CKA is invariant to per-unit affine
maps and permutations but, unlike raw CKA, not to rotations of a code that is not whitened.

A unit is *dead* (constant) under the rule of :mod:`bench.evaluate.metrics`: its sd is below
``DEAD_TOL * (1 + max sd)``; it becomes a zero column (no NaN) and adds nothing to a Gram matrix.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from bench.evaluate.metrics import DEAD_TOL, _live

NULL_DRAWS = 20  # row permutations of the shuffle null (protocol §11.0)

Array = torch.Tensor | np.ndarray


def _as_features(name: str, f: Array) -> torch.Tensor:
    """``f`` as an (n, K) float64 tensor on its own device; ValueError unless 2-d with K >= 1."""
    t = torch.as_tensor(f)
    if t.ndim != 2 or t.shape[1] < 1:
        raise ValueError(f"{name}: need an (n, K) array with K >= 1, got shape {tuple(t.shape)}")
    return t.double()


def _check_rows(a: torch.Tensor, b: torch.Tensor, least: int) -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"the two codes must hold the same inputs: {a.shape[0]} != {b.shape[0]} rows")
    if a.shape[0] < least:
        raise ValueError(f"need at least {least} rows, got {a.shape[0]}")


def standardise(f: Array, tol: float = DEAD_TOL) -> torch.Tensor:
    """Per-unit z-scores of ``f`` (n, K) on its own rows, float64; dead units become zero columns.

    ``z_ij = (f_ij - mean_j) / sd_j`` (population sd); all nan when ``f`` has a non-finite entry.
    """
    x = _as_features("f", f)
    if not bool(torch.isfinite(x).all()):
        return torch.full_like(x, math.nan)
    x = x - x.mean(0, keepdim=True)
    sd = x.pow(2).mean(0).sqrt()
    live = _live(sd, tol)
    return torch.where(live, x / torch.where(live, sd, torch.ones_like(sd)), torch.zeros_like(x))


def _frob_cross(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``tr(K L) = ||X^T Y||_F^2`` with ``K = X X^T``, ``L = Y Y^T``; by whichever form costs less."""
    n, p, q = x.shape[0], x.shape[1], y.shape[1]
    if n * (p + q) < p * q:
        return ((x @ x.T) * (y @ y.T)).sum()
    return (x.T @ y).square().sum()


@dataclass(frozen=True)
class _Code:
    """What the two HSIC estimators need of one code: X centred (n, K), ``d_i = ||x_i||^2`` (the Gram
    diagonal), ``u = K~ 1`` with ``K~`` the Gram matrix with a zero diagonal, and HSIC(X, X)."""

    x: torch.Tensor
    d: torch.Tensor
    u: torch.Tensor
    self_unbiased: torch.Tensor
    self_biased: torch.Tensor


def _centred(f: Array, standardised: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """X centred (both estimators are invariant to it; it keeps the sums small), ``d`` and ``u``."""
    x = standardise(f) if standardised else _as_features("f", f)
    x = x - x.mean(0, keepdim=True)
    d = x.square().sum(1)
    return x, d, x @ x.sum(0) - d


def _prepare(f: Array, standardised: bool) -> _Code:
    x, d, u = _centred(f, standardised)
    n = x.shape[0]
    kk = _frob_cross(x, x)
    return _Code(x, d, u, _unbiased(kk, d, d, u, u, n), kk / (n - 1) ** 2)


def _unbiased(
    trkl: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, u: torch.Tensor, v: torch.Tensor, n: int
) -> torch.Tensor:
    """Song et al. 2012, eq. 5, from the feature-space sums: with ``K~, L~`` the Gram matrices with
    zero diagonals, ``tr(K~ L~) = tr(K L) - sum_i d_i e_i``, ``1^T K~ 1 = sum u``, ``1^T K~ L~ 1 = u . v``."""
    tr = trkl - dx @ dy
    return (tr + u.sum() * v.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (u @ v)) / (n * (n - 3))


def hsic_unbiased(a: Array, b: Array) -> float:
    """Unbiased HSIC estimator with linear kernels (Song, Smola, Gretton, Bedo & Borgwardt 2012, eq. 5).

    ``HSIC_1 = [tr(K~ L~) + 1^T K~ 1 1^T L~ 1 / ((n-1)(n-2)) - 2/(n-2) 1^T K~ L~ 1] / (n (n-3))`` with
    ``K = A A^T``, ``L = B B^T`` and ``K~, L~`` their copies with zero diagonals; computed from
    feature-space sums (never forming an n x n matrix unless that is cheaper). Unbiased for
    ``||Cov(a, b)||_F^2``; it can be negative. Shapes: (n, K_a), (n, K_b) with n >= 4 -> float.
    """
    x, y = _as_features("a", a), _as_features("b", b)
    _check_rows(x, y, 4)
    (xc, dx, u), (yc, dy, v) = _centred(x, False), _centred(y, False)
    return float(_unbiased(_frob_cross(xc, yc), dx, dy, u, v, x.shape[0]))


def hsic_biased(a: Array, b: Array) -> float:
    """Biased HSIC with linear kernels (Gretton et al. 2005): ``tr(K H L H) / (n-1)^2 = ||A_c^T B_c||_F^2 /
    (n-1)^2`` with ``H`` the centring matrix and ``A_c, B_c`` the column-centred codes. Shapes as
    :func:`hsic_unbiased`, n >= 2."""
    x, y = _as_features("a", a), _as_features("b", b)
    _check_rows(x, y, 2)
    x, y = x - x.mean(0, keepdim=True), y - y.mean(0, keepdim=True)
    return float(_frob_cross(x, y) / (x.shape[0] - 1) ** 2)


def _cka(ca: _Code, cb: _Code, debiased: bool, perm: torch.Tensor | None = None) -> float:
    """CKA of two prepared codes; ``perm`` permutes b's rows (HSIC(b, b) does not change)."""
    y, d, v = (cb.x, cb.d, cb.u) if perm is None else (cb.x[perm], cb.d[perm], cb.u[perm])
    trkl = _frob_cross(ca.x, y)
    if debiased:
        num, den = _unbiased(trkl, ca.d, d, ca.u, v, ca.x.shape[0]), ca.self_unbiased * cb.self_unbiased
    else:
        num, den = trkl / (ca.x.shape[0] - 1) ** 2, ca.self_biased * cb.self_biased
    if not bool(torch.isfinite(den)) or float(den) <= 0.0:
        return math.nan
    return float(num / den.sqrt())


def _pair(a: Array, b: Array, standardised: bool) -> tuple[_Code, _Code]:
    x, y = _as_features("a", a), _as_features("b", b)
    _check_rows(x, y, 4)
    return _prepare(x, standardised), _prepare(y, standardised)


def cka(a: Array, b: Array, *, standardised: bool = True, debiased: bool = True) -> float:
    """Linear CKA of two codes on the same n inputs (Kornblith, Norouzi, Lee & Hinton 2019).

    ``CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` with linear Gram matrices ``K = A A^T``,
    ``L = B B^T``. ``debiased=True`` (the primary, protocol §11.0) uses the unbiased HSIC of Song et
    al. 2012 (:func:`hsic_unbiased`), as in Nguyen, Raghu & Kornblith 2021 and Davari et al. 2022:
    ~0 for independent codes at any width, and it can be slightly negative; ``debiased=False`` is
    the biased CKA (:func:`hsic_biased`), in [0, 1]. ``standardised=True`` (the primary) z-scores each
    unit first (:func:`standardise`; dead units drop out); ``False`` uses the raw activations.

    Args:
        a: (n, K_a) code. b: (n, K_b) code of the same n inputs (n >= 4), same row order.
    Returns:
        CKA; 1 for a code and any rotation + isotropic scaling of it (of its standardised units
        when ``standardised``); nan when a code is constant (all units dead) or non-finite.
    """
    ca, cb = _pair(a, b, standardised)
    return _cka(ca, cb, debiased)


@dataclass(frozen=True)
class ShuffleNull:
    """CKA of ``a`` against ``b`` with its rows permuted: ``mean`` and ``sd`` (ddof = 1) over ``values``."""

    mean: float
    sd: float
    values: np.ndarray


def shuffle_null(
    a: Array, b: Array, *, draws: int = NULL_DRAWS, seed: int = 0, standardised: bool = True, debiased: bool = True
) -> ShuffleNull:
    """Row-shuffle null of :func:`cka` (protocol §11.0): ``CKA(a, b[pi])`` over ``draws`` permutations ``pi``.

    Breaking the row pairing keeps each code's own structure (its spectrum, its width) and removes
    any shared one, so the debiased CKA reads ~0 (sd ~ 1/n) whatever the widths; the biased CKA
    reads its bias. The permutations come from ``torch.Generator().manual_seed(seed)`` on the CPU,
    so a seed gives the same draws on any device. Shapes as :func:`cka`; ``draws`` >= 2.
    """
    if draws < 2:
        raise ValueError(f"draws: need at least 2 for an sd, got {draws}")
    ca, cb = _pair(a, b, standardised)
    gen = torch.Generator().manual_seed(seed)
    n = ca.x.shape[0]
    perms = [torch.randperm(n, generator=gen).to(ca.x.device) for _ in range(draws)]
    values = np.array([_cka(ca, cb, debiased, p) for p in perms])
    return ShuffleNull(float(values.mean()), float(values.std(ddof=1)), values)


def _prepare_all(codes: Mapping[Hashable, Array], standardised: bool) -> dict[Hashable, _Code]:
    prepared = {s: _prepare(_as_features(f"seed {s!r}", f), standardised) for s, f in codes.items()}
    rows = {c.x.shape[0] for c in prepared.values()}
    if len(rows) > 1:
        raise ValueError(f"every seed's code must hold the same inputs; got row counts {sorted(rows)}")
    if rows and min(rows) < 4:
        raise ValueError(f"need at least 4 rows, got {min(rows)}")
    return prepared


def _within(prepared: Mapping[Hashable, _Code], debiased: bool) -> tuple[float, int]:
    values = [_cka(prepared[s], prepared[t], debiased) for s, t in combinations(prepared, 2)]
    return (float(np.mean(values)) if values else math.nan), len(values)


def _between(pa: Mapping[Hashable, _Code], pb: Mapping[Hashable, _Code], debiased: bool) -> tuple[float, int]:
    if pa and pb and next(iter(pa.values())).x.shape[0] != next(iter(pb.values())).x.shape[0]:
        raise ValueError("the two methods' codes must hold the same inputs")
    values = [_cka(pa[s], pb[t], debiased) for s in pa for t in pb if s != t]
    return (float(np.mean(values)) if values else math.nan), len(values)


def cka_within(codes: Mapping[Hashable, Array], *, standardised: bool = True, debiased: bool = True) -> float:
    """Cross-seed ceiling ``CKA_w`` of one method (protocol §11.0): mean :func:`cka` over the unordered
    pairs of distinct seeds of ``codes`` (seed -> (n, K) code, the same n inputs in the same order for
    every seed). How similar a method is to itself when only the seed changes; nan for < 2 seeds."""
    return _within(_prepare_all(codes, standardised), debiased)[0]


@dataclass(frozen=True)
class Similarity:
    """Ceiling-normalised similarity of methods A and B.

    Attributes:
        s: ``cka / sqrt(cka_w_a * cka_w_b)``; nan when a ceiling is not positive or a term is nan.
        cka: Mean CKA(A_s, B_t) over the ``n_pairs`` pairs of seeds with ``s != t``.
        cka_w_a, cka_w_b: The two cross-seed ceilings (:func:`cka_within`).
        n_pairs: Seed pairs behind ``cka``.
    """

    s: float
    cka: float
    cka_w_a: float
    cka_w_b: float
    n_pairs: int


def _similarity(between: float, n_pairs: int, wa: float, wb: float) -> Similarity:
    ok = all(math.isfinite(v) for v in (between, wa, wb)) and wa > 0 and wb > 0
    return Similarity(between / math.sqrt(wa * wb) if ok else math.nan, between, wa, wb, n_pairs)


def ceiling_normalised(
    codes_a: Mapping[Hashable, Array],
    codes_b: Mapping[Hashable, Array],
    *,
    standardised: bool = True,
    debiased: bool = True,
) -> Similarity:
    """``S(A, B) = CKA(A, B) / sqrt(CKA_w(A) CKA_w(B))`` (protocol §11.0).

    ``CKA(A, B)`` is the mean over seed pairs ``(s, t)``, ``s`` a seed of A and ``t != s`` a seed of
    B: like the ceilings, it compares models that share nothing but the data (a same-seed pair could
    share a data order or a split). So ``S(A, A) = 1`` exactly, and ``S`` near 1 means "as similar as
    two seeds of the same method". ``codes_a``, ``codes_b``: seed -> (n, K) code on the same n inputs.
    """
    pa, pb = _prepare_all(codes_a, standardised), _prepare_all(codes_b, standardised)
    between, n = _between(pa, pb, debiased)
    return _similarity(between, n, _within(pa, debiased)[0], _within(pb, debiased)[0])


def similarity_matrix(
    codes: Mapping[str, Mapping[Hashable, Array]], *, standardised: bool = True, debiased: bool = True
) -> dict[tuple[str, str], Similarity]:
    """:func:`ceiling_normalised` for every ordered pair of methods (diagonal included) of ``codes``
    (method -> seed -> (n, K) code), each code prepared and each ceiling computed once."""
    prepared = {m: _prepare_all(c, standardised) for m, c in codes.items()}
    ceilings = {m: _within(p, debiased)[0] for m, p in prepared.items()}
    out: dict[tuple[str, str], Similarity] = {}
    for ma, mb in combinations(prepared, 2):
        between, n = _between(prepared[ma], prepared[mb], debiased)
        out[ma, mb] = _similarity(between, n, ceilings[ma], ceilings[mb])
        out[mb, ma] = out[ma, mb]
    for m in prepared:
        between, n = _between(prepared[m], prepared[m], debiased)
        out[m, m] = _similarity(between, n, ceilings[m], ceilings[m])
    return out


def _cross_corr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(K_a, K_b) Pearson correlations between the columns of a and b; 0 where a unit is dead."""
    return standardise(a).T @ standardise(b) / a.shape[0]


def _live_units(x: torch.Tensor) -> np.ndarray:
    """(K,) bool: the units of ``x`` (n, K) that are not constant (the dead rule of the module docstring)."""
    return _live(x.std(0, correction=0)).cpu().numpy()


@dataclass(frozen=True)
class UnitMatch:
    """Unit-level similarity of two codes.

    Attributes:
        score: Mean test ``|corr|`` over the ``min(K_a, K_b)`` matched pairs; a pair with a unit dead
            on train or on test counts 0 (a dead unit has no partner).
        score_live: Mean test ``|corr|`` over the matched pairs whose two units are live on train
            (nan when there is none): the same measure without the dead-unit penalty.
        rows, cols: The matching fit on train: unit ``rows[i]`` of a <-> unit ``cols[i]`` of b.
        dead_a, dead_b: Units dead (constant) on train in a and in b.
    """

    score: float
    score_live: float
    rows: np.ndarray
    cols: np.ndarray
    dead_a: int
    dead_b: int


def matched_unit_corr(a_train: Array, b_train: Array, a_test: Array, b_test: Array) -> UnitMatch:
    """Mean ``|corr|`` of units matched one to one, matching fit on train and scored on test (protocol §11.0).

    ``C_ij = |corr_train(a_i, b_j)|``; the assignment maximising ``sum C`` over ``min(K_a, K_b)``
    pairs (``scipy.optimize.linear_sum_assignment``, as in the MCC of Hyvarinen & Morioka 2016 and
    :func:`bench.evaluate.factors.mcc`, here between two codes) is kept, and each matched pair is
    scored by its ``|corr|`` on test. 1 for a permuted, sign-flipped, per-unit rescaled copy; low for
    a rotated copy, which CKA cannot tell from the original: the same subspace is not the same units.

    Args:
        a_train, b_train: (n_train, K_a), (n_train, K_b) codes of the same train inputs.
        a_test, b_test: (n_test, K_a), (n_test, K_b) codes of the same test inputs.
    Returns:
        :class:`UnitMatch`; its scores are nan when a code has a non-finite entry.
    """
    at, bt = _as_features("a_train", a_train), _as_features("b_train", b_train)
    ae, be = _as_features("a_test", a_test), _as_features("b_test", b_test)
    _check_rows(at, bt, 2)
    _check_rows(ae, be, 2)
    if at.shape[1] != ae.shape[1] or bt.shape[1] != be.shape[1]:
        raise ValueError("train and test codes must have the same units")
    c_train = _cross_corr(at, bt).abs().cpu().numpy()
    c_test = _cross_corr(ae, be).abs().cpu().numpy()
    live_a, live_b = _live_units(at), _live_units(bt)
    if np.isnan(c_train).any() or np.isnan(c_test).any():
        empty = np.zeros(0, dtype=int)
        return UnitMatch(math.nan, math.nan, empty, empty, int((~live_a).sum()), int((~live_b).sum()))
    rows, cols = linear_sum_assignment(c_train, maximize=True)
    scored = c_test[rows, cols]
    both = live_a[rows] & live_b[cols]
    return UnitMatch(
        score=float(scored.mean()),
        score_live=float(scored[both].mean()) if both.any() else math.nan,
        rows=rows,
        cols=cols,
        dead_a=int((~live_a).sum()),
        dead_b=int((~live_b).sum()),
    )
