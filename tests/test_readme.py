"""The README's promises: its two commands are the ones CI and users run, it stays short, and it
points at the docs pages that hold the worked examples (tests/test_docs_examples.py runs those)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MAX_CHARS = 10_000


def test_readme_commands_are_the_ci_ones():
    text = README.read_text()
    ci = (README.parent / ".ci" / "run").read_text()
    assert "python3 -m pip install -e '.[dev]' && bench run prediction=pruning" in text
    assert "python3 -m pytest -q" in text and "python3 -m pytest -q" in ci


def test_readme_is_short_and_links_the_examples_and_the_docs():
    text = README.read_text(encoding="utf-8")
    assert len(text) <= MAX_CHARS, f"README.md has {len(text)} characters; move detail to docs/"
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"(docs/{page.name})" in text, f"the README's docs index lacks docs/{page.name}"
    assert "<!-- example:" not in text, "worked examples live in docs/adding-a-*.md"


def test_the_pilot_page_is_labelled_historical():
    text = README.read_text(encoding="utf-8")
    line = next(ln for ln in text.splitlines() if "(docs/pilot-v1.md)" in ln and ln.startswith("|"))
    assert "historical" in line
    top = (ROOT / "docs" / "pilot-v1.md").read_text(encoding="utf-8")[:600]
    assert "Historical record, not current results" in top
