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

import importlib
import io
import pkgutil
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

from bench import stats  # noqa: E402
from bench.pdftable import draw_table  # noqa: E402
from bench.protocol import SUBJECT, VIEWS, Table, View  # noqa: E402
from bench.results import atomic_write, read_matrices, read_run  # noqa: E402

PAGE = (8.27, 11.69)  # A4 portrait, inches
VERDICT_COLORS = {"supported": "#c7e9c0", "contradicted": "#fcbba1", "inconclusive": "#e0e0e0"}
ROWS_PER_PAGE = 34


def view(name: str) -> View:
    """The registered view of prediction ``name``, importing ``predictions.<name>`` first if needed
    (``bench report`` imports the views it reads, not every method and baseline)."""
    if name not in VIEWS:
        try:
            importlib.import_module(f"predictions.{name}")  # registers the view
        except ModuleNotFoundError as e:
            if e.name != f"predictions.{name}":
                raise
            package = importlib.import_module("predictions")  # no such prediction: register every view,
            for info in pkgutil.iter_modules(package.__path__):  # so that the error lists them all
                if not info.name.startswith("_"):
                    importlib.import_module(f"predictions.{info.name}")
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


def verdict_display(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns a reader needs, CI as one cell."""
    out = pd.DataFrame()
    for c in frame.columns:
        if c not in stats.FIELDS:
            out[c] = frame[c]
    out["baseline"] = frame["baseline"]
    out["n"] = frame["n"]
    out["mean diff"] = frame["mean_diff"]
    out["95% CI"] = [f"[{_fmt(a)}, {_fmt(b)}]" for a, b in zip(frame["ci_low"], frame["ci_high"], strict=True)]
    out["d_z"] = frame["effect_size"]
    out["p (t)"] = frame["p_t"]
    out["p (Wilcoxon)"] = frame["p_wilcoxon"]
    out["p (Holm)"] = frame["p_holm"]
    out["verdict"] = frame["verdict"]
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


def verdicts_csv(verdicts: list[Table]) -> str:
    """The verdict tables as one CSV: ``table`` (title), ``primary`` (the first table), then the raw frame."""
    frames = []
    for i, t in enumerate(verdicts):
        f = t.frame.copy()
        f.insert(0, "primary", i == 0)
        f.insert(0, "table", t.title)
        frames.append(f)
    rows = [f for f in frames if len(f)] or frames[:1]
    return pd.concat(rows, ignore_index=True).to_csv(index=False)


def _tex_cell(v) -> str:
    return "n/a" if v is None or v is pd.NA else tex_escape(_fmt(v))


def verdicts_tex(verdicts: list[Table], prediction: str, run_id: str) -> str:
    """The verdict tables as LaTeX: one ``table`` per verdict table, cells formatted as in the PDF."""
    parts = [f"% infomax-bench verdict tables: prediction {prediction}, run {run_id}\n"
             "% needs \\usepackage{booktabs}\n"]
    for i, t in enumerate(verdicts, 1):
        shown = verdict_display(t.frame)
        align = "".join("r" if pd.api.types.is_numeric_dtype(shown[c]) and not pd.api.types.is_bool_dtype(shown[c])
                        else "l" for c in shown.columns)
        cells = shown.map(_tex_cell)
        cells.columns = [tex_escape(c) for c in shown.columns]
        tabular = cells.to_latex(index=False, escape=False, column_format=align)
        parts.append("\\begin{table}[htbp]\n\\centering\n"
                     f"\\caption{{{tex_escape(t.title)}}}\n\\label{{tab:{prediction}-{i}}}\n"
                     f"{tabular}\\end{{table}}\n")
    return "\n".join(parts)


def _text(fig, y: float, text: str, size: float = 9, weight: str = "normal", width: int = 100, style="normal") -> float:
    for para in text.split("\n"):
        lines = textwrap.wrap(para, width) or [""]
        for line in lines:
            fig.text(0.07, y, line, fontsize=size, weight=weight, va="top", style=style)
            y -= 0.0165 * size / 9
    return y - 0.006


def _table_pages(pdf: PdfPages, table: Table, first_fig=None, y0: float = 0.95) -> None:
    frame = verdict_display(table.frame) if table.verdict else table.frame
    chunks = [frame.iloc[i : i + ROWS_PER_PAGE] for i in range(0, max(len(frame), 1), ROWS_PER_PAGE)]
    for i, chunk in enumerate(chunks):
        fig = first_fig if (i == 0 and first_fig is not None) else plt.figure(figsize=PAGE)
        y = y0 if fig is first_fig else 0.95
        y = _text(fig, y, table.title + (" (continued)" if i else ""), 11, "bold")
        if table.verdict and i == 0:
            y = _text(fig, y, "Overall: " + overall(table.frame), 9, "bold")
        if table.note and i == 0:
            y = _text(fig, y, table.note, 8)
        h = min(0.03 + 0.021 * (len(chunk) + 1), y - 0.04)
        ax = fig.add_axes((0.04, y - h, 0.92, h))
        draw_table(ax, chunk.map(_fmt), "verdict" if table.verdict else None, VERDICT_COLORS)
        pdf.savefig(fig)
        plt.close(fig)


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
        y = _text(fig, 0.96, f"InfoMax prediction bench: {pred.title}", 15, "bold", width=58)
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
        if len(seeds) < 10:
            y = _text(fig, y, f"Quick profile: {len(seeds)} seeds. With so few paired seeds few comparisons can reach "
                              "p_Holm < 0.05, so most verdicts read inconclusive; profile=full (10 seeds) is the run "
                              "to quote.", 8, "bold", width=120)
        verdicts = [t for t in tables if t.verdict]
        rest = [t for t in tables if not t.verdict]
        if verdicts:
            _table_pages(pdf, verdicts[0], fig, y)
        else:
            pdf.savefig(fig)
            plt.close(fig)
        for t in verdicts[1:]:
            _table_pages(pdf, t)
        for fname, f in figures:
            pdf.savefig(f)
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
            y = _text(fig, y, line, 8, width=120)
        pdf.savefig(fig)
        plt.close(fig)
    out = reports_dir / f"{name}.pdf"
    atomic_write(out, buf.getvalue())
    if verdicts:
        atomic_write(fig_dir / "verdicts.csv", verdicts_csv(verdicts))
        atomic_write(fig_dir / "verdicts.tex", verdicts_tex(verdicts, name, run_id))
    return out
