"""Paired statistics of one row: the subject against one member (docs/protocol.md, statistics).

For one subject method and one member B, each seed ``s`` run by both gives a paired difference
``d_s = m_s(subject) - m_s(B)`` (plus the row's non-inferiority margin, if any). Over the ``n``
seeds both have, a :class:`Comparison` holds the mean difference and its 95% t-interval (at
every n: the percentile bootstrap under-covers at 10 seeds), Cohen's ``d_z``, the paired t-test
``p_t`` (for constant differences, where t is undefined, the exact sign-rank ``2 * 0.5^n``), the
Wilcoxon signed-rank p (descriptive) and the exact sign-flip ``p_perm``
(:mod:`bench.evaluate.resampling`). A row's verdict needs both its Holm-corrected ``p_t`` and its
Westfall-Young p below 0.05 (:func:`verdict`); :mod:`bench.evaluate.families` runs both corrections
within a family and decides the prediction's headline.

Every member asked for gets a row: seeds present for one side only, NaN, or recorded as a
failed / skipped job are counted in ``n_missing`` with the reason, never silently dropped; a
member with no value at all is a row with ``n == 0``. The module is pure: no I/O, no global state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

import numpy as np
import pandas as pd
from scipy import stats as _st

from bench.evaluate.inference import _check_unit, holm, t_interval  # noqa: F401 (re-exported)
from bench.evaluate.resampling import sign_flip_p

VERDICTS = ("supported", "contradicted", "inconclusive")
DIRECTIONS = ("higher", "lower")
ALPHA = 0.05


@dataclass(frozen=True)
class Comparison:
    """The paired comparison of the subject against one baseline.

    Attributes:
        baseline: Name of the baseline method.
        n: Number of paired seeds used (both sides present and finite).
        mean_diff: ``mean(d)`` with ``d = subject - baseline``; nan when ``n == 0``.
        ci_low: Lower end of the t-interval of ``mean(d)``; nan when ``n < 2``.
        ci_high: Upper end of the t-interval of ``mean(d)``; nan when ``n < 2``.
        ci_method: Always ``"t"`` (kept so that frames keep their columns).
        effect_size: Cohen's ``d_z = mean(d) / sd(d, ddof=1)``; nan when ``n < 2``;
            ``+-inf`` when ``sd == 0`` and ``mean != 0``; ``0`` when both are 0.
        p_t: Two-sided paired t-test p (``scipy.stats.ttest_1samp(d, 0)``); nan when
            ``n < 2``; when all ``d`` are equal (t undefined): 1.0 if they are 0, else the
            exact sign-rank p ``2 * 0.5^n`` (never 0: three identical seeds are not proof).
        p_wilcoxon: Two-sided Wilcoxon signed-rank p, zeros dropped, exact up to 13 seeds even
            with ties (:func:`_p_wilcoxon`); nan when ``n < 2``; 1.0 when all ``d == 0``.
        p_holm: Holm-corrected ``p_t`` across the baselines of one ``compare_all`` call
            (``p_t`` itself for a single ``compare``); the verdict is decided on it.
        verdict: One of ``VERDICTS``, see ``verdict``.
        n_missing: Seeds expected (run or recorded for either side) that could not be
            paired: absent, NaN, failed or skipped on either side.
        reason: Why the baseline's values are missing ("; "-joined notes), "" if none.
        family: The member's verdict family (``PA``, ``AB``, ``REF``, ``other``); "" until a
            view assigns it.
        p_perm: Exact sign-flip p over all ``2^n`` sign vectors, statistic ``mean(d)``, two-sided.
        p_wy: Westfall-Young step-down max-T adjusted p over the row's family (the same sign
            vectors for every row); ``p_perm`` for a single ``compare``.
        direction: ``"as predicted"``, ``"opposite"`` or ``"none"``: the sign of ``mean(d)``
            against the predicted direction ("none" when it is 0 or there is no value).
        under_trained: Seeds of the member flagged under-trained (docs/protocol.md, convergence).
        na: Why the cell is n/a by design ("" when it is not); its verdict reads "n/a".
        diffs: The per-seed differences ``((seed, d), ...)`` the row was computed from (the
            family-wise Westfall-Young step needs them); not shown in reports.
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
    reason: str = ""
    family: str = ""
    p_perm: float = math.nan
    p_wy: float = math.nan
    direction: str = "none"
    under_trained: int = 0
    na: str = ""
    diffs: tuple = ()


FIELDS = tuple(f.name for f in fields(Comparison))


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")


def _is_missing(value) -> bool:
    if np.ndim(value) != 0:  # pd.isna of a list is an array: "truth value ... is ambiguous"
        raise ValueError(f"non-numeric metric value {value!r}")
    if value is None or pd.isna(value):
        return True
    try:
        float(value)
    except (TypeError, ValueError):
        raise ValueError(f"non-numeric metric value {value!r}") from None
    return False


