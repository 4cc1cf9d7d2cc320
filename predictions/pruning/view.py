"""Prediction 1, prunability, the view: verdicts and tables from the tidy table alone.

Primary: ``aurc_best`` = test AURC with ``refit`` under the criterion of
``PRIMARY_CRITERIA`` (those that apply to every method) with the highest AURC on val half B
(chosen on val, never on test, never on the half that scored ``importance``); predicted: subject
LOWER than each baseline. Secondary verdicts (all predicted lower): AURC under ``magnitude``,
``rank`` AURC, prunable fraction, pairwise MI, nonlinear predictability. Manipulation checks (the
subject's own TC proxies: Gaussian TC, mean |corr|, effective rank) are shown, never a verdict.
acc(0), the unpruned probe accuracy, stands beside every AURC: a weak code has less to lose.
The figures are :mod:`predictions.pruning.figures`.
"""

from __future__ import annotations

import pandas as pd

from bench.protocol import SUBJECT, VIEWS, Table, Verdict, View
from bench.report import plots
from predictions.pruning import figures

REFIT = {"probe_mode": "refit"}


@VIEWS.register()
class PruningView(View):
    """P1: can InfoMax features be pruned? Structured, unstructured and end-to-end pruning."""

    order = 1  # its place in prediction=all and the summary
    name = "pruning"
    title = "P1 prunability: can InfoMax-pretrained features be pruned?"
    statement = (
        "\u201cInfoMax-pretrained models can't be pruned. Each feature carries unique information. "
        "No redundancy to remove.\u201d Against conventional pretraining: \u201cRedundancy is rampant. "
        "Models can be pruned 50-90%.\u201d"
    )
    protocol = (
        "Width 64, every registered method but raw, same split, epochs and batch size. Structured: remove a "
        "fraction p in {0, .1, ..., .9} of the features by criterion magnitude (smallest incoming-weight norm), "
        "variance (smallest train variance), random (mean of 5 draws), importance (smallest accuracy drop when "
        "knocked out of the full probe alone, scored on half A of val) or redundancy (dead features, then greedily "
        "the kept feature with the largest train |corr| to another kept one). Probe refit on the kept standardised "
        "features, or frozen (full probe, removed features at their train mean). rank: keep the top (1-p)K principal "
        "components of the centred train features (covariance), standardise them, refit: it does not depend on the "
        "basis (a rotated code has the same rank curve) but still on each unit's scale. Every probe chooses its L2 "
        "strength on val from the full grid 1e-4..1e1; all variants are one batched L-BFGS problem. supervised: "
        "hidden units also pruned under its own trained head (mode head, no refit). Unstructured: global magnitude "
        "pruning (torch prune.global_unstructured, L1) of every Linear/Conv weight of the deployed encoder, probe "
        "refit; compression = total / nonzero weights. r(p) = (acc(p) - chance) / (acc(0) - chance); AURC = "
        "trapezoid mean of r over p in [0.1, 0.9]; prunable fraction = largest p with acc(p) >= acc(0) - 1 point. "
        "Primary: test AURC (refit) under each encoder's best criterion among variance, random, importance and "
        "redundancy (those that apply to every method), chosen by the highest AURC on val half B; predicted subject "
        "LOWER. Secondary verdicts (lower): magnitude AURC, rank AURC, prunable fraction, pairwise MI of 20-bin "
        "features (Miller-Madow), nonlinear predictability (mean test R^2 of a 10-NN regressor predicting each "
        "feature from the others, fit on train). Manipulation checks, never verdicts (the subject optimises them): "
        "Gaussian TC, mean |off-diag corr|, effective rank / K. Per member: per-seed paired differences subject - "
        "member, mean, 95% t-interval and d_z; families PA (the 19 prior-art methods), AB (the subject's ablations, "
        "a mechanism question) and REF (raw, random); tests and the headline only under profile=confirm."
    )
    verdicts = (
        Verdict(
            "aurc_best",
            "lower",
            REFIT,
            "AURC under the best criterion (chosen on val), refit",
            "AURC = mean normalised retained accuracy over p in [0.1, 0.9]; lower = harder to prune. Best "
            "criterion = the one of variance, random, importance, redundancy with the highest AURC on val half "
            "B, per encoder. acc(0) = unpruned probe accuracy: a weak code can look hard to prune.",
        ),
        Verdict(
            "aurc",
            "lower",
            {"criterion": "magnitude", "probe_mode": "refit"},
            "AURC under magnitude pruning (conventional; single-layer encoders only), refit",
        ),
        Verdict(
            "aurc",
            "lower",
            {"criterion": "rank", "probe_mode": "refit"},
            "rank AURC (top principal components kept: basis-independent), refit",
        ),
        Verdict("prunable_fraction_best", "lower", REFIT, "prunable fraction (1-point loss), best criterion, refit"),
        Verdict("pairwise_mi", "lower", {}, "mean pairwise mutual information of binned features (test)"),
        Verdict(
            "nonlinear_predictability",
            "lower",
            {},
            "nonlinear predictability: mean kNN R^2 of each feature from the others",
        ),
    )

    def verdict_frame(self, df: pd.DataFrame, v: Verdict) -> pd.DataFrame:
        frame = super().verdict_frame(df, v)
        crit = v.where.get("criterion")
        if crit and len(frame):  # a criterion that cannot apply to a method (magnitude without weights): n/a
            skipped = df[(df["metric"] == "skipped") & plots.is_value(df, "criterion", crit)]
            why = skipped.groupby("method")["note"].first() if "note" in skipped.columns else pd.Series(dtype=str)
            valued = set(plots.select(df, v.metric, v.where)["method"])
            frame["na"] = [
                str(why[b]) if b in why.index and b not in valued else na
                for b, na in zip(frame["baseline"], frame["na"], strict=True)
            ]
        if v.metric.startswith("aurc"):  # acc(0) beside every AURC
            acc0 = df[df["metric"] == "probe_acc"].groupby("method")["value"].mean()
            frame.insert(frame.columns.get_loc("baseline") + 1, "acc(0)", frame["baseline"].map(acc0).astype(float))
        return frame

    def tables(self, df):
        tabs = self.verdict_tables(df)
        acc0 = df[df["metric"] == "probe_acc"].groupby("method")["value"].mean()
        if SUBJECT in acc0:
            tabs[0].note += f" Subject acc(0): {acc0[SUBJECT]:.3f}."
        tabs += [
            t
            for t in (
                summary_table(df),
                diagnostics_table(df),
                manipulation_table(df),
                head_table(df),
                skipped_table(df),
            )
            if t is not None
        ]
        return tabs

    def figures(self, df, matrices):
        return figures.all_figures(df, matrices)


