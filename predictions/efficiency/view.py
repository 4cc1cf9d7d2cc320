"""P3 parameter efficiency, the view: the comparison rows, descriptive tables, figures (protocol v2).

Primary (docs/protocol.md, P3): per baseline B, the rows ``delta_2p`` (method = B) hold per seed
``d = Delta_B + delta`` (delta = 0.01, already added; the subject's seed s against B's seed s),
compared with 0 over seeds, predicted higher; beside it B's gain per doubling ``g_B`` (rows
``g_2p``). The frames are unjudged (:func:`tables.unjudged_rows`): the report corrects and judges
within the families, PA being the conventional models (:data:`curves.PA`); the other baselines form
the descriptive family ``other``. Secondary: the same on unseen classes, every method trained on
``[0-4]`` and probed on ``[5-9]``; the in-domain subject is a reference table only.
"""

from __future__ import annotations

import pandas as pd

from bench.protocol import SUBJECT, VIEWS, Table, Verdict, View
from bench.report import plots
from predictions.efficiency import figures as F
from predictions.efficiency import tables as T
from predictions.efficiency.curves import PA

STUDIES = {"main": "the run's dataset", "unseen_classes": "classes [5-9], every method trained on [0-4]"}
NA = {"raw": "raw reads no parameters (P = 0): it has no curve to read at 2 P_S(K)"}


