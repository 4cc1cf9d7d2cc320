"""Open question ``convergence``, the estimands: pure functions of the tidy table (no torch; the view's).

(a) ``Delta_EM``: per seed s and axis point x, ``d_s(x) = m_s(infomax, x) - m_s(infomax_noem, x)`` (paired
by seed). Its trend is the per-seed least-squares slope of d on log2 x (per doubling), with a t-interval
over seeds (:func:`bench.evaluate.estimates.per_doubling`): the *signed* slope is the primary, since the
magnitude of a mean near 0 is biased upward (E|mean| > |E mean|). Beside it, the slope of a
bias-corrected magnitude ``|Delta|_bc(x) = sqrt(max(mean(x)^2 - se(x)^2, 0))`` (``mean^2 - se^2`` is
unbiased for ``E[d]^2``), a point estimate. At the largest x: TOST (:func:`bench.evaluate.equivalence.tost`).

(b), (c) read pair rows (one per pair of codes, :mod:`bench.evaluate.pairwise`): ``cka``,
``matched_corr``, ``matched_corr_live`` with columns ``method, seed, other, other_seed``. A summary over
seed pairs is not a mean of independent values (every code is in several pairs), so its interval is a
jackknife over seeds (Quenouille-Tukey): with n seeds, the statistic on all seeds ``T`` and on all but
seed s ``T_(-s)``, the pseudo-values ``n T - (n - 1) T_(-s)`` are treated as n per-seed values (their mean
and t-interval are the jackknife estimate and interval; for a mean over pairs the naive per-seed mean
would understate the standard error by about half). With fewer than three seeds a pseudo-value is
undefined (no pair is left) and every interval is "undetermined".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from bench.evaluate import estimates
from bench.evaluate.equivalence import Tost, tost
from bench.evaluate.estimates import Estimate

SUBJECT, NOEM = "infomax", "infomax_noem"
AXES = {  # axis -> (x column, label)
    "n_mnist1d": ("n", "pretraining N (mnist1d, equal steps, K = 128)"),
    "k": ("width", "width K (mnist5k)"),
    "steps": ("epochs", "epochs (mnist5k, K = 64)"),
    "ica": ("width", "sources = K (ica)"),
    "lambda_lse": ("lambda_lse", "lambda_lse (mnist5k, infomax only)"),
}
SCALE_AXES = ("n_mnist1d", "k")  # the scale points of (c) and of the answer
MARGINS = {"test_acc": 0.01, "mcc": 0.02}  # TOST margins: 1 point of accuracy, .02 MCC
CONVERGED = 0.9  # "converges": S >= this at the largest point (and 1 - S falling)
PAIR_METRICS = ("cka", "matched_corr", "matched_corr_live")


COLUMNS = ("axis", "metric", "method", "seed", "value", "n", "width", "epochs", "lambda_lse", "other", "other_seed")


def columns(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every column the estimands read (absent ones all nan): a run without an axis still reads."""
    missing = [c for c in COLUMNS if c not in df.columns]
    return df.assign(**{c: np.nan for c in missing}) if missing else df


def _sel(df: pd.DataFrame, axis: str, metric: str) -> pd.DataFrame:
    df = columns(df)
    return df[(df["axis"] == axis) & (df["metric"] == metric)]


def _xcol(axis: str) -> str:
    return AXES[axis][0]


# ----------------------------------------------------------------------------- (a) Delta_EM
def delta(df: pd.DataFrame, axis: str, metric: str) -> pd.DataFrame:
    """``(seed, x, d)``: infomax - infomax_noem at every (seed, x) both have a finite value of."""
    sel = _sel(df, axis, metric)
    x = _xcol(axis)
    sel = sel[sel["method"].isin([SUBJECT, NOEM])].dropna(subset=[x, "seed", "value"])
    if sel.empty:
        return pd.DataFrame(columns=["seed", "x", "d"])
    wide = sel.pivot_table(index=["seed", x], columns="method", values="value", aggfunc="mean")
    if SUBJECT not in wide or NOEM not in wide:
        return pd.DataFrame(columns=["seed", "x", "d"])
    d = (wide[SUBJECT] - wide[NOEM]).dropna().rename("d").reset_index().rename(columns={x: "x"})
    d = d[np.isfinite(d["d"].astype(float))]
    return d.astype({"x": float, "d": float})


