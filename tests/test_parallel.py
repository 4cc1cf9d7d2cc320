"""Jobs in a pool, on a Dask cluster and through submitit give the tables one process gives.

Each engine trains the same small sweep into its own fresh cache; the tidy tables must hold
bit-identical values (timings aside), and every job must have been trained by a worker.
"""

from __future__ import annotations

import json
import os

import pytest

from bench import results
from bench.cli import main

SWEEP = ["prediction=probe", "dataset=digits", "methods=[infomax,ae]", "seeds=[0,1]", "epochs=3"]


def run(tmp_path, name: str, *extra: str):
    out = tmp_path / name
    code = main(["run", *SWEEP, f"out={out}", f"reports={out / 'reports'}", *extra])
    assert code == 0
    run_dir = results.latest_run(out, "probe")
    df, config, man = results.read_run(run_dir)
    return df, config, man, out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return run(tmp_path_factory.mktemp("ref"), "w1", "workers=1")


@pytest.mark.slow
def test_workers_1_and_2_give_identical_tables(reference, tmp_path):
    df1, _, man1, _ = reference
    df2, config, man2, out = run(tmp_path, "w2", "workers=2")
    same, why = results.same_values(df1, df2)
    assert same, why
    assert config["resolved"]["workers"] == 2
    workers = {j["worker"] for j in man2["jobs"]}
    assert all(j["cached"] is False for j in man2["jobs"]) and len(man2["jobs"]) == 4
    assert str(os.getpid()) not in {w.split(":")[1] for w in workers}  # trained in the pool, not here
    assert man2["timing"]["workers"] == 2 and "2 local worker processes" in man2["timing"]["where"]
    # a warm rerun starts no pool: every job is a cache hit, loaded here
    df3, _, man3, _ = run(tmp_path, "w2", "workers=2")
    assert all(j["cached"] for j in man3["jobs"]) and results.same_values(df1, df3)[0]


@pytest.mark.slow
def test_dask_local_cluster_matches_workers_1(reference, tmp_path):
    pytest.importorskip("distributed")
    df1, *_ = reference
    df, config, man, _ = run(tmp_path, "dask", "executor=dask", "workers=2")
    same, why = results.same_values(df1, df)
    assert same, why
    assert config["executor"]["kind"] == "dask"
    assert "dask" in man["timing"]["where"] and all(not j["cached"] for j in man["jobs"])


@pytest.mark.slow
def test_slurm_through_submitit_local_executor(reference, tmp_path):
    pytest.importorskip("submitit")
    df1, *_ = reference
    df, config, man, out = run(
        tmp_path, "slurm", "executor=slurm", "executor.cluster=local", "executor.time_min=5", "executor.partition=debug"
    )
    same, why = results.same_values(df1, df)
    assert same, why
    logs = list((out / "slurm").glob("*_log.out"))
    assert len(logs) == 2  # one submitit job per cell: each method's two seeds train together
    assert config["executor"]["partition"] == "debug"


def test_executor_options_are_checked(tmp_path, capsys):
    for bad, needle in [
        ("executor=mpi", "executor: unknown 'mpi'"),
        ("executor.address=localhost:1", "tcp://"),
        ("workers=0", "workers:"),
        ("workers=many", "workers:"),
        ("executor.nodes=2", "executor keys"),
    ]:
        assert main(["run", *SWEEP, bad, f"out={tmp_path / 'o'}"]) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and "\n" not in err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow  # reads the module fixture's whole run
def test_manifest_records_the_command_and_the_pool(reference):
    _, config, man, _ = reference
    assert man["rerun"]["argv"][:3] == ["bench", "run", "prediction=probe"]
    assert config["resolved"]["seeds"] == [0, 1] and config["workers"] == 1
    assert json.dumps(man)  # serialisable as written
