"""Prediction 1, prunability: "InfoMax-pretrained models can't be pruned" (PROTOCOL.md §8 P1).

For every encoder (default: every registered method but ``raw``, width [64], on [mnist5k]):

* structured pruning of a fraction p in {0, .1, ..., .9} of the K features by criterion
  ``magnitude``, ``variance``, ``random`` (mean of 5 draws), ``importance`` (scored on half A of
  val) and ``redundancy`` (:mod:`bench.pruning`), probe modes ``refit`` and ``frozen``, and the
  rotation-invariant ``rank`` curve (top principal components kept, refit); for a method with its own
  trained classifier (``uses_labels`` and a ``head``: the ``supervised`` baseline) also mode
  ``head``: its hidden units pruned under its own head, no refit (the end-to-end setting behind
  the "50-90% prunable" folklore);
* unstructured global magnitude pruning of every Linear/Conv weight of the deployed modules at
  sparsities {0, .5, .7, .8, .9, .95, .98}, probe refit, compression ratio = total / nonzero;
* redundancy measures the subject does not optimise, on test features (:mod:`bench.metrics`):
  mean pairwise MI of 20-bin binned features, nonlinear predictability (kNN R^2 of each feature
  from the others, fit on train), max cosine between incoming weight vectors, dead fraction;
* manipulation checks (the subject's own TC proxies, shown, never a verdict): Gaussian TC,
  mean |off-diagonal corr|, effective rank / K (correlation; also covariance).

Summaries: ``r(p) = (acc(p) - chance) / (acc(0) - chance)``, AURC (trapezoid mean of r over
p in [0.1, 0.9]) and prunable fraction (largest p with ``acc(p) >= acc(0) - 0.01``).
Primary: ``aurc_best`` = test AURC with ``refit`` under the criterion of
``bench.pruning.PRIMARY_CRITERIA`` (those that apply to every method) with the highest AURC on
val half B (chosen on val, never on test, never on the half that scored ``importance``);
predicted: subject LOWER than each baseline. Secondary verdicts (:data:`SECONDARY`): AURC under
``magnitude``, ``rank`` AURC, prunable fraction, pairwise MI, nonlinear predictability, all
predicted lower. Every pruned probe chooses its L2 strength on val from the full §6 grid.

Tidy rows (condition columns ``criterion``, ``fraction``, ``probe_mode``, ``sparsity``,
``feat_i``, ``feat_j``, empty elsewhere): ``acc`` and ``retained`` per (criterion, mode,
fraction); ``aurc``, ``aurc_val``, ``prunable_fraction`` per (criterion, mode);
``aurc_best``, ``prunable_fraction_best`` (criterion = the val-chosen one; NaN with a note when
undefined); ``unstructured_acc`` and ``compression_ratio`` per sparsity; the diagnostics;
``skipped`` (value 1, with a note) for a criterion or a mode that does not apply; ``corr`` (the
test correlation matrix, for the correlation heatmaps of the lowest seed of
``heatmap_methods``); ``protocol_seconds``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from torch import nn

from bench import metrics, plots, pruning
from bench.config import ConfigError
from bench.data import DATASETS
from bench.protocol import PREDICTIONS, SUBJECT, Prediction, PredictionConfig, Table
from bench.stats import t_interval, verdict_from_tidy

DIAGNOSTICS = ("pairwise_mi", "nonlinear_predictability", "max_weight_cosine", "dead_fraction")
MANIPULATION_CHECKS = ("gaussian_tc", "mean_abs_corr", "effective_rank", "effective_rank_cov")
MODES = ("refit", "frozen", "head")
CURVES = (*pruning.CRITERIA, "rank")
REFIT = {"probe_mode": "refit"}
# secondary verdicts: (metric, filter, direction, label); all predicted lower for the subject
SECONDARY = (
    ("aurc", {"criterion": "magnitude", "probe_mode": "refit"}, "lower",
     "AURC under magnitude pruning (conventional; single-layer encoders only), refit"),
    ("aurc", {"criterion": "rank", "probe_mode": "refit"}, "lower",
     "rank AURC (top principal components kept: basis-independent), refit"),
    ("prunable_fraction_best", REFIT, "lower", "prunable fraction (1-point loss), best criterion, refit"),
    ("pairwise_mi", {}, "lower", "mean pairwise mutual information of binned features (test)"),
    ("nonlinear_predictability", {}, "lower", "nonlinear predictability: mean kNN R^2 of each feature from the others"),
)


@dataclass(frozen=True)
class PruningConfig(PredictionConfig):
    fractions: tuple[float, ...] = pruning.FRACTIONS
    criteria: tuple[str, ...] = pruning.CRITERIA
    random_draws: int = 5
    sparsities: tuple[float, ...] = pruning.SPARSITIES
    tolerance: float = 0.01  # prunable fraction: accuracy loss allowed (1 point)
    aurc_low: float = 0.1
    aurc_high: float = 0.9
    mi_bins: int = 20
    knn_k: int = 10  # nonlinear predictability
    heatmap_methods: tuple[str, ...] = (SUBJECT, "sae", "pca")

    def check(self) -> None:
        if self.width < 2:
            raise ValueError(f"width: must be >= 2, got {self.width}")
        if 0.0 not in self.fractions or any(not 0 <= p < 1 for p in self.fractions):
            raise ValueError(f"fractions: need values in [0, 1) including 0, got {list(self.fractions)}")
        bad = [c for c in self.criteria if c not in pruning.CRITERIA]
        if bad or not self.criteria:
            raise ValueError(f"criteria: unknown {bad} (choices: {', '.join(pruning.CRITERIA)})")
        if self.random_draws < 1:
            raise ValueError(f"random_draws: must be >= 1, got {self.random_draws}")
        if any(not 0 <= s < 1 for s in self.sparsities):
            raise ValueError(f"sparsities: need values in [0, 1), got {list(self.sparsities)}")
        if not 0 < self.tolerance < 1:
            raise ValueError(f"tolerance: must be in (0, 1), got {self.tolerance}")
        if not 0 <= self.aurc_low < self.aurc_high <= 1:
            raise ValueError(f"aurc_low, aurc_high: need 0 <= low < high <= 1, got {self.aurc_low}, {self.aurc_high}")
        if self.mi_bins < 2:
            raise ValueError(f"mi_bins: must be >= 2, got {self.mi_bins}")
        if self.knn_k < 1:
            raise ValueError(f"knn_k: must be >= 1, got {self.knn_k}")


def _head(method: nn.Module, features: torch.Tensor, n_classes: int) -> nn.Module | None:
    """The method's own trained classifier over its (N, K) features, if it has one."""
    head = getattr(method, "head", None)
    if not (getattr(method, "uses_labels", False) and isinstance(head, nn.Module)):
        return None
    head.eval()
    with torch.no_grad():
        out = head(features[:2])
    return head if tuple(out.shape) == (min(2, len(features)), n_classes) else None


