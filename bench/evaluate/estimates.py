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
* :func:`fit_power_law`: ``e(N) = e_inf + a N^-c`` fitted per seed without the largest N, scored by
  its extrapolation error at that N (descriptive);
* :func:`readings`: the words "still scaling", "stops", "lands with" or "undetermined" per method;
* :func:`tost`, :func:`tost_paired`: Schuirmann's two one-sided tests of equivalence within a margin
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
from bench.evaluate.stats import _constant, _p_t, paired_differences

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


def power_law(n, e_inf: float, a: float, c: float) -> np.ndarray:
    """``e(N) = e_inf + a N^-c``: a learning curve's error falling as a power of N towards ``e_inf``
    (Hestness et al. 2017, "Deep learning scaling is predictable, empirically")."""
    return e_inf + a * np.power(_host(n), -c)


@dataclass(frozen=True)
class PowerLawFit:
    """:func:`power_law` fitted per seed without the largest N, and its extrapolation there.

    Attributes:
        e_inf, a, c: Estimates of the parameters over seeds (``a`` in the units of N itself).
        extrapolation_error: Predicted minus observed error at the held-out largest N, per seed.
        abs_extrapolation_error: Its absolute value, per seed.
        held_out: The held-out N (the grid's largest).
        fit_points: The N the fits used.
        params: ``((seed, (e_inf, a, c)), ...)`` per fitted seed.
    """

    e_inf: Estimate
    a: Estimate
    c: Estimate
    extrapolation_error: Estimate
    abs_extrapolation_error: Estimate
    held_out: float
    fit_points: tuple
    params: tuple


