"""Intervals and multiplicity: the t-interval of a mean and Holm's step-down adjustment.

Pure functions of arrays (no I/O, no global state), used by the paired statistics
(:mod:`bench.evaluate.stats`), the families (:mod:`bench.evaluate.families`) and the report's tables.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as _st


def _check_unit(name: str, value: float) -> None:
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")


def t_interval(values, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and t-interval of the mean over the finite entries of ``values``.

    ``mean +- t_{(1+level)/2, n-1} * sd(ddof=1) / sqrt(n)``, computed as
    ``scipy.stats.t.interval(level, n - 1, loc=mean, scale=scipy.stats.sem(v))``.
    NaN and +-inf entries are dropped first.

    Args:
        values: Numbers (any array-like; flattened).
        level: Confidence level in (0, 1).

    Returns:
        ``(mean, low, high)``; ``(nan, nan, nan)`` when no value is finite;
        ``(mean, nan, nan)`` when ``n == 1``; ``(mean, mean, mean)`` when all values are
        equal (zero variance).

    Raises:
        ValueError: For a level outside (0, 1).
    """
    _check_unit("level", level)
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    n = v.size
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = float(v.mean())
    if n < 2:
        return mean, math.nan, math.nan
    if np.all(v == v[0]):
        return mean, mean, mean
    q_low, q_high = _t_quantiles(level, n - 1)
    scale = np.std(v, ddof=1) / n**0.5  # scipy.stats.sem(v)
    # scipy.stats.t.interval(level, n - 1, loc=mean, scale=scale) is ppf(q) * scale + loc, the same
    # operations on the same numbers; the quantiles are cached (the scipy call cost ~0.3 ms a group)
    return mean, float(q_low * scale + mean), float(q_high * scale + mean)


@functools.lru_cache(maxsize=256)
def _t_quantiles(level: float, df: int) -> tuple[float, float]:
    """The t quantiles ``(1 - level) / 2`` and ``(1 + level) / 2`` with ``df`` degrees of freedom."""
    return float(_st.t.ppf((1.0 - level) / 2, df)), float(_st.t.ppf((1.0 + level) / 2, df))


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni step-down adjusted p-values.

    With the ``m`` non-NaN p-values sorted ascending ``p_(1) <= ... <= p_(m)``:
    ``adj_(i) = min(1, max_{j <= i} (m - j + 1) * p_(j))``, returned in input order.
    NaN inputs stay NaN and are not counted in ``m``.

    Args:
        pvalues: Raw p-values.

    Returns:
        Adjusted p-values, same length and order as the input.

    Raises:
        ValueError: For a p-value outside [0, 1] (before, -0.5 came back as an adjusted -1.0).
    """
    p = np.asarray(pvalues, dtype=float).ravel()
    bad = p[~np.isnan(p) & ~((p >= 0) & (p <= 1))]
    if bad.size:
        raise ValueError(f"pvalues: need p in [0, 1] or nan, got {float(bad[0])!r}")
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    scaled = (m - np.arange(m)) * p[order]
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out
