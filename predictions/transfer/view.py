"""Prediction 2, transfer, the view: comparison frames, tables and figures from the tidy table alone.

Two primaries (``role="primary"`` and ``role="co-primary"``, judged together by the base view's machinery):
``kappa_transfer_mean`` over the primary pairs x n in {1, 5, 10} (scalar scaling, L2 chosen on
val; predicted subject higher) and the co-primary ``gap_mean``, the same cells' mean of kappa
step-matched - kappa in-domain per method (its paired difference subject - baseline is
(kappa_S,t - kappa_B,t) - (kappa_S,in - kappa_B,in); predicted > 0), n/a by design for the
label-trained methods (their in-domain reference saw all target labels). Secondaries: n = 50,
all, the stretch and full-size pairs, the per-unit scaling and the fixed L2. ``raw`` and
``random`` stay in the frames (family REF). The figures are :mod:`predictions.transfer.figures`.
"""

from __future__ import annotations

import pandas as pd

from bench.evaluate.verdicts import verdict_from_tidy
from bench.protocol import SUBJECT, VIEWS, Table, Verdict, View
from bench.report import plots
from predictions.transfer import figures

REFERENCES = ("raw", "random")
PRIMARY = {"pair": "primary", "budget": "1,5,10", "l2_mode": "val", "scaling": "scalar"}
ORACLE_NA = "oracle: in-domain reference saw all target labels"
NA = {m: ORACLE_NA for m in ("supervised", "supervised_mlp2", "supervised_cnn")}
CCA = "cca = (acc - 1/C) / (1 - 1/C), chance-corrected accuracy (not Cohen's kappa; code name kappa)"


def _secondaries() -> tuple[Verdict, ...]:
    out = []
    for where, what in (
        ({"budget": "50"}, "n = 50 per class"),
        ({"budget": "all"}, "all labels"),
        ({"pair": "stretch"}, "secondary pair mnist5k -> digits28 (stretch), n in {1, 5, 10}"),
        ({"pair": "full"}, "full-size pairs, n in {1, 5, 10}"),
        ({"scaling": "unit"}, "sensitivity: per-unit standardisation (v1)"),
        ({"l2_mode": "fixed"}, "sensitivity: fixed L2 = 1e-2"),
    ):
        out.append(
            Verdict(
                "kappa_transfer_mean", "higher", {**PRIMARY, **where}, f"mean transfer cca, {what}", role="secondary"
            )
        )
        out.append(
            Verdict(
                "gap_mean",
                "higher",
                {**PRIMARY, **where},
                f"co-primary (step-matched gap), {what}",
                role="secondary",
                na=NA,
            )
        )
    return tuple(out)


def oracles(df: pd.DataFrame) -> set[str]:
    """Methods whose in-domain reference saw the target's labels (rows noted ``oracle``)."""
    if "note" not in df.columns:
        return set()
    return set(df.loc[df["note"].fillna("").str.contains("oracle", regex=False), "method"])


