"""Tests of bench.evaluate.stats against scipy on fixed numbers and hand-computed literals."""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from bench.evaluate.families import NA
from bench.evaluate.stats import (
    VERDICTS,
    Comparison,
    compare,
    compare_all,
    comparisons_frame,
    holm,
    overall_line,
    paired_differences,
    t_interval,
    verdict,
)
from bench.evaluate.verdicts import verdict_from_tidy

D = np.array([0.8, 1.1, 0.3, 0.9, 1.4])
BASE = {0: 10.0, 1: 10.5, 2: 9.7, 3: 10.2, 4: 9.9}
SUBJ = {s: BASE[s] + D[s] for s in BASE}
# ten seeds (confirm's n): the exact sign-flip p can fall below 0.05 only from n = 6 (2/2^n), so every
# verdict test runs here. |d| sums to 7.7; a sign vector reaches |sum| >= 6.9 iff its negative |d| sum
# to <= 0.4: {}, {0.1}, {0.2}, {0.3}, {0.3'}, {0.1, 0.2}, {0.1, 0.3}, {0.1, 0.3'}, times 2: p_perm 16/1024
D10 = np.array([0.8, 1.1, 0.3, 0.9, 1.4, -0.3, 1.7, 0.2, -0.1, 0.9])
BASE10 = {**BASE, 5: 10.1, 6: 9.8, 7: 10.4, 8: 10.0, 9: 9.6}
SUBJ10 = {s: BASE10[s] + D10[s] for s in BASE10}


def _wilcoxon_by_enumeration(d) -> float:
    """Two-sided signed-rank p by listing every sign vector: zeros dropped, average ranks for ties."""
    import itertools

    nz = [x for x in d if x != 0]
    ranks = st.rankdata(np.abs(nz))
    t = sum(r for r, x in zip(ranks, nz, strict=True) if x > 0)
    tot = [
        sum(r for r, s in zip(ranks, signs, strict=True) if s) for signs in itertools.product([0, 1], repeat=len(nz))
    ]
    less = np.mean([x <= t + 1e-9 for x in tot])
    greater = np.mean([x >= t - 1e-9 for x in tot])
    return min(1.0, 2 * min(less, greater))


@pytest.mark.parametrize(
    "d",
    [
        [0.3, 0.1, 0.1, -0.2, 0.5, 0.0, 0.4, 0.3, -0.1, 0.2],  # ties and a zero, 10 seeds
        [0.02, 0.02, 0.02, 0.02, -0.01, 0.03, 0.0, 0.0, 0.05, 0.04],
        [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, -10.0],  # no tie: the exact table
    ],
)
def test_wilcoxon_p_is_exact_with_ties_and_zeros(d):
    """At the suite's 10 seeds the Wilcoxon p is the exact signed-rank p even with ties and zeros, where
    scipy 1.13's default switched to the normal approximation (a published table then failed to
    re-derive under the declared minimum versions)."""
    from bench.evaluate.stats import _p_wilcoxon

    assert _p_wilcoxon(np.array(d)) == pytest.approx(_wilcoxon_by_enumeration(d), rel=1e-12)
    approx = st.wilcoxon([x for x in d if x != 0], method="approx").pvalue
    if len(set(np.abs([x for x in d if x != 0]))) < len([x for x in d if x != 0]):
        assert _p_wilcoxon(np.array(d)) != pytest.approx(approx, rel=1e-6)  # the approximation is not it


def test_paired_differences_sorted_and_missing_counted():
    subj = {3: 4.0, 1: 2.0, 2: float("nan"), 5: 1.0}
    base = {1: 1.0, 2: 1.0, 3: 1.0, 4: 1.0}
    d, n_missing = paired_differences(subj, base)
    np.testing.assert_allclose(d, [1.0, 3.0])  # seeds 1, 3 in order
    assert n_missing == 3  # seed 2 (NaN), 4 (subject failed), 5 (baseline failed)


