"""Redundancy diagnostics and pruning summaries as pure functions (docs/protocol.md §8 P1).

Feature diagnostics take ``f``: (N, K) features of one split (torch, any float dtype, any
device) and return a Python float. None of them is the subject's training proxy
(``sum_{j != k} Corr^2``): the point of P1 is to measure redundancy with instruments the
InfoMax loss did not optimise directly.

* :func:`gaussian_tc` - Gaussian total correlation ``1/2 (sum_j log C_jj - log det C)``;
* :func:`pairwise_mi_binned` - mean mutual information of 20-bin binned pairs (Miller-Madow);
* :func:`mean_abs_offdiag_corr` - mean ``|Corr_jk|`` over ``j != k``;
* :func:`max_weight_cosine` - max cosine similarity between two incoming weight vectors;
* :func:`effective_rank` - ``exp(H(lambda / sum lambda)) / K`` (Roy & Vetterli 2007);
* :func:`dead_fraction` - share of constant features.

Pruning summaries take numpy arrays over the pruned fractions ``p``:

* :func:`retained_accuracy` ``r(p) = (acc(p) - chance) / (acc(0) - chance)``;
* :func:`aurc` - trapezoid mean of ``r`` over ``p`` in [0.1, 0.9];
* :func:`prunable_fraction` - largest ``p`` with ``acc(p) >= acc(0) - 0.01``.

A feature is *dead* (constant) when its standard deviation is below ``tol * (1 + max_k sd_k)``
(``tol`` = 1e-6); dead features have zero correlation with everything.

Degenerate input: features that are not (N, K) with N >= 1 and K >= 1 raise ValueError; features
with a NaN or +-inf entry give nan (an all-nan matrix for :func:`correlation`), since no
diagnostic is defined on them (before, one NaN made every feature "dead": 0 redundancy).
"""

from __future__ import annotations

import math

import numpy as np
import torch

DEAD_TOL = 1e-6


def _check_features(name: str, f: torch.Tensor) -> None:
    """ValueError unless ``f`` is (N, K) with at least one row and one column."""
    if f.ndim != 2 or f.shape[0] < 1 or f.shape[1] < 1:
        raise ValueError(f"{name}: need an (N, K) array with N >= 1 and K >= 1, got shape {tuple(f.shape)}")


def _finite(f: torch.Tensor) -> bool:
    return bool(torch.isfinite(f).all())


def _live(sd: torch.Tensor, tol: float = DEAD_TOL) -> torch.Tensor:
    return sd > tol * (1.0 + sd.max())


def correlation(f: torch.Tensor, tol: float = DEAD_TOL) -> torch.Tensor:
    """(K, K) Pearson correlation of the columns of ``f`` (N, K), float64.

    Dead (constant) columns get an all-zero row and column, diagonal included; all nan when
    ``f`` has a non-finite entry.
    """
    _check_features("f", f)
    if not _finite(f):
        return torch.full((f.shape[1], f.shape[1]), math.nan, dtype=torch.float64, device=f.device)
    x = f.double()
    x = x - x.mean(0, keepdim=True)
    sd = x.pow(2).mean(0).sqrt()
    live = _live(sd, tol)
    z = torch.where(live, x / torch.where(live, sd, torch.ones_like(sd)), torch.zeros_like(x))
    return z.T @ z / x.shape[0]


def dead_fraction(f: torch.Tensor, tol: float = DEAD_TOL) -> float:
    """Share of the K features that are constant on ``f`` (N, K): sd < tol (1 + max sd); nan when
    ``f`` has a non-finite entry."""
    _check_features("f", f)
    if not _finite(f):
        return math.nan
    sd = f.double().std(0, unbiased=False)
    return float((~_live(sd, tol)).double().mean())


