"""Open question ``scaling``, the view: error halvings per doubling, the reading words, the curves
(docs/protocol.md 11.1).

Per method and axis, each seed's curve of test error e against x (N, K or epochs) gives b = -slope of log2 e
on log2 x (error halvings per doubling) over every point and, as b_end, over the last two doublings; their
mean and 95% t-interval over seeds (:mod:`bench.evaluate.estimates`). Beside them: points of accuracy per
doubling, subject - baseline differences in b with simultaneous intervals and Holm p, the subject's rank in
b_end with a seed-bootstrap interval, the gain g over ``random`` at the same K and its slope in K, the held-out
power law, the 2x-steps compute check and the cost slope in K (:mod:`questions.scaling.estimands`,
:mod:`questions.scaling.tables`, :mod:`questions.scaling.figures`).

The answer reads the ``mnist1d`` N axis, the longest: "still scaling" (b_end above 0 and g not shrinking with
K), "stops" (b_end covers 0 where the baselines' do not), "lands with X" (inside X's interval), or
"undetermined"; b_end above 0 with a shrinking g is said as such, never as plain "still scaling". ``raw`` and
``random`` learn nothing from N, so they are never references for "stops".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.evaluate import estimates, scaling_law
from bench.protocol import SUBJECT, VIEWS, Table, View
from questions.scaling import estimands as E
from questions.scaling import figures as F
from questions.scaling import tables as T

AXES = E.AXES
NO_N = E.NO_N


def slopes(df: pd.DataFrame, axis: str, doublings: float | None = None) -> dict[str, estimates.Estimate]:
    """Method -> b (``doublings`` None) or b_end (2) on ``axis`` (:func:`questions.scaling.estimands.slopes`)."""
    return E.slopes(df, axis, doublings)


def _interval(e: estimates.Estimate, scale: float = 1.0, digits: int = 2) -> str:
    return f"{e.mean * scale:+.{digits}f} [{e.ci_low * scale:+.{digits}f}, {e.ci_high * scale:+.{digits}f}]"


def _compute_clause(df: pd.DataFrame) -> str:
    """ "; its largest mnist1d N is compute-limited (...)" when the subject's 2x-steps point moved, else ""."""
    c = E.compute_check(df).get(SUBJECT)
    if c is None or c.word != "compute-limited":
        return ""
    return (
        f"; its largest mnist1d N ({c.n:,.0f}) is compute-limited (2x steps change e by {_interval(c.diff, digits=4)})"
    )


def answer(df: pd.DataFrame) -> str:
    """One sentence from the subject's b_end on mnist1d, g's slope in K and the compute check (see the module)."""
    b_end = E.slopes(df, "n_mnist1d", 2)
    if SUBJECT not in b_end:
        return "undetermined: the subject has no mnist1d N curve in this run"
    refs = [m for m in b_end if m not in NO_N and m != SUBJECT]
    g = E.gain_slopes(df).get(SUBJECT)
    g_known = g is not None and bool(np.isfinite(g.ci_high))
    reading = scaling_law.readings(b_end, references=refs or None, gain_slope={SUBJECT: g} if g_known else None)
    reading = reading[SUBJECT]
    e = b_end[SUBJECT]
    where = f"b_end = {e.mean:.2f} [{e.ci_low:.2f}, {e.ci_high:.2f}] error halvings per doubling of N on mnist1d"
    lands = [m for m in reading.lands_with if m not in NO_N]
    compute = _compute_clause(df)
    tail = (f"; it lands with {', '.join(lands)}" if lands else "") + compute
    g_text = f"g's slope {_interval(g, 100)} points per doubling of K" if g_known else ""
    if e.ci_low > 0 and E.shrinks(g):
        return (
            f"InfoMax's error still falls with N ({where}), but its gain over random shrinks with K ({g_text}){tail}."
        )
    if reading.word == "still scaling":
        if not g_known:
            return f"undetermined: {where}, but its gain over random along K is not measured on two seeds{tail}"
        return f"InfoMax still scaling: {where}, and its gain over random does not shrink with K ({g_text}){tail}."
    if reading.word == "undetermined":
        return f"undetermined: {where}{tail}"
    if reading.word == "lands with":
        return f"InfoMax lands with {', '.join(lands or reading.lands_with)}: {where}{compute}."
    return f"InfoMax {reading.word}: {where}{tail}."


@VIEWS.register()
class ScalingView(View):
    """Does InfoMax scale? Error halvings per doubling of N, K and steps, against the baselines."""

    kind = "question"
    in_all = False
    order = 1.0
    name = "scaling"
    title = "Does InfoMax scale?"
    question = (
        "\u201cDoes InfoMax scale? RBMs didn't scale. Autoencoders did but weren't enough. Contrastive learning "
        "scales. Foundation model objectives scale massively. Where does InfoMax land?\u201d"
    )
    statement = question
    protocol = (
        "Each method is pretrained at several sizes of its unlabelled data N (nested prefixes; mnist1d at "
        "K = 128 and mnist5k at K = 64), always for the same number of optimisation steps (8,192 at batch 128 on "
        "mnist1d, 100 epochs at N = 3,500 on mnist5k), so more data is not more steps; the largest mnist1d N "
        "again at twice the steps shows whether that point was compute-limited. Also along width K (P3's "
        "sweep + 256) and epochs (25..400). Every encoder: a linear probe on fixed probe-train labels, L2 chosen "
        "on val, test error e once. Per seed: b = error halvings per doubling (-slope of log2 e on log2 x), and "
        "b_end over the last two doublings; points of accuracy per doubling beside them; 95% t-intervals over "
        "seeds. Subject - baseline differences in b and b_end (simultaneous intervals, Holm p), the subject's "
        "rank in b_end (seed bootstrap), the gain g over random at the same K and its slope per doubling of K, "
        "e(N) = e_inf + a N^-c fitted without the largest N and scored there, and the log-log slope of seconds "
        "per sample in K. At K >= 128 the InfoMax pair is rerun at batch 2K with lambda_lse = 128/2K and equal "
        "samples (at batch 128 the correlation of K units has rank <= 127, a floor under TC). 'Still scaling' "
        "needs b_end above 0 and g not shrinking with K. No verdicts: estimates and a reading."
    )
    main_figure = "error_curves"

    def answer(self, df: pd.DataFrame) -> str:
        return answer(df)

    def tables(self, df: pd.DataFrame) -> list[Table]:
        return T.tables(df)

    def figures(self, df: pd.DataFrame, matrices: pd.DataFrame):
        return F.figures(df)