@VIEWS.register()
class TransferView(View):
    """P2: do InfoMax features transfer better? Label-budget probes on new data and unseen classes."""

    order = 2  # its place in prediction=all and the summary
    name = "transfer"
    title = "P2 transfer: do InfoMax features transfer better?"
    statement = (
        "\u201cInfoMax features transfer better. They're universal, not task-specific.\u201d "
        "Against end-to-end training: \u201cFeatures are task-specific, not universal [...] Poor transfer. "
        "Need to retrain for each task.\u201d"
    )
    protocol = (
        "Width 64; K = 32 on digits[0-4] -> digits[5-9] (at K = D = 64 a probe would test the basis). Each method "
        "is pretrained on the source's train inputs (label-trained methods on the source's labels) and frozen. "
        "Primary pairs: mnist5k -> digits28c (UCI digits framed like MNIST: ink box resized to 20 px, centre of "
        "mass centred in 28x28; new data), mnist5k[0-4] -> mnist5k[5-9] and digits[0-4] -> digits[5-9] (unseen "
        "classes). Secondary pairs: mnist5k -> digits28 (the 8x8 frame stretched: a geometric shift); mnist -> "
        "fashion_mnist, mnist -> kmnist, cifar10 -> svhn when present under data.root. A pairs= list lacking a "
        "primary pair computes no primary (confirm refuses it). The target probe (multinomial logistic "
        "regression) is trained on n labelled target train examples per class, n in {1, 5, 10} (primary) and "
        "{50, all}, drawn stratified at random, 20/10/5/3/1 draws, seeded by (seed, pair, budget, draw), never "
        "by method; a budget some class cannot fill is skipped. Scaling: codes centred with the mean code of all "
        "target train inputs and divided by one scalar sqrt(tr Cov_train / K), so no rotation of a code changes "
        "its probe; sensitivity rows: v1's per-unit standardisation (scaling=unit) and a fixed L2 = 1e-2. L2 "
        "chosen on the full target val split (grid 1e-4..1e1) at every budget. Score: " + CCA + ", on the "
        "target test split, averaged over draws within a seed; its mean over pairs weights near-ceiling pairs "
        "less. In-domain reference: the same method pretrained on the target's train inputs, same subsets and "
        "scaling. Step-matched source: the same method pretrained on a stratified random subset of the source's "
        "train split of the target's train size, for the in-domain steps (the primary's own source where the "
        "sizes differ < 10%). Primary: per seed, mean transfer cca over the 3 primary pairs x n in {1, 5, 10}; "
        "predicted: subject higher. Co-primary: per seed, the same cells' mean of cca step-matched - cca "
        "in-domain; the paired difference subject - baseline is (cS,t - cB,t) - (cS,in - cB,in); predicted: "
        "> 0; n/a by design for supervised, supervised_mlp2, supervised_cnn (oracle: in-domain reference saw "
        "all target labels; the primary tests their transfer). Secondaries: n = 50, all, the secondary pairs, "
        "the sensitivity rows. raw and random are reference rows (family REF)."
    )
    verdicts = (
        Verdict(
            "kappa_transfer_mean",
            "higher",
            PRIMARY,
            "mean transfer cca, 3 primary pairs x n in {1, 5, 10} per class",
            CCA + "; scalar scaling, L2 chosen on val.",
            role="primary",
        ),
        Verdict(
            "gap_mean",
            "higher",
            PRIMARY,
            "(cca_S,t - cca_B,t) - (cca_S,in - cca_B,in), step-matched sources, same cells",
            "Per method and seed, mean over the cells of cca step-matched transfer - cca in-domain; the paired "
            "difference is the subject's gap minus the baseline's. > 0: the subject loses less when it moves. "
            "n/a by design for the label-trained methods (" + ORACLE_NA + ").",
            role="co-primary",
            na=NA,
        ),
        *_secondaries(),
    )
    verdict_by = ()

    def verdict_frame(self, df: pd.DataFrame, v: Verdict) -> pd.DataFrame:
        """Unjudged comparison rows for every method of the run but the subject (REF and AB included;
        one without values, e.g. n/a by design, is a row with n = 0), with the baseline's mean; no
        rows where the run measured no cell of ``v`` (a budget or pair not asked for)."""
        sel = plots.select(df, v.metric, v.where)
        methods = sorted(set(df["method"].dropna()) - {SUBJECT}) if len(sel) else None
        frame = verdict_from_tidy(
            df,
            v.metric,
            SUBJECT,
            v.direction,
            by=self.verdict_by,
            extra_filter=v.where,
            methods=methods,
            margin=v.margin,
            na=v.na,
            judged=False,
        )
        if frame.empty:
            return frame
        means = sel.groupby("method")["value"].mean()
        frame.insert(frame.columns.get_loc("baseline") + 1, "baseline mean", frame["baseline"].map(means).astype(float))
        return frame

    def tables(self, df):
        tabs = self.verdict_tables(df)
        tabs += [t for t in (pair_table(df), skipped_table(df)) if t is not None]
        return tabs

    def figures(self, df, matrices):
        return figures.all_figures(df, self)


def _label(m: str, ora: set[str]) -> str:
    return m + (" (reference)" if m in REFERENCES else " (oracle in-domain)" if m in ora else "")


def pair_table(df: pd.DataFrame) -> Table | None:
    """Per pair and method: transfer kappa per budget, in-domain and gap over n in {1, 5, 10}."""
    sel = df[plots.is_value(df, "l2_mode", "val") & plots.is_value(df, "scaling", "scalar")]
    kap = sel[(sel["metric"] == "kappa") & plots.is_value(sel, "reference", "transfer")]
    if kap.empty:
        return None
    ora = oracles(df)
    budgets = [b for b in ("1", "5", "10", "50", "all") if b in set(kap["budget"])]
    prim = ["1", "5", "10"]
    recs = []
    for (pid, m), g in kap.groupby(["pair", "method"]):
        rec = {"pair": pid, "method": _label(m, ora)}
        for b in budgets:
            rec[f"n={b}" if b != "all" else "all"] = plots.mean_ci_cell(
                g.loc[plots.is_value(g, "budget", b), "value"], "f"
            )
        for metric, ref, lab in (
            ("kappa", "in_domain", "in-domain 1-10"),
            ("kappa", "matched", "step-matched 1-10"),
            ("gap", None, "gap 1-10"),
        ):
            h = sel[
                (sel["metric"] == metric)
                & plots.is_value(sel, "pair", pid)
                & (sel["method"] == m)
                & sel["budget"].isin(prim)
            ]
            if ref:
                h = h[plots.is_value(h, "reference", ref)]
            rec[lab] = plots.mean_ci_cell(h.groupby("seed")["value"].mean(), "f")
        recs.append(rec)
    frame = pd.DataFrame(recs)
    frame["_s"] = frame["method"] != SUBJECT
    frame = frame.sort_values(["pair", "_s", "method"]).drop(columns="_s")
    return Table(
        "Per pair: transfer cca per labels per class, in-domain, step-matched and gap (mean \u00b1 95% CI, seeds)",
        frame,
        note="cca on the target test split, scalar scaling, L2 chosen on the target val split, mean over "
        "draws within a seed; in-domain, step-matched (the primary's source where train sizes differ "
        "< 10%) and gap = cca step-matched - cca in-domain, averaged over n in {1, 5, 10}.",
    )


def skipped_table(df: pd.DataFrame) -> Table | None:
    sel = df[df["metric"] == "skipped"]
    if sel.empty:
        return None
    frame = sel.groupby(["pair", "budget", "note"], dropna=False).size().reset_index(name="rows")
    return Table("Skipped (recorded, not run)", frame.astype({"budget": "string"}).fillna(""))
