"""P3's report tables, computed from the tidy table alone (never a model or the cache).

* :func:`unjudged_rows`: the verdict frames' rows: per baseline B a one-sample comparison of the
  per-seed ``d_s = Delta_B,s + delta`` against 0 (``bench.evaluate.stats.compare`` against zeros: n, mean d,
  t-interval, d_z, ``p_t``, Wilcoxon p; the exact sign-flip ``p_perm``, the per-seed ``diffs``,
  ``direction``, the under-trained seed count), with B's gain per doubling g_B beside it. No
  correction and no verdict here: the report judges within the families (docs/protocol.md, statistics).
* :func:`self_copy_deltas`: the calibration of the rule on copies of the subject.
* :func:`multiplier_table`, :func:`fit_table`, :func:`raw_fraction_table`, :func:`steps_table`,
  :func:`scaling_table`: the descriptive results.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from bench.evaluate import stats
from bench.evaluate.verdicts import STATUS_METRICS
from bench.report import plots
from predictions.efficiency.curves import curve_points, delta_rows, fit_saturating, log2_slope, reach

RAW = "raw"
RAW_FRACTIONS = (0.90, 0.95, 0.99)
MIN_DOUBLINGS = 2.0  # a sweep must span this many doublings of P for its slope to enter the comparison
BOUNDS = {"a": (1.5,), "b": (10.0,), "c": (0.0, 5.0)}  # the fit's bounds that mean "did not fit" when hit
G_COLUMNS = ("g_B", "g_B ci_low", "g_B ci_high", "g_B n", "g_B note")


def curves_frame(df: pd.DataFrame, where: dict | None = None) -> pd.DataFrame:
    """One row per curve point (dataset, method, width, channels, seed) with ``acc`` (probe_acc),
    ``params`` (P) and ``under_trained`` (:func:`curves.curve_points`)."""
    parts = [plots.select(df, m, where) for m in ("probe_acc", "params_deployed")]
    return curve_points(pd.concat(parts) if len(parts[0]) else parts[0])


def direction_of(mean: float, direction: str) -> str:
    """``"as predicted"``, ``"opposite"`` or ``"none"``: the sign of ``mean`` against ``direction``."""
    if not np.isfinite(mean) or mean == 0:
        return "none"
    return "as predicted" if (mean > 0) == (direction == "higher") else "opposite"


def unjudged_rows(
    df: pd.DataFrame,
    metric: str,
    subject: str,
    direction: str,
    where: dict | None = None,
    gain: str = "g_2p",
    na: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Unjudged comparison rows for a metric whose rows already hold the per-seed d (method = B).

    Every B with a ``metric`` row or a status row on the dataset (or on the study's training
    ``source``) is a row; seeds of status rows count as missing, with the notes as the reason.
    ``gain``: the width-0 rows of B's gain per doubling, shown beside d (:data:`G_COLUMNS`: mean,
    t-interval, n, and why it is n/a). ``na``: B -> why its cell is n/a by design."""
    sel = plots.select(df, metric, where)
    gains = plots.select(df, gain, where)
    gains = gains[gains["width"] == 0] if "width" in gains.columns else gains
    status = df[df["metric"].isin(STATUS_METRICS)]
    frames = []
    for dataset, g in sel.groupby("dataset", sort=True):
        sources = set(g["source"].dropna()) if "source" in g.columns else set()
        st = status[status["dataset"].isin({dataset, *sources})]
        methods = sorted((set(g["method"]) | set(st["method"])) - {subject})
        recs = []
        for b in methods:
            rows = g[g["method"] == b]
            vals = {int(s): float(v) for s, v in zip(rows["seed"], rows["value"], strict=True)}
            for s in st.loc[st["method"].isin([b, subject]), "seed"].dropna():
                vals.setdefault(int(s), math.nan)
            notes = set(rows.loc[rows["value"].isna(), "note"].dropna().astype(str))
            notes |= set(st.loc[st["method"].isin([b, subject]), "note"].dropna().astype(str))
            c = stats.compare(vals, dict.fromkeys(vals, 0.0), direction, name=b)
            diffs = tuple((s, v) for s, v in sorted(vals.items()) if np.isfinite(v))
            flagged = rows["under_trained"].map(lambda v: v is True or v == 1.0) if "under_trained" in rows else []
            c = replace(
                c,
                p_holm=c.p_t,
                verdict="inconclusive",
                diffs=diffs,
                p_perm=stats.sign_flip_p([v for _, v in diffs]),
                direction=direction_of(c.mean_diff, direction),
                under_trained=int(np.sum(flagged)),
                na=(na or {}).get(b, ""),
                reason="; ".join(sorted(n for n in notes if n.strip())) if c.n_missing else "",
            )
            rec = {f: getattr(c, f) for f in stats.FIELDS}
            gb = gains[(gains["dataset"] == dataset) & (gains["method"] == b)]
            mean, lo, hi = stats.t_interval(gb["value"].to_numpy(float))
            gnotes = sorted(set(gb.loc[gb["value"].isna(), "note"].dropna().astype(str)) - {""})
            rec.update(
                dict(
                    zip(
                        G_COLUMNS,
                        (mean, lo, hi, int(gb["value"].notna().sum()), gnotes[0] if gnotes else ""),
                        strict=True,
                    )
                )
            )
            recs.append(rec)
        frame = pd.DataFrame(recs, columns=[*stats.FIELDS, *G_COLUMNS])
        frame.insert(0, "dataset", dataset)
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["dataset", *stats.FIELDS, *G_COLUMNS])
    return pd.concat(frames, ignore_index=True)


