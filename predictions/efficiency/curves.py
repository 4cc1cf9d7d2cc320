"""P3's measurements as pure functions: parameter counts and accuracy-vs-parameters curves.

A method's *curve* on one seed is its probe accuracies ``acc_k`` at deployed-parameter counts
``P_k`` (one point per width, or per channel width c for ``supervised_cnn``). Every curve, the
subject's included, is read through its isotonic fit on log P (:func:`isotonic`: the
non-decreasing sequence closest to the points in least squares, pool-adjacent-violators; a dip at
one width is noise, not a loss of capacity, and unlike a running maximum the fit does not carry
one lucky point forward), linearly in ``log P`` between sweep points and never outside
``[P_min, P_max]``.

* :func:`read_at`: ``acc(P*)`` on the fit (the primary's ``acc_B(2 P_S(K))``);
* :func:`reach`: the smallest P at which the fit reaches a target accuracy, censored ``left``
  (already reached at ``P_min``: the answer is ``<= P_min``) or ``right`` (never reached: ``> P_max``);
* :func:`seed_primary`: one seed's primary ``Delta_B = mean_{K in Ks} [acc_S(K) - acc_B(2 P_S(K))]``,
  B's gain per doubling ``g_B = mean_{K in Ks} [acc_B(2 P_S(K)) - acc_B(P_S(K))]`` and the
  descriptive multiplier ``m_B(K) = P_B(acc_S(K)) / P_S(K)``;
* :func:`delta_rows`: those as tidy records for every baseline and seed.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import torch

REL_TOL = 1e-9  # P* within this relative distance of a sweep end counts as inside (exact 2x counts)
CNN = "supervised_cnn"  # swept over its channel width c (column ``channels``) at one projection width
PA = ("supervised", "supervised_mlp2", CNN)  # P3's PA family: the conventional models over their size variable
POINT_KEYS = ("dataset", "method", "width", "channels", "seed")  # one curve point (channels 0: not a CNN point)


def deployed_floats(method: torch.nn.Module) -> int:
    """P: every float the deployed encoder reads at evaluation.

    ``P = sum of numel over the unique floating-point parameters and buffers of
    method.deployed_modules()``: weights, biases, GMM means / variances / log-weights, BatchNorm
    running statistics, MAE's fixed positional embedding. Integer buffers (BatchNorm's
    ``num_batches_tracked``, FastICA's ``n_iter``) and boolean flags are not floats the encoder
    computes with. ``raw`` (an identity) reads nothing: ``P = 0``.
    """
    seen: dict[int, int] = {}
    for mod in method.deployed_modules():
        for t in (*mod.parameters(), *mod.buffers()):
            if t.is_floating_point():
                seen[id(t)] = t.numel()
    return int(sum(seen.values()))


def curve_points(rows: pd.DataFrame) -> pd.DataFrame:
    """Curve points from tidy rows: one row per (dataset, method, width, channels, seed) with
    ``acc`` (``probe_acc``), ``params`` (``params_deployed``, P) and ``under_trained`` (the probed
    encoder's flag); ``channels`` is 0 where a point is not one of the CNN's channel widths."""
    cols = ["dataset", "method", "width", "channels", "seed", "acc", "params", "under_trained"]
    r = rows[rows["metric"].isin(("probe_acc", "params_deployed"))]
    if r.empty:
        return pd.DataFrame(columns=cols)
    r = r.assign(
        channels=r["channels"].fillna(0).astype(int) if "channels" in r.columns else 0,
        dataset=r["dataset"] if "dataset" in r.columns else "",
        under_trained=r["under_trained"].astype(object) if "under_trained" in r.columns else None,
    )
    keys = list(POINT_KEYS)
    acc = r[r["metric"] == "probe_acc"].drop_duplicates(keys)[[*keys, "value", "under_trained"]]
    par = r[r["metric"] == "params_deployed"].drop_duplicates(keys)[[*keys, "value"]]
    out = acc.rename(columns={"value": "acc"}).merge(par.rename(columns={"value": "params"}), on=keys, how="outer")
    out["acc"], out["params"] = out["acc"].astype(float), out["params"].astype(float)
    out = out.dropna(subset=["acc", "params"], how="all").sort_values(keys, kind="stable").reset_index(drop=True)
    return out.reindex(columns=cols)


def isotonic(p, acc) -> tuple[np.ndarray, np.ndarray]:
    """The curve's isotonic (non-decreasing) least-squares fit in P, by pool-adjacent-violators.

    NaN and ``P <= 0`` points are dropped; points at the same P are pooled first (their mean,
    weighted by their count). Adjacent blocks that decrease are merged into their weighted mean
    until none does: (0.5, 0.7, 0.6) -> (0.5, 0.65, 0.65).

    Returns:
        ``(P, F)``: the distinct positive P, increasing (n,), and the fit at each (n,).
    """
    p, acc = np.asarray(p, float).ravel(), np.asarray(acc, float).ravel()
    ok = np.isfinite(p) & np.isfinite(acc) & (p > 0)
    ps, inv = np.unique(p[ok], return_inverse=True)
    if ps.size == 0:
        return ps, ps.copy()
    w = np.bincount(inv, minlength=ps.size).astype(float)
    y = np.bincount(inv, weights=acc[ok], minlength=ps.size) / w
    vals, wts, lens = [], [], []  # the blocks: weighted mean, weight, number of distinct P
    for yi, wi in zip(y, w, strict=True):
        vals.append(yi)
        wts.append(wi)
        lens.append(1)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            v, wt, n = vals.pop(), wts.pop(), lens.pop()
            vals[-1] = (vals[-1] * wts[-1] + v * wt) / (wts[-1] + wt)
            wts[-1] += wt
            lens[-1] += n
    return ps, np.repeat(vals, lens)


class Curve:
    """One method's curve on one seed, read through its isotonic fit (see the module docstring)."""

    def __init__(self, p, acc):
        self.p, self.fit = isotonic(p, acc)

    def at(self, p_star: float) -> tuple[float, str]:
        """``acc(P*)`` on the fit, linear in log P, never extrapolated.

        Returns:
            ``(value, "")``; or NaN and why (no point with P > 0, or P* outside ``[P_min, P_max]``).
        """
        ps = self.p
        if ps.size == 0:
            return math.nan, "no point with P > 0 (raw reads no parameters)"
        if not np.isfinite(p_star):
            return math.nan, "no P to read at"
        lo, hi = ps[0] * (1 - REL_TOL), ps[-1] * (1 + REL_TOL)
        if not lo <= p_star <= hi:
            return math.nan, f"P* = {p_star:.4g} outside the sweep [{ps[0]:.4g}, {ps[-1]:.4g}] (not extrapolated)"
        return float(np.interp(math.log(min(max(p_star, ps[0]), ps[-1])), np.log(ps), self.fit)), ""

    def reach(self, target: float) -> tuple[float, str]:
        """Smallest P where the fit reaches ``target`` (linear in log P), with its censoring.

        Returns:
            ``(P, censored)``: ``""`` (reached inside the sweep), ``"left"`` (the fit at ``P_min``
            already reaches it: P is ``P_min``, an upper bound), ``"right"`` (never reached: P is
            ``P_max``, a lower bound); ``(nan, "none")`` without a point with P > 0 or a target.
        """
        ps, r = self.p, self.fit
        if ps.size == 0 or not np.isfinite(target):
            return math.nan, "none"
        if r[0] >= target:
            return float(ps[0]), "left"
        if r[-1] < target:
            return float(ps[-1]), "right"
        k = int(np.argmax(r >= target))  # the first index reaching it; r[k-1] < target <= r[k]
        t = (target - r[k - 1]) / (r[k] - r[k - 1])
        return float(math.exp(math.log(ps[k - 1]) + t * (math.log(ps[k]) - math.log(ps[k - 1])))), ""


def read_at(p, acc, p_star: float) -> tuple[float, str]:
    """``acc(P*)`` on the isotonic fit of the curve ``(p, acc)`` (:meth:`Curve.at`)."""
    return Curve(p, acc).at(p_star)


def reach(p, acc, target: float) -> tuple[float, str]:
    """The smallest P where the isotonic fit reaches ``target`` (:meth:`Curve.reach`)."""
    return Curve(p, acc).reach(target)


def seed_primary(subject: Curve, p_s: dict[int, float], b: Curve, ks, factor: float = 2.0) -> dict[str, Any]:
    """One seed of the primary, from the subject's and B's fitted curves.

    Args:
        subject: The subject's curve on this seed.
        p_s: Subject width K -> P_S(K) on this seed (NaN or absent: no value at K).
        b: B's curve on this seed.
        ks: The widths the primary averages over ({16, 32, 64}).
        factor: B is read at ``factor * P_S(K)`` (2).

    Returns:
        ``gap[K] = acc_S(K) - acc_B(factor P_S(K))``, ``gain[K] = acc_B(factor P_S(K)) - acc_B(P_S(K))``
        and ``why[K]`` (the first reason a value is NaN, "" if none) for every K of ``p_s`` and ``ks``;
        ``delta`` = mean of ``gap`` over ``ks`` and ``g`` = mean of ``gain`` over ``ks`` (NaN when any
        K is n/a: never averaged over fewer K) with their reasons ``delta_why``, ``g_why``; and
        ``mult[K] = (P_B(acc_S(K)) / P_S(K), censored)``.
    """
    out: dict[str, Any] = {"gap": {}, "gain": {}, "why": {}, "gain_why": {}, "mult": {}}
    for k in sorted(set(p_s) | set(ks)):
        ps = float(p_s.get(k, math.nan))
        acc_s, why = subject.at(ps) if np.isfinite(ps) else (math.nan, "")
        if not np.isfinite(acc_s):
            why = f"K={k}: the subject has no value"
            out["gap"][k] = out["gain"][k] = math.nan
            out["why"][k] = out["gain_why"][k] = why
            out["mult"][k] = (math.nan, "none")
            continue
        at2, why2 = b.at(factor * ps)
        at1, why1 = b.at(ps)
        out["gap"][k], out["why"][k] = acc_s - at2, f"K={k}: {why2}" if why2 else ""
        out["gain"][k] = at2 - at1
        out["gain_why"][k] = f"K={k}: {why2 or why1}" if why2 or why1 else ""
        pn, cens = b.reach(acc_s)
        out["mult"][k] = (pn / ps if cens != "none" else math.nan, cens)
    for name, per, whys in (("delta", "gap", "why"), ("g", "gain", "gain_why")):
        vals = [out[per][k] for k in ks]
        reasons = [out[whys][k] for k in ks if out[whys][k]]
        out[name] = float(np.mean(vals)) if vals and not reasons else math.nan
        out[f"{name}_why"] = "; ".join(reasons)
    return out


def flag_any(values) -> bool | None:
    """``under_trained`` of a row derived from several encoders: True if any is flagged, False if
    all are known and unflagged, None otherwise (an old cache entry without the flag)."""
    values = list(values)
    known = [bool(v) for v in values if not pd.isna(v)]  # None, NaN and pd.NA: unknown
    if any(known):
        return True
    return False if values and len(known) == len(values) else None


def delta_rows(
    curves: pd.DataFrame, subject: str, primary_widths: tuple[int, ...], margin: float, factor: float = 2.0
) -> list[dict[str, Any]]:
    """The primary's per-seed non-inferiority differences, B's gain per doubling, the multipliers.

    Args:
        curves: One row per curve point (method, point, seed) with columns ``method, width, seed,
            acc, params`` (NaN acc for a point that failed), optionally ``under_trained``. B's
            points may share a width (``supervised_cnn`` sweeps its channel width at one width).
        subject: The subject's method name.
        primary_widths: The subject widths Ks averaged by the primary ({16, 32, 64}).
        margin: delta, the non-inferiority margin (0.01 = one point), declared in advance.
        factor: B is read at ``factor * P_S(K)`` (2).

    Returns:
        Records ``method`` (= B), ``seed``, ``width``, ``metric``, ``value``, ``note``,
        ``censored`` and ``under_trained`` (True if any encoder of the subject's or B's curve on
        that seed is flagged: every point enters an isotonic fit):

        * ``gap_2p`` at width K: ``acc_S(K) - acc_B(2 P_S(K))`` (NaN with the reason when n/a);
        * ``delta_2p`` at width 0 (an aggregate over Ks, listed in ``widths``):
          ``Delta_B + margin``; NaN with the reasons when any K is n/a (never averaged over fewer);
        * ``g_2p`` at width K: ``acc_B(2 P_S(K)) - acc_B(P_S(K))``, and at width 0 its mean over Ks
          (``g_B``, printed beside Delta_B: a saturated B, g_B < delta, lets any method through);
        * ``multiplier`` at width K: ``P_B(acc_S(K)) / P_S(K)`` with ``censored`` ``""``, ``"left"``
          (the value is an upper bound) or ``"right"`` (a lower bound).
    """
    out: list[dict[str, Any]] = []
    flags = curves["under_trained"] if "under_trained" in curves.columns else pd.Series(None, index=curves.index)
    curves = curves.assign(_flag=flags.astype(object))
    subj = curves[curves["method"] == subject]
    ks = tuple(primary_widths)
    for b in sorted(set(curves["method"]) - {subject}):
        bc = curves[curves["method"] == b]
        for seed in sorted(set(subj["seed"]) | set(bc["seed"])):
            s_seed, b_seed = subj[subj["seed"] == seed], bc[bc["seed"] == seed]
            p_s = {
                int(k): float(p)
                for k, p, a in zip(s_seed["width"], s_seed["params"], s_seed["acc"], strict=True)
                if np.isfinite(a)
            }
            r = seed_primary(
                Curve(s_seed["params"], s_seed["acc"]), p_s, Curve(b_seed["params"], b_seed["acc"]), ks, factor
            )
            flag = flag_any([*s_seed["_flag"], *b_seed["_flag"]])

            def rec(width, metric, value, note="", censored="", b=b, seed=seed, flag=flag):
                return {
                    "method": b,
                    "seed": int(seed),
                    "width": int(width),
                    "metric": metric,
                    "value": float(value),
                    "note": note,
                    "censored": censored,
                    "under_trained": flag,
                }

            for k in sorted(r["gap"]):
                shown = k in p_s or k in ks
                if k in p_s:
                    m, cens = r["mult"][k]
                    why = "no point with P > 0" if cens == "none" else ""
                    out.append(rec(k, "multiplier", m, why, "n/a" if cens == "none" else cens))
                if shown:
                    out.append(rec(k, "gap_2p", r["gap"][k], r["why"][k]))
                    out.append(rec(k, "g_2p", r["gain"][k], r["gain_why"][k]))
            for metric, key, add in (("delta_2p", "delta", margin), ("g_2p", "g", 0.0)):
                v = r[key] + add if np.isfinite(r[key]) else math.nan
                agg = rec(0, metric, v, r[f"{key}_why"])
                agg["widths"] = ",".join(str(k) for k in ks)
                agg["margin"] = margin if metric == "delta_2p" else None
                out.append(agg)
    return out


def saturating(p: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    """``acc(P) = a - b P^(-c)`` with P in units of the method's smallest P (for conditioning)."""
    return a - b * np.power(p, -c)


def fit_saturating(p: np.ndarray, acc: np.ndarray) -> dict[str, float]:
    """Least-squares fit of :func:`saturating` to all (P, acc) points (every seed), and its
    held-out extrapolation error: refit without the largest P, predict the mean accuracy there.

    ``a`` is the asymptote, ``c`` the rate. Bounds: a in [0, 1.5], b in [0, 10], c in [0, 5].
    Returns NaNs where the fit needs more distinct P than there are (3 to fit, 4 for held-out).
    """
    from scipy.optimize import curve_fit

    p, acc = np.asarray(p, float), np.asarray(acc, float)
    ok = np.isfinite(p) & np.isfinite(acc) & (p > 0)
    p, acc = p[ok], acc[ok]
    res = {"a": math.nan, "b": math.nan, "c": math.nan, "rmse": math.nan, "heldout_err": math.nan}
    uniq = np.unique(p)
    if uniq.size < 3:
        return res
    x0 = uniq[0]

    def fit(pp, yy):
        p0 = (float(yy.max()), max(float(yy.max() - yy.min()), 1e-3), 0.5)
        try:
            popt, _ = curve_fit(saturating, pp / x0, yy, p0=p0, bounds=([0, 0, 0], [1.5, 10, 5]), maxfev=5000)
        except (RuntimeError, ValueError):
            return None
        return popt

    popt = fit(p, acc)
    if popt is not None:
        res.update(
            a=float(popt[0]),
            b=float(popt[1]),
            c=float(popt[2]),
            rmse=float(np.sqrt(np.mean((saturating(p / x0, *popt) - acc) ** 2))),
        )
    if uniq.size >= 4:
        keep = p < uniq[-1]
        held = fit(p[keep], acc[keep])
        if held is not None:
            res["heldout_err"] = float(saturating(uniq[-1] / x0, *held) - acc[~keep].mean())
    return res


def log2_slope(p: np.ndarray, acc: np.ndarray) -> float:
    """Least-squares slope of acc against log2 P: accuracy gained per doubling of P (NaN under 2 points)."""
    p, acc = np.asarray(p, float), np.asarray(acc, float)
    ok = np.isfinite(p) & np.isfinite(acc) & (p > 0)
    if np.unique(p[ok]).size < 2:
        return math.nan
    return float(np.polyfit(np.log2(p[ok]), acc[ok], 1)[0])