def test_t_interval_matches_scipy():
    mean, lo, hi = t_interval(D)
    assert mean == pytest.approx(0.9)  # hand: mean 0.9, var 0.66/4 = 0.165
    half = st.t.ppf(0.975, 4) * math.sqrt(0.165) / math.sqrt(5)
    assert lo == pytest.approx(0.9 - half, rel=1e-12)
    assert hi == pytest.approx(0.9 + half, rel=1e-12)
    ref = st.t.interval(0.95, 4, loc=D.mean(), scale=st.sem(D))
    assert (lo, hi) == pytest.approx(ref, rel=1e-12)
    _, lo90, hi90 = t_interval(D, level=0.90)
    assert hi90 - lo90 < hi - lo
    # a fixed sample of 10 (the full profile): still the t-interval, no bootstrap
    x = np.array([0.12, -0.31, 0.45, 0.08, 0.27, 0.51, -0.02, 0.19, 0.33, 0.06])
    ref10 = st.t.interval(0.95, 9, loc=x.mean(), scale=st.sem(x))
    assert t_interval(x) == pytest.approx((x.mean(), *ref10), rel=1e-12)
    # non-finite entries are dropped
    assert t_interval([*x, np.nan, np.inf]) == pytest.approx(t_interval(x), rel=1e-12)


def test_t_interval_degenerate():
    assert all(math.isnan(v) for v in t_interval([]))
    assert all(math.isnan(v) for v in t_interval([np.nan, np.nan]))
    mean, lo, hi = t_interval([2.5])
    assert mean == 2.5 and math.isnan(lo) and math.isnan(hi)
    mean, lo, hi = t_interval([1.0, np.nan])
    assert mean == 1.0 and math.isnan(lo) and math.isnan(hi)
    assert t_interval([0.3, 0.3, 0.3]) == (0.3, 0.3, 0.3)
    with pytest.raises(ValueError):
        t_interval(D, level=95)


def test_compare_matches_scipy_and_literals():
    c = compare(SUBJ, BASE, "higher", name="B")
    assert c.baseline == "B" and c.n == 5 and c.n_missing == 0
    assert c.mean_diff == pytest.approx(0.9)
    assert c.effect_size == pytest.approx(0.9 / math.sqrt(0.165))
    assert c.p_t == pytest.approx(st.ttest_1samp(D, 0.0).pvalue, rel=1e-9)
    seeds = sorted(BASE)
    ref_rel = st.ttest_rel([SUBJ[s] for s in seeds], [BASE[s] for s in seeds]).pvalue
    assert c.p_t == pytest.approx(ref_rel, rel=1e-6)
    assert c.p_wilcoxon == pytest.approx(st.wilcoxon(D).pvalue)
    assert c.p_wilcoxon == pytest.approx(2 / 32)  # all 5 signs positive, exact
    assert c.p_holm == c.p_t
    assert c.ci_method == "t" and c.reason == ""
    assert (c.mean_diff, c.ci_low, c.ci_high) == pytest.approx(t_interval(D), rel=1e-12)
    # all 5 signs positive: only the identity and its mirror reach |mean d|, p_perm = 2/32 > 0.05, so
    # p_t < 0.05 alone no longer decides: no row is supported or contradicted at 5 seeds
    assert c.p_t < 0.05 and c.p_perm == pytest.approx(2 / 32) and c.p_wy == c.p_perm
    assert c.verdict == "inconclusive"
    assert compare(SUBJ, BASE, "lower").verdict == "inconclusive"
    ten = compare(SUBJ10, BASE10, "higher")
    assert ten.n == 10 and ten.p_t == pytest.approx(st.ttest_1samp(D10, 0.0).pvalue, rel=1e-9)
    assert ten.p_perm == pytest.approx(16 / 1024) and ten.p_wy == ten.p_perm and ten.p_holm == ten.p_t
    assert ten.verdict == "supported" and ten.direction == "as predicted"
    assert compare(SUBJ10, BASE10, "lower").verdict == "contradicted"


def test_holm_literals():
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    out = holm([0.01, float("nan"), 0.04, 0.03])
    assert math.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2, 3]], [0.03, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])
    np.testing.assert_allclose(holm([0.02]), [0.02])
    assert holm([]).size == 0
    p = np.array([0.04, 0.001, 0.2, 0.03, 0.01])
    adj = holm(p)
    order = np.argsort(p)
    assert np.all(np.diff(adj[order]) >= 0) and np.all(adj >= p)