def _is(df: pd.DataFrame, col: str, value) -> pd.Series:
    """Boolean mask ``df[col] == value`` with missing cells False."""
    return df[col].eq(value).fillna(False).astype(bool)


@PREDICTIONS.register()
class Pruning(Prediction):
    """P1: can InfoMax features be pruned? Structured, unstructured and end-to-end pruning."""

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
        "Gaussian TC, mean |off-diag corr|, effective rank / K. Verdicts: per-seed paired differences, 95% "
        "t-interval, paired t, Holm across baselines decides."
    )
    primary_metric = "aurc_best"
    direction = "lower"
    Config = PruningConfig
    exclude_methods = ("raw",)

    def check(self, ctx) -> None:
        ds = ctx.dataset()
        if ds.n_classes is None:
            labelled = [n for n in DATASETS.names() if n != "ica"]
            raise ConfigError(f"pruning: dataset '{ds.name}' has no class labels (choices: {', '.join(labelled)})")

    # ------------------------------------------------------------------------------ run
    def run(self, ctx):
        ds = ctx.dataset()
        first_seed = min(ctx.cfg.resolved_seeds())
        rows = []
        for enc in ctx.encoders():
            t0 = time.perf_counter()
            rows += self._encoder_rows(ctx, enc, ds, enc.spec.seed == first_seed)
            rows.append(ctx.row(enc, "protocol_seconds", time.perf_counter() - t0))
        return rows

    def _encoder_rows(self, ctx, enc, ds, first_seed: bool) -> list[dict]:
        c = self.cfg
        chance = 1.0 / ds.n_classes
        method, seed = enc.method, enc.spec.seed
        f_tr, f_va, f_te = (enc.features(s.x) for s in (ds.train, ds.val, ds.test))
        w = method.encoder_weight()
        w = None if w is None else w.detach()
        rows = []

        def row(metric, value, **cond):
            rows.append(ctx.row(enc, metric, value, **cond))

        row("chance", chance)
        curves = pruning.structured_pruning(
            f_tr, ds.train.y, f_va, ds.val.y, f_te, ds.test.y, ds.n_classes, weight=w, fractions=c.fractions,
            criteria=c.criteria, random_draws=c.random_draws, seed=seed)
        row("probe_acc", curves.test_acc)
        row("probe_l2", curves.l2)
        self._curve_rows(row, curves, chance, ("refit", "frozen"))
        head = _head(method, f_tr, ds.n_classes)
        if head is not None:
            hc = pruning.head_pruning(head, f_tr, f_va, ds.val.y, f_te, ds.test.y, weight=w, fractions=c.fractions,
                                      criteria=c.criteria, random_draws=c.random_draws, seed=seed)
            row("head_acc", hc.test_acc)
            self._curve_rows(row, hc, chance, ("head",))
        self._unstructured_rows(row, method, ds, curves, (f_tr, f_va, f_te))
        for name, value in self._diagnostics(f_tr, f_te, w).items():
            row(name, value)
        if w is None:
            row("skipped", 1.0, criterion="max_weight_cosine", note="no single-layer encoder weight")
        if first_seed and enc.spec.method in c.heatmap_methods:
            r = metrics.correlation(f_te).cpu().numpy()
            for i, j in np.ndindex(*r.shape):
                row("corr", r[i, j], feat_i=i, feat_j=j)
        return rows

    def _curve_rows(self, row, curves: pruning.Curves, chance: float, modes: tuple[str, ...]) -> None:
        c = self.cfg
        for crit, why in curves.skipped.items():
            for mode in modes:
                row("skipped", 1.0, criterion=crit, probe_mode=mode, note=why)
                row("aurc", math.nan, criterion=crit, probe_mode=mode, note=why)
        s = pruning.summarize(curves, chance, c.tolerance, c.aurc_low, c.aurc_high)
        for (crit, mode), acc in curves.test.items():
            for p, a, r in zip(curves.fractions, acc, s.retained[(crit, mode)], strict=True):
                row("acc", a, criterion=crit, probe_mode=mode, fraction=p)
                row("retained", r, criterion=crit, probe_mode=mode, fraction=p)
            row("aurc", s.aurc[(crit, mode)], criterion=crit, probe_mode=mode)
            row("aurc_val", s.aurc_val[(crit, mode)], criterion=crit, probe_mode=mode)
            row("prunable_fraction", s.prunable[(crit, mode)], criterion=crit, probe_mode=mode)
        for mode in {m for _, m in curves.test} - set(s.best):
            why = f"unpruned accuracy within {c.tolerance} of chance: r(p) undefined"
            row("skipped", 1.0, criterion="best", probe_mode=mode, note=why)
            row("aurc_best", math.nan, probe_mode=mode, note=why)
            row("prunable_fraction_best", math.nan, probe_mode=mode, note=why)
        for mode, best in s.best.items():
            row("aurc_best", s.aurc[(best, mode)], criterion=best, probe_mode=mode)
            row("prunable_fraction_best", s.prunable[(best, mode)], criterion=best, probe_mode=mode)

    def _unstructured_rows(self, row, method, ds, curves: pruning.Curves, features) -> None:
        if not pruning.prunable_weights(method.deployed_modules()):
            row("skipped", 1.0, criterion="unstructured", probe_mode="refit",
                note="no Linear/Conv weight in the deployed modules")
            return
        un = pruning.unstructured_pruning(method, [(s.x, s.y) for s in (ds.train, ds.val, ds.test)], ds.n_classes,
                                          self.cfg.sparsities, init=curves.probe, unpruned=features)
        for s, a, cr in zip(un.sparsities, un.test, un.compression, strict=True):
            row("unstructured_acc", a, sparsity=s, probe_mode="refit")
            row("compression_ratio", cr, sparsity=s)

    def _diagnostics(self, f_train: torch.Tensor, f: torch.Tensor, w: torch.Tensor | None) -> dict[str, float]:
        return {
            "gaussian_tc": metrics.gaussian_tc(f),
            "pairwise_mi": metrics.pairwise_mi_binned(f, bins=self.cfg.mi_bins),
            "nonlinear_predictability": metrics.nonlinear_predictability(f_train, f, k=self.cfg.knn_k),
            "mean_abs_corr": metrics.mean_abs_offdiag_corr(f),
            "max_weight_cosine": math.nan if w is None else metrics.max_weight_cosine(w),
            "effective_rank": metrics.effective_rank(f, on="corr"),
            "effective_rank_cov": metrics.effective_rank(f, on="cov"),
            "dead_fraction": metrics.dead_fraction(f),
        }

    # ------------------------------------------------------------------------------ report
    def tables(self, df):
        acc0 = df[df["metric"] == "probe_acc"].groupby("method")["value"].mean()
        subj = f"{acc0.get(SUBJECT, float('nan')):.3f}"
        tabs = [Table("Primary: AURC under the best criterion (chosen on val), refit; predicted subject lower",
                      _with_acc0(verdict_from_tidy(df, "aurc_best", SUBJECT, "lower", by=self.verdict_by,
                                                   extra_filter=REFIT), acc0),
                      verdict=True,
                      note="AURC = mean normalised retained accuracy over p in [0.1, 0.9]; lower = harder to prune. "
                           "Best criterion = the one of variance, random, importance, redundancy with the highest "
                           f"AURC on val half B, per encoder. acc(0) = unpruned probe accuracy (subject: {subj}): "
                           "a weak code can look hard to prune.")]
        for metric, flt, direction, label in SECONDARY:
            if metric in set(df["metric"]):
                frame = verdict_from_tidy(df, metric, SUBJECT, direction, by=self.verdict_by, extra_filter=flt)
                tabs.append(Table(f"Secondary: {label}; predicted subject {direction}",
                                  _with_acc0(frame, acc0) if metric == "aurc" else frame, verdict=True))
        tabs += [t for t in (summary_table(df), diagnostics_table(df), manipulation_table(df), head_table(df),
                             skipped_table(df)) if t is not None]
        return tabs

    def figures(self, df):
        plots.theme()
        figs = [("retained_accuracy", retained_figure(df)), ("aurc", aurc_figure(df))]
        for name, fn in (("basis", basis_figure), ("unstructured", unstructured_figure),
                         ("diagnostics", diagnostics_figure), ("correlation_heatmaps", heatmap_figure)):
            fig = fn(df)
            if fig is not None:
                figs.append((name, fig))
        return figs


