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
