"""Tests of bench.stats against scipy on fixed numbers and hand-computed literals."""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from bench.stats import (
    VERDICTS,
    Comparison,
    compare,
    compare_all,
    comparisons_frame,
    holm,
    mean_ci,
    overall_line,
    paired_differences,
    verdict,
    verdict_from_tidy,
)

D = np.array([0.8, 1.1, 0.3, 0.9, 1.4])
BASE = {0: 10.0, 1: 10.5, 2: 9.7, 3: 10.2, 4: 9.9}
SUBJ = {s: BASE[s] + D[s] for s in BASE}


def test_paired_differences_sorted_and_missing_counted():
    subj = {3: 4.0, 1: 2.0, 2: float("nan"), 5: 1.0}
    base = {1: 1.0, 2: 1.0, 3: 1.0, 4: 1.0}
    d, n_missing = paired_differences(subj, base)
    np.testing.assert_allclose(d, [1.0, 3.0])  # seeds 1, 3 in order
    assert n_missing == 3  # seed 2 (NaN), 4 (subject failed), 5 (baseline failed)


def test_t_interval_matches_scipy():
    lo, hi, method = mean_ci(D)
    assert method == "t"
    half = st.t.ppf(0.975, 4) * D.std(ddof=1) / math.sqrt(5)
    assert lo == pytest.approx(D.mean() - half, rel=1e-12)
    assert hi == pytest.approx(D.mean() + half, rel=1e-12)
    ref = st.t.interval(0.95, 4, loc=D.mean(), scale=st.sem(D))
    assert (lo, hi) == pytest.approx(ref, rel=1e-12)
    # hand: mean 0.9, var 0.66/4 = 0.165
    assert D.mean() == pytest.approx(0.9)
    lo90, hi90, _ = mean_ci(D, level=0.90, method="t")
    assert hi90 - lo90 < hi - lo


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
    assert c.ci_method == "t"
    assert c.verdict == "supported"
    assert compare(SUBJ, BASE, "lower").verdict == "contradicted"


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
    ("lo", "hi", "higher", "lower"),
    [
        (0.1, 0.5, "supported", "contradicted"),
        (-0.5, -0.1, "contradicted", "supported"),
        (-0.1, 0.5, "inconclusive", "inconclusive"),
        (0.0, 0.5, "inconclusive", "inconclusive"),
        (float("nan"), float("nan"), "inconclusive", "inconclusive"),
    ],
)
def test_verdict_labels(lo, hi, higher, lower):
    assert verdict(lo, hi, "higher") == higher
    assert verdict(lo, hi, "lower") == lower
    assert higher in VERDICTS


def test_bad_direction_raises():
    with pytest.raises(ValueError):
        verdict(0.1, 0.2, "up")
    with pytest.raises(ValueError):
        compare(SUBJ, BASE, "greater")
    with pytest.raises(ValueError):
        mean_ci(D, method="bca")


def test_bootstrap_at_n10_deterministic():
    rng = np.random.default_rng(123)
    d = rng.normal(0.5, 1.0, size=10)
    lo, hi, method = mean_ci(d)
    assert method == "bootstrap"
    assert (lo, hi, method) == mean_ci(d)  # same seed -> same numbers
    assert mean_ci(d, seed=1)[:2] != (lo, hi)
    assert lo < d.mean() < hi
    tlo, thi, _ = mean_ci(d, method="t")
    assert lo == pytest.approx(tlo, abs=0.3) and hi == pytest.approx(thi, abs=0.3)
    assert mean_ci(d[:9])[2] == "t"
    subj = {s: float(v) for s, v in enumerate(d)}
    base = {s: 0.0 for s in range(10)}
    c1, c2 = compare(subj, base, "higher"), compare(subj, base, "higher")
    assert c1.ci_method == "bootstrap" and c1 == c2


def test_degenerate_cases():
    assert all(math.isnan(x) for x in mean_ci(np.array([1.0]))[:2])
    assert mean_ci(np.array([0.3, 0.3, 0.3]))[:2] == (0.3, 0.3)
    one = compare({0: 2.0}, {0: 1.0}, "higher")
    assert one.n == 1 and math.isnan(one.effect_size) and math.isnan(one.p_t)
    assert math.isnan(one.p_wilcoxon) and one.verdict == "inconclusive"
    zero = compare({0: 1.0, 1: 2.0, 2: 3.0}, {0: 1.0, 1: 2.0, 2: 3.0}, "higher")
    assert zero.effect_size == 0.0 and zero.p_wilcoxon == 1.0 and zero.p_t == 1.0
    assert zero.verdict == "inconclusive"
    const = compare({0: 2.0, 1: 3.0}, {0: 1.0, 1: 2.0}, "lower")
    assert const.effect_size == math.inf and const.verdict == "contradicted"
    empty = compare({}, {0: 1.0}, "higher")
    assert empty.n == 0 and empty.n_missing == 1 and math.isnan(empty.mean_diff)


