"""Report PDFs, regenerated from a run's tidy table alone (never a model or the cache).

``reports/<prediction>.pdf``: the essay's statement, the protocol in brief, the overall
line and the verdict tables (per baseline: effect, 95% CI, p-values, verdict), the
prediction's figures, then provenance (commit, versions, device, seeds, command). Each
figure is also saved as ``reports/<prediction>/<figure>.png``. When the report has verdict
tables, they are also exported beside the figures for pasting into a paper:
``reports/<prediction>/verdicts.csv`` (every verdict table's rows, raw numbers) and
``reports/<prediction>/verdicts.tex`` (one booktabs ``table`` per verdict table).
"""

from __future__ import annotations

import io
import sys
import textwrap
from dataclasses import MISSING, fields
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402

from bench.catalog import load_view  # noqa: E402
from bench.evaluate import (
    families,  # noqa: E402
    stats,
)
from bench.protocol import EXPLORATORY, SUBJECT, VIEWS, Table, View  # noqa: E402
from bench.report.pdftable import draw_table, fit_table, text_width  # noqa: E402
from bench.results import atomic_write, read_matrices, read_run  # noqa: E402

PAGE = (8.27, 11.69)  # A4 portrait, inches
VERDICT_COLORS = {"supported": "#c7e9c0", "contradicted": "#fcbba1", "inconclusive": "#e0e0e0"}
TEXT_SINK: list[str] | None = None  # when a list, every string the report draws is appended (tests)
P_LABELS = {"p_t": "p (t)", "p_wilcoxon": "p (Wilcoxon)", "p_perm": "p (perm)", "p_holm": "p (Holm)",
            "p_wy": "p (WY)"}


def exploratory(profile: str | None) -> bool:
    """Profiles without verdicts (quick, full; a run written before profiles had verdicts too)."""
    return profile is None or profile in EXPLORATORY


def overall_lines(tables: list[Table], profile: str | None) -> list[str]:
    """The lines above a view's first verdict table: the headline and the family counts (confirm),
    or the exploratory line (no verdicts)."""
    first = next((t for t in tables if t.verdict), None)
    if first is None:
        return []
    frames = [t.frame for t in tables if t.is_primary] or [first.frame]
    if exploratory(profile):
        return [families.exploratory_counts(frames, profile or "unknown")]
    word, why = first.headline or ("inconclusive", "")
    return [f"Headline: {word} ({why})", first.counts]


def view(name: str) -> View:
    """The registered view of prediction ``name``, importing its ``view`` module first if needed
    (``bench report`` imports the views it reads: no protocol, method or baseline, no torch)."""
    if name not in VIEWS:
        load_view(name)
    return VIEWS.get(name)()  # UnknownNameError, with the choices, for a prediction that has no view


def overall(frame: pd.DataFrame) -> str:
    """The overall line of a verdict frame; fields the frame lacks take their defaults."""
    defaults = {f.name: f.default for f in fields(stats.Comparison) if f.default is not MISSING}
    comps = []
    for _, r in frame.iterrows():
        values = {f: r[f] if f in frame.columns else defaults[f] for f in stats.FIELDS}
        if pd.isna(values.get("n_missing")):
            values["n_missing"] = 0
        if not isinstance(values.get("reason"), str):
            values["reason"] = ""
        comps.append(stats.Comparison(**values))
    return stats.overall_line(comps)


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        if np.isnan(v):
            return "n/a"
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.2e}"
        return f"{v:.4g}"
    return str(v)


def _verdict_cell(verdict, na) -> str:
    return f"n/a: {na}" if isinstance(na, str) and na else str(verdict)


