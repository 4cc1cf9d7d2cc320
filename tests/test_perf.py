"""bench perf: every required line from a tiny run, and one-line errors for bad keys."""

from __future__ import annotations

import pytest

from bench.config import ConfigError
from bench.engine import perf


@pytest.mark.slow
def test_perf_prints_every_line(capsys, monkeypatch):
    monkeypatch.setattr(perf, "PEAK_N", 256)  # the peak's matmul size does not matter here
    monkeypatch.setattr(perf, "PROFILE_BELOW", 2.0)  # always print the profile
    assert perf.cmd_perf(["steps=2", "device=cpu"]) == 0
    out = capsys.readouterr().out
    assert "device cpu (" in out and "threads 1" in out
    assert "trainer throughput (samples/s)" in out and "trainer/plain" in out
    for name in perf.METHODS_TIMED:
        for bs in perf.BATCHES:
            assert any(line.split()[:2] == [name, str(bs)] and line.endswith("x") for line in out.splitlines()), (
                name,
                bs,
            )
    assert "infomax step FLOP/s" in out and "peak" in out and "roofline" in out
    assert "profile: infomax batch 1024" in out and "ms/step" in out
    assert "probe fit:" in out and "end to end: skipped" in out
    assert "batched seeds: seedbatch.train_group vs sequential trainer.fit_encoder" in out
    for name in ("infomax", "ae", "simclr"):  # timed at S = 3 and 10, or one line saying why not
        timed = all(
            any(line.split()[:2] == [name, str(s)] and line.endswith("x") for line in out.splitlines()) for s in (3, 10)
        )
        assert timed or any(line.split()[:3] == [name, "-", "-"] and "skipped:" in line for line in out.splitlines()), (
            name
        )


def test_step_flops_is_the_analytic_count():
    import torch

    from bench.train.methods import DataInfo

    b, d, k = 128, 784, perf.WIDTH
    assert perf.step_flops(DataInfo(d, 10, (1, 28, 28)), torch.rand(b, d), b) == 4 * b * d * k + 6 * b * k * k


@pytest.mark.parametrize("arg", ["bogus=1", "steps=0", "steps=x", "device=tpu", "e2e=maybe", "steps"])
def test_bad_args_raise_one_line_config_error(arg):
    with pytest.raises(ConfigError) as e:
        perf.parse_args([arg])
    assert "\n" not in str(e.value)


def test_unknown_key_in_cmd_perf():
    with pytest.raises(ConfigError, match="unknown key 'bogus'"):
        perf.cmd_perf(["bogus=1"])


def test_e2e_runs_bench_run_into_a_temporary_out_and_cache(monkeypatch):
    seen = {}

    class Done:
        returncode = 0

    def fake_run(cmd, **kw):
        seen["cmd"] = cmd
        return Done()

    monkeypatch.setattr(perf.subprocess, "run", fake_run)
    seconds, rc = perf.e2e_seconds(list(perf.E2E_ARGS), "cpu")
    cmd = seen["cmd"]
    assert rc == 0 and seconds >= 0
    assert cmd[1:4] == ["-m", "bench", "run"] and "prediction=all" in cmd and "device=cpu" in cmd
    for key in ("out=", "reports=", "cache="):
        assert any(a.startswith(key) and "bench-perf-" in a for a in cmd), key


@pytest.mark.slow
def test_e2e_line(capsys, monkeypatch):
    monkeypatch.setattr(perf, "PEAK_N", 256)
    monkeypatch.setattr(perf, "METHODS_TIMED", ("infomax",))
    monkeypatch.setattr(perf, "e2e_seconds", lambda args, device: (12.5, 0))
    assert perf.cmd_perf(["steps=1", "e2e=true"]) == 0
    assert (
        "end to end: 12.5 s (bench run prediction=all profile=quick, fresh cache, exit code 0)"
        in capsys.readouterr().out
    )


