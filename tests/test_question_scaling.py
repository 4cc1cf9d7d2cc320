"""The open question ``scaling``'s view (docs/protocol.md 11.1) on planted tidy tables (no training): the reading
needs g not shrinking with K, the 2x-steps compute check, the held-out power law, the subject - baseline
differences and the subject's rank, each recovered from a table whose answer is known."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from bench.protocol import SUBJECT
from questions.scaling import estimands as E
from questions.scaling import tables as T
from questions.scaling.view import ScalingView

N_X = (1024, 4096, 16384, 65536, 262144)
K_X = (16, 32, 64, 128, 256)
SEEDS = range(5)
B = {"infomax": 0.5, "ae": 0.7, "pca": 0.3, "random": 0.0, "raw": 0.0}  # planted error halvings per doubling


def _row(axis, x_col, x, method, seed, metric, value):
    return {"axis": axis, x_col: x, "method": method, "seed": seed, "metric": metric, "value": value}


def n_rows(b=B, axis="n_mnist1d", xs=N_X, noise=0.01, seed=0):
    """Test error e = e0 * (N / N_0)^-b per method with multiplicative noise, and its accuracy 1 - e."""
    rng = np.random.default_rng(seed)
    rows = []
    for m, bm in b.items():
        for s in SEEDS:
            for x in xs:
                e = 0.5 * (x / xs[0]) ** -bm * math.exp(noise * rng.standard_normal())
                rows += [_row(axis, "n", x, m, s, "test_error", e), _row(axis, "n", x, m, s, "test_acc", 1 - e)]
    return rows


def k_rows(gain, methods=("infomax", "pca"), noise=0.002, seed=1):
    """Accuracy along K: random = .6 + .03 log2(K/16) + a seed effect, a method = random + gain(m, K) + noise;
    seconds per sample = 1e-6 K (a log-log slope of 1)."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in SEEDS:
        for k in K_X:
            ref = 0.6 + 0.03 * math.log2(k / 16) + 0.01 * rng.standard_normal()
            rows.append(_row("k", "width", k, "random", s, "test_acc", ref))
            for m in methods:
                rows.append(_row("k", "width", k, m, s, "test_acc", ref + gain(m, k) + noise * rng.standard_normal()))
            for m in ("random", *methods):
                sec = 1e-6 * k * math.exp(0.01 * rng.standard_normal())
                rows.append(_row("k", "width", k, m, s, "seconds_per_sample", sec))
    return rows


def steady(m, k):
    return 0.10


def shrinking(m, k):
    return 0.10 - 0.02 * math.log2(k / 16)


def rerun_rows(base, factor, methods=("infomax", "pca"), noise=0.002, seed=2):
    """The largest mnist1d N again at 2x steps: e_2x = e_1x * factor(m) + noise, paired by seed."""
    rng = np.random.default_rng(seed)
    n = max(N_X)
    rows = []
    for r in base:
        if r["axis"] == "n_mnist1d" and r["n"] == n and r["metric"] == "test_error" and r["method"] in methods:
            e = r["value"] * factor(r["method"]) + noise * r["value"] * rng.standard_normal()
            rows.append(_row("n_mnist1d_2x", "n", n, r["method"], r["seed"], "test_error", e))
    return rows


def table(view_tables, start: str) -> pd.DataFrame:
    found = [t for t in view_tables if t.title.startswith(start)]
    assert len(found) == 1, [t.title for t in view_tables]
    return found[0].frame


def interval(cell: str) -> tuple[float, float]:
    lo, hi = re.fullmatch(r"\[(\S+), (\S+)\]", cell).groups()
    return float(lo), float(hi)


# --- the reading: "still scaling" needs g not shrinking with K -------------------------------------------------


def test_a_steady_gain_reads_still_scaling():
    df = pd.DataFrame(n_rows() + k_rows(steady))
    a = ScalingView().answer(df)
    assert a.startswith("InfoMax still scaling: b_end = "), a
    assert "does not shrink with K" in a and "compute-limited" not in a


