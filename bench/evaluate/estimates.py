"""Estimates of the open questions (protocol section 11): scaling slopes, their differences and
ranks, a held-out power-law fit, the reading words of "does InfoMax scale?", and TOST equivalence.

Section 11 answers questions with estimates, not verdicts: every quantity is computed per seed (the
seed is the unit of replication) and summarised by its mean and 95% t-interval over seeds
(:func:`bench.evaluate.inference.t_interval`). A *curve* is one seed's values ``y`` at the points
``x`` of an axis (pretraining set size N, width K or epochs); :func:`seed_grid` turns a tidy table
``(seed, x, y)`` into a seeds x points matrix, NaN where a seed lacks a point.

* :func:`halvings`: ``b = -slope of log2 e on log2 x`` (test error halvings per doubling of x), over
  all points or, as ``b_end``, over the last ``doublings`` doublings of the grid;
* :func:`per_doubling`: the slope of accuracy on ``log2 x`` (accuracy gained per doubling);
* :func:`differences`: subject - baseline in any per-seed estimate, paired by seed, with
  simultaneous (Bonferroni) intervals where two or more baselines are compared and Holm p beside;
* :func:`rank_interval`: the subject's rank among methods with a seed-bootstrap interval;
* :func:`bench.evaluate.scaling_law.fit_power_law`: ``e(N) = e_inf + a N^-c`` fitted per seed without the
  largest N, scored by its extrapolation error at that N (descriptive);
* :func:`bench.evaluate.scaling_law.readings`: the words "still scaling", "stops", "lands with" or
  "undetermined" per method;
* :func:`bench.evaluate.equivalence.tost`: Schuirmann's two one-sided tests of equivalence within a margin
  (section 11.3a: "equivalent", "differs" or "undetermined", with the smallest margin the data
  could establish).

Pure functions of numbers (numpy arrays, sequences, or tensors on any device, read once into host
memory); no I/O, no global state, no torch import (the report reads tidy tables without torch).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

from bench.evaluate.inference import _check_unit, holm, t_interval
from bench.evaluate.stats import _p_t, paired_differences

WORDS = ("still scaling", "stops", "lands with", "undetermined")
TOST_RESULTS = ("equivalent", "differs", "undetermined")
REL_TOL = 1e-9  # a grid point within this relative distance of a window's edge counts as inside


def _host(values) -> np.ndarray:
    """A flat float64 numpy array of ``values``; a tensor (any device) is detached and copied to host."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=float).ravel()


def _key(v):
    """A seed as a plain Python number (numpy scalars print and hash like their Python values)."""
    return v.item() if hasattr(v, "item") else v


@dataclass(frozen=True)
class Estimate:
    """The mean of a per-seed quantity and its t-interval over seeds.

    Attributes:
        n: Seeds with a finite value.
        mean: Mean over those seeds; nan when ``n == 0``.
        ci_low: Lower end of the t-interval; nan when ``n < 2``.
        ci_high: Upper end of the t-interval; nan when ``n < 2``.
        level: Confidence level of the interval.
        n_missing: Seeds of the table whose value could not be computed (a missing or non-finite
            point in the window, a non-positive error under a logarithm, a failed fit).
        per_seed: ``((seed, value), ...)`` over the ``n`` seeds, in ascending seed order
            (``dict(e.per_seed)`` is what :func:`differences` and :func:`rank_interval` take).
    """

    n: int
    mean: float
    ci_low: float
    ci_high: float
    level: float
    n_missing: int
    per_seed: tuple = ()

    def covers(self, value: float) -> bool:
        """Whether ``ci_low <= value <= ci_high`` (False when the interval is undefined)."""
        return bool(self.ci_low <= value <= self.ci_high)


