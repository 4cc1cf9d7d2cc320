"""The suite's one-page summary: the four predictions side by side, from their latest runs.

:func:`build_summary` reads the latest run of each of the four predictions under ``out``
(tidy tables only, never a model or the cache) and writes

* ``<reports_dir>/summary.pdf``: one landscape page; per prediction the essay's statement, the
  primary metric and its predicted direction, the overall verdict counts, a dot-and-whisker
  panel of the primary metric per method (mean and 95% t-interval over seeds, coloured by the
  verdict against the subject), the run id and the detailed report's path;
* ``<out>/SUMMARY.md``: the same as markdown for the README, with a table per primary group
  (method | mean [95% CI] | n seeds | verdict vs the subject).

The verdicts are the views' own primary verdict tables (``View.verdict_tables``), so they
match ``reports/<prediction>.pdf``. A prediction's primaries are its tables titled
``"Primary: ..."`` (P4 has two, MCC and DCI, and an overall table in front of them); a
primary table split by a column (``dataset``, ``setting``) gives one group per value.
"""

from __future__ import annotations

import io
import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402

from bench import plots, stats  # noqa: E402
from bench.protocol import SUBJECT, Table, Verdict, View  # noqa: E402
from bench.report import overall  # noqa: E402
from bench.report import view as report_view  # noqa: E402
from bench.results import atomic_write, latest_run, read_run  # noqa: E402

NAMES = ("pruning", "transfer", "efficiency", "interpretability")
LANDSCAPE = (11.69, 8.27)  # A4 landscape, inches
DOT_COLORS = {"supported": "#238b45", "contradicted": "#cb181d", "inconclusive": "#9e9e9e"}
NO_VERDICT = "no verdict (reference)"
REFERENCE_COLOR = "#6baed6"


@dataclass
class Group:
    """One group of one primary verdict table: its per-method statistics and verdicts."""

    verdict: Verdict
    keys: dict  # split column -> value ({} when the table is not split)
    rows: pd.DataFrame  # method, mean, low, high, n, verdict, reason (subject first)
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
    overall: str = ""
    groups: list[Group] = field(default_factory=list)
    joint: dict[str, str] | None = None  # baseline -> verdict of a headline table over both primaries (P4)
    error: str = ""


def _primaries(groups: list[Group]) -> list[Verdict]:
    """The distinct verdicts of ``groups``, in order (a Verdict holds a dict: unhashable)."""
    out: list[Verdict] = []
    for g in groups:
        if not any(g.verdict is v for v in out):
            out.append(g.verdict)
    return out


def _primary_tables(view: View, df: pd.DataFrame) -> list[Table]:
    """The view's verdict tables up to its primaries, without computing the secondaries.

    ``verdict_tables`` is run on a copy of the view that declares only its first two verdicts (a
    joint primary, like P4's, is at most two); its tables then hold the same numbers as the full
    report's, since Holm runs within a table (P4: across its primaries only)."""
    lean = type(view)()
    lean.verdicts = view.verdicts[:2]
    tables = lean.verdict_tables(df)
    return [t for t in tables if t.title.startswith("Primary")] or tables[:1]


def _match(view: View, table: Table) -> Verdict:
    return next((v for v in view.verdicts if v.title in table.title), view.primary)


def _order(rows: pd.DataFrame, direction: str) -> pd.DataFrame:
    """The subject first, then the other methods best-first in the predicted direction (no value last)."""
    rows = rows.assign(_s=rows["method"] != SUBJECT, _k=rows["mean"] * (-1 if direction == "higher" else 1))
    return rows.sort_values(["_s", "_k", "method"], na_position="last").drop(columns=["_s", "_k"]).reset_index(drop=True)


def _same(a, b) -> bool:
    return (pd.isna(a) and pd.isna(b)) or str(a) == str(b)


def _groups(view: View, table: Table, df: pd.DataFrame) -> list[Group]:
    v = _match(view, table)
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
        verdicts = dict(zip(f["baseline"], f["verdict"], strict=True))
        reasons = dict(zip(f["baseline"], f["reason"], strict=True)) if "reason" in f.columns else {}
        rows = []
        for m in list(recs) + [b for b in verdicts if b not in recs]:
            rec = recs.get(m, {"mean": math.nan, "low": math.nan, "high": math.nan, "n": 0})
            verdict = "subject" if m == SUBJECT else verdicts.get(m, NO_VERDICT)
            reason = reasons.get(m, "")
            rows.append({"method": m, **rec, "verdict": verdict, "reason": reason if isinstance(reason, str) else ""})
        frame_rows = pd.DataFrame(rows, columns=["method", "mean", "low", "high", "n", "verdict", "reason"])
        out.append(Group(v, dict(zip(keys, combo, strict=True)), _order(frame_rows, v.direction), SUBJECT in recs))
    return out


