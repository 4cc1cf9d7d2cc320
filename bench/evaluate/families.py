"""Verdicts within families and one headline per prediction (docs/protocol.md, statistics).

A view's verdict frames hold one unjudged row per member (``bench.evaluate.verdicts.verdict_from_tidy`` or
``bench.evaluate.stats.compare``: n, mean d, interval, d_z, ``p_t``, ``p_perm`` and the per-seed ``diffs``).
:func:`judge` assigns each member its family and decides the rows:

* **PA** (prior art), **AB** (the subject's ablations: a mechanism question) and **other** (a
  prediction's descriptive baselines, P3) are each corrected on their own: ``p_holm`` is Holm on
  ``p_t`` and ``p_wy`` the Westfall-Young step-down max-T over the family's rows, pooled across
  every frame judged together (both primaries of P2 and P4). A row is **supported** when both
  are below 0.05 and mean d lies in the predicted direction, **contradicted** when both are and it
  lies opposite, **inconclusive** otherwise (always with fewer than 2 seeds);
* **REF** (``raw``, ``random``) rows keep mean d and its interval and get no test ("reference");
* a cell n/a by design (``na``: an oracle, a method that cannot run on the data) reads "n/a" and
  leaves every correction.

:func:`headline` is the prediction's one answer, from its PA rows on its primaries: **supported**
iff every applicable PA cell has mean d in the predicted direction with unadjusted ``p_t`` and
``p_perm`` below 0.05 (an intersection-union test, Berger 1982: level 0.05 for "beats every
member"; a cell n/a by design leaves the intersection, any other missing cell blocks it),
**contradicted** iff a PA row is contradicted, **inconclusive** otherwise. With two primaries a
member is supported iff supported on both (or on the one that applies) and contradicted iff
contradicted on either (:func:`combine`). Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from bench.evaluate.resampling import westfall_young
from bench.evaluate.stats import ALPHA, holm, sign_word, verdict

ABLATIONS = ("infomax_noem", "infomax_softmax", "lse_only")  # AB: the subject's own ablations (mechanism)
REFERENCES = ("raw", "random")  # REF: reference codes (mean d and interval, no test)
FAMILIES = ("PA", "other", "AB", "REF")  # in the order tables show them


def family(method: str, pa: tuple[str, ...] | None = None) -> str:
    """The verdict family of ``method`` (docs/protocol.md, families): ``AB`` for the subject's
    ablations, ``REF`` for the reference codes, ``PA`` for the prior art (every other method, or
    only the members of ``pa`` when a prediction names its own PA, as P3 does), ``other`` for the
    rest (a descriptive family with its own correction, never in the headline)."""
    if method in ABLATIONS:
        return "AB"
    if method in REFERENCES:
        return "REF"
    if pa is None or method in pa:
        return "PA"
    return "other"


TESTED = ("PA", "AB", "other")  # REF has no test
NA = "n/a"
REFERENCE = "reference"
TEST_COLUMNS = ("p_t", "p_wilcoxon", "p_perm", "p_holm", "p_wy")


def _col(frame: pd.DataFrame, name: str, default) -> pd.Series:
    return frame[name] if name in frame.columns else pd.Series([default] * len(frame), index=frame.index)


def judge(
    frames: Sequence[pd.DataFrame], directions: Sequence[str], pa: Sequence[str] | None = None, alpha: float = ALPHA
) -> list[pd.DataFrame]:
    """Families, Holm and Westfall-Young pooled over ``frames`` (one prediction's primaries, or one
    secondary), and every row's verdict. ``directions[i]`` is frame i's predicted direction."""
    out = []
    for f, direction in zip(frames, directions, strict=True):
        f = f.copy()
        f["family"] = [family(str(b), None if pa is None else tuple(pa)) for b in f["baseline"]]
        f["na"] = _col(f, "na", "").fillna("").astype(str)
        f["diffs"] = _col(f, "diffs", ()).map(lambda v: v if isinstance(v, tuple) else ())
        f["direction"] = [sign_word(m, direction) for m in f["mean_diff"]]
        out.append(f)
    for fam in TESTED:
        cells = [(i, idx) for i, f in enumerate(out) for idx in f.index[(f["family"] == fam) & (f["na"] == "")]]
        if not cells:
            continue
        adj = holm([out[i].at[idx, "p_t"] for i, idx in cells])
        wy = westfall_young([dict(out[i].at[idx, "diffs"]) for i, idx in cells])
        for (i, idx), a, w in zip(cells, adj, wy, strict=True):
            f = out[i]
            f.at[idx, "p_holm"], f.at[idx, "p_wy"] = float(a), float(w)
            f.at[idx, "verdict"] = verdict(
                f.at[idx, "mean_diff"], a, f.at[idx, "n"], directions[i], alpha, w if np.isfinite(w) else math.nan
            )
    for f in out:
        untested = (f["family"] == "REF") | (f["na"] != "")
        for c in TEST_COLUMNS:
            if c in f.columns:
                f.loc[untested, c] = math.nan
        f.loc[f["family"] == "REF", "verdict"] = REFERENCE
        f.loc[f["na"] != "", "verdict"] = NA
    return [_ordered(f) for f in out]


def _ordered(f: pd.DataFrame) -> pd.DataFrame:
    """Rows by their group columns (those before ``baseline``), then PA, other, AB, REF, in a stable order."""
    if f.empty or "baseline" not in f.columns:
        return f
    keys = list(f.columns[: list(f.columns).index("baseline")])
    rank = f["family"].map({fam: i for i, fam in enumerate(FAMILIES)}).fillna(len(FAMILIES))
    order = f.assign(_rank=rank).sort_values([*keys, "_rank"], kind="stable", na_position="last").index
    return f.loc[order].reset_index(drop=True)


def combine(frames: Sequence[pd.DataFrame], labels: Sequence[str]) -> pd.DataFrame:
    """The two-primaries table: one row per member, per primary its n, mean d [CI], ``p_holm``,
    ``p_wy`` and verdict (or "n/a: reason"), then the member's overall verdict: supported iff
    supported on every primary that applies to it, contradicted iff contradicted on either."""
    members = list(dict.fromkeys(b for f in frames for b in f["baseline"]))
    recs = []
    for b in members:
        rec: dict = {"baseline": b}
        words, fams, reasons, under = [], set(), set(), 0
        for f, lab in zip(frames, labels, strict=True):
            rows = f[f["baseline"] == b]
            if rows.empty:
                rec.update(
                    {
                        f"{lab}: n": 0,
                        f"{lab}: d [95% CI]": "n/a",
                        f"{lab}: p_holm": math.nan,
                        f"{lab}: p_wy": math.nan,
                        f"{lab}: verdict": "no row",
                    }
                )
                words.append("missing")
                continue
            r = rows.iloc[0]  # a primary is one group per member (P2: pooled pairs; P4: one setting each)
            fams.add(r["family"])
            under += int(r.get("under_trained", 0) or 0)
            ci = f"[{_g(r['ci_low'])}, {_g(r['ci_high'])}]"
            rec[f"{lab}: n"] = int(r["n"])
            rec[f"{lab}: d [95% CI]"] = f"{_g(r['mean_diff'])} {ci}" if np.isfinite(float(r["mean_diff"])) else "n/a"
            rec[f"{lab}: p_holm"], rec[f"{lab}: p_wy"] = r.get("p_holm", math.nan), r.get("p_wy", math.nan)
            na = str(r.get("na", "") or "")
            rec[f"{lab}: verdict"] = f"n/a: {na}" if na else r["verdict"]
            words.append(NA if na else ("missing" if int(r["n"]) == 0 else r["verdict"]))
            if isinstance(r.get("reason"), str) and r["reason"]:
                reasons.add(r["reason"])
        applicable = [w for w in words if w != NA]
        if REFERENCE in words:
            overall = REFERENCE
        elif not applicable:
            overall = NA
        elif "contradicted" in applicable:
            overall = "contradicted"
        elif all(w == "supported" for w in applicable):
            overall = "supported"
        else:
            overall = "inconclusive"
        rec.update(
            family=", ".join(sorted(fams)),
            verdict=overall,
            under_trained=under,
            one_primary=sum(w not in ("missing", NA) for w in words) == 1 and "missing" in words,
            reason="; ".join(sorted(reasons)),
        )
        recs.append(rec)
    frame = pd.DataFrame(recs)
    if frame.empty:
        return frame
    return frame[
        [
            "baseline",
            "family",
            *[c for c in frame.columns if ": " in c],
            "verdict",
            "under_trained",
            "one_primary",
            "reason",
        ]
    ]


def _g(v) -> str:
    v = float(v)
    return "n/a" if not np.isfinite(v) else f"{v:.3g}"


def _cells(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    return (
        pd.concat([f.assign(_table=i) for i, f in enumerate(frames)], ignore_index=True)
        if frames
        else (
            pd.DataFrame(columns=["baseline", "family", "n", "mean_diff", "p_t", "p_perm", "na", "verdict", "_table"])
        )
    )


def headline(
    frames: Sequence[pd.DataFrame], directions: Sequence[str], alpha: float = ALPHA, half: float = 0.5
) -> tuple[str, str]:
    """The prediction's headline from its judged primary frames: ``(word, why)``.

    ``word`` is supported / contradicted / inconclusive. The headline rests on some PA members: all of
    them for "supported", those that contradict it for "contradicted", those that block "supported" for
    "inconclusive". When any of those is flagged under-trained on at least ``half`` of its seeds, the
    word says so: "supported (under-trained: B, ...)" (docs/protocol.md 7.5), and likewise after
    "contradicted" or "inconclusive". The flag annotates the word, never changes it.
    ``why`` names the PA members that block "supported" or make it "contradicted"."""
    cells = _cells(frames)
    pa = cells[cells["family"] == "PA"]
    if pa.empty:
        return "inconclusive", "no PA member was compared"
    flagged_names = {
        str(r["baseline"])
        for _, r in pa.iterrows()
        if int(r["n"]) > 0 and float(r.get("under_trained", 0) or 0) >= half * int(r["n"])
    }

    def annotated(word: str, resting_on) -> str:
        flagged = sorted(flagged_names & set(resting_on))
        return word + (f" (under-trained: {', '.join(flagged)})" if flagged else "")

    contra = sorted(set(pa.loc[pa["verdict"] == "contradicted", "baseline"]))
    if contra:
        return annotated("contradicted", contra), "contradicted by " + ", ".join(contra)
    blocking = []
    for _, r in pa.iterrows():
        if str(r.get("na", "") or ""):
            continue
        direction = directions[int(r["_table"])]
        ok = (
            int(r["n"]) >= 2
            and sign_word(r["mean_diff"], direction) == "as predicted"
            and float(r["p_t"]) < alpha
            and float(r["p_perm"]) < alpha
        )
        if not ok:
            blocking.append(str(r["baseline"]))
    if blocking:
        names = sorted(set(blocking))
        return annotated("inconclusive", names), (
            f"not beaten at p_t and p_perm < {alpha} on every primary by {len(names)} of "
            f"{pa['baseline'].nunique()} PA members: " + ", ".join(names)
        )
    if not (pa["na"].fillna("") == "").any():
        return "inconclusive", "every PA cell is n/a by design"
    return (
        annotated("supported", pa["baseline"].astype(str)),
        f"every applicable cell of all {pa['baseline'].nunique()} PA members beaten at p_t and p_perm < {alpha}",
    )


def counts(frames: Sequence[pd.DataFrame], combined: pd.DataFrame | None = None) -> str:
    """Per family: each verdict's count, n/a by design, failed (no value) and, with two primaries,
    value on one primary only. PA first; AB after it, as mechanism; REF as references."""
    cells = _cells(frames)
    parts = []
    for fam, label in (
        ("PA", "PA"),
        ("other", "other baselines (descriptive)"),
        ("AB", "AB (mechanism)"),
        ("REF", "REF"),
    ):
        if combined is not None and len(combined):
            rows = combined[combined["family"].str.contains(fam)]
            verdicts = rows["verdict"].tolist()
            failed = int(sum(all(int(v) == 0 for k, v in r.items() if k.endswith(": n")) for _, r in rows.iterrows()))
            one = int(rows["one_primary"].sum())
        else:
            rows = cells[cells["family"] == fam]
            verdicts = rows["verdict"].tolist()
            failed = int(((rows["n"] == 0) & (rows["na"].fillna("") == "")).sum())
            one = 0
        if not len(rows):
            continue
        if fam == "REF":
            parts.append(f"{label}: {_n(len(rows), 'reference')} (mean d and interval, no test)")
            continue
        c = {w: verdicts.count(w) for w in ("supported", "contradicted", "inconclusive", NA)}
        text = (
            f"{label} ({len(rows)}): {c['supported']} supported, {c['contradicted']} contradicted, "
            f"{c['inconclusive']} inconclusive, {c[NA]} n/a by design, {failed} failed (no value)"
        )
        if combined is not None:
            text += f", {one} with a value on one primary only"
        parts.append(text)
    return "; ".join(parts)


def exploratory_counts(frames: Sequence[pd.DataFrame], profile: str) -> str:
    """The exploratory overall line: per family, how many members the subject's mean d lies on each
    side of (no test, no verdict)."""
    cells = _cells(frames)
    parts = [f"exploratory (profile {profile}): no verdicts"]
    for fam, label in (("PA", "PA"), ("other", "other baselines"), ("AB", "AB"), ("REF", "REF")):
        rows = cells[cells["family"] == fam]
        if not len(rows):
            continue
        d = rows["direction"].tolist() if "direction" in rows.columns else []
        k = rows["baseline"].nunique()
        parts.append(
            f"{label} ({k} member{'s' if k != 1 else ''}): the subject's mean d lies as predicted in "
            f"{_n(d.count('as predicted'), 'cell')}, opposite in {d.count('opposite')}, no value in "
            f"{int((rows['n'] == 0).sum())}"
        )
    return "; ".join(parts)


def _n(k: int, noun: str) -> str:
    return f"{k} {noun}{'' if k == 1 else 's'}"