def estimate(seeds: Sequence, values, level: float = 0.95) -> Estimate:
    """:class:`Estimate` of per-seed ``values`` (NaN = that seed's value could not be computed)."""
    _check_unit("level", level)
    v = _host(values)
    seeds = [_key(s) for s in seeds]
    if len(seeds) != v.size:
        raise ValueError(f"seeds and values differ in length: {len(seeds)} != {v.size}")
    ok = np.isfinite(v)
    mean, lo, hi = t_interval(v[ok], level=level) if ok.any() else (math.nan, math.nan, math.nan)
    pairs = tuple((s, float(x)) for s, x, k in zip(seeds, v, ok, strict=True) if k)
    return Estimate(int(ok.sum()), mean, lo, hi, float(level), int((~ok).sum()), pairs)


def seed_grid(seed, x, y) -> tuple[list, np.ndarray, np.ndarray]:
    """A tidy table ``(seed, x, y)`` as a seeds x points matrix.

    Args:
        seed: Seed of each row (any sortable values).
        x: Axis value of each row (N, K or epochs; > 0).
        y: Measured value of each row (test error or accuracy).

    Returns:
        ``(seeds, xs, Y)``: the sorted distinct seeds, the sorted distinct x (the grid) and ``Y`` of
        shape ``(len(seeds), len(xs))`` with ``Y[i, j]`` the value of seed i at x_j (NaN if absent).

    Raises:
        ValueError: For columns of different lengths, a non-positive or non-finite x, or a
            (seed, x) pair given twice (two values for one point would be averaged silently).
    """
    s = np.asarray(seed).ravel()
    xv, yv = _host(x), _host(y)
    if not s.size == xv.size == yv.size:
        raise ValueError(f"seed, x and y differ in length: {s.size}, {xv.size}, {yv.size}")
    if not np.all(np.isfinite(xv) & (xv > 0)):
        raise ValueError("x must be finite and > 0 (a doubling is a factor of 2 in x)")
    seeds, si = np.unique(s, return_inverse=True)
    xs, xi = np.unique(xv, return_inverse=True)
    flat = si * xs.size + xi
    if np.unique(flat).size != flat.size:
        raise ValueError("a (seed, x) point appears twice: give one value per seed and point")
    grid = np.full(seeds.size * xs.size, np.nan)
    grid[flat] = yv
    return [_key(v) for v in seeds], xs, grid.reshape(seeds.size, xs.size)


def window(xs, doublings: float | None = None) -> np.ndarray:
    """Mask of the grid points in the last ``doublings`` doublings: ``x >= max(x) / 2**doublings``.

    ``None`` keeps every point. On a doubling grid (mnist5k's 437..3,500) two doublings are the last
    three points; on a grid of factor 4 (mnist1d's 1k..256k) they are the last two.

    Raises:
        ValueError: When the window holds fewer than two grid points (no slope).
    """
    xs = _host(xs)
    if doublings is None:
        mask = np.ones(xs.size, dtype=bool)
    else:
        if not doublings > 0:
            raise ValueError(f"doublings must be > 0, got {doublings!r}")
        mask = xs >= xs.max() / 2.0**doublings * (1 - REL_TOL)
    if mask.sum() < 2:
        raise ValueError(f"the window of {doublings} doublings holds {int(mask.sum())} grid point(s) of {xs.tolist()}")
    return mask


def log2_slopes(xs, Y) -> np.ndarray:
    """Least-squares slope of each row of ``Y`` on ``log2 xs``: ``sum_j u_j (y_j - ybar) / sum_j u_j^2``
    with ``u = log2 x - mean(log2 x)``, i.e. the change in y per doubling of x.

    Args:
        xs: The grid, shape ``(P,)`` (P >= 2 distinct values).
        Y: Values, shape ``(S, P)``.

    Returns:
        Shape ``(S,)``; NaN for a row with any non-finite entry (a slope over fewer points would be
        another estimand than the other seeds').
    """
    xs = _host(xs)
    Y = np.asarray(Y.detach().cpu().numpy() if hasattr(Y, "detach") else Y, dtype=float)
    if Y.ndim != 2 or Y.shape[1] != xs.size:
        raise ValueError(f"Y must have shape (S, {xs.size}), got {Y.shape}")
    u = np.log2(xs)
    u = u - u.mean()
    ss = float(u @ u)
    if ss == 0:
        raise ValueError("a slope needs at least two distinct x")
    ok = np.all(np.isfinite(Y), axis=1)
    out = np.full(Y.shape[0], np.nan)
    out[ok] = Y[ok] @ u / ss
    return out


