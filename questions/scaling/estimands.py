"""Open question ``scaling``, the estimands (torch-free; the view's): docs/protocol.md 11.1 read off the tidy table.

Every quantity is per seed and summarised over seeds by :mod:`bench.evaluate.estimates` (the seed is the unit of
replication), so each function here only selects rows and pairs them:

* :func:`slopes`: b (error halvings per doubling) or b_end (over the last two doublings) per method and axis;
* :func:`acc_slopes`: accuracy gained per doubling (secondary), in accuracy units (x100: points);
* :func:`b_differences`: subject - baseline in b or b_end, Bonferroni-simultaneous intervals and Holm p, and the
  unadjusted interval of each comparison beside it (so the cost of the family is visible);
* :func:`subject_rank`: the subject's rank in b_end with a seed-bootstrap interval;
* :func:`gains`, :func:`gain_slopes`: g = acc(method, K) - acc(random, K) paired by seed, per K and its slope per
  doubling of K ("still scaling" needs g not shrinking);
* :func:`power_laws`: ``e(N) = e_inf + a N^-c`` fitted without the largest N, scored there (descriptive);
* :func:`compute_check`: the largest mnist1d N at 1x against 2x steps, paired by seed;
* :func:`seconds_slopes`: the log-log slope of seconds per sample in K (cost, shown beside).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.evaluate import estimates, scaling_law
from bench.evaluate.estimates import Difference, Estimate, Rank
from bench.protocol import SUBJECT

AXES = {  # axis -> (x column, label)
    "n_mnist1d": ("n", "pretraining N (mnist1d, equal steps)"),
    "n_mnist5k": ("n", "pretraining N (mnist5k, equal steps)"),
    "k": ("width", "width K (mnist5k, P3's budget)"),
    "steps": ("epochs", "epochs (mnist5k, K = 64)"),
    # declared full-size N axes (profile full, where data.root has them)
    "n_mnist": ("n", "pretraining N (mnist, equal steps)"),
    "n_fashion_mnist": ("n", "pretraining N (fashion_mnist, equal steps)"),
    "n_cifar10": ("n", "pretraining N (cifar10, equal steps)"),
}
N_AXES = ("n_mnist1d", "n_mnist5k", "n_mnist", "n_fashion_mnist", "n_cifar10")
DIFF_AXES = N_AXES + ("k",)  # where subject - baseline differences in b are tabled
BATCH_AXIS = "k_b2k"  # the InfoMax pair at K >= B again at B' = max(B, 2K), lambda_lse = B / B'
PAIR = ("infomax", "infomax_noem")
RERUN = "n_mnist1d_2x"  # the largest mnist1d N again at twice the steps
NO_N = ("raw", "random")  # nothing to learn from more data: never a reference for "stops"
REFERENCE = "random"  # g is the gain over this method at the same K
ERR_FLOOR = 1e-6  # an error of 0 has no logarithm: b reads it as this


def curve(df: pd.DataFrame, axis: str, metric: str = "test_error", x: str | None = None) -> pd.DataFrame:
    """Rows ``(method, seed, x, value)`` of ``metric`` on ``axis`` (x: the axis' own column unless given; N for
    the 2x rerun)."""
    x = x or (AXES[axis][0] if axis in AXES else "n")
    if "axis" not in df.columns or x not in df.columns:
        return pd.DataFrame(columns=["method", "seed", "x", "value"])
    sel = df[(df["axis"] == axis) & (df["metric"] == metric)]
    return sel[["method", "seed", x, "value"]].rename(columns={x: "x"}).dropna()


def present(df: pd.DataFrame, axis: str) -> bool:
    return "axis" in df.columns and bool((df["axis"] == axis).any())


def slopes(df: pd.DataFrame, axis: str, doublings: float | None = None) -> dict[str, Estimate]:
    """Method -> b (``doublings`` None) or b_end (2) on ``axis``; methods with fewer than two points skipped."""
    out = {}
    for m, g in curve(df, axis).groupby("method"):
        if g["x"].nunique() >= 2:
            out[str(m)] = estimates.halvings(g["seed"], g["x"], g["value"].clip(lower=ERR_FLOOR), doublings)
    return out


def acc_slopes(df: pd.DataFrame, axis: str) -> dict[str, Estimate]:
    """Method -> test accuracy gained per doubling of the axis over all its points (x100: points)."""
    out = {}
    for m, g in curve(df, axis, "test_acc").groupby("method"):
        if g["x"].nunique() >= 2:
            out[str(m)] = estimates.per_doubling(g["seed"], g["x"], g["value"])
    return out


@dataclass(frozen=True)
class Comparison:
    """Subject - one baseline: the family's :class:`Difference` and the same comparison alone (unadjusted)."""

    adjusted: Difference
    alone: Difference


def b_differences(df: pd.DataFrame, axis: str, doublings: float | None = None) -> list[Comparison]:
    """Subject - baseline in b (or b_end with ``doublings=2``), one per other method with a curve on ``axis``.

    The family is every baseline on the axis (``raw`` and ``random`` too: they are the floor the learners are
    read against); its intervals are :func:`bench.evaluate.estimates.differences`', with the 95% interval of each
    comparison on its own beside it. Empty when the subject has no curve there.
    """
    b = slopes(df, axis, doublings)
    if SUBJECT not in b:
        return []
    subject = dict(b[SUBJECT].per_seed)
    others = {m: dict(e.per_seed) for m, e in sorted(b.items()) if m != SUBJECT}
    family = estimates.differences(subject, others)
    return [
        Comparison(d, estimates.differences(subject, {m: v})[0])
        for d, (m, v) in zip(family, others.items(), strict=True)
    ]