def verdict_display(frame: pd.DataFrame, explore: bool = False) -> pd.DataFrame:
    """The columns a reader needs, CI as one cell; ``explore``: no p-value and no verdict column.

    A two-primaries table (``bench.evaluate.families.combine``: no ``mean_diff`` column) keeps its columns,
    without its p and verdict columns when ``explore``."""
    if "mean_diff" not in frame.columns:
        drop = [c for c in frame.columns if explore and ("p_" in c or "verdict" in c)]
        return frame.drop(columns=drop + ["one_primary"], errors="ignore")
    cols = list(frame.columns)
    at_b, at_n = cols.index("baseline"), cols.index("n") if "n" in cols else len(cols)
    lead = [c for c in cols[:at_b] if c not in stats.FIELDS]  # the group columns
    beside = [c for c in cols[at_b:at_n] if c not in stats.FIELDS]  # a view's columns next to the member
    tail = [c for c in cols[at_n:] if c not in stats.FIELDS]  # a view's columns after the statistics
    out = pd.DataFrame({c: frame[c] for c in lead})
    out["baseline"] = frame["baseline"]
    if "family" in frame.columns:
        out["family"] = frame["family"]
    for c in beside:
        out[c] = frame[c]
    out["n"] = frame["n"]
    out["mean diff"] = frame["mean_diff"]
    out["95% CI"] = [f"[{_fmt(a)}, {_fmt(b)}]" for a, b in zip(frame["ci_low"], frame["ci_high"], strict=True)]
    out["d_z"] = frame["effect_size"]
    if "direction" in frame.columns:
        out["direction"] = frame["direction"]
    if not explore:
        for c, label in P_LABELS.items():
            if c in frame.columns:
                out[label] = frame[c]
        na = frame["na"] if "na" in frame.columns else [""] * len(frame)
        out["verdict"] = [_verdict_cell(v, a) for v, a in zip(frame["verdict"], na, strict=True)]
    elif "na" in frame.columns and (frame["na"].fillna("") != "").any():
        out["n/a by design"] = frame["na"].fillna("")
    for c in tail:
        out[c] = frame[c]
    if "under_trained" in frame.columns and frame["under_trained"].fillna(0).sum():
        out["under-trained"] = frame["under_trained"]
    if "n_missing" in frame.columns and frame["n_missing"].fillna(0).sum():
        out["missing"] = frame["n_missing"]
    if "reason" in frame.columns:
        reason = frame["reason"].map(lambda v: v if isinstance(v, str) else "")
        if (reason != "").any():
            out["reason"] = reason
    return out


def format_table(frame: pd.DataFrame) -> str:
    """Plain-text rendering (terminal, README)."""
    return frame.map(_fmt).to_string(index=False) if len(frame) else "(empty)"


TEX_SPECIALS = str.maketrans({
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
})


