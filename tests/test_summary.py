"""The one-page summary of the four predictions (``bench.report.summary.build_summary``), on fake tidy runs.

Only ``profile=confirm`` gives verdicts: an exploratory summary (quick, full) shows directions and
no verdict word or p-value anywhere, in SUMMARY.md or in the PDF's drawn texts."""

from __future__ import annotations

import inspect
import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.text import Text

from bench.protocol import SUBJECT, VIEWS, View, in_all
from bench.report.build import overall_lines
from bench.report.build import view as report_view
from bench.report.summary import build_summary
from bench.results import read_run, tidy_frame, write_run

# the essay's four, whose tidy tables the helpers below can write; the summary shows every prediction of
# in_all(), and one added by a user (no run here) as "not run"
NAMES = ("pruning", "transfer", "efficiency", "interpretability")
THREE = ("pruning", "transfer", "interpretability")  # three_runs: efficiency not run

METHODS = (SUBJECT, "ae", "pca", "sae")
CONFIRM_SEEDS = list(range(100, 110))
VERDICT_WORDS = re.compile(r"supported|contradicted|inconclusive", re.I)
P_VALUES = re.compile(r"\bp_[a-zA-Z]|\bp \(|\bp\s*[<=]|p-value|[Hh]olm|Westfall")


def _stand_in(name: str) -> type[View] | None:
    """While a view still has the v1 ``verdict_tables`` (no ``secondaries``: its own branch brings v2),
    a stand-in that uses the base v2 ``View.verdict_tables``, P2's and P4's two primaries marked. The tests
    then read the real view as soon as it is v2."""
    cls = type(report_view(name))
    if "secondaries" in inspect.signature(cls.verdict_tables).parameters:
        return None
    verdicts = cls.verdicts
    if name in ("transfer", "interpretability") and not any(v.role for v in verdicts):
        verdicts = tuple(replace(v, role="primary") if i < 2 else v for i, v in enumerate(verdicts))
    body = {"verdict_tables": View.verdict_tables, "verdicts": verdicts}
    if name == "transfer":  # its v1 frame leaves raw and random out; v2 keeps REF members in (as the base does)
        body["verdict_frame"] = View.verdict_frame
    return type(cls.__name__, (cls,), body)


@pytest.fixture(autouse=True)
def v2_views(monkeypatch):
    for name in NAMES:
        stand_in = _stand_in(name)
        if stand_in is not None:
            monkeypatch.setitem(VIEWS._items, name, stand_in)


@pytest.fixture
def drawn(monkeypatch) -> list[str]:
    """Every text of every figure the summary saves into its PDF: the page's own texts first, in the order
    they were drawn (the first is the page's top line), then the axes' (titles, labels, ticks)."""
    texts: list[str] = []
    savefig = PdfPages.savefig

    def tracing(self, figure=None, **kw):
        own = list(figure.texts)
        texts.extend(t.get_text() for t in own + [t for t in figure.findobj(Text) if t not in own] if t.get_text())
        return savefig(self, figure, **kw)

    monkeypatch.setattr(PdfPages, "savefig", tracing)
    return texts


def _rows(
    prediction: str,
    values: dict[str, list[float]],
    metric: str,
    where: dict,
    dataset: str = "mnist5k",
    by_baseline: bool = False,
    seed0: int = 0,
) -> list[dict]:
    rows = []
    for method, vals in values.items():
        if by_baseline and method == SUBJECT:  # P3's primary rows hold per-baseline differences
            continue
        for seed, v in enumerate(vals, seed0):
            rows.append(
                {
                    "run_id": f"run-{prediction}",
                    "prediction": prediction,
                    "dataset": dataset,
                    "method": method,
                    "width": 64,
                    "seed": seed,
                    "metric": metric,
                    "value": v,
                    **where,
                }
            )
    return rows


def _values(rng, centres: dict[str, float], seeds: int, noise: float = 0.01) -> dict[str, list[float]]:
    return {m: list(c + noise * rng.standard_normal(seeds)) for m, c in centres.items()}


def _tidy(
    prediction: str, centres: dict[str, float], seeds: int = 3, seed: int = 0, seed0: int = 0, extra: list[dict] = ()
) -> pd.DataFrame:
    """A tidy table holding the rows each view's primaries read (``metric`` and ``where``)."""
    rng = np.random.default_rng(seed)
    view = VIEWS.get(prediction)
    v = view.verdicts[0]
    rows = _rows(
        prediction, _values(rng, centres, seeds), v.metric, v.where, by_baseline=prediction == "efficiency", seed0=seed0
    )
    if prediction == "interpretability":  # its second primary: DCI-D on dsprites
        v2 = view.verdicts[1]
        rows = [{**r, "dataset": "ica"} for r in rows]
        rows += _rows(prediction, _values(rng, centres, seeds), v2.metric, v2.where, dataset="dsprites", seed0=seed0)
    if prediction == "efficiency":  # P3's PA is the conventional models: plant them under the generic names
        rows = [{**r, "method": EFFICIENCY_PA.get(r["method"], r["method"])} for r in rows]
    return tidy_frame(rows + list(extra))