@pytest.mark.parametrize(
    ("mean", "p", "n", "higher", "lower"),
    [
        (0.4, 0.01, 5, "supported", "contradicted"),
        (-0.4, 0.01, 5, "contradicted", "supported"),
        (0.4, 0.05, 5, "inconclusive", "inconclusive"),  # p_holm must be < 0.05
        (0.4, 0.2, 5, "inconclusive", "inconclusive"),
        (0.0, 0.0, 5, "inconclusive", "inconclusive"),
        (0.4, float("nan"), 5, "inconclusive", "inconclusive"),
        (float("nan"), 0.01, 5, "inconclusive", "inconclusive"),
        (0.4, 0.0, 1, "inconclusive", "inconclusive"),  # one paired seed
        (0.4, 0.0, 0, "inconclusive", "inconclusive"),
    ],
)
def test_verdict_labels(mean, p, n, higher, lower):
    assert verdict(mean, p, n, "higher") == higher
    assert verdict(mean, p, n, "lower") == lower
    assert higher in VERDICTS and lower in VERDICTS


def test_verdict_alpha():
    assert verdict(0.4, 0.03, 5, "higher") == "supported"
    assert verdict(0.4, 0.03, 5, "higher", alpha=0.01) == "inconclusive"
    with pytest.raises(ValueError):
        verdict(0.4, 0.03, 5, "higher", alpha=5)


def test_bad_direction_raises():
    with pytest.raises(ValueError):
        verdict(0.1, 0.01, 5, "up")
    with pytest.raises(ValueError):
        compare(SUBJ, BASE, "greater")
    with pytest.raises(ValueError):
        compare_all(SUBJ, {"b": BASE}, "up")


@pytest.mark.slow
def test_verdict_follows_p_not_ci():
    # the old rule (CI strictly off 0) and the new one (p < 0.05) agree for a single t-test...
    c = compare(SUBJ10, BASE10, "higher")
    assert c.ci_low > 0 and c.p_t < 0.05 and c.verdict == "supported"
    # ...but among 10 baselines the verdict follows p_holm, although every CI excludes 0 (and
    # Westfall-Young over identical rows keeps p_perm < 0.05: Holm alone makes them inconclusive)
    assert 0.005 < c.p_t < 0.01  # so 10 * p_t > 0.05
    comps = compare_all(SUBJ10, {f"b{k}": BASE10 for k in range(10)}, "higher")
    assert all(x.ci_low > 0 and x.p_holm == pytest.approx(10 * c.p_t) for x in comps)
    assert all(x.p_wy == pytest.approx(c.p_perm) and x.p_wy < 0.05 for x in comps)
    assert all(x.verdict == "inconclusive" for x in comps)
    two = compare_all(SUBJ10, {"a": BASE10, "b": BASE10}, "higher")  # 2 * p_t < 0.05
    assert all(x.p_holm == pytest.approx(2 * c.p_t) and x.verdict == "supported" for x in two)


def test_degenerate_cases():
    one = compare({0: 2.0}, {0: 1.0}, "higher")
    assert one.n == 1 and math.isnan(one.effect_size) and math.isnan(one.p_t)
    assert math.isnan(one.ci_low) and math.isnan(one.ci_high) and one.mean_diff == 1.0
    assert math.isnan(one.p_wilcoxon) and one.verdict == "inconclusive"
    zero = compare({0: 1.0, 1: 2.0, 2: 3.0}, {0: 1.0, 1: 2.0, 2: 3.0}, "higher")
    assert zero.effect_size == 0.0 and zero.p_wilcoxon == 1.0 and zero.p_t == 1.0
    assert (zero.ci_low, zero.ci_high) == (0.0, 0.0)
    assert zero.verdict == "inconclusive"
    # constant differences: t is undefined; three identical seeds are not proof (the exact sign p)
    const = compare({0: 2.0, 1: 3.0, 2: 4.0}, {0: 1.9, 1: 2.9, 2: 3.9}, "lower")
    assert const.effect_size == math.inf and const.p_t == pytest.approx(0.25) and const.verdict == "inconclusive"
    ten = compare({s: 0.5 for s in range(10)}, {s: 0.4 for s in range(10)}, "higher")
    assert ten.p_t == pytest.approx(2 * 0.5**10) and ten.verdict == "supported"
    # floats equal but for the last bits are constant too (this gave p = 3e-33 on a prunable fraction)
    near = compare({0: 0.5, 1: 0.5, 2: 0.5}, {0: 0.9, 1: 0.9000000000000001, 2: 0.9}, "lower")
    assert near.p_t == pytest.approx(0.25) and near.verdict == "inconclusive"
    empty = compare({}, {0: 1.0}, "higher")
    assert empty.n == 0 and empty.n_missing == 1 and math.isnan(empty.mean_diff)
    assert empty.verdict == "inconclusive"


