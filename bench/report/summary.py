"""The suite's one-page summary: the four predictions side by side, from their latest runs.

:func:`build_summary` reads the latest run of each of the four predictions under ``out``
(tidy tables only, never a model or the cache) and writes

* ``<reports_dir>/summary.pdf``: one landscape page (:mod:`bench.report.summary_page`); per prediction the essay's statement, its
  primary metrics and predicted direction, the lines the detailed report opens its first verdict
  table with (:func:`bench.report.build.overall_lines`), a dot-and-whisker panel of each primary
  metric per method (mean and 95% t-interval over seeds), the run id and the report's path;
* ``<out>/SUMMARY.md``: the same as markdown for the README, a table per primary group
  (method | family | mean [95% CI] | n seeds | verdict or direction vs the subject).

Only ``profile=confirm`` gives verdicts (docs/protocol.md, statistics): there a prediction shows
its headline and family counts and a dot's colour is its row's verdict. An exploratory run
(``quick``, ``full``) opens with "exploratory (profile NAME): no verdicts", a dot's colour is the
side of the subject's mean difference (``direction``), and no verdict word or p-value is shown.
The numbers are the view's own primary tables (``View.verdict_tables``, found by ``Table.role``),
so they match ``reports/<prediction>.pdf``; a primary table split by a column (``dataset``,
``setting``) gives one group per value.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench.evaluate import stats
from bench.evaluate.families import FAMILIES, family
from bench.protocol import ROLE_LABELS, SUBJECT, Table, Verdict, View, in_all
from bench.report import plots
from bench.report.build import view as report_view
from bench.report.published import published_headline
from bench.report.summary_page import CONFIRM, draw, openers, primaries
from bench.report.tables import exploratory, overall_lines
from bench.results import atomic_write, latest_run, read_run


@dataclass
class Group:
    """One group of one primary verdict table: its per-method statistics, families, verdicts, directions."""

    verdict: Verdict
    keys: dict  # split column -> value ({} when the table is not split)
    rows: pd.DataFrame  # method, family, mean, low, high, n, verdict, direction, na, reason (subject first)
    subject_has_rows: bool

    @property
    def label(self) -> str:
        return ", ".join(f"{k} = {v}" for k, v in self.keys.items())


@dataclass
class Entry:
    """One prediction in the summary (``run_id`` None: not run)."""

    name: str
    view: View
    run_id: str | None = None
    profile: str | None = None
    seeds: list[int] = field(default_factory=list)
    lines: list[str] = field(
        default_factory=list
    )  # bench.report.build.overall_lines: headline + counts, or exploratory
    groups: list[Group] = field(default_factory=list)
    headline: str = ""  # the headline's word (confirm): the first verdict table's ``headline``
    joint: dict[str, str] | None = None  # member -> verdict over both primaries (the "overall" table; confirm)
    error: str = ""

    @property
    def explore(self) -> bool:
        return exploratory(self.profile)


def _order(rows: pd.DataFrame, direction: str) -> pd.DataFrame:
    """The subject first, then PA, other, AB, REF, each best-first in the predicted direction (no value last)."""
    rank = rows["family"].map({f: i for i, f in enumerate(FAMILIES)}).fillna(len(FAMILIES))
    rows = rows.assign(_s=rows["method"] != SUBJECT, _f=rank, _k=rows["mean"] * (-1 if direction == "higher" else 1))
    return (
        rows.sort_values(["_s", "_f", "_k", "method"], na_position="last")
        .drop(columns=["_s", "_f", "_k"])
        .reset_index(drop=True)
    )


def _same(a, b) -> bool:
    return (pd.isna(a) and pd.isna(b)) or str(a) == str(b)


def _text(value) -> str:
    return value if isinstance(value, str) else ""


def _groups(view: View, table: Table, df: pd.DataFrame) -> list[Group]:
    v = table.spec or view.primary
    frame = table.frame
    keys = [c for c in view.verdict_by if c in frame.columns] if len(frame) else []
    sel = plots.select(df, v.metric, v.where)
    combos = frame[keys].drop_duplicates().itertuples(index=False, name=None) if keys else [()]
    out = []
    for combo in combos:
        f, s = frame, sel
        for col, val in zip(keys, combo, strict=True):
            f = f[[_same(x, val) for x in f[col]]]
            s = s[[_same(x, val) for x in s[col]]] if col in s.columns else s
        recs = {}
        for m, g in s.groupby("method"):
            mean, low, high = stats.t_interval(g["value"].to_numpy(float))
            recs[m] = {"mean": mean, "low": low, "high": high, "n": int(np.isfinite(g["value"].to_numpy(float)).sum())}
        rows_of = {str(r["baseline"]): r for _, r in f.iterrows()} if "baseline" in f.columns else {}
        rows = []
        for m in list(recs) + [b for b in rows_of if b not in recs]:
            rec = recs.get(m, {"mean": math.nan, "low": math.nan, "high": math.nan, "n": 0})
            r = rows_of.get(m, {})
            fam = "" if m == SUBJECT else _text(r.get("family")) or family(m, view.pa)
            word = "subject" if m == SUBJECT else _text(r.get("verdict"))
            rows.append(
                {
                    "method": m,
                    "family": fam,
                    **rec,
                    "verdict": word,
                    "direction": _text(r.get("direction")),
                    "na": _text(r.get("na")),
                    "reason": _text(r.get("reason")),
                }
            )
        cols = ["method", "family", "mean", "low", "high", "n", "verdict", "direction", "na", "reason"]
        out.append(
            Group(
                v,
                dict(zip(keys, combo, strict=True)),
                _order(pd.DataFrame(rows, columns=cols), v.direction),
                SUBJECT in recs,
            )
        )
    return out


def _entry(name: str, out: Path, run: Path | None = None) -> Entry:
    """The summary's entry for prediction ``name``: from ``run`` when given, else its latest run under ``out``."""
    view = report_view(name)
    run = latest_run(out, name) if run is None else run
    if run is None:
        return Entry(name, view)
    try:
        df, config, _ = read_run(run)
    except (OSError, ValueError, KeyError) as e:
        return Entry(name, view, run.name, error=f"could not read {run}: {e}")
    run_id = str(df["run_id"].iloc[0]) if len(df) and "run_id" in df.columns else run.name
    seeds = sorted(int(s) for s in df["seed"].dropna().unique()) if len(df) else []
    e = Entry(name, view, run_id, config.get("profile"), seeds)
    if not len(df):
        e.error = "the run has no rows"
        return e
    view.profile = e.profile
    tables = view.verdict_tables(df, secondaries=False)
    e.lines = [line for line in overall_lines(tables, e.profile) if line]
    if e.explore and (pub := published_headline(name)) is not None:
        e.lines.append(pub.line())
    if tables and not e.explore:
        e.headline = (tables[0].headline or ("inconclusive", ""))[0]
    e.groups = [g for t in tables if t.is_primary for g in _groups(view, t, df) if len(g.rows)]
    if not e.groups:
        e.error = f"no rows of the primary metric {view.primary.metric}"
    joint = next((t for t in tables if t.role == "overall"), None)
    if joint is not None and not e.explore and {"baseline", "verdict"} <= set(joint.frame.columns):
        e.joint = dict(zip(joint.frame["baseline"].astype(str), joint.frame["verdict"], strict=True))
    return e


