"""bench plan: the dry run lists what a real run trains and measures, and prices it."""

from __future__ import annotations

import pytest

from bench import results
from bench.arguments import configs
from bench.cli import main
from bench.engine import costs, plan
from bench.engine.costs import CostTable


def _args(tmp_path, *extra: str) -> list[str]:
    return [
        "prediction=probe",
        "dataset=digits",
        "seeds=2",
        "epochs=1",
        "methods=[infomax,pca,ae]",
        "workers=1",
        f"cache={tmp_path}/cache",
        f"out={tmp_path}/out",
        f"reports={tmp_path}/rep",
        *extra,
    ]


@pytest.mark.slow
def test_plan_counts_equal_the_real_run_and_all_are_cached_after(tmp_path, capsys):
    args = _args(tmp_path)
    before = plan.make_plan(configs(args))
    assert len(before.specs) == 6 and len(before.tasks) == 6
    assert not any(before.job_cached.values()) and not any(before.task_cached.values())
    # a batchable method's 2 seeds (bench.train.seedbatch, where it is in the build) are one training task
    assert len(before.work) == sum(1 if plan.batchable(m, 64) else 2 for m in ("infomax", "pca", "ae"))
    assert before.wall_seconds > 0

    assert main(["run", *args]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("estimate: training") and "wall" in out[0]
    assert any(line.startswith("estimate vs actual: training") for line in out)
    assert any(line.startswith("wall: estimated") and "actual" in line for line in out)

    man = results.read_run(results.latest_run(tmp_path / "out", "probe"))[2]
    assert {j["key"] for j in man["jobs"]} == {s.key for s in before.specs}
    assert len(list((tmp_path / "cache" / "measures").glob("*.npz"))) == len(before.tasks)

    after = plan.make_plan(configs(args))
    assert [s.key for s in after.specs] == [s.key for s in before.specs]
    assert all(after.job_cached.values()) and all(after.task_cached.values())
    assert after.work == [] and after.wall_seconds == 0 and after.train_seconds == 0

    assert main(["plan", *args]) == 0
    printed = capsys.readouterr().out
    total = next(line for line in printed.splitlines() if line.startswith("total")).split()
    assert total[1:5] == ["6", "0", "6", "0"]  # jobs cached, missing, measurements cached, missing


def _table(speedup3: float = 1.5) -> CostTable:
    return CostTable(
        train={
            "infomax|digits": {"epoch_seconds": 2.0, "n_train": 1258},  # digits' training split
            "pca|digits": {"epoch_seconds": 0.5, "n_train": 1258},
        },
        batch={"infomax": {"3": speedup3, "10": 2.0}},
        measure={"probe.measure_encoder|infomax|digits": 1.0},
        source="test",
    )


def test_batched_seeds_make_fewer_and_cheaper_tasks_when_batching_pays(tmp_path, monkeypatch):
    monkeypatch.setattr(costs, "load_table", lambda cache_dir, device: _table())
    monkeypatch.setattr(plan, "batchable", lambda m, d=None: m == "infomax")
    base = [
        "prediction=probe",
        "dataset=digits",
        "seeds=3",
        "epochs=4",
        "methods=[infomax,pca]",
        "workers=2",
        f"cache={tmp_path}/cache",
    ]
    on = plan.make_plan(configs([*base, "batch_seeds=true"]))
    off = plan.make_plan(configs([*base, "batch_seeds=false"]))
    trains = lambda p: [w for w in p.work if w.train]  # noqa: E731
    assert len(trains(off)) == 6 and len(trains(on)) == 4  # infomax's 3 seeds: one task
    assert off.train_seconds == pytest.approx(3 * 4 * 2.0 + 3 * 4 * 0.5)
    assert on.train_seconds == pytest.approx(3 * 4 * 2.0 / 1.5 + 3 * 4 * 0.5)
    assert on.train_seconds < off.train_seconds
    # a measurement runs after its job, in the same task: 3 infomax measurements of 1 s in the group
    group = next(w for w in on.work if len(w.specs) == 3)
    assert group.measure == pytest.approx(3.0)
    assert on.measure_seconds == off.measure_seconds  # pca's: the measurement's median (1 s)
    assert on.per_prediction()["probe"][0] == pytest.approx(on.train_seconds)


def test_an_epoch_of_a_subset_costs_in_proportion_to_its_samples():
    t = _table()
    assert t.epoch_seconds("infomax", "digits", 1258) == (2.0, "table")
    assert t.epoch_seconds("infomax", "digits", 629) == (1.0, "table")  # data.pretrain_n = half the split
    assert t.epoch_seconds("infomax", "digits") == (2.0, "table")  # no size known: the entry as measured
    assert plan.size_key("digits", None) == "digits"


def test_greedy_wall_is_longest_first_not_optimal():
    assert plan.greedy_wall([2, 3, 2, 3, 2], 2) == 7  # 3|3, 2->5|3, 2->5|5, 2->7|5 (the optimum is 6)
    assert plan.greedy_wall([5, 4, 3, 3, 2, 1], 2) == 9
    assert plan.greedy_wall([5, 4, 3], 1) == 12
    assert plan.greedy_wall([5, 4, 3], 8) == 5
    assert plan.greedy_wall([], 2) == 0


def test_cost_table_lookups_and_fallbacks():
    t = _table()
    assert t.epoch_seconds("infomax", "digits") == (2.0, "table")
    assert t.epoch_seconds("infomax", "digits[0-4]", 629) == (pytest.approx(1.0), "scaled")  # same base, half the data
    assert t.epoch_seconds("infomax", "mnist5k", 3000)[1] == "method"
    per_sample = (2.0 + 0.5) / 2 / 1258  # the median per-sample cost of the two entries
    assert t.epoch_seconds("vae", "mnist5k", 1000) == (pytest.approx(per_sample * 1000), "default")
    assert t.speedup("infomax", "digits", 1) == 1.0
    assert t.speedup("infomax", "digits", 2) == pytest.approx(1.25)  # between (1, 1) and (3, 1.5)
    assert t.speedup("infomax", "digits", 3) == pytest.approx(1.5)
    assert t.speedup("infomax", "digits", 10) == pytest.approx(2.0)
    assert t.speedup("infomax", "digits", 40) == pytest.approx(2.0)  # flat beyond 10
    assert t.speedup("ae", "digits", 10) == 1.0  # nothing measured: no gain assumed
    assert t.measure_seconds("probe.measure_encoder", "pca", "digits") == (1.0, "median")
    assert t.measure_seconds("pruning.measure_encoder", "pca", "digits") == (costs.MEASURE_DEFAULT, "default")


def test_the_default_table_ships_and_a_stored_table_wins(tmp_path):
    import torch

    from bench.engine.costs import device_name

    cpu = torch.device("cpu")
    default = costs.load_table(tmp_path, cpu)
    assert default.source.endswith("costs_default.json") and default.train and default.measure
    stored = _table()
    stored.save(costs.stored_path(tmp_path, "cpu", device_name(cpu)))
    got = costs.load_table(tmp_path, cpu)
    assert got.train == stored.train  # its own training cells only
    assert got.measure["probe.measure_encoder|infomax|digits"] == 1.0  # its own first
    assert set(default.measure) <= set(got.measure)  # the default's where it has none


@pytest.mark.parametrize(
    "bad", [["prediction=probe", "bogus=1"], ["dataset=digits"], ["prediction=nope"], ["prediction=probe", "workers=0"]]
)
def test_bad_input_exits_2_with_one_line(bad, tmp_path, capsys):
    assert main(["plan", *bad, f"cache={tmp_path}/cache"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("bench: error:") and len(err.splitlines()) == 1, err
    assert captured.out == ""


def test_batchable_asks_seedbatch_with_the_data_input_dim():
    assert plan.batchable("ae", 64) and not plan.batchable("ae", 784)  # ae.batch_max_dim
    assert plan.batchable("infomax", 784) and not plan.batchable("mae", 64) and not plan.batchable("pca", 64)
    assert not plan.batchable("no_such_method", 64)  # an unknown method trains alone