def _fit_one(u: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bounded least squares of ``e_inf + a' u^-c`` on ``(u, y)``, ``u = N / N_min``; NaN if it fails."""
    from scipy.optimize import curve_fit

    e0 = 0.5 * float(y.min())
    p0 = (e0, max(float(y[0]) - e0, 1e-6), 0.5)
    try:
        popt, _ = curve_fit(
            lambda uu, e, a, c: e + a * np.power(uu, -c),
            u,
            y,
            p0=p0,
            bounds=([0.0, 0.0, 0.0], [np.inf, np.inf, np.inf]),
            maxfev=20000,
        )
    except (RuntimeError, ValueError):
        return np.full(3, np.nan)
    return popt


def fit_power_law(seed, n, err, level: float = 0.95) -> PowerLawFit:
    """Fit ``e(N) = e_inf + a N^-c`` per seed on every N but the largest, and score each fit by its
    extrapolation error at the largest N (protocol 11.1, descriptive; Hestness et al. 2017).

    Each seed's curve is fitted by bounded least squares (``scipy.optimize.curve_fit``, trust
    region reflective) with ``e_inf >= 0``, ``a >= 0`` (an error that falls with N) and ``c >= 0``,
    on ``N / N_min`` for conditioning (``a`` is converted back: ``a = a' N_min^c``). The largest N
    of the grid is never passed to the fit: it only scores the prediction, ``e_hat(N_max) -
    e(N_max)``. The parameters and errors are summarised by t-intervals over seeds. A seed missing a
    fitting point, or whose fit fails, is NaN in every estimate; one missing only the held-out point
    has parameters but no extrapolation error.

    Raises:
        ValueError: For fewer than four distinct N (three parameters need three points, plus the
            held-out one).
    """
    seeds, xs, E = seed_grid(seed, n, err)
    if xs.size < 4:
        raise ValueError(f"a held-out power-law fit needs >= 4 distinct N, got {xs.tolist()}")
    fit_x, held = xs[:-1], float(xs[-1])
    u = fit_x / fit_x[0]
    P = np.full((len(seeds), 3), np.nan)
    for i in range(len(seeds)):  # a nonlinear fit per seed: at most ~10 iterations of this loop
        y = E[i, :-1]
        if np.all(np.isfinite(y)):
            P[i] = _fit_one(u, y)
    e_inf, a_scaled, c = P.T
    a = a_scaled * np.power(fit_x[0], c)
    pred = e_inf + a_scaled * np.power(held / fit_x[0], -c)
    err_held = pred - E[:, -1]
    return PowerLawFit(
        e_inf=estimate(seeds, e_inf, level),
        a=estimate(seeds, a, level),
        c=estimate(seeds, c, level),
        extrapolation_error=estimate(seeds, err_held, level),
        abs_extrapolation_error=estimate(seeds, np.abs(err_held), level),
        held_out=held,
        fit_points=tuple(float(v) for v in fit_x),
        params=tuple(
            (s, (float(p[0]), float(aa), float(p[2])))
            for s, p, aa in zip(seeds, P, a, strict=True)
            if np.all(np.isfinite(p))
        ),
    )


@dataclass(frozen=True)
class Reading:
    """The reading of one method's scaling (protocol 11.1).

    Attributes:
        method: The method.
        word: One of ``WORDS``: "still scaling" (b_end's interval lies above 0), "stops" (it covers
            0 while every reference's lies above 0), "lands with" (neither, and b_end's mean lies
            inside some other method's interval) or "undetermined".
        lands_with: The other methods whose b_end interval holds this method's mean b_end (filled
            whatever the word; "lands with X" is how the sentence names them).
    """

    method: str
    word: str
    lands_with: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.word == "lands with":
            return f"lands with {', '.join(self.lands_with)}"
        if self.lands_with and self.word != "undetermined":
            return f"{self.word} (lands with {', '.join(self.lands_with)})"
        return self.word


def readings(
    b_end: Mapping[str, Estimate],
    references: Sequence[str] | None = None,
    gain_slope: Mapping[str, Estimate] | None = None,
) -> dict[str, Reading]:
    """The reading word of every method from its ``b_end`` (protocol 11.1, "Reading").

    * "still scaling": ``b_end``'s interval lies above 0 (``ci_low > 0``) and, where
      ``gain_slope`` gives the method's slope of g (gain over ``random`` at the same K) per doubling
      of K, g is not shrinking (that slope's interval is not wholly below 0);
    * "stops": ``b_end``'s interval covers 0 while the interval of every reference (other than the
      method itself; at least one) lies above 0: the method stopped where the others still scale,
      so the task is not simply saturated;
    * "lands with": neither, and ``b_end``'s mean lies inside another method's interval (those
      methods are listed in ``lands_with`` for every word);
    * "undetermined": otherwise (an interval undefined under two seeds, a b_end wholly below 0, or
      a method that stops where a reference stops too and lands with no one).

    Args:
        b_end: Method -> its ``b_end`` :class:`Estimate` (:func:`halvings` with ``doublings=2``).
        references: The methods "stops" is judged against (default: every method). Leave out those
            with no N dependence by construction (``raw``, ``random`` on the N axis), or none ever stops.
        gain_slope: Method -> :class:`Estimate` of g's slope per doubling of K (optional).
    """
    refs = list(b_end) if references is None else list(references)
    missing = [r for r in refs if r not in b_end]
    if missing:
        raise ValueError(f"references without a b_end: {missing}")
    out = {}
    for k, e in b_end.items():
        lands = tuple(o for o, oe in b_end.items() if o != k and oe.covers(e.mean))
        others = [r for r in refs if r != k]
        shrinking = gain_slope is not None and k in gain_slope and gain_slope[k].ci_high < 0
        if e.ci_low > 0 and not shrinking:
            word = "still scaling"
        elif e.covers(0.0) and others and all(b_end[r].ci_low > 0 for r in others):
            word = "stops"
        elif lands:
            word = "lands with"
        else:
            word = "undetermined"
        out[k] = Reading(str(k), word, lands)
    return out


@dataclass(frozen=True)
class Tost:
    """Schuirmann's two one-sided tests on paired differences d (protocol 11.3a).

    Attributes:
        result: "equivalent" (both one-sided tests reject at alpha: the ``1 - 2 alpha`` interval
            lies inside ``(-margin, margin)``), "differs" (not equivalent, and the ``1 - alpha``
            interval excludes 0) or "undetermined".
        n: Differences used (finite).
        mean: ``mean(d)``.
        margin: The equivalence margin delta.
        p_lower: p of ``H0: mean <= -margin`` against ``mean > -margin``.
        p_upper: p of ``H0: mean >= margin`` against ``mean < margin``.
        p_tost: ``max(p_lower, p_upper)``; equivalence at alpha iff ``p_tost < alpha``.
        ci_low, ci_high: The ``1 - 2 alpha`` (90%) t-interval of the mean.
        ci95_low, ci95_high: The ``1 - alpha`` (95%) t-interval of the mean.
        smallest_margin: ``max(|ci_low|, |ci_high|)``: the data establish equivalence for any margin
            above it, none at or below it.
    """

    result: str
    n: int
    mean: float
    margin: float
    p_lower: float
    p_upper: float
    p_tost: float
    ci_low: float
    ci_high: float
    ci95_low: float
    ci95_high: float
    smallest_margin: float


def tost(d, margin: float, alpha: float = 0.05) -> Tost:
    """Two one-sided t-tests of equivalence (Schuirmann 1987, J. Pharmacokinet. Biopharm. 15:657).

    With ``t_l = (mean(d) + margin) / se`` and ``t_u = (mean(d) - margin) / se``, ``se = sd(d) /
    sqrt(n)``, ``n - 1`` degrees of freedom: ``p_lower = P(T >= t_l)``, ``p_upper = P(T <= t_u)``.
    Equivalent iff both are below alpha, which is the same as the ``1 - 2 alpha`` t-interval lying
    inside ``(-margin, margin)``. For constant differences (sd = 0, t undefined) each one-sided p
    is the exact sign-test p ``0.5^n`` when the constant lies on the alternative's side, else 1
    (as :mod:`bench.evaluate.stats` does for the two-sided test). NaN entries are dropped.

    Args:
        d: Paired differences, one per seed (subject - other).
        margin: The equivalence margin delta (> 0), in d's units (1 point of accuracy = 0.01).
        alpha: Level of each one-sided test.

    Returns:
        A :class:`Tost`; "undetermined" with NaN p under two differences.
    """
    _check_unit("alpha", alpha)
    if not margin > 0:
        raise ValueError(f"margin must be > 0, got {margin!r}")
    v = _host(d)
    v = v[np.isfinite(v)]
    n = v.size
    mean, lo, hi = t_interval(v, level=1 - 2 * alpha) if n else (math.nan,) * 3
    _, lo95, hi95 = t_interval(v, level=1 - alpha) if n else (math.nan,) * 3
    if n < 2:
        p_l = p_u = math.nan
    elif _constant(v):
        p_l = 0.5**n if mean + margin > 0 else 1.0
        p_u = 0.5**n if mean - margin < 0 else 1.0
    else:
        se = float(v.std(ddof=1)) / math.sqrt(n)
        p_l = float(_st.t.sf((mean + margin) / se, n - 1))
        p_u = float(_st.t.cdf((mean - margin) / se, n - 1))
    p = max(p_l, p_u)
    if p < alpha:
        result = "equivalent"
    elif lo95 > 0 or hi95 < 0:
        result = "differs"
    else:
        result = "undetermined"
    smallest = max(abs(lo), abs(hi)) if n >= 2 else math.nan
    return Tost(result, n, mean, float(margin), p_l, p_u, p, lo, hi, lo95, hi95, smallest)


def tost_paired(subject: Mapping, other: Mapping, margin: float, alpha: float = 0.05) -> Tost:
    """:func:`tost` on ``subject_s - other_s`` over the seeds both have
    (:func:`bench.evaluate.stats.paired_differences`)."""
    d, _ = paired_differences(subject, other)
    return tost(d, margin, alpha)