# ---------------------------------------------------------------------------------- tables
def _with_acc0(frame: pd.DataFrame, acc0: pd.Series) -> pd.DataFrame:
    """The verdict frame with each baseline's mean unpruned probe accuracy beside its AURC."""
    out = frame.copy()
    out.insert(out.columns.get_loc("baseline") + 1, "acc(0)", out["baseline"].map(acc0).astype(float))
    return out


def _cell(v: pd.Series) -> str:
    """'mean +- 95% t half-width' of the finite values ('n/a' when none)."""
    mean, _, high = t_interval(v.astype(float).to_numpy())
    if not np.isfinite(mean):
        return "n/a"
    return f"{mean:.3g}" if not np.isfinite(high) or high == mean else f"{mean:.3g} \u00b1 {high - mean:.2g}"


def _per_method(df: pd.DataFrame, columns: dict[str, tuple[str, dict]]) -> pd.DataFrame:
    out = {}
    for label, (metric, flt) in columns.items():
        sel = df[df["metric"] == metric]
        for col, v in flt.items():
            sel = sel[_is(sel, col, v)]
        out[label] = sel.groupby("method")["value"].apply(_cell)
    frame = pd.DataFrame(out).fillna("n/a")
    order = [SUBJECT] + sorted(m for m in frame.index if m != SUBJECT)
    return frame.reindex([m for m in order if m in frame.index]).reset_index(names="method")


