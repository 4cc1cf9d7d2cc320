"""The README's promises: its two commands are the ones CI and users run, and its
"add a baseline" example works verbatim (registered, listed, trained, learns)."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest
import torch

from bench.cli import main
from bench.jobs import data_info
from bench.methods import METHODS
from bench.probe import linear_probe
from bench.trainer import train

README = Path(__file__).resolve().parent.parent / "README.md"


def _example() -> tuple[str, str]:
    text = README.read_text()
    m = re.search(r"<!-- example: baselines/(\w+)\.py -->\s*```python\n(.*?)```", text, re.S)
    assert m, "README lacks the add-a-baseline example block"
    return m.group(1), m.group(2)


def test_readme_commands_are_the_ci_ones():
    text = README.read_text()
    ci = (README.parent / ".ci" / "run").read_text()
    assert "python3 -m pip install -e '.[dev]' && bench run prediction=pruning" in text
    assert "python3 -m pytest -q" in text and "python3 -m pytest -q" in ci


def test_add_a_baseline_example_works_verbatim(digits, capsys):
    name, code = _example()
    mod = types.ModuleType(f"baselines.{name}")
    sys.modules[mod.__name__] = mod
    try:
        exec(compile(code, f"baselines/{name}.py", "exec"), mod.__dict__)
        assert name in METHODS
        assert main(["list", "methods", name]) == 0
        assert name in capsys.readouterr().out
        cls = METHODS.get(name)
        torch.manual_seed(0)
        m = cls(cls.Config(), data_info(digits), 16)
        log = train(m, digits.train.x, None, epochs=20, batch_size=128, seed=0)
        assert log.history[-1]["loss"] < log.history[0]["loss"]
        with torch.no_grad():
            f = [m.encode(s.x) for s in (digits.train, digits.val, digits.test)]
        acc = linear_probe(f[0], digits.train.y, f[1], digits.val.y, f[2], digits.test.y, 10).test_acc[0]
        assert acc > 0.85
    finally:
        METHODS._items.pop(name, None)
        sys.modules.pop(mod.__name__, None)


@pytest.mark.slow
def test_add_a_prediction_example_works_verbatim(tmp_path):
    """The README's two-file prediction registers, runs through the runner a user calls, and its
    view turns the tidy table alone into a verdict table."""
    from bench.config import RunConfig
    from bench.protocol import PREDICTIONS, VIEWS
    from bench.results import read_run
    from bench.runner import execute

    blocks = dict(re.findall(r"<!-- example: (predictions/\w+/\w+)\.py -->\s*```python\n(.*?)```", README.read_text(),
                             re.S))
    assert set(blocks) == {"predictions/dead_units/protocol", "predictions/dead_units/view"}
    mods = []
    try:
        for path, code in blocks.items():
            mod = types.ModuleType(path.replace("/", "."))
            sys.modules[mod.__name__] = mod
            mods.append(mod.__name__)
            exec(compile(code, f"{path}.py", "exec"), mod.__dict__)
        assert "dead_units" in PREDICTIONS and "dead_units" in VIEWS
        cfg = RunConfig(workers=1, prediction="dead_units", dataset="digits", methods=["infomax", "pca"], seeds=[0, 1],
                        epochs=2, width=8, out=str(tmp_path / "r"), cache=str(tmp_path / "c"))
        df, _, _ = read_run(execute(cfg))
        assert set(df["metric"]) == {"dead_fraction"} and len(df) == 4
        (table,) = VIEWS.get("dead_units")().verdict_tables(df)
        assert table.verdict and list(table.frame["baseline"]) == ["pca"]
    finally:
        PREDICTIONS._items.pop("dead_units", None)
        VIEWS._items.pop("dead_units", None)
        for name in mods:
            sys.modules.pop(name, None)