def halvings(seed, x, err, doublings: float | None = None, level: float = 0.95) -> Estimate:
    """Error halvings per doubling of x, per seed, with a t-interval over seeds (protocol 11.1).

    ``b_s = -slope of log2 e on log2 x`` over seed s's points (:func:`log2_slopes`): ``b = 1`` means
    each doubling of x halves the test error, ``b = 0`` a flat curve. With ``doublings=2`` it is
    ``b_end``, the same over the last two doublings of the grid (:func:`window`).

    Args:
        seed, x, err: The tidy table; ``err`` is the probe's test error (``1 - accuracy``).
        doublings: ``None`` for all points, else the width of the window at the grid's end.
        level: Confidence level.

    Returns:
        An :class:`Estimate`; a seed missing a point of the window, or with an error <= 0 there
        (no logarithm), is NaN and counted in ``n_missing``.
    """
    seeds, xs, E = seed_grid(seed, x, err)
    w = window(xs, doublings)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(E > 0, np.log2(np.where(E > 0, E, 1.0)), np.nan)
    return estimate(seeds, -log2_slopes(xs[w], logs[:, w]), level)


def per_doubling(seed, x, y, doublings: float | None = None, level: float = 0.95) -> Estimate:
    """Change of ``y`` per doubling of x, per seed, with a t-interval over seeds (protocol 11.1,
    secondary: points of accuracy per doubling of N and of K).

    The slope of ``y`` on ``log2 x`` (:func:`log2_slopes`), in y's units: for an accuracy in [0, 1],
    100 times the estimate is in points.
    """
    seeds, xs, Y = seed_grid(seed, x, y)
    w = window(xs, doublings)
    return estimate(seeds, log2_slopes(xs[w], Y[:, w]), level)


@dataclass(frozen=True)
class Difference:
    """Subject - baseline in one per-seed estimate, paired by seed.

    Attributes:
        baseline: The baseline's name.
        n: Paired seeds (finite on both sides).
        n_missing: Seeds of either side that could not be paired.
        mean_diff: Mean of ``d_s = subject_s - baseline_s``.
        ci_low: Lower end of the simultaneous t-interval (at ``level``); nan when ``n < 2``.
        ci_high: Upper end; nan when ``n < 2``.
        level: The per-interval level used: ``1 - (1 - family_level) / m`` for m comparisons.
        m: Comparisons in the family (those with ``n >= 2``).
        p_t: Two-sided paired t-test p (constant d: the exact sign-rank p, as in
            :mod:`bench.evaluate.stats`).
        p_holm: Holm-adjusted ``p_t`` over the family.
    """

    baseline: str
    n: int
    n_missing: int
    mean_diff: float
    ci_low: float
    ci_high: float
    level: float
    m: int
    p_t: float
    p_holm: float


def differences(subject: Mapping, baselines: Mapping[str, Mapping], level: float = 0.95) -> list[Difference]:
    """Subject - baseline differences of a per-seed estimate (e.g. b), paired by seed, for a table
    that compares the subject with every baseline (protocol 11.1: "subject - baseline differences in
    b with Holm-adjusted intervals, no verdict").

    Intervals: with ``m`` comparisons (the baselines with two or more paired seeds), each is the
    t-interval at level ``1 - (1 - level) / m`` (Bonferroni), so that all m cover together with
    probability >= ``level``; for a single comparison (two methods) it is the plain t-interval.
    Holm's step-down has no simultaneous intervals of its own that are as simple: giving the j-th
    smallest p the level ``1 - (1 - level) / (m - j + 1)`` ties the intervals to the observed
    order and does not hold ``level`` jointly (two large independent effects: ``0.975 x 0.95 =
    0.926``), and the compatible intervals of Strassburger & Bretz (2008, Stat. Med. 27:4914) are
    one-sided and truncated at 0, bounds for a test rather than estimates. Every interval that
    excludes 0 here is a Holm rejection (Bonferroni rejects a subset of what Holm rejects), and
    ``p_holm`` (:func:`bench.evaluate.inference.holm`) is given beside for the step-down reading.

    Args:
        subject: Seed -> the subject's value.
        baselines: Name -> (seed -> that baseline's value).
        level: Family-wise confidence level.

    Returns:
        One :class:`Difference` per baseline, in the mapping's order.
    """
    _check_unit("level", level)
    paired = {k: paired_differences(subject, b) for k, b in baselines.items()}
    m = sum(d.size >= 2 for d, _ in paired.values())
    each = 1.0 - (1.0 - level) / max(m, 1)
    p = [_p_t(d) for d, _ in paired.values()]
    adj = holm(p)
    out = []
    for (k, (d, miss)), pt, pa in zip(paired.items(), p, adj, strict=True):
        mean, lo, hi = t_interval(d, level=each) if d.size else (math.nan, math.nan, math.nan)
        out.append(Difference(str(k), int(d.size), int(miss), mean, lo, hi, each, m, float(pt), float(pa)))
    return out