def self_copy_deltas(
    curves: pd.DataFrame, subject: str, primary_widths: Sequence[int], margin: float, factor: float = 2.0
) -> pd.DataFrame:
    """The subject against a copy of itself on other seeds (seed s paired with the next seed, cyclic):
    per seed ``d = Delta + margin`` at 1 (same P, margin 0: seed noise alone) and at ``factor`` with
    the margin (2: the primary's rule applied to a copy, whose expected d is ``delta - g_S``, the
    margin minus the subject's own gain per doubling). Columns: n, mean d, its 95% t-interval,
    ``direction`` (the sign of mean d against "higher") and, at ``factor``, the copy's mean g."""
    cols = ["factor", "margin", "n", "mean d", "ci_low", "ci_high", "direction", "g (copy)", "delta - g"]
    subj = curves[curves["method"] == subject]
    seeds = sorted(subj["seed"].dropna().unique())
    if len(seeds) < 2:
        return pd.DataFrame(columns=cols)
    copy = subj.assign(method="copy", seed=subj["seed"].map(dict(zip(seeds, seeds[1:] + seeds[:1], strict=True))))
    both = pd.concat([subj, copy])
    out = []
    for f, mg in ((1.0, 0.0), (factor, margin)):
        recs = delta_rows(both, subject, tuple(primary_widths), mg, f)
        d = [r["value"] for r in recs if r["metric"] == "delta_2p"]
        g = [r["value"] for r in recs if r["metric"] == "g_2p" and r["width"] == 0]
        mean, lo, hi = stats.t_interval(np.asarray(d, float))
        gm = float(np.nanmean(g)) if f != 1.0 and np.isfinite(g).any() else math.nan
        out.append(
            {
                "factor": f,
                "margin": mg,
                "n": int(np.isfinite(d).sum()),
                "mean d": mean,
                "ci_low": lo,
                "ci_high": hi,
                "direction": direction_of(mean, "higher"),
                "g (copy)": gm,
                "delta - g": mg - gm if np.isfinite(gm) else math.nan,
            }
        )
    return pd.DataFrame(out, columns=cols)


def per_k_table(df: pd.DataFrame, where: dict | None = None) -> pd.DataFrame:
    """Per (baseline, K), in points: the gap ``acc_S(K) - acc_B(2 P_S(K))`` and B's gain per doubling
    ``acc_B(2 P_S(K)) - acc_B(P_S(K))``, mean and 95% half-width over seeds, with n."""
    parts = []
    for metric, name in (("gap_2p", "gap"), ("g_2p", "g_B")):
        sel = plots.select(df, metric, where)
        sel = sel[sel["width"] > 0]
        if sel.empty:
            continue
        t = plots.mean_ci_table(sel.assign(value=100 * sel["value"]), ["method", "width"])
        parts.append(
            t.rename(
                columns={"mean": f"{name} (points)", "half": f"{name} 95% half-width", "n": f"{name} n"}
            ).set_index(["method", "width"])
        )
    if not parts:
        return pd.DataFrame()
    out = pd.concat(parts, axis=1).reset_index()
    return out.rename(columns={"method": "baseline", "width": "K"})


def reference_table(df: pd.DataFrame, subject: str) -> pd.DataFrame:
    """Per K: the subject's probe accuracy on the secondary's target when trained on the source classes
    (the compared curve) and when trained on the target classes (the in-domain reference)."""
    out = {}
    for study, col in (("unseen_classes", "trained on [0-4]"), ("in_domain_reference", "trained on [5-9]")):
        c = curves_frame(df, {"study": study})
        c = c[c["method"] == subject]
        for k, g in c.groupby("width"):
            out.setdefault(int(k), {"K": int(k)})[col] = plots.mean_ci_cell(g["acc"])
    return pd.DataFrame([out[k] for k in sorted(out)])


