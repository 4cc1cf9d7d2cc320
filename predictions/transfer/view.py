"""Prediction 2, transfer, the view: verdicts and tables from the tidy table alone.

Primary: ``kappa_transfer_mean`` over the embedded pairs x budgets {1, 5, 10} (L2 chosen on val);
predicted subject HIGHER. Co-primary: ``gap_mean``, the same cells' mean of kappa transfer -
kappa in-domain per method; its paired difference subject - baseline is
(kappa_S,t - kappa_B,t) - (kappa_S,in - kappa_B,in); predicted > 0 (subject higher).
Secondaries: both at the fixed L2, n = 50 and all, the full-size pairs, dSprites R^2. ``raw`` and
``random`` are reference rows (tables and figures), never a verdict row; a baseline whose
in-domain encoder was trained on the target's labels is marked as an oracle.
The figures are :mod:`predictions.transfer.figures`.
"""

from __future__ import annotations

import pandas as pd

from bench import plots
from bench.protocol import SUBJECT, VIEWS, Table, Verdict, View
from bench.verdicts import verdict_from_tidy
from predictions.transfer import figures

REFERENCES = ("raw", "random")
PRIMARY = {"pair": "embedded", "budget": "1,5,10", "l2_mode": "val"}


def oracles(df: pd.DataFrame) -> set[str]:
    """Methods whose in-domain reference saw the target's labels (rows noted ``oracle``)."""
    if "note" not in df.columns:
        return set()
    return set(df.loc[df["note"].fillna("").str.contains("oracle", regex=False), "method"])


@VIEWS.register()
class TransferView(View):
    """P2: do InfoMax features transfer better? Label-budget probes on new data and unseen classes."""

    name = "transfer"
    title = "P2 transfer: do InfoMax features transfer better?"
    statement = ("\u201cInfoMax features transfer better. They're universal, not task-specific.\u201d "
                 "Against end-to-end training: \u201cFeatures are task-specific, not universal [...] Poor transfer. "
                 "Need to retrain for each task.\u201d")
    protocol = (
        "Width 64. Each method is pretrained on the source's train inputs (supervised: on the source's labels) and "
        "frozen. Pairs: mnist5k -> digits resized to 28x28 (new data), mnist5k[0-4] -> mnist5k[5-9] and "
        "digits[0-4] -> digits[5-9] (unseen classes); mnist -> fashion_mnist, mnist -> kmnist, cifar10 -> svhn "
        "when present under data.root; dsprites (secondary). The target probe (multinomial logistic regression) "
        "is trained on n labelled target train examples per class, n in {1, 5, 10} (primary) and {50, all}, "
        "drawn stratified at random, 20/10/5/3/1 draws, seeded by (seed, pair, budget, draw), never by method; "
        "a budget some class cannot fill is skipped. Features standardised with all target train inputs; L2 "
        "chosen on the full target val split (grid 1e-4..1e1) at every budget; a fixed L2 = 1e-2 fit is the "
        "sensitivity row. All budgets and draws of one encoder on one target are one batched L-BFGS problem. "
        "Score: kappa = (acc - 1/C) / (1 - 1/C) on the target test split, averaged over draws within a seed. "
        "In-domain reference: the same method pretrained on the target's train inputs, same subsets; supervised "
        "in-domain saw the target's labels (an oracle). Primary: per seed, mean transfer kappa over the 3 "
        "embedded pairs x n in {1, 5, 10}; predicted subject HIGHER. Co-primary: per seed, the same cells' mean "
        "of kappa_transfer - kappa_in-domain; the paired difference subject - baseline is "
        "(kS,t - kB,t) - (kS,in - kB,in); predicted > 0. dSprites: ridge R^2 of pos_x, pos_y, scale at 16, 64, "
        "256 and all labelled train examples, penalty on val (only supervised, trained on shape, really "
        "transfers there). raw and random are reference rows, no verdict. Verdicts: paired differences over "
        "seeds, 95% t-interval, paired t and Wilcoxon p, Holm across baselines decides."
    )
    verdicts = (
        Verdict("kappa_transfer_mean", "higher", PRIMARY,
                "mean transfer kappa, 3 embedded pairs x n in {1, 5, 10} per class",
                "kappa = (acc - 1/C) / (1 - 1/C); raw and random are references (per-pair table), no verdict."),
        Verdict("gap_mean", "higher", PRIMARY,
                "(kappa_S,t - kappa_B,t) - (kappa_S,in - kappa_B,in), same cells",
                "Per method and seed, mean over the cells of kappa transfer - kappa in-domain; the paired difference "
                "is the subject's gap minus the baseline's. > 0: the subject loses less when it moves. oracle: the "
                "baseline's in-domain encoder was trained on the target's labels, so its gap is inflated by design."),
        Verdict("kappa_transfer_mean", "higher", {**PRIMARY, "l2_mode": "fixed"},
                "sensitivity: mean transfer kappa at the fixed L2 = 1e-2"),
        Verdict("gap_mean", "higher", {**PRIMARY, "l2_mode": "fixed"}, "sensitivity: co-primary at the fixed L2 = 1e-2"),
        Verdict("kappa_transfer_mean", "higher", {"pair": "embedded", "budget": "50", "l2_mode": "val"},
                "mean transfer kappa, embedded pairs, n = 50 per class"),
        Verdict("kappa_transfer_mean", "higher", {"pair": "embedded", "budget": "all", "l2_mode": "val"},
                "mean transfer kappa, embedded pairs, all labels"),
        Verdict("kappa_transfer_mean", "higher", {"pair": "full", **{k: PRIMARY[k] for k in ("budget", "l2_mode")}},
                "mean transfer kappa, full-size pairs x n in {1, 5, 10}"),
        Verdict("gap_mean", "higher", {"pair": "full", **{k: PRIMARY[k] for k in ("budget", "l2_mode")}},
                "co-primary on the full-size pairs"),
        Verdict("r2_mean", "higher", {"pair": "dsprites"},
                "dSprites: mean ridge R^2 of pos_x, pos_y, scale over budgets 16, 64, 256, all"),
    )
    verdict_by = ()

    def verdict_frame(self, df: pd.DataFrame, v: Verdict) -> pd.DataFrame:
        """Holm across the baselines only: ``raw`` and ``random`` are references, never verdict rows."""
        sel = plots.select(df, v.metric, v.where)
        baselines = sorted(m for m in set(df["method"].dropna()) - {SUBJECT, *REFERENCES})
        frame = verdict_from_tidy(df[~df["method"].isin(REFERENCES)], v.metric, SUBJECT, v.direction,
                                  by=self.verdict_by, extra_filter=v.where, methods=baselines)
        if frame.empty:
            return frame
        means = sel.groupby("method")["value"].mean()
        frame.insert(frame.columns.get_loc("baseline") + 1, "baseline mean", frame["baseline"].map(means).astype(float))
        if v.metric == "gap_mean":
            frame.insert(frame.columns.get_loc("baseline") + 1, "in-domain",
                         ["oracle" if m in oracles(df) else "" for m in frame["baseline"]])
        return frame

    def verdict_tables(self, df: pd.DataFrame) -> list[Table]:
        """The primary, the co-primary, then the secondaries whose rows are in the table."""
        out = []
        for i, v in enumerate(self.verdicts):
            sel = plots.select(df, v.metric, v.where)
            if i > 1 and sel.empty:
                continue
            kind = ("Primary", "Co-primary")[i] if i < 2 else "Secondary"
            note = v.note
            subj = sel.loc[sel["method"] == SUBJECT, "value"]
            if len(subj):
                note += f" Subject mean: {subj.mean():.3f}."
            out.append(Table(f"{kind}: {v.title}", self.verdict_frame(df, v), verdict=True, note=note.strip()))
        return out

    def tables(self, df):
        tabs = self.verdict_tables(df)
        tabs += [t for t in (pair_table(df), dsprites_table(df), skipped_table(df)) if t is not None]
        return tabs

    def figures(self, df, matrices):
        return figures.all_figures(df, self)