def test_single_paired_seed_is_inconclusive_even_with_huge_effect():
    # seeds 1, 2 are missing on one side each: one paired seed, whatever its size
    c = compare({0: 100.0, 1: 100.0}, {0: 0.0, 2: 0.0}, "higher")
    assert c.n == 1 and c.n_missing == 2 and c.mean_diff == 100.0
    assert c.verdict == "inconclusive"
    comps = compare_all({0: 100.0, 1: 101.0}, {"x": {0: 0.0}, "y": {0: 0.0, 1: 0.5}}, "higher")
    assert [x.n for x in comps] == [1, 2] and math.isnan(comps[0].p_holm)
    assert comps[0].verdict == "inconclusive"


SPREADS = {
    8: [-0.4, 0.4, -0.7, 0.7, -0.8, 0.8, -1.0, 1.0],
    9: [-0.4, 0.4, -0.4, 0.4, -1.2, 1.2, -1.2, 1.2, 0.0],
    10: [-0.3, 0.3, -0.4, 0.4, -0.8, 0.8, -0.9, 0.9, -1.6, 1.6],
}


def _modest(n: int, k: int) -> dict[int, float]:
    """A baseline that the subject (all zeros) beats by exactly 1 on average over seeds 0..n-1, raw
    p_t ~ 0.01 and exact sign-flip p_perm below 0.05 (so that, alone, it is supported)."""
    spread = SPREADS[n]
    return {s: -(1.0 + spread[(s + k) % n]) for s in range(n)}


@pytest.mark.slow
def test_holm_makes_twenty_modest_effects_inconclusive():
    subj = {s: 0.0 for s in range(10)}
    modest = {f"b{k:02d}": _modest(8 + k % 3, k) for k in range(20)}
    raw = [compare(subj, b, "higher", name=k) for k, b in modest.items()]
    # each alone is a clear win: raw p_t around 0.01, p_perm < 0.05, CI off 0, uncorrected verdict supported
    assert all(0.005 < c.p_t < 0.02 and c.p_perm < 0.05 and c.mean_diff == pytest.approx(1.0) for c in raw)
    assert all(c.ci_low > 0 and c.verdict == "supported" for c in raw)
    assert all(verdict(c.mean_diff, c.p_t, c.n, "higher") == "supported" for c in raw)
    comps = compare_all(subj, modest, "higher")
    assert [c.baseline for c in comps] == list(modest)
    for c, r in zip(comps, raw, strict=True):
        assert c.p_t == pytest.approx(r.p_t) and c.p_holm > c.p_t and c.p_holm >= 0.05
        assert c.verdict == "inconclusive"
    np.testing.assert_allclose([c.p_holm for c in comps], holm([c.p_t for c in comps]))
    # one huge effect among them survives the correction
    huge = {s: -(10.0 + 0.01 * s) for s in range(10)}
    comps = compare_all(subj, {**modest, "huge": huge}, "higher")
    big = comps[-1]
    assert big.baseline == "huge" and big.p_holm == pytest.approx(21 * big.p_t)
    # no modest row's |t| under any sign flip reaches huge's: max-T leaves its own 2 of 1024
    assert big.p_wy == pytest.approx(2 / 1024)
    assert big.p_holm < 0.05 and big.verdict == "supported"
    assert all(c.verdict == "inconclusive" for c in comps[:-1])
    assert overall_line(comps) == (
        "supported against 1 of 21 baselines, contradicted against 0, inconclusive against 20"
        "; 21 seed values missing"  # the subject's seeds 8, 9 that the 7 n = 8 and 7 n = 9 baselines lack
    )


