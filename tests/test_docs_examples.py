"""The docs' worked examples run as written: the add-a-baseline page's method registers, is listed,
trains and learns; the add-a-prediction page's two files register, run through the runner a user calls,
and the view turns the tidy table alone into a verdict table."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest
import torch

from bench.cli import main
from bench.engine.jobs import data_info
from bench.evaluate.probe import linear_probe
from bench.train.methods import METHODS
from bench.train.trainer import train

DOCS = Path(__file__).resolve().parent.parent / "docs"
BASELINE_PAGE = DOCS / "adding-a-baseline.md"
PREDICTION_PAGE = DOCS / "adding-a-prediction.md"


def blocks(page: Path, path_pattern: str) -> dict[str, str]:
    """{file path: code} of every ``<!-- example: PATH.py -->`` python block on a page."""
    found = re.findall(rf"<!-- example: ({path_pattern})\.py -->\s*```python\n(.*?)```", page.read_text(), re.S)
    return dict(found)


def _example() -> tuple[str, str]:
    found = blocks(BASELINE_PAGE, r"baselines/\w+")
    assert len(found) == 1, f"{BASELINE_PAGE.name} needs one add-a-baseline example block"
    ((path, code),) = found.items()
    return path.split("/")[1], code


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
    """The add-a-prediction page's two-file prediction registers, runs through the runner a user calls, and its
    view turns the tidy table alone into a verdict table."""
    from bench.config import RunConfig
    from bench.engine.runner import execute
    from bench.protocol import PREDICTIONS, VIEWS
    from bench.results import read_run

    found = blocks(PREDICTION_PAGE, r"predictions/\w+/\w+")
    assert set(found) == {"predictions/dead_units/protocol", "predictions/dead_units/view"}
    mods = []
    try:
        for path, code in found.items():
            mod = types.ModuleType(path.replace("/", "."))
            sys.modules[mod.__name__] = mod
            mods.append(mod.__name__)
            exec(compile(code, f"{path}.py", "exec"), mod.__dict__)
        assert "dead_units" in PREDICTIONS and "dead_units" in VIEWS
        cfg = RunConfig(
            workers=1,
            prediction="dead_units",
            dataset="digits",
            methods=["infomax", "pca"],
            seeds=[0, 1],
            epochs=2,
            width=8,
            out=str(tmp_path / "r"),
            cache=str(tmp_path / "c"),
        )
        df, _, _ = read_run(execute(cfg))
        assert set(df["metric"]) == {"dead_fraction"} and len(df) == 4
        (table,) = VIEWS.get("dead_units")().verdict_tables(df)
        assert table.verdict and list(table.frame["baseline"]) == ["pca"]
    finally:
        PREDICTIONS._items.pop("dead_units", None)
        VIEWS._items.pop("dead_units", None)
        for name in mods:
            sys.modules.pop(name, None)