def subject_rank(df: pd.DataFrame, axis: str = "n_mnist1d") -> Rank | None:
    """The subject's rank in b_end among every method on ``axis`` (1 = most halvings), seed-bootstrap interval;
    None without the subject, a second method or a seed common to all."""
    b_end = slopes(df, axis, 2)
    if SUBJECT not in b_end or len(b_end) < 2:
        return None
    try:
        return estimates.rank_interval({m: dict(e.per_seed) for m, e in b_end.items()}, SUBJECT)
    except ValueError:
        return None


def gain_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Rows ``(method, seed, x = K, g)``: each method's test accuracy minus ``random``'s at the same K and seed."""
    acc = curve(df, "k", "test_acc")
    ref = acc[acc["method"] == REFERENCE][["seed", "x", "value"]].rename(columns={"value": "ref"})
    out = acc[acc["method"] != REFERENCE].merge(ref, on=["seed", "x"], how="inner")
    return out.assign(g=out["value"] - out["ref"])[["method", "seed", "x", "g"]]


def gains(df: pd.DataFrame) -> dict[str, dict[float, Estimate]]:
    """Method -> (K -> g's mean and t-interval over seeds)."""
    out: dict[str, dict[float, Estimate]] = {}
    for (m, k), g in gain_frame(df).groupby(["method", "x"]):
        out.setdefault(str(m), {})[float(k)] = estimates.estimate(g["seed"].tolist(), g["g"].to_numpy(float))
    return out


def gain_slopes(df: pd.DataFrame) -> dict[str, Estimate]:
    """Method -> g's slope per doubling of K, per seed over all K, t-interval (below 0: g shrinks with K)."""
    out = {}
    for m, g in gain_frame(df).groupby("method"):
        if g["x"].nunique() >= 2:
            out[str(m)] = estimates.per_doubling(g["seed"], g["x"], g["g"])
    return out


def shrinks(slope: Estimate | None) -> bool:
    """g shrinks with K: its slope's interval lies wholly below 0."""
    return slope is not None and bool(slope.ci_high < 0)


def power_laws(df: pd.DataFrame, axis: str) -> dict[str, scaling_law.PowerLawFit]:
    """Method -> the held-out power-law fit of test error on N (methods with fewer than four N left out)."""
    out = {}
    for m, g in curve(df, axis).groupby("method"):
        if g["x"].nunique() >= 4:
            out[str(m)] = scaling_law.fit_power_law(g["seed"], g["x"], g["value"])
    return out


@dataclass(frozen=True)
class ComputeCheck:
    """The largest mnist1d N at 1x and 2x steps for one method, paired by seed.

    Attributes:
        n: That N.
        e_1x, e_2x: Test error at the two budgets (over the paired seeds).
        diff: ``e_2x - e_1x`` per seed; its interval excluding 0 means the point moved.
        word: "compute-limited", "not compute-limited", or "undetermined" under two paired seeds.
    """

    n: float
    e_1x: Estimate
    e_2x: Estimate
    diff: Estimate
    word: str


def compute_check(df: pd.DataFrame) -> dict[str, ComputeCheck]:
    """Method -> :class:`ComputeCheck` where the tidy table has the 2x rerun of the largest mnist1d N."""
    one, two = curve(df, "n_mnist1d"), curve(df, RERUN)
    if one.empty or two.empty:
        return {}
    n = float(one["x"].max())
    one, two = one[one["x"] == n], two[two["x"] == n]
    paired = one.merge(two, on=["method", "seed"], suffixes=("_1x", "_2x"))
    out = {}
    for m, g in paired.groupby("method"):
        seeds = g["seed"].tolist()
        e1, e2 = g["value_1x"].to_numpy(float), g["value_2x"].to_numpy(float)
        d = estimates.estimate(seeds, e2 - e1)
        if d.n < 2 or not np.isfinite(d.ci_low):
            word = "undetermined"
        elif d.ci_low > 0 or d.ci_high < 0:
            word = "compute-limited"
        else:
            word = "not compute-limited"
        out[str(m)] = ComputeCheck(n, estimates.estimate(seeds, e1), estimates.estimate(seeds, e2), d, word)
    return out


def seconds_slopes(df: pd.DataFrame) -> dict[str, Estimate]:
    """Method -> slope of log2 seconds per sample per doubling of K (1: cost linear in K), t-interval over seeds."""
    c = curve(df, "k", "seconds_per_sample")
    c = c[c["value"] > 0]
    out = {}
    for m, g in c.groupby("method"):
        if g["x"].nunique() >= 2:
            out[str(m)] = estimates.per_doubling(g["seed"], g["x"], np.log2(g["value"].to_numpy(float)))
    return out


def batch_effects(df: pd.DataFrame) -> list[tuple[str, int, int, Estimate]]:
    """``(method, K, B', estimate)``: test accuracy at B' = 2K minus at the run's batch on the K axis, paired by
    seed, for the InfoMax pair at each K of :data:`BATCH_AXIS` (the rank-floor sensitivity)."""
    if not present(df, BATCH_AXIS) or "batch_size" not in df.columns:
        return []
    acc = df[df["metric"] == "test_acc"]
    out = []
    big = acc[acc["axis"] == BATCH_AXIS]
    for (m, k, b), g in big.groupby(["method", "width", "batch_size"]):
        base = acc[(acc["axis"] == "k") & (acc["method"] == m) & (acc["width"] == k)].set_index("seed")["value"]
        d = (g.set_index("seed")["value"] - base).dropna()
        if len(d):
            out.append((str(m), int(k), int(b), estimates.estimate(d.index.tolist(), d.to_numpy(float))))
    return sorted(out, key=lambda t: (t[1], t[0]))
