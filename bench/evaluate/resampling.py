"""Sign-flip resampling for paired rows: the exact permutation p and Westfall-Young max-T.

Under the null hypothesis of a paired comparison, each seed's difference d_s is symmetric about 0,
so flipping its sign is as likely as not. The exact test enumerates all ``2^n`` sign vectors (1024
at the 10 seeds of ``confirm``); the family-wise step applies one set of sign vectors to every row
of a family, since the rows share the subject's seeds (docs/protocol.md, statistics). Pure: no I/O.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence

import numpy as np

EXACT_MAX_N = 16  # 2^16 sign vectors; above, a fixed-seed random sample of that many (never in confirm: n = 10)


@functools.lru_cache(maxsize=64)
def sign_vectors(n: int) -> np.ndarray:
    """The sign vectors of the exact sign-flip test: all ``2^n`` rows of +-1 for ``n <= 16`` (the
    identity first), else ``2^16`` rows drawn with a fixed seed (the identity first). Shape
    ``(M, n)``, read-only; one set serves every row of a family, which share seeds."""
    if n <= EXACT_MAX_N:
        bits = (np.arange(2**n)[:, None] >> np.arange(n)[None, :]) & 1
    else:
        bits = np.random.default_rng(0x5EED).integers(0, 2, size=(2**EXACT_MAX_N, n))
        bits[0] = 0
    out = 1.0 - 2.0 * bits
    out.flags.writeable = False
    return out


def _near(a: np.ndarray, b: float) -> np.ndarray:
    """``a >= b`` up to the rounding of sums of the same numbers in another order."""
    return a >= b - 1e-9 * max(1.0, abs(b))


def sign_flip_p(d) -> float:
    """Exact two-sided sign-flip p of ``mean(d)``: the share of the ``2^n`` sign vectors ``s`` with
    ``|mean(s * d)| >= |mean(d)|`` (the observed one included, so never 0: at n = 10 a constant d
    gives 2/1024). Under H0 (d symmetric about 0) every sign vector is equally likely; unlike the
    t-test it assumes no normality. NaN for ``n < 2``, 1.0 when every d is 0."""
    d = np.asarray(d, dtype=float).ravel()
    if d.size < 2 or not np.all(np.isfinite(d)):
        return math.nan
    if np.all(d == 0):
        return 1.0
    d = d / np.abs(d).max()  # the p is scale-free; this keeps sums of huge values finite
    stat = np.abs(sign_vectors(d.size) @ d) / d.size
    return float(np.mean(_near(stat, abs(float(d.mean())))))


def _t_stats(flips: np.ndarray, d: np.ndarray) -> np.ndarray:
    """|t| of ``flips * d`` per sign vector: |mean| / (sd / sqrt(n)); +inf where sd is 0 and the
    mean is not (a constant d), 0 where both are."""
    n = d.size
    means = flips @ d / n
    ss = float(np.sum(d * d))  # sign flips keep the sum of squares
    var = np.maximum(ss - n * means**2, 0.0) / (n - 1)
    tiny = 1e-12 * max(ss, 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.abs(means) / np.sqrt(var / n)
    t[(var * (n - 1) <= tiny) & (np.abs(means) > 0)] = math.inf
    t[(var * (n - 1) <= tiny) & (np.abs(means) == 0)] = 0.0
    return t


def westfall_young(diffs: Sequence[Mapping]) -> np.ndarray:
    """Westfall-Young step-down max-T adjusted p-values for a family of paired rows.

    Each row is a mapping seed -> d (its paired differences). All rows share one set of sign
    vectors over the union of seeds (:func:`sign_vectors`), so a seed's flip is the same in every
    row, which keeps the rows' dependence (they share the subject's seeds). For row r the
    statistic is its |t| over its own seeds. With the rows ordered by observed |t| descending
    (r_1 first), ``p_(i) = max_{j <= i} share of sign vectors with max_{k >= j} |t*_{r_k}| >= |t_{r_j}|``
    (Westfall & Young 1993, algorithm 2.8). Rows with fewer than 2 seeds get NaN and take no part.
    For one row it equals :func:`sign_flip_p` (|t| is monotone in |mean| under sign flips).
    """
    rows = [{s: float(v) for s, v in r.items() if np.isfinite(float(v))} for r in diffs]
    out = np.full(len(rows), np.nan)
    live = [i for i, r in enumerate(rows) if len(r) >= 2]
    if not live:
        return out
    seeds = sorted({s for i in live for s in rows[i]})
    col = {s: j for j, s in enumerate(seeds)}
    flips = sign_vectors(len(seeds))
    obs, null = [], []
    for i in live:
        idx = [col[s] for s in rows[i]]
        d = np.array(list(rows[i].values()))
        if np.any(d != 0):
            d = d / np.abs(d).max()  # |t| is scale-free; this keeps sums of huge values finite
        if np.all(d == 0):
            obs.append(0.0)
            null.append(np.zeros(flips.shape[0]))
            continue
        t = _t_stats(flips[:, idx], d)
        obs.append(float(t[0]))  # the identity sign vector comes first
        null.append(t)
    obs_a, null_a = np.array(obs), np.stack(null)  # (rows,), (rows, M)
    order = np.argsort(-obs_a, kind="stable")
    # successive maxima from the least significant row up: max over rows k >= j in the order
    tail_max = np.maximum.accumulate(null_a[order[::-1]], axis=0)[::-1]
    raw = np.array([np.mean(_inf_ge(tail_max[j], obs_a[order[j]])) for j in range(len(order))])
    raw[obs_a[order] == 0] = 1.0
    adj = np.minimum(1.0, np.maximum.accumulate(raw))
    for j, r in enumerate(order):
        out[live[r]] = adj[j]
    return out


def _inf_ge(a: np.ndarray, b: float) -> np.ndarray:
    if math.isinf(b):
        return a == math.inf
    return _near(a, b)
