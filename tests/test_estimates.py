"""Tests of bench.evaluate.estimates: known answers, and the planted controls of the scaling fits and
of TOST (protocol 11.5.7, 11.5.8). Every planted curve is drawn here, with a fixed generator."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from bench.evaluate.equivalence import tost, tost_paired
from bench.evaluate.estimates import (
    WORDS,
    Estimate,
    differences,
    estimate,
    halvings,
    log2_slopes,
    per_doubling,
    rank_interval,
    seed_grid,
    window,
)
from bench.evaluate.inference import holm, t_interval
from bench.evaluate.scaling_law import fit_power_law, power_law, readings

N1D = np.array([1_000, 4_000, 16_000, 64_000, 256_000], dtype=float)  # mnist1d's N axis (factor 4)
N5K = np.array([437, 875, 1_750, 3_500], dtype=float)  # mnist5k's nested subsets (doublings)


def _table(xs: np.ndarray, curves: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A tidy (seed, x, y) table from a seeds x points matrix, rows shuffled (order must not matter)."""
    s, p = curves.shape
    seed = np.repeat(np.arange(s), p)
    x = np.tile(xs, s)
    y = curves.ravel()
    perm = np.random.default_rng(99).permutation(seed.size)
    return seed[perm], x[perm], y[perm]


def _planted(xs: np.ndarray, seeds: int = 5, sd: float = 5e-4, rng: int = 0) -> np.ndarray:
    """e = 0.1 + 0.5 N^-0.3 plus Gaussian noise of sd ``sd``, one row per seed."""
    g = np.random.default_rng(rng)
    return 0.1 + 0.5 * xs**-0.3 + g.normal(0.0, sd, size=(seeds, xs.size))


def _flat(xs: np.ndarray, seeds: int = 5, rng: int = 1) -> np.ndarray:
    """A curve that does not move with N: e = 0.2 plus noise."""
    return 0.2 + np.random.default_rng(rng).normal(0.0, 2e-3, size=(seeds, xs.size))


# --- the grid and the slopes ---------------------------------------------------------------------


def test_seed_grid_pivots_and_refuses_duplicates():
    seeds, xs, Y = seed_grid([2, 1, 1, 2, 1], [4, 8, 4, 8, 16], [0.4, 0.3, 0.5, 0.2, 0.1])
    assert seeds == [1, 2] and xs.tolist() == [4, 8, 16]
    np.testing.assert_array_equal(Y, [[0.5, 0.3, 0.1], [0.4, 0.2, np.nan]])
    with pytest.raises(ValueError, match="twice"):
        seed_grid([1, 1], [4, 4], [0.1, 0.2])
    with pytest.raises(ValueError, match="> 0"):
        seed_grid([1, 1], [0, 4], [0.1, 0.2])


def test_window_counts_doublings_not_points():
    assert window(N5K, 2).tolist() == [False, True, True, True]  # the last three points
    assert window(N1D, 2).tolist() == [False, False, False, True, True]  # 64k..256k: two doublings
    assert window(N1D).all()
    with pytest.raises(ValueError, match="grid point"):
        window(N1D, 1)  # 128k..256k holds only 256k


def test_halvings_known_answer():
    """e = e0 * x^-b exactly (b halvings per doubling); b_end reads the end of a curve that bends."""
    b_true = np.array([0.5, 0.7, 0.6])
    E = 0.8 * N5K[None, :] ** -b_true[:, None]
    b = halvings(*_table(N5K, E))
    np.testing.assert_allclose(dict(b.per_seed)[1], 0.7, rtol=1e-12)
    assert b.mean == pytest.approx(0.6, rel=1e-12)
    assert (b.ci_low, b.ci_high) == pytest.approx(t_interval(b_true)[1:], rel=1e-9)
    # halving per doubling up to 875, flat after it: b over all points is between, b_end is 0
    bent = np.array([[0.4, 0.2, 0.2, 0.2], [0.8, 0.4, 0.4, 0.4]])
    assert halvings(*_table(N5K, bent), doublings=2).mean == pytest.approx(0.0, abs=1e-12)
    assert 0.2 < halvings(*_table(N5K, bent)).mean < 1.0


