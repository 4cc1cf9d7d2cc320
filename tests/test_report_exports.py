"""Verdict tables exported beside the report PDF: ``verdicts.csv`` (raw numbers) and ``verdicts.tex``."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from bench.evaluate import verdicts
from bench.protocol import SUBJECT, VIEWS, Table
from bench.report.build import _fmt, build_report, tex_escape
from bench.results import tidy_frame, write_run

RUN_ID = "20250101-000000-ab_1"
SEEDS = list(range(100, 110))  # a confirm-profile run: the only one with verdicts
_JITTER = [0.004, -0.003, 0.001, 0.0, -0.002, 0.003, -0.004, 0.002, -0.001, 0.0]
# probe_acc per method and seed: pca clearly below the subject, sae level with it.
PROBE_ACC = {
    "infomax": [0.90 + 0.01 * (i % 3) for i in range(10)],
    "pca": [0.70 + 0.01 * (i % 3) + j for i, j in enumerate(_JITTER)],
    "sae": [0.90 + 0.01 * (i % 3) + (0.01 if i % 2 else -0.01) for i in range(10)],
}


def _tidy() -> pd.DataFrame:
    rows = []
    for method, accs in PROBE_ACC.items():
        for seed, acc in zip(SEEDS, accs, strict=True):
            values = {
                "probe_acc": acc,
                "knn_acc": acc - 0.05,
                "active_fraction": 0.4,
                "dead_fraction": 0.0,
                "n_params": 1040.0,
                "act_scale": 3.0 + seed,
                "chance": 0.1,
            }
            rows += [
                {
                    "run_id": RUN_ID,
                    "prediction": "probe",
                    "dataset": "digits",
                    "method": method,
                    "width": 16,
                    "seed": seed,
                    "metric": k,
                    "value": v,
                }
                for k, v in values.items()
            ]
    return tidy_frame(rows)


@pytest.fixture
def run_dir(tmp_path):
    config = {"prediction": "probe", "profile": "confirm", "batch_size": 256, "resolved": {"seeds": SEEDS}}
    return write_run(tmp_path / "results", "probe", RUN_ID, _tidy(), config, {"jobs": []})


def _tabular_rows(tex: str) -> list[list[str]]:
    """The body rows of every tabular in ``tex``, split into cells."""
    rows = []
    for body in re.findall(r"\\midrule\n(.*?)\\bottomrule", tex, flags=re.S):
        rows += [[c.strip() for c in line.removesuffix("\\\\").split(" & ")] for line in body.strip().splitlines()]
    return rows


@pytest.mark.slow
def test_verdicts_exported_beside_the_pdf(run_dir, tmp_path):
    reports = tmp_path / "reports"
    pdf = build_report(run_dir, reports)
    assert pdf == reports / "probe.pdf" and pdf.stat().st_size > 0
    expected = verdicts.verdict_from_tidy(_tidy(), "probe_acc", SUBJECT, "higher", by=("dataset",))

    got = pd.read_csv(reports / "probe" / "verdicts.csv")
    head = got[got["table"] == "headline"]
    got = got[got["table"] != "headline"]
    assert len(got) == len(expected) == 2  # one row per baseline of the one verdict table
    shown = [c for c in expected.columns if c not in ("diffs", "ci_method")]
    assert list(got.columns[: 3 + len(shown)]) == ["table", "role", "primary", *shown]
    assert {"family", "p_perm", "p_wy", "direction"} <= set(got.columns)
    assert got["table"].eq("Primary: probe_acc; predicted subject higher").all() and got["primary"].all()
    assert list(got["baseline"]) == list(expected["baseline"]) == ["pca", "sae"]
    for col in ("mean_diff", "p_holm", "ci_low", "ci_high", "p_t", "p_perm", "p_wy"):
        np.testing.assert_allclose(got[col].to_numpy(float), expected[col].to_numpy(float), rtol=1e-12)
    assert list(got["verdict"]) == list(expected["verdict"]) == ["supported", "inconclusive"]
    assert list(got["family"]) == ["PA", "PA"] and list(got["direction"])[0] == "as predicted"
    # the headline row: sae is level with the subject, so "beats every member" does not hold
    assert len(head) == 1 and head["headline"].iloc[0] == "inconclusive" and "sae" in head["reason"].iloc[0]

    tex = (reports / "probe" / "verdicts.tex").read_text()
    assert tex.startswith("% ") and RUN_ID in tex.splitlines()[0] and "\\usepackage{booktabs}" in tex.splitlines()[2]
    assert tex.splitlines()[1].startswith("% headline: inconclusive")
    assert tex.count("\\begin{table}") == tex.count("\\end{table}") == 1
    assert "\\begin{tabular}" in tex and "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
    assert "\\caption{Primary: probe\\_acc; predicted subject higher}" in tex
    assert "\\label{tab:probe-1}" in tex
    assert "95\\% CI" in tex and "d\\_z" in tex  # headers escaped too
    rows = _tabular_rows(tex)
    assert [r[1] for r in rows] == ["pca", "sae"] and all(r[0] == "digits" for r in rows)
    pca = expected.iloc[0]
    assert f"[{_fmt(pca['ci_low'])}, {_fmt(pca['ci_high'])}]" in rows[0]  # the CI as one cell, as in the PDF
    assert _fmt(pca["p_holm"]) in rows[0] and rows[0][-1] == "supported"

    assert not [p for p in reports.rglob("*") if ".tmp" in p.name or p.name.startswith(".")]


@pytest.mark.slow
def test_several_verdict_tables_and_special_characters(run_dir, tmp_path, monkeypatch):
    cls = VIEWS.get("probe")
    base_tables = cls.tables

    def tables(self, df):
        primary = base_tables(self, df)
        second = primary[0].frame.copy()
        second.insert(second.columns.get_loc("baseline") + 1, "acc(0)", 0.5)
        second["reason"] = "seed #2 failed: 100% of a_b & {x} ~ ^ $ \\"
        return [*primary, Table("Secondary: knn_acc & 50%", second, verdict=True, role="secondary")]

    monkeypatch.setattr(cls, "tables", tables)
    reports = tmp_path / "reports"
    build_report(run_dir, reports)
    got = pd.read_csv(reports / "probe" / "verdicts.csv")
    got = got[got["table"] != "headline"]
    assert len(got) == 4
    assert list(got["primary"]) == [True, True, False, False]
    assert got["acc(0)"].isna().sum() == 2 and (got["acc(0)"].dropna() == 0.5).all()
    assert got["table"].iloc[-1] == "Secondary: knn_acc & 50%"

    tex = (reports / "probe" / "verdicts.tex").read_text()
    assert tex.count("\\begin{table}") == 2 and "\\label{tab:probe-1}" in tex and "\\label{tab:probe-2}" in tex
    assert "\\caption{Secondary: knn\\_acc \\& 50\\%}" in tex
    assert (
        "seed \\#2 failed: 100\\% of a\\_b \\& \\{x\\} \\textasciitilde{} \\textasciicircum{} \\$ \\textbackslash{}"
    ) in tex
    rows = _tabular_rows(tex)
    assert len(rows) == 4
    header_cells = len(re.search(r"\\toprule\n(.*?)\\\\", tex).group(1).split(" & "))
    assert len(rows[0]) == header_cells  # no unescaped & splitting a cell


def test_no_verdict_tables_no_exports(run_dir, tmp_path, monkeypatch):
    cls = VIEWS.get("probe")
    monkeypatch.setattr(cls, "tables", lambda self, df: [Table("Means", pd.DataFrame({"a": [1.0]}))])
    reports = tmp_path / "reports"
    assert build_report(run_dir, reports).exists()
    assert not (reports / "probe" / "verdicts.csv").exists() and not (reports / "probe" / "verdicts.tex").exists()


def test_tex_escape():
    assert tex_escape("a_b%c&d#e$f{g}h~i^j\\k") == (
        "a\\_b\\%c\\&d\\#e\\$f\\{g\\}h\\textasciitilde{}i\\textasciicircum{}j\\textbackslash{}k"
    )


def test_exploratory_exports_have_no_p_value_or_verdict(run_dir, tmp_path):
    import json

    cfg = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**cfg, "profile": "quick"}))
    reports = tmp_path / "reports"
    build_report(run_dir, reports)
    got = pd.read_csv(reports / "probe" / "verdicts.csv")
    assert not [c for c in got.columns if c.startswith("p_") or c == "verdict"]
    assert {"n", "mean_diff", "ci_low", "ci_high", "effect_size", "direction", "family"} <= set(got.columns)
    assert got["headline"].dropna().tolist() == ["exploratory"]
    tex = (reports / "probe" / "verdicts.tex").read_text()
    assert "exploratory (profile quick): no verdicts" in tex and "supported" not in tex and "p (" not in tex
