"""The generated pages (docs/cli.md, docs/methods.md) are exactly what ``python -m bench.docgen`` writes:
an option, a default or a method cannot change without its page."""

from __future__ import annotations

import pytest

from bench import docgen


@pytest.mark.parametrize("page", sorted(docgen.PAGES))
def test_committed_page_equals_the_generated_text(page):
    committed = (docgen.ROOT / page).read_text(encoding="utf-8")
    assert committed == docgen.PAGES[page](), f"{page} is stale: regenerate it with python -m bench.docgen"


def test_cli_page_lists_every_option_of_every_config():
    from bench.config import RunConfig
    from bench.data import DataConfig
    from bench.protocol import PREDICTIONS
    from bench.train.methods import METHODS

    text = docgen.cli_page()
    for f in docgen.dataclasses.fields(DataConfig):
        assert f"`data.{f.name}`" in text
    for f in docgen.dataclasses.fields(RunConfig):
        assert f.name in docgen.NOT_RUN_KEYS or f"| `{f.name}` |" in text
    for name in METHODS.names():
        assert f"### `{name}`" in text
    for name in PREDICTIONS.names():
        assert f"### `{name}`" in text


def test_field_comments_and_values_are_read_as_written():
    assert docgen.cli_text((0.0, 0.5)) == "[0.0,0.5]" and docgen.cli_text(None) == "none"
    assert docgen.cli_text(True) == "true" and docgen.type_text(int | None) == "int or none"
    from bench.data import DataConfig

    assert docgen.field_comments(DataConfig)["root"] == "where torchvision datasets live"


def test_check_mode_reports_a_stale_page(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(docgen, "ROOT", tmp_path)
    monkeypatch.setattr(docgen, "PAGES", {"docs/x.md": lambda: "x\n"})
    (tmp_path / "docs").mkdir()
    assert docgen.main(["--check"]) == 1 and "docs/x.md" in capsys.readouterr().err
    assert docgen.main([]) == 0 and docgen.main(["--check"]) == 0