def test_halvings_counts_missing_and_nonpositive_seeds():
    E = 0.8 * np.tile(N5K, (4, 1)) ** -0.5
    E[1, 0] = np.nan  # outside the b_end window: only b loses the seed
    E[2, 3] = 0.0  # an error of 0 has no logarithm
    seed, x, y = _table(N5K, E)
    keep = ~((seed == 3) & (x == N5K[2]))  # seed 3 never ran 1,750
    b = halvings(seed[keep], x[keep], y[keep])
    b_end = halvings(seed[keep], x[keep], y[keep], doublings=2)
    assert (b.n, b.n_missing) == (1, 3)
    assert (b_end.n, b_end.n_missing) == (2, 2)
    assert [s for s, _ in b_end.per_seed] == [0, 1]


def test_log2_slopes_matches_polyfit_and_is_vectorised():
    g = np.random.default_rng(3)
    Y = g.normal(size=(6, N1D.size))
    ref = [np.polyfit(np.log2(N1D), row, 1)[0] for row in Y]
    np.testing.assert_allclose(log2_slopes(N1D, Y), ref, rtol=1e-10)


def test_per_doubling_in_accuracy_units():
    ks = np.array([16.0, 32, 64, 128, 256])
    acc = 0.6 + np.array([[0.03], [0.01]]) * np.log2(ks)[None, :]
    e = per_doubling(*_table(ks, acc))
    assert sorted(v for _, v in e.per_seed) == pytest.approx([0.01, 0.03], rel=1e-10)
    assert e.mean == pytest.approx(0.02, rel=1e-10)


def test_estimate_works_on_a_tensor():
    torch = pytest.importorskip("torch")
    e = estimate([0, 1, 2], torch.tensor([1.0, 2.0, float("nan")]))
    assert (e.n, e.n_missing, e.mean) == (2, 1, 1.5)


# --- planted scaling controls (11.5.7) ------------------------------------------------------------


def test_planted_power_law_recovers_c_and_extrapolates():
    fit = fit_power_law(*_table(N1D, _planted(N1D)))
    assert fit.c.n == 5 and fit.c.covers(0.3)
    assert fit.c.ci_high - fit.c.ci_low < 0.1  # an interval that covers because it is huge is no recovery
    assert fit.e_inf.covers(0.1)
    true_end = 0.1 + 0.5 * N1D[-1] ** -0.3
    assert abs(fit.extrapolation_error.mean) < 2e-3 and fit.abs_extrapolation_error.mean < 2e-3
    for _, (e_inf, a, c) in fit.params:  # parameters in N's own units
        assert power_law(N1D[-1], e_inf, a, c) == pytest.approx(true_end, abs=3e-3)


def test_power_law_fit_is_wrong_for_a_wrong_curve():
    """The same check fails when the truth is another c: the interval is not just wide enough."""
    E = 0.1 + 0.5 * N1D**-0.6 + np.random.default_rng(0).normal(0.0, 5e-4, size=(5, N1D.size))
    fit = fit_power_law(*_table(N1D, E))
    assert not fit.c.covers(0.3)


def test_held_out_point_never_used_in_the_fit():
    E = _planted(N1D)
    base = fit_power_law(*_table(N1D, E))
    assert base.held_out == N1D[-1] and base.fit_points == tuple(N1D[:-1])
    for wild in (1e3, -5.0, 0.0, np.nan):
        F = E.copy()
        F[:, -1] = wild
        moved = fit_power_law(*_table(N1D, F))
        assert moved.params == base.params  # bit for bit
        assert moved.c == base.c and moved.e_inf == base.e_inf and moved.a == base.a
    assert moved.extrapolation_error.n == 0  # the held-out point is what the score reads
    F = E.copy()
    F[:, -2] += 0.05  # a fitting point does move the fit
    assert fit_power_law(*_table(N1D, F)).params != base.params


def test_power_law_needs_a_held_out_point():
    with pytest.raises(ValueError, match=">= 4"):
        fit_power_law(*_table(N1D[:3], _planted(N1D[:3])))