@dataclass(frozen=True)
class Rank:
    """A method's rank among methods by mean over seeds, with a seed-bootstrap interval.

    Attributes:
        method: The ranked method.
        rank: 1 = best, by the means over the seeds every method has (ties share the best rank).
        ci_low, ci_high: Percentile interval of the rank over bootstrap resamples of the seeds.
        level: Level of that interval.
        n_methods: Methods ranked.
        n_seeds: Seeds used (those with a finite value for every method).
        n_dropped: Seeds of the table left out because some method lacks them.
    """

    method: str
    rank: int
    ci_low: int
    ci_high: int
    level: float
    n_methods: int
    n_seeds: int
    n_dropped: int


def rank_interval(
    values: Mapping[str, Mapping],
    method: str,
    higher_is_better: bool = True,
    level: float = 0.95,
    n_boot: int = 2000,
    rng_seed: int = 0,
) -> Rank:
    """The rank of ``method`` among all methods of ``values`` and its seed-bootstrap interval
    (protocol 11.1: "the subject's rank with a seed-bootstrap interval").

    Seeds are resampled with replacement (Efron & Tibshirani 1993, the percentile interval), the
    same resample for every method, since a seed fixes the data draw and split that all methods
    share; each method's mean over the resample is recomputed and the methods are ranked. Only
    seeds with a finite value for every method are used, so every mean is over the same seeds.

    Args:
        values: Method -> (seed -> per-seed value, e.g. ``b_end``).
        method: The method whose rank is reported (the subject).
        higher_is_better: Rank 1 to the highest mean (b: more halvings per doubling) or the lowest.
        level: Level of the percentile interval.
        n_boot: Bootstrap resamples.
        rng_seed: Seed of the resampling generator (the interval is reproducible).

    Raises:
        ValueError: When ``method`` is not in ``values`` or no seed is common to all methods.
    """
    _check_unit("level", level)
    if method not in values:
        raise ValueError(f"{method!r} is not among the ranked methods {list(values)}")
    names = list(values)
    every = set().union(*(set(v) for v in values.values()))
    common = [s for s in sorted(every) if all(s in values[k] and np.isfinite(float(values[k][s])) for k in names)]
    if not common:
        raise ValueError("no seed has a finite value for every method")
    V = np.array([[float(values[k][s]) for s in common] for k in names])  # (methods, seeds)
    sign = -1.0 if higher_is_better else 1.0
    i = names.index(method)
    observed = _st.rankdata(sign * V.mean(axis=1), method="min")[i]
    idx = np.random.default_rng(rng_seed).integers(0, len(common), size=(n_boot, len(common)))
    means = V[:, idx].mean(axis=2)  # (methods, n_boot)
    ranks = _st.rankdata(sign * means, method="min", axis=0)[i]
    alpha = 1.0 - level
    lo = np.quantile(ranks, alpha / 2, method="inverted_cdf")
    hi = np.quantile(ranks, 1 - alpha / 2, method="inverted_cdf")
    return Rank(str(method), int(observed), int(lo), int(hi), level, len(names), len(common), len(every) - len(common))
