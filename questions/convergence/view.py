"""Open question ``convergence``, the view: Delta_EM and r_EM along the scale axes, the stability of units
across seeds, and whether every method's features converge (docs/protocol.md 11.3).

The estimands are :mod:`questions.convergence.estimands`' (the signed slope of Delta_EM per doubling, a
bias-corrected magnitude beside it, TOST at the largest point; jackknife-over-seeds intervals for the
pair summaries). The answer reads the ``mnist1d`` N axis and the ``mnist5k`` K axis; figures and tables are
:mod:`questions.convergence.figures` and :mod:`questions.convergence.tables`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bench.evaluate.inference import holm
from bench.evaluate.resampling import westfall_young
from bench.evaluate.stats import compare, verdict
from bench.protocol import VIEWS, Table, View
from questions.convergence import estimands as E
from questions.convergence import figures as F
from questions.convergence import tables as T

METHODS = ("infomax", "infomax_noem", "pca", "fastica", "ae", "simclr", "supervised")


def fmt_x(axis: str, x: float) -> str:
    name = {"n_mnist1d": "N", "k": "K", "steps": "epochs", "ica": "K", "lambda_lse": "lambda_lse"}[axis]
    where = {"n_mnist1d": " (mnist1d)", "k": " (mnist5k)", "ica": " (ica)"}.get(axis, "")
    return f"{name} = {x:,.0f}{where}" if float(x).is_integer() else f"{name} = {x:g}{where}"


def per(axis: str) -> str:
    """The axis a doubling is of: "N (mnist1d)", "K (mnist5k)", "K (ica)"."""
    return fmt_x(axis, 1).replace(" = 1", "")


def fmt_ci(e, scale: float = 1.0, digits: int = 2) -> str:
    if e is None or e.n == 0:
        return "n/a"
    m = f"{e.mean * scale:+.{digits}f}"
    if not (np.isfinite(e.ci_low) and np.isfinite(e.ci_high)):
        return f"{m} (no interval, {e.n} seed{'s' * (e.n != 1)})"
    return f"{m} [{e.ci_low * scale:+.{digits}f}, {e.ci_high * scale:+.{digits}f}]"


def stability_verdicts(df: pd.DataFrame, profile: str | None, score: str = "matched_corr_live") -> dict[float, str]:
    """(b)'s suite verdict on ``k`` at K = 64 and at the largest K (profile ``confirm`` only; else the direction):
    the jackknife pseudo-values of the two methods paired by seed, Holm over the two cells and Westfall-Young."""
    cells = {s.x: s for s in E.stability(df, "k", score)}
    if not cells:
        return {}
    wanted = sorted({x for x in (64.0, max(cells)) if x in cells})
    comps = [compare(cells[x].pseudo_subject, cells[x].pseudo_noem, "higher", name=f"K={x:g}") for x in wanted]
    if profile != "confirm":
        return {x: f"exploratory: {c.direction}" for x, c in zip(wanted, comps, strict=True)}
    adj = holm([c.p_t for c in comps])
    wy = westfall_young([dict(c.diffs) for c in comps])
    return {
        x: verdict(c.mean_diff, p, c.n, "higher", p_wy=w) for x, c, p, w in zip(wanted, comps, adj, wy, strict=True)
    }


ANSWER_AXES = (("n_mnist1d", "test_acc"), ("k", "test_acc"), ("ica", "mcc"))  # what (a)'s part of the answer reads


def _a_part(df: pd.DataFrame) -> str:
    summ = {ax: E.delta_summary(df, ax, metric) for ax, metric in ANSWER_AXES}
    summ = {ax: s for ax, s in summ.items() if s is not None and s.tost is not None and s.tost.n >= 2}
    if not summ:
        return "undetermined: no axis has infomax and infomax_noem accuracy (or MCC) on two or more seeds"
    # dilution is read at the job's own initial weights and along K (the protocol's r_EM vs K): the trained r_EM
    # tends to 1 at any stationary point, and at init the N and epochs axes share one minibatch and one init
    r_k = E.log2_slope(df, "k", "r_em_init")

    def at_last(ax: str) -> str:
        s, t = summ[ax], summ[ax].tost
        if s.metric == "mcc":
            return (
                f"MCC {fmt_ci(s.last, 1, 3)} at {fmt_x(ax, s.xs[-1])[:-1]}; TOST at {t.margin:g}: {t.result}, "
                f"smallest margin {t.smallest_margin:.3f})"
            )
        return (
            f"{fmt_ci(s.last, 100)} points at {fmt_x(ax, s.xs[-1])[:-1]}; TOST at 1 point: {t.result}, "
            f"smallest margin {100 * t.smallest_margin:.2f})"
        )

    def slope(ax: str) -> str:
        s = summ[ax]
        if s.metric == "mcc":
            return f"{fmt_ci(s.slope, 1, 3)} MCC per doubling of {per(ax)}"
        return f"{fmt_ci(s.slope, 100)} points per doubling of {per(ax)}"

    r_line = f"log2 r_EM at init {fmt_ci(r_k)} per doubling of K" if r_k else "r_EM at init not measured along K"

    words = {ax: s.tost.result for ax, s in summ.items()}
    differs = [ax for ax, w in words.items() if w == "differs"]
    if differs:
        return "The mechanism still matters at the largest scale: Delta_EM = " + ", ".join(
            at_last(ax) for ax in differs
        )
    if all(w == "equivalent" for w in words.values()):
        shrinks = [ax for ax in summ if summ[ax].trend == "shrinks"]
        head = (
            "EM's effect shrinks with scale (Delta_EM " + ", ".join(slope(ax) for ax in shrinks) + "; at the largest "
            "points "
            if shrinks
            else "EM's effect is within the margin at the largest scale (Delta_EM "
        )
        body = ", ".join(at_last(ax) for ax in summ)
        if E.trend_word(r_k) == "falls":
            return f"{head}{body}) while r_EM falls ({r_line}): EM was outweighed"
        return f"{head}{body}) although r_EM does not fall ({r_line}): at scale the mechanism does not matter"
    return "undetermined: Delta_EM = " + ", ".join(at_last(ax) for ax in summ)


def _c_part(df: pd.DataFrame) -> str:
    trends = {ax: E.pair_trends(df, ax, METHODS) for ax in E.SCALE_AXES}
    trends = {ax: t for ax, t in trends.items() if t}
    if not trends:
        return "convergence not measured (no pair rows)"
    flat = [(ax, t) for ax, ts in trends.items() for t in ts]
    n_conv = sum(t.word == "converges" for _, t in flat)
    apart = [(ax, t) for ax, t in flat if t.word == "apart"]
    where = " and ".join(fmt_x(ax, ts[0].xs[-1]) for ax, ts in trends.items())
    if n_conv == len(flat):
        return (
            f"everything converges (S >= {E.CONVERGED} and 1 - S falling for all {len(flat)} method pairs at {where})"
        )
    if apart:
        ax, low = min(apart, key=lambda at: at[1].s[-1])
        return (
            f"not everything converges: S({low.a}, {low.b}) = {fmt_ci(low.per_x[-1])} at {fmt_x(ax, low.xs[-1])} "
            f"(jackknife interval below {E.CONVERGED}; {n_conv} of {len(flat)} method pairs x axes converge)"
        )
    finite = [(ax, t) for ax, t in flat if math.isfinite(t.s[-1])]
    low = f"; lowest S = {min(t.s[-1] for _, t in finite):.2f}" if finite else ""
    return (
        f"whether everything converges is undetermined ({n_conv} of {len(flat)} method pairs x axes converge at "
        f"{where}, none is shown apart{low})"
    )


@VIEWS.register()
class ConvergenceView(View):
    """Does EM structure matter at scale? Delta_EM and r_EM along N, K and epochs; does everything converge?"""

    kind = "question"
    in_all = False
    order = 3.0
    name = "convergence"
    title = "Does EM structure matter at scale?"
    question = (
        "\u201cDoes EM structure matter at scale? With enough parameters and data, does the learning mechanism "
        "matter? Or does everything converge to similar features eventually?\u201d"
    )
    statement = question
    protocol = (
        "(a) Delta_EM = m(infomax) - m(infomax_noem), paired by seed, along pretraining N on mnist1d (K = 128, "
        "8,192 steps at every N: the scaling question's encoders), width K on mnist5k (16..256 quick, ..1,024 "
        "full) and epochs (25..400, K = 64); m: fixed-label probe accuracy, kappa at 10 labels per class, MCC on "
        "ica (sources = K in 8, 32, 64), dead fraction, activation scale, divergence rate. Estimand: the signed "
        "slope of Delta_EM per doubling (t-interval over seeds; a bias-corrected |Delta| slope beside), and at the "
        "largest point a TOST within 1 point of accuracy (.02 MCC). Dilution: r_EM = ||grad LSE|| / "
        "||grad (H + TC)|| of the trained infomax on one fixed training minibatch of the run's batch size (and, "
        "beside it, at the job's own initial weights), its log2 slope per doubling, and lambda_lse in [.1, 10] "
        "at K = 64. Delta_EM -> 0 with r_EM -> 0 reads "
        "'EM was outweighed', not 'the mechanism does not matter'. (b) Cross-seed unit-matched |corr| "
        "(matching fit on probe-train inputs, scored on test inputs; pairs with a dead unit left out) of "
        "infomax minus infomax_noem, predicted > 0; suite verdict at K = 64 and the largest K under confirm only. "
        "(c) S(A, B) = debiased CKA / sqrt(CKA_w(A) CKA_w(B)) on standardised units over cross-seed pairs for "
        "seven methods, on the same 2,000 test inputs of split seed 0 for every seed (750 on mnist5k); "
        "'converges' = 1 - S falling per doubling (interval below 0) and S >= .9 at the largest point. Pair "
        "summaries get jackknife-over-seeds intervals. No verdicts but (b) under confirm."
    )
    main_figure = "delta_em"

    def answer(self, df: pd.DataFrame) -> str:
        return f"{_a_part(df)}; {_c_part(df)}."

    def tables(self, df: pd.DataFrame) -> list[Table]:
        out = [T.delta_table(df), T.divergence_table(df), T.r_em_table(df), T.lambda_table(df)]
        out += [T.stability_table(df, stability_verdicts(df, self.profile)), T.convergence_table(df, METHODS)]
        out += [T.similarity_matrix_table(df, ax) for ax in E.SCALE_AXES]
        return [t for t in out if t is not None]

    def figures(self, df: pd.DataFrame, matrices: pd.DataFrame):
        return F.figures(df, METHODS)