@VIEWS.register()
class EfficiencyView(View):
    """P3 parameter efficiency: probe accuracy against deployed parameters over a width sweep."""

    order = 3  # its place in prediction=all and the summary
    name = "efficiency"
    title = "Parameter efficiency: do smaller InfoMax models match larger conventional ones?"
    statement = (
        "\u201cSmaller InfoMax models match larger conventional models. Same information, fewer "
        "parameters.\u201d And, among the essay's open questions: \u201cDoes InfoMax scale? RBMs didn't "
        "scale. Autoencoders did but weren't enough. Contrastive learning scales. Foundation model "
        "objectives scale massively. Where does InfoMax land?\u201d"
    )
    protocol = (
        "Width sweep K in {8, ..., 128} (quick, confirm) or {4, ..., 256} (full) for every method and seed; "
        "supervised_cnn is swept over its channel width c (stages c x (1, 2, 4, 8), c in {4, 5, 6, 8, 10, 12}) "
        "at projection width 64 (column channels). The standard linear probe (L2 chosen on val, test once) at "
        "each point. P = every float the deployed encoder reads (weights, biases, means, variances, BatchNorm "
        "statistics, MAE's positional embedding; raw reads none, P = 0), checked against hand counts; "
        "training-only parts (heads, decoders, projectors) are counted apart. Every curve, the subject's too, "
        "is read through its per-seed isotonic fit on log P, linearly between points, never extrapolated "
        "(outside B's sweep: n/a with the reason). Primary, per seed: Delta_B = mean over K in {16, 32, 64} of "
        "acc_S(K) - acc_B(2 P_S(K)); d = Delta_B + delta, delta = 0.01 declared in advance; predicted: d > 0 "
        "(the subject at P within one point of B at 2P). Beside it B's gain per doubling g_B = mean over the "
        "same K of acc_B(2 P_S(K)) - acc_B(P_S(K)): where g_B < delta, B is saturated and a method no more "
        "efficient than B would also show d > 0. Families: PA = supervised, supervised_mlp2, supervised_cnn; "
        "the other baselines are a descriptive family of their own. Descriptive: the multiplier "
        "m_B(K) = P_B(acc_S(K)) / P_S(K) with its censoring, a saturating fit with held-out error, P for "
        "90/95/99% of raw's accuracy, training steps, accuracy gained per doubling of P, and the rule applied "
        "to copies of the subject (calibration). Secondary: every method, the subject too, trained on classes "
        "[0-4] and probed on [5-9] at every width; the subject trained on [5-9] is a reference only."
    )
    pa = PA
    verdicts = (
        Verdict(
            "delta_2p",
            "higher",
            {"study": "main"},
            "Delta_B + 1 point, subject at P vs baseline at 2P",
            note="d = Delta_B + 0.01 per seed (predicted > 0: the subject within one point of B at twice its "
            "parameters); g_B = B's gain per doubling of P at the same K (g_B < 0.01: B is saturated "
            "there). n = 0 rows: B's sweep does not reach 2 P_S(K) (see reason).",
            role="primary",
            na=NA,
        ),
        Verdict(
            "delta_2p",
            "higher",
            {"study": "unseen_classes"},
            "secondary, unseen classes [5-9] (every method trained on [0-4]): Delta_B + 1 point",
            role="secondary",
            na=NA,
        ),
    )

    def verdict_frame(self, df: pd.DataFrame, v: Verdict) -> pd.DataFrame:
        return T.unjudged_rows(df, v.metric, SUBJECT, v.direction, v.where, na=v.na)

    def _studies(self, df: pd.DataFrame) -> list[str]:
        present = set(df["study"].dropna()) if "study" in df.columns else set()
        return [s for s in STUDIES if s in present]

    def tables(self, df: pd.DataFrame) -> list[Table]:
        tabs = self.verdict_tables(df)
        for st in self._studies(df):
            where = {"study": st}
            summ = T.per_k_table(df, where)
            if len(summ):
                tabs.append(
                    Table(
                        f"{st}: per K, in points (mean over seeds): gap acc_S(K) - acc_B(2 P_S(K)) and "
                        "B's gain per doubling acc_B(2 P_S(K)) - acc_B(P_S(K))",
                        summ,
                        note="n counts seeds with a value; a missing K is outside B's sweep.",
                    )
                )
            mult = T.multiplier_table(df, where)
            if len(mult):
                tabs.append(
                    Table(
                        f"{st}: parameter multiplier m_B(K) (descriptive)",
                        mult,
                        note="m < 2 at the primary's K: B needs less than twice the subject's P to match it. "
                        "No interval is computed over censored values.",
                    )
                )
            curves = T.curves_frame(df, where)
            tabs.append(
                Table(
                    f"{st}: saturating fit acc(P) = a - b (P/P_min)^(-c) and its held-out error",
                    T.fit_table(curves),
                    note="held-out error: fitted without the largest K, predicted minus observed mean "
                    "accuracy at the largest K (fit quality for extrapolation).",
                )
            )
            tabs.append(
                Table(
                    f"{st}: P needed for 90/95/99% of the raw probe's accuracy",
                    T.raw_fraction_table(curves),
                    note="median over seeds on each isotonic fit; <= / > : the median is a bound "
                    "(L/R: left/right-censored seeds).",
                )
            )
            tabs.append(Table(f"{st}: training cost", T.steps_table(df, where)))
            deltas = plots.select(df, "delta_2p", where)
            if len(deltas):
                ks = [int(k) for k in str(deltas["widths"].dropna().iloc[0]).split(",")]
                calib = T.self_copy_deltas(curves, SUBJECT, ks, float(deltas["margin"].dropna().iloc[0]))
                tabs.append(
                    Table(
                        f"{st}: calibration, the subject against a copy of itself (seeds rotated)",
                        calib,
                        note="factor 1: same P, margin 0 (seed noise alone: the rotation makes mean d 0 by "
                        "construction; its interval is the seed noise). factor 2: the primary's rule applied to a copy: expected "
                        "d = delta - g (the copy's gain per doubling), the bar a method exactly as "
                        "efficient as the subject would face; direction opposite when g > delta.",
                    )
                )
            if st == "unseen_classes":
                ref = T.reference_table(df, SUBJECT)
                if len(ref):
                    tabs.append(
                        Table(
                            "unseen_classes: reference, the subject trained on [5-9] (in-domain) beside the "
                            "subject trained on [0-4] (the compared one), probe accuracy on [5-9]",
                            ref,
                            note="a reference only: the compared curves are all trained on [0-4].",
                        )
                    )
        for st in self._studies(df):
            curves = T.curves_frame(df, {"study": st})
            scale = T.scaling_table(curves)
            tabs.append(
                Table(
                    f"Does InfoMax scale? ({st}) Accuracy gained per doubling of deployed parameters",
                    scale,
                    note=T.scaling_sentence(scale, SUBJECT),
                )
            )
        return tabs

    def figures(self, df: pd.DataFrame, matrices: pd.DataFrame):
        curves = {st: T.curves_frame(df, {"study": st}) for st in self._studies(df)}
        deltas = df[df["metric"] == "delta_2p"]
        mult = plots.select(df, "multiplier", {"study": "main"})
        return F.all_figures(curves, deltas, mult)
