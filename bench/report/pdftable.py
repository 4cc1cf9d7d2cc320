"""Tables on report pages: fitted to the page (:func:`fit_table`: wrap, shrink, notes; rows of any
height, so a long table is split across pages by its caller) and drawn at a fraction of what
``Axes.table`` costs (see :class:`_Grid`)."""

from __future__ import annotations

import functools
import textwrap
from dataclasses import dataclass, field

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
from matplotlib.artist import Artist, allow_rasterization
from matplotlib.collections import PolyCollection
from matplotlib.font_manager import FontProperties
from matplotlib.text import Text
from matplotlib.transforms import Bbox, IdentityTransform

FONT, MIN_FONT = 6.5, 5.0  # a table's font, and the smallest it is shrunk to before text moves to notes
WRAP = 32  # text cells longer than this wrap onto lines of at most this many characters
NOTE_AT = 90  # a text cell longer than this becomes a numbered note under the table
PAD = 0.1  # a column is as wide as its widest label plus 2 x PAD of it (matplotlib's Cell.PAD)
EDGE_PT = 2.0  # and at least this many points each side (a one-digit column does not touch its edges)


@functools.lru_cache(maxsize=1)
def _renderer():
    from matplotlib.backends.backend_agg import RendererAgg

    return RendererAgg(10, 10, 72)  # 72 dpi: widths in points


@functools.lru_cache(maxsize=20000)
def text_width(s: str, size: float, bold: bool = False) -> float:
    """The drawn width of ``s`` (the widest of its lines) at ``size`` points, in points."""
    prop = FontProperties(size=size, weight="bold" if bold else "normal")
    return max(
        (_renderer().get_text_width_height_descent(line, prop, ismath=False)[0] if line else 0.0)
        for line in s.split("\n")
    )


def row_height(size: float, lines: int = 1) -> float:
    """A row's height in inches: matplotlib's table row (1.25 x 1.2 x 10 pt at the 6.5-point font,
    scaled with the font) plus a text line for each line past the first."""
    return size / FONT * 10 / 72 * 1.2 * 1.25 + (lines - 1) * size * 1.2 / 72


@dataclass
class Layout:
    """A table fitted to a width: its font size, header and cells (wrapped: lines split by newlines),
    each row's height in inches (header first), the note lines each row carries, and the columns
    that moved to notes whole."""

    size: float
    header: list[str]
    rows: list[list[str]]
    heights: list[float]
    notes: list[list[str]] = field(default_factory=list)
    moved: list[str] = field(default_factory=list)
    width: float = 0.0  # points


def _is_text(col: pd.Series) -> bool:
    return any(any(ch.isalpha() for ch in v) and " " in v for v in col)


def _widths(header: list[str], rows: list[list[str]], size: float) -> list[float]:
    return [
        max(text_width(r[c], size) for r in [header, *rows]) * (1 + 2 * PAD) + 2 * EDGE_PT for c in range(len(header))
    ]


def fit_table(cells: pd.DataFrame, width_pt: float, size: float = FONT) -> Layout:
    """Fit ``cells`` (strings) into ``width_pt`` points: long text cells wrap (:data:`WRAP`), very long
    ones become numbered notes (:data:`NOTE_AT`), then the font shrinks (down to :data:`MIN_FONT`), then
    the widest text columns move to notes whole until the table fits."""
    header = [str(c) for c in cells.columns]
    raw = cells.astype(str).to_numpy().tolist()
    text_cols = [c for c, name in enumerate(cells.columns) if _is_text(cells[name].astype(str))]
    moved: list[int] = []

    def build(size: float, wrap: bool) -> Layout:
        notes: list[list[str]] = [[] for _ in raw]
        rows = []
        for r, row in enumerate(raw):
            out = []
            for c, v in enumerate(row):
                if c in moved or (wrap and c in text_cols and len(v) > NOTE_AT):
                    if v.strip():
                        notes[r].append(f"[{r + 1}] {header[c]}: {v}")
                        v = f"[{r + 1}]"
                elif wrap and c in text_cols and len(v) > WRAP:
                    v = "\n".join(textwrap.wrap(v, WRAP)) or v
                out.append(v)
            rows.append(out)
        head = [("\n".join(textwrap.wrap(h, WRAP)) if wrap and len(h) > WRAP else h) for h in header]
        lines = [1 + max(v.count("\n") for v in row) for row in [head, *rows]]
        widths = _widths(head, rows, size)
        return Layout(
            size,
            head,
            rows,
            [row_height(size, n) for n in lines],
            notes,
            [header[c] for c in moved],
            float(sum(widths)),
        )

    lay = build(size, wrap=False)
    if lay.width <= width_pt:
        return lay
    lay = build(size, wrap=True)
    while True:
        if lay.width <= width_pt:
            return lay
        small = max(MIN_FONT, lay.size * width_pt / lay.width * 0.98)
        if small < lay.size:
            lay = build(small, wrap=True)
            if lay.width <= width_pt:
                return lay
        left = [c for c in text_cols if c not in moved]
        if not left:
            return lay  # the grid shrinks its font further at draw time (MIN_FONT is not a floor there)
        widths = _widths(lay.header, lay.rows, lay.size)
        moved.append(max(left, key=lambda c: widths[c]))
        lay = build(lay.size, wrap=True)


