"""``bench verify``: a published directory's verdict tables and headlines are re-derived from its tidy
tables; an edited number anywhere is a difference (exit code 1), bad input one line (exit code 2)."""

from __future__ import annotations

import pytest

from bench.cli import main
from bench.config import RunConfig
from bench.engine.runner import execute
from bench.report import build as report
from bench.report.summary import build_summary
from bench.report.verify import publish, verify

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    base = tmp_path_factory.mktemp("pub")
    cfg = RunConfig(
        workers=1,
        prediction="pruning",
        dataset="digits",
        methods=["infomax", "pca"],
        seeds=[0, 1],
        epochs=2,
        width=8,
        out=str(base / "results"),
        cache=str(base / "cache"),
    )
    run = execute(cfg)
    report.build_report(run, base / "reports")
    build_summary(base / "results", base / "reports")
    written = publish(base / "results", base / "reports", base / "published")
    assert {p.name for p in written} >= {
        "results.parquet",
        "verdicts.csv",
        "verdicts.tex",
        "pruning.pdf",
        "SUMMARY.md",
        "summary.pdf",
    }
    return base / "published"


def test_an_untouched_publication_verifies(published, capsys):
    checked, problems = verify(published)
    assert problems == []
    assert {"pruning/verdicts.csv", "pruning/verdicts.tex", "SUMMARY.md: pruning's headline"} <= set(checked)
    assert main(["verify", str(published)]) == 0
    assert "0 differ" in capsys.readouterr().out


@pytest.mark.parametrize("fname", ["pruning/verdicts.csv", "pruning/verdicts.tex", "SUMMARY.md"])
def test_a_hand_edited_number_is_found(published, tmp_path, fname, capsys):
    import shutil

    copy = tmp_path / "pub"
    shutil.copytree(published, copy)
    path = copy / fname
    text = path.read_text()
    if fname == "SUMMARY.md":  # the exploratory line's counts: "as predicted in N cells"
        i = text.index(" cell")
        edited = text[: i - 1] + str((int(text[i - 1]) + 1) % 10) + text[i:]
    else:  # the first digit after the header
        i = next(k for k in range(text.index("\n"), len(text)) if text[k].isdigit())
        edited = text[:i] + str((int(text[i]) + 1) % 10) + text[i + 1 :]
    path.write_text(edited)
    _, problems = verify(copy)
    assert len(problems) == 1 and str(path) in problems[0]
    assert main(["verify", str(copy)]) == 1
    assert "differs:" in capsys.readouterr().out


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["verify", str(tmp_path / "absent")]) == 2
    assert main(["verify"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("bench: error: verify:") for line in err)
    _, problems = verify(tmp_path)  # an empty directory has nothing to verify: that is a difference too
    assert problems and "no prediction folder" in problems[0]