def _best_criteria(df: pd.DataFrame) -> pd.Series:
    sel = df[(df["metric"] == "aurc_best") & _is(df, "probe_mode", "refit")]
    return sel.groupby("method")["criterion"].agg(
        lambda s: ", ".join(f"{k} {n}/{len(s)}" for k, n in s.value_counts().items()))


def summary_table(df: pd.DataFrame) -> Table | None:
    if "aurc_best" not in set(df["metric"]):
        return None
    frame = _per_method(df, {
        "acc(0)": ("probe_acc", {}),
        "AURC best": ("aurc_best", REFIT),
        "prunable best": ("prunable_fraction_best", REFIT),
        "AURC rank": ("aurc", {"criterion": "rank", "probe_mode": "refit"}),
        "AURC magnitude": ("aurc", {"criterion": "magnitude", "probe_mode": "refit"}),
        "AURC random": ("aurc", {"criterion": "random", "probe_mode": "refit"}),
        "AURC redundancy": ("aurc", {"criterion": "redundancy", "probe_mode": "refit"}),
        "AURC best frozen": ("aurc_best", {"probe_mode": "frozen"}),
    })
    frame.insert(4, "best criterion (val)", frame["method"].map(_best_criteria(df)).fillna("n/a"))
    return Table("Pruning summary per method (mean \u00b1 95% CI half-width over seeds)", frame,
                 note="refit unless stated; acc(0) = unpruned probe accuracy; best criterion = the one of variance, "
                      "random, importance, redundancy with the highest AURC on val half B, per seed. Unit AURC "
                      "depends on the basis (a rotated code spreads its information over all units); rank AURC "
                      "does not. Both depend on acc(0): a weak code has less to lose.")