class _Grid(Artist):
    """A table drawn as ``Axes.table(..., loc="upper center", cellLoc="center")`` draws it (auto column
    widths, 0.3-point black edges), at a fraction of the cost: one collection for the cells' rectangles
    and one reused ``Text`` for their labels, instead of a ``Rectangle`` and a ``Text`` per cell, each
    laid out again on every draw.

    The geometry is matplotlib's (``Table._update_positions``, ``Cell._set_text_position``): a column is
    as wide as its widest label measured by the drawing renderer, plus 2 x ``Cell.PAD`` of it; the block
    is centred horizontally and sits ``Table.AXESPAD`` below the top of the axes. Row heights are given
    (inches, header first: :func:`fit_table`), so a row of wrapped text is as tall as its lines. Cells are
    drawn row by row, header first, as the table draws them, so shared edges overlap in the same order.
    """

    PAD, AXESPAD, EDGE = PAD, 0.0, 0.3
    MIN_FONT = 3.5  # a table still wider than its axes at draw time shrinks its font, down to this size

    def __init__(
        self,
        ax,
        cells: list[list[str]],
        facecolors: list[list[str]],
        textcolors: list[list],
        size: float = FONT,
        heights: list[float] | None = None,
    ):
        super().__init__()
        self._ax = ax
        self._cells, self._facecolors, self._textcolors = cells, facecolors, textcolors
        self._text = Text(clip_on=False, horizontalalignment="center", verticalalignment="center")  # rc of now
        self._text.set_fontsize(size)
        self._text.set_transform(IdentityTransform())  # placed in display coordinates, as a Cell places its text
        self._default_color = self._text.get_color()
        fig = ax.figure  # (get_figure(root=True) exists from matplotlib 3.10 only)
        self._heights = list(heights or [row_height(size)] * len(cells))  # inches
        self._rects = PolyCollection(
            [],
            closed=True,
            edgecolors="k",
            linewidths=self.EDGE,
            joinstyle="miter",
            capstyle="butt",
            transform=ax.transAxes,
            clip_on=False,
        )
        self.extent: Bbox | None = None  # where the last draw put the table, in figure fractions (tests)
        self.set_clip_on(False)
        self.set_figure(fig)
        self._text.set_figure(fig)
        self._rects.set_figure(fig)

    def _layout(self, renderer, s: str):
        """``(width, lines)`` of label ``s`` centred on (0, 0): what ``Text.draw`` computes for it (each
        line's offset from the text's position), once per distinct label instead of twice per cell."""
        got = self._layouts.get(s)
        if got is None:
            self._text.set_text(s)
            self._text.set_position((0.0, 0.0))
            bbox, info, _ = self._text._get_layout(renderer)
            lines = [(*self._text._preprocess_math(line), x, y) for line, _, (x, y) in info]
            got = self._layouts[s] = (self._text.get_window_extent(renderer).width if s else 0.0, lines)
        return got

    @allow_rasterization
    def draw(self, renderer):
        if not self.get_visible():
            return
        renderer.open_group("table", gid=self.get_gid())
        self._layouts: dict = {}
        to_axes = self._ax.bbox.width  # display units per axes fraction (transAxes scale)
        ncols = len(self._cells[0])

        edge = 2 * EDGE_PT / 72 * self.get_figure().dpi / to_axes

        def measure() -> list[float]:
            return [
                max(self._layout(renderer, row[c])[0] for row in self._cells) / to_axes * (1.0 + 2.0 * self.PAD) + edge
                for c in range(ncols)
            ]

        widths = measure()
        if sum(widths) > 1.0:  # wider than its axes (a confirm table has many columns): a smaller font, same layout
            self._text.set_fontsize(max(self.MIN_FONT, self._text.get_fontsize() / sum(widths)))
            self._layouts = {}
            widths = measure()
        lefts = np.concatenate([[0.0], np.cumsum(widths)[:-1]])
        nrows = len(self._cells)
        dpi = self.get_figure().dpi  # the saving dpi (a PDF draws at 72, whatever the figure's own dpi)
        row_h = [h * dpi / self._ax.bbox.height for h in self._heights]  # axes fractions
        tops = 1 - self.AXESPAD - np.concatenate([[0.0], np.cumsum(row_h)[:-1]])
        w = float(sum(widths))
        ox = 0.5 - w / 2
        verts, faces = [], []
        for r in range(nrows):
            y0, y1 = tops[r] - row_h[r], tops[r]
            for c in range(ncols):
                x0 = ox + lefts[c]
                verts.append([(x0, y0), (x0 + widths[c], y0), (x0 + widths[c], y1), (x0, y1)])
                faces.append(self._facecolors[r][c])
        corners = self._ax.transAxes.transform([(ox, tops[-1] - row_h[-1]), (ox + w, tops[0])])
        self.extent = Bbox(self.get_figure().transFigure.inverted().transform(corners))  # figure fractions
        self._rects.set_verts(verts)
        self._rects.set_facecolors(faces)
        self._rects.draw(renderer)
        # the labels: Text.draw's own calls, its layout cached per label (one gc per colour)
        trans = self._ax.transAxes
        prop, gcs = self._text.get_fontproperties(), {}
        canvas_h = renderer.get_canvas_width_height()[1]
        for r in range(nrows):
            yc = tops[r] - row_h[r] / 2
            for c in range(ncols):
                label = self._cells[r][c]
                if not label:
                    continue
                color = self._textcolors[r][c] or self._default_color
                gc = gcs.get(color)
                if gc is None:
                    gc = gcs[color] = renderer.new_gc()
                    gc.set_foreground(mcolors.to_rgba(color), isRGBA=True)
                    gc.set_alpha(self._text.get_alpha())
                    gc.set_antialiased(self._text._antialiased)
                    gc.set_snap(self._text.get_snap())
                posx, posy = trans.transform((ox + lefts[c] + widths[c] / 2, yc))
                lines = self._layout(renderer, label)[1]
                self._text.set_text(label)  # the text object a backend may read (SVG, PGF)
                self._text.set_position((posx, posy))
                self._text.set_color(color)
                renderer.open_group("text", None)
                for line, ismath, dx, dy in lines:
                    y = posy + dy
                    renderer.draw_text(
                        gc,
                        posx + dx,
                        canvas_h - y if renderer.flipy() else y,
                        line,
                        prop,
                        0.0,
                        ismath=ismath,
                        mtext=self._text if len(lines) == 1 else None,
                    )
                renderer.close_group("text")
        for gc in gcs.values():
            gc.restore()
        renderer.close_group("table")
        self.stale = False