EFFICIENCY_PA = {"ae": "supervised", "pca": "supervised_mlp2", "sae": "supervised_cnn"}


def _write(out, prediction: str, df: pd.DataFrame, profile: str = "quick"):
    seeds = sorted(int(s) for s in df["seed"].dropna().unique())
    return write_run(
        out,
        prediction,
        f"run-{prediction}",
        df,
        {"prediction": prediction, "profile": profile, "seeds": seeds},
        {"jobs": []},
    )


CENTRES = {SUBJECT: 0.5, "ae": 0.6, "pca": 0.4, "sae": 0.5}


def _beaten(prediction: str, gap: float) -> dict[str, float]:
    """Centres where the subject beats every member by ``gap`` in the predicted direction (noise 0.01
    per method, so d_z is about gap / 0.014); P3's rows hold d itself (> 0 favours the subject)."""
    members = ("ae", "pca", "sae", "infomax_noem", "raw")
    if prediction == "efficiency":
        return dict.fromkeys(members, gap)
    sign = 1 if VIEWS.get(prediction).verdicts[0].direction == "higher" else -1
    return {SUBJECT: 0.5, **{m: 0.5 - sign * gap for m in members}}


@pytest.fixture
def three_runs(tmp_path):
    out = tmp_path / "results"
    for p in THREE:
        _write(out, p, _tidy(p, CENTRES))
    return out


def _pages(pdf: bytes) -> int:
    kids = len(re.findall(rb"/Type /Page[^s]", pdf))
    count = re.findall(rb"/Type /Pages .*?/Count (\d+)", pdf, flags=re.S)
    assert count and int(count[0]) == kids
    return kids


def _table(md: str, heading: str) -> list[list[str]]:
    """The rows (cells) of the first markdown table under ``## heading``: method, family, mean [CI], n seeds,
    verdict or direction vs the subject (and the overall verdict over both primaries). P3's PA members
    are read back under the generic names the tests plant (``EFFICIENCY_PA``)."""
    section = md.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    table = section.split("| method |", 1)[1].split("\n\n", 1)[0]
    back = {v: k for k, v in EFFICIENCY_PA.items()} if heading == VIEWS.get("efficiency").title else {}
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:]]
    return [[back.get(r[0], r[0]), *r[1:]] for r in rows]


def test_one_page_and_markdown(three_runs, tmp_path, drawn):
    reports = tmp_path / "reports"
    pdf, md_path = build_summary(three_runs, reports)
    assert pdf == reports / "summary.pdf" and md_path == three_runs / "SUMMARY.md"
    assert _pages(pdf.read_bytes()) == 1
    md = md_path.read_text()
    assert md.split("\n\n")[1].startswith("**exploratory (profile quick): no verdicts")
    assert drawn[0].startswith("exploratory (profile quick): no verdicts")
    assert set(NAMES) <= set(in_all())
    for p in in_all():
        view = report_view(p)
        assert f"## {view.title}\n" in md
        assert f"> {view.statement}" in md
        if p not in THREE:
            assert f"Not run (`bench run prediction={p}`)" in md
            continue
        df, _, _ = read_run(three_runs / p / f"run-{p}")
        (line,) = overall_lines(view.verdict_tables(df, secondaries=False), "quick")  # the detailed report's line
        head, _, rest = line.partition("; ")
        assert f"**{head}**; {rest}" in md
        assert f"Run `run-{p}`" in md and f"{reports / p}.pdf" in md
        assert f"`bench run prediction={p} profile=confirm` gives this prediction's verdicts" in md
        rows = _table(md, view.title)
        assert rows[0][0] == f"**{SUBJECT}** (subject)" and rows[0][1] == "-"
        assert {r[0] for r in rows[1:]} == {"ae", "pca", "sae"} and all(r[3] == "3" for r in rows)
        assert {r[1] for r in rows[1:]} == {"PA"} and {r[4] for r in rows[1:]} <= {"as predicted", "opposite"}
    for text in (md, *drawn):
        assert "Quick profile" not in text and "PROTOCOL" not in text and "shared" not in text
    assert "docs/protocol.md" in md and any("docs/protocol.md" in t for t in drawn)
    assert not list(reports.glob(".*")) and not list(three_runs.glob(".*"))  # no temporary file left