@pytest.mark.slow
def test_table_mode_stores_the_table_bench_plan_then_reads(tmp_path, monkeypatch, capsys):
    import torch

    from bench.arguments import configs
    from bench.engine import costs, perf_table, plan
    from bench.engine.jobs import JobCache

    cpu = torch.device("cpu")
    cfg = configs(["prediction=probe", "dataset=digits", "methods=[infomax,pca]", "seeds=1", "epochs=2"])["probe"]
    specs = plan.enumerate_prediction(cfg, cpu, JobCache(tmp_path / "c", cpu)).specs
    monkeypatch.setattr(
        perf_table, "confirm_cells", lambda cache_dir, device: {(s.method, s.dataset): s for s in specs}
    )
    assert perf.cmd_perf(["table=true", f"cache={tmp_path}", "steps=2", "device=cpu"]) == 0
    assert "cost table: 2 training cells" in capsys.readouterr().out
    stored = costs.stored_path(tmp_path, "cpu", costs.device_name(cpu))
    got = costs.load_table(tmp_path, cpu)
    assert got.source == str(stored) and set(got.train) == {"infomax|digits", "pca|digits"}
    assert all(v["epoch_seconds"] > 0 and v["n_train"] > 0 for v in got.train.values())


def test_harvest_reads_seconds_per_epoch_and_measurements(tmp_path, digits):
    import dataclasses
    import json

    from bench.data import DataConfig
    from bench.engine.measure import MeasureCache, Measured
    from bench.engine.perf_table import harvest

    data_cfg = dataclasses.asdict(DataConfig())
    for name, group in (("a", None), ("b", 3)):  # a batched entry is not a sequential cost: left out
        (tmp_path / name).mkdir()
        meta = {
            "spec": {"method": "infomax", "dataset": "digits", "data_cfg": data_cfg, "epochs": 4},
            "status": "ok",
            "train_seconds": 2.0 if group is None else 0.1,
            "convergence": {"seconds": 0.4},
            "seed_group": group,
        }
        (tmp_path / name / "meta.json").write_text(json.dumps(meta))
    rows = [{"dataset": "digits", "method": "pca", "metric": "aurc", "value": 0.5}]
    MeasureCache(tmp_path).store("pca-measure_encoder-0123456789abcdef", Measured(rows, [], 3.0))
    t = harvest([tmp_path])
    assert t.train == {"infomax|digits": {"epoch_seconds": pytest.approx(0.6), "n_train": digits.train.x.shape[0]}}
    assert t.measure == {"pruning.measure_encoder|pca|digits": 3.0}


def test_batched_seed_lines_time_train_group_against_fit_encoder(monkeypatch, digits):
    from types import SimpleNamespace

    from bench.engine import plan
    from bench.engine.perf_table import batch_lines
    from bench.train.trainer import fit_encoder

    calls = []

    def train_group(method, cfg, datasets, width, seeds, *, epochs, batch_size, device, on_epoch=None, track=True):
        calls.append((method, len(datasets), list(seeds)))
        return [
            fit_encoder(method, cfg, ds, width, s, epochs=epochs, batch_size=batch_size, device=device, track=track)
            for ds, s in zip(datasets, seeds, strict=True)
        ]

    monkeypatch.setattr(
        plan, "seedbatch", SimpleNamespace(batchable=lambda m, d=None: m == "infomax", train_group=train_group)
    )
    lines = batch_lines(digits, __import__("torch").device("cpu"), methods=("infomax", "simclr"))
    rows = [line.split() for line in lines[1:]]
    assert [r[:2] for r in rows] == [["method", "S"], ["infomax", "3"], ["infomax", "10"], ["simclr", "-"]]
    assert rows[1][-1].endswith("x") and " ".join(rows[3][3:]).startswith("skipped: simclr is not batchable on digits")
    assert ("infomax", 3, [0, 1, 2]) in calls and ("infomax", 10, list(range(10))) in calls