def diagnostics_table(df: pd.DataFrame) -> Table | None:
    if "pairwise_mi" not in set(df["metric"]):
        return None
    frame = _per_method(df, {
        "pairwise MI": ("pairwise_mi", {}),
        "kNN R^2": ("nonlinear_predictability", {}),
        "max w cos": ("max_weight_cosine", {}),
        "dead": ("dead_fraction", {}),
    })
    return Table("Redundancy the subject does not optimise, on test features (mean \u00b1 95% CI half-width)", frame,
                 note="MI in nats (20 equal-width bins, Miller-Madow); kNN R^2 = mean over live features of the test "
                      "R^2 of a 10-NN regressor predicting the feature from the others (standardised, fit on train; "
                      "about -1/k for independent features, 1 for copies); max w cos = largest cosine between two "
                      "units' incoming weights; dead = constant features.")


def manipulation_table(df: pd.DataFrame) -> Table | None:
    if "gaussian_tc" not in set(df["metric"]):
        return None
    frame = _per_method(df, {
        "Gaussian TC": ("gaussian_tc", {}),
        "mean |corr|": ("mean_abs_corr", {}),
        "eff. rank": ("effective_rank", {}),
        "eff. rank cov": ("effective_rank_cov", {}),
    })
    return Table("Manipulation checks (no verdict): the subject's own TC proxies, on test features", frame,
                 note="The subject minimises a decorrelation proxy of these, so a win here is expected and says "
                      "nothing about the prediction. TC in nats (correlation matrix, ridge 1e-3); eff. rank = "
                      "exp(entropy of normalised eigenvalues) / K of the correlation (cov: covariance) matrix.")


def head_table(df: pd.DataFrame) -> Table | None:
    sel = df[_is(df, "probe_mode", "head") & df["metric"].isin(["aurc", "prunable_fraction"])]
    if not len(sel):
        return None
    rows = []
    for (method, crit), g in df[df["metric"].isin(["aurc", "prunable_fraction"])
                                & df["method"].isin(sel["method"].unique())].groupby(["method", "criterion"]):
        rec = {"method": method, "criterion": crit}
        for mode in ("head", "refit", "frozen"):
            for metric, lab in (("aurc", "AURC"), ("prunable_fraction", "prunable")):
                rec[f"{lab} {mode}"] = _cell(g[_is(g, "probe_mode", mode) & (g["metric"] == metric)]["value"])
        rows.append(rec)
    return Table("End-to-end: hidden units pruned under the model's own trained head (no refit), beside the probes",
                 pd.DataFrame(rows), note="The setting behind the '50-90% prunable' folklore.")


def skipped_table(df: pd.DataFrame) -> Table | None:
    sel = df[df["metric"] == "skipped"]
    if not len(sel):
        return None
    frame = sel.groupby(["method", "criterion", "note"]).size().reset_index(name="encoders")
    return Table("Not applicable (recorded, not run)", frame)