def gaussian_tc(f: torch.Tensor, ridge: float = 1e-3) -> float:
    """Gaussian total correlation of the features, in nats.

    ``TC = 1/2 (sum_j log C_jj - log det C)`` (Watanabe 1960's total correlation of a
    Gaussian with covariance C; docs/protocol.md §8 P1). It is invariant to rescaling each feature,
    so it is computed on the correlation matrix R (``C_jj = 1``): ``TC = -1/2 log det R_r``
    with the ridge ``R_r = (R + ridge I) / (1 + ridge)``, which keeps the diagonal at 1 and the
    value finite when features are exact copies (then TC grows like ``-1/2 log ridge`` per
    copy). Dead features are independent of everything (they add 0).
    The plug-in estimate is biased upwards by about ``K (K - 1) / (4 N)`` for independent
    features; compare methods at equal K and N only.

    Args:
        f: (N, K) features. ridge: relative ridge on the correlation matrix.
    Returns:
        TC >= 0 (0 iff the features are uncorrelated); nan for non-finite features.
    """
    r = correlation(f)
    k = r.shape[0]
    if torch.isnan(r).any():
        return math.nan
    eye = torch.eye(k, dtype=r.dtype, device=r.device)
    r = r + torch.diag((torch.diagonal(r) < 0.5).double())  # dead features: unit variance, independent
    r_ridge = (r + ridge * eye) / (1.0 + ridge)
    return float(-0.5 * torch.linalg.slogdet(r_ridge).logabsdet)


def mean_abs_offdiag_corr(f: torch.Tensor) -> float:
    """Mean ``|R_jk|`` over the ``K (K - 1)`` ordered pairs ``j != k`` of the features (N, K); nan when
    K < 2 or a feature has a non-finite entry."""
    r = correlation(f).abs()
    k = r.shape[0]
    if k < 2:
        return math.nan
    return float((r.sum() - torch.diagonal(r).sum()) / (k * (k - 1)))


def effective_rank(f: torch.Tensor, on: str = "corr") -> float:
    """Normalised effective rank ``exp(H(lambda / sum lambda)) / K`` (Roy & Vetterli 2007).

    ``lambda`` are the eigenvalues of the features' correlation matrix (``on="corr"``: scale
    invariant, so it measures redundancy - K independent features give 1, K/4 features each
    copied 4 times give 1/4, dead features count as zero eigenvalues) or covariance matrix
    (``on="cov"``: it also falls when variance is spread unevenly, as for PCA components).
    ``H(p) = -sum_i p_i log p_i``. Range [1/K, 1]; 0 when every feature is dead; nan when a
    feature has a non-finite entry.

    Args:
        f: (N, K) features.
    """
    if on not in ("corr", "cov"):
        raise ValueError(f"on: unknown '{on}' (choices: corr, cov)")
    _check_features("f", f)
    if not _finite(f):
        return math.nan
    if on == "corr":
        m = correlation(f)
    elif on == "cov":
        x = f.double() - f.double().mean(0, keepdim=True)
        m = x.T @ x / x.shape[0]
    else:
        raise ValueError(f"on: unknown '{on}' (choices: corr, cov)")
    lam = torch.linalg.eigvalsh(m).clamp(min=0)
    total = lam.sum()
    if total <= 0:
        return 0.0
    p = lam / total
    h = -(p * torch.log(torch.where(p > 0, p, torch.ones_like(p)))).sum()
    return float(torch.exp(h) / m.shape[0])


def max_weight_cosine(w: torch.Tensor) -> float:
    """Largest cosine similarity ``max_{j != k} <w_j, w_k> / (|w_j| |w_k|)`` between rows.

    Args:
        w: (K, D) incoming weight vectors of the K units (rows of a ``Linear`` weight).
    Returns:
        Signed maximum in [-1, 1] (1: two units compute the same projection, up to scale);
        zero rows have cosine 0 with everything; nan when K < 2 or ``w`` has a non-finite entry.
    """
    if w.ndim != 2:
        raise ValueError(f"w: need a (K, D) array, got shape {tuple(w.shape)}")
    k = w.shape[0]
    if k < 2 or not _finite(w.detach()):
        return math.nan
    x = w.detach().double()
    n = x.norm(dim=1, keepdim=True)
    x = x / torch.where(n > 0, n, torch.ones_like(n))
    g = x @ x.T
    g.fill_diagonal_(-math.inf)
    return float(g.max())


