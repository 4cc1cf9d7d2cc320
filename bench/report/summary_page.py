"""The summary's one landscape page (``reports/summary.pdf``), drawn from :mod:`bench.report.summary`'s entries.

Per prediction a column: the essay's statement, the primary metrics and predicted direction, the
lines the detailed report opens its first verdict table with, then a dot-and-whisker panel per
primary group (mean and 95% t-interval over seeds per method). In a confirm run a dot's colour is
its row's verdict; in an exploratory run (quick, full) the side of the subject's mean d, and no
verdict word or p-value is drawn.
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402

from bench.protocol import ROLE_LABELS, SUBJECT, Verdict  # noqa: E402
from bench.report import plots  # noqa: E402

if TYPE_CHECKING:
    from bench.report.summary import Entry, Group

LANDSCAPE = (11.69, 8.27)  # A4 landscape, inches
NONE_COLOR = "#bdbdbd"
VERDICT_COLORS = {
    "supported": "#238b45",
    "contradicted": "#cb181d",
    "inconclusive": "#9e9e9e",
    "reference": "#6baed6",
    "n/a": "#c2a5cf",
}
VERDICT_LEGEND = {
    "supported": "supported",
    "contradicted": "contradicted",
    "inconclusive": "inconclusive",
    "reference": "reference (REF, no test)",
    "n/a": "n/a by design",
}
DIRECTION_COLORS = {"as predicted": "#74c476", "opposite": "#fb6a4a", "none": NONE_COLOR}
DIRECTION_LEGEND = {"as predicted": "mean d as predicted", "opposite": "mean d opposite", "none": "no value (or d = 0)"}
CONFIRM = "profile=confirm (pre-registered: seeds 100..109, docs/protocol.md)"


def primaries(groups: list[Group]) -> list[Verdict]:
    """The distinct verdicts of ``groups``, in order (a Verdict holds a dict: unhashable)."""
    out: list[Verdict] = []
    for g in groups:
        if not any(g.verdict is v for v in out):
            out.append(g.verdict)
    return out


def openers(entries: list[Entry]) -> list[str]:
    """'exploratory (profile NAME): no verdicts (predictions)', one per exploratory profile run."""
    by: dict[str, list[str]] = {}
    for e in entries:
        if e.run_id is not None and e.explore:
            by.setdefault(e.profile or "unknown", []).append(e.name)
    return [f"exploratory (profile {p}): no verdicts ({', '.join(names)})" for p, names in by.items()]


def _count(n: int) -> str:
    """``the four`` (the essay's), or how many a user's additions make."""
    return "the " + {2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}.get(n, str(n))


def _chars(width: float, size: float, bold: bool = False) -> int:
    """About how many characters of a ``size``-point font fit in ``width`` (figure fraction) of the page."""
    return max(10, int(width * LANDSCAPE[0] * 72 / (size * (0.6 if bold else 0.53))))


def _wrap(fig, x: float, y: float, text: str, size: float, width: float, bold: bool = False, **kw) -> float:
    for line in textwrap.wrap(text, _chars(width, size, bold)) or [""]:
        fig.text(x, y, line, fontsize=size, va="top", weight="bold" if bold else "normal", **kw)
        y -= 1.3 * size / 72 / LANDSCAPE[1]
    return y - 0.005


def _column_text(fig, e: Entry, x: float, y: float, reports_dir: Path, width: float) -> float:
    y = _wrap(fig, x, y, e.view.title, 8.5, width, bold=True)
    y = _wrap(fig, x, y, e.view.statement, 6.5, width, style="italic")
    if e.run_id is None:
        return _wrap(fig, x, y - 0.01, f"not run (bench run prediction={e.name})", 8, width, color="#b00000")
    if e.error:
        return _wrap(fig, x, y, f"run {e.run_id}: {e.error}", 7, width, color="#b00000")
    for v in primaries(e.groups):
        where = ", ".join(f"{k}={val}" for k, val in v.where.items())
        y = _wrap(
            fig,
            x,
            y,
            f"{ROLE_LABELS[v.role or 'primary']}: {v.metric}{f' ({where})' if where else ''}; predicted subject "
            f"{v.direction.upper()} than each baseline",
            6.5,
            width,
        )
    for i, line in enumerate(e.lines):
        if e.explore:
            y = _wrap(fig, x, y, line, 6, width, bold=False)
        elif i == 0:
            color = VERDICT_COLORS.get(
                (e.headline or "").split(" (")[0], "black"
            )  # "(under-trained: ...)" annotates the word
            y = _wrap(fig, x, y, line, 7, width, bold=True, color=color if color != "#9e9e9e" else "#505050")
        else:
            y = _wrap(fig, x, y, line, 6, width)
    return _wrap(
        fig,
        x,
        y,
        f"run {e.run_id} ({e.profile}, {len(e.seeds)} seeds); details: {reports_dir / (e.name + '.pdf')}",
        6,
        width,
        color="#404040",
    )


def _label(method: str, fam: str) -> str:
    return method + (f" ({fam})" if fam not in ("", "PA") else "")


def _panel(ax, g: Group, order: list[str], show_labels: bool, short: bool, explore: bool) -> None:
    rows = g.rows.set_index("method")
    pos = {m: i for i, m in enumerate(reversed(order))}  # the subject at the top
    for m in order:
        if m not in rows.index or not np.isfinite(rows.at[m, "mean"]):
            ax.text(
                0.01, pos[m], "no value", transform=ax.get_yaxis_transform(), fontsize=4.5, color="#9e9e9e", va="center"
            )
            continue
        r, yy = rows.loc[m], pos[m]
        if m == SUBJECT:
            color, marker, size = "black", "D", 22
        else:
            colors, key = (DIRECTION_COLORS, r["direction"]) if explore else (VERDICT_COLORS, r["verdict"])
            color, marker, size = colors.get(key, NONE_COLOR), "o", 16
        if np.isfinite(r["low"]):
            ax.plot([r["low"], r["high"]], [yy, yy], color=color, lw=0.9, zorder=2)
        ax.scatter([r["mean"]], [yy], s=size, color=color, marker=marker, zorder=3, lw=0)
    if g.subject_has_rows and SUBJECT in rows.index and np.isfinite(rows.at[SUBJECT, "mean"]):
        ax.axvline(rows.at[SUBJECT, "mean"], color="black", ls="--", lw=0.6, zorder=1)
    elif not g.subject_has_rows:
        ax.axvline(0, color="black", ls="--", lw=0.6, zorder=1)
    labels = {m: _label(m, rows.at[m, "family"]) if m in rows.index else m for m in pos}
    ax.set_ylim(-0.7, len(order) - 0.3)
    ax.set_yticks(list(pos.values()), [labels[m] for m in pos] if show_labels else [])
    ax.tick_params(axis="both", labelsize=5.5, length=2, pad=1)
    for tick in ax.get_yticklabels():
        if tick.get_text() == SUBJECT:
            tick.set_fontweight("bold")
    ax.grid(axis="x", lw=0.3, color="#dddddd")
    ax.grid(axis="y", lw=0.2, color="#eeeeee")
    arrow = "\u2191" if g.verdict.direction == "higher" else "\u2193"
    ax.set_xlabel(
        f"{g.verdict.metric} {arrow}" if short else f"{g.verdict.metric} ({arrow}: predicted for the subject)",
        fontsize=6,
        labelpad=1,
    )
    for s in ax.spines.values():
        s.set_linewidth(0.4)


def _draw_groups(fig, e: Entry, left: float, top: float, width: float, bottom: float) -> None:
    if not e.groups:
        return
    order = list(dict.fromkeys(m for g in e.groups for m in g.rows["method"]))
    multi = len(primaries(e.groups)) > 1
    label_w, gap, n = 0.075, 0.01, len(e.groups)
    w = (width - label_w - gap * (n - 1)) / n
    for i, g in enumerate(e.groups):
        title = g.label
        if multi:
            title = "\n".join(textwrap.wrap(g.verdict.label or g.verdict.metric, _chars(w, 6)))
            title += f"\n({', '.join(map(str, g.keys.values()))})" if g.keys else ""
        if not g.subject_has_rows:
            title += ("\n" if title else "") + "per-baseline values (no subject row); dashed line: 0"
        ax = fig.add_axes((left + label_w + i * (w + gap), bottom, w, top - bottom))
        _panel(ax, g, order, show_labels=i == 0, short=n > 1, explore=e.explore)
        if title:
            ax.set_title(title, fontsize=6, pad=2)


def _legend(fig, y: float, lead: str, colors: dict[str, str], labels: dict[str, str]) -> float:
    """``lead`` then one coloured dot and label per entry, on one line placed by the texts' drawn widths."""
    renderer = fig.canvas.get_renderer()
    x0 = 0.025
    for text, kw in [(lead, {}), *((f"\u25cf {labels[k]}", {"color": c, "weight": "bold"}) for k, c in colors.items())]:
        t = fig.text(x0, y, text, fontsize=7, va="top", **kw)
        x0 += 1.05 * t.get_window_extent(renderer).width / fig.bbox.width + 0.01  # 5%: raster hinting
    return y - 0.02


def figure(entries: list[Entry], reports_dir: Path):
    """The summary page as a matplotlib figure (the caller saves and closes it)."""
    plots.theme()  # the reports' style, whether or not a report was drawn before in this process
    fig = plt.figure(figsize=LANDSCAPE)
    y = 0.985
    opening = openers(entries)
    if opening:
        y = _wrap(fig, 0.025, y, "; ".join(opening) + f". Only {CONFIRM} gives verdicts.", 8, 0.95, bold=True)
    fig.text(
        0.025, y, f"InfoMax prediction bench: {_count(len(entries))} predictions", fontsize=13, weight="bold", va="top"
    )
    y = _wrap(
        fig,
        0.025,
        y - 0.03,
        "The latest run of each prediction. Dots: the primary metric's mean per method "
        "over seeds, whiskers its 95% t-interval; the subject (infomax) black, the dashed "
        "line at its mean; d = subject - baseline per seed.",
        7,
        0.95,
    )
    if any(e.run_id is not None and not e.explore for e in entries):
        y = _legend(
            fig,
            y,
            "Confirm runs, colour = the row's verdict within its family (docs/protocol.md):",
            VERDICT_COLORS,
            VERDICT_LEGEND,
        )
    if opening:
        y = _legend(
            fig,
            y,
            "Exploratory runs, colour = the side of the subject's mean d (no test):",
            DIRECTION_COLORS,
            DIRECTION_LEGEND,
        )
    left, gap = 0.02, 0.01
    col_w = min(0.235, (0.96 - gap * (len(entries) - 1)) / max(len(entries), 1))  # four fill the page; more share it
    ys = [_column_text(fig, e, left + i * (col_w + gap), y - 0.01, reports_dir, col_w) for i, e in enumerate(entries)]
    top = min(ys) - 0.045
    bottom = 0.07
    for i, e in enumerate(entries):
        multi = len(primaries(e.groups)) > 1
        _draw_groups(fig, e, left + i * (col_w + gap), top - (0.03 if multi else 0), col_w, bottom)
    explore = [e.name for e in entries if e.run_id is not None and e.explore]
    if explore:
        fig.text(
            0.025,
            0.015,
            f"Exploratory ({', '.join(explore)}): effect sizes and directions only. "
            f"bench run prediction=<name> profile=confirm is the run to quote.",
            fontsize=7,
            weight="bold",
            va="bottom",
        )
    return fig


def draw(entries: list[Entry], reports_dir: Path) -> bytes:
    fig = figure(entries, reports_dir)
    buf = io.BytesIO()
    with PdfPages(buf) as pdf:
        pdf.savefig(fig)
    plt.close(fig)
    return buf.getvalue()
