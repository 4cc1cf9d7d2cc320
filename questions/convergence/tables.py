"""Open question ``convergence``, the tables (torch-free; the view's): Delta_EM per axis and metric, divergence
per cell, r_EM and its lambda_lse sensitivity, (b)'s stability, (c)'s convergence and S matrices."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.evaluate import estimates
from bench.protocol import Table
from questions.convergence import estimands as E

DELTA_METRICS = {  # axis -> metrics of Delta_EM
    "n_mnist1d": ("test_acc", "kappa_10", "dead_fraction", "act_scale", "diverged"),
    "k": ("test_acc", "kappa_10", "dead_fraction", "act_scale", "diverged"),
    "steps": ("test_acc", "kappa_10", "dead_fraction", "act_scale", "diverged"),
    "ica": ("mcc", "dead_fraction", "act_scale", "diverged"),
}


def _ci(e, digits: int = 4) -> str:
    if e is None or e.n == 0:
        return ""
    if not (np.isfinite(e.ci_low) and np.isfinite(e.ci_high)):
        return f"(n = {e.n})"
    return f"[{e.ci_low:.{digits}f}, {e.ci_high:.{digits}f}]"


def delta_table(df: pd.DataFrame) -> Table | None:
    rows = []
    for axis, metrics in DELTA_METRICS.items():
        for metric in metrics:
            s = E.delta_summary(df, axis, metric)
            if s is None:
                continue
            t = s.tost
            rows.append(
                {
                    "axis": axis,
                    "metric": metric,
                    "points": len(s.xs),
                    "x first..last": f"{s.xs[0]:g}..{s.xs[-1]:g}",
                    "Delta first": s.per_x[0].mean,
                    "Delta last": s.last.mean,
                    "Delta last 95% CI": _ci(s.last),
                    "slope/doubling": s.slope.mean if s.slope else np.nan,
                    "slope 95% CI": _ci(s.slope),
                    "|Delta|_bc slope": s.magnitude_slope,
                    "trend": s.trend,
                    "TOST at last": f"{t.result} (margin {t.margin:g})" if t else "",
                    "smallest margin": t.smallest_margin if t else np.nan,
                }
            )
    if not rows:
        return None
    return Table(
        "Delta_EM = infomax - infomax_noem, paired by seed (metric units: accuracy 0.01 = 1 point)",
        pd.DataFrame(rows),
        note="slope: the signed per-seed slope of Delta on log2 x (primary; t-interval over seeds). |Delta|_bc: "
        "slope of sqrt(max(mean^2 - se^2, 0)) per doubling, a bias-corrected magnitude (point estimate). TOST "
        "at the largest x (90% interval inside +-margin); smallest margin: the least it could establish.",
    )


def divergence_table(df: pd.DataFrame) -> Table | None:
    df = E.columns(df)
    sel = df[df["metric"] == "diverged"]
    if sel.empty:
        return None
    rows = []
    for axis, (x, _) in E.AXES.items():
        a = sel[sel["axis"] == axis]
        for (xv, m), g in a.groupby([x, "method"]):
            rows.append({"axis": axis, "x": xv, "method": m, "jobs": len(g), "diverged": int(g["value"].sum())})
    failed = int((df["metric"] == "job_failed").sum())
    mfail = int((df["metric"] == "measure_failed").sum())
    return Table(
        "Divergence per cell (the EM pair): jobs that gave no code",
        pd.DataFrame(rows),
        note=f"The run holds {failed} job_failed and {mfail} measure_failed rows; a measure_failed row also "
        "leaves a job without a code, so with any of them the count overstates divergence.",
    )


def r_em_table(df: pd.DataFrame) -> Table | None:
    rows = []
    for axis in ("n_mnist1d", "k", "steps", "ica"):
        x = E.AXES[axis][0]
        cells: dict = {}
        for metric in ("r_em", "r_em_init", "stationarity"):
            sel = E._sel(df, axis, metric)
            for xv, g in sel[sel["method"] == E.SUBJECT].groupby(x):
                cells.setdefault(xv, {})[metric] = estimates.estimate(g["seed"].tolist(), g["value"].to_numpy(float))
        for xv, c in sorted(cells.items()):
            r = c.get("r_em")
            rows.append(
                {
                    "axis": axis,
                    "x": xv,
                    "r_EM trained": r.mean if r else np.nan,
                    "95% CI": _ci(r),
                    "r_EM at init": c["r_em_init"].mean if "r_em_init" in c else np.nan,
                    "init 95% CI": _ci(c.get("r_em_init")),
                    "stationarity": c["stationarity"].mean if "stationarity" in c else np.nan,
                }
            )
        slopes = {m: E.log2_slope(df, axis, m) for m in ("r_em", "r_em_init")}
        if slopes["r_em"] is not None:
            rows.append(
                {
                    "axis": axis,
                    "x": "log2 slope/doubling",
                    "r_EM trained": slopes["r_em"].mean,
                    "95% CI": _ci(slopes["r_em"]),
                    "r_EM at init": slopes["r_em_init"].mean if slopes["r_em_init"] else np.nan,
                    "init 95% CI": _ci(slopes["r_em_init"]),
                    "stationarity": np.nan,
                }
            )
    if not rows:
        return None
    return Table(
        "r_EM = ||grad LSE|| / ||grad (H + TC)|| of infomax on one fixed training minibatch, trained and at its init",
        pd.DataFrame(rows),
        note="Weighted terms as the trainer minimises them; the norm of the summed H + TC gradient; the batch is the "
        "first batch_size rows of the job's training split. The answer reads the slope of r_EM at init along K. stationarity = "
        "||grad (all terms)|| / ||grad (H + TC)||: near 0 the weights sit where grad LSE = -grad (H + TC), so the "
        "trained r_EM is near 1 by construction there; the r_EM at the job's own initial weights is free of that.",
    )


def lambda_table(df: pd.DataFrame) -> Table | None:
    df = E.columns(df)
    lam = df[df["axis"] == "lambda_lse"]
    if lam.empty:
        return None
    k = df[(df["axis"] == "k")]
    batch = lam["batch_size"] if "batch_size" in lam.columns else pd.Series(np.nan, index=lam.index)
    lam = lam.assign(_b=batch.fillna(0).astype(float))  # 0: the run's batch; else the B = 2K sensitivity
    rows = []
    for (width, b), at in lam.groupby(["width", "_b"], sort=True):
        noem = k[(k["method"] == E.NOEM) & (k["metric"] == "test_acc") & (k["width"] == width)]
        noem = noem.set_index("seed")["value"]
        cells = [] if b else [(1.0, k[(k["method"] == E.SUBJECT) & (k["width"] == width)])]
        cells += [(float(v), g) for v, g in at.groupby("lambda_lse")]
        for v, g in sorted(cells, key=lambda c: c[0]):
            acc = g[g["metric"] == "test_acc"].set_index("seed")["value"]
            d = (acc - noem).dropna()
            r = g[g["metric"] == "r_em"]["value"].to_numpy(float)
            r0 = g[g["metric"] == "r_em_init"]["value"].to_numpy(float)
            e = estimates.estimate(d.index.tolist(), d.to_numpy(float))
            rows.append(
                {
                    "K": width,
                    "batch": "2K" if b else "run's",
                    "lambda_lse": v,
                    "r_EM trained": float(np.mean(r)) if r.size else np.nan,
                    "r_EM at init": float(np.mean(r0)) if r0.size else np.nan,
                    "Delta_EM acc": e.mean,
                    "95% CI": _ci(e),
                    "seeds": e.n,
                }
            )
    return Table(
        "lambda_lse sensitivity (mnist5k): r_EM and Delta_EM accuracy against infomax_noem",
        pd.DataFrame(rows),
        note="batch 2K: the cell rerun at B' = 2K with lambda_lse scaled by B / B' (listed at its nominal value); "
        "its Delta_EM is against infomax_noem at the run's batch.",
    )


def stability_table(df: pd.DataFrame, verdicts: dict[float, str]) -> Table | None:
    rows = []
    for axis in E.SCALE_AXES:
        dead = {s.x: s for s in E.stability(df, axis, "matched_corr")}
        for s in E.stability(df, axis, "matched_corr_live"):
            d = dead.get(s.x)
            rows.append(
                {
                    "axis": axis,
                    "x": s.x,
                    "infomax": s.subject,
                    "infomax_noem": s.noem,
                    "difference (jackknife)": s.diff.mean,
                    "95% CI": _ci(s.diff),
                    "dead units = 0: difference": d.diff.mean if d else np.nan,
                    "verdict / direction": verdicts.get(s.x, "") if axis == "k" else "",
                }
            )
    if not rows:
        return None
    return Table(
        "(b) Cross-seed unit-matched |corr|: infomax - infomax_noem (predicted > 0)",
        pd.DataFrame(rows),
        note="Primary: matched pairs with a dead unit left out (score_live), so EM's effect on dead units (a row of "
        "Delta_EM) is not counted twice; the score that counts a dead unit 0 is beside. Intervals: jackknife over "
        "seeds. Verdicts (confirm only) at K = 64 and the largest K: Holm and Westfall-Young over the two.",
    )


def convergence_table(df: pd.DataFrame, methods) -> Table | None:
    rows = []
    for axis in E.SCALE_AXES:
        live = E.pairs(df, axis, "matched_corr_live")
        for t in E.pair_trends(df, axis, methods):
            last = live[(live["x"] == t.xs[-1])] if not live.empty else live
            unit = E.between(last, t.a, t.b) if not last.empty else np.nan
            rows.append(
                {
                    "axis": axis,
                    "A": t.a,
                    "B": t.b,
                    "S first": t.s[0],
                    "S last": t.s[-1],
                    "S last jackknife 95% CI": _ci(t.per_x[-1], 3),
                    "1-S slope/doubling": t.slope.mean if t.slope else np.nan,
                    "slope 95% CI": _ci(t.slope, 3),
                    "reading": t.word,
                    "matched |corr| last": unit,
                }
            )
    if not rows:
        return None
    return Table(
        "(c) Does everything converge? S(A, B) along N and K",
        pd.DataFrame(rows),
        note="S = mean cross-seed debiased CKA(A, B) / sqrt(CKA_w(A) CKA_w(B)). converges: 1 - S falls per doubling "
        "(interval below 0) and S >= 0.9 at the largest point; apart: S's interval there below 0.9. The unit-matched "
        "|corr| (live pairs; infomax pairs only) says whether the same subspace is the same units.",
    )


def similarity_matrix_table(df: pd.DataFrame, axis: str) -> Table | None:
    p = E.pairs(df, axis, "cka")
    if p.empty:
        return None
    x = p["x"].max()
    px = p[p["x"] == x]
    names = sorted(set(px["method"]) | set(px["other"]))
    frame = pd.DataFrame({b: [E.similarity(px, a, b) for a in names] for b in names}, index=names)
    ceil = E.ceilings(px)
    frame["CKA_w"] = [ceil.get(a, np.nan) for a in names]
    null = E.pairs(df, axis, "cka_null_mean")
    null = null[null["x"] == x]["value"].abs()
    note = (
        f"Row-shuffle null (20 draws, one seed pair per method pair): max |mean| = {null.max():.4f}."
        if len(null)
        else ""
    )
    return Table(f"S(A, B) at the largest point of {axis} (x = {x:g})", frame.reset_index(names="method"), note=note)