def _fmt(v: float) -> str:
    return "n/a" if not np.isfinite(v) else f"{v:.3g}"


def _cell(r) -> str:
    if not np.isfinite(r["mean"]):
        return "n/a"
    ci = f"[{_fmt(r['low'])}, {_fmt(r['high'])}]" if np.isfinite(r["low"]) else "[n/a]"
    return f"{_fmt(r['mean'])} {ci}"


def _metric_line(v: Verdict) -> str:
    where = ", ".join(f"{k}={val}" for k, val in v.where.items())
    return (
        f"`{v.metric}`"
        + (f" ({where})" if where else "")
        + (f": {v.label}" if v.label else "")
        + f"; predicted: subject **{v.direction}** than each baseline"
    )


def _rank(g: Group) -> str:
    """'the subject ranks k of n' in the predicted direction, among methods with a value."""
    valued = g.rows[np.isfinite(g.rows["mean"].to_numpy(float))]
    if not g.subject_has_rows or SUBJECT not in set(valued["method"]):
        return ""
    s = float(valued.loc[valued["method"] == SUBJECT, "mean"].iloc[0])
    better = (valued["mean"] > s) if g.verdict.direction == "higher" else (valued["mean"] < s)
    return f"the subject ranks {int(better.sum()) + 1} of {len(valued)} methods with a value"


def _judgement(r, explore: bool) -> str:
    """A member's cell: its verdict ("n/a: reason" by design; confirm) or the side of mean d (exploratory)."""
    if r["method"] == SUBJECT:
        return "-"
    if explore:
        return f"n/a by design: {r['na']}" if r["na"] else (r["direction"] or "-")
    if r["na"]:
        return f"n/a: {r['na']}"
    return r["verdict"] or "-"