def _fmt(v: float) -> str:
    return "n/a" if not np.isfinite(v) else f"{v:.3g}"


def multiplier_table(df: pd.DataFrame, where: dict | None = None, widths: Sequence[int] | None = None) -> pd.DataFrame:
    """Per (baseline, K): the multiplier ``m_B(K)`` over seeds, censored counts apart.

    Uncensored seeds: geometric mean; its 95% t-interval (on log2 m) only when no seed is censored
    (an interval over bounds would be a number the data do not give). Left-censored seeds give
    ``m <= bound`` (B's smallest model already reaches the subject), right-censored ``m > bound``
    (B never reaches it inside its sweep); the tightest bound is shown.
    """
    sel = plots.select(df, "multiplier", where)
    if widths is not None:
        sel = sel[sel["width"].isin(list(widths))]
    out = []
    for (b, k), g in sel.groupby(["method", "width"], sort=True):
        cens = g["censored"].fillna("").astype(str)
        v = g["value"].to_numpy(float)
        unc = v[(cens == "").to_numpy() & np.isfinite(v)]
        left, right = v[(cens == "left").to_numpy()], v[(cens == "right").to_numpy()]
        geo = float(2 ** np.mean(np.log2(unc))) if unc.size else math.nan
        ci = "n/a (censored seeds)" if left.size + right.size else "n/a (under 2 seeds)"
        if unc.size >= 2 and unc.size == len(v):
            _, lo, hi = stats.t_interval(np.log2(unc))
            ci = f"[{2**lo:.3g}, {2**hi:.3g}]"
        out.append(
            {
                "baseline": b,
                "K": int(k),
                "n_uncensored": int(unc.size),
                "m (geo-mean)": _fmt(geo),
                "95% CI": ci,
                "n_left": int(left.size),
                "left: m <=": _fmt(left.max()) if left.size else "",
                "n_right": int(right.size),
                "right: m >": _fmt(right.min()) if right.size else "",
                "n_na": int(len(v) - unc.size - left.size - right.size),
            }
        )
    return pd.DataFrame(out)


def fit_table(curves: pd.DataFrame) -> pd.DataFrame:
    """Per method: the saturating fit ``acc(P) = a - b (P / P_min)^(-c)`` on every seed's points and
    its held-out error (fit without the largest P, predicted minus observed mean accuracy there)."""
    out = []
    for m, g in curves.groupby("method", sort=True):
        if not (g["params"] > 0).any():  # raw: P = 0, no curve
            continue
        f = fit_saturating(g["params"].to_numpy(float), g["acc"].to_numpy(float))
        at_bound = any(np.isclose(f[k], lim) for k, lims in BOUNDS.items() for lim in lims)
        out.append(
            {
                "method": m,
                "points": int(g["acc"].notna().sum()),
                "asymptote a": f["a"],
                "b": f["b"],
                "rate c": f["c"],
                "rmse": f["rmse"],
                "held-out error": f["heldout_err"],
                "note": "a parameter at its bound: the form does not fit" if at_bound else "",
            }
        )
    return pd.DataFrame(out)


def raw_fraction_table(curves: pd.DataFrame, fractions: Sequence[float] = RAW_FRACTIONS) -> pd.DataFrame:
    """P each method needs (median over seeds, on its isotonic fit) for q x raw's mean probe
    accuracy; ``<=`` / ``>`` mark medians that are bounds, counts of censored seeds in brackets."""
    raw = curves.loc[curves["method"] == RAW, "acc"].dropna()
    if raw.empty:
        return pd.DataFrame([{"method": "(raw is not in this run: no reference accuracy)"}])
    ref = float(raw.mean())
    out = []
    for m, g in curves[curves["method"] != RAW].groupby("method", sort=True):
        rec = {"method": m}
        for q in fractions:
            got = [
                reach(gs["params"].to_numpy(float), gs["acc"].to_numpy(float), q * ref) for _, gs in g.groupby("seed")
            ]
            ps = np.array([p for p, _ in got], float)
            cens = [c for _, c in got]
            nl, nr = cens.count("left"), cens.count("right")
            med = float(np.nanmedian(ps)) if np.isfinite(ps).any() else math.nan
            mark = "<=" if nl > len(got) / 2 else ">" if nr > len(got) / 2 else ""
            rec[f"P for {q:.0%} of raw ({q * ref:.3f})"] = f"{mark}{_fmt(med)}" + (f" [L{nl} R{nr}]" if nl + nr else "")
        out.append(rec)
    return pd.DataFrame(out)