def test_compare_all_holm_and_overall_line():
    better = {s: v - 1.0 for s, v in SUBJ.items()}  # baseline below the subject
    worse = {s: v + 2.0 for s, v in SUBJ.items()}  # baseline above the subject
    noisy = {s: SUBJ[s] + (0.5 if s % 2 else -0.5) for s in SUBJ}
    partial = {s: BASE[s] - 1.0 for s in (0, 1, 2)}  # seeds 3, 4 failed
    comps = compare_all(
        SUBJ, {"a": better, "b": worse, "c": noisy, "d": partial}, "higher"
    )
    assert [c.baseline for c in comps] == ["a", "b", "c", "d"]
    assert [c.verdict for c in comps] == [
        "supported",
        "contradicted",
        "inconclusive",
        "supported",
    ]
    np.testing.assert_allclose([c.p_holm for c in comps], holm([c.p_t for c in comps]))
    assert comps[3].n == 3 and comps[3].n_missing == 2
    line = overall_line(comps)
    assert line.startswith(
        "supported against 2 of 4 baselines, contradicted against 1, inconclusive against 1"
    )
    assert "2 seed values missing" in line
    assert overall_line(comps[:1]) == (
        "supported against 1 of 1 baseline, contradicted against 0, inconclusive against 0"
    )


def test_comparisons_frame_columns():
    comps = compare_all(SUBJ, {"x": BASE}, "higher")
    frame = comparisons_frame(comps)
    assert list(frame.columns) == [f.name for f in fields(Comparison)]
    assert len(frame) == 1 and frame.loc[0, "verdict"] == "supported"
    assert list(comparisons_frame([]).columns) == list(frame.columns)


def _tidy() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    offsets = {"infomax": 0.0, "weak": -0.2, "strong": 0.2}
    for dataset in ("mnist", "cifar10"):
        for method, off in offsets.items():
            for seed in range(5):
                value = 0.7 + off + 0.01 * rng.standard_normal()
                rows.append((dataset, 64, method, seed, "accuracy", value))
                rows.append((dataset, 64, method, seed, "loss", -value))
    df = pd.DataFrame(
        rows, columns=["dataset", "width", "method", "seed", "metric", "value"]
    )
    df["probe_mode"] = "linear"
    # one failed job: weak/mnist/seed 4 produced NaN; strong/cifar10/seed 3 never ran
    df.loc[
        (df.dataset == "mnist") & (df.method == "weak") & (df.seed == 4), "value"
    ] = np.nan
    drop = (df.dataset == "cifar10") & (df.method == "strong") & (df.seed == 3)
    return df[~drop].reset_index(drop=True)


def test_verdict_from_tidy():
    out = verdict_from_tidy(
        _tidy(), "accuracy", "infomax", "higher", extra_filter={"probe_mode": "linear"}
    )
    assert list(out.columns[:2]) == ["dataset", "width"]
    assert len(out) == 4
    got = {
        (r.dataset, r.baseline): (r.verdict, r.n, r.n_missing) for r in out.itertuples()
    }
    assert got[("mnist", "weak")] == ("supported", 4, 1)
    assert got[("mnist", "strong")] == ("contradicted", 5, 0)
    assert got[("cifar10", "weak")] == ("supported", 5, 0)
    assert got[("cifar10", "strong")] == ("contradicted", 4, 1)
    lower = verdict_from_tidy(
        _tidy(), "loss", "infomax", "lower", by=("dataset", "absent")
    )
    assert list(lower.columns[:1]) == ["dataset"] and "absent" not in lower.columns
    assert sorted(lower.verdict) == [
        "contradicted",
        "contradicted",
        "supported",
        "supported",
    ]
    mnist = _tidy().query("dataset == 'mnist'")
    assert (
        verdict_from_tidy(mnist, "accuracy", "infomax", "higher", by=()).shape[0] == 2
    )
    with pytest.raises(ValueError):
        verdict_from_tidy(_tidy(), "accuracy", "infomax", "up")
    # two rows per (method, seed) once dataset is not a group column
    with pytest.raises(ValueError):
        verdict_from_tidy(_tidy(), "accuracy", "infomax", "higher", by=("width",))