def markdown(entries: list[Entry], reports_dir: Path) -> str:
    lines = ["# InfoMax prediction bench: summary", ""]
    opening = openers(entries)
    if opening:
        lines += [
            "**"
            + "; ".join(opening)
            + ".** Only "
            + CONFIRM.replace("profile=confirm", "`profile=confirm`")
            + " gives verdicts; an exploratory run shows per method the primary metric's mean and 95% "
            "t-interval over seeds and, per baseline, the side of the subject's mean paired difference "
            "d = subject - baseline (direction vs the subject: as predicted / opposite / none), never a test.",
            "",
        ]
    if any(e.run_id is not None and not e.explore for e in entries):
        lines += [
            "Confirm runs: per baseline the paired difference d = subject - baseline over seeds and its 95% "
            "t-interval, each row judged within its family (PA: the prior art; AB: the subject's ablations, "
            "as mechanism; REF: references, no test) with Holm and Westfall-Young; the headline is the "
            "prediction's one answer, from its PA members (docs/protocol.md, statistics).",
            "",
        ]
    lines += [
        f"Generated by `bench report` from the tidy tables; the detailed reports are `{reports_dir}/<prediction>.pdf`.",
        "",
    ]
    for e in entries:
        lines += [f"## {e.view.title}", "", f"> {e.view.statement}", ""]
        if e.run_id is None:
            lines += [f"Not run (`bench run prediction={e.name}`).", ""]
            continue
        if e.error:
            lines += [f"Run `{e.run_id}`: {e.error}.", ""]
            continue
        prims = primaries(e.groups)
        for v in prims:
            lines.append(f"**{ROLE_LABELS[v.role or 'primary']} metric:** {_metric_line(v)}.  ")
        for i, line in enumerate(e.lines):
            head, sep, rest = line.partition("; ") if e.explore else (line, "", "")
            lines.append(f"**{head}**{sep}{rest}  " if i == 0 else f"{line}  ")
        lines.append(
            f"Run `{e.run_id}` (profile {e.profile}, seeds {', '.join(map(str, e.seeds))}); "
            f"details in `{reports_dir / (e.name + '.pdf')}`."
        )
        if e.explore:
            lines += ["", f"*`bench run prediction={e.name} profile=confirm` gives this prediction's verdicts.*"]
        lines.append("")
        for g in e.groups:
            head = (g.verdict.label or g.verdict.metric) if len(prims) > 1 else ""
            head = "; ".join(x for x in (head, g.label) if x)
            rank = _rank(g)
            if head or rank:
                lines += [f"*{head}{' - ' if head and rank else ''}{rank}*", ""]
            cols = [
                "method",
                "family",
                f"{g.verdict.metric} mean [95% CI]",
                "n seeds",
                "direction vs the subject" if e.explore else "verdict vs the subject",
            ]
            if e.joint:
                cols.append("overall (both primaries)")
            lines += ["| " + " | ".join(cols) + " |", "|" + "|".join(["---"] * len(cols)) + "|"]
            for _, r in g.rows.iterrows():
                name = f"**{r['method']}** (subject)" if r["method"] == SUBJECT else r["method"]
                judged = _judgement(r, e.explore)
                if r["n"] == 0 and r["reason"]:
                    judged += f" (no value: {textwrap.shorten(r['reason'], 90, placeholder=' ...')})"
                cells = [name, r["family"] or "-", _cell(r), str(int(r["n"])), judged]
                if e.joint:
                    cells.append("-" if r["method"] == SUBJECT else e.joint.get(r["method"], "-"))
                lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
            if not g.subject_has_rows:
                lines += [
                    "",
                    "The values are per-baseline paired statistics (the subject has no row of its own); "
                    "> 0 favours the subject.",
                ]
            lines.append("")
    lines += ["## Runs", "", "| prediction | run id | profile | seeds |", "|---|---|---|---|"]
    for e in entries:
        lines.append(
            f"| {e.name} | {'`' + e.run_id + '`' if e.run_id else 'not run'} | {e.profile or '-'} | "
            f"{len(e.seeds) if e.run_id else '-'} |"
        )
    return "\n".join(lines) + "\n"


def build_summary(out: Path | str = "results", reports_dir: Path | str = "reports") -> tuple[Path, Path] | None:
    """Write ``<reports_dir>/summary.pdf`` (one page) and ``<out>/SUMMARY.md`` from the latest run of
    each of the four predictions; None (nothing written) when none of them has a run."""
    out, reports_dir = Path(out), Path(reports_dir)
    if all(latest_run(out, name) is None for name in in_all()):
        return None
    entries = [_entry(name, out) for name in in_all()]
    pdf_path, md_path = reports_dir / "summary.pdf", out / "SUMMARY.md"
    atomic_write(pdf_path, draw(entries, reports_dir))
    atomic_write(md_path, markdown(entries, reports_dir))
    return pdf_path, md_path


def build_summary_of(runs: dict[str, Path], dest: Path | str, reports_label: Path | str = ".") -> tuple[Path, Path]:
    """Write ``<dest>/summary.pdf`` and ``<dest>/SUMMARY.md`` from the given run directory of each prediction
    (a published directory's layout: no ``latest`` files); the text names the reports as
    ``<reports_label>/<prediction>.pdf``."""
    dest = Path(dest)
    entries = [_entry(name, dest, runs[name]) if name in runs else Entry(name, report_view(name)) for name in in_all()]
    pdf_path, md_path = dest / "summary.pdf", dest / "SUMMARY.md"
    atomic_write(pdf_path, draw(entries, Path(reports_label)))
    atomic_write(md_path, markdown(entries, Path(reports_label)))
    return pdf_path, md_path
