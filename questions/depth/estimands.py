"""The depth question's estimands and reading, from the tidy table alone (no torch: the report reads it).

Per dataset and family f (its stack ``f/f/f``), paired by seed (the unit of replication), each with its mean
and 95% t-interval over seeds (:func:`bench.evaluate.estimates.estimate`):

* ``G_l = acc(layer l of the stack) - acc(layer l of its random control)``: the control is the same stack
  up to layer l - 1 (bit for bit: the same seeds) with an untrained ``random`` layer l, so G_l is what
  training layer l added over random features of the same layer below (layer 1's control: ``random@K``);
* ``dacc_l = acc(l) - acc(l - 1)`` and ``dMI_l = MI(l) - MI(l - 1)`` within the stack (MI: mean pairwise
  binned MI of the test code, nats).

Reading (docs/protocol.md 11.4): layer 2 **composes** when G_2's interval lies above 0 and acc(2) is no more
than [1 point] below acc(1) (dacc_2's lower bound >= -0.01); it **does not compose** when G_2's interval lies
at or below 0 or dacc_2's upper bound is below -0.01; else **undetermined** (also with fewer than 2 seeds).
"Independent features of independent features" also needs dMI_2 <= 0 (its upper bound at or below 0);
dMI_2's lower bound above 0 reads "more dependent", anything else leaves that part undetermined.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from bench.evaluate import estimates
from bench.evaluate.estimates import Estimate
from questions.depth.arms import control_of

TOLERANCE = 0.01  # acc(2) may fall this far below acc(1) and still compose (1 point)
COMPOSES, NOT, UNDETERMINED = "composes", "does not compose", "undetermined"
INDEPENDENT, DEPENDENT = "independent", "more dependent"


def per_seed(df: pd.DataFrame, dataset: str, arm: str, metric: str, layer: int) -> dict:
    """Seed -> value of ``metric`` at ``layer`` of ``arm`` on ``dataset`` (rows of the measurement only)."""
    if "arm" not in df.columns or "layer" not in df.columns:
        return {}
    sel = df[(df["dataset"] == dataset) & (df["arm"] == arm) & (df["metric"] == metric) & (df["layer"] == layer)]
    return {int(s): float(v) for s, v in zip(sel["seed"], sel["value"], strict=True)}


def _diff(a: dict, b: dict) -> Estimate:
    seeds = sorted(set(a) & set(b))
    return estimates.estimate(seeds, [a[s] - b[s] for s in seeds])


def stacks(df: pd.DataFrame, dataset: str) -> dict[str, tuple[str, int, int]]:
    """Family -> (its stack's arm, depth, width) for the stacks measured on ``dataset``."""
    if "role" not in df.columns:
        return {}
    sel = df[(df["dataset"] == dataset) & (df["role"] == "stack") & (df["metric"] == "acc")]
    out = {}
    for (fam, arm), g in sel.groupby(["family", "arm"], sort=True):
        out[str(fam)] = (str(arm), int(g["layer"].max()), int(g["width"].iloc[0]))
    return out


@dataclass(frozen=True)
class StackEstimates:
    """The estimands of one (dataset, family) stack; dicts keyed by layer."""

    dataset: str
    family: str
    arm: str
    depth: int
    acc: dict[int, Estimate]
    g: dict[int, Estimate]
    dacc: dict[int, Estimate]
    dmi: dict[int, Estimate]


def stack_estimates(df: pd.DataFrame, dataset: str, family: str) -> StackEstimates | None:
    found = stacks(df, dataset).get(family)
    if found is None:
        return None
    arm, depth, width = found
    acc = {lay: per_seed(df, dataset, arm, "acc", lay) for lay in range(1, depth + 1)}
    mi = {lay: per_seed(df, dataset, arm, "mi", lay) for lay in range(1, depth + 1)}
    g = {}
    for lay in range(1, depth + 1):
        ctrl = per_seed(df, dataset, control_of(family, lay, width), "acc", lay)
        g[lay] = _diff(acc[lay], ctrl)
    return StackEstimates(
        dataset,
        family,
        arm,
        depth,
        {lay: estimates.estimate(sorted(v), [v[s] for s in sorted(v)]) for lay, v in acc.items()},
        g,
        {lay: _diff(acc[lay], acc[lay - 1]) for lay in range(2, depth + 1)},
        {lay: _diff(mi[lay], mi[lay - 1]) for lay in range(2, depth + 1)},
    )


def reading(e: StackEstimates, layer: int = 2) -> tuple[str, str]:
    """(composition word, independence word) of ``layer`` of a stack (see the module docstring)."""
    g, da, dm = e.g.get(layer), e.dacc.get(layer), e.dmi.get(layer)
    if g is None or da is None or g.n < 2 or da.n < 2 or math.isnan(g.ci_low) or math.isnan(da.ci_low):
        return UNDETERMINED, UNDETERMINED
    if g.ci_low > 0 and da.ci_low >= -TOLERANCE:
        word = COMPOSES
    elif g.ci_high <= 0 or da.ci_high < -TOLERANCE:
        word = NOT
    else:
        word = UNDETERMINED
    if dm is None or dm.n < 2 or math.isnan(dm.ci_low):
        return word, UNDETERMINED
    if dm.ci_high <= 0:
        return word, INDEPENDENT
    if dm.ci_low > 0:
        return word, DEPENDENT
    return word, UNDETERMINED


def fmt(e: Estimate, digits: int = 3) -> str:
    """``+0.021 [+0.010, +0.031]`` (``n/a`` without a value; the mean alone with one seed)."""
    if e is None or e.n == 0:
        return "n/a"
    if math.isnan(e.ci_low):
        return f"{e.mean:+.{digits}f} (one seed)"
    return f"{e.mean:+.{digits}f} [{e.ci_low:+.{digits}f}, {e.ci_high:+.{digits}f}]"


def numbers(e: StackEstimates, layer: int = 2) -> str:
    return (
        f"G_{layer} = {fmt(e.g.get(layer))}, acc({layer}) - acc({layer - 1}) = {fmt(e.dacc.get(layer))}, "
        f"dMI_{layer} = {fmt(e.dmi.get(layer), 4)} nats"
    )


def answer(df: pd.DataFrame, family: str = "infomax", dataset: str = "mnist5k") -> str:
    """One sentence: the reading of layer 2 of the ``family`` stack on ``dataset``; other datasets' stacks of
    the same family are named only where their composition word differs."""
    e = stack_estimates(df, dataset, family)
    if e is None:
        return f"undetermined: the {family} stack has no {dataset} rows in this run"
    word, indep = reading(e)
    where = f"({family} stack, {dataset}, {e.g[2].n if 2 in e.g else 0} seeds)"
    nums = f"{numbers(e)} {where}"
    others = []
    for ds in sorted(set(df["dataset"]) - {dataset}):
        o = stack_estimates(df, ds, family)
        if o is not None and 2 in o.g and reading(o)[0] != word:
            others.append(f"on {ds} it reads '{reading(o)[0]}' ({numbers(o)})")
    tail = f"; {'; '.join(others)}" if others else ""
    if word == UNDETERMINED:
        return f"undetermined: {nums}{tail}"
    if word == NOT:
        return f"It does not compose: {nums}{tail}."
    if indep == INDEPENDENT:
        return f"Layer 2 composes, and its features are independent features of independent features: {nums}{tail}."
    if indep == DEPENDENT:
        return f"Layer 2 composes, but its features are more dependent than layer 1's: {nums}{tail}."
    return f"Layer 2 composes; whether its features are more independent is undetermined: {nums}{tail}."


def plain(df: pd.DataFrame, dataset: str, family: str) -> tuple[str, int] | None:
    """(arm, top layer) of a reference or the plain random job on ``dataset``."""
    if "family" not in df.columns:
        return None
    sel = df[(df["dataset"] == dataset) & (df["family"] == family) & (df["metric"] == "acc")]
    if sel.empty:
        return None
    return str(sel["arm"].iloc[0]), int(sel["layer"].max())
