"""P3's measurements as pure functions: parameter counts and accuracy-vs-parameters curves.

A method's *curve* on one seed is its probe accuracies ``acc_k`` at deployed-parameter counts
``P_k`` (one point per width), sorted by P. It is read through its running maximum
``R_k = max_{j <= k} acc_j`` (a larger model can always be replaced by the best smaller one, so a
dip at one width is noise, not a loss of capacity), linearly in ``log P`` between sweep points and
never outside ``[P_min, P_max]``.

* :func:`read_at`: ``acc_B(P*)`` on B's running maximum (the primary's ``acc_B(2 P_S(K))``);
* :func:`reach`: the smallest P at which the running maximum reaches a target accuracy, censored
  ``left`` (already reached at ``P_min``: the answer is ``<= P_min``) or ``right`` (never reached:
  ``> P_max``);
* :func:`delta_rows`: per seed the primary's ``Delta_B = mean_{K in Ks} [acc_S(K) - acc_B(2 P_S(K))]``
  and the descriptive multiplier ``m_B(K) = P_B(acc_S(K)) / P_S(K)``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch

REL_TOL = 1e-9  # P* within this relative distance of a sweep end counts as inside (exact 2x counts)


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


def running_max(p: np.ndarray, acc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The curve sorted by P, with NaN and P <= 0 points dropped, and its running maximum.

    Returns:
        ``(P, R)``: sorted positive P (n,) and ``R_k = max_{j <= k} acc_j`` (n,).
    """
    p, acc = np.asarray(p, float), np.asarray(acc, float)
    ok = np.isfinite(p) & np.isfinite(acc) & (p > 0)
    order = np.argsort(p[ok], kind="stable")
    return p[ok][order], np.maximum.accumulate(acc[ok][order]) if ok.any() else acc[ok]


def read_at(p: np.ndarray, acc: np.ndarray, p_star: float) -> tuple[float, str]:
    """``acc(P*)`` on the running maximum, linear in log P, never extrapolated.

    Returns:
        ``(value, reason)``: the value and ""; or NaN and why (no point with P > 0, or P* outside
        ``[P_min, P_max]``).
    """
    ps, r = running_max(p, acc)
    if ps.size == 0:
        return math.nan, "no point with P > 0 (raw reads no parameters)"
    lo, hi = ps[0] * (1 - REL_TOL), ps[-1] * (1 + REL_TOL)
    if not lo <= p_star <= hi:
        return math.nan, f"P* = {p_star:.4g} outside the sweep [{ps[0]:.4g}, {ps[-1]:.4g}] (not extrapolated)"
    return float(np.interp(math.log(min(max(p_star, ps[0]), ps[-1])), np.log(ps), r)), ""


def reach(p: np.ndarray, acc: np.ndarray, target: float) -> tuple[float, str]:
    """Smallest P where the running maximum reaches ``target`` (linear in log P), with censoring.

    Returns:
        ``(P, censored)``: censored ``""`` (reached inside the sweep), ``"left"`` (``R_0 >= target``:
        P is ``P_min``, an upper bound), ``"right"`` (``R_max < target``: P is ``P_max``, a lower
        bound); ``(nan, "none")`` when the curve has no point with P > 0.
    """
    ps, r = running_max(p, acc)
    if ps.size == 0:
        return math.nan, "none"
    if r[0] >= target:
        return float(ps[0]), "left"
    if r[-1] < target:
        return float(ps[-1]), "right"
    k = int(np.argmax(r >= target))  # first index reaching it; r[k-1] < target <= r[k]
    t = (target - r[k - 1]) / (r[k] - r[k - 1])
    return float(math.exp(math.log(ps[k - 1]) + t * (math.log(ps[k]) - math.log(ps[k - 1])))), ""


def delta_rows(curves: pd.DataFrame, subject: str, primary_widths: tuple[int, ...], margin: float,
               factor: float = 2.0) -> list[dict[str, Any]]:
    """The primary's per-seed non-inferiority differences and the descriptive multipliers.

    Args:
        curves: One row per (method, width, seed) with columns ``method, width, seed, acc, params``
            (NaN acc for a point that failed).
        subject: The subject's method name.
        primary_widths: The subject widths Ks averaged by the primary ({16, 32, 64}).
        margin: delta, the non-inferiority margin (0.01 = one point), declared in advance.
        factor: B is read at ``factor * P_S(K)`` (2).

    Returns:
        Records ``method`` (= B), ``seed``, ``width``, ``metric``, ``value``, ``note`` and
        ``censored``:

        * ``gap_2p`` at width K: ``acc_S(K) - acc_B(2 P_S(K))`` (NaN with the reason when n/a);
        * ``delta_2p`` at width 0 (an aggregate over Ks, listed in ``widths``):
          ``Delta_B + margin``; NaN with the reasons when any K is n/a (never averaged over fewer);
        * ``multiplier`` at width K: ``P_B(acc_S(K)) / P_S(K)`` with ``censored`` ``""``, ``"left"``
          (the value is an upper bound) or ``"right"`` (a lower bound).
    """
    out: list[dict[str, Any]] = []
    subj = curves[curves["method"] == subject]
    for b in sorted(set(curves["method"]) - {subject}):
        bc = curves[curves["method"] == b]
        for seed in sorted(set(subj["seed"]) | set(bc["seed"])):
            s_seed = subj[subj["seed"] == seed].set_index("width")
            b_seed = bc[bc["seed"] == seed]
            bp, bacc = b_seed["params"].to_numpy(float), b_seed["acc"].to_numpy(float)
            gaps, reasons = [], []
            for k in sorted(set(s_seed.index) | set(primary_widths)):
                acc_s = float(s_seed.at[k, "acc"]) if k in s_seed.index else math.nan
                p_s = float(s_seed.at[k, "params"]) if k in s_seed.index else math.nan
                if not np.isfinite(acc_s) or not np.isfinite(p_s):
                    val, why = math.nan, f"subject has no value at K={k} on seed {seed}"
                else:
                    acc_b, why = read_at(bp, bacc, factor * p_s) if len(b_seed) else (math.nan, "no value")
                    val = acc_s - acc_b
                    why = f"K={k}: {why}" if why else ""
                    pn, cens = reach(bp, bacc, acc_s) if len(b_seed) else (math.nan, "none")
                    if cens == "none":
                        out.append(_rec(b, seed, k, "multiplier", math.nan, "no point with P > 0", "n/a"))
                    else:
                        out.append(_rec(b, seed, k, "multiplier", pn / p_s, "", cens))
                if k in primary_widths:
                    gaps.append(val)
                    if why:
                        reasons.append(why)
                if k in s_seed.index or k in primary_widths:
                    out.append(_rec(b, seed, k, "gap_2p", val, why, ""))
            d = float(np.mean(gaps)) + margin if not reasons and gaps else math.nan
            rec = _rec(b, seed, 0, "delta_2p", d, "; ".join(reasons), "")
            rec["widths"] = ",".join(str(k) for k in primary_widths)
            rec["margin"] = margin
            out.append(rec)
    return out


def _rec(method: str, seed: int, width: int, metric: str, value: float, note: str, censored: str) -> dict[str, Any]:
    return {"method": method, "seed": int(seed), "width": int(width), "metric": metric, "value": float(value),
            "note": note, "censored": censored}


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
        res.update(a=float(popt[0]), b=float(popt[1]), c=float(popt[2]),
                   rmse=float(np.sqrt(np.mean((saturating(p / x0, *popt) - acc) ** 2))))
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
