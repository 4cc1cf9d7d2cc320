"""P3's planted controls (docs/protocol.md, planted controls, P3), on simulated curves with a known answer.

Seeds-as-noise curves: a seed's probe accuracy at width K is the true curve at P(K) plus a seed offset
and a per-point error; a *copy* of the subject is another draw of the same curve. One row's outcome
is read with the confirmatory rule for a single row: ``p_t < 0.05`` and the exact sign-flip
``p_perm < 0.05``, in the direction of mean d (``as predicted`` for d > 0, ``opposite``), else none.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ttest_1samp

from bench.evaluate import stats
from predictions.efficiency import curves as C
from predictions.efficiency import tables as T

KS = (16, 32, 64)
WIDTHS = (8, 16, 32, 64, 128)
P_S = {k: float(k * 785) for k in WIDTHS}  # the subject on mnist: K (D + 1)
DELTA = 0.01


def saturating(p):
    return 0.95 - 0.9 * np.power(p, -0.25)


def log_linear(g):
    """A curve gaining exactly ``g`` per doubling of P."""
    return lambda p: 0.5 + g * np.log2(np.asarray(p, float) / P_S[8])


def outcome(d) -> str:
    """The single-row rule: ``p_t`` and the exact sign-flip p both < 0.05, in mean d's direction."""
    d = np.asarray(d, float)
    if (
        ttest_1samp(d, 0.0).pvalue < 0.05 and stats.sign_flip_p(d) < 0.05
    ):  # bench.evaluate.stats' p_t (d is not constant)
        return T.direction_of(float(d.mean()), "higher")
    return "none"


def draw(curve, rng, seed_sd: float, point_sd: float) -> np.ndarray:
    """One seed's accuracies at ``WIDTHS``: the curve + a seed offset + per-point errors."""
    p = np.array([P_S[k] for k in WIDTHS])
    return curve(p) + seed_sd * rng.standard_normal() + point_sd * rng.standard_normal(p.size)


def copy_ds(curve, rng, n: int, factor: float, margin: float, seed_sd=0.005, point_sd=0.003) -> np.ndarray:
    """Per seed, the primary's d of the subject against an independent copy of itself read at factor x P."""
    p = np.array([P_S[k] for k in WIDTHS])
    out = []
    for _ in range(n):
        s, b = draw(curve, rng, seed_sd, point_sd), draw(curve, rng, seed_sd, point_sd)
        r = C.seed_primary(C.Curve(p, s), P_S, C.Curve(p, b), KS, factor)
        out.append(r["delta"] + margin)
    return np.array(out)


@pytest.mark.slow
def test_copies_at_the_same_p_with_margin_0_reach_an_outcome_in_at_most_5_percent():
    """(a) 1000 simulated rows of 10 seeds: the subject against a copy of itself at the same P."""
    rng = np.random.default_rng(20261207)
    got = [outcome(copy_ds(saturating, rng, 10, 1.0, 0.0, seed_sd=0.01, point_sd=0.005)) for _ in range(1000)]
    rate = np.mean([g != "none" for g in got])
    assert rate <= 0.05, rate
    assert 0.01 < rate  # the test is not dead: the rule does fire at its nominal rate under H0
    assert {"as predicted", "opposite"} <= set(got)  # both directions occur (a symmetric null)


@pytest.mark.parametrize("g", [0.0, 0.005, 0.02, 0.04])
def test_a_copy_under_the_primarys_rule_has_d_equal_to_delta_minus_its_gain_per_doubling(g):
    """(b) noiseless: d = delta - g exactly; with seed noise the mean d stays there."""
    curve = log_linear(g)
    p = np.array([P_S[k] for k in WIDTHS])
    r = C.seed_primary(C.Curve(p, curve(p)), P_S, C.Curve(p, curve(p)), KS, 2.0)
    assert r["delta"] + DELTA == pytest.approx(DELTA - g) and r["g"] == pytest.approx(g)
    d = copy_ds(curve, np.random.default_rng(1), 400, 2.0, DELTA)
    assert d.mean() == pytest.approx(DELTA - g, abs=0.0015)