def test_flat_curve_covers_zero_and_does_not_read_still_scaling():
    flat = _table(N1D, _flat(N1D))
    b, b_end = halvings(*flat), halvings(*flat, doublings=2)
    assert b.covers(0.0) and b_end.covers(0.0)
    scaling = _table(N1D, _planted(N1D))
    s_end = halvings(*scaling, doublings=2)
    assert s_end.ci_low > 0  # the planted power law still halves its error
    words = readings({"flat": b_end, "scaling": s_end})
    assert words["flat"].word != "still scaling"
    assert words["flat"].word == "stops"  # it stops where the other still scales
    assert words["scaling"].word == "still scaling"
    assert str(words["scaling"]) == "still scaling"


# --- the reading words ----------------------------------------------------------------------------


def _est(mean: float, low: float, high: float) -> Estimate:
    return Estimate(5, mean, low, high, 0.95, 0)


def test_reading_words():
    b = {
        "infomax": _est(0.02, -0.01, 0.05),
        "ae": _est(0.03, 0.01, 0.05),
        "pca": _est(0.25, 0.20, 0.30),
        "raw": _est(0.0, -0.02, 0.02),
        "odd": _est(-0.3, -0.4, -0.2),
        "one": Estimate(1, 0.1, math.nan, math.nan, 0.95, 4),
    }
    r = readings(b, references=["ae", "pca"])
    assert r["infomax"].word == "stops" and r["infomax"].lands_with == ("ae", "raw")
    assert r["ae"].word == "still scaling" and str(r["ae"]) == "still scaling (lands with infomax)"
    assert r["raw"].word == "stops"
    assert r["odd"].word == "undetermined" and r["one"].word == "undetermined"
    assert all(x.word in WORDS for x in r.values())
    # against every method (raw's flat curve included) no one stops; infomax lands with ae and raw
    r_all = readings(b)
    assert r_all["infomax"].word == "lands with" and str(r_all["infomax"]) == "lands with ae, raw"
    # g shrinking with K takes "still scaling" away
    shrink = readings(b, references=["pca"], gain_slope={"ae": _est(-0.02, -0.03, -0.01)})
    assert shrink["ae"].word != "still scaling"
    with pytest.raises(ValueError, match="references"):
        readings(b, references=["vicreg"])


# --- differences, Holm, rank -----------------------------------------------------------------------


def _seeds(values) -> dict[int, float]:
    return dict(enumerate(np.asarray(values, float).tolist()))


def test_differences_adjusted_intervals_wider_and_equal_for_one():
    g = np.random.default_rng(5)
    subj = _seeds(0.5 + g.normal(0, 0.05, 10))
    bases = {k: _seeds(0.5 + shift + g.normal(0, 0.05, 10)) for k, shift in (("ae", -0.1), ("pca", 0.0), ("ica", 0.2))}
    single = differences(subj, {"ae": bases["ae"]})[0]
    d, _ = (np.array(list(subj.values())) - np.array(list(bases["ae"].values()))), None
    assert (single.mean_diff, single.ci_low, single.ci_high) == pytest.approx(t_interval(d), rel=1e-12)
    assert single.level == 0.95 and single.m == 1 and single.p_holm == single.p_t
    assert single.p_t == pytest.approx(st.ttest_1samp(d, 0).pvalue, rel=1e-12)
    fam = differences(subj, bases)
    assert [c.baseline for c in fam] == ["ae", "pca", "ica"] and all(c.m == 3 for c in fam)
    for c in fam:
        _, lo, hi = t_interval(np.array(list(subj.values())) - np.array(list(bases[c.baseline].values())))
        assert c.ci_low < lo and c.ci_high > hi  # wider than the unadjusted interval
        assert c.level == pytest.approx(1 - 0.05 / 3)
    np.testing.assert_allclose([c.p_holm for c in fam], holm([c.p_t for c in fam]))
    assert all(c.p_holm >= c.p_t for c in fam)


def test_differences_count_unpaired_seeds():
    fam = differences({0: 1.0, 1: 2.0, 2: 1.5}, {"a": {0: 0.5, 1: 1.0, 3: 2.0}, "b": {0: 0.2}})
    assert (fam[0].n, fam[0].n_missing, fam[0].m) == (2, 2, 1)  # b's single seed has no interval
    assert fam[1].n == 1 and math.isnan(fam[1].ci_low)


