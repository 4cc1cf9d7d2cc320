"""Pages that fit: every table, text and figure panel of a report lies inside its page. The real reports
of a small pruning run (digits, three methods, two epochs) and the summary are built; every page is
checked as it is saved (``PdfPages.savefig``): each drawn table's extent (:class:`bench.report.pdftable._Grid`
records it in figure fractions), each text's and each axes' window extent against the figure's box.
A long, wide table of long text cells (a confirm table of the main job's size) continues on further
pages, its long cells wrapped or moved to notes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.text import Text

from bench.config import RunConfig
from bench.engine.runner import execute
from bench.protocol import Table
from bench.report import build as report
from bench.report.pdftable import _Grid, fit_table
from bench.report.summary import build_summary

TOL = 2.0  # display pixels of slack (antialiasing, a glyph's side bearing)


def _outside(fig) -> list[str]:
    """What of ``fig`` lies outside its page: tables (figure fractions), texts and axes (pixels)."""
    bad = []
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)  # the extents of this renderer (the PDF drew at 72 dpi; fractions do not change)
    box = fig.bbox
    for ax in fig.axes:
        for art in ax.artists:
            if isinstance(art, _Grid):
                e = art.extent
                assert e is not None
                if e.x0 < -1e-3 or e.y0 < -1e-3 or e.x1 > 1 + 1e-3 or e.y1 > 1 + 1e-3:
                    bad.append(f"table {art._cells[0][:3]}... at {np.round(e.extents, 3).tolist()}")
        if ax.axison:
            t = ax.get_tightbbox(renderer)
            if t is not None and (t.x0 < -TOL or t.y0 < -TOL or t.x1 > box.x1 + TOL or t.y1 > box.y1 + TOL):
                bad.append(
                    f"axes '{ax.get_title() or ax.get_xlabel()}' at {np.round(t.extents).tolist()} "
                    f"of {np.round(box.extents).tolist()}"
                )
    own = [
        *fig.texts,
        *(t for t in (fig._suptitle, fig._supxlabel, fig._supylabel) if t is not None),
        *(t for legend in fig.legends for t in legend.findobj(Text)),
    ]
    for t in own:  # the page's own texts (an axes' texts count in its tight box above)
        if not t.get_visible() or not t.get_text():
            continue
        e = t.get_window_extent(renderer)
        if e.x0 < -TOL or e.y0 < -TOL or e.x1 > box.x1 + TOL or e.y1 > box.y1 + TOL:
            bad.append(f"text {t.get_text()[:50]!r} at {np.round(e.extents).tolist()}")
    return bad


@pytest.fixture
def pages(monkeypatch):
    """Every page saved to a PDF while the fixture is on: (title of its first text, what lies outside)."""
    seen: list[tuple[str, list[str], int]] = []
    save = PdfPages.savefig

    def checked(self, figure=None, **kw):
        save(self, figure, **kw)
        texts = [t.get_text() for t in figure.texts] if figure is not None else []
        n_tables = sum(isinstance(a, _Grid) for ax in figure.axes for a in ax.artists) if figure is not None else 0
        seen.append((texts[0][:60] if texts else "", _outside(figure) if figure is not None else [], n_tables))

    monkeypatch.setattr(PdfPages, "savefig", checked)
    return seen


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fit")
    cfg = RunConfig(
        workers=1,
        prediction="pruning",
        dataset="digits",
        methods=["infomax", "pca", "ae"],
        seeds=[0, 1],
        epochs=2,
        out=str(tmp / "results"),
        cache=str(tmp / "cache"),
        prediction_overrides={"random_draws": 2},
    )
    return execute(cfg), tmp


def test_the_real_reports_of_a_small_run_fit_their_pages(small_run, pages, tmp_path):
    run_dir, tmp = small_run
    report.build_report(run_dir, tmp_path / "reports")
    assert build_summary(tmp / "results", tmp_path / "reports") is not None
    assert sum(n for _, _, n in pages) >= 3  # the verdict tables were drawn and checked
    bad = [f"page {i + 1} ({title}): {b}" for i, (title, out, _) in enumerate(pages) for b in out]
    assert not bad, "\n".join(bad)


def _long_table(n: int = 70) -> Table:
    rng = np.random.default_rng(0)
    reason = "unpruned accuracy within 0.01 of chance: r(p) undefined, so no AURC and no prunable fraction either"
    frame = pd.DataFrame(
        {
            "dataset": "mnist5k",
            "baseline": [f"baseline_with_a_long_name_{i}" for i in range(n)],
            "family": "PA",
            "acc(0)": rng.uniform(0.8, 1, n),
            "n": 10,
            "mean_diff": rng.normal(size=n),
            "ci_low": -1.0,
            "ci_high": 1.0,
            "effect_size": rng.normal(size=n),
            "direction": "as predicted",
            "p_t": 0.01,
            "p_wilcoxon": 0.02,
            "p_perm": 0.03,
            "p_holm": 0.04,
            "p_wy": 0.05,
            "verdict": "inconclusive",
            "na": "",
            "n_missing": 0,
            "under_trained": 1,
            "reason": [reason * (1 + i % 3) if i % 4 == 0 else "" for i in range(n)],
        }
    )
    return Table("Primary: a long table", frame, verdict=True, role="primary", note="a note")


@pytest.mark.parametrize("explore", [False, True])
def test_a_long_wide_table_continues_on_further_pages_and_fits(pages, tmp_path, explore):
    table = _long_table()
    import io

    import matplotlib.pyplot as plt

    with PdfPages(io.BytesIO()) as pdf:
        fig = plt.figure(figsize=report.PAGE)
        report._table_pages(pdf, table, fig, 0.5, explore, ("an overall line",))
    assert len(pages) >= 3
    assert all(not out for _, out, _ in pages), [out for _, out, _ in pages if out]
    assert sum(n for _, _, n in pages) == len(pages)  # one table per page, header repeated
    assert any("(continued)" in title for title, _, _ in pages)


def test_fit_table_wraps_then_shrinks_then_moves_text_to_notes():
    cells = pd.DataFrame(
        {"a": ["1.234"] * 3, "why": ["short", "a fairly long reason that wraps onto lines", "x " * 80]}
    )
    lay = fit_table(cells, 10_000)  # room enough: nothing changes
    assert lay.rows[1][1] == "a fairly long reason that wraps onto lines" and lay.size == 6.5
    lay = fit_table(cells, 120)
    assert "\n" in lay.rows[1][1] and lay.rows[2][1] == "[3]" and lay.notes[2][0].startswith("[3] why: x x")
    assert lay.heights[2] > lay.heights[1] and lay.width <= 120
    lay = fit_table(cells, 40)  # too narrow even wrapped: the text column moves to notes whole
    assert lay.moved == ["why"] and lay.rows[1][1] == "[2]"


def test_the_checker_sees_a_table_and_a_text_off_the_page():
    import matplotlib.pyplot as plt

    from bench.report.pdftable import draw_table

    fig = plt.figure(figsize=report.PAGE)
    ax = fig.add_axes((0.03, -0.2, 0.94, 0.3))  # the table's lower rows below the page
    cells = pd.DataFrame({"a": [f"{i}" for i in range(40)], "b": "x"})
    draw_table(ax, cells, None, {}, fit_table(cells, 500))
    fig.text(0.9, 0.5, "a line that runs off the right edge of the page")
    out = _outside(fig)
    plt.close(fig)
    assert any(o.startswith("table") for o in out) and any(o.startswith("text 'a line") for o in out)
