"""The open questions' kind (``bench run question=NAME|all``): registered beside the predictions without joining
``prediction=all``, their own seeds, the command line's one-line errors, cache keys that the new data options
leave alone, and a small ``question=scaling`` run end to end with its answer and ``reports/questions.pdf``."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from bench.arguments import UsageError, configs
from bench.cli import main
from bench.config import RunConfig
from bench.data import DataConfig
from bench.engine.jobs import JobSpec
from bench.kinds import kind_of, questions
from bench.protocol import in_all
from questions.scaling.protocol import epochs_for_steps


def test_questions_are_registered_apart_from_the_predictions():
    assert "scaling" in questions()
    assert not set(questions()) & set(in_all())
    assert kind_of("scaling") == "question" and kind_of("pruning") == "prediction"
    assert list(configs(["question=all"])) == list(questions())
    assert configs(["question=scaling"])["scaling"].resolved_seeds() == [0, 1, 2, 3, 4]  # five seeds when quick
    assert configs(["prediction=pruning"])["pruning"].resolved_seeds() == [0, 1, 2]
    assert configs(["question=scaling", "profile=full"])["scaling"].resolved_seeds() == list(range(10))


@pytest.mark.parametrize(
    "args, words",
    [
        (["question=nope"], "question: unknown 'nope'"),
        (["prediction=scaling"], "is an open question"),
        (["prediction=pruning", "question=scaling"], "not both"),
        ([], "question=NAME"),
    ],
)
def test_bad_question_input_is_one_line(args, words, capsys):
    with pytest.raises(UsageError, match=words):
        configs(args)
    assert main(["plan", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bench: error:")


def test_data_options_added_for_the_questions_leave_every_old_key_alone():
    spec = JobSpec.make("infomax", RunConfig().method_config("infomax"), "digits", DataConfig(), 8, 0, 2, 128)
    assert set(spec.identity()["data_cfg"]) == {"split_seed", "n", "sources", "mixing"}  # the fields before them
    other = dataclasses.replace(spec, data_cfg=DataConfig(pretrain_n=500))
    assert other.identity()["data_cfg"]["pretrain_n"] == 500 and other.key != spec.key


@pytest.mark.parametrize("n, batch", [(1024, 128), (4096, 128), (65536, 128), (437, 128), (1000, 128)])
def test_equal_steps_budget(n, batch):
    e = epochs_for_steps(8192, n, batch)
    steps = e * -(-n // batch)
    assert abs(steps - 8192) <= -(-n // batch) / 2  # within half an epoch of the budget
    assert epochs_for_steps(8192 * 2, n, batch) >= 2 * e - 1


@pytest.mark.slow
def test_a_small_scaling_run_answers_and_makes_questions_pdf(small_question):
    line, df = small_question(
        "scaling",
        "methods=[infomax,pca,random]",
        "seeds=2",
        "scaling.n_mnist1d=[1024,4096]",
        "scaling.steps_mnist1d=64",
        "scaling.n_mnist5k=[875,3500]",
        "scaling.epochs_at_full_mnist5k=1",
        "scaling.widths=[8,16]",
        "scaling.epochs_axis=[1,2]",
        "scaling.largest_rerun=0",
    )
    assert set(df["axis"].dropna()) == {"n_mnist1d", "n_mnist5k", "k", "steps"}
    err = df[(df["metric"] == "test_error") & (df["axis"] == "n_mnist1d")]
    assert sorted(err["n"].unique()) == [1024, 4096] and set(err["epochs"]) == {64 // 8, 64 // 32}
    acc = df[df["metric"] == "test_acc"].set_index(["axis", "method", "seed", "n", "width", "epochs"])["value"]
    np_err = df[df["metric"] == "test_error"].set_index(["axis", "method", "seed", "n", "width", "epochs"])["value"]
    assert ((acc + np_err) - 1).abs().max() < 1e-12


@pytest.mark.slow
def test_a_failed_job_of_a_request_with_its_own_budget_says_which_point(tmp_path):
    """Status rows of a request that sets ``epochs`` carry it (a question's steps axis tells its points apart)."""
    from bench.engine.runner import execute

    cfg = RunConfig(
        workers=1,
        prediction="scaling",
        methods=["infomax", "mae"],  # mae needs image inputs: skipped on mnist1d, at each requested budget
        seeds=[0],
        epochs=1,  # the budget of the requests that set none (mnist5k's K axis)
        out=str(tmp_path / "r"),
        cache=str(tmp_path / "c"),
        prediction_overrides={
            "n_mnist1d": (1024,),
            "steps_mnist1d": 16,
            "n_mnist5k": (3500,),
            "epochs_at_full_mnist5k": 1,
            "widths": (8,),
            "epochs_axis": (1,),
            "largest_rerun": 0,
        },
    )
    df = pd.read_parquet(execute(cfg) / "results.parquet")
    skipped = df[(df["metric"] == "job_skipped") & (df["dataset"] == "mnist1d")]
    assert len(skipped) and set(skipped["epochs"]) == {2}  # 16 steps at 8 batches an epoch


class _Requests:
    """A source that records what the scaling protocol asks for and measures nothing."""

    methods = ["infomax", "infomax_noem", "pca"]
    seeds = [0, 1]
    batch_size = 128

    def __init__(self, profile: str, present: tuple[str, ...] = ()):
        self.profile, self.present, self.calls = profile, present, []

    def dataset(self, name=None, data=None, seed=None):
        from bench.data import DataNotFoundError

        if name in ("mnist", "fashion_mnist", "cifar10") and name not in self.present:
            raise DataNotFoundError(f"{name}: no files under /nowhere\nsecond line")
        return type("D", (), {"train": type("S", (), {"x": [0] * 60000})})()

    def measure(self, fn, *args, **kw):
        self.calls.append(kw)
        return iter(())


def _requests(profile, present=(), **over):
    from questions.scaling.protocol import Scaling, ScalingConfig

    src = _Requests(profile, present)
    rows = Scaling(ScalingConfig(**over)).run(src)
    return src.calls, rows


def test_the_batch_sensitivity_reruns_the_infomax_pair_at_twice_k_with_lse_scaled():
    calls, _ = _requests("quick")
    k = [c for c in calls if c.get("batch_size")]
    got = sorted((c["widths"][0], tuple(c["methods"]), c["batch_size"], str(c["method_cfg"])) for c in k)
    assert got == [
        (128, ("infomax",), 256, "{'lambda_lse': 0.5}"),
        (128, ("infomax_noem",), 256, "None"),
        (256, ("infomax",), 512, "{'lambda_lse': 0.25}"),
        (256, ("infomax_noem",), 512, "None"),
    ]
    assert all(c["epochs"] is None for c in k)  # equal samples: the default budget
    plain = sorted(c["widths"][0] for c in calls if c["dataset"] == "mnist5k" and not c.get("batch_size"))
    assert 256 in plain and 512 not in plain
    full, _ = _requests("full", batch_sensitivity=False)
    assert not any(c.get("batch_size") for c in full)
    assert {512, 1024} <= {c["widths"][0] for c in full}  # full's K axis reaches 1,024


def test_the_full_size_axes_are_declared_and_skip_absent_data_with_a_reason(capsys):
    calls, rows = _requests("quick")
    assert not any(c["dataset"] in ("mnist", "fashion_mnist", "cifar10") for c in calls) and not rows
    calls, rows = _requests("full", present=("mnist",))
    mnist = [c for c in calls if c["dataset"] == "mnist"]
    assert [c["data"] for c in mnist] == [{"pretrain_n": 7500}, {"pretrain_n": 15000}, {"pretrain_n": 30000}, None]
    assert [c["epochs"] for c in mnist] == [240, 120, 60, 30]  # equal steps: 30 epochs at the full train
    skipped = pd.DataFrame(rows)
    assert set(skipped["dataset"]) == {"fashion_mnist", "cifar10"} and set(skipped["metric"]) == {"job_skipped"}
    assert len(skipped) == 2 * 3 * 2 and skipped["note"].str.contains("data.root").all()
    assert "skipping the N axis on cifar10" in capsys.readouterr().err
    from questions.scaling.protocol import ScalingConfig

    with pytest.raises(ValueError, match="full_size: unknown dataset 'nosuch'"):
        ScalingConfig(full_size=("nosuch",)).check()
    assert main(["plan", "question=scaling", "scaling.full_size=[nosuch]"]) == 2


def test_a_request_may_set_its_own_batch_size(tmp_path):
    from bench.engine.runner import RunContext
    from tests.test_cache_keys import _ctx

    ctx = _ctx(tmp_path)
    assert isinstance(ctx, RunContext)
    a, b = ctx.spec("infomax", 8, 0), ctx.spec("infomax", 8, 0, batch_size=256)
    assert (a.batch_size, b.batch_size) == (128, 256) and a.key != b.key
