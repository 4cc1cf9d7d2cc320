"""Verdict tables from a tidy table: every requested method, every seed, every reason (docs/protocol.md §7).

:func:`verdict_from_tidy` selects one metric's rows, groups them (by dataset and width), and
compares the subject against every other method of the group with :func:`bench.evaluate.stats.compare_all`
(Holm across the group's baselines). Status rows (``job_failed``: a job diverged;
``job_skipped``: a method cannot run on this data) carry no condition columns; they make a
method without any value still appear, as a row with ``n = 0``, its missing seeds and the reason.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import pandas as pd

from bench.evaluate.families import judge
from bench.evaluate.stats import FIELDS, _check_direction, _is_missing, _unjudged, comparisons_frame

STATUS_METRICS = ("job_failed", "job_skipped")


def _seed_map(rows: pd.DataFrame, method: str) -> dict:
    """Seed -> value of one method's metric rows in one group (NaN values kept)."""
    if rows["seed"].isna().any():
        raise ValueError(f"method {method!r} has metric rows without a seed")
    dup = rows["seed"].duplicated(keep=False)
    if dup.any():
        seeds = sorted(set(rows.loc[dup, "seed"].tolist()))
        raise ValueError(
            f"method {method!r} has several rows for seeds {seeds} in one group; "
            "add the distinguishing columns to `by` or `extra_filter`"
        )
    values = [math.nan if _is_missing(v) else float(v) for v in rows["value"].tolist()]
    return dict(zip(rows["seed"].tolist(), values, strict=True))


def _with_status(values: dict, status: pd.DataFrame) -> dict:
    """``values`` plus a NaN entry for every seed of a status row not already in it."""
    out = dict(values)
    for s in status["seed"].dropna().tolist():
        out.setdefault(s, math.nan)
    return out


def _notes(rows: pd.DataFrame) -> set[str]:
    if "note" not in rows.columns:
        return set()
    return {str(v).strip() for v in rows["note"].tolist() if not _is_na(v) and str(v).strip()}


def _is_na(value) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _same_key(a: tuple, b: tuple) -> bool:
    """Group keys equal position by position, NaN equal to NaN."""
    return all(
        (_is_na(x) and _is_na(y)) or (not _is_na(x) and not _is_na(y) and x == y) for x, y in zip(a, b, strict=True)
    )