def paired_differences(subject: Mapping[int, float], baseline: Mapping[int, float]) -> tuple[np.ndarray, int]:
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
    try:
        order = sorted(seeds)
    except TypeError:
        raise ValueError(f"seeds: cannot order seeds of mixed types {sorted(map(repr, seeds))}") from None
    used: list = []
    for s in order:
        both = s in subject and s in baseline
        if both and not (_is_missing(subject[s]) or _is_missing(baseline[s])):
            used.append(s)
    d = np.array([float(subject[s]) - float(baseline[s]) for s in used], dtype=float)
    return d, len(seeds) - len(used)


def _paired(subject: Mapping, baseline: Mapping) -> tuple[np.ndarray, int, list]:
    """:func:`paired_differences` plus the seeds of ``d``, in its order."""
    d, n_missing = paired_differences(subject, baseline)
    used = [
        s for s in sorted(set(subject) & set(baseline)) if not (_is_missing(subject[s]) or _is_missing(baseline[s]))
    ]
    return d, n_missing, used


def verdict(
    mean_diff: float, p_holm: float, n: int, direction: str, alpha: float = ALPHA, p_wy: float | None = None
) -> str:
    """Verdict of one baseline from its Holm-corrected paired-t p (and, when given, its
    Westfall-Young p: then both must be below ``alpha``).

    ``"supported"`` if ``p_holm < alpha`` and ``mean_diff`` lies in the predicted direction
    (``> 0`` for ``"higher"``, ``< 0`` for ``"lower"``); ``"contradicted"`` if
    ``p_holm < alpha`` and ``mean_diff`` lies on the other side; ``"inconclusive"``
    otherwise: ``p_holm >= alpha``, ``mean_diff == 0``, a NaN input, or ``n < 2`` (a NaN ``n``
    included).

    Args:
        mean_diff: ``mean(subject - baseline)`` over the paired seeds.
        p_holm: Holm-corrected two-sided paired-t p.
        n: Number of paired seeds.
        direction: ``"higher"`` or ``"lower"``.
        alpha: Level of the test, in (0, 1).

    Raises:
        ValueError: For a direction other than ``"higher"`` / ``"lower"`` or a bad alpha.
    """
    _check_direction(direction)
    _check_unit("alpha", alpha)
    m, p = float(mean_diff), float(p_holm)
    if not float(n) >= 2 or math.isnan(m) or math.isnan(p) or m == 0 or not p < alpha:
        return "inconclusive"
    if p_wy is not None and not float(p_wy) < alpha:
        return "inconclusive"
    return "supported" if (m > 0) == (direction == "higher") else "contradicted"


def _constant(d: np.ndarray) -> bool:
    """All differences equal, up to rounding (a discrete metric, e.g. a prunable fraction that
    moves by the same 0.1 on every seed, or floats equal but for the last bits)."""
    return float(np.ptp(d)) <= 1e-9 * max(1.0, float(np.abs(d).max()))


def _effect_size(d: np.ndarray) -> float:
    if d.size < 2:
        return math.nan
    mean = float(d.mean())
    if _constant(d):
        return 0.0 if mean == 0 else math.copysign(math.inf, mean)
    return mean / float(d.std(ddof=1))


def _p_t(d: np.ndarray) -> float:
    """Paired t-test p; for constant differences (zero variance, where t is undefined and the old
    convention p = 0 made three identical seeds 'significant'), the exact sign-rank p
    ``2 * 0.5^n`` (0.25 at n = 3, 0.002 at n = 10), or 1 when they are all 0."""
    if d.size < 2:
        return math.nan
    if _constant(d):
        return 1.0 if float(np.abs(d).max()) == 0 else min(1.0, 2.0 * 0.5**d.size)
    return float(_st.ttest_1samp(d, 0.0).pvalue)


