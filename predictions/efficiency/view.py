"""P3 parameter efficiency, the view: the non-inferiority verdicts, descriptive tables, figures.

Primary (PROTOCOL.md §8 P3): per baseline B, the rows ``delta_2p`` (method = B) hold per seed
``d = Delta_B + delta``; the verdict is a one-sample test of d against 0 over seeds (t-interval,
paired-t and Wilcoxon p), Holm across the baselines of the dataset, predicted HIGHER (> 0).
"""

from __future__ import annotations

import pandas as pd

from bench import plots
from bench.protocol import SUBJECT, VIEWS, Table, Verdict, View
from predictions.efficiency import figures as F
from predictions.efficiency import tables as T

STUDIES = {"main": "the run's dataset", "unseen_classes": "classes [5-9], label-trained models trained on [0-4]"}


@VIEWS.register()
class EfficiencyView(View):
    """P3 parameter efficiency: probe accuracy against deployed parameters over a width sweep."""

    name = "efficiency"
    title = "Parameter efficiency: do smaller InfoMax models match larger conventional ones?"
    statement = ("\u201cSmaller InfoMax models match larger conventional models. Same information, fewer "
                 "parameters.\u201d And, among the essay's open questions: \u201cDoes InfoMax scale? RBMs didn't "
                 "scale. Autoencoders did but weren't enough. Contrastive learning scales. Foundation model "
                 "objectives scale massively. Where does InfoMax land?\u201d")
    protocol = (
        "Width sweep K in {8, ..., 128} (quick) or {4, ..., 256} (full) for every method and seed; the standard "
        "linear probe (L2 chosen on val, test once) at each point. P = every float the deployed encoder reads "
        "(weights, biases, means, variances, BatchNorm statistics, MAE's positional embedding; raw reads none, "
        "P = 0); training-only parts (heads, decoders, projectors) are counted apart. Each curve is read through "
        "its running maximum over increasing P, linearly in log P, never extrapolated. Primary, per seed: "
        "Delta_B = mean over K in {16, 32, 64} of acc_S(K) - acc_B(2 P_S(K)); verdict on d = Delta_B + delta, "
        "delta = 0.01 declared in advance, one-sample t-test against 0, Holm across baselines, predicted > 0 "
        "(the subject matches a model twice its size within one point). A K where 2 P_S(K) lies outside B's "
        "sweep makes that seed's Delta_B n/a (never averaged over fewer K). Descriptive: the multiplier "
        "m_B(K) = P_B(acc_S(K)) / P_S(K) with censoring, a saturating fit with held-out error, P for "
        "90/95/99% of raw's accuracy, training steps, and accuracy gained per doubling of P. Secondary: "
        "the same on classes [5-9] with the label-trained models trained on classes [0-4].")
    verdicts = (
        Verdict("delta_2p", "higher", {"study": "main"}, "Delta_B + 1 point, subject at P vs baseline at 2P",
                note="d = Delta_B + 0.01 per seed; supported = the subject is non-inferior (within 1 point) to "
                     "B at twice its parameters. n = 0 rows: B's sweep does not reach 2 P_S(K) (see reason)."),
        Verdict("delta_2p", "higher", {"study": "unseen_classes"},
                "secondary, unseen classes [5-9] (label-trained models trained on [0-4]): Delta_B + 1 point"),
    )

    def verdict_frame(self, df: pd.DataFrame, v: Verdict) -> pd.DataFrame:
        return T.one_sample_verdicts(df, v.metric, SUBJECT, v.direction, v.where)

    def verdict_tables(self, df: pd.DataFrame) -> list[Table]:
        out = []
        for i, v in enumerate(self.verdicts):
            frame = self.verdict_frame(df, v)
            if i and frame.empty:
                continue
            kind = "Primary" if i == 0 else "Secondary"
            out.append(Table(f"{kind}: {v.title}", frame, verdict=True, note=v.note))
        return out

    def _studies(self, df: pd.DataFrame) -> list[str]:
        present = set(df["study"].dropna()) if "study" in df.columns else set()
        return [s for s in STUDIES if s in present]

    def tables(self, df: pd.DataFrame) -> list[Table]:
        tabs = self.verdict_tables(df)
        for st in self._studies(df):
            where = {"study": st}
            gap = plots.select(df, "gap_2p", where)
            if len(gap):
                g = gap.copy()
                g["value"] = 100 * g["value"]
                summ = plots.mean_ci_table(g, ["method", "width"]).rename(
                    columns={"method": "baseline", "width": "K", "mean": "gap (points)", "half": "95% half-width"})
                tabs.append(Table(f"{st}: acc_S(K) - acc_B(2 P_S(K)) per K, in points (mean over seeds)", summ,
                                  note="n counts seeds with a value; a missing K is outside B's sweep."))
            mult = T.multiplier_table(df, where)
            if len(mult):
                tabs.append(Table(f"{st}: parameter multiplier m_B(K) (descriptive, no verdict)", mult,
                                  note="m < 2 at the primary's K: B needs less than twice the subject's P to match it. "
                                       "No interval is computed over censored values."))
            curves = T.curves_frame(df, where)
            tabs.append(Table(f"{st}: saturating fit acc(P) = a - b (P/P_min)^(-c) and its held-out error",
                              T.fit_table(curves),
                              note="held-out error: fitted without the largest K, predicted minus observed mean "
                                   "accuracy at the largest K (fit quality for extrapolation)."))
            tabs.append(Table(f"{st}: P needed for 90/95/99% of the raw probe's accuracy",
                              T.raw_fraction_table(curves),
                              note="median over seeds on each running maximum; <= / > : the median is a bound "
                                   "(L/R: left/right-censored seeds)."))
            tabs.append(Table(f"{st}: training cost", T.steps_table(df, where)))
            deltas = plots.select(df, "delta_2p", where)
            if len(deltas):
                ks = [int(k) for k in str(deltas["widths"].dropna().iloc[0]).split(",")]
                calib = T.self_copy_deltas(curves, SUBJECT, ks, float(deltas["margin"].dropna().iloc[0]))
                tabs.append(Table(f"{st}: calibration, the subject against a copy of itself (seeds rotated)", calib,
                                  note="factor 1: same P, margin 0 (seed noise alone; expected inconclusive). "
                                       "factor 2: the primary's rule applied to a copy: d = delta - (gain of one "
                                       "doubling), the bar a method as efficient as the subject would face."))
        for st in self._studies(df):
            curves = T.curves_frame(df, {"study": st})
            scale = T.scaling_table(curves)
            tabs.append(Table(f"Does InfoMax scale? ({st}) Accuracy gained per doubling of deployed parameters",
                              scale, note=T.scaling_sentence(scale, SUBJECT)))
        return tabs

    def figures(self, df: pd.DataFrame, matrices: pd.DataFrame):
        curves = {st: T.curves_frame(df, {"study": st}) for st in self._studies(df)}
        deltas = df[df["metric"] == "delta_2p"]
        mult = plots.select(df, "multiplier", {"study": "main"})
        return F.all_figures(curves, deltas, mult)