# ---------------------------------------------------------------------------------- figures
def _methods_order(methods) -> list[str]:
    ms = sorted(set(methods))
    return [m for m in ms if m != SUBJECT] + ([SUBJECT] if SUBJECT in ms else [])  # subject drawn last


def _line(ax, t: pd.DataFrame, x: str, pal: dict[str, str], method: str) -> None:
    subj = method == SUBJECT
    ax.plot(t[x], t["mean"], color=pal[method], lw=2.2 if subj else 1.0, alpha=1 if subj else 0.75,
            zorder=3 if subj else 2, label=method)
    ax.fill_between(t[x], t["mean"] - t["half"].fillna(0), t["mean"] + t["half"].fillna(0), color=pal[method],
                    alpha=0.18 if subj else 0.08, lw=0, zorder=1)


def _legend(fig, pal: dict[str, str], methods: list[str]) -> None:
    from matplotlib.lines import Line2D

    named = [m for m in methods if pal[m] != plots.OTHER_COLOR]
    handles = [Line2D([], [], color=pal[m], lw=2.2 if m == SUBJECT else 1.2, label=m) for m in reversed(named)]
    others = [m for m in methods if pal[m] == plots.OTHER_COLOR]
    if others:
        handles.append(Line2D([], [], color=plots.OTHER_COLOR, lw=1.0, label=f"baselines ({len(others)})"))
    fig.legend(handles=handles, loc="upper center", ncol=min(len(handles), 6), frameon=False,
               bbox_to_anchor=(0.5, 0.985), fontsize=8)


def _end_labels(ax, ends: list[tuple[float, float, str]], pal: dict[str, str], gap: float = 0.022) -> None:
    """Method names at the right end of their lines, nudged apart vertically (gap in axis fractions)."""
    lo, hi = ax.get_ylim()
    step = gap * (hi - lo)
    placed: list[float] = []
    for y, x, m in sorted(ends):
        y_text = max(y, placed[-1] + step) if placed else y
        placed.append(y_text)
        ax.annotate(m, (x, y), xytext=(x * 1.08, y_text), fontsize=6, va="center", color=pal[m],
                    weight="bold" if m == SUBJECT else "normal",
                    arrowprops={"arrowstyle": "-", "lw": 0.3, "color": pal[m]} if abs(y_text - y) > step / 2 else None)


