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
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402

from bench.catalog import load_view  # noqa: E402
from bench.protocol import SUBJECT, VIEWS, Table, View  # noqa: E402
from bench.report.pdftable import draw_table, fit_table, text_width  # noqa: E402
from bench.report.published import published_headline  # noqa: E402
from bench.report.tables import (  # noqa: E402, F401 (the text forms of the tables, re-exported)
    P_LABELS,
    _fmt,
    exploratory,
    format_table,
    overall,
    overall_lines,
    tex_escape,
    verdict_display,
    verdicts_csv,
    verdicts_tex,
)
from bench.results import atomic_write, read_matrices, read_run  # noqa: E402

PAGE = (8.27, 11.69)  # A4 portrait, inches
VERDICT_COLORS = {"supported": "#c7e9c0", "contradicted": "#fcbba1", "inconclusive": "#e0e0e0"}
TEXT_SINK: list[str] | None = None  # when a list, every string the report draws is appended (tests)


def view(name: str) -> View:
    """The registered view of prediction ``name``, importing its ``view`` module first if needed
    (``bench report`` imports the views it reads: no protocol, method or baseline, no torch)."""
    if name not in VIEWS:
        load_view(name)
    return VIEWS.get(name)()  # UnknownNameError, with the choices, for a prediction that has no view


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


def _text(
    fig, y: float, text: str, size: float = 9, weight: str = "normal", width: int | None = None, style="normal"
) -> float:
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


def _table_pages(
    pdf: PdfPages, table: Table, first_fig=None, y0: float = 0.95, explore: bool = False, lines: tuple[str, ...] = ()
) -> None:
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
    head = (
        _text_height(table.title, 11, "bold")
        + sum(_text_height(x, 9, "bold", 110) for x in lines)
        + (_text_height(table.note, 8) if table.note else 0.0)
    )
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
            y = _text(
                fig,
                y,
                f"exploratory (profile {profile}): no verdicts. Only profile=confirm (pre-registered, "
                "seeds 100..109) tests the prediction; this run shows effect sizes and directions.",
                10,
                "bold",
                width=90,
            )
        y = _text(fig, y, f"InfoMax prediction bench: {pred.title}", 15, "bold", width=58)
        datasets = ", ".join(map(str, df["dataset"].dropna().unique()))
        seeds = sorted(int(s) for s in df["seed"].dropna().unique())
        y = _text(fig, y, f"run {run_id} | dataset {datasets} | seeds {seeds} | subject: {SUBJECT}", 8)
        asks = pred.kind == "question"
        y = _text(
            fig, y, "The question, in the essay's words" if asks else "The prediction, in the essay's words", 11, "bold"
        )
        y = _text(fig, y, pred.statement, 9, style="italic")
        if asks:
            y = _text(fig, y, "Answer (computed from this run's table)", 11, "bold")
            y = _text(fig, y, pred.answer(df), 10, "bold", width=100)
        y = _text(fig, y, "Protocol in brief", 11, "bold")
        y = _text(fig, y, pred.protocol, 8, width=120)
        failed = df[df["metric"] == "job_failed"]
        if len(failed):
            y = _text(
                fig,
                y,
                f"Failed jobs ({len(failed)}), kept and counted as missing seeds: "
                + "; ".join(f"{r.method} seed {r.seed}: {r.note}" for r in failed.itertuples()),
                8,
                width=120,
            )
        skipped = df[df["metric"] == "job_skipped"].drop_duplicates(["method", "note"])
        if len(skipped):
            y = _text(
                fig,
                y,
                "Methods that cannot run on this data (rows with n = 0 in every verdict table): "
                + "; ".join(f"{r.method}: {r.note}" for r in skipped.itertuples()),
                8,
                width=120,
            )
        verdicts = [t for t in tables if t.verdict]
        rest = [t for t in tables if not t.verdict]
        if verdicts:
            lines = tuple(overall_lines(tables, profile))
            if explore and (pub := published_headline(name)) is not None:  # the answer, beside this run's table
                lines += (pub.line(),)
            _table_pages(pdf, verdicts[0], fig, y, explore, lines)
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
            "method configs: "
            + "; ".join(f"{m}: {c}" for m, c in config.get("resolved", {}).get("method_configs", {}).items()),
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
