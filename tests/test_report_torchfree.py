"""``bench report`` reads tidy tables only: building a report, the summary, and what a report worker
process runs never import torch (nor a protocol, a method or a baseline). Checked in a fresh
interpreter, since the test session itself has torch loaded (conftest)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.results import tidy_frame, write_run

ROOT = Path(__file__).resolve().parent.parent
SEEDS = (0, 1, 2)
REFIT = {"probe_mode": "refit"}


def _pruning_run(out: Path) -> Path:
    """A small pruning run as the protocol writes it (its primary, a secondary, acc(0) and an
    exploratory profile), without training anything."""
    rows = []
    for i, (m, acc, aurc) in enumerate((("infomax", 0.95, 0.20), ("pca", 0.93, 0.26), ("ae", 0.94, 0.22))):
        for s in SEEDS:
            base = {
                "run_id": "20250101-000000-torf",
                "prediction": "pruning",
                "dataset": "digits",
                "method": m,
                "width": 16,
                "seed": s,
            }
            jitter = 0.01 * ((3 * s + i) % 5)
            rows += [
                {**base, "metric": "probe_acc", "value": acc + jitter},
                {**base, "metric": "aurc_best", "value": aurc + jitter, "criterion": "variance", **REFIT},
                {**base, "metric": "aurc", "value": aurc + 0.02 + jitter, "criterion": "rank", **REFIT},
                {**base, "metric": "pairwise_mi", "value": 0.1 + jitter},
            ]
    config = {"prediction": "pruning", "profile": "quick", "batch_size": 256, "resolved": {"seeds": list(SEEDS)}}
    return write_run(out, "pruning", "20250101-000000-torf", tidy_frame(rows), config, {"jobs": []})


def _fresh(code: str) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _check(code: str) -> str:
    return (
        "import json, sys\n" + code + "\nprint(json.dumps({'torch': 'torch' in sys.modules, "
        "'protocols': sorted(m for m in sys.modules if m.startswith('predictions.') and m.endswith('.protocol')), "
        "'heavy': sorted(m for m in ('bench.config', 'bench.data', 'bench.train', 'bench.engine', 'baselines', "
        "'sklearn') if m in sys.modules)}))"
    )


def test_bench_report_never_imports_torch(tmp_path):
    run = _pruning_run(tmp_path / "results")
    reports = tmp_path / "reports"
    got = _fresh(
        _check(
            f"from bench.cli import main\n"
            f"assert main(['report', {str(run)!r}, 'out={tmp_path / 'results'}', "
            f"'reports={reports}', 'workers=1']) == 0"
        )
    )
    assert got == {"torch": False, "protocols": [], "heavy": []}
    assert (reports / "pruning.pdf").exists() and (reports / "summary.pdf").exists()


def test_a_report_worker_never_imports_torch(tmp_path):
    """What a spawned ``bench report`` worker runs (``workers`` > 1): the report and the summary tasks."""
    run = _pruning_run(tmp_path / "results")
    for kind, target in (("report", str(run)), ("summary", str(tmp_path / "results"))):
        got = _fresh(
            _check(
                f"from bench.cli import _report_task\n_report_task({kind!r}, {target!r}, {str(tmp_path / 'reports')!r})"
            )
        )
        assert got == {"torch": False, "protocols": [], "heavy": []}, kind


def test_loading_every_view_imports_no_torch():
    got = _fresh(_check("from bench.protocol import in_all\nin_all()"))
    assert got == {"torch": False, "protocols": [], "heavy": []}