@pytest.mark.slow
def test_contradicted_after_holm():
    subj = {s: 0.0 for s in range(10)}
    above = {s: 2.0 + 0.01 * s for s in range(10)}  # baseline far above: mean d < 0
    modest = _modest(8, 0)
    for direction, wrong in (("higher", "contradicted"), ("lower", "supported")):
        comps = compare_all(subj, {"above": above, "modest": modest}, direction)
        assert comps[0].mean_diff < 0 and comps[0].p_holm < 0.05 and comps[0].p_wy < 0.05
        assert comps[0].verdict == wrong
    # the wrong side is not called when Holm lifts p_holm to 0.05 or above
    noise = {f"n{k}": {s: 0.01 * ((s * 7 + k) % 5 - 2) for s in range(10)} for k in range(25)}
    low = {s: -v for s, v in _modest(8, 1).items()}  # subject lower, raw p_t ~ 0.01, p_perm < 0.05
    comps = compare_all(subj, {"low": low, **noise}, "higher")
    assert comps[0].p_t < 0.05 <= comps[0].p_holm and comps[0].mean_diff < 0
    assert comps[0].verdict == "inconclusive"
    assert compare(subj, low, "higher").verdict == "contradicted"


def test_compare_all_holm_and_overall_line():
    # not constant: the t-test is defined
    jitter = {0: 0.01, 1: -0.02, 2: 0.015, 3: -0.005, 4: 0.0, 5: 0.02, 6: -0.01, 7: 0.005, 8: -0.015, 9: 0.0}
    better = {s: v - 1.0 + jitter[s] for s, v in SUBJ10.items()}  # baseline below the subject
    worse = {s: v + 2.0 + jitter[s] for s, v in SUBJ10.items()}  # baseline above the subject
    noisy = {s: SUBJ10[s] + (0.5 if s % 2 else -0.5) for s in SUBJ10}
    partial = {s: SUBJ10[s] - 1.0 + jitter[s] for s in range(8)}  # seeds 8, 9 failed
    comps = compare_all(SUBJ10, {"a": better, "b": worse, "c": noisy, "d": partial}, "higher")
    assert [c.baseline for c in comps] == ["a", "b", "c", "d"]
    assert [c.verdict for c in comps] == [
        "supported",
        "contradicted",
        "inconclusive",
        "supported",
    ]
    np.testing.assert_allclose([c.p_holm for c in comps], holm([c.p_t for c in comps]))
    assert all(c.p_wy < 0.05 for c in comps[:2] + comps[3:]) and comps[2].p_wy == 1.0  # noisy: mean d is 0
    assert comps[3].n == 8 and comps[3].n_missing == 2
    line = overall_line(comps)
    assert line.startswith("supported against 2 of 4 baselines, contradicted against 1, inconclusive against 1")
    assert "2 seed values missing" in line
    assert overall_line(comps[:1]) == (
        "supported against 1 of 1 baseline, contradicted against 0, inconclusive against 0"
    )


def test_comparisons_frame_columns():
    comps = compare_all(SUBJ10, {"x": BASE10}, "higher")
    frame = comparisons_frame(comps)
    assert list(frame.columns) == [f.name for f in fields(Comparison)]
    assert len(frame) == 1 and frame.loc[0, "verdict"] == "supported"
    assert frame.loc[0, "p_perm"] == pytest.approx(16 / 1024) and frame.loc[0, "p_wy"] == frame.loc[0, "p_perm"]
    assert list(comparisons_frame([]).columns) == list(frame.columns)


def _tidy() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    offsets = {"infomax": 0.0, "weak": -0.2, "strong": 0.2}
    for dataset in ("mnist", "cifar10"):
        for method, off in offsets.items():
            for seed in range(10):
                value = 0.7 + off + 0.01 * rng.standard_normal()
                rows.append((dataset, 64, method, seed, "accuracy", value))
                rows.append((dataset, 64, method, seed, "loss", -value))
    df = pd.DataFrame(rows, columns=["dataset", "width", "method", "seed", "metric", "value"])
    df["probe_mode"] = "linear"
    # one failed job: weak/mnist/seed 9 produced NaN; strong/cifar10/seed 8 never ran
    df.loc[(df.dataset == "mnist") & (df.method == "weak") & (df.seed == 9), "value"] = np.nan
    drop = (df.dataset == "cifar10") & (df.method == "strong") & (df.seed == 8)
    return df[~drop].reset_index(drop=True)