def _per_method(df: pd.DataFrame, columns: dict[str, tuple[str, dict]]) -> pd.DataFrame:
    out = {}
    for label, (metric, flt) in columns.items():
        sel = df[df["metric"] == metric]
        for col, v in flt.items():
            sel = sel[plots.is_value(sel, col, v)]
        out[label] = sel.groupby("method")["value"].apply(plots.mean_ci_cell)
    frame = pd.DataFrame(out).astype(object).fillna("n/a")
    order = [SUBJECT] + sorted(m for m in frame.index if m != SUBJECT)
    return frame.reindex([m for m in order if m in frame.index]).reset_index(names="method")


def _best_criteria(df: pd.DataFrame) -> pd.Series:
    sel = df[(df["metric"] == "aurc_best") & plots.is_value(df, "probe_mode", "refit")]
    return sel.groupby("method")["criterion"].agg(
        lambda s: ", ".join(f"{k} {n}/{len(s)}" for k, n in s.value_counts().items())
    )


def summary_table(df: pd.DataFrame) -> Table | None:
    if "aurc_best" not in set(df["metric"]):
        return None
    frame = _per_method(
        df,
        {
            "acc(0)": ("probe_acc", {}),
            "AURC best": ("aurc_best", REFIT),
            "prunable best": ("prunable_fraction_best", REFIT),
            "AURC rank": ("aurc", {"criterion": "rank", "probe_mode": "refit"}),
            "AURC magnitude": ("aurc", {"criterion": "magnitude", "probe_mode": "refit"}),
            "AURC random": ("aurc", {"criterion": "random", "probe_mode": "refit"}),
            "AURC redundancy": ("aurc", {"criterion": "redundancy", "probe_mode": "refit"}),
            "AURC best frozen": ("aurc_best", {"probe_mode": "frozen"}),
        },
    )
    frame.insert(4, "best criterion (val)", frame["method"].map(_best_criteria(df)).fillna("n/a"))
    return Table(
        "Pruning summary per method (mean \u00b1 95% CI half-width over seeds)",
        frame,
        note="refit unless stated; acc(0) = unpruned probe accuracy; best criterion = the one of variance, "
        "random, importance, redundancy with the highest AURC on val half B, per seed. Unit AURC "
        "depends on the basis (a rotated code spreads its information over all units); rank AURC "
        "does not. Both depend on acc(0): a weak code has less to lose.",
    )