def _label(m: str, ora: set[str]) -> str:
    return m + (" (reference)" if m in REFERENCES else " (oracle in-domain)" if m in ora else "")


def pair_table(df: pd.DataFrame) -> Table | None:
    """Per pair and method: transfer kappa per budget, in-domain and gap over n in {1, 5, 10}."""
    sel = df[plots.is_value(df, "l2_mode", "val")]
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
            rec[f"n={b}" if b != "all" else "all"] = plots.mean_ci_cell(g.loc[plots.is_value(g, "budget", b), "value"], "f")
        for metric, ref, lab in (("kappa", "in_domain", "in-domain 1-10"), ("gap", None, "gap 1-10")):
            h = sel[(sel["metric"] == metric) & plots.is_value(sel, "pair", pid) & (sel["method"] == m)
                    & sel["budget"].isin(prim)]
            if ref:
                h = h[plots.is_value(h, "reference", ref)]
            rec[lab] = plots.mean_ci_cell(h.groupby("seed")["value"].mean(), "f")
        recs.append(rec)
    frame = pd.DataFrame(recs)
    frame["_s"] = frame["method"] != SUBJECT
    frame = frame.sort_values(["pair", "_s", "method"]).drop(columns="_s")
    return Table("Per pair: transfer kappa per labels per class, in-domain and gap (mean \u00b1 95% CI, seeds)", frame,
                 note="kappa on the target test split, L2 chosen on the target val split, mean over draws within a "
                      "seed; in-domain and gap = kappa transfer - kappa in-domain, averaged over n in {1, 5, 10}.")


def dsprites_table(df: pd.DataFrame) -> Table | None:
    sel = df[(df["metric"] == "r2") & plots.is_value(df, "pair", "dsprites")]
    if sel.empty:
        return None
    recs = []
    for m, g in sel.groupby("method"):
        rec = {"method": _label(m, set())}
        for (f, b), h in g.groupby(["factor", "budget"], sort=False):
            rec[f"{f} {b}"] = plots.mean_ci_cell(h["value"], "f")
        recs.append(rec)
    return Table("dSprites: ridge R^2 on test per factor and total labelled budget (mean \u00b1 95% CI)",
                 pd.DataFrame(recs), note="Source = target for the unsupervised methods; supervised was trained on shape.")


def skipped_table(df: pd.DataFrame) -> Table | None:
    sel = df[df["metric"] == "skipped"]
    if sel.empty:
        return None
    frame = sel.groupby(["pair", "budget", "note"], dropna=False).size().reset_index(name="rows")
    return Table("Skipped (recorded, not run)", frame.astype({"budget": "string"}).fillna(""))