def test_verdict_from_tidy():
    out = verdict_from_tidy(_tidy(), "accuracy", "infomax", "higher", extra_filter={"probe_mode": "linear"})
    assert list(out.columns[:2]) == ["dataset", "width"]
    assert len(out) == 4
    got = {(r.dataset, r.baseline): (r.verdict, r.n, r.n_missing) for r in out.itertuples()}
    assert got[("mnist", "weak")] == ("supported", 9, 1)
    assert got[("mnist", "strong")] == ("contradicted", 10, 0)
    assert got[("cifar10", "weak")] == ("supported", 10, 0)
    assert got[("cifar10", "strong")] == ("contradicted", 9, 1)
    # one PA family: Holm across the whole table (m = 4, not 2 per dataset), both p below 0.05 on every row
    assert set(out.family) == {"PA"} and (out.na == "").all()
    np.testing.assert_allclose(out.p_holm, holm(out.p_t))
    assert out.p_holm.min() == pytest.approx(4 * out.p_t.min())
    assert (out.p_wy < 0.05).all() and (out.p_wy >= out.p_perm - 1e-12).all()
    # the same effects on 5 seeds: Holm still rejects, but no sign-flip p can fall below 2/32, so no call
    five = verdict_from_tidy(_tidy().query("seed < 5"), "accuracy", "infomax", "higher")
    assert (five.p_holm < 0.05).all() and (five.p_wy >= 2 / 32).all()
    assert (five.verdict == "inconclusive").all()
    lower = verdict_from_tidy(_tidy(), "loss", "infomax", "lower", by=("dataset", "absent"))
    assert list(lower.columns[:1]) == ["dataset"] and "absent" not in lower.columns
    assert sorted(lower.verdict) == [
        "contradicted",
        "contradicted",
        "supported",
        "supported",
    ]
    mnist = _tidy().query("dataset == 'mnist'")
    assert verdict_from_tidy(mnist, "accuracy", "infomax", "higher", by=()).shape[0] == 2
    with pytest.raises(ValueError):
        verdict_from_tidy(_tidy(), "accuracy", "infomax", "up")
    # two rows per (method, seed) once dataset is not a group column
    with pytest.raises(ValueError):
        verdict_from_tidy(_tidy(), "accuracy", "infomax", "higher", by=("width",))


def _status_tidy() -> pd.DataFrame:
    """Seeds 0..9. mnist: the subject failed seed 9; ``ok`` is a normal baseline; ``lse_only`` (an
    AB member) collapsed (NaN values); ``gone`` diverged on every seed (job_failed); ``unsup`` cannot
    run (one job_skipped row, no seed, no width: n/a by design); ``mixed`` has 2 values, 1 NaN, no
    seeds 3..8 and a failure on seed 9. cifar10: subject and ``ok`` only. svhn: ``ok`` only (no subject)."""
    rows = []

    def metric(dataset, method, seed, value, note=""):
        for mode, shift in (("linear", 0.0), ("refit", 0.05)):
            rows.append(
                {
                    "dataset": dataset,
                    "method": method,
                    "width": 64,
                    "seed": seed,
                    "metric": "accuracy",
                    "value": value + shift if value == value else value,
                    "note": note,
                    "probe_mode": mode,
                }
            )

    def status(dataset, method, seed, kind, note, width=64):
        rows.append(
            {
                "dataset": dataset,
                "method": method,
                "width": width,
                "seed": seed,
                "metric": kind,
                "value": 1.0,
                "note": note,
            }
        )

    wiggle = [0.001, -0.002, 0.0015, -0.0005, 0.002, -0.001, 0.0005, -0.0015, 0.001, -0.002]
    for s in range(10):
        if s < 9:
            metric("mnist", "infomax", s, 0.9 + wiggle[s])
        else:
            status("mnist", "infomax", s, "job_failed", "non-finite loss")
        metric("mnist", "ok", s, 0.7 - wiggle[s])
        metric("mnist", "lse_only", s, np.nan, "collapsed")
        status("mnist", "gone", s, "job_failed", "non-finite loss")
        metric("cifar10", "infomax", s, 0.6 + wiggle[s])
        metric("cifar10", "ok", s, 0.5 - wiggle[s])
        metric("svhn", "ok", s, 0.8)
    metric("mnist", "mixed", 0, 0.5)
    metric("mnist", "mixed", 1, 0.8)
    metric("mnist", "mixed", 2, np.nan, "collapsed")
    status("mnist", "mixed", 9, "job_failed", "non-finite loss")
    status("mnist", "unsup", np.nan, "job_skipped", "needs no labels: not applicable", width=np.nan)
    return pd.DataFrame(rows)


