"""The prediction contract, checked over the registry: every registered prediction gets these with no edit.

Each prediction runs on digits with two methods and two seeds through the same runner a user
calls, writes the tidy schema, and its view turns the table alone into verdict tables and
figures. The house's one-way flow is checked on the source: no cycle between the contract and
the runner, no protocol reaching up to the command line, the config or the cache, no report
importing a protocol, and no file over 400 lines.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.config import RunConfig
from bench.engine.runner import execute
from bench.kinds import kind_of
from bench.protocol import PREDICTIONS, SUBJECT, VIEWS, PredictionConfig, View
from bench.results import read_matrices, read_run

ROOT = Path(__file__).resolve().parents[1]
TIDY = [
    "run_id",
    "prediction",
    "dataset",
    "method",
    "width",
    "seed",
    "metric",
    "value",
    "n_params_encoder",
    "n_params_train",
    "train_seconds",
]
# the smallest run each prediction accepts (prediction options that keep it fast)
SMALL = {
    "pruning": {"fractions": (0.0, 0.5), "random_draws": 1, "sparsities": (0.0, 0.9), "criteria": ("variance",)},
    "interpretability": {"settings": ("ica_linear", "real"), "real_datasets": ("digits",), "n_perm": 2},
    "efficiency": {"widths": (4, 8), "primary_widths": (4,)},
    "transfer": {
        "pairs": ("mnist_digits", "mnist_lo_hi", "digits_lo_hi"),
        "budgets": ("1", "5", "10"),
        "draws": (1, 1, 1),
    },
}


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in PREDICTIONS.names() if kind_of(n) == "prediction"])
def test_prediction_runs_on_digits_and_writes_the_tidy_schema(name, tmp_path):
    """Each prediction end to end on digits (the questions name their own datasets and axes, and have no
    verdict table: their small end-to-end runs are the ``small_question`` tests)."""
    pcls = PREDICTIONS.get(name)
    assert name in VIEWS, f"prediction '{name}' has no registered view"
    cfg = RunConfig(
        workers=1,
        prediction=name,
        dataset="digits",
        methods=[SUBJECT, "pca"],
        seeds=[0, 1],
        epochs=2,
        width=8,
        out=str(tmp_path / "results"),
        cache=str(tmp_path / "cache"),
        prediction_overrides=SMALL.get(name, {}),
    )
    run_dir = execute(cfg)
    df, config, manifest = read_run(run_dir)
    assert list(df.columns[: len(TIDY) - 3]) == TIDY[:-3] and set(TIDY) <= set(df.columns)
    assert set(df["method"]) == {SUBJECT, "pca"} and set(df["seed"]) == {0, 1}
    assert set(df["prediction"]) == {name} and df["run_id"].nunique() == 1
    assert not df["metric"].isna().any() and df["width"].notna().all()
    view = VIEWS.get(name)()
    primary = view.verdict_tables(df)[0]
    assert primary.verdict and list(primary.frame["baseline"]) == ["pca"]
    assert view.primary.metric in set(df["metric"])
    for table in view.tables(df):
        assert table.title
    for fig_name, fig in view.figures(df, read_matrices(run_dir)):
        assert fig_name and fig.axes
    assert config["prediction"] == name and manifest["jobs"]
    assert issubclass(pcls.Config, PredictionConfig)
    assert_exploratory_report(run_dir, tmp_path / "reports")


VERDICT_WORDS = re.compile(
    r"supported|contradicted|inconclusive|\bp(?:_| \(|\()(?:t|holm|wy|perm|wilcoxon)\b|"
    r"p-value|(?-i:\bp\s*[<=]\s*0)",
    re.IGNORECASE,
)


def assert_exploratory_report(run_dir: Path, reports: Path) -> None:
    """An exploratory (quick) report: opens with its exploratory line, holds no verdict word and no
    p-value anywhere in the text it draws (titles, notes, table cells, figure texts), and its
    exports carry no p or verdict column."""
    from bench.report import build as report

    report.TEXT_SINK = []
    try:
        report.build_report(run_dir, reports)
        texts = report.TEXT_SINK
    finally:
        report.TEXT_SINK = None
    assert texts[0].startswith("exploratory (profile quick): no verdicts")
    hits = sorted({m.group(0) for t in texts for m in [VERDICT_WORDS.search(t)] if m})
    assert not hits, (
        f"verdict words or p-values in an exploratory report: {hits}: "
        + "; ".join(t[:120] for t in texts if VERDICT_WORDS.search(t))[:600]
    )
    name = run_dir.parent.name
    csv = (reports / name / "verdicts.csv").read_text()
    assert not VERDICT_WORDS.search(csv.replace("exploratory", ""))


@pytest.mark.parametrize("name", PREDICTIONS.names())
def test_prediction_declares_its_contract(name):
    pcls, vcls = PREDICTIONS.get(name), VIEWS.get(name)
    pcls.Config().check()  # the defaults are valid
    with pytest.raises(ValueError, match="width"):
        pcls.Config(width=0).check()
    assert pcls.needs <= {"labels", "factors"}
    assert issubclass(vcls, View) and vcls.statement and vcls.protocol and vcls.title
    if vcls.kind == "question":  # estimates and an answer, no verdicts; never part of prediction=all
        assert vcls.question and vcls.main_figure and not vcls.in_all
        assert vcls.answer is not View.answer, f"{name} computes no answer"
        return
    assert vcls.verdicts and all(v.direction in ("higher", "lower") for v in vcls.verdicts)
    assert pcls.describe()


def test_a_dataset_without_what_the_prediction_needs_is_one_clear_error(tmp_path):
    from bench.config import ConfigError

    cfg = RunConfig(
        workers=1,
        prediction="probe",
        dataset="ica",
        methods=[SUBJECT],
        seeds=[0],
        epochs=1,
        out=str(tmp_path / "r"),
        cache=str(tmp_path / "c"),
    )
    with pytest.raises(ConfigError, match="no labels.*choices: .*digits"):
        execute(cfg)
    assert not (tmp_path / "r").exists() and not (tmp_path / "c").exists()  # nothing half-written


def test_no_file_over_400_lines():
    for folder in ("bench", "predictions", "questions", "baselines"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            n = len(path.read_text().splitlines())
            assert n <= 400, f"{path.relative_to(ROOT)} has {n} lines"


def test_the_manifest_records_the_commit_the_run_started_with(tmp_path, monkeypatch):
    """A commit made during a long run must not be recorded as the run's code."""
    from bench import results

    ran = []
    probe = PREDICTIONS.get("probe")
    real_run = probe.run
    monkeypatch.setattr(probe, "run", lambda self, src: ran.append(1) or real_run(self, src))
    monkeypatch.setattr(results, "git_commit", lambda: "later-commit" if ran else "start-commit")
    cfg = RunConfig(
        workers=1,
        prediction="probe",
        dataset="digits",
        methods=["pca"],
        seeds=[0],
        epochs=1,
        width=4,
        out=str(tmp_path / "results"),
        cache=str(tmp_path / "cache"),
    )
    _, _, manifest = read_run(execute(cfg))
    assert manifest["git_commit"] == "start-commit"