def diagnostics_table(df: pd.DataFrame) -> Table | None:
    if "pairwise_mi" not in set(df["metric"]):
        return None
    frame = _per_method(
        df,
        {
            "pairwise MI": ("pairwise_mi", {}),
            "kNN R^2": ("nonlinear_predictability", {}),
            "max w cos": ("max_weight_cosine", {}),
            "dead": ("dead_fraction", {}),
        },
    )
    return Table(
        "Redundancy the subject does not optimise, on test features (mean \u00b1 95% CI half-width)",
        frame,
        note="MI in nats (20 equal-width bins, Miller-Madow); kNN R^2 = mean over live features of the test "
        "R^2 of a 10-NN regressor predicting the feature from the others (standardised, fit on train; "
        "clipped to [0, 1]: 0 for independent features, 1 for copies); max w cos = largest cosine between two "
        "units' incoming weights; dead = constant features.",
    )


def manipulation_table(df: pd.DataFrame) -> Table | None:
    if "gaussian_tc" not in set(df["metric"]):
        return None
    frame = _per_method(
        df,
        {
            "Gaussian TC": ("gaussian_tc", {}),
            "mean |corr|": ("mean_abs_corr", {}),
            "eff. rank": ("effective_rank", {}),
            "eff. rank cov": ("effective_rank_cov", {}),
        },
    )
    return Table(
        "Manipulation checks (no verdict): the subject's own TC proxies, on test features",
        frame,
        note="The subject minimises a decorrelation proxy of these, so a win here is expected and says "
        "nothing about the prediction. TC in nats (correlation matrix, ridge 1e-3); eff. rank = "
        "exp(entropy of normalised eigenvalues) / K of the correlation (cov: covariance) matrix.",
    )


def head_table(df: pd.DataFrame) -> Table | None:
    sel = df[plots.is_value(df, "probe_mode", "head") & df["metric"].isin(["aurc", "prunable_fraction"])]
    if not len(sel):
        return None
    rows = []
    for (method, crit), g in df[
        df["metric"].isin(["aurc", "prunable_fraction"]) & df["method"].isin(sel["method"].unique())
    ].groupby(["method", "criterion"]):
        rec = {"method": method, "criterion": crit}
        for mode in ("head", "refit", "frozen"):
            for metric, lab in (("aurc", "AURC"), ("prunable_fraction", "prunable")):
                rec[f"{lab} {mode}"] = plots.mean_ci_cell(
                    g[plots.is_value(g, "probe_mode", mode) & (g["metric"] == metric)]["value"]
                )
        rows.append(rec)
    return Table(
        "End-to-end: hidden units pruned under the model's own trained head (no refit), beside the probes",
        pd.DataFrame(rows),
        note="The setting behind the '50-90% prunable' folklore.",
    )


def skipped_table(df: pd.DataFrame) -> Table | None:
    sel = df[df["metric"] == "skipped"]
    if not len(sel):
        return None
    frame = sel.groupby(["method", "criterion", "note"]).size().reset_index(name="encoders")
    return Table("Not applicable (recorded, not run)", frame)