def steps_table(df: pd.DataFrame, where: dict | None = None) -> pd.DataFrame:
    """Per method: training steps (epochs x ceil(N/batch); equal epochs, unequal set sizes), training
    seconds summed over the sweep (mean over seeds) and training-only parameters at each end."""
    steps = plots.select(df, "train_steps", where)
    ptrain = plots.select(df, "params_train", where)
    out = []
    for m, g in steps.groupby("method", sort=True):
        v = g["value"].dropna()
        note = "; ".join(sorted(set(g["note"].dropna().astype(str)))) if "note" in g.columns else ""
        size = [c for c in ("width", "channels") if c in ptrain.columns]  # the CNN's size is its channel width
        pt = ptrain[ptrain["method"] == m].sort_values(size, kind="stable")["value"]
        secs = g.groupby("seed")["train_seconds"].sum(min_count=1)
        out.append(
            {
                "method": m,
                "train steps": _fmt(float(v.iloc[0])) if len(v) else f"n/a ({note})",
                "train s (sweep, mean/seed)": _fmt(float(secs.mean())) if secs.notna().any() else "n/a",
                "train-only params (smallest model)": _fmt(float(pt.iloc[0])) if len(pt) else "n/a",
                "train-only params (largest model)": _fmt(float(pt.iloc[-1])) if len(pt) else "n/a",
            }
        )
    return pd.DataFrame(out)


def scaling_table(curves: pd.DataFrame, late: int = 3) -> pd.DataFrame:
    """Per method: accuracy gained per doubling of P (slope of acc on log2 P, per seed, mean and
    95% t-interval over seeds) over the whole sweep and over its ``late`` largest widths."""
    out = []
    for m, g in curves.groupby("method", sort=True):
        if not (g["params"] > 0).any():  # raw: P = 0, no curve
            continue
        whole, tail = [], []
        p = g["params"].dropna()
        span = float(np.log2(p.max() / p.min())) if len(p) and p.min() > 0 else float("nan")
        for _, gs in g.groupby("seed"):
            gs = gs.dropna(subset=["acc", "params"]).sort_values("params")
            whole.append(log2_slope(gs["params"], gs["acc"]))
            tail.append(log2_slope(gs["params"].iloc[-late:], gs["acc"].iloc[-late:]))
        mw, lw, hw = stats.t_interval(whole)
        mt, lt, ht = stats.t_interval(tail)
        out.append(
            {
                "method": m,
                "n": int(np.isfinite(whole).sum()),
                "sweep (doublings of P)": span,
                "gain/doubling": mw,
                "ci_low": lw,
                "ci_high": hw,
                f"gain/doubling, last {late} K": mt,
                "late ci_low": lt,
                "late ci_high": ht,
            }
        )
    return pd.DataFrame(out)


def scaling_sentence(table: pd.DataFrame, subject: str, late: int = 3) -> str:
    """Whether the subject's curve saturates earlier or later than the baselines', from the data:
    its gain per doubling over its last ``late`` widths against each baseline's (mean over seeds)."""
    col = f"gain/doubling, last {late} K"
    t = table.dropna(subset=[col])
    if subject not in set(t["method"]) or len(t) < 2:
        return "Too few curves with a value to compare saturation."
    s = t.loc[t["method"] == subject].iloc[0]
    short = t[(t["method"] != subject) & ~(t["sweep (doublings of P)"] >= MIN_DOUBLINGS)]["method"].tolist()
    others = t[(t["method"] != subject) & (t["sweep (doublings of P)"] >= MIN_DOUBLINGS)]
    if others.empty:
        return "No baseline's sweep spans enough doublings of P to compare saturation."
    flatter = others[others[col] > s[col]]["method"].tolist()
    steeper = others[others[col] <= s[col]]["method"].tolist()
    sep = others[(others[col] > s["late ci_high"]) | (others[col] < s["late ci_low"])]["method"].tolist()
    verb = (
        "earlier than most baselines'"
        if len(flatter) > len(steeper)
        else "later than most baselines'"
        if len(steeper) > len(flatter)
        else "neither earlier nor later than most baselines' (a tie)"
    )
    return (
        f"Over its last {late} widths the subject gains {100 * s[col]:.2f} points per doubling of P "
        f"(95% CI [{100 * s['late ci_low']:.2f}, {100 * s['late ci_high']:.2f}]); {len(flatter)} of {len(others)} "
        f"baselines still gain more there and {len(steeper)} gain less, so its curve saturates {verb} "
        f"({len(sep)} baselines' means lie outside the subject's interval: "
        f"{', '.join(sep) or 'none'})."
        + (
            f" Left out (their sweep spans under {MIN_DOUBLINGS} doublings of P, "
            f"so a slope per doubling is not measured): {', '.join(short)}."
            if short
            else ""
        )
        + " The full profile (10 seeds, K up to 256) is the run to quote."
    )
