"""Estimates of the independence question from its tidy table (docs/protocol.md 11.2); torch-free.

(a) Directional estimate, per dataset and outcome Y of the subject's dose-response (``tc=corr``):
    lambda* = the dose with the highest mean Y on val (half B of val: half A chose the probe's L2) over
    seeds; per seed s, D_s = Y_s(lambda*_-s) - Y_s(10) on test, where lambda*_-s is chosen the same way
    from the OTHER seeds' val (leave-one-seed-out: a seed's own luck at a dose cannot select that dose
    for it), and D1_s likewise against lambda_tc = 1 (the default). Ties go to the larger dose. On
    profile ``confirm`` only, Holm over the family (every dataset x Y cell): "contradicted" when
    D > 0 with Holm-adjusted paired t and sign-flip p both < .05 (some redundancy is good);
    "supported" when the upper end of D's simultaneous interval (level 1 - .05/m) is below 1 point;
    else "inconclusive". Exploratory profiles show estimates and directions only.
(b) Rotation ladder: every rung's mean and its per-seed difference from t = 0.
(c) Dependent factors: per arm and seed, the OLS slope of MCC on the factors' own Pearson correlation
    across the dependent settings; the subject minus each other arm, paired by seed
    (:func:`bench.evaluate.estimates.differences`: Bonferroni intervals, Holm p).
(d) Zoo: Spearman's rank correlation over methods between kNN predictability and mean retained
    accuracy, and its partial on clean accuracy, with a two-level (methods, then seeds) percentile bootstrap.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as st

from bench.evaluate import estimates
from bench.evaluate.inference import holm, t_interval
from bench.evaluate.resampling import sign_flip_p
from bench.evaluate.stats import _p_t

OUTCOMES = {  # Y -> (metric, extra condition)
    "robustness": ("retained_mean", {"perturbation": "all"}),
    "acc": ("acc", {}),
    "kappa": ("kappa", {}),
}
LABELS = {"robustness": "retained accuracy", "acc": "clean accuracy", "kappa": "transfer kappa (n = 10)"}
TOP = 10.0  # the most independent dose of the sweep: D's reference
DEFAULT = 1.0  # the subject's own lambda_tc
MARGIN = 0.01  # "supported": D's upper bound below 1 point
ALPHA = 0.05
DATASETS = ("mnist5k", "mnist1d")  # the order of the family (and of the answer's headline)


def select(df: pd.DataFrame, **eq) -> pd.DataFrame:
    """Rows where every named column equals its value (no such column: no row)."""
    keep = pd.Series(True, index=df.index)
    for col, v in eq.items():
        if col not in df.columns:
            return df.iloc[0:0]
        keep &= df[col].eq(v).fillna(False).astype(bool)
    return df[keep]


def dose_grid(df: pd.DataFrame, dataset: str, method: str, y: str, split: str, tc: str = "corr") -> pd.DataFrame:
    """Seeds x doses (lambda_tc) matrix of outcome ``y`` on ``split`` for one method's dose sweep."""
    metric, extra = OUTCOMES[y]
    sel = select(df, part="dose", dataset=dataset, method=method, tc=tc, metric=metric, split=split, **extra)
    if sel.empty:
        return pd.DataFrame()
    return sel.pivot_table(index="seed", columns="lambda_tc", values="value", aggfunc="mean").sort_index(axis=1)


def choose(val: pd.DataFrame) -> float:
    """The dose with the highest mean over the rows (seeds) of ``val``; ties to the larger dose; nan if none."""
    mean = val.mean(axis=0, skipna=True).dropna()
    if mean.empty:
        return math.nan
    best = mean.max()
    return float(max(lam for lam, v in mean.items() if v == best))


def loso(val: pd.DataFrame) -> dict:
    """Seed -> lambda* chosen on the other seeds' val (all seeds' when there is no other seed)."""
    out = {}
    for s in val.index:
        rest = val.drop(index=s)
        out[s] = choose(rest if len(rest) else val)
    return out