@pytest.mark.parametrize(("g", "expected"), [(0.0, "as predicted"), (0.02, "opposite"), (0.04, "opposite")])
def test_a_copy_reads_opposite_when_its_gain_per_doubling_exceeds_delta(g, expected):
    """(b) at n = 10: a copy whose curve still gains more than delta per doubling reads opposite
    (it is not within delta of itself at twice its P); a saturated one passes (hence g_B beside d)."""
    rng = np.random.default_rng(7)
    got = [outcome(copy_ds(log_linear(g), rng, 10, 2.0, DELTA)) for _ in range(50)]
    assert np.mean([x == expected for x in got]) >= 0.9, got


def test_the_subjects_curve_shifted_by_two_in_p_gives_d_near_delta():
    """(c) B(P) = S(P / 2), B's grid off 2 P_S (the reading interpolates), seed noise: d near delta."""
    rng = np.random.default_rng(0)
    p_s = np.array([P_S[k] for k in WIDTHS])
    p_b = np.concatenate([[p_s[0]], p_s * 2 * 1.3])
    recs = []
    for seed in range(10):
        for m, p, acc in (("infomax", p_s, saturating(p_s)), ("shifted", p_b, saturating(p_b / 2))):
            a = acc + 0.002 * rng.standard_normal(acc.size)
            recs += [
                {"method": m, "width": k, "seed": seed, "params": pi, "acc": ai}
                for k, pi, ai in zip((4, *WIDTHS) if m == "shifted" else WIDTHS, p, a, strict=False)
            ]
    rows = C.delta_rows(pd.DataFrame(recs), "infomax", KS, DELTA)
    d = np.array([r["value"] for r in rows if r["metric"] == "delta_2p"])
    assert d.shape == (10,) and abs(d.mean() - DELTA) < 0.003
    m = [r for r in rows if r["metric"] == "multiplier" and r["width"] in KS]
    assert all(r["censored"] == "" for r in m)
    assert np.median([r["value"] for r in m]) == pytest.approx(2.0, rel=0.1)


def test_censored_multipliers_are_reported_as_such_with_no_interval():
    p_s = np.array([P_S[k] for k in WIDTHS])
    curves = {
        "infomax": (p_s, saturating(p_s)),
        "low": (p_s, np.full(5, 0.2)),  # never reaches the subject: right-censored, m > P_max / P_S(32) = 4
        "high": (p_s * 3, np.full(5, 0.99)),
    }  # its smallest model beats it: m <= 3 P_S(8) / P_S(32) = 0.75
    recs = [
        {"method": m, "width": k, "seed": s, "params": pi, "acc": ai}
        for m, (p, a) in curves.items()
        for s in range(3)
        for k, pi, ai in zip(WIDTHS, p, a, strict=True)
    ]
    df = pd.DataFrame(C.delta_rows(pd.DataFrame(recs), "infomax", KS, DELTA)).assign(dataset="mnist5k", study="main")
    tab = T.multiplier_table(df, widths=[32]).set_index("baseline")
    assert tab.loc["low", "n_right"] == 3 and tab.loc["low", "n_uncensored"] == 0
    assert tab.loc["low", "right: m >"] == "4" and tab.loc["low", "95% CI"].startswith("n/a")
    assert tab.loc["high", "n_left"] == 3 and tab.loc["high", "left: m <="] == "0.75"
    assert tab.loc["high", "95% CI"].startswith("n/a")


def test_the_reports_calibration_table_shows_n_mean_d_interval_and_direction_only():
    rng = np.random.default_rng(3)
    p = np.array([P_S[k] for k in WIDTHS])
    recs = [
        {"method": "infomax", "width": k, "seed": s, "params": pi, "acc": ai}
        for s in range(10)
        for k, pi, ai in zip(WIDTHS, p, draw(log_linear(0.03), rng, 0.003, 0.002), strict=True)
    ]
    calib = T.self_copy_deltas(pd.DataFrame(recs), "infomax", KS, DELTA).set_index("factor")
    assert list(calib.columns) == ["margin", "n", "mean d", "ci_low", "ci_high", "direction", "g (copy)", "delta - g"]
    assert calib.loc[1.0, "n"] == 10 and abs(calib.loc[1.0, "mean d"]) < 0.01
    assert calib.loc[2.0, "mean d"] == pytest.approx(DELTA - 0.03, abs=0.005)
    assert calib.loc[2.0, "delta - g"] == pytest.approx(DELTA - 0.03, abs=0.002)
    assert calib.loc[2.0, "direction"] == "opposite"