def tex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters escaped, for text mode."""
    return str(text).translate(TEX_SPECIALS)


CSV_DROP = ("diffs", "ci_method")


def verdicts_csv(verdicts: list[Table], prediction: str = "", profile: str | None = "confirm") -> str:
    """The verdict tables as one CSV: ``table`` (title), ``role``, ``primary`` (a primary table), then
    the raw frame (``family``, ``p_perm``, ``p_wy``, ``direction`` included); a last ``headline``
    row holds the prediction's headline word and why (confirm) or "exploratory (profile ...)"; an
    exploratory export has no p-value and no verdict column."""
    explore = exploratory(profile)
    frames = []
    for t in verdicts:
        f = t.frame.drop(columns=[c for c in CSV_DROP if c in t.frame.columns])
        if explore:
            f = f.drop(columns=[c for c in f.columns if c.startswith("p_") or "p_holm" in c or "p_wy" in c
                                or "verdict" in c])
        f.insert(0, "primary", t.is_primary or t.role == "overall")
        f.insert(0, "role", t.role)
        f.insert(0, "table", t.title)
        frames.append(f)
    rows = [f for f in frames if len(f)] or frames[:1]
    first = next((t for t in verdicts), None)
    if first is not None:
        word, why = ("exploratory", f"profile {profile}: no verdicts") if explore else (first.headline or ("", ""))
        rows.append(pd.DataFrame([{"table": "headline", "role": "headline", "primary": True,
                                   "prediction": prediction, "headline": word, "reason": why}]))
    return pd.concat(rows, ignore_index=True).to_csv(index=False)


def _tex_cell(v) -> str:
    return "n/a" if v is None or v is pd.NA else tex_escape(_fmt(v))


def verdicts_tex(verdicts: list[Table], prediction: str, run_id: str, profile: str | None = "confirm") -> str:
    """The verdict tables as LaTeX: the headline as a comment line, then one ``table`` per verdict
    table, cells formatted as in the PDF (exploratory: no p-value or verdict column)."""
    explore = exploratory(profile)
    head = (f"exploratory (profile {profile}): no verdicts" if explore
            else "headline: " + " - ".join(verdicts[0].headline or ("", "")) if verdicts else "")
    parts = [f"% infomax-bench verdict tables: prediction {prediction}, run {run_id}\n"
             f"% {head}\n% needs \\usepackage{{booktabs}}\n"]
    for i, t in enumerate(verdicts, 1):
        shown = verdict_display(t.frame, explore)
        align = "".join("r" if pd.api.types.is_numeric_dtype(shown[c]) and not pd.api.types.is_bool_dtype(shown[c])
                        else "l" for c in shown.columns)
        cells = shown.map(_tex_cell)
        cells.columns = [tex_escape(c) for c in shown.columns]
        tabular = cells.to_latex(index=False, escape=False, column_format=align)
        parts.append("\\begin{table}[htbp]\n\\centering\n"
                     f"\\caption{{{tex_escape(t.title)}}}\n\\label{{tab:{prediction}-{i}}}\n"
                     f"{tabular}\\end{{table}}\n")
    return "\n".join(parts)


LEFT, RIGHT, BOTTOM = 0.07, 0.96, 0.035  # the text block's margins (figure fractions of PAGE)
TABLE_X = (0.03, 0.97)  # a table's axes, the page's width less narrow margins


def _chars(size: float, weight: str = "normal", span: float = RIGHT - LEFT) -> int:
    """How many characters of ``size``-point text fit in ``span`` of the page's width: the width of a
    typical line of prose measured once per font (wide letters and digits count at their width)."""
    sample = "The prediction, in the essay's words: 0.123 [-0.45, 6.78] AURC acc(0) under-trained"
    per_char = text_width(sample, size, weight == "bold") / len(sample)
    return max(20, int(span * PAGE[0] * 72 / (per_char * 1.08)))


def _line_step(size: float) -> float:
    return 0.0165 * size / 9  # figure fraction per text line


def _text(fig, y: float, text: str, size: float = 9, weight: str = "normal", width: int | None = None,
          style="normal") -> float:
    """Draw ``text`` from ``y`` down (each paragraph wrapped to the page: at most ``width`` characters
    a line, fewer when the font needs it); the ``y`` below it."""
    if TEXT_SINK is not None:
        TEXT_SINK.append(text)
    width = min(width or 10**6, _chars(size, weight))
    for para in text.split("\n"):
        lines = textwrap.wrap(para, width) or [""]
        for line in lines:
            fig.text(LEFT, y, line, fontsize=size, weight=weight, va="top", style=style)
            y -= _line_step(size)
    return y - 0.006


def _text_height(text: str, size: float = 9, weight: str = "normal", width: int | None = None) -> float:
    """What :func:`_text` takes of the page's height for ``text`` (figure fraction)."""
    width = min(width or 10**6, _chars(size, weight))
    n = sum(len(textwrap.wrap(p, width) or [""]) for p in text.split("\n"))
    return n * _line_step(size) + 0.006


def _save(pdf: PdfPages, fig) -> None:
    """``pdf.savefig(fig)``, its figure texts traced into :data:`TEXT_SINK` when that is on."""
    if TEXT_SINK is not None:
        from matplotlib.text import Text

        TEXT_SINK.extend(t.get_text() for t in fig.findobj(Text) if t.get_text())
    pdf.savefig(fig)


NOTE_SIZE = 6.5