def _p_wilcoxon(d: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p of ``d``, zeros dropped, the same under every scipy release.

    Up to 13 differences it is exact, ties and zeros included: the sign-flip p of the signed average
    ranks of the nonzero ones (what ``scipy.stats.wilcoxon``'s default gives in scipy 1.17; 1.13 used
    the normal approximation as soon as a tie or a zero appeared, so a published table re-derived
    under the declared minimum versions disagreed). Beyond that, scipy's exact table when there is
    no tie or zero (up to 50), else its normal approximation, each named explicitly so that no
    release's default decides it."""
    if d.size < 2:
        return math.nan
    nz = d[d != 0]
    if nz.size == 0:
        return 1.0
    ranks = _st.rankdata(np.abs(nz))
    untied = np.unique(ranks).size == nz.size and nz.size == d.size  # no tie and no zero
    if d.size <= 13:  # one nonzero: its sign and its flip are as extreme, p = 1
        return sign_flip_p(np.sign(nz) * ranks) if nz.size > 1 else 1.0
    return float(_st.wilcoxon(nz, method="exact" if untied and d.size <= 50 else "approx").pvalue)


def sign_word(mean_diff: float, direction: str) -> str:
    """``"as predicted"``, ``"opposite"`` or ``"none"``: the sign of ``mean(d)`` against ``direction``."""
    m = float(mean_diff)
    if math.isnan(m) or m == 0:
        return "none"
    return "as predicted" if (m > 0) == (direction == "higher") else "opposite"


def _unjudged(
    subject: Mapping[int, float],
    baseline: Mapping[int, float],
    name: str,
    level: float,
    direction: str = "higher",
    margin: float = 0.0,
) -> Comparison:
    """Every statistic but the verdict (``p_holm = p_t``, ``p_wy = p_perm``, verdict
    ``"inconclusive"``). ``margin`` is added to every d (a non-inferiority row)."""
    d, n_missing, seeds = _paired(subject, baseline)
    d = d + float(margin)
    mean, lo, hi = t_interval(d, level=level)
    if not np.all(np.isfinite(d)):  # an infinite value: the mean is +-inf (or nan), no interval
        mean, lo, hi = float(d.mean()), math.nan, math.nan
    p_t = _p_t(d)
    p_perm = sign_flip_p(d)
    return Comparison(
        baseline=str(name),
        n=int(d.size),
        mean_diff=mean,
        ci_low=lo,
        ci_high=hi,
        ci_method="t",
        effect_size=_effect_size(d),
        p_t=p_t,
        p_wilcoxon=_p_wilcoxon(d),
        p_holm=p_t,
        verdict="inconclusive",
        n_missing=int(n_missing),
        p_perm=p_perm,
        p_wy=p_perm,
        direction=sign_word(mean, direction),
        diffs=tuple(zip(seeds, d.tolist(), strict=True)),
    )


def _judge(c: Comparison, p_holm: float, direction: str, alpha: float, p_wy: float | None = None) -> Comparison:
    p_holm = float(p_holm)
    p_wy = c.p_wy if p_wy is None else float(p_wy)
    return replace(c, p_holm=p_holm, p_wy=p_wy, verdict=verdict(c.mean_diff, p_holm, c.n, direction, alpha, p_wy))


def compare(
    subject: Mapping[int, float],
    baseline: Mapping[int, float],
    direction: str,
    name: str = "baseline",
    level: float = 0.95,
    alpha: float = ALPHA,
    margin: float = 0.0,
) -> Comparison:
    """Compare the subject against one baseline over paired seeds.

    Args:
        subject: Seed -> metric value of the subject.
        baseline: Seed -> metric value of the baseline.
        direction: ``"higher"`` or ``"lower"`` (predicted sign of subject - baseline).
        name: Baseline name stored in the result.
        level: Level of the t-interval.
        alpha: Level of the verdict's test.

        margin: Non-inferiority margin added to every d.

    Returns:
        A ``Comparison`` with ``p_holm == p_t`` and ``p_wy == p_perm`` (a single test needs no
        correction) and its verdict decided on both.
    """
    _check_direction(direction)
    c = _unjudged(subject, baseline, name, level, direction, margin)
    return _judge(c, c.p_t, direction, alpha)


def compare_all(
    subject: Mapping[int, float],
    baselines: Mapping[str, Mapping[int, float]],
    direction: str,
    level: float = 0.95,
    alpha: float = ALPHA,
) -> list[Comparison]:
    """Compare the subject against every baseline, Holm-correcting ``p_t`` across them.

    The paired-t p of every baseline is computed first, Holm-corrected across the
    baselines (those with ``n < 2`` have no p and do not count in the correction), and
    each verdict is then decided on its ``p_holm``.

    Returns:
        One ``Comparison`` per baseline, in the mapping's order.
    """
    _check_direction(direction)
    from bench.evaluate.resampling import westfall_young

    comps = [_unjudged(subject, b, k, level, direction) for k, b in baselines.items()]
    adj = holm([c.p_t for c in comps])
    wy = westfall_young([dict(c.diffs) for c in comps])
    return [_judge(c, a, direction, alpha, w) for c, a, w in zip(comps, adj, wy, strict=True)]


def comparisons_frame(comps: list[Comparison]) -> pd.DataFrame:
    """One row per comparison; the columns are the ``Comparison`` fields, in order."""
    return pd.DataFrame([{f: getattr(c, f) for f in FIELDS} for c in comps], columns=list(FIELDS))


def overall_line(comps: list[Comparison]) -> str:
    """The prediction's overall line: every verdict count is shown.

    Example: ``"supported against 2 of 5 baselines, contradicted against 1, inconclusive
    against 2 (1 with no value)"``; ``" (k with no value)"`` appears when ``k``
    comparisons have ``n == 0``, and ``"; 3 seed values missing"`` is appended when seeds
    are missing.
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
    empty = sum(int(c.n) == 0 for c in comps)
    if empty:
        line += f" ({empty} with no value)"
    missing = sum(int(c.n_missing) for c in comps)
    if missing:
        line += f"; {missing} seed value{'s' if missing != 1 else ''} missing"
    return line