def _entry(name: str, out: Path) -> Entry:
    view = report_view(name)
    run = latest_run(out, name)
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
    tables = _primary_tables(view, df)
    e.overall = overall(tables[0].frame)
    panels = [t for t in tables if t.title.startswith("Primary: ")] or tables[:1]
    e.groups = [g for t in panels for g in _groups(view, t, df) if len(g.rows)]
    if not e.groups:
        e.error = f"no rows of the primary metric {view.primary.metric}"
    if not any(t is tables[0] for t in panels) and "baseline" in tables[0].frame.columns:
        e.joint = dict(zip(tables[0].frame["baseline"], tables[0].frame["verdict"], strict=True))
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
    return (f"`{v.metric}`" + (f" ({where})" if where else "") + (f": {v.label}" if v.label else "")
            + f"; predicted: subject **{v.direction}** than each baseline")


def _quick_line(e: Entry) -> str:
    return (f"Quick profile ({len(e.seeds)} seeds): with {len(e.seeds)} seeds few verdicts reach p_Holm < 0.05, "
            f"so most read inconclusive; `bench run prediction={e.name} profile=full` (10 seeds) is the run to quote.")


def _rank(g: Group) -> str:
    """'the subject ranks k of n' in the predicted direction, among methods with a value."""
    valued = g.rows[np.isfinite(g.rows["mean"].to_numpy(float))]
    if not g.subject_has_rows or SUBJECT not in set(valued["method"]):
        return ""
    s = float(valued.loc[valued["method"] == SUBJECT, "mean"].iloc[0])
    better = (valued["mean"] > s) if g.verdict.direction == "higher" else (valued["mean"] < s)
    return f"the subject ranks {int(better.sum()) + 1} of {len(valued)} methods with a value"


def markdown(entries: list[Entry], reports_dir: Path) -> str:
    lines = ["# InfoMax prediction bench: summary", "",
             "The latest run of each prediction; per baseline the paired difference subject - baseline over seeds, "
             "95% t-interval, paired t-test Holm-corrected across baselines (PROTOCOL.md \u00a77): **supported** "
             "if p_Holm < 0.05 in the predicted direction, **contradicted** if p_Holm < 0.05 against it, "
             "**inconclusive** otherwise. Generated by `bench report` from the tidy tables; "
             f"the detailed reports are `{reports_dir}/<prediction>.pdf`.", ""]
    for e in entries:
        lines += [f"## {e.view.title}", "", f"> {e.view.statement}", ""]
        if e.run_id is None:
            lines += [f"Not run (`bench run prediction={e.name}`).", ""]
            continue
        if e.error:
            lines += [f"Run `{e.run_id}`: {e.error}.", ""]
            continue
        prims = _primaries(e.groups)
        for v in prims:
            lines.append(f"**Primary metric:** {_metric_line(v)}.  ")
        lines.append(f"**Overall{' (both primaries)' if e.joint else ''}:** {e.overall}.  ")
        lines.append(f"Run `{e.run_id}` (profile {e.profile}, seeds {', '.join(map(str, e.seeds))}); "
                     f"details in `{reports_dir / (e.name + '.pdf')}`.")
        if e.profile == "quick":
            lines += ["", f"*{_quick_line(e)}*"]
        lines.append("")
        for g in e.groups:
            head = (g.verdict.label or g.verdict.metric) if len(prims) > 1 else ""
            head = "; ".join(x for x in (head, g.label) if x)
            rank = _rank(g)
            if head or rank:
                lines += [f"*{head}{' - ' if head and rank else ''}{rank}*", ""]
            cols = ["method", f"{g.verdict.metric} mean [95% CI]", "n seeds", "verdict vs the subject"]
            if e.joint:
                cols.append("overall (both primaries)")
            lines += ["| " + " | ".join(cols) + " |", "|" + "|".join(["---"] * len(cols)) + "|"]
            for _, r in g.rows.iterrows():
                name = f"**{r['method']}** (subject)" if r["method"] == SUBJECT else r["method"]
                verdict = "-" if r["verdict"] == "subject" else r["verdict"]
                if r["n"] == 0 and r["reason"]:
                    verdict += f" (no value: {textwrap.shorten(r['reason'], 90, placeholder=' ...')})"
                cells = [name, _cell(r), str(int(r["n"])), verdict]
                if e.joint:
                    cells.append("-" if r["method"] == SUBJECT else e.joint.get(r["method"], NO_VERDICT))
                lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
            if not g.subject_has_rows:
                lines += ["", "The values are per-baseline paired statistics (the subject has no row of its own); "
                              "> 0 favours the subject."]
            lines.append("")
    lines += ["## Runs", "", "| prediction | run id | profile | seeds |", "|---|---|---|---|"]
    for e in entries:
        lines.append(f"| {e.name} | {'`' + e.run_id + '`' if e.run_id else 'not run'} | {e.profile or '-'} | "
                     f"{len(e.seeds) if e.run_id else '-'} |")
    return "\n".join(lines) + "\n"