@dataclass(frozen=True)
class DeltaSummary:
    """Delta_EM of one metric along one axis (see the module docstring).

    Attributes:
        xs: The axis points with a paired value. per_x: Delta's :class:`Estimate` at each of them.
        slope: Signed change of Delta per doubling of x (None under two points).
        magnitude_slope: Slope of the bias-corrected |Delta| per doubling (a point estimate; nan
            under two points).
        tost: TOST at the largest x (None without a margin for the metric).
    """

    axis: str
    metric: str
    xs: tuple[float, ...]
    per_x: tuple[Estimate, ...]
    slope: Estimate | None
    magnitude_slope: float
    tost: Tost | None

    @property
    def last(self) -> Estimate | None:
        return self.per_x[-1] if self.per_x else None

    @property
    def trend(self) -> str:
        """The trend of |Delta|: "shrinks" (the slope's interval excludes 0 on the side that takes Delta at the smallest x,
        whose interval excludes 0, towards 0), "grows", "no trend" (the slope covers 0) or "undetermined"."""
        s = self.slope
        if s is None or not np.isfinite(s.ci_low) or not np.isfinite(s.ci_high):
            return "undetermined"
        if s.covers(0.0):
            return "no trend"
        first = self.per_x[0]
        sign0 = 0.0 if first.covers(0.0) or not np.isfinite(first.ci_low) else math.copysign(1.0, first.mean)
        if sign0 == 0.0:
            return "grows"
        return "shrinks" if math.copysign(1.0, s.mean) == -sign0 else "grows"