@pytest.mark.slow
def test_exploratory_shows_no_verdict_word_or_p_value(tmp_path, drawn):
    """(quick, every prediction, PA + AB + REF members, one planted effect): directions only, in the
    markdown and in every text the PDF draws; the legend says what the colours mean."""
    out = tmp_path / "results"
    for p in NAMES:
        _write(out, p, _tidy(p, _beaten(p, 0.04), seeds=3))
    md = build_summary(out, tmp_path / "reports")[1].read_text()
    for text in (md, *drawn):
        assert not VERDICT_WORDS.search(text), text
        assert not P_VALUES.search(text), text
    assert "Headline" not in md and not any("Headline" in t for t in drawn)
    for p in NAMES:
        rows = {r[0]: r for r in _table(md, report_view(p).title)}
        raw = "n/a by design" if p == "efficiency" else "as predicted"  # P3: raw has no curve (P = 0)
        assert rows["ae"][4] == "as predicted" and rows["raw"][4].startswith(raw)
        assert (rows["ae"][1], rows["infomax_noem"][1], rows["raw"][1]) == ("PA", "AB", "REF")
        assert len(rows["ae"]) == 5  # no column over both primaries (it holds verdicts)
    assert "| method | family |" in md and "direction vs the subject |" in md
    assert "\u25cf mean d as predicted" in drawn and "\u25cf mean d opposite" in drawn
    assert sum(t.startswith("exploratory (profile quick): no verdicts") for t in drawn) == 1 + 4  # page + columns


@pytest.mark.slow
@pytest.mark.parametrize("prediction", NAMES)
def test_confirm_headline_supported(tmp_path, drawn, prediction):
    """(confirm, seeds 100..109) the subject beats every PA member by d_z about 3 (P4: on both primaries):
    the headline reads supported, every PA row supported, raw a reference."""
    out = tmp_path / "results"
    _write(out, prediction, _tidy(prediction, _beaten(prediction, 0.042), seeds=10, seed0=100), profile="confirm")
    md = build_summary(out, tmp_path / "reports")[1].read_text()
    assert "**Headline: supported (every applicable cell of all 3 PA members beaten" in md
    assert any(t.startswith("Headline: supported") for t in drawn)
    assert "PA (3): 3 supported, 0 contradicted, 0 inconclusive" in md
    rows = {r[0]: r for r in _table(md, report_view(prediction).title)}
    assert all(rows[m][4] == "supported" and rows[m][3] == "10" for m in ("ae", "pca", "sae"))
    raw = "n/a: raw reads no parameters" if prediction == "efficiency" else "reference"  # P3: no curve at P = 0
    assert rows["raw"][1:2] == ["REF"] and rows["raw"][4].startswith(raw)
    if prediction == "interpretability":  # the overall verdict over both primaries
        assert rows["ae"][5] == "supported" and rows["raw"][5] == "reference"
    assert "exploratory" not in md and not any("exploratory" in t.lower() for t in drawn)
    assert "\u25cf supported" in drawn and "\u25cf n/a by design" in drawn


def test_confirm_na_by_design(tmp_path):
    """A member skipped on the data (every row a job_skipped status row) is n/a by design: "n/a: reason"."""
    skipped = [
        {
            "run_id": "run-pruning",
            "prediction": "pruning",
            "dataset": "mnist5k",
            "method": "gmm",
            "width": 64,
            "seed": s,
            "metric": "job_skipped",
            "value": np.nan,
            "note": "gmm cannot run here",
        }
        for s in CONFIRM_SEEDS
    ]
    out = tmp_path / "results"
    _write(
        out,
        "pruning",
        _tidy("pruning", _beaten("pruning", 0.042), seeds=10, seed0=100, extra=skipped),
        profile="confirm",
    )
    md = build_summary(out, tmp_path / "reports")[1].read_text()
    rows = {r[0]: r for r in _table(md, report_view("pruning").title)}
    assert rows["gmm"][4].startswith("n/a: gmm cannot run here") and rows["gmm"][3] == "0"
    assert "Headline: supported" in md  # an n/a cell leaves the intersection