def _chars(width: float, size: float, bold: bool = False) -> int:
    """About how many characters of a ``size``-point font fit in ``width`` (figure fraction) of the page."""
    return max(10, int(width * LANDSCAPE[0] * 72 / (size * (0.6 if bold else 0.53))))


def _wrap(fig, x: float, y: float, text: str, size: float, width: float, bold: bool = False, **kw) -> float:
    for line in textwrap.wrap(text, _chars(width, size, bold)) or [""]:
        fig.text(x, y, line, fontsize=size, va="top", weight="bold" if bold else "normal", **kw)
        y -= 1.3 * size / 72 / LANDSCAPE[1]
    return y - 0.005


def _column_text(fig, e: Entry, x: float, reports_dir: Path, width: float) -> float:
    y = _wrap(fig, x, 0.875, e.view.title, 8.5, width, bold=True)
    y = _wrap(fig, x, y, e.view.statement, 6.5, width, style="italic")
    if e.run_id is None:
        return _wrap(fig, x, y - 0.01, f"not run (bench run prediction={e.name})", 8, width, color="#b00000")
    if e.error:
        return _wrap(fig, x, y, f"run {e.run_id}: {e.error}", 7, width, color="#b00000")
    for v in _primaries(e.groups):
        where = ", ".join(f"{k}={val}" for k, val in v.where.items())
        y = _wrap(fig, x, y, f"Primary: {v.metric}{f' ({where})' if where else ''}; predicted subject "
                             f"{v.direction.upper()} than each baseline", 6.5, width)
    y = _wrap(fig, x, y, ("Overall (both primaries): " if e.joint else "Overall: ") + e.overall, 7, width, bold=True)
    seeds = f"quick profile, {len(e.seeds)} seeds" if e.profile == "quick" else f"{e.profile}, {len(e.seeds)} seeds"
    return _wrap(fig, x, y, f"run {e.run_id} ({seeds}); details: {reports_dir / (e.name + '.pdf')}", 6, width,
                 color="#404040")


def _panel(ax, g: Group, order: list[str], show_labels: bool, short: bool) -> None:
    rows = g.rows.set_index("method")
    pos = {m: i for i, m in enumerate(reversed(order))}  # the subject at the top
    for m in order:
        if m not in rows.index or not np.isfinite(rows.at[m, "mean"]):
            ax.text(0.01, pos[m], "no value", transform=ax.get_yaxis_transform(), fontsize=4.5, color="#9e9e9e",
                    va="center")
            continue
        r, yy = rows.loc[m], pos[m]
        if m == SUBJECT:
            color, marker, size = "black", "D", 22
        else:
            color, marker, size = DOT_COLORS.get(r["verdict"], REFERENCE_COLOR), "o", 16
        if np.isfinite(r["low"]):
            ax.plot([r["low"], r["high"]], [yy, yy], color=color, lw=0.9, zorder=2)
        ax.scatter([r["mean"]], [yy], s=size, color=color, marker=marker, zorder=3, lw=0)
    if g.subject_has_rows and SUBJECT in rows.index and np.isfinite(rows.at[SUBJECT, "mean"]):
        ax.axvline(rows.at[SUBJECT, "mean"], color="black", ls="--", lw=0.6, zorder=1)
    elif not g.subject_has_rows:
        ax.axvline(0, color="black", ls="--", lw=0.6, zorder=1)
    ax.set_ylim(-0.7, len(order) - 0.3)
    ax.set_yticks(list(pos.values()), list(pos) if show_labels else [])
    ax.tick_params(axis="both", labelsize=5.5, length=2, pad=1)
    for tick in ax.get_yticklabels():
        if tick.get_text() == SUBJECT:
            tick.set_fontweight("bold")
    ax.grid(axis="x", lw=0.3, color="#dddddd")
    ax.grid(axis="y", lw=0.2, color="#eeeeee")
    arrow = "\u2191" if g.verdict.direction == "higher" else "\u2193"
    ax.set_xlabel(f"{g.verdict.metric} {arrow}" if short else
                  f"{g.verdict.metric} ({arrow}: predicted for the subject)", fontsize=6, labelpad=1)
    for s in ax.spines.values():
        s.set_linewidth(0.4)