def _table_pages(pdf: PdfPages, table: Table, first_fig=None, y0: float = 0.95, explore: bool = False,
                 lines: tuple[str, ...] = ()) -> None:
    """``table`` on as many pages as it needs, starting on ``first_fig`` below ``y0`` when the title,
    the lines above the table and a few rows fit there: fitted to the page's width (:func:`fit_table`:
    long text wraps or becomes numbered notes under its rows, the font shrinks), the rows that fit on
    each page, the header repeated, "(continued)" in the title of every page after the first."""
    frame = verdict_display(table.frame, explore) if table.verdict else table.frame
    cells = frame.map(_fmt)
    if TEXT_SINK is not None:
        TEXT_SINK.extend([*map(str, cells.columns), *cells.to_numpy().ravel().tolist()])
    table_w = (TABLE_X[1] - TABLE_X[0]) * PAGE[0]  # inches
    lay = fit_table(cells, table_w * 72)
    color_by = "verdict" if table.verdict and "verdict" in cells.columns else None
    heights = lay.heights[1:] or [0.0]
    notes = [[_text_height(n, NOTE_SIZE) for n in row] for row in lay.notes] or [[]]
    head = _text_height(table.title, 11, "bold") + sum(_text_height(x, 9, "bold", 110) for x in lines) + (
        _text_height(table.note, 8) if table.note else 0.0)
    few = min(3, len(frame))
    need = head + (lay.heights[0] + sum(heights[:few])) / PAGE[1] + sum(map(sum, notes[:few]))
    if first_fig is not None and y0 - need < BOTTOM:  # too little room left under the first page's text
        _save(pdf, first_fig)
        plt.close(first_fig)
        first_fig = None
    start, page = 0, 0
    while start < max(len(frame), 1):
        fig = first_fig if (page == 0 and first_fig is not None) else plt.figure(figsize=PAGE)
        y = y0 if fig is first_fig else 0.95
        y = _text(fig, y, table.title + (" (continued)" if page else ""), 11, "bold")
        for line in lines if page == 0 else ():
            y = _text(fig, y, line, 9, "bold", width=110)
        if table.note and page == 0:
            y = _text(fig, y, table.note, 8)
        room = (y - BOTTOM - 0.008) * PAGE[1] - lay.heights[0]  # inches below the header
        end, used, note_h = start, 0.0, 0.0
        while end < len(frame):
            nh = (sum(notes[end]) + 0.004 * len(notes[end])) * PAGE[1]
            if end > start and used + heights[end] + note_h + nh > room:
                break
            used, note_h, end = used + heights[end], note_h + nh, end + 1
        h = (lay.heights[0] + used) / PAGE[1]
        ax = fig.add_axes((TABLE_X[0], y - h, TABLE_X[1] - TABLE_X[0], h))
        draw_table(ax, cells, color_by, VERDICT_COLORS, lay, slice(start, max(end, start + 1) if len(frame) else 0))
        y -= h + 0.008
        for row in lay.notes[start:end]:
            for n in row:
                y = _text(fig, y, n, NOTE_SIZE) + 0.004
        _save(pdf, fig)
        plt.close(fig)
        start, page = max(end, start + 1), page + 1


def _save_png(fig, path: Path, dpi: float = 130) -> None:
    """``fig.savefig(path, dpi=dpi, bbox_inches="tight")`` without the layout-only draw that savefig
    runs first to find the tight box: the figure was just drawn into the PDF, so its layout is
    current, and ``Figure.get_tightbbox`` at ``dpi`` (what savefig calls after that draw) gives the
    same box. The PNGs are pixel for pixel those of ``bbox_inches="tight"``."""
    old_dpi = fig.dpi
    try:
        fig.dpi = dpi
        box = fig.get_tightbbox(fig.canvas.get_renderer())
    finally:
        fig.dpi = old_dpi
    pad = matplotlib.rcParams["savefig.pad_inches"]
    fig.savefig(path, dpi=dpi, bbox_inches=box.padded(pad, pad))