def _place_status(sel: pd.DataFrame, status: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Status rows assigned to the groups of the metric rows.

    A status row goes to the group of its own ``keys`` values. Where it has no value for a
    group column (a skipped method has no width, say), it joins every metric group that
    agrees on the columns it does have, and forms a group of its own only if none does.
    """
    if not keys or status.empty:
        return status
    mkeys = list(dict.fromkeys(tuple(r) for r in sel[keys].itertuples(index=False, name=None)))
    parts = []
    for skey, rows in status.groupby(keys, dropna=False, sort=False):
        skey = skey if isinstance(skey, tuple) else (skey,)
        holes = [_is_na(x) for x in skey]
        if not any(holes) or any(_same_key(skey, mk) for mk in mkeys):
            parts.append(rows)
            continue
        targets = [
            mk for mk in mkeys if all(h or _same_key((x,), (y,)) for h, x, y in zip(holes, skey, mk, strict=True))
        ]
        if not targets:
            parts.append(rows)
        for mk in targets:
            filled = rows.copy()
            for col, value in zip(keys, mk, strict=True):
                filled[col] = value
            parts.append(filled)
    return pd.concat(parts, ignore_index=True)


def verdict_from_tidy(
    df: pd.DataFrame,
    metric: str,
    subject: str,
    direction: str,
    by: Sequence[str] = ("dataset", "width"),
    extra_filter: dict | None = None,
    methods: Sequence[str] | None = None,
    margin: dict | None = None,
    na: dict | None = None,
    pa: Sequence[str] | None = None,
    judged: bool = True,
) -> pd.DataFrame:
    """Per-group comparisons of the subject against every baseline of a tidy table.

    Metric rows are those with ``metric == metric`` and ``df[col] == value`` for each
    item of ``extra_filter``; *status rows* (``metric`` in ``STATUS_METRICS``: a failed
    job, a method skipped on this data; ``note`` says why) are kept whatever the filter,
    since they carry no condition columns. Both are grouped by the columns of ``by`` that
    exist in ``df`` (one group if none do; NaN group keys are kept; a status row lacking a
    group column's value joins every group that matches the rest of its key). In each group:

    * baselines = ``methods`` without the subject, in that order, when given; else every
      other method with a metric or status row in the group, sorted by name. A group with
      no baseline yields no row.
    * seeds expected = those of the subject and the baseline in metric or status rows of
      the group; ``n_missing`` = the expected seeds that could not be paired (absent, NaN,
      failed or skipped on either side). A baseline with no value at all is a row with
      ``n == 0`` (inconclusive), so every method asked for appears.
    * ``reason`` = the sorted unique non-empty notes of the baseline's NaN metric rows and
      its status rows, "; "-joined ("" when no seed is missing).
    * ``margin[m]`` (non-inferiority) is added to every d of member m; ``na[m]`` marks m's cell n/a
      by design with that reason, and so does a member whose every row in the group is a
      ``job_skipped`` status row (the method cannot run on this data);
    * ``under_trained`` counts the member's seeds whose rows carry a true ``under_trained`` flag;
    * with ``judged`` (default), :func:`bench.evaluate.families.judge` decides the rows: families from
      ``pa``, Holm and Westfall-Young within each family across the whole table.

    Args:
        df: Tidy table with columns ``method, seed, metric, value`` (+ ``note``,
            ``dataset``, ``width`` and condition columns).
        metric: Metric to compare.
        subject: Method name of the subject.
        direction: ``"higher"`` or ``"lower"``.
        by: Candidate group columns.
        extra_filter: Column -> required value (metric rows only).
        methods: The baselines to report; default: the methods present.

    Returns:
        ``comparisons_frame`` rows with the existing ``by`` columns in front.

    Raises:
        ValueError: For a bad direction, a missing required column, a filter column absent
            while metric rows exist, a metric row without a seed, or several metric rows
            for one (method, seed) within a group.
    """
    _check_direction(direction)
    if metric in STATUS_METRICS:
        raise ValueError(f"{metric!r} is a status row, not a metric")
    absent = sorted({"method", "seed", "metric", "value"} - set(df.columns))
    if absent:
        raise ValueError(f"tidy frame lacks columns {absent}")
    sel = df[df["metric"] == metric]
    for col, value in (extra_filter or {}).items():
        if col not in df.columns:
            if len(sel):
                raise ValueError(f"tidy frame lacks filter column {col!r}")
            continue
        sel = sel[sel[col] == value]
    keys = [c for c in by if c in df.columns]
    status = _place_status(sel, df[df["metric"].isin(STATUS_METRICS)], keys)
    rows = pd.concat([sel, status], ignore_index=True) if len(status) else sel
    wanted = None if methods is None else list(dict.fromkeys(str(m) for m in methods if m != subject))
    groups = rows.groupby(keys, dropna=False, sort=True) if keys else [((), rows)]
    frames = []
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        is_status = g["metric"].isin(STATUS_METRICS)
        g_metric, g_status = g[~is_status], g[is_status]
        others = wanted
        if others is None:
            others = sorted(str(m) for m in g["method"].dropna().unique() if m != subject)
        if not others:
            continue
        subj = _with_status(
            _seed_map(g_metric[g_metric["method"] == subject], subject), g_status[g_status["method"] == subject]
        )
        base, reasons = {}, {}
        for m in others:
            m_metric, m_status = g_metric[g_metric["method"] == m], g_status[g_status["method"] == m]
            base[m] = _with_status(_seed_map(m_metric, m), m_status)
            nan_rows = m_metric[[_is_missing(v) for v in m_metric["value"].tolist()]]
            reasons[m] = "; ".join(sorted(_notes(nan_rows) | _notes(m_status)))
        comps = []
        for m in others:
            m_rows = g[g["method"] == m]
            skipped_only = len(m_rows) > 0 and bool((m_rows["metric"] == "job_skipped").all())
            why = (na or {}).get(m) or (_skip_note(m_rows) if skipped_only else "")
            c = _unjudged(subj, base[m], m, 0.95, direction, float((margin or {}).get(m, 0.0)))
            comps.append(
                replace(
                    c,
                    reason=reasons[m] if c.n_missing else "",
                    na=why,
                    under_trained=_flagged(g_metric[g_metric["method"] == m]),
                )
            )
        frame = comparisons_frame(comps)
        for i, col in enumerate(keys):
            frame.insert(i, col, key[i])
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=[*keys, *FIELDS])
    out = pd.concat(frames, ignore_index=True)
    return judge([out], [direction], pa)[0] if judged else out


def _flagged(rows: pd.DataFrame) -> int:
    """Seeds of a member's metric rows flagged under-trained (a true ``under_trained`` cell)."""
    if "under_trained" not in rows.columns or rows.empty:
        return 0
    flag = rows["under_trained"].map(lambda v: bool(v) if not _is_na(v) else False)
    return int(rows.loc[flag, "seed"].nunique())


def _skip_note(rows: pd.DataFrame) -> str:
    notes = sorted(_notes(rows))
    return "; ".join(notes) or "cannot run on this data"