def _by_row(out: pd.DataFrame) -> dict:
    return {(r.dataset, r.baseline): (r.n, r.n_missing, r.verdict, r.reason) for r in out.itertuples()}


def test_verdict_from_tidy_keeps_methods_without_values():
    df = _status_tidy()
    out = verdict_from_tidy(df, "accuracy", "infomax", "higher", extra_filter={"probe_mode": "linear"})
    assert list(out.columns) == ["dataset", "width", *[f.name for f in fields(Comparison)]]
    assert out["width"].notna().all()  # the skipped row (no width) joined the mnist/64 group
    got = _by_row(out)
    assert got == {
        ("cifar10", "ok"): (10, 0, "supported", ""),
        ("mnist", "gone"): (0, 10, "inconclusive", "non-finite loss"),
        ("mnist", "lse_only"): (0, 10, "inconclusive", "collapsed"),
        ("mnist", "mixed"): (2, 8, "inconclusive", "collapsed; non-finite loss"),
        ("mnist", "ok"): (9, 1, "supported", ""),  # the subject's failed seed 9
        ("mnist", "unsup"): (0, 10, NA, "needs no labels: not applicable"),  # only skipped: n/a by design
        ("svhn", "ok"): (0, 10, "inconclusive", ""),  # no subject in the group
    }
    # PA members first, then AB (lse_only); unsup's na holds the reason
    assert list(out[out.dataset == "mnist"].baseline) == ["gone", "mixed", "ok", "unsup", "lse_only"]
    fam = out[out.dataset == "mnist"].set_index("baseline")
    assert fam.loc["lse_only", "family"] == "AB" and set(fam.family.drop("lse_only")) == {"PA"}
    assert fam.loc["unsup", "na"] == "needs no labels: not applicable" and (fam.na.drop("unsup") == "").all()
    empty = out[out.n == 0]
    assert empty[["mean_diff", "ci_low", "ci_high", "p_t", "p_holm", "p_wy"]].isna().all().all()
    # Holm runs across the PA rows with a p of the whole table (cifar10 ok, mnist mixed and ok), not per group
    pa = out[(out.family == "PA") & out.p_t.notna()]
    assert sorted(zip(pa.dataset, pa.baseline, strict=True)) == [("cifar10", "ok"), ("mnist", "mixed"), ("mnist", "ok")]
    np.testing.assert_allclose(pa.p_holm, holm(pa.p_t))
    assert pa.p_holm.min() == pytest.approx(3 * pa.p_t.min())
    assert (pa[pa.baseline == "ok"].p_wy < 0.05).all()
    # the n/a row is left out here: overall_line knows only the three verdicts (see the report)
    mnist = out[(out.dataset == "mnist") & (out.verdict != NA)]
    mnist_comps = [Comparison(**{f: r[f] for f in fields_names()}) for _, r in mnist.iterrows()]
    assert overall_line(mnist_comps) == (
        "supported against 1 of 4 baselines, contradicted against 0, inconclusive against 3 (2 with no value)"
        "; 29 seed values missing"
    )
    # same rows when the groups are datasets only
    linear = {"probe_mode": "linear"}
    by_ds = verdict_from_tidy(df, "accuracy", "infomax", "higher", by=("dataset",), extra_filter=linear)
    assert _by_row(by_ds) == got
    # NaN values are missing, but two rows for one (method, seed) in a group are still an error
    with pytest.raises(ValueError, match="several rows"):
        verdict_from_tidy(df, "accuracy", "infomax", "higher")