def pairwise_mi_binned(f: torch.Tensor, bins: int = 20, miller_madow: bool = True, block: int = 4_000_000) -> float:
    """Mean pairwise mutual information of the binned features, in nats.

    Each feature is cut into ``bins`` equal-width bins over its own [min, max] on ``f`` (the
    discretisation of disentanglement_lib's ``_histogram_discretize``; a constant feature
    falls in one bin). For every pair ``j < k``:
    ``MI_jk = sum_{a,b} P_jk(a,b) log(P_jk(a,b) / (P_j(a) P_k(b))) = H_j + H_k - H_jk`` (plug-in), minus the
    Miller-Madow bias ``(m_jk - m_j - m_k + 1) / (2N)`` when ``miller_madow`` (m: non-empty
    cells; without it independent features read about ``(bins - 1)^2 / (2N)``, not 0).
    All joint histograms at once: with the one-hot codes ``B`` (N, K bins), ``B^T B`` holds
    every pair's joint counts (computed in row blocks of at most ``block`` cells).

    Args:
        f: (N, K) features. bins: bins per feature.
    Returns:
        Mean of ``MI_jk`` over the ``K (K - 1) / 2`` pairs; nan when K < 2 or a feature has a
        non-finite entry.
    """
    _check_features("f", f)
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins: need an integer >= 1, got {bins!r}")
    n, k = f.shape
    if k < 2 or not _finite(f):
        return math.nan
    x = f.double()
    lo, hi = x.min(0).values, x.max(0).values
    span = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    idx = ((x - lo) / span * bins).floor().long().clamp(0, bins - 1)  # (N, K)
    codes = idx + torch.arange(k, device=f.device) * bins
    onehot = torch.zeros(n, k * bins, device=f.device, dtype=torch.float32)  # counts stay exact in float32
    onehot.scatter_(1, codes, 1.0)
    c = onehot.sum(0).double().view(k, bins)  # marginal counts
    h = math.log(n) - torch.special.xlogy(c, c).sum(1) / n  # H_j, plug-in
    m = (c > 0).sum(1).double()  # non-empty bins per feature
    total = 0.0
    rows = max(1, block // (k * bins * bins))
    for s in range(0, k, rows):
        e = min(k, s + rows)
        joint = (onehot[:, s * bins : e * bins].T @ onehot).view(e - s, bins, k, bins)  # joint counts
        h_joint = math.log(n) - torch.special.xlogy(joint, joint).sum((1, 3)).double() / n  # (e - s, K)
        mi = h[s:e, None] + h[None, :] - h_joint  # MI = H_j + H_k - H_jk
        if miller_madow:
            cells = (joint > 0).sum((1, 3)).double()
            mi = mi - (cells - m[s:e, None] - m[None, :] + 1) / (2 * n)
        upper = torch.arange(k, device=f.device)[None, :] > torch.arange(s, e, device=f.device)[:, None]
        total += float(mi[upper].sum())
    return total / (k * (k - 1) / 2)


# --------------------------------------------------------------------------- summaries
def retained_accuracy(acc: np.ndarray, acc0: float, chance: float, min_gap: float = 0.0) -> np.ndarray:
    """Normalised retained accuracy ``r(p) = (acc(p) - chance) / (acc(0) - chance)``.

    ``r(0) = 1`` exactly, ``r = 0`` at chance. All-nan when ``acc(0) - chance <= min_gap``:
    an encoder at chance has nothing to retain, and near chance r is noise over a tiny
    denominator.

    Args:
        acc: (F,) accuracies at the pruned fractions. acc0: accuracy unpruned. chance: 1 / classes.
        min_gap: smallest ``acc(0) - chance`` for which r is defined.
    """
    acc = np.asarray(acc, dtype=float)
    if not acc0 - chance > min_gap:
        return np.full(acc.shape, np.nan)
    return (acc - chance) / (acc0 - chance)


def _check_pair(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> None:
    if a.ndim != 1 or b.shape != a.shape:
        raise ValueError(f"{name_a}, {name_b}: need 1-D arrays of one length, got shapes {a.shape}, {b.shape}")


def aurc(fractions: np.ndarray, r: np.ndarray, lo: float = 0.1, hi: float = 0.9) -> float:
    """Area under the retained-accuracy curve, as a mean: ``int_lo^hi r(p) dp / (hi - lo)``.

    Trapezoid rule over the measured fractions in [lo, hi] (1 for an encoder that loses
    nothing, 0 for one at chance as soon as anything is pruned).

    Args:
        fractions: (F,) pruned fractions p. r: (F,) retained accuracy at each p.
    Returns:
        The mean; nan when fewer than 2 distinct fractions lie in [lo, hi], or when r is nan at one
        of them (as :func:`retained_accuracy` gives for an encoder at chance).
    Raises:
        ValueError: When ``fractions`` and ``r`` are not 1-D arrays of one length.
    """
    p = np.asarray(fractions, dtype=float)
    r = np.asarray(r, dtype=float)
    _check_pair("fractions", p, "r", r)
    keep = (p >= lo - 1e-9) & (p <= hi + 1e-9)
    p, r = p[keep], r[keep]
    order = np.argsort(p)
    p, r = p[order], r[order]
    if len(p) < 2 or p[-1] == p[0]:
        return math.nan
    return float(np.trapezoid(r, p) / (p[-1] - p[0]))


def prunable_fraction(fractions: np.ndarray, acc: np.ndarray, tol: float = 0.01) -> float:
    """Largest pruned fraction ``p`` with ``acc(p) >= acc(0) - tol`` (tol = 1 point: 0.01).

    Args:
        fractions: (F,) pruned fractions, one of them 0. acc: (F,) accuracies in [0, 1].
    Returns:
        The largest such p (0 when every pruned level loses more than ``tol``); nan when acc(0)
        is nan.
    Raises:
        ValueError: When the arrays are not 1-D of one length or ``fractions`` lacks 0.
    """
    p = np.asarray(fractions, dtype=float)
    acc = np.asarray(acc, dtype=float)
    _check_pair("fractions", p, "acc", acc)
    zero = np.flatnonzero(p == 0)
    if not len(zero):
        raise ValueError("fractions: must include 0 (the unpruned reference)")
    if np.isnan(acc[zero[0]]):
        return math.nan
    ok = acc >= acc[zero[0]] - tol - 1e-12
    return float(p[ok].max())


# --------------------------------------------------------------------------- kNN predictability
def knn_predictability_r2(
    f_train: torch.Tensor, f_test: torch.Tensor, k: int = 10, tol: float = DEAD_TOL, chunk: int = 256
) -> torch.Tensor:
    """Per-feature test R^2 of a k-nearest-neighbour regression of feature j on the other features.

    Every feature is standardised with the TRAIN mean and sd (population sd), so no unit's scale
    dominates the distances. Dead features (train sd below ``tol * (1 + max_k sd_k)``, as in
    :func:`dead_fraction`) are neither targets nor predictors; the rule is relative to the largest sd,
    so the value is invariant to rescaling features only while their sds stay within a factor
    ``1 / tol`` of the largest. For a live target j the neighbours
    of a test point ``x`` are its ``k`` nearest train points ``x'`` (uniform weights) under the
    squared Euclidean distance over the other live features,
    ``d2_j(x, x') = D2(x, x') - (x_j - x'_j)^2`` with ``D2`` the distance over all live features
    (computed once per block of test rows), and ``yhat_j(x) = mean_{x' in N_k,j(x)} x'_j``.
    ``R^2_j = 1 - sum_test (x_j - yhat_j)^2 / sum_test (x_j - mean_test x_j)^2``, clipped to [0, 1]:
    unclipped it is unbounded below for a feature that is nearly constant on test (a rarely used
    GMM component read -2e30 on digits, and one such feature decided the mean), and any value
    below 0 means the same thing, "no better than the test mean". (Unclipped, independent features
    give about ``-1 / k``: the mean of k unrelated train values adds ``var / k`` to the error.) A
    feature constant on test reads 1 when predicted exactly, else 0. Train and test must be
    disjoint inputs (nothing is excluded as a self-match).

    Args:
        f_train: (N_train, K) features the regressors are fitted on. f_test: (N_test, K) features
            scored (same device). k: neighbours. tol: dead-feature tolerance.
        chunk: test rows per block (memory ~ a few ``chunk x N_train`` float64 matrices).
    Returns:
        (K,) float64 tensor on the inputs' device: ``R^2_j`` for live features, nan for dead ones
        (all nan when fewer than 2 features are live or an entry of either input is non-finite).
    Raises:
        ValueError: For inputs that are not (N, K) with one K, an empty test set, or a bad k / chunk.
    """
    if f_train.ndim != 2 or f_test.ndim != 2 or f_train.shape[1] != f_test.shape[1] or f_train.shape[1] < 1:
        raise ValueError(
            f"f_train, f_test: need (N, K) with equal K >= 1, got {tuple(f_train.shape)}, {tuple(f_test.shape)}"
        )
    n_train, kk = f_train.shape
    if f_test.shape[0] < 1:
        raise ValueError("f_test: need at least one row (R^2 on no test point is undefined)")
    if not 1 <= k <= n_train:
        raise ValueError(f"k: need 1 <= k <= N_train = {n_train}, got {k}")
    if chunk < 1:
        raise ValueError(f"chunk: need >= 1, got {chunk}")
    xtr = f_train.detach().double()
    xte = f_test.detach().double().to(xtr.device)
    mu = xtr.mean(0)
    sd = xtr.std(0, unbiased=False)
    live = _live(sd, tol)
    r2 = torch.full((kk,), math.nan, dtype=torch.float64, device=xtr.device)
    if not (_finite(xtr) and _finite(xte)):
        return r2
    idx = torch.nonzero(live).flatten()
    if len(idx) < 2:
        return r2
    a = (xtr[:, idx] - mu[idx]) / sd[idx]  # (N_train, L) standardised train
    b = (xte[:, idx] - mu[idx]) / sd[idx]  # (N_test, L) standardised test, train statistics
    a_sq = a.pow(2).sum(1)  # (N_train,)
    at = a.T.contiguous()  # (L, N_train): feature j of every train point, contiguous
    sse = torch.zeros(len(idx), dtype=torch.float64, device=a.device)
    for s in range(0, b.shape[0], chunk):
        bc = b[s : s + chunk]  # (C, L)
        d2 = bc.pow(2).sum(1, keepdim=True) + a_sq[None, :] - 2.0 * (bc @ a.T)  # (C, N_train) full distance
        dj = torch.empty_like(d2)
        for j in range(len(idx)):
            torch.sub(bc[:, j, None], at[j][None, :], out=dj)
            # distance without feature j, in place: d2 - dj * dj in one pass (two passes over the
            # (C, N_train) block, not three; bit-equal to square-then-subtract on this CPU build)
            torch.addcmul(d2, dj, dj, value=-1.0, out=dj)
            nn = torch.topk(dj, k, dim=1, largest=False).indices  # (C, k)
            yhat = at[j][nn].mean(1)
            sse[j] += (bc[:, j] - yhat).pow(2).sum()
    sst = (b - b.mean(0, keepdim=True)).pow(2).sum(0)
    exact = torch.where(sse == 0, 1.0, 0.0).to(sse.dtype)
    r2[idx] = torch.where(sst > 0, 1.0 - sse / torch.where(sst > 0, sst, torch.ones_like(sst)), exact).clamp(0.0, 1.0)
    return r2


def nonlinear_predictability(
    f_train: torch.Tensor, f_test: torch.Tensor, k: int = 10, tol: float = DEAD_TOL, chunk: int = 256
) -> float:
    """Nonlinear predictability: mean over live features j of the kNN test ``R^2_j`` (docs/protocol.md §8 P1).

    ``NP = (1 / |L|) sum_{j in L} R^2_j`` with ``R^2_j`` from :func:`knn_predictability_r2`: the test
    R^2 of predicting standardised feature j from the other live features with a k-nearest-neighbour
    regressor (k = 10, uniform weights, Euclidean distance on train-standardised features) fitted on
    train; L = live features; each ``R^2_j`` clipped to [0, 1]. 1: each feature is a function of
    the others (redundant, prunable without losing information); 0: unpredictable. It sees nonlinear dependence (``x2 = x1^2`` has Pearson correlation 0 but is
    predicted from x1), so it is a redundancy measure the subject's Gaussian TC / correlation proxy
    does not optimise; like the proxy it depends on the basis (rotating the code changes it) and,
    through the kNN, on K and N_train (compare methods at equal K and N only).

    Args:
        f_train: (N_train, K) train features. f_test: (N_test, K) test features (disjoint inputs).
        k: neighbours. tol: dead-feature tolerance. chunk: test rows per block (memory only).
    Returns:
        NP in [0, 1]; nan when fewer than 2 features are live or an input has a non-finite entry.
    """
    r2 = knn_predictability_r2(f_train, f_test, k=k, tol=tol, chunk=chunk)
    live = ~torch.isnan(r2)
    if int(live.sum()) < 2:
        return math.nan
    return float(r2[live].mean())
