"""``bench verify``: a published directory's verdict tables and headlines are re-derived from its tidy
tables; an edited number anywhere is a difference (exit code 1), bad input one line (exit code 2)."""

from __future__ import annotations

import pytest

from bench.cli import main
from bench.config import RunConfig
from bench.engine.runner import execute
from bench.report import build as report
from bench.report.publish import PublishError, publish
from bench.report.published import published_headline
from bench.report.verify import verify

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
    execute(cfg)
    pub = publish(base / "results", base / "published", require_all=False, allow_dirty=True)  # a dev checkout
    assert {p.name for p in pub.files} >= {
        "results.parquet",
        "verdicts.csv",
        "verdicts.tex",
        "pruning.pdf",
        "SUMMARY.md",
        "summary.pdf",
    }
    assert not [p for p in pub.files if p.suffix == ".csv" and p.name != "verdicts.csv"]  # Parquet only
    assert [p.name for p in base.iterdir() if p.name.startswith(".")] == []  # no staging folder left
    with pytest.raises(PublishError, match="exists"):
        publish(base / "results", base / "published", require_all=False, allow_dirty=True)
    with pytest.raises(PublishError, match="transfer"):
        publish(base / "results", base / "published2", allow_dirty=True)  # all four required by default
    assert not (base / "published2").exists()
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


def test_csv_numbers_agree_to_library_noise_and_no_further(published, tmp_path):
    """verdicts.csv prints numbers in full; their last digits move between numpy/scipy releases (seen
    under the declared minimum versions), so a change in the 15th digit is not a difference, and one in
    the 7th is."""
    import re
    import shutil

    def edited(digit: int) -> list[str]:
        copy = tmp_path / f"pub{digit}"
        shutil.copytree(published, copy)
        path = copy / "pruning" / "verdicts.csv"
        text = path.read_text()
        m = re.search(r"(?<![\d.e-])0\.\d{14,}", text)  # a full-precision number in (0, 1)
        assert m, "no full-precision number in verdicts.csv"
        i = m.start() + 2 + digit - 1  # the digit-th digit after "0."
        path.write_text(text[:i] + str((int(text[i]) + 1) % 10) + text[i + 1 :])
        return verify(copy)[1]

    assert edited(15) == []
    problems = edited(7)
    assert len(problems) == 1 and "verdicts.csv" in problems[0] and "column" in problems[0]


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["verify", str(tmp_path / "absent")]) == 2
    assert main(["verify"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("bench: error: verify:") for line in err)
    _, problems = verify(tmp_path)  # an empty directory has nothing to verify: that is a difference too
    assert problems and "no prediction folder" in problems[0]


def test_the_published_headline_reaches_exploratory_reports(published, tmp_path, monkeypatch):
    import shutil

    import pandas as pd

    root = tmp_path / "pubroot"
    for day, word in (("2026-01-02", "contradicted"), ("2025-12-31", "supported")):  # the newest one is read
        d = root / f"confirm-{day}"
        shutil.copytree(published, d)
        f = d / "pruning" / "verdicts.csv"
        df = pd.read_csv(f)
        df.loc[df["table"] == "headline", ["headline", "reason"]] = [word, f"planted {word}"]
        df.to_csv(f, index=False)
    pub = published_headline("pruning", roots=[root])
    assert (pub.day, pub.word, pub.why) == ("2026-01-02", "contradicted", "planted contradicted")
    assert published_headline("transfer", roots=[root]) is None
    assert published_headline("pruning", profile="full", roots=[root]) is None

    def report_text(env: str) -> str:
        monkeypatch.setenv("BENCH_PUBLISHED", env)
        monkeypatch.setattr(report, "TEXT_SINK", [])
        report.build_report(published / "pruning", tmp_path / "rep")  # an exploratory run (profile quick)
        return "\n".join(report.TEXT_SINK)

    assert "published confirm run, 2026-01-02: contradicted (planted contradicted)" in report_text(str(root))
    assert "published confirm run" not in report_text("")


def test_publish_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["publish", f"out={tmp_path}"]) == 2
    assert main(["publish", "stray"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("bench: error: publish:") for line in err)
    assert list(tmp_path.iterdir()) == []


def test_results_doc_blocks_come_from_the_published_tables(published, tmp_path, capsys):
    from bench.report import results_doc

    doc = tmp_path / "results.md"
    doc.write_text(
        "# Results\n\n<!-- results:run -->\n<!-- /results:run -->\n\nprose\n\n"
        "<!-- results:pruning -->\nstale\n<!-- /results:pruning -->\n"
    )
    assert results_doc.main([str(published), str(doc), "--check"]) == 1  # a stale block differs
    assert results_doc.main([str(published), str(doc)]) == 0
    text = doc.read_text()
    assert "stale" not in text and "prose" in text and "| pruning |" in text and "No job failed." in text
    assert "**Headline: exploratory**" in text and "| infomax" not in text  # the subject is never a member row
    assert results_doc.main([str(published), str(doc), "--check"]) == 0
    i = text.index("| pca | ") + len("| pca | ")  # plant an edited number in the member's row
    doc.write_text(text[:i] + str((int(text[i]) + 1) % 10) + text[i + 1 :])
    assert results_doc.main([str(published), str(doc), "--check"]) == 1
    readme = tmp_path / "README.md"  # the README's one-line-per-prediction table
    readme.write_text("intro\n<!-- results:headlines -->\n<!-- /results:headlines -->\n")
    assert results_doc.main([str(published), str(readme)]) == 0
    assert "| pruning | **exploratory** |" in readme.read_text()
    assert results_doc.main([str(published), str(readme), "--check"]) == 0
    readme.write_text(readme.read_text().replace("**exploratory**", "**supported**"))
    assert results_doc.main([str(published), str(readme), "--check"]) == 1
    (tmp_path / "empty.md").write_text("no blocks\n")
    assert results_doc.main([str(published), str(tmp_path / "empty.md")]) == 2
