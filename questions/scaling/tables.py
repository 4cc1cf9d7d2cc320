"""Open question ``scaling``, the tables (torch-free; the view's): b and points per doubling per axis, the mean
curves, subject - baseline differences in b, the subject's rank, the gain over ``random`` along K, the held-out
power law, the 2x-steps compute check and the cost slope in K. Estimates only: no verdict words (the
compute check's word says whether one point moved, not whether a prediction held)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.evaluate.estimates import Difference, Estimate
from bench.protocol import SUBJECT, Table
from questions.scaling import estimands as E


def ci(e: Estimate | Difference | None, scale: float = 1.0, digits: int = 3) -> str:
    """``[low, high]`` of ``e`` times ``scale``; ``(n = 1)`` without an interval, empty without an estimate."""
    if e is None or e.n == 0:
        return ""
    if not (np.isfinite(e.ci_low) and np.isfinite(e.ci_high)):
        return f"(n = {e.n})"
    return f"[{e.ci_low * scale:.{digits}f}, {e.ci_high * scale:.{digits}f}]"


def _mean(e: Estimate | None, scale: float = 1.0) -> float:
    return e.mean * scale if e is not None else np.nan


def halvings_table(df: pd.DataFrame, axis: str) -> Table | None:
    """b and b_end per method, and (secondary) points of test accuracy per doubling beside them."""
    b, b_end, pts = E.slopes(df, axis), E.slopes(df, axis, 2), E.acc_slopes(df, axis)
    rows = [
        {
            "method": m,
            "seeds": b[m].n,
            "b (all points)": b[m].mean,
            "b 95% CI": ci(b[m]),
            "b_end": _mean(b_end.get(m)),
            "b_end 95% CI": ci(b_end.get(m)),
            "points/doubling": _mean(pts.get(m), 100),
            "points 95% CI": ci(pts.get(m), 100, 2),
        }
        for m in sorted(b)
    ]
    if not rows:
        return None
    return Table(
        f"Error halvings per doubling of {E.AXES[axis][1]}",
        pd.DataFrame(rows),
        note="b: -slope of log2 test error on log2 x per seed; b_end: the same over the last two doublings; "
        "points/doubling: slope of test accuracy (x100) on log2 x over all points. 95% t-intervals over seeds.",
    )


def mean_error_table(df: pd.DataFrame, axis: str) -> Table | None:
    if E.curve(df, axis).empty:
        return None
    mean = (
        E.curve(df, axis).groupby(["method", "x"])["value"].mean().unstack("x").reset_index().rename_axis(None, axis=1)
    )
    return Table(f"Mean test error by {E.AXES[axis][1]}", mean)


def differences_table(df: pd.DataFrame, axis: str) -> Table | None:
    """Subject - baseline in b and b_end, one row per baseline: simultaneous and unadjusted intervals, Holm p."""
    parts = {"b": E.b_differences(df, axis), "b_end": E.b_differences(df, axis, 2)}
    if not parts["b"]:
        return None
    by_end = {c.adjusted.baseline: c for c in parts["b_end"]}
    rows = []
    for c in parts["b"]:
        row = {"baseline": c.adjusted.baseline, "paired seeds": c.adjusted.n}
        for name, cmp_ in (("b", c), ("b_end", by_end.get(c.adjusted.baseline))):
            d = cmp_.adjusted if cmp_ else None
            row[f"{name} diff"] = d.mean_diff if d else np.nan
            row[f"{name} simultaneous CI"] = ci(d)
            row[f"{name} unadjusted 95% CI"] = ci(cmp_.alone if cmp_ else None)
            row[f"{name} Holm p"] = d.p_holm if d else np.nan
        rows.append(row)
    m = parts["b"][0].adjusted.m
    return Table(
        f"{SUBJECT} - baseline in error halvings per doubling of {E.AXES[axis][1]}",
        pd.DataFrame(rows),
        note=f"Paired by seed. Simultaneous CI: each at 1 - 0.05/{m} (Bonferroni over the {m} baselines), so all "
        "cover together with probability >= 95%; an interval excluding 0 is also a Holm rejection. Holm p: "
        "step-down adjusted paired t-test p. Estimates, no verdict.",
    )


def rank_table(df: pd.DataFrame) -> Table | None:
    r = E.subject_rank(df)
    if r is None:
        return None
    row = {
        "method": r.method,
        "rank in b_end": r.rank,
        "95% bootstrap interval": f"[{r.ci_low}, {r.ci_high}]",
        "methods": r.n_methods,
        "seeds": r.n_seeds,
        "seeds dropped": r.n_dropped,
    }
    return Table(
        f"{SUBJECT}'s rank in b_end on {E.AXES['n_mnist1d'][1]}",
        pd.DataFrame([row]),
        note="1 = most error halvings per doubling over the last two doublings; ties share the best rank. "
        "Interval: percentile of the rank over 2,000 resamples of the seeds (the same resample for every method).",
    )


def gain_table(df: pd.DataFrame) -> Table | None:
    """g(K) = acc(method, K) - acc(random, K) per K, and its slope per doubling of K, in points."""
    per_k, slope = E.gains(df), E.gain_slopes(df)
    if not per_k:
        return None
    ks = sorted({k for v in per_k.values() for k in v})
    rows = []
    for m in sorted(per_k):
        row: dict = {"method": m, "seeds": max(e.n for e in per_k[m].values())}
        for k in ks:
            e = per_k[m].get(k)
            row[f"g at K={k:g}"] = f"{e.mean * 100:+.2f} {ci(e, 100, 2)}".strip() if e else ""
        s = slope.get(m)
        row["g slope/doubling of K"] = _mean(s, 100)
        row["slope 95% CI"] = ci(s, 100, 2)
        row["shrinks with K"] = "yes" if E.shrinks(s) else ("no" if s is not None else "")
        rows.append(row)
    return Table(
        f"Gain over {E.REFERENCE} at the same K (test accuracy points, mnist5k)",
        pd.DataFrame(rows),
        note=f"g = acc(method, K) - acc({E.REFERENCE}, K) paired by seed: mean [95% t-interval]. Slope: per seed, "
        "g on log2 K over every K, t-interval over seeds; 'shrinks': the interval lies below 0.",
    )


def power_law_table(df: pd.DataFrame, axis: str) -> Table | None:
    fits = E.power_laws(df, axis)
    if not fits:
        return None
    rows = []
    for m, f in sorted(fits.items()):
        rows.append(
            {
                "method": m,
                "seeds fitted": f.c.n,
                "fit N": ", ".join(f"{x:g}" for x in f.fit_points),
                "held-out N": f.held_out,
                "e_inf": f.e_inf.mean,
                "e_inf 95% CI": ci(f.e_inf, digits=4),
                "a": f.a.mean,
                "a 95% CI": _ci_g(f.a),
                "c": f.c.mean,
                "c 95% CI": ci(f.c),
                "extrapolation error": f.extrapolation_error.mean,
                "extrapolation 95% CI": ci(f.extrapolation_error, digits=4),
                "|extrapolation error|": f.abs_extrapolation_error.mean,
            }
        )
    return Table(
        f"Power law e(N) = e_inf + a N^-c on {E.AXES[axis][1]} (descriptive)",
        pd.DataFrame(rows),
        note="Fitted per seed by bounded least squares on every N but the largest; the largest N only scores the "
        "fit: extrapolation error = predicted - observed test error there. 95% t-intervals over seeds.",
    )


def _ci_g(e: Estimate) -> str:
    if e.n == 0 or not (np.isfinite(e.ci_low) and np.isfinite(e.ci_high)):
        return ci(e)
    return f"[{e.ci_low:.3g}, {e.ci_high:.3g}]"


def compute_table(df: pd.DataFrame) -> Table | None:
    checks = E.compute_check(df)
    if not checks:
        return None
    rows = [
        {
            "method": m,
            "N": c.n,
            "paired seeds": c.diff.n,
            "error 1x steps": c.e_1x.mean,
            "error 2x steps": c.e_2x.mean,
            "2x - 1x": c.diff.mean,
            "2x - 1x 95% CI": ci(c.diff, digits=4),
            "reading": c.word,
        }
        for m, c in sorted(checks.items())
    ]
    return Table(
        "Compute check: the largest mnist1d N at twice the steps",
        pd.DataFrame(rows),
        note="Test error at the same N trained for 1x and 2x the optimisation steps, paired by seed (t-interval). "
        "'compute-limited': the interval excludes 0, so the point moved with more steps and b_end there "
        "reads data and compute together.",
    )


def seconds_table(df: pd.DataFrame) -> Table | None:
    s = E.seconds_slopes(df)
    if not s:
        return None
    rows = [
        {"method": m, "seeds": e.n, "log2 s/sample per doubling of K": e.mean, "95% CI": ci(e)} for m, e in s.items()
    ]
    return Table(
        "Cost in K: log-log slope of training seconds per sample (mnist5k)",
        pd.DataFrame(rows).sort_values("method", ignore_index=True),
        note="Per seed, the slope of log2 seconds per sample seen on log2 K; 1 = cost linear in K. "
        "t-intervals over seeds. Wall-clock: shown beside the estimates, not read by the answer.",
    )


def batch_table(df: pd.DataFrame) -> Table | None:
    rows = [
        {"K": k, "method": m, "B'": b, "seeds": e.n, "acc(B') - acc(B), points": 100 * e.mean, "95% CI": ci(e, 100, 2)}
        for m, k, b, e in E.batch_effects(df)
    ]
    if not rows:
        return None
    return Table(
        "Batch sensitivity: the InfoMax pair at B' = 2K against the run's batch (mnist5k)",
        pd.DataFrame(rows),
        note="Where K >= B the batch correlation has rank < K, so TC has a floor (K^2/(B-1) - K). The pair is "
        "rerun at B' = max(B, 2K) with lambda_lse = B / B' and equal samples (the same epochs, fewer steps); "
        "paired by seed against the K axis. A large difference says the K axis's accuracy depends on the batch.",
    )


def tables(df: pd.DataFrame) -> list[Table]:
    """Every table of the view, in reading order: per axis b and the mean curves, then the comparisons."""
    out: list[Table | None] = []
    for axis in E.AXES:
        if E.present(df, axis):
            out += [halvings_table(df, axis), mean_error_table(df, axis)]
    out += [differences_table(df, axis) for axis in E.DIFF_AXES]
    out += [rank_table(df), gain_table(df), batch_table(df), seconds_table(df)]
    out += [power_law_table(df, axis) for axis in E.N_AXES]
    out.append(compute_table(df))
    return [t for t in out if t is not None]
