"""Tables on report pages: what ``Axes.table`` draws, drawn at a fraction of its cost (see :class:`_Grid`)."""

from __future__ import annotations

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
from matplotlib.artist import Artist, allow_rasterization
from matplotlib.collections import PolyCollection
from matplotlib.text import Text
from matplotlib.transforms import IdentityTransform


class _Grid(Artist):
    """A table drawn as ``Axes.table(..., loc="upper center", cellLoc="center")`` draws it (auto column
    widths, font size 6.5, row heights scaled by 1.25, 0.3-point black edges), at a fraction of the
    cost: one collection for the cells' rectangles and one reused ``Text`` for their labels, instead of
    a ``Rectangle`` and a ``Text`` per cell, each laid out again on every draw.

    The geometry is matplotlib's (``Table._update_positions``, ``Cell._set_text_position``): a column is
    as wide as its widest label measured by the drawing renderer, plus 2 x ``Cell.PAD`` of it; every
    row is ``Table._approx_text_height() * 1.25`` high; the block is centred horizontally and sits
    ``Table.AXESPAD`` below the top of the axes. Cells are drawn row by row, header first, as the
    table draws them, so shared edges overlap in the same order.
    """

    PAD, AXESPAD, FONTSIZE, YSCALE, EDGE = 0.1, 0.02, 10, 1.25, 0.3
    MIN_FONT = 4.0  # a table wider than its axes shrinks its font to fit, down to this size

    def __init__(self, ax, cells: list[list[str]], facecolors: list[list[str]], textcolors: list[list]):
        super().__init__()
        self._ax = ax
        self._cells, self._facecolors, self._textcolors = cells, facecolors, textcolors
        self._text = Text(clip_on=False, horizontalalignment="center", verticalalignment="center")  # rc of now
        self._text.set_fontsize(6.5)
        self._text.set_transform(IdentityTransform())  # placed in display coordinates, as a Cell places its text
        self._default_color = self._text.get_color()
        fig = ax.get_figure(root=True)
        self._row_h = self.FONTSIZE / 72.0 * fig.dpi / ax.bbox.height * 1.2 * self.YSCALE  # axes fraction
        self._rects = PolyCollection([], closed=True, edgecolors="k", linewidths=self.EDGE, joinstyle="miter",
                                     capstyle="butt", transform=ax.transAxes, clip_on=False)
        self.set_clip_on(False)
        self.set_figure(ax.get_figure(root=False))
        self._text.set_figure(self.get_figure(root=False))
        self._rects.set_figure(self.get_figure(root=False))

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

        def measure() -> list[float]:
            return [max(self._layout(renderer, row[c])[0] for row in self._cells) / to_axes * (1.0 + 2.0 * self.PAD)
                    for c in range(ncols)]

        widths = measure()
        if sum(widths) > 1.0:  # wider than its axes (a confirm table has many columns): a smaller font, same layout
            self._text.set_fontsize(max(self.MIN_FONT, self._text.get_fontsize() / sum(widths)))
            self._layouts = {}
            widths = measure()
        lefts = np.concatenate([[0.0], np.cumsum(widths)[:-1]])
        nrows = len(self._cells)
        w, h = float(sum(widths)), nrows * self._row_h
        ox, oy = (0.5 - w / 2), 1 - (h + self.AXESPAD)
        verts, faces = [], []
        for r in range(nrows):
            y0 = oy + (nrows - 1 - r) * self._row_h
            for c in range(ncols):
                x0 = ox + lefts[c]
                verts.append([(x0, y0), (x0 + widths[c], y0), (x0 + widths[c], y0 + self._row_h), (x0, y0 + self._row_h)])
                faces.append(self._facecolors[r][c])
        self._rects.set_verts(verts)
        self._rects.set_facecolors(faces)
        self._rects.draw(renderer)
        # the labels: Text.draw's own calls, its layout cached per label (one gc per colour)
        trans = self._ax.transAxes
        prop, gcs = self._text.get_fontproperties(), {}
        canvas_h = renderer.get_canvas_width_height()[1]
        for r in range(nrows):
            yc = oy + (nrows - 1 - r + 0.5) * self._row_h
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
                    renderer.draw_text(gc, posx + dx, canvas_h - y if renderer.flipy() else y, line, prop, 0.0,
                                       ismath=ismath, mtext=self._text if len(lines) == 1 else None)
                renderer.close_group("text")
        for gc in gcs.values():
            gc.restore()
        renderer.close_group("table")
        self.stale = False


def draw_table(ax, frame: pd.DataFrame, verdict_col: str | None, verdict_colors: dict[str, str]) -> None:
    """``frame`` (cells already formatted as strings) as a table at the top of ``ax``; the header dark,
    the ``verdict_col`` cells coloured by ``verdict_colors`` (white for a value it lacks)."""
    ax.axis("off")
    cells = frame.to_numpy().tolist()
    if not cells:
        ax.text(0, 1, "(no rows)", va="top")
        return
    ncols = len(frame.columns)
    vcol = list(frame.columns).index(verdict_col) if verdict_col is not None and verdict_col in frame.columns else None
    faces = [["#404040"] * ncols] + [
        [verdict_colors.get(row[c], "white") if c == vcol else "w" for c in range(ncols)] for row in cells]
    colors = [["white"] * ncols] + [[None] * ncols for _ in cells]
    ax.add_artist(_Grid(ax, [[str(c) for c in frame.columns], *cells], faces, colors))