def _draw_groups(fig, e: Entry, left: float, top: float, width: float, bottom: float) -> None:
    if not e.groups:
        return
    order = list(dict.fromkeys(m for g in e.groups for m in g.rows["method"]))
    multi = len(_primaries(e.groups)) > 1
    label_w, gap, n = 0.062, 0.01, len(e.groups)
    w = (width - label_w - gap * (n - 1)) / n
    for i, g in enumerate(e.groups):
        title = g.label
        if multi:
            title = "\n".join(textwrap.wrap(g.verdict.label or g.verdict.metric, _chars(w, 6)))
            title += f"\n({', '.join(map(str, g.keys.values()))})" if g.keys else ""
        if not g.subject_has_rows:
            title += ("\n" if title else "") + "per-baseline values (no subject row); dashed line: 0"
        ax = fig.add_axes((left + label_w + i * (w + gap), bottom, w, top - bottom))
        _panel(ax, g, order, show_labels=i == 0, short=n > 1)
        if title:
            ax.set_title(title, fontsize=6, pad=2)


def draw(entries: list[Entry], reports_dir: Path) -> bytes:
    plots.theme()  # the reports' style, whether or not a report was drawn before in this process
    fig = plt.figure(figsize=LANDSCAPE)
    fig.text(0.025, 0.975, "InfoMax prediction bench: the four predictions", fontsize=14, weight="bold", va="top")
    y = _wrap(fig, 0.025, 0.94, "The latest run of each prediction. Dots: the primary metric's mean per method over seeds, "
                            "whiskers its 95% t-interval; the subject (infomax) black, the dashed line at its mean. A "
                            "baseline's colour is its verdict against the subject (paired t over seeds, Holm across "
                            "baselines, PROTOCOL.md \u00a77):", 7, 0.95)
    x0 = 0.025
    for verdict, color in {**DOT_COLORS, NO_VERDICT: REFERENCE_COLOR}.items():
        fig.text(x0, y, "\u25cf " + verdict, color=color, fontsize=7, va="top", weight="bold")
        x0 += 0.09
    left, col_w, gap = 0.02, 0.235, 0.01
    ys = [_column_text(fig, e, left + i * (col_w + gap), reports_dir, col_w) for i, e in enumerate(entries)]
    top = min(ys) - 0.045
    bottom = 0.07
    for i, e in enumerate(entries):
        multi = len(_primaries(e.groups)) > 1
        _draw_groups(fig, e, left + i * (col_w + gap), top - (0.03 if multi else 0), col_w, bottom)
    quick = [e for e in entries if e.profile == "quick"]
    if quick:
        k = sorted({len(e.seeds) for e in quick})
        fig.text(0.025, 0.015, f"Quick profile ({', '.join(e.name for e in quick)}): with {'/'.join(map(str, k))} "
                               "seeds few verdicts can reach p_Holm < 0.05, so most read inconclusive; profile=full "
                               "(10 seeds) is the run to quote.", fontsize=7, weight="bold", va="bottom")
    buf = io.BytesIO()
    with PdfPages(buf) as pdf:
        pdf.savefig(fig)
    plt.close(fig)
    return buf.getvalue()


def build_summary(out: Path | str = "results", reports_dir: Path | str = "reports") -> tuple[Path, Path] | None:
    """Write ``<reports_dir>/summary.pdf`` (one page) and ``<out>/SUMMARY.md`` from the latest run of
    each of the four predictions; None (nothing written) when none of them has a run."""
    out, reports_dir = Path(out), Path(reports_dir)
    if all(latest_run(out, name) is None for name in NAMES):
        return None
    entries = [_entry(name, out) for name in NAMES]
    pdf_path, md_path = reports_dir / "summary.pdf", out / "SUMMARY.md"
    atomic_write(pdf_path, draw(entries, reports_dir))
    atomic_write(md_path, markdown(entries, reports_dir))
    return pdf_path, md_path
