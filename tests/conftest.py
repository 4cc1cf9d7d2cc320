import os

import pytest
import torch

from bench.catalog import load_all

load_all()
# The tests' models are tiny: one thread avoids OpenMP start-up and barrier costs that
# dominate such ops (and explode when the two cores are shared with another process).
torch.set_num_threads(1)
# Exploratory reports print the published confirm run's headline (bench.report.publish): the tests' own
# reports must not depend on what is published in this checkout, so they look nowhere unless a test says.
os.environ["BENCH_PUBLISHED"] = ""


@pytest.fixture(scope="session")
def digits():
    from bench.data import load_dataset

    return load_dataset("digits")


@pytest.fixture
def small_question(tmp_path, capsys):
    """``small_question(NAME, *key_values)`` runs ``bench run question=NAME`` (one worker, in ``tmp_path``) and
    returns ``(the printed answer line, the run's tidy table)``, after checking that ``reports/questions.pdf``
    was made."""
    import pandas as pd

    from bench.cli import main

    def run(name: str, *args: str):
        where = [f"out={tmp_path / 'results'}", f"reports={tmp_path / 'reports'}", f"cache={tmp_path / 'cache'}"]
        assert main(["run", f"question={name}", *args, "workers=1", *where]) == 0
        (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("answer: ")]
        assert (tmp_path / "reports" / "questions.pdf").stat().st_size > 10_000
        (run_dir,) = [p for p in (tmp_path / "results" / name).iterdir() if p.is_dir()]
        return line, pd.read_parquet(run_dir / "results.parquet")

    return run
