"""The published runs in this checkout (``results/published/<profile>-<date>/``, written by ``bench publish``):
each re-derives every verdict table and headline from its own tidy tables (``bench verify``), names the commit
of this repository's history that produced it and the protocol's hash, and a confirmatory one holds the
essay's four predictions on the pre-registered seeds 100..109."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from bench.cli import main
from bench.report.publish import run_seeds
from bench.report.published import DATED, PUBLISHED, published_headline
from bench.report.verify import runs, verify

ROOT = Path(__file__).resolve().parents[1]
DIRS = sorted(d for d in (ROOT / PUBLISHED).glob("*") if d.is_dir() and DATED.match(d.name))
ESSAY = {"pruning", "transfer", "efficiency", "interpretability"}

pytestmark = pytest.mark.skipif(not DIRS, reason=f"nothing is published under {PUBLISHED} in this checkout")


def _in_history(commit: str) -> bool | None:
    """Whether ``commit`` is an ancestor of this checkout's HEAD (None: git cannot tell here)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "merge-base", "--is-ancestor", commit, "HEAD"], capture_output=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return {0: True, 1: False}.get(out.returncode)


@pytest.mark.parametrize("pub", DIRS, ids=lambda d: d.name)
def test_a_published_directory_verifies(pub, capsys):
    checked, problems = verify(pub)
    assert problems == []
    assert main(["verify", str(pub)]) == 0
    assert "0 differ" in capsys.readouterr().out
    assert len(checked) >= 3 * len(runs(pub))  # verdicts.csv, verdicts.tex and the headline of each


@pytest.mark.parametrize("pub", DIRS, ids=lambda d: d.name)
def test_a_published_run_names_its_code_and_protocol(pub):
    profile = DATED.match(pub.name)["profile"]
    found = {d.name: d for d in runs(pub)}
    if profile == "confirm":
        assert set(found) == ESSAY
    for name, run in found.items():
        man = json.loads((run / "manifest.json").read_text())
        config = json.loads((run / "config.json").read_text())
        assert re.fullmatch(r"[0-9a-f]{40}", man["git_commit"]), (name, man["git_commit"])
        assert _in_history(man["git_commit"]) in (True, None), f"{name}: {man['git_commit']} is not in this history"
        assert man["protocol_hash"] and man["protocol_dirty"] is False
        assert config["profile"] == profile
        if profile == "confirm":
            assert run_seeds(config) == list(range(100, 110))
        for f in ("results.parquet", f"../{name}.pdf", "verdicts.csv", "verdicts.tex"):
            assert (run / f).is_file(), f"{run / f} is missing"
        assert not list(run.glob("*.csv")) == [] and [p.name for p in run.glob("*.csv")] == ["verdicts.csv"]
    assert (pub / "SUMMARY.md").is_file() and (pub / "summary.pdf").is_file()


def test_the_newest_confirm_headlines_are_what_exploratory_reports_print():
    confirm = [d for d in DIRS if d.name.startswith("confirm-")]
    if not confirm:
        pytest.skip("no confirmatory run is published")
    newest = max(confirm, key=lambda d: d.name)
    for name in ESSAY:
        pub = published_headline(name, roots=[ROOT / PUBLISHED])
        assert pub is not None and pub.day == newest.name.removeprefix("confirm-")
        assert pub.word.split(" (")[0] in ("supported", "contradicted", "inconclusive")
        assert (
            pub.word
            in (pub.where if pub.where.is_absolute() else ROOT / pub.where).joinpath("verdicts.csv").read_text()
        )


def test_docs_results_numbers_are_the_newest_confirm_tables():
    from bench.report import results_doc

    confirm = [d for d in DIRS if d.name.startswith("confirm-")]
    doc = ROOT / "docs" / "results.md"
    if not confirm or not doc.exists():
        pytest.skip("no confirmatory run or no docs/results.md")
    assert results_doc.BLOCK.search(doc.read_text()), "docs/results.md has no generated results block"
    assert results_doc.main([str(max(confirm, key=lambda d: d.name)), str(doc), "--check"]) == 0
    readme = ROOT / "README.md"  # its headline table comes from the same run
    assert "<!-- results:headlines -->" in readme.read_text()
    assert results_doc.main([str(max(confirm, key=lambda d: d.name)), str(readme), "--check"]) == 0