def draw_table(
    ax,
    frame: pd.DataFrame,
    verdict_col: str | None,
    verdict_colors: dict[str, str],
    layout: Layout | None = None,
    rows: slice = slice(None),
) -> None:
    """``frame`` (cells already formatted as strings) as a table at the top of ``ax``; the header dark,
    the ``verdict_col`` cells coloured by ``verdict_colors`` (white for a value it lacks). With a
    ``layout`` (:func:`fit_table` of ``frame``): its font, wrapped cells and row heights, rows ``rows``
    of it (a page's share of a long table)."""
    ax.axis("off")
    if not len(frame):
        ax.text(0, 1, "(no rows)", va="top")
        return
    if layout is None:
        layout = fit_table(frame, float("inf"))
    plain = frame.astype(str).to_numpy().tolist()[rows]
    cells = layout.rows[rows]
    heights = [layout.heights[0], *layout.heights[1:][rows]]
    ncols = len(frame.columns)
    vcol = list(frame.columns).index(verdict_col) if verdict_col is not None and verdict_col in frame.columns else None
    faces = [["#404040"] * ncols] + [
        [verdict_colors.get(row[c], "white") if c == vcol else "w" for c in range(ncols)] for row in plain
    ]
    colors = [["white"] * ncols] + [[None] * ncols for _ in cells]
    ax.add_artist(_Grid(ax, [layout.header, *cells], faces, colors, layout.size, heights))