def _cell(val: pd.DataFrame, test: pd.DataFrame) -> dict | None:
    if test.empty or val.empty or TOP not in test.columns or test.shape[1] < 2:
        return None
    lam_star, per = choose(val), loso(val)
    d, d1, seeds = [], [], []
    for s in test.index:
        ls = per.get(s, lam_star)
        if s not in val.index or math.isnan(ls) or ls not in test.columns:
            continue
        seeds.append(s)
        d.append(test.at[s, ls] - test.at[s, TOP])
        d1.append(test.at[s, ls] - test.at[s, DEFAULT] if DEFAULT in test.columns else math.nan)
    d, d1 = np.array(d, dtype=float), np.array(d1, dtype=float)
    ok = np.isfinite(d)
    if not ok.any():
        return None
    mean, lo, hi = t_interval(d[ok])
    m1, lo1, hi1 = t_interval(d1[np.isfinite(d1)]) if np.isfinite(d1).any() else (math.nan,) * 3
    return {
        "lambda_star": lam_star,
        "loso_agree": int(sum(per.get(s) == lam_star for s in seeds)),
        "n": int(ok.sum()),
        "D": mean,
        "D_lo": lo,
        "D_hi": hi,
        "D1": m1,
        "D1_lo": lo1,
        "D1_hi": hi1,
        "p_t": _p_t(d[ok]),
        "p_perm": sign_flip_p(d[ok]),
        "_d": d[ok],
    }


def directional(df: pd.DataFrame, method: str = "infomax", confirm: bool = False) -> pd.DataFrame:
    """One row per (dataset, Y) of the subject's dose sweep: lambda*, D and D1 with 95% t-intervals, and on
    ``confirm`` the family's Holm-adjusted p, the simultaneous interval and the verdict (see the module)."""
    rows = []
    have = set(select(df, part="dose")["dataset"]) if "dataset" in df.columns else set()
    for dataset in [d for d in DATASETS if d in have] + sorted(have - set(DATASETS)):
        for y in OUTCOMES:
            cell = _cell(dose_grid(df, dataset, method, y, "val"), dose_grid(df, dataset, method, y, "test"))
            if cell is not None:
                rows.append({"dataset": dataset, "outcome": y, **cell})
    cols = ["dataset", "outcome", "lambda_star", "loso_agree", "n", "D", "D_lo", "D_hi", "D1", "D1_lo", "D1_hi"]
    if not rows:
        return pd.DataFrame(columns=[*cols, "p_t", "p_perm", "p_holm", "p_perm_holm", "sim_hi", "verdict"])
    out = pd.DataFrame(rows)
    m = len(out)
    out["p_holm"] = holm(out["p_t"].to_numpy(dtype=float))
    out["p_perm_holm"] = holm(out["p_perm"].to_numpy(dtype=float))
    out["sim_hi"] = [t_interval(d, level=1 - ALPHA / m)[2] for d in out["_d"]]
    verdicts = []
    for _, r in out.iterrows():
        if not confirm:
            verdicts.append("")
        elif r["D"] > 0 and r["p_holm"] < ALPHA and r["p_perm_holm"] < ALPHA:
            verdicts.append("contradicted")
        elif r["sim_hi"] < MARGIN:
            verdicts.append("supported")
        else:
            verdicts.append("inconclusive")
    out["verdict"] = verdicts
    return out.drop(columns="_d")


def _pts(v: float) -> str:
    return f"{100 * v:+.1f}"


def describe(r: pd.Series) -> str:
    return (
        f"{LABELS[r['outcome']]} at lambda*={r['lambda_star']:g} minus lambda_tc=10: {_pts(r['D'])} "
        f"[{100 * r['D_lo']:.1f}, {100 * r['D_hi']:.1f}] points on {r['dataset']} ({r['n']} seeds)"
    )