def test_rank_interval():
    g = np.random.default_rng(7)
    far = {k: _seeds(mu + g.normal(0, 0.01, 10)) for k, mu in (("infomax", 0.3), ("ae", 0.5), ("pca", 0.1))}
    r = rank_interval(far, "infomax")
    assert (r.rank, r.ci_low, r.ci_high, r.n_methods, r.n_seeds) == (2, 2, 2, 3, 10)
    assert rank_interval(far, "infomax", higher_is_better=False).rank == 2
    assert rank_interval(far, "pca", higher_is_better=False).rank == 1
    own = 0.3 + g.normal(0, 0.05, 10)
    # ae: the same values on other seeds, 0.001 higher: a near tie whose order a resample decides
    near = {"infomax": _seeds(own), "ae": _seeds(own[::-1] + 0.001), "pca": _seeds(0.1 + g.normal(0, 0.05, 10))}
    rn = rank_interval(near, "infomax")
    assert (rn.rank, rn.ci_low, rn.ci_high) == (2, 1, 2)  # tied with ae, always above pca
    assert rank_interval(near, "infomax") == rn  # a fixed resampling seed
    gap = {**near, "ae": {k: v for k, v in near["ae"].items() if k != 4}}
    assert (rank_interval(gap, "infomax").n_seeds, rank_interval(gap, "infomax").n_dropped) == (9, 1)
    with pytest.raises(ValueError, match="ranked"):
        rank_interval(far, "vicreg")


# --- TOST (11.5.8) -----------------------------------------------------------------------------------


def test_tost_matches_two_one_sided_scipy_tests():
    d = np.array([0.004, -0.002, 0.006, 0.001, -0.003, 0.002, 0.005, -0.001, 0.000, 0.003])
    r = tost(d, 0.01)
    assert r.p_lower == pytest.approx(st.ttest_1samp(d, -0.01, alternative="greater").pvalue, rel=1e-10)
    assert r.p_upper == pytest.approx(st.ttest_1samp(d, 0.01, alternative="less").pvalue, rel=1e-10)
    assert r.p_tost == max(r.p_lower, r.p_upper)
    assert (r.mean, r.ci_low, r.ci_high) == pytest.approx(t_interval(d, level=0.90), rel=1e-12)
    assert r.smallest_margin == pytest.approx(max(abs(r.ci_low), abs(r.ci_high)))
    # equivalence holds just above the smallest margin and not at it
    assert tost(d, r.smallest_margin * 1.001).result == "equivalent"
    assert tost(d, r.smallest_margin * 0.999).result != "equivalent"


def test_tost_planted_same_distribution_and_shift():
    """The subject against its own other seeds (two draws of 10 from one distribution) is
    equivalent within 1 point; a copy 2 points lower is not, and reads 'differs'."""
    g = np.random.default_rng(11)
    seeds = range(100, 110)
    a = {s: 0.85 + g.normal(0, 0.005) for s in seeds}
    b = {s: 0.85 + g.normal(0, 0.005) for s in seeds}
    same = tost_paired(a, b, margin=0.01)
    assert same.n == 10 and same.result == "equivalent"
    assert same.smallest_margin < 0.01
    shifted = tost_paired(a, {s: v - 0.02 for s, v in b.items()}, margin=0.01)
    assert shifted.result == "differs" and shifted.p_tost > 0.05
    assert shifted.smallest_margin > 0.02
    assert tost_paired(a, {s: v - 0.02 for s, v in b.items()}, margin=0.03).result == "equivalent"


def test_tost_undetermined_and_edges():
    wide = np.array([0.03, -0.02, 0.01, -0.025, 0.02])
    assert tost(wide, 0.01).result == "undetermined"  # neither within 1 point nor away from 0
    assert tost([0.005], 0.01).result == "undetermined"
    const = tost(np.full(10, 0.002), 0.01)  # t undefined: the exact sign test, 0.5^10 per side
    assert const.result == "equivalent" and const.p_tost == 0.5**10
    assert tost(np.full(3, 0.002), 0.01).result == "differs"  # 0.125 per side: not shown at n = 3
    with pytest.raises(ValueError, match="margin"):
        tost(wide, 0.0)
