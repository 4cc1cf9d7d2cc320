"""Schuirmann's two one-sided tests of equivalence within a margin (protocol 11.3a): "equivalent", "differs" or
"undetermined", with the smallest margin the data could establish. Pure functions of numbers; no torch."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

from bench.evaluate.estimates import TOST_RESULTS, _host  # noqa: F401
from bench.evaluate.inference import _check_unit, t_interval
from bench.evaluate.stats import _constant, paired_differences


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