def answer(df: pd.DataFrame, profile: str | None) -> str:
    """The question's one sentence from the family of :func:`directional` (the subject's, ``infomax``)."""
    tab = directional(df, confirm=profile == "confirm")
    tab = tab[tab["n"] >= 2] if len(tab) else tab
    if tab.empty:
        return "undetermined: the run has no dose-response of the subject on two or more seeds (lambda_tc = 10 and another dose, val and test)"
    head = tab[(tab["dataset"] == "mnist5k") & (tab["outcome"] == "robustness")]
    head = head.iloc[0] if len(head) else tab.iloc[0]
    up = int((tab["D"] > 0).sum())
    if profile != "confirm":
        return (
            f"undetermined: no verdict on profile {profile} (direction only): {describe(head)}; "
            f"Y(lambda*) > Y(10) in {up} of {len(tab)} outcomes"
        )
    bad = tab[tab["verdict"] == "contradicted"].sort_values("p_holm")
    if len(bad):
        r = bad.iloc[0]
        d1 = f"{_pts(r['D1'])} [{100 * r['D1_lo']:.1f}, {100 * r['D1_hi']:.1f}]"
        return (
            f"Some redundancy helps: {LABELS[r['outcome']]} at lambda*={r['lambda_star']:g} beats lambda_tc=10 by "
            f"{100 * r['D']:.1f} [{100 * r['D_lo']:.1f}, {100 * r['D_hi']:.1f}] points on {r['dataset']} (Holm p = "
            f"{r['p_holm']:.3g}; {len(bad)} of {len(tab)} outcomes); against the default lambda_tc=1: {d1} points."
        )
    if (tab["verdict"] == "supported").all():
        worst = tab.loc[tab["sim_hi"].idxmax()]
        return (
            f"No: the most independent dose is within 1 point of the best on every outcome ({len(tab)}); the largest "
            f"upper bound of Y(lambda*) - Y(10) is {100 * worst['sim_hi']:.1f} points ({LABELS[worst['outcome']]}, "
            f"{worst['dataset']})."
        )
    return f"undetermined: {describe(head)}; no outcome is significantly better below lambda_tc=10, and not every one is within 1 point"


# ----------------------------------------------------------------------------- (b) rotation
def rotation_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per arm and t: means over seeds, and the per-seed change from t = 0 of MI and retained accuracy."""
    rot = select(df, part="rotation")
    if rot.empty:
        return pd.DataFrame()
    cols = {
        "acc": ("acc", {"split": "test"}),
        "gaussian_tc_train": ("gaussian_tc_train", {}),
        "gaussian_tc": ("gaussian_tc", {}),
        "pairwise_mi": ("pairwise_mi", {}),
        "knn_predictability": ("knn_predictability", {}),
        **{
            f"retained_{k}": ("retained_mean", {"split": "test", "perturbation": k})
            for k in ("zero", "all")  # noise and occlusion reach the probe through the rotation: unchanged
        },
    }
    grids = {}
    for name, (metric, extra) in cols.items():
        sel = select(rot, metric=metric, **extra)
        if len(sel):
            grids[name] = sel.pivot_table(index=["arm", "seed"], columns="t", values="value", aggfunc="mean")
    rows = []
    for arm in sorted(set(rot["arm"])):
        for t in sorted(set(rot["t"].dropna())):
            r = {"arm": arm, "t": t}
            for name, g in grids.items():
                if arm not in g.index.get_level_values(0) or t not in g.columns:
                    continue
                v = g.loc[arm]
                r[name] = float(v[t].mean())
                if name in ("pairwise_mi", "retained_zero", "retained_all") and 0.0 in v.columns:
                    mean, lo, hi = t_interval((v[t] - v[0.0]).to_numpy(dtype=float))
                    r[f"d {name} [CI]"] = f"{mean:+.4f} [{lo:.4f}, {hi:.4f}]" if t else ""
                if name == "acc" and 0.0 in v.columns:
                    r["max |d acc|"] = float((v[t] - v[0.0]).abs().max())
            rows.append(r)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- (c) factors
def factor_points(df: pd.DataFrame, setting: str) -> pd.DataFrame:
    """Per (arm, seed, law, rho): MCC, the factors' pair correlation (x), the pair excess, energy dependence."""
    sel = select(df, part="factors", setting=setting)
    if sel.empty:
        return pd.DataFrame()
    keys = ["arm", "seed", "law", "rho"]
    wide = sel.assign(rho=sel["rho"].fillna(-1.0)).pivot_table(index=keys, columns="metric", values="value")
    return wide.reset_index().assign(rho=lambda f: f["rho"].where(f["rho"] >= 0, math.nan))


