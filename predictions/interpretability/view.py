"""Prediction 4, interpretability, the view: verdicts and tables from the tidy table alone.

Two primaries, both predicted subject HIGHER: MCC on ``ica`` linear (Pearson, pre-activations)
and DCI disentanglement on ``dsprites`` at the suite's width. Holm runs across ALL primary x
baseline rows (2 B tests), not per table; the overall verdict per baseline (§8 P4) is
supported only if supported on both, contradicted if contradicted on either, else inconclusive.
Its ``p_holm`` is the larger of the two (the intersection-union test of "better on both").
Secondary verdicts are Holm-corrected within their own table. Gaussian TC is a manipulation
check (shown, never a verdict). The figures are :mod:`predictions.interpretability.figures`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bench import plots
from bench.protocol import SUBJECT, VIEWS, Table, Verdict, View
from bench.stats import FIELDS, holm, verdict
from bench.verdicts import STATUS_METRICS, verdict_from_tidy
from predictions.interpretability import figures

ICA = {"setting": "ica_linear", "feature": "pre", "corr": "pearson"}
WIDE, NARROW = {"setting": "dsprites_wide"}, {"setting": "dsprites_narrow"}
CEILING = 1 / math.sqrt(1.5)
BY = ("dataset", "setting")


def scoped(df: pd.DataFrame, metric: str, where: dict) -> pd.DataFrame:
    """The metric rows plus the status rows (failed / skipped jobs) of the same (dataset, width,
    ``data`` tag) jobs, given the metric rows' ``setting``: a method skipped on ``ica`` appears in the ``ica``
    tables only, never as a group of its own in a ``dsprites`` table."""
    sel = plots.select(df, metric, where)
    status = df[df["metric"].isin(STATUS_METRICS)]
    parts = [sel]
    for (ds, setting), g in sel.groupby(["dataset", "setting"]):
        st = status[(status["dataset"] == ds) & status["width"].isin(g["width"].unique())].copy()
        if "data" in df.columns:  # ica linear vs nonlinear: same dataset and width, other DataConfig
            tags = set(g["data"].dropna())
            st = st[st["data"].isin(tags)] if tags else st[st["data"].isna()]
        st["setting"] = setting
        parts.append(st)
    return pd.concat(parts, ignore_index=True)


@VIEWS.register()
class InterpretabilityView(View):
    """P4: does each feature correspond to an independent factor? MCC, DCI, MIG, purity, atlas."""

    name = "interpretability"
    title = "P4 interpretability: does each InfoMax feature correspond to an independent factor?"
    statement = ("\u201cInfoMax features are interpretable. Each corresponds to an independent factor. "
                 "You can name them.\u201d")
    protocol = (
        "ica (Laplace sources, A = Q1 diag(d) Q2^T, K = number of sources): MCC = mean |corr| between sources and "
        "the pre-activations z = Wx + b of Linear+activation encoders (the features otherwise) after one-to-one "
        "matching (linear_sum_assignment) learnt on train, scored on test; Spearman too; MCC on activations is a "
        "secondary (ceiling 1/sqrt(1.5) = 0.816 for a ReLU of a Laplace source); nonlinear mixing: secondary. "
        "dsprites at K = 64 and K = 5, orientation reduced modulo each shape's symmetry (square 4-fold, ellipse "
        "2-fold, heart none) and reported per factor, left out of the averages (shape, scale, pos_x, pos_y): DCI "
        "(Eastwood & Williams 2018) from extra-trees impurity importances (20 trees, depth 8, 5k train rows), "
        "informativeness = their test accuracy; MIG (Chen et al. 2018) with equal-frequency bins from train "
        "quantiles [20; 10 and 50 as sensitivity]; SAP (Kumar et al. 2018; nearest-class-mean on one unit); "
        "modularity (Ridgeway & Mozer 2018). mnist5k, digits: label purity of each unit's top m test images "
        "(m = 20; 10 on digits; tail of signed codes chosen on train; dead units score 0) minus its value under "
        "permuted labels; k-sparse probing AUROC (k = 1, 5) with units and signs chosen by train AUROC, scored on "
        "test; the feature atlas. Codes are clipped to their train [0.1%, 99.9%] range first. Primaries: MCC on "
        "ica linear and DCI-D on dsprites K = 64, predicted subject HIGHER; Holm across all primary x baseline "
        "rows; overall per baseline: supported only if supported on both, contradicted if contradicted on either. "
        "Gaussian TC: manipulation check (the subject's own proxy). Pairwise MI of binned units: secondary (lower)."
    )
    verdicts = (
        Verdict("mcc", "higher", ICA, "MCC on ica linear, pre-activations (Pearson)"),
        Verdict("dci_d", "higher", WIDE, "DCI disentanglement on dsprites, K = width"),
        Verdict("mcc", "higher", {**ICA, "corr": "spearman"}, "MCC on ica linear, pre-activations (Spearman)"),
        Verdict("mcc", "higher", {**ICA, "feature": "act"}, "MCC on ica linear, activations (Pearson)",
                f"A ReLU code that is exactly the rectified sources scores {CEILING:.3f} here (the ceiling)."),
        Verdict("mcc", "higher", {**ICA, "setting": "ica_nonlinear"}, "MCC on ica nonlinear, pre-activations",
                "Not identifiable, and one layer cannot invert a 2-layer mixing: descriptive."),
        Verdict("dci_d", "higher", NARROW, "DCI disentanglement on dsprites, K = 5"),
        Verdict("dci_c", "higher", WIDE, "DCI completeness on dsprites, K = width"),
        Verdict("dci_i", "higher", WIDE, "DCI informativeness (tree test accuracy) on dsprites, K = width"),
        Verdict("mig", "higher", {**WIDE, "bins": 20}, "MIG (20 bins) on dsprites, K = width",
                "MIG scores live duplicated units as 0 when K >> factors: a secondary."),
        Verdict("mig", "higher", {**NARROW, "bins": 20}, "MIG (20 bins) on dsprites, K = 5"),
        Verdict("sap", "higher", WIDE, "SAP on dsprites, K = width"),
        Verdict("modularity", "higher", WIDE, "modularity on dsprites, K = width"),
        Verdict("pairwise_mi", "lower", WIDE, "pairwise MI of binned units on dsprites, K = width"),
        Verdict("purity_excess", "higher", {"setting": "real"}, "label purity minus permuted-label purity",
                "Tests a 'prototype' reading; digit class is not an independent factor of MNIST."),
        Verdict("sparse_auroc", "higher", {"setting": "real", "k": 1}, "1-sparse probing AUROC (unit chosen on train)"),
        Verdict("sparse_auroc", "higher", {"setting": "real", "k": 5}, "5-sparse probing AUROC (units chosen on train)"),
    )
    verdict_by = BY

    def verdict_frame(self, df: pd.DataFrame, v: Verdict) -> pd.DataFrame:
        return verdict_from_tidy(scoped(df, v.metric, v.where), v.metric, SUBJECT, v.direction, by=BY)

    def verdict_tables(self, df: pd.DataFrame) -> list[Table]:
        primaries = [(v, self.verdict_frame(df, v)) for v in self.verdicts[:2]]
        primaries = [(v, f) for v, f in primaries if len(plots.select(df, v.metric, v.where))] or primaries[:1]
        adj = holm(np.concatenate([f["p_t"].to_numpy(float) for _, f in primaries]))
        i = 0
        for v, f in primaries:
            f["p_holm"] = adj[i:i + len(f)]
            f["verdict"] = [verdict(m, p, n, v.direction) for m, p, n in zip(f["mean_diff"], f["p_holm"], f["n"],
                                                                              strict=True)]
            i += len(f)
        out = [Table("Primary, overall per baseline: supported only if supported on both primaries, contradicted "
                     "if contradicted on either", overall_frame(primaries), verdict=True,
                     note="Holm across all primary x baseline rows. p (Holm) = the larger of the two primaries' "
                          "(both must be significant); mean diff and CI are per primary, in the tables below.")]
        for v, f in primaries:
            out.append(Table(f"Primary: {v.title} (Holm across both primaries)", f, verdict=True, note=v.note))
        for v in self.verdicts[2:]:
            if len(plots.select(df, v.metric, v.where)):
                out.append(Table(f"Secondary: {v.title}", self.verdict_frame(df, v), verdict=True, note=v.note))
        return out

    def tables(self, df):
        tabs = self.verdict_tables(df)
        tabs += [t for t in (summary_table(df), factor_table(df), manipulation_table(df), timing_table(df))
                 if t is not None]
        return tabs

    def figures(self, df, matrices):
        return figures.all_figures(df, matrices)


def overall_frame(primaries: list[tuple[Verdict, pd.DataFrame]]) -> pd.DataFrame:
    """One row per baseline: its verdict under the §8 P4 rule, the larger Holm p, the smaller n."""
    names = list(dict.fromkeys(b for _, f in primaries for b in f["baseline"]))
    recs = []
    for b in names:
        got = [f[f["baseline"] == b].iloc[0] if (f["baseline"] == b).any() else None for _, f in primaries]
        verdicts = [g["verdict"] if g is not None else "inconclusive" for g in got]
        both = len(primaries) == 2 and all(g is not None for g in got)
        rule = ("contradicted" if "contradicted" in verdicts else
                "supported" if both and all(x == "supported" for x in verdicts) else "inconclusive")
        rec = {f: math.nan for f in FIELDS}
        for (v, _), g, x in zip(primaries, got, verdicts, strict=True):
            rec[f"{v.metric} d"] = math.nan if g is None else g["mean_diff"]
            rec[f"{v.metric} verdict"] = x
        rec.update(baseline=b, ci_method="t", verdict=rule,
                   n=int(min(g["n"] if g is not None else 0 for g in got)),
                   p_holm=_max_or_nan([g["p_holm"] for g in got]) if both else math.nan,
                   n_missing=int(sum(g["n_missing"] for g in got if g is not None)),
                   reason="; ".join(sorted({g["reason"] for g in got if g is not None and g["reason"]})))
        recs.append(rec)
    cols = [c for c in recs[0] if c not in FIELDS] if recs else []
    return pd.DataFrame(recs, columns=[*cols, *FIELDS])


def _max_or_nan(values: list[float]) -> float:
    """The larger p, or NaN when either primary has none (a baseline without a value on one primary
    has no joint p; Python's ``max`` would silently skip a NaN in some orders)."""
    vals = [float(v) for v in values]
    return math.nan if any(not np.isfinite(v) for v in vals) else max(vals)


def per_method(df: pd.DataFrame, columns: dict[str, tuple[str, dict]]) -> pd.DataFrame | None:
    out = {}
    for label, (metric, where) in columns.items():
        sel = plots.select(df, metric, where)
        if len(sel):
            out[label] = sel.groupby("method")["value"].apply(plots.mean_ci_cell)
    if not out:
        return None
    frame = pd.DataFrame(out).astype(object).fillna("n/a")
    order = [SUBJECT] + sorted(m for m in frame.index if m != SUBJECT)
    return frame.reindex([m for m in order if m in frame.index]).reset_index(names="method")


def summary_table(df: pd.DataFrame) -> Table | None:
    frame = per_method(df, {
        "MCC pre": ("mcc", ICA), "MCC act": ("mcc", {**ICA, "feature": "act"}),
        "MCC nonlin": ("mcc", {**ICA, "setting": "ica_nonlinear"}),
        "DCI-D 64": ("dci_d", WIDE), "DCI-C 64": ("dci_c", WIDE), "DCI-I 64": ("dci_i", WIDE),
        "DCI-D 5": ("dci_d", NARROW), "MIG 64": ("mig", {**WIDE, "bins": 20}), "MIG 5": ("mig", {**NARROW, "bins": 20}),
        "SAP 64": ("sap", WIDE), "purity-perm mnist": ("purity_excess", {"dataset": "mnist5k"}),
        "purity-perm digits": ("purity_excess", {"dataset": "digits"}),
        "AUROC k=1 mnist": ("sparse_auroc", {"dataset": "mnist5k", "k": 1}),
    })
    if frame is None:
        return None
    return Table("Summary per method (mean \u00b1 95% CI half-width over seeds)", frame,
                 note=f"MCC act ceiling for a ReLU code: {CEILING:.3f}. 64 = the suite's width on dsprites.")


def factor_table(df: pd.DataFrame) -> Table | None:
    sel = df[df["metric"].isin(["mig_factor", "dci_i_factor", "sap_factor"])]
    if not len(sel):
        return None
    cols = {f"{m.removesuffix('_factor')} {f}": (m, {"factor": f, "setting": "dsprites_wide"})
            for m in ("mig_factor", "dci_i_factor") for f in sel["factor"].dropna().unique()}
    frame = per_method(df, cols)
    return None if frame is None else Table(
        "Per factor on dsprites, K = width (orientation reduced modulo symmetry; not in the averages)", frame)


def manipulation_table(df: pd.DataFrame) -> Table | None:
    frame = per_method(df, {f"{lab} {s}": (m, {"setting": s}) for m, lab in
                            (("gaussian_tc", "TC"), ("pairwise_mi", "MI"), ("dead_fraction", "dead"))
                            for s in ("ica_linear", "dsprites_wide")})
    return None if frame is None else Table(
        "Manipulation check (Gaussian TC, the subject's own proxy: no verdict), pairwise MI and dead units", frame,
        note="TC in nats on test codes; MI: mean pairwise mutual information of 20-bin units (nats).")


def timing_table(df: pd.DataFrame) -> Table | None:
    sel = df[df["metric"] == "protocol_seconds"]
    if not len(sel):
        return None
    frame = sel.groupby(["setting", "dataset"])["value"].agg(["mean", "max", "count"]).reset_index()
    return Table("Metric time per encoder (seconds, protocol only, training and loading excluded)",
                 frame.rename(columns={"mean": "mean s", "max": "max s", "count": "encoders"}))
