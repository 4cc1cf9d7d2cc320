"""The one-page summary of the four predictions (``bench.summary.build_summary``), on fake tidy runs."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from bench.protocol import SUBJECT, VIEWS
from bench.report import overall
from bench.results import read_run, tidy_frame, write_run
from bench.summary import build_summary

METHODS = (SUBJECT, "ae", "pca", "sae")


def _rows(prediction: str, values: dict[str, list[float]], metric: str, where: dict, dataset: str = "mnist5k",
          by_baseline: bool = False) -> list[dict]:
    rows = []
    for method, vals in values.items():
        if by_baseline and method == SUBJECT:  # P3's primary rows hold per-baseline differences
            continue
        for seed, v in enumerate(vals):
            rows.append({"run_id": f"run-{prediction}", "prediction": prediction, "dataset": dataset,
                         "method": method, "width": 64, "seed": seed, "metric": metric, "value": v, **where})
    return rows


def _values(rng, centres: dict[str, float], seeds: int, noise: float = 0.01) -> dict[str, list[float]]:
    return {m: list(c + noise * rng.standard_normal(seeds)) for m, c in centres.items()}


def _tidy(prediction: str, centres: dict[str, float], seeds: int = 3, seed: int = 0) -> pd.DataFrame:
    """A tidy table holding the rows each view's primary verdict reads (``verdicts[0].metric`` and ``where``)."""
    rng = np.random.default_rng(seed)
    view = VIEWS.get(prediction)
    v = view.verdicts[0]
    rows = _rows(prediction, _values(rng, centres, seeds), v.metric, v.where,
                 by_baseline=prediction == "efficiency")
    if prediction == "interpretability":  # its second primary: DCI-D on dsprites
        v2 = view.verdicts[1]
        rows = [{**r, "dataset": "ica"} for r in rows]
        rows += _rows(prediction, _values(rng, centres, seeds), v2.metric, v2.where, dataset="dsprites")
    return tidy_frame(rows)


def _write(out, prediction: str, df: pd.DataFrame, profile: str = "quick"):
    return write_run(out, prediction, f"run-{prediction}", df, {"prediction": prediction, "profile": profile},
                     {"jobs": []})


CENTRES = {SUBJECT: 0.5, "ae": 0.6, "pca": 0.4, "sae": 0.5}


@pytest.fixture
def three_runs(tmp_path):
    out = tmp_path / "results"
    for p in ("pruning", "transfer", "interpretability"):  # efficiency not run
        _write(out, p, _tidy(p, CENTRES))
    return out


def _pages(pdf: bytes) -> int:
    kids = len(re.findall(rb"/Type /Page[^s]", pdf))
    count = re.findall(rb"/Type /Pages .*?/Count (\d+)", pdf, flags=re.S)
    assert count and int(count[0]) == kids
    return kids


def _table(md: str, heading: str) -> list[list[str]]:
    """The rows (cells) of the first markdown table under ``## heading``."""
    section = md.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    table = section.split("| method |", 1)[1].split("\n\n", 1)[0]
    return [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:]]


def test_one_page_and_markdown(three_runs, tmp_path):
    reports = tmp_path / "reports"
    pdf, md_path = build_summary(three_runs, reports)
    assert pdf == reports / "summary.pdf" and md_path == three_runs / "SUMMARY.md"
    assert _pages(pdf.read_bytes()) == 1
    md = md_path.read_text()
    for p in ("pruning", "transfer", "efficiency", "interpretability"):
        view = VIEWS.get(p)()
        assert f"## {view.title}\n" in md
        assert f"> {view.statement}" in md
        if p == "efficiency":
            assert "Not run (`bench run prediction=efficiency`)" in md
            continue
        df, _, _ = read_run(three_runs / p / f"run-{p}")
        assert overall(view.verdict_tables(df)[0].frame) in md  # the counts line the detailed report prints
        assert f"Run `run-{p}`" in md and f"{reports / p}.pdf" in md
        assert "Quick profile (3 seeds): with 3 seeds few verdicts reach p_Holm < 0.05" in md
        rows = _table(md, view.title)
        assert rows[0][0] == f"**{SUBJECT}** (subject)"
        assert {r[0] for r in rows[1:]} == {"ae", "pca", "sae"} and all(r[2] == "3" for r in rows)
    assert not list(reports.glob(".*")) and not list(three_runs.glob(".*"))  # no temporary file left


def test_every_primary_group_is_shown(three_runs, tmp_path):
    """P4 has two primaries (MCC on ica, DCI on dsprites): a table each, with the joint verdict beside."""
    md = build_summary(three_runs, tmp_path / "reports")[1].read_text()
    view = VIEWS.get("interpretability")()
    section = md.split(f"## {view.title}\n", 1)[1].split("\n## ", 1)[0]
    assert section.count("| method |") == 2
    assert "setting = ica_linear" in section and "setting = dsprites_wide" in section
    assert "overall (both primaries)" in section


@pytest.mark.parametrize(("planted", "expected"), [(0.9, "supported"), (0.1, "contradicted")])
@pytest.mark.parametrize("prediction", ["pruning", "transfer", "efficiency", "interpretability"])
def test_planted_verdict(tmp_path, prediction, planted, expected):
    """The subject clearly better (worse) than ae in every one of 6 seeds in the predicted direction (P4: on
    both primaries): ae reads supported (contradicted), the baselines level with the subject inconclusive."""
    view = VIEWS.get(prediction)()
    higher = view.primary.direction == "higher"
    if prediction == "efficiency":  # rows hold d = Delta_B + delta per baseline: > 0 favours the subject
        centres = {"ae": planted - 0.5, "pca": 0.0, "sae": 0.001}
    else:
        ae = 1 - planted if higher else planted  # the subject sits at 0.5
        centres = {SUBJECT: 0.5, "ae": ae, "pca": 0.5, "sae": 0.5}
    out = tmp_path / "results"
    _write(out, prediction, _tidy(prediction, centres, seeds=6), profile="full")
    md = build_summary(out, tmp_path / "reports")[1].read_text()
    rows = {r[0]: r for r in _table(md, view.title)}
    assert rows["ae"][3] == expected and rows["ae"][2] == "6"
    assert rows["pca"][3] == rows["sae"][3] == "inconclusive"
    if prediction == "interpretability":  # planted on both primaries: the joint verdict agrees
        assert rows["ae"][4] == expected and rows["pca"][4] == "inconclusive"
    assert "Quick profile" not in md


def test_no_runs_gives_none(tmp_path):
    assert build_summary(tmp_path / "results", tmp_path / "reports") is None
    _write(tmp_path / "results", "probe", _tidy("pruning", CENTRES))  # a run of another prediction only
    assert build_summary(tmp_path / "results", tmp_path / "reports") is None
    assert not (tmp_path / "reports").exists() and not (tmp_path / "results" / "SUMMARY.md").exists()


def test_runs_without_baselines_or_primary_rows(tmp_path):
    """A subject-only run reads 'no baselines compared'; a run without the primary metric says so."""
    out = tmp_path / "results"
    _write(out, "transfer", _tidy("transfer", {SUBJECT: 0.5}))
    other = _tidy("pruning", CENTRES).assign(metric="probe_acc")
    _write(out, "pruning", other)
    pdf, md_path = build_summary(out, tmp_path / "reports")
    md = md_path.read_text()
    assert _pages(pdf.read_bytes()) == 1
    assert "**Overall:** no baselines compared." in md
    assert "Run `run-pruning`: no rows of the primary metric aurc_best." in md
