"""Paired statistics and verdicts for the prediction bench (PROTOCOL.md section 7).

For one subject method and one baseline B, each seed ``s`` run by both gives a paired
difference ``d_s = m_s(subject) - m_s(B)``. Over the ``n`` seeds both have we report:

* the mean difference ``mean(d)`` and its 95% CI (t-interval when ``n < 10``, seeded
  percentile bootstrap of the mean when ``n >= 10``),
* Cohen's ``d_z = mean(d) / sd(d, ddof=1)``,
* the paired t-test and Wilcoxon signed-rank two-sided p-values,
* the Holm-corrected t-test p-value across the baselines of one prediction,
* a verdict: ``supported`` if the CI lies strictly on the predicted side of 0,
  ``contradicted`` if strictly on the opposite side, ``inconclusive`` otherwise.

Seeds present (with a finite value) for only one side are counted in ``n_missing`` and
reported, never silently dropped. The module is pure: no I/O, no global state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np
import pandas as pd
from scipy import stats as _st

VERDICTS = ("supported", "contradicted", "inconclusive")
DIRECTIONS = ("higher", "lower")
CI_METHODS = ("auto", "t", "bootstrap")
BOOTSTRAP_MIN_N = 10


@dataclass(frozen=True)
class Comparison:
    """The paired comparison of the subject against one baseline.

    Attributes:
        baseline: Name of the baseline method.
        n: Number of paired seeds used (both sides present and finite).
        mean_diff: ``mean(d)`` with ``d = subject - baseline``; nan when ``n == 0``.
        ci_low: Lower end of the CI of ``mean(d)``; nan when ``n < 2``.
        ci_high: Upper end of the CI of ``mean(d)``; nan when ``n < 2``.
        ci_method: ``"t"`` or ``"bootstrap"``.
        effect_size: Cohen's ``d_z = mean(d) / sd(d, ddof=1)``; nan when ``n < 2``;
            ``+-inf`` when ``sd == 0`` and ``mean != 0``; ``0`` when both are 0.
        p_t: Two-sided paired t-test p (``scipy.stats.ttest_1samp(d, 0)``); nan when
            ``n < 2``; when all ``d`` are equal: 1.0 if they are 0, else 0.0.
        p_wilcoxon: Two-sided Wilcoxon signed-rank p (``scipy.stats.wilcoxon(d)``,
            zeros dropped); nan when ``n < 2``; 1.0 when all ``d == 0``.
        p_holm: Holm-corrected ``p_t`` across the baselines of one ``compare_all`` call.
        verdict: One of ``VERDICTS``, for the predicted direction.
        n_missing: Seeds with a finite value on one side only, or NaN on both.
    """

    baseline: str
    n: int
    mean_diff: float
    ci_low: float
    ci_high: float
    ci_method: str
    effect_size: float
    p_t: float
    p_wilcoxon: float
    p_holm: float
    verdict: str
    n_missing: int = 0


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")


def _is_missing(value) -> bool:
    if value is None or pd.isna(value):
        return True
    try:
        float(value)
    except (TypeError, ValueError):
        raise ValueError(f"non-numeric metric value {value!r}") from None
    return False


def paired_differences(
    subject: Mapping[int, float], baseline: Mapping[int, float]
) -> tuple[np.ndarray, int]:
    """Per-seed paired differences over the seeds both sides have.

    ``d_s = subject[s] - baseline[s]`` for every seed ``s`` with a finite (non-NaN,
    non-None) value on both sides, in ascending seed order.

    Args:
        subject: Seed -> metric value of the subject method.
        baseline: Seed -> metric value of the baseline method.

    Returns:
        ``(d, n_missing)`` where ``d`` is a float array and ``n_missing`` is the number of
        seeds in the union of both key sets that could not be paired (absent or NaN on
        either side, NaN on both included).
    """
    seeds = set(subject) | set(baseline)
    used: list = []
    for s in sorted(seeds):
        both = s in subject and s in baseline
        if both and not (_is_missing(subject[s]) or _is_missing(baseline[s])):
            used.append(s)
    d = np.array([float(subject[s]) - float(baseline[s]) for s in used], dtype=float)
    return d, len(seeds) - len(used)


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")


def mean_ci(
    d: np.ndarray,
    level: float = 0.95,
    method: str = "auto",
    n_boot: int = 10000,
    seed: int = 0,
) -> tuple[float, float, str]:
    """Confidence interval of the mean of ``d``.

    * ``"t"``: ``mean(d) +- t_{(1+level)/2, n-1} * sd(d, ddof=1) / sqrt(n)``.
    * ``"bootstrap"``: percentile bootstrap of the mean: draw ``n_boot`` resamples of
      size ``n`` with replacement (``numpy.random.default_rng(seed)``), take their means
      ``m_b``, return the ``(1-level)/2`` and ``(1+level)/2`` quantiles of ``m_b``
      (numpy's default linear interpolation). Deterministic for a given ``seed``.
    * ``"auto"``: ``"t"`` when ``n < 10``, ``"bootstrap"`` when ``n >= 10``.

    Args:
        d: Paired differences (1-D).
        level: Confidence level in (0, 1).
        method: ``"auto"``, ``"t"`` or ``"bootstrap"``.
        n_boot: Number of bootstrap resamples.
        seed: Seed of the bootstrap generator.

    Returns:
        ``(low, high, method_used)``; ``(nan, nan, m)`` when ``n < 2``;
        ``(mean, mean, m)`` when all values are equal (zero variance).

    Raises:
        ValueError: For an unknown method or a level outside (0, 1).
    """
    if method not in CI_METHODS:
        raise ValueError(f"method must be one of {CI_METHODS}, got {method!r}")
    _check_level(level)
    d = np.asarray(d, dtype=float).ravel()
    n = d.size
    used = method
    if method == "auto":
        used = "bootstrap" if n >= BOOTSTRAP_MIN_N else "t"
    if n < 2:
        return math.nan, math.nan, used
    mean = float(d.mean())
    if np.all(d == d[0]):
        return mean, mean, used
    if used == "t":
        half = (
            float(_st.t.ppf((1 + level) / 2, n - 1))
            * float(d.std(ddof=1))
            / math.sqrt(n)
        )
        return mean - half, mean + half, used
    rng = np.random.default_rng(seed)
    boot = d[rng.integers(0, n, size=(int(n_boot), n))].mean(axis=1)
    low, high = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high), used


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni step-down adjusted p-values.

    With the ``m`` non-NaN p-values sorted ascending ``p_(1) <= ... <= p_(m)``:
    ``adj_(i) = min(1, max_{j <= i} (m - j + 1) * p_(j))``, returned in input order.
    NaN inputs stay NaN and are not counted in ``m``.

    Args:
        pvalues: Raw p-values.

    Returns:
        Adjusted p-values, same length and order as the input.
    """
    p = np.asarray(pvalues, dtype=float).ravel()
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    scaled = (m - np.arange(m)) * p[order]
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out


def verdict(ci_low: float, ci_high: float, direction: str) -> str:
    """Verdict of a CI of ``mean(subject - baseline)`` against a predicted direction.

    ``"higher"`` predicts ``d > 0``: supported if ``ci_low > 0``, contradicted if
    ``ci_high < 0``. ``"lower"`` predicts ``d < 0``: supported if ``ci_high < 0``,
    contradicted if ``ci_low > 0``. Anything else (CI touching or straddling 0, or a NaN
    end) is inconclusive.

    Raises:
        ValueError: For a direction other than ``"higher"`` / ``"lower"``.
    """
    _check_direction(direction)
    lo, hi = float(ci_low), float(ci_high)
    if math.isnan(lo) or math.isnan(hi):
        return "inconclusive"
    above, below = lo > 0, hi < 0
    if direction == "higher":
        return "supported" if above else "contradicted" if below else "inconclusive"
    return "supported" if below else "contradicted" if above else "inconclusive"


def _effect_size(d: np.ndarray) -> float:
    if d.size < 2:
        return math.nan
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    if np.all(d == d[0]):
        return 0.0 if mean == 0 else math.copysign(math.inf, mean)
    return mean / sd


def _p_t(d: np.ndarray) -> float:
    if d.size < 2:
        return math.nan
    if np.all(d == d[0]):
        return 1.0 if d[0] == 0 else 0.0
    return float(_st.ttest_1samp(d, 0.0).pvalue)


def _p_wilcoxon(d: np.ndarray) -> float:
    if d.size < 2:
        return math.nan
    if np.all(d == 0):
        return 1.0
    return float(_st.wilcoxon(d).pvalue)


def compare(
    subject: Mapping[int, float],
    baseline: Mapping[int, float],
    direction: str,
    name: str = "baseline",
    level: float = 0.95,
) -> Comparison:
    """Compare the subject against one baseline over paired seeds.

    Args:
        subject: Seed -> metric value of the subject.
        baseline: Seed -> metric value of the baseline.
        direction: ``"higher"`` or ``"lower"`` (predicted sign of subject - baseline).
        name: Baseline name stored in the result.
        level: CI level.

    Returns:
        A ``Comparison`` with ``p_holm == p_t`` (a single test needs no correction).
    """
    _check_direction(direction)
    d, n_missing = paired_differences(subject, baseline)
    lo, hi, method = mean_ci(d, level=level)
    p_t = _p_t(d)
    return Comparison(
        baseline=str(name),
        n=int(d.size),
        mean_diff=float(d.mean()) if d.size else math.nan,
        ci_low=lo,
        ci_high=hi,
        ci_method=method,
        effect_size=_effect_size(d),
        p_t=p_t,
        p_wilcoxon=_p_wilcoxon(d),
        p_holm=p_t,
        verdict=verdict(lo, hi, direction),
        n_missing=int(n_missing),
    )


def compare_all(
    subject: Mapping[int, float],
    baselines: Mapping[str, Mapping[int, float]],
    direction: str,
    level: float = 0.95,
) -> list[Comparison]:
    """Compare the subject against every baseline, Holm-correcting ``p_t`` across them.

    Returns:
        One ``Comparison`` per baseline, in the mapping's order.
    """
    _check_direction(direction)
    comps = [
        compare(subject, b, direction, name=k, level=level)
        for k, b in baselines.items()
    ]
    adj = holm([c.p_t for c in comps])
    return [_replace_holm(c, float(a)) for c, a in zip(comps, adj, strict=True)]


def _replace_holm(c: Comparison, p_holm: float) -> Comparison:
    values = asdict(c)
    values["p_holm"] = p_holm
    return Comparison(**values)


FIELDS = tuple(f.name for f in fields(Comparison))


def comparisons_frame(comps: list[Comparison]) -> pd.DataFrame:
    """One row per comparison; the columns are the ``Comparison`` fields, in order."""
    return pd.DataFrame([asdict(c) for c in comps], columns=list(FIELDS))


def overall_line(comps: list[Comparison]) -> str:
    """The prediction's overall line: every verdict count is shown.

    Example: ``"supported against 2 of 5 baselines, contradicted against 1, inconclusive
    against 2"``; when seeds are missing, ``"; 3 seed values missing"`` is appended.
    """
    total = len(comps)
    if total == 0:
        return "no baselines compared"
    counts = {v: sum(c.verdict == v for c in comps) for v in VERDICTS}
    noun = "baseline" if total == 1 else "baselines"
    line = (
        f"supported against {counts['supported']} of {total} {noun}, "
        f"contradicted against {counts['contradicted']}, "
        f"inconclusive against {counts['inconclusive']}"
    )
    missing = sum(c.n_missing for c in comps)
    if missing:
        line += f"; {missing} seed value{'s' if missing != 1 else ''} missing"
    return line


def _seed_map(rows: pd.DataFrame, method: str) -> dict[int, float]:
    dup = rows["seed"].duplicated(keep=False)
    if dup.any():
        seeds = sorted(set(rows.loc[dup, "seed"].tolist()))
        raise ValueError(
            f"method {method!r} has several rows for seeds {seeds} in one group; "
            "add the distinguishing columns to `by` or `extra_filter`"
        )
    return dict(
        zip(rows["seed"].tolist(), rows["value"].astype(float).tolist(), strict=True)
    )


def verdict_from_tidy(
    df: pd.DataFrame,
    metric: str,
    subject: str,
    direction: str,
    by: Sequence[str] = ("dataset", "width"),
    extra_filter: dict | None = None,
) -> pd.DataFrame:
    """Per-group comparisons of the subject against every other method of a tidy table.

    Keeps the rows with ``metric == metric`` and ``df[col] == value`` for each item of
    ``extra_filter``; groups them by the columns of ``by`` that exist in ``df`` (one group
    if none do; NaN group keys are kept); in each group compares ``subject`` against every
    other method present (sorted by name) with ``compare_all``, so Holm runs across the
    baselines of a group. A group lacking the subject still yields rows (``n == 0``,
    inconclusive, every baseline seed counted in ``n_missing``); a group holding only the
    subject has nothing to compare and yields none.

    Args:
        df: Tidy table with columns ``method, seed, metric, value`` (+ condition columns).
        metric: Metric to compare.
        subject: Method name of the subject.
        direction: ``"higher"`` or ``"lower"``.
        by: Candidate group columns.
        extra_filter: Column -> required value.

    Returns:
        ``comparisons_frame`` rows with the existing ``by`` columns in front.

    Raises:
        ValueError: For a bad direction, a missing required column, or several rows for
            one (method, seed) within a group.
    """
    _check_direction(direction)
    need = {"method", "seed", "metric", "value"} | set(extra_filter or {})
    absent = sorted(need - set(df.columns))
    if absent:
        raise ValueError(f"tidy frame lacks columns {absent}")
    sel = df[df["metric"] == metric]
    for col, value in (extra_filter or {}).items():
        sel = sel[sel[col] == value]
    keys = [c for c in by if c in df.columns]
    groups = sel.groupby(keys, dropna=False, sort=True) if keys else [((), sel)]
    frames = []
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        subj = _seed_map(g[g["method"] == subject], subject)
        others = sorted(m for m in g["method"].unique() if m != subject)
        base = {m: _seed_map(g[g["method"] == m], m) for m in others}
        if not base:
            continue
        frame = comparisons_frame(compare_all(subj, base, direction))
        for i, col in enumerate(keys):
            frame.insert(i, col, key[i])
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=[*keys, *FIELDS])
    return pd.concat(frames, ignore_index=True)