def bias_corrected_magnitude(values) -> float:
    """``sqrt(max(mean^2 - se^2, 0))`` of per-seed values (nan under two finite values)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return math.nan
    se2 = float(v.var(ddof=1)) / v.size
    return math.sqrt(max(float(v.mean()) ** 2 - se2, 0.0))


def _ols_slope(xs: np.ndarray, ys: np.ndarray) -> float:
    ok = np.isfinite(ys)
    if ok.sum() < 2:
        return math.nan
    u = np.log2(xs[ok])
    u = u - u.mean()
    return float(u @ (ys[ok] - ys[ok].mean()) / (u @ u)) if float(u @ u) > 0 else math.nan


def delta_summary(df: pd.DataFrame, axis: str, metric: str) -> DeltaSummary | None:
    """:class:`DeltaSummary` of ``metric`` on ``axis``; None when no (seed, x) is paired."""
    d = delta(df, axis, metric)
    if d.empty:
        return None
    xs = np.sort(d["x"].unique())
    per_x = tuple(estimates.estimate(g["seed"].tolist(), g["d"].to_numpy()) for _, g in d.groupby("x"))
    slope = None
    if xs.size >= 2 and (xs > 0).all():
        slope = estimates.per_doubling(d["seed"].to_numpy(), d["x"].to_numpy(), d["d"].to_numpy())
    mags = np.array([bias_corrected_magnitude(g["d"]) for _, g in d.groupby("x")])
    mag_slope = _ols_slope(xs, mags) if (xs > 0).all() else math.nan
    margin = MARGINS.get(metric)
    last = d[d["x"] == xs[-1]]["d"].to_numpy()
    t = tost(last, margin) if margin is not None else None
    return DeltaSummary(axis, metric, tuple(float(x) for x in xs), per_x, slope, mag_slope, t)


def log2_slope(df: pd.DataFrame, axis: str, metric: str = "r_em", method: str = SUBJECT) -> Estimate | None:
    """Per-seed slope of log2(metric) per doubling of x for ``method`` (r_EM's dilution); None under two points."""
    sel = _sel(df, axis, metric)
    x = _xcol(axis)
    sel = sel[(sel["method"] == method)].dropna(subset=[x, "seed", "value"])
    sel = sel[(sel["value"] > 0) & np.isfinite(sel["value"].astype(float))]
    if sel[x].nunique() < 2:
        return None
    sel = sel.groupby(["seed", x], as_index=False)["value"].mean()
    return estimates.per_doubling(sel["seed"].to_numpy(), sel[x].to_numpy(float), np.log2(sel["value"].to_numpy(float)))


def trend_word(e: Estimate | None) -> str:
    """The word of a slope: "falls" (interval below 0), "rises" (above 0), "no clear trend" or "undetermined" (no interval)."""
    if e is None or not (np.isfinite(e.ci_low) and np.isfinite(e.ci_high)):
        return "undetermined"
    return "falls" if e.ci_high < 0 else "rises" if e.ci_low > 0 else "no clear trend"


# ----------------------------------------------------------------------------- pairs, jackknife
def pairs(df: pd.DataFrame, axis: str, metric: str = "cka") -> pd.DataFrame:
    """``(x, method, seed, other, other_seed, value)``: the pair rows of ``metric`` on ``axis``."""
    sel = _sel(df, axis, metric)
    cols = ["x", "method", "seed", "other", "other_seed", "value"]
    if sel.empty or "other" not in sel.columns:
        return pd.DataFrame(columns=cols)
    out = sel.rename(columns={_xcol(axis): "x"})[cols].dropna(subset=["x", "seed", "other_seed"])
    return out.astype({"x": float, "seed": int, "other_seed": int, "value": float})


class PairSet:
    """One axis point's pair rows of one metric as arrays, for fast summaries over any subset of seeds."""

    def __init__(self, p: pd.DataFrame):
        self.a, self.b = p["method"].to_numpy(str), p["other"].to_numpy(str)
        self.s, self.t = p["seed"].to_numpy(int), p["other_seed"].to_numpy(int)
        self.v = p["value"].to_numpy(float)
        self.methods = sorted(set(self.a) | set(self.b))
        self.seeds = sorted(set(self.s.tolist()) | set(self.t.tolist()))

    def _mask(self, seeds: Sequence[int] | None) -> np.ndarray:
        if seeds is None:
            return np.ones(self.v.size, dtype=bool)
        return np.isin(self.s, list(seeds)) & np.isin(self.t, list(seeds))

    def between(self, a: str, b: str, seeds: Sequence[int] | None = None) -> float:
        """Mean over the pairs (a_s, b_t), s != t, among ``seeds`` (either orientation of the rows); for
        a == b the method's ceiling. nan propagates, as in :mod:`bench.evaluate.similarity` (a constant
        code makes its pairs nan); nan when there is no such pair."""
        hit = ((self.a == a) & (self.b == b)) | ((self.a == b) & (self.b == a))
        hit &= (self.s != self.t) & self._mask(seeds)
        return float(self.v[hit].mean()) if hit.any() else math.nan

    def similarity(self, a: str, b: str, seeds: Sequence[int] | None = None) -> float:
        """``S(a, b) = between / sqrt(CKA_w(a) CKA_w(b))`` (:func:`bench.evaluate.similarity.ceiling_normalised`'s
        definition, for ``cka`` rows); nan where a ceiling is not positive."""
        wa, wb, c = self.between(a, a, seeds), self.between(b, b, seeds), self.between(a, b, seeds)
        if not all(math.isfinite(v) for v in (wa, wb, c)) or wa <= 0 or wb <= 0:
            return math.nan
        return c / math.sqrt(wa * wb)


def ceilings(p: pd.DataFrame, seeds: Sequence[int] | None = None) -> dict[str, float]:
    """Method -> mean over its cross-seed pairs (``CKA_w`` for ``cka`` rows) among ``seeds``."""
    ps = PairSet(p)
    return {m: ps.between(m, m, seeds) for m in ps.methods if ((ps.a == m) & (ps.b == m)).any()}


def between(p: pd.DataFrame, a: str, b: str, seeds: Sequence[int] | None = None) -> float:
    """:meth:`PairSet.between` of a pair frame."""
    return PairSet(p).between(a, b, seeds)


def similarity(p: pd.DataFrame, a: str, b: str, seeds: Sequence[int] | None = None) -> float:
    """:meth:`PairSet.similarity` of one axis point's ``cka`` pair frame."""
    return PairSet(p).similarity(a, b, seeds)


def jackknife(stat: Callable[[list[int]], float], seeds: Sequence[int]) -> tuple[float, dict[int, float]]:
    """``(T(all seeds), {s: n T - (n - 1) T(all but s)})``; pseudo-values nan under three seeds."""
    seeds = sorted(int(s) for s in seeds)
    n = len(seeds)
    full = stat(seeds) if n else math.nan
    if n < 3:
        return full, {s: math.nan for s in seeds}
    return full, {s: n * full - (n - 1) * stat([t for t in seeds if t != s]) for s in seeds}


@dataclass(frozen=True)
class PairTrend:
    """S(a, b) along one axis: ``s`` (all seeds) and the jackknife estimate at every x, the slope of
    1 - S per doubling (from the pseudo-values), and the reading at the largest x."""

    a: str
    b: str
    xs: tuple[float, ...]
    s: tuple[float, ...]
    per_x: tuple[Estimate, ...]
    slope: Estimate | None

    @property
    def word(self) -> str:
        """The reading: "converges" (slope of 1 - S below 0 with its interval, and S >= .9 at the largest x), "apart"
        (S's interval at the largest x below .9) or "undetermined"."""
        if not self.per_x:
            return "undetermined"
        last = self.per_x[-1]
        s_last = self.s[-1]
        if self.slope is not None and self.slope.ci_high < 0 and s_last >= CONVERGED:
            return "converges"
        if np.isfinite(last.ci_high) and last.ci_high < CONVERGED:
            return "apart"
        return "undetermined"


def pair_trends(df: pd.DataFrame, axis: str, methods: Sequence[str] | None = None) -> list[PairTrend]:
    """:class:`PairTrend` of every unordered pair of distinct methods with ``cka`` rows on ``axis``."""
    p = pairs(df, axis, "cka")
    if p.empty:
        return []
    present = sorted(set(p["method"]) | set(p["other"]))
    names = [m for m in (methods or present) if m in present]
    xs = sorted(p["x"].unique())
    out = []
    sets = {x: PairSet(p[p["x"] == x]) for x in xs}
    for a, b in combinations(names, 2):
        full, per_x, rows = [], [], []
        for x in xs:
            px = sets[x]
            t, pseudo = jackknife(lambda ss, px=px, a=a, b=b: px.similarity(a, b, ss), px.seeds)
            full.append(t)
            per_x.append(estimates.estimate(list(pseudo), list(pseudo.values())))
            rows += [(s, x, 1.0 - v) for s, v in pseudo.items()]
        slope = None
        if len(xs) >= 2 and rows:
            r = np.array(rows, dtype=float)
            slope = estimates.per_doubling(r[:, 0].astype(int), r[:, 1], r[:, 2])
        out.append(PairTrend(a, b, tuple(float(x) for x in xs), tuple(full), tuple(per_x), slope))
    return out


@dataclass(frozen=True)
class Stability:
    """(b) at one axis point: the mean cross-seed unit-matched |corr| of infomax and of infomax_noem (all
    seeds), their jackknife pseudo-values per seed (paired by seed) and the difference's estimate."""

    x: float
    subject: float
    noem: float
    pseudo_subject: dict[int, float]
    pseudo_noem: dict[int, float]
    diff: Estimate


def stability(df: pd.DataFrame, axis: str, score: str = "matched_corr_live") -> list[Stability]:
    """:class:`Stability` at every x of ``axis`` that has within-method pairs of both methods."""
    p = pairs(df, axis, score)
    out = []
    for x, px in p.groupby("x"):
        px = px[px["method"] == px["other"]]
        have = [set(PairSet(px[px["method"] == m]).seeds) for m in (SUBJECT, NOEM)]
        common = sorted(have[0] & have[1])
        if len(common) < 2:
            continue
        ps_x = PairSet(px)
        t_s, ps = jackknife(lambda ss, q=ps_x: q.between(SUBJECT, SUBJECT, ss), common)
        t_n, pn = jackknife(lambda ss, q=ps_x: q.between(NOEM, NOEM, ss), common)
        diff = estimates.estimate(common, [ps[s] - pn[s] for s in common])
        out.append(Stability(float(x), t_s, t_n, ps, pn, diff))
    return out