@pytest.mark.slow
def test_every_primary_group_is_shown(tmp_path):
    """P4 has two primaries (MCC on ica, DCI on dsprites): a table each; confirm adds the overall verdict."""
    view = report_view("interpretability")
    for profile, seeds, seed0 in (("quick", 3, 0), ("confirm", 10, 100)):
        out = tmp_path / profile
        _write(out, "interpretability", _tidy("interpretability", CENTRES, seeds=seeds, seed0=seed0), profile=profile)
        md = build_summary(out, tmp_path / "reports")[1].read_text()
        section = md.split(f"## {view.title}\n", 1)[1].split("\n## ", 1)[0]
        assert section.count("| method |") == 2
        assert "setting = ica_linear" in section and "setting = dsprites_wide" in section
        assert ("overall (both primaries)" in section) == (profile == "confirm")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("planted", "expected", "side"), [(0.9, "supported", "as predicted"), (0.1, "contradicted", "opposite")]
)
@pytest.mark.parametrize("prediction", NAMES)
def test_planted_verdict(tmp_path, prediction, planted, expected, side):
    """The subject clearly better (worse) than ae in every seed in the predicted direction (P4: on both
    primaries): confirm reads supported (contradicted) for ae and inconclusive for the baselines level with
    the subject; the same data in profile full shows only the side of mean d."""
    view = report_view(prediction)
    higher = view.primary.direction == "higher"
    if prediction == "efficiency":  # rows hold d = Delta_B + delta per baseline: > 0 favours the subject
        centres = {"ae": planted - 0.5, "pca": 0.0, "sae": 0.001}
    else:
        ae = 1 - planted if higher else planted  # the subject sits at 0.5
        centres = {SUBJECT: 0.5, "ae": ae, "pca": 0.5, "sae": 0.5}
    for profile in ("confirm", "full"):
        out = tmp_path / profile
        _write(
            out,
            prediction,
            _tidy(prediction, centres, seeds=10, seed0=100 if profile == "confirm" else 0),
            profile=profile,
        )
        md = build_summary(out, tmp_path / "reports")[1].read_text()
        rows = {r[0]: r for r in _table(md, view.title)}
        assert rows["ae"][3] == "10"
        if profile == "full":
            assert rows["ae"][4] == side and not VERDICT_WORDS.search(md)
            continue
        assert rows["ae"][4] == expected
        assert rows["pca"][4] == rows["sae"][4] == "inconclusive"
        assert f"**Headline: {'contradicted' if expected == 'contradicted' else 'inconclusive'}" in md
        if prediction == "interpretability":  # planted on both primaries: the overall verdict agrees
            assert rows["ae"][5] == expected and rows["pca"][5] == "inconclusive"


def test_no_runs_gives_none(tmp_path):
    assert build_summary(tmp_path / "results", tmp_path / "reports") is None
    _write(tmp_path / "results", "probe", _tidy("pruning", CENTRES))  # a run of another prediction only
    assert build_summary(tmp_path / "results", tmp_path / "reports") is None
    assert not (tmp_path / "reports").exists() and not (tmp_path / "results" / "SUMMARY.md").exists()


def test_runs_without_baselines_or_primary_rows(tmp_path):
    """A subject-only run shows its exploratory line and the subject alone; a run without the primary metric
    says so."""
    out = tmp_path / "results"
    _write(out, "transfer", _tidy("transfer", {SUBJECT: 0.5}))
    other = _tidy("pruning", CENTRES).assign(metric="probe_acc")
    _write(out, "pruning", other)
    pdf, md_path = build_summary(out, tmp_path / "reports")
    md = md_path.read_text()
    assert _pages(pdf.read_bytes()) == 1
    assert "**exploratory (profile quick): no verdicts**  " in md
    assert [r[0] for r in _table(md, report_view("transfer").title)] == [f"**{SUBJECT}** (subject)"]
    assert "Run `run-pruning`: no rows of the primary metric aurc_best." in md


def test_mixed_profiles(tmp_path, drawn):
    """A confirm run beside a quick one: the confirm prediction shows its headline, the quick one only
    directions (no verdict word in its section); the page carries both legends."""
    out = tmp_path / "results"
    _write(out, "pruning", _tidy("pruning", _beaten("pruning", 0.042), seeds=10, seed0=100), profile="confirm")
    _write(out, "transfer", _tidy("transfer", _beaten("transfer", 0.042)), profile="quick")
    md = build_summary(out, tmp_path / "reports")[1].read_text()
    sections = {s.split("\n", 1)[0]: s for s in md.split("\n## ")}
    pruning, transfer = sections[report_view("pruning").title], sections[report_view("transfer").title]
    assert "**Headline: supported" in pruning and "exploratory" not in pruning
    assert "**exploratory (profile quick): no verdicts**" in transfer
    assert not VERDICT_WORDS.search(transfer) and not P_VALUES.search(transfer)
    assert md.split("\n\n")[1].startswith("**exploratory (profile quick): no verdicts (transfer).**")
    assert "\u25cf supported" in drawn and "\u25cf mean d as predicted" in drawn