def test_a_shrinking_gain_blocks_still_scaling():
    df = pd.DataFrame(n_rows() + k_rows(shrinking))
    slope = E.gain_slopes(df)[SUBJECT]
    assert slope.ci_high < 0 and slope.mean == pytest.approx(-0.02, abs=0.002)  # the planted slope
    a = ScalingView().answer(df)
    assert "still scaling" not in a and "its gain over random shrinks with K" in a, a
    assert E.slopes(df, "n_mnist1d", 2)[SUBJECT].ci_low > 0  # b_end alone would have said "still scaling"
    g = table(ScalingView().tables(df), "Gain over random")
    assert list(g["method"]) == ["infomax", "pca"] and set(g["shrinks with K"]) == {"yes"}
    assert g.loc[0, "g slope/doubling of K"] == pytest.approx(-2.0, abs=0.2)  # points


def test_without_the_k_axis_a_positive_b_end_is_undetermined():
    a = ScalingView().answer(pd.DataFrame(n_rows()))
    assert a.startswith("undetermined:") and "not measured" in a, a


def test_a_subject_that_stops_where_the_learners_scale():
    df = pd.DataFrame(n_rows(b={**B, "infomax": 0.0}) + k_rows(steady))
    assert ScalingView().answer(df).startswith("InfoMax stops: b_end = ")
    assert ScalingView().answer(pd.DataFrame(k_rows(steady))).startswith("undetermined: the subject has no")


# --- the compute check -------------------------------------------------------------------------------------------


def test_a_compute_limited_largest_point_is_reported():
    base = n_rows() + k_rows(steady)
    moved = pd.DataFrame(base + rerun_rows(base, lambda m: 0.8 if m == SUBJECT else 1.0))
    c = table(ScalingView().tables(moved), "Compute check")
    assert dict(zip(c["method"], c["reading"], strict=True)) == {
        "infomax": "compute-limited",
        "pca": "not compute-limited",
    }
    assert c.loc[c["method"] == "infomax", "N"].item() == max(N_X)
    a = ScalingView().answer(moved)
    assert "largest mnist1d N (262,144) is compute-limited" in a, a

    still = pd.DataFrame(base + rerun_rows(base, lambda m: 1.0))
    assert "compute-limited" not in ScalingView().answer(still)
    assert set(table(ScalingView().tables(still), "Compute check")["reading"]) == {"not compute-limited"}


# --- the held-out power law -------------------------------------------------------------------------------------


def power_rows(c=0.4, top=None, seed=3):
    rng = np.random.default_rng(seed)
    rows = []
    for s in SEEDS:
        for x in N_X:
            e = 0.05 + 3.0 * x**-c + 0.0005 * rng.standard_normal()
            if top is not None and x == max(N_X):
                e = top
            rows.append(_row("n_mnist1d", "n", x, SUBJECT, s, "test_error", e))
    return rows


def test_the_power_law_recovers_c_and_never_fits_the_largest_n():
    fit = table(ScalingView().tables(pd.DataFrame(power_rows())), "Power law")
    lo, hi = interval(fit.loc[0, "c 95% CI"])
    assert lo <= 0.4 <= hi and hi - lo < 0.2
    assert fit.loc[0, "held-out N"] == max(N_X) and "262144" not in fit.loc[0, "fit N"]
    # a wild value at the largest N changes the extrapolation error, never the fitted parameters
    wild = table(ScalingView().tables(pd.DataFrame(power_rows(top=0.9))), "Power law")
    for col in ("e_inf", "a", "c"):
        assert wild.loc[0, col] == pytest.approx(fit.loc[0, col], rel=1e-9)
    assert wild.loc[0, "extrapolation error"] < -0.8 < -abs(fit.loc[0, "extrapolation error"])


def test_an_axis_with_under_four_n_has_no_power_law():
    df = pd.DataFrame(n_rows(xs=N_X[:3]))
    assert not [t for t in ScalingView().tables(df) if t.title.startswith("Power law")]


# --- differences and rank ---------------------------------------------------------------------------------------


