"""``bench report`` with worker processes gives what the serial path gives: the same printed lines in
the same order, the same verdict tables, figures and summary, and the same one-line error."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.cli import main
from bench.results import tidy_frame, write_run

SEEDS = (0, 1, 2)


def _run(out, prediction: str, run_id: str, metric: str, centres: dict[str, float], where: dict):
    rows = [
        {
            "run_id": run_id,
            "prediction": prediction,
            "dataset": "digits",
            "method": m,
            "width": 16,
            "seed": s,
            "metric": metric,
            "value": c + 0.01 * ((3 * s + i) % 5),
            **where,
        }
        for i, (m, c) in enumerate(centres.items())
        for s in SEEDS
    ]
    rows += [
        {
            "run_id": run_id,
            "prediction": prediction,
            "dataset": "digits",
            "method": m,
            "width": 16,
            "seed": s,
            "metric": "chance",
            "value": 0.1,
        }
        for m in centres
        for s in SEEDS
    ]
    config = {"prediction": prediction, "profile": "quick", "batch_size": 256, "resolved": {"seeds": list(SEEDS)}}
    return write_run(out, prediction, run_id, tidy_frame(rows), config, {"jobs": []})


@pytest.fixture
def out(tmp_path):
    out = tmp_path / "results"
    _run(out, "probe", "20250101-000000-aaaa", "probe_acc", {"infomax": 0.9, "pca": 0.7, "sae": 0.91}, {})
    _run(
        out,
        "transfer",
        "20250101-000000-bbbb",
        "kappa_transfer_mean",
        {"infomax": 0.5, "pca": 0.3, "sae": 0.52, "raw": 0.2},
        {"pair": "primary", "budget": "1,5,10", "l2_mode": "val", "scaling": "scalar"},
    )
    return out


def _report(out, reports, workers: str, capsys) -> tuple[int, list[str], str]:
    code = main(["report", f"out={out}", f"reports={reports}", f"workers={workers}"])
    captured = capsys.readouterr()
    lines = [line.replace(str(reports), "REPORTS") for line in captured.out.splitlines()]
    return code, lines, (out / "SUMMARY.md").read_text().replace(str(reports), "REPORTS")


@pytest.mark.slow
def test_parallel_report_matches_serial(out, tmp_path, capsys):
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    code_s, lines_s, md_s = _report(out, serial, "1", capsys)
    code_p, lines_p, md_p = _report(out, parallel, "2", capsys)
    assert code_s == code_p == 0
    assert lines_p == lines_s and any("summary:" in line for line in lines_s)
    assert md_p == md_s
    for name in ("probe", "transfer"):
        for f in ("verdicts.csv", "verdicts.tex"):
            assert (parallel / name / f).read_text() == (serial / name / f).read_text()
        pd.testing.assert_frame_equal(
            pd.read_csv(parallel / name / "verdicts.csv"), pd.read_csv(serial / name / "verdicts.csv")
        )
        assert (
            sorted(p.name for p in (parallel / name).glob("*.png"))
            == sorted(p.name for p in (serial / name).glob("*.png"))
            != []
        )
    assert (
        sorted(p.name for p in parallel.glob("*.pdf"))
        == sorted(p.name for p in serial.glob("*.pdf"))
        == ["probe.pdf", "summary.pdf", "transfer.pdf"]
    )


@pytest.mark.slow
def test_parallel_bad_prediction_fails_like_serial(tmp_path, capsys):
    run = _run(tmp_path / "results", "nosuch", "20250101-000000-cccc", "probe_acc", {"infomax": 0.9, "pca": 0.7}, {})
    got = []
    for workers in ("1", "2"):
        code = main(["report", str(run), f"reports={tmp_path / 'rep'}", f"workers={workers}"])
        got.append((code, capsys.readouterr().err.strip()))
    assert got[0] == got[1]
    assert got[0][0] == 2 and got[0][1].startswith("bench: error: unknown view 'nosuch'")


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_bad_workers_value(value, out, tmp_path, capsys):
    assert main(["report", f"out={out}", f"reports={tmp_path / 'rep'}", f"workers={value}"]) == 2
    assert "workers" in capsys.readouterr().err