def fields_names() -> list[str]:
    return [f.name for f in fields(Comparison)]


def test_verdict_from_tidy_methods_asked_for():
    df = _status_tidy()
    asked = ["ok", "gone", "ghost", "infomax", "unsup", "ok"]  # subject and the repeat are dropped
    out = verdict_from_tidy(df, "accuracy", "infomax", "higher", extra_filter={"probe_mode": "linear"}, methods=asked)
    assert list(out[out.dataset == "mnist"].baseline) == ["ok", "gone", "ghost", "unsup"]
    assert list(out[out.dataset == "cifar10"].baseline) == ["ok", "gone", "ghost", "unsup"]
    got = _by_row(out)
    assert got[("mnist", "ghost")] == (0, 10, "inconclusive", "")  # no row at all: still reported
    assert got[("cifar10", "ghost")] == (0, 10, "inconclusive", "")
    assert got[("cifar10", "gone")] == (0, 10, "inconclusive", "")  # gone failed on mnist only
    assert got[("mnist", "gone")] == (0, 10, "inconclusive", "non-finite loss")
    assert got[("mnist", "ok")] == (9, 1, "supported", "")
    assert got[("svhn", "ok")] == (0, 10, "inconclusive", "")
    # skipped on mnist (n/a by design there); on cifar10 it has no row at all: a missing value, not n/a
    assert got[("mnist", "unsup")] == (0, 10, NA, "needs no labels: not applicable")
    assert got[("cifar10", "unsup")] == (0, 10, "inconclusive", "")


def test_verdict_from_tidy_only_status_rows():
    # every job failed: no metric row and no condition column, yet every method has a row
    df = _status_tidy()
    df = df[df.metric == "job_failed"].drop(columns=["probe_mode"])
    out = verdict_from_tidy(df, "accuracy", "infomax", "higher", extra_filter={"probe_mode": "linear"})
    assert _by_row(out) == {
        ("mnist", "gone"): (0, 10, "inconclusive", "non-finite loss"),
        ("mnist", "mixed"): (0, 1, "inconclusive", "non-finite loss"),  # seed 9 failed on both sides
    }
    # with metric rows present, a filter column the frame lacks is a mistake
    with pytest.raises(ValueError, match="probe_mode"):
        verdict_from_tidy(
            _tidy().drop(columns=["probe_mode"]), "accuracy", "infomax", "higher", extra_filter={"probe_mode": "linear"}
        )
    with pytest.raises(ValueError):
        verdict_from_tidy(df, "job_failed", "infomax", "higher")


def test_overall_line_counts_empty_comparisons():
    comps = compare_all(SUBJ10, {"a": BASE10, "none": {}, "nan": {0: float("nan")}}, "higher")
    assert [c.n for c in comps] == [10, 0, 0]
    assert overall_line(comps) == (
        "supported against 1 of 3 baselines, contradicted against 0, inconclusive against 2 (2 with no value)"
        "; 20 seed values missing"
    )


def test_report_helpers_show_reason():
    from bench.report.build import overall, verdict_display

    out = verdict_from_tidy(_status_tidy(), "accuracy", "infomax", "higher", extra_filter={"probe_mode": "linear"})
    shown = verdict_display(out)
    assert list(shown.columns[-3:]) == ["verdict", "missing", "reason"]
    assert "collapsed" in set(shown["reason"])
    assert shown.set_index("baseline").loc["unsup", "verdict"] == "n/a: needs no labels: not applicable"
    applicable = out[out.verdict != NA]  # overall() counts only the three verdicts: the n/a row is left out
    assert overall(applicable) == (
        "supported against 2 of 6 baselines, contradicted against 0, "
        "inconclusive against 4 (3 with no value); 39 seed values missing"
    )
    # a frame without reasons (or without the new column at all) still renders
    clean = comparisons_frame(compare_all(SUBJ10, {"x": BASE10}, "higher"))
    assert "reason" not in verdict_display(clean).columns and "missing" not in verdict_display(clean).columns
    old = clean.drop(columns=["reason"])
    assert "reason" not in verdict_display(old).columns
    assert (
        overall(old)
        == overall(clean)
        == ("supported against 1 of 1 baseline, contradicted against 0, inconclusive against 0")
    )