def test_one_difference_row_per_baseline_with_wider_adjusted_intervals():
    d = table(
        ScalingView().tables(pd.DataFrame(n_rows())),
        "infomax - baseline in error halvings per doubling of pretraining N (mnist1d",
    )
    assert sorted(d["baseline"]) == sorted(m for m in B if m != SUBJECT)
    for _, r in d.iterrows():
        for name in ("b", "b_end"):
            adj, alone = interval(r[f"{name} simultaneous CI"]), interval(r[f"{name} unadjusted 95% CI"])
            assert adj[0] < alone[0] and adj[1] > alone[1]
    planted = {m: B[SUBJECT] - b for m, b in B.items()}
    for _, r in d.iterrows():
        assert r["b diff"] == pytest.approx(planted[r["baseline"]], abs=0.02)
        assert r["b Holm p"] <= 1.0
    comps = E.b_differences(pd.DataFrame(n_rows()), "n_mnist1d")
    assert {c.adjusted.m for c in comps} == {len(B) - 1} and {c.alone.m for c in comps} == {1}


def test_the_rank_interval_contains_the_planted_rank():
    r = table(ScalingView().tables(pd.DataFrame(n_rows())), "infomax's rank in b_end")
    assert r.loc[0, "rank in b_end"] == 2  # ae 0.7 > infomax 0.5 > pca 0.3 > random, raw 0
    lo, hi = interval(r.loc[0, "95% bootstrap interval"])
    assert lo <= 2 <= hi and r.loc[0, "methods"] == len(B)
    reversed_ = pd.DataFrame(n_rows(b={**B, "infomax": 0.9}))
    assert E.subject_rank(reversed_).rank == 1


# --- the per-axis tables and figures --------------------------------------------------------------------------------


def test_points_per_doubling_beside_b_and_the_cost_slope():
    df = pd.DataFrame(n_rows() + k_rows(steady))
    tabs = ScalingView().tables(df)
    h = table(tabs, "Error halvings per doubling of pretraining N (mnist1d").set_index("method")
    assert h.loc["infomax", "b (all points)"] == pytest.approx(0.5, abs=0.01)
    assert h.loc["infomax", "points/doubling"] > 0 and h.loc["random", "points/doubling"] == pytest.approx(0, abs=0.5)
    assert table(tabs, "Mean test error by pretraining N (mnist1d").shape[0] == len(B)
    cost = table(tabs, "Cost in K").set_index("method")
    assert cost["log2 s/sample per doubling of K"].to_numpy() == pytest.approx(1.0, abs=0.02)


def test_figures_keep_error_curves_first():
    import matplotlib.pyplot as plt

    view = ScalingView()
    figs = view.figures(pd.DataFrame(n_rows() + k_rows(steady)), pd.DataFrame())
    assert view.main_figure == "error_curves" and [n for n, _ in figs] == ["error_curves", "gain_curves"]
    for _, f in figs:
        plt.close(f)
    assert T.tables(pd.DataFrame(columns=["metric", "value"])) == []


def test_the_batch_table_pairs_the_2k_rerun_with_the_k_axis():
    rows = k_rows(steady, methods=("infomax", "infomax_noem"))
    base = {(r["method"], r["seed"], r["width"]): r["value"] for r in rows if r["metric"] == "test_acc"}
    for (m, s, k), v in base.items():
        if m != "random" and k >= 128:
            drop = 0.05 if m == "infomax" else 0.0  # planted: only infomax loses 5 points at B' = 2K
            rows.append(_row("k_b2k", "width", k, m, s, "test_acc", v - drop) | {"batch_size": 2 * k})
    t = T.batch_table(pd.DataFrame(rows)).frame
    assert list(zip(t["K"], t["method"], t["B'"], strict=True)) == [
        (128, "infomax", 256),
        (128, "infomax_noem", 256),
        (256, "infomax", 512),
        (256, "infomax_noem", 512),
    ]
    assert np.allclose(t["acc(B') - acc(B), points"], [-5.0, 0.0, -5.0, 0.0])
    assert T.batch_table(pd.DataFrame(k_rows(steady))) is None  # no rerun, no table


def test_a_full_size_axis_gets_b_and_a_difference_table():
    rows = n_rows(axis="n_mnist", xs=(7500, 15000, 30000, 60000))
    tabs = {t.title for t in ScalingView().tables(pd.DataFrame(rows))}
    assert "Error halvings per doubling of pretraining N (mnist, equal steps)" in tabs
    assert "infomax - baseline in error halvings per doubling of pretraining N (mnist, equal steps)" in tabs