def retained_figure(df: pd.DataFrame):
    sel = df[df["metric"] == "retained"].dropna(subset=["value"])
    crits = [c for c in CURVES if c in set(sel["criterion"])]
    modes = [m for m in MODES if m in set(sel["probe_mode"])]
    methods = _methods_order(sel["method"])
    pal = plots.method_palette(methods)
    fig, axes = plt.subplots(len(crits), len(modes), figsize=(2.9 * len(modes) + 0.8, 2.0 * len(crits) + 1.0),
                             sharex=True, sharey=True, squeeze=False)
    t = plots.mean_ci_table(sel, ["method", "criterion", "probe_mode", "fraction"])
    for i, crit in enumerate(crits):
        for j, mode in enumerate(modes):
            ax = axes[i, j]
            for m in methods:
                tt = t[(t["method"] == m) & (t["criterion"] == crit) & (t["probe_mode"] == mode)]
                tt = tt.sort_values("fraction")
                if len(tt):
                    _line(ax, tt, "fraction", pal, m)
                    if mode == "head":
                        ax.text(0.02, float(tt["mean"].iloc[-1]), m, fontsize=6, color="k", va="center")
            ax.axhline(1.0, color="k", lw=0.5, ls=":")
            ax.axhline(0.0, color="k", lw=0.5)
            if i == 0:
                ax.set_title(f"probe {mode}" if mode != "head" else "own head (end-to-end)", fontsize=9)
            if j == 0:
                ax.set_ylabel(f"{crit}\nretained r(p)", fontsize=8)
            if i == len(crits) - 1:
                ax.set_xlabel("fraction of features pruned p", fontsize=8)
    axes[0, 0].set_ylim(-0.05, 1.1)
    _legend(fig, pal, methods)
    fig.suptitle("Retained accuracy r(p) = (acc(p) - chance) / (acc(0) - chance); rows: criterion; mean and 95% CI",
                 y=0.955, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    return fig


def _dots(ax, sel: pd.DataFrame, label: str) -> None:
    """Mean and 95% CI per method as a point range (a zoomed axis stays honest), sorted, subject red."""
    t = plots.mean_ci_table(sel.dropna(subset=["value"]), ["method"]).sort_values("mean")
    pal = plots.method_palette(t["method"])
    y = np.arange(len(t))
    half = t["half"].fillna(0)
    ax.hlines(y, t["mean"] - half, t["mean"] + half, colors=[pal[m] for m in t["method"]], lw=1.4)
    ax.scatter(t["mean"], y, c=[pal[m] for m in t["method"]], s=[40 if m == SUBJECT else 18 for m in t["method"]],
               zorder=3)
    ax.set_yticks(y, list(t["method"]))
    for tick, m in zip(ax.get_yticklabels(), t["method"], strict=True):
        if m == SUBJECT:
            tick.set_fontweight("bold")
            tick.set_color(plots.SUBJECT_COLOR)
    if SUBJECT in set(t["method"]):
        ax.axvline(float(t.loc[t["method"] == SUBJECT, "mean"].iloc[0]), color=plots.SUBJECT_COLOR, lw=0.6, ls="--")
    ax.set_xlabel(label)
    ax.set_ylim(-0.6, len(t) - 0.4)


def aurc_figure(df: pd.DataFrame):
    n = df["method"].nunique()
    fig, axes = plt.subplots(1, 4, figsize=(13, 0.26 * n + 1.9))
    refit = _is(df, "probe_mode", "refit")
    aurc = df["metric"] == "aurc"
    _dots(axes[0], df[refit & (df["metric"] == "aurc_best")], "AURC, best criterion (val-chosen): primary")
    _dots(axes[1], df[refit & _is(df, "criterion", "rank") & aurc], "rank AURC (principal components)")
    _dots(axes[2], df[refit & _is(df, "criterion", "magnitude") & aurc], "AURC, magnitude criterion")
    _dots(axes[3], df[refit & (df["metric"] == "prunable_fraction_best")], "prunable fraction (1-point loss), best")
    fig.suptitle("Prunability per method, refit probe (mean and 95% CI over seeds; subject in red, dashed at its "
                 "mean; lower = harder to prune)", fontsize=9)
    fig.tight_layout()
    return fig


def basis_figure(df: pd.DataFrame):
    """Where each method sits: unit AURC against acc(0), and against the basis-free rank AURC."""
    refit = _is(df, "probe_mode", "refit")
    per = {
        "acc0": df[df["metric"] == "probe_acc"],
        "unit": df[refit & (df["metric"] == "aurc_best")],
        "rank": df[refit & _is(df, "criterion", "rank") & (df["metric"] == "aurc")],
    }
    means = pd.DataFrame({k: v.dropna(subset=["value"]).groupby("method")["value"].mean() for k, v in per.items()})
    means = means.dropna()
    if means.empty:
        return None
    pal = plots.method_palette(means.index)
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for ax, (x, y, xl, yl) in zip(axes, (("acc0", "unit", "unpruned probe accuracy acc(0)", "unit AURC, best criterion"),
                                         ("rank", "unit", "rank AURC (basis-free)", "unit AURC, best criterion")),
                                  strict=True):
        for m, r in means.iterrows():
            subj = m == SUBJECT
            ax.scatter(r[x], r[y], s=60 if subj else 22, color=pal[m], zorder=3, edgecolor="k", lw=0.4)
            ax.annotate(m, (r[x], r[y]), xytext=(3, 2), textcoords="offset points", fontsize=6.5,
                        weight="bold" if subj else "normal", color=plots.SUBJECT_COLOR if subj else "#333333")
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
    lo = float(np.nanmin(means[["rank", "unit"]].to_numpy())) - 0.02
    axes[1].plot([lo, 1], [lo, 1], color="k", lw=0.6, ls=":")
    axes[1].text(lo + 0.01, 0.99, "below the diagonal: information concentrated in few units\n"
                 "on it: unit pruning = dropping dimensions", fontsize=7, va="top")
    fig.suptitle("What a low AURC means: accuracy to lose (left) and the basis (right); method means over seeds",
                 fontsize=9)
    fig.tight_layout()
    return fig


def unstructured_figure(df: pd.DataFrame):
    acc = df[df["metric"] == "unstructured_acc"].dropna(subset=["value"])
    if not len(acc):
        return None
    comp = df[df["metric"] == "compression_ratio"].groupby(["method", "sparsity"])["value"].mean()
    t = plots.mean_ci_table(acc, ["method", "sparsity"])
    t["compression"] = [comp.get((m, s), np.nan) for m, s in zip(t["method"], t["sparsity"], strict=True)]
    methods = _methods_order(t["method"])
    pal = plots.method_palette(methods)
    fig, ax = plt.subplots(figsize=(8, 6.5))
    ends = []
    for m in methods:
        tm = t[t["method"] == m].sort_values("compression")
        _line(ax, tm, "compression", pal, m)
        ends.append((float(tm["mean"].iloc[-1]), float(tm["compression"].iloc[-1]), m))
    _end_labels(ax, ends, pal)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("compression ratio = total / nonzero encoder weights (log2)")
    ax.set_ylabel("test accuracy, probe refit")
    _legend(fig, pal, methods)
    ax.set_title("Unstructured global magnitude pruning (sparsity 0 .. 0.98), mean and 95% CI", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def diagnostics_figure(df: pd.DataFrame):
    if "pairwise_mi" not in set(df["metric"]):
        return None
    n = df["method"].nunique()
    fig, axes = plt.subplots(2, 4, figsize=(14, 2 * (0.26 * n + 1.4)))
    spec = [("pairwise_mi", "mean pairwise MI (nats)", False),
            ("nonlinear_predictability", "kNN R^2 from the other features", False),
            ("max_weight_cosine", "max cosine of incoming weights", False), ("dead_fraction", "dead fraction", False),
            ("gaussian_tc", "Gaussian TC (nats, log)", True), ("mean_abs_corr", "mean |off-diagonal corr|", False),
            ("effective_rank", "effective rank / K (corr)", False),
            ("effective_rank_cov", "effective rank / K (cov)", False)]
    for ax, (metric, label, log) in zip(axes.flat, spec, strict=True):
        if len(df[(df["metric"] == metric)].dropna(subset=["value"])):
            plots.metric_bars(df.dropna(subset=["value"]), metric, label, ax, log=log)
        else:
            ax.set_axis_off()
    axes[0, 0].set_title("redundancy the subject does not optimise (verdicts: MI, kNN R^2)", loc="left", fontsize=8)
    axes[1, 0].set_title("manipulation checks: the subject's own TC proxies (no verdict)", loc="left", fontsize=8)
    fig.suptitle("Redundancy on test features (mean, 95% CI; subject in red)", fontsize=9)
    fig.tight_layout()
    return fig


def heatmap_figure(df: pd.DataFrame):
    sel = df[df["metric"] == "corr"]
    if not len(sel):
        return None
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    methods = [SUBJECT] + sorted(m for m in sel["method"].unique() if m != SUBJECT)
    methods = [m for m in methods if m in set(sel["method"])]
    fig, axes = plt.subplots(1, len(methods), figsize=(3.6 * len(methods) + 0.8, 3.9), squeeze=False)
    im = None
    for ax, m in zip(axes[0], methods, strict=True):
        g = sel[sel["method"] == m]
        g = g[g["seed"] == g["seed"].min()]
        k = int(g["feat_i"].astype(float).max()) + 1
        r = np.zeros((k, k))
        r[g["feat_i"].astype(float).astype(int), g["feat_j"].astype(float).astype(int)] = g["value"]
        dist = np.clip(1 - np.abs(r), 0, None)
        np.fill_diagonal(dist, 0)
        order = leaves_list(linkage(squareform((dist + dist.T) / 2, checks=False), "average")) if k > 2 else range(k)
        im = ax.imshow(r[np.ix_(order, order)], cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(f"{m} (seed {int(g['seed'].min())})", fontsize=9, weight="bold" if m == SUBJECT else "normal",
                     color=plots.SUBJECT_COLOR if m == SUBJECT else "k")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="Pearson correlation (test)")
    fig.suptitle("Feature correlation matrices on test inputs, features ordered by average-linkage clustering "
                 "of 1 - |corr|", fontsize=9)
    return fig