def build_report(run_dir: str | Path, reports_dir: str | Path = "reports") -> Path:
    """Regenerate ``<reports_dir>/<prediction>.pdf`` (and figure PNGs) from one run directory.

    After the PDF, a report with verdict tables also gets ``<reports_dir>/<prediction>/verdicts.csv``
    and ``verdicts.tex`` (see :func:`verdicts_csv`, :func:`verdicts_tex`); every file is written atomically.
    """
    df, config, man = read_run(Path(run_dir))
    name = str(df["prediction"].iloc[0]) if len(df) else config["prediction"]
    pred = view(name)
    profile = config.get("profile")
    explore = exploratory(profile)
    pred.profile = profile
    reports_dir = Path(reports_dir)
    fig_dir = reports_dir / name
    fig_dir.mkdir(parents=True, exist_ok=True)
    tables = pred.tables(df)
    try:
        figures = pred.figures(df, read_matrices(Path(run_dir)))
    except Exception as e:  # noqa: BLE001 - the tables still make a report; the failure is shown, not hidden
        msg = f"{name} figures could not be drawn ({type(e).__name__}: {(str(e).splitlines() or [''])[0][:160]})"
        print(f"bench: warning: {msg}", file=sys.stderr)
        fig = plt.figure(figsize=(8, 2))
        fig.text(0.05, 0.5, textwrap.fill(msg + "; the tables above are complete.", 110), fontsize=9, color="#b00000")
        figures = [("figures_failed", fig)]
    run_id = str(df["run_id"].iloc[0]) if len(df) else Path(run_dir).name
    buf = io.BytesIO()  # the PDF is built in memory, then written atomically: no shared temporary file
    with PdfPages(buf) as pdf:
        fig = plt.figure(figsize=PAGE)
        y = 0.96
        if explore:
            y = _text(fig, y, f"exploratory (profile {profile}): no verdicts. Only profile=confirm (pre-registered, "
                              "seeds 100..109) tests the prediction; this run shows effect sizes and directions.",
                      10, "bold", width=90)
        y = _text(fig, y, f"InfoMax prediction bench: {pred.title}", 15, "bold", width=58)
        datasets = ", ".join(map(str, df["dataset"].dropna().unique()))
        seeds = sorted(int(s) for s in df["seed"].dropna().unique())
        y = _text(fig, y, f"run {run_id} | dataset {datasets} | seeds {seeds} | "
                          f"subject: {SUBJECT}", 8)
        y = _text(fig, y, "The prediction, in the essay's words", 11, "bold")
        y = _text(fig, y, pred.statement, 9, style="italic")
        y = _text(fig, y, "Protocol in brief", 11, "bold")
        y = _text(fig, y, pred.protocol, 8, width=120)
        failed = df[df["metric"] == "job_failed"]
        if len(failed):
            y = _text(fig, y, f"Failed jobs ({len(failed)}), kept and counted as missing seeds: " + "; ".join(
                f"{r.method} seed {r.seed}: {r.note}" for r in failed.itertuples()), 8, width=120)
        skipped = df[df["metric"] == "job_skipped"].drop_duplicates(["method", "note"])
        if len(skipped):
            y = _text(fig, y, "Methods that cannot run on this data (rows with n = 0 in every verdict table): " + "; ".join(
                f"{r.method}: {r.note}" for r in skipped.itertuples()), 8, width=120)
        verdicts = [t for t in tables if t.verdict]
        rest = [t for t in tables if not t.verdict]
        if verdicts:
            _table_pages(pdf, verdicts[0], fig, y, explore, tuple(overall_lines(tables, profile)))
        else:
            _save(pdf, fig)
            plt.close(fig)
        for t in verdicts[1:]:
            _table_pages(pdf, t, explore=explore)
        for fname, f in figures:
            _save(pdf, f)
            _save_png(f, fig_dir / f"{fname}.png")
            plt.close(f)
        for t in rest:
            _table_pages(pdf, t)
        fig = plt.figure(figsize=PAGE)
        y = _text(fig, 0.95, "Provenance", 13, "bold")
        libs = ", ".join(f"{k} {v}" for k, v in man.get("libraries", {}).items())
        jobs = man.get("jobs", [])
        trained = [j for j in jobs if not j.get("cached")]
        lines = [
            f"package: {man.get('package')} {man.get('version')}  |  git commit: {man.get('git_commit')}",
            f"device: {man.get('device')}  |  platform: {man.get('platform')}",
            f"command: {man.get('command')}",
            f"started: {man.get('started')}  |  finished: {man.get('finished')}",
            f"jobs: {len(jobs)} ({len(trained)} trained, {len(jobs) - len(trained)} from cache), "
            f"train seconds total {sum(j.get('train_seconds', 0) for j in jobs):.1f}",
            f"libraries: {libs}",
            f"seeds: {seeds}; profile: {config.get('profile')}; epochs: {config.get('epochs') or 'per dataset'}; "
            f"batch size: {config.get('batch_size')}",
            "method configs: " + "; ".join(f"{m}: {c}" for m, c in config.get("resolved", {}).get("method_configs", {}).items()),
        ]
        for line in lines:
            if y - _text_height(line, 8) < BOTTOM:  # a long provenance continues on the next page
                _save(pdf, fig)
                plt.close(fig)
                fig = plt.figure(figsize=PAGE)
                y = _text(fig, 0.95, "Provenance (continued)", 13, "bold")
            y = _text(fig, y, line, 8)
        _save(pdf, fig)
        plt.close(fig)
    out = reports_dir / f"{name}.pdf"
    atomic_write(out, buf.getvalue())
    if verdicts:
        atomic_write(fig_dir / "verdicts.csv", verdicts_csv(verdicts, name, profile))
        atomic_write(fig_dir / "verdicts.tex", verdicts_tex(verdicts, name, run_id, profile))
    return out