def slopes(df: pd.DataFrame, setting: str) -> dict[str, estimates.Estimate]:
    """Arm -> slope of MCC on the factors' Pearson pair correlation (per seed, over the dependent settings)."""
    pts = factor_points(df, setting)
    if pts.empty or "pair_source_corr" not in pts.columns:
        return {}
    pts = pts[pts["law"] != "elliptical"]
    out = {}
    for arm, g in pts.groupby("arm"):
        seeds, vals = [], []
        for s, h in g.groupby("seed"):
            h = h[np.isfinite(h["mcc"]) & np.isfinite(h["pair_source_corr"])]
            seeds.append(s)
            ok = len(h) >= 2 and h["pair_source_corr"].nunique() >= 2
            vals.append(np.polyfit(h["pair_source_corr"], h["mcc"], 1)[0] if ok else math.nan)
        if seeds:
            out[str(arm)] = estimates.estimate(seeds, vals)
    return out


def slope_differences(df: pd.DataFrame, setting: str, subject: str = "infomax") -> list[estimates.Difference]:
    """The subject's slope minus each other arm's, paired by seed (Bonferroni intervals, Holm p)."""
    s = slopes(df, setting)
    if subject not in s:
        return []
    others = {a: dict(e.per_seed) for a, e in s.items() if a != subject}
    return estimates.differences(dict(s[subject].per_seed), others) if others else []


# ----------------------------------------------------------------------------- (d) zoo
def zoo_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Per (method, seed) of the zoo: kNN predictability, mean retained accuracy and clean accuracy (test)."""
    z = select(df, part="zoo")
    if z.empty:
        return pd.DataFrame(columns=["method", "seed", "redundancy", "robustness", "acc"])
    parts = {
        "redundancy": select(z, metric="knn_predictability"),
        "robustness": select(z, metric="retained_mean", split="test", perturbation="all"),
        "acc": select(z, metric="acc", split="test"),
    }
    frames = [p.groupby(["method", "seed"])["value"].mean().rename(k) for k, p in parts.items()]
    return pd.concat(frames, axis=1).dropna().reset_index()


def _rank_corr(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[float, float]:
    """Spearman's rho of x and y, and its partial on z (Pearson on ranks, then the partial formula)."""
    rx, ry, rz = (st.rankdata(v) for v in (x, y, z))
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.corrcoef(np.vstack([rx, ry, rz]))
        rxy, rxz, ryz = c[0, 1], c[0, 2], c[1, 2]
        partial = (rxy - rxz * ryz) / math.sqrt(max((1 - rxz**2) * (1 - ryz**2), 0.0))
    return float(rxy), float(partial) if np.isfinite(partial) else math.nan


def zoo_correlations(frame: pd.DataFrame, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """Spearman(redundancy, robustness) and its partial on accuracy over the methods' seed means, with
    two-level percentile bootstrap intervals (methods resampled, then each drawn method's seeds)."""
    methods = sorted(set(frame["method"])) if len(frame) else []
    out = {"n_methods": len(methods), "n_seeds": int(frame.groupby("method").size().min()) if methods else 0}
    if len(methods) < 4:
        return {**out, "rho": math.nan, "partial": math.nan, "rho_ci": (math.nan,) * 2, "partial_ci": (math.nan,) * 2}
    vals = [frame[frame["method"] == m][["redundancy", "robustness", "acc"]].to_numpy(dtype=float) for m in methods]
    means = np.array([v.mean(0) for v in vals])
    rho, partial = _rank_corr(*means.T)
    rng = np.random.default_rng(seed)
    boots = np.full((n_boot, 2), math.nan)
    for b in range(n_boot):
        pick = rng.integers(0, len(methods), len(methods))
        m = np.array([vals[i][rng.integers(0, len(vals[i]), len(vals[i]))].mean(0) for i in pick])
        if len(set(pick.tolist())) >= 3:
            boots[b] = _rank_corr(*m.T)
    q = [(1 - level) / 2, (1 + level) / 2]
    ci = [tuple(np.nanquantile(boots[:, j], q)) if np.isfinite(boots[:, j]).any() else (math.nan,) * 2 for j in (0, 1)]
    return {**out, "rho": rho, "partial": partial, "rho_ci": ci[0], "partial_ci": ci[1]}
