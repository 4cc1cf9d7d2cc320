"""The command line as a user meets it: bad input, a real run, cache reuse, report regeneration."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bench.cli import main

BAD_INPUTS = {
    "unknown key": ["prediction=probe", "colour=red"],
    "unknown prediction": ["prediction=nope"],
    "missing prediction": ["dataset=digits"],
    "unknown method": ["prediction=probe", "methods=[infomax,nope]"],
    "unknown dataset": ["prediction=probe", "dataset=imagenet"],
    "wrong type": ["prediction=probe", "width=wide"],
    "wrong type in method key": ["prediction=probe", "infomax.lambda_tc=lots"],
    "unknown method key": ["prediction=probe", "infomax.temperature=0.5"],
    "unknown section": ["prediction=probe", "foo.bar=1"],
    "out of range width": ["prediction=probe", "width=0"],
    "out of range seeds": ["prediction=probe", "seeds=0"],
    "out of range lr": ["prediction=probe", "sae.lr=-1"],
    "bad choice": ["prediction=probe", "infomax.tc=banana"],
    "bad profile": ["prediction=probe", "profile=huge"],
    "malformed list": ["prediction=probe", "methods=[infomax,sae"],
    "empty list item": ["prediction=probe", "seeds=[0,,2]"],
    "duplicate seeds": ["prediction=probe", "seeds=[1,1]"],
    "not key=value": ["prediction=probe", "digits"],
    "given twice": ["prediction=probe", "width=8", "width=16"],
    "no labels for probe": ["prediction=probe", "dataset=ica"],
    "absent torchvision data": ["prediction=probe", "dataset=mnist", "data.root=/nonexistent"],
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(case, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["run", *BAD_INPUTS[case], f"out={out}", f"reports={tmp_path / 'rep'}", "epochs=1"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("bench: error:") and len(err.splitlines()) == 1, err
    assert not out.exists() and not (tmp_path / "rep").exists()


def test_bad_input_names_the_choices(capsys, tmp_path):
    main(["run", "prediction=probe", "methods=[nope]", f"out={tmp_path}/o"])
    err = capsys.readouterr().err
    assert "nope" in err and "infomax" in err and "sae" in err


def test_list_with_wildcards(capsys):
    assert main(["list", "methods", "infomax*"]) == 0
    out = capsys.readouterr().out
    assert "infomax_noem" in out and "lse_only" not in out and "cite:" in out
    assert main(["list", "shapes"]) == 2


@pytest.fixture(scope="module")
def probe_run(tmp_path_factory):
    """One real run through the installed console script, as a user would type it."""
    tmp = tmp_path_factory.mktemp("run")
    exe = shutil.which("bench") or f"{sys.executable} -m bench"
    cmd = [
        *exe.split(),
        "run",
        "prediction=probe",
        "dataset=digits",
        "methods=[infomax,sae,pca,random]",
        "seeds=2",
        "epochs=3",
        "width=16",
        f"out={tmp / 'results'}",
        f"reports={tmp / 'reports'}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # tiny models: one thread, as in the other tests
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr
    return tmp, proc


@pytest.mark.slow
def test_run_writes_table_manifest_and_report(probe_run):
    tmp, proc = probe_run
    pred_dir = tmp / "results" / "probe"
    run_id = (pred_dir / "latest").read_text().strip()
    run = pred_dir / run_id
    df = pd.read_parquet(run / "results.parquet")
    assert list(df.columns[:8]) == ["run_id", "prediction", "dataset", "method", "width", "seed", "metric", "value"]
    assert {"n_params_encoder", "n_params_train", "train_seconds"} <= set(df.columns)
    assert set(df["method"]) == {"infomax", "sae", "pca", "random"} and set(df["seed"]) == {0, 1}
    assert pd.read_csv(run / "results.csv").shape == df.shape
    acc = df[(df.metric == "probe_acc")]
    assert acc["value"].between(0, 1).all() and len(acc) == 8
    man = json.loads((run / "manifest.json").read_text())
    assert {"git_commit", "libraries", "device", "command", "started", "finished", "jobs"} <= set(man)
    assert len(man["jobs"]) == 8 and not any(j["cached"] for j in man["jobs"])
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["resolved"]["seeds"] == [0, 1]
    assert (tmp / "reports" / "probe.pdf").stat().st_size > 10_000
    assert (tmp / "reports" / "probe" / "probe_accuracy.png").exists()
    # a quick run is exploratory: its printed tables say so and hold no verdict and no p-value
    assert "exploratory (profile quick): no verdicts" in proc.stdout and "direction" in proc.stdout
    assert not any(w in proc.stdout for w in ("supported", "contradicted", "inconclusive", "p (Holm)", "p (t)"))


@pytest.mark.slow
def test_rerun_hits_the_cache_and_report_regenerates(probe_run, capsys):
    tmp, _ = probe_run
    args = [
        "run",
        "prediction=probe",
        "dataset=digits",
        "methods=[infomax,sae]",
        "seeds=2",
        "epochs=3",
        "width=16",
        f"out={tmp / 'results'}",
        f"reports={tmp / 'reports'}",
    ]
    assert main(args) == 0
    run = tmp / "results" / "probe" / (tmp / "results" / "probe" / "latest").read_text().strip()
    man = json.loads((run / "manifest.json").read_text())
    assert man["jobs"] and all(j["cached"] for j in man["jobs"])
    pdf = tmp / "reports" / "probe.pdf"
    pdf.unlink()
    assert main(["report", str(run), f"reports={tmp / 'reports'}"]) == 0
    assert pdf.exists()
    assert main(["report", f"out={tmp / 'results'}", f"reports={tmp / 'reports2'}"]) == 0
    assert (tmp / "reports2" / "probe.pdf").exists()
    assert main(["report", str(tmp / "nothing-here")]) == 2
    capsys.readouterr()


def test_module_entry_point_help():
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parent.parent,
    )
    assert proc.returncode == 0 and "bench run prediction=" in proc.stdout
