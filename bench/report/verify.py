"""``bench verify DIR``: re-derive every verdict table and headline of a published results directory from
its tidy tables alone, and compare them with what was published.

A published directory (made by ``bench publish``, :mod:`bench.report.publish`) holds one folder per
prediction, each a run directory (``results.parquet``, ``config.json``, ``manifest.json``) with the
``verdicts.csv`` and ``verdicts.tex`` its report wrote, and a ``SUMMARY.md`` at the top. For each
prediction the prediction's view turns the tidy table into its verdict tables again
(:meth:`bench.protocol.View.tables`, as ``bench report`` does). Both exports must equal the published
files: ``verdicts.tex`` byte for byte, ``verdicts.csv``'s full-precision numbers within 1e-9 relative
or 1e-10 absolute, since their last digits move with the numerical libraries' releases. Every line the
report opens its first verdict table with (the headline and the family counts, or the exploratory
line) must stand in ``SUMMARY.md``. A number edited by hand in any of them is a difference: it is
listed, and the exit code is 1.

Reads tables only: no torch, no training, nothing written.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from bench.arguments import UsageError
from bench.report.build import view
from bench.report.tables import exploratory, overall_lines, verdicts_csv, verdicts_tex
from bench.results import read_run

EXPORTS = ("verdicts.csv", "verdicts.tex")


def runs(root: Path) -> list[Path]:
    """The prediction folders of a published directory (those with a manifest), by name."""
    return [d for d in sorted(Path(root).iterdir()) if d.is_dir() and (d / "manifest.json").exists()]


def derive(run_dir: Path) -> tuple[str, dict[str, str], list[str]]:
    """(prediction, {export file: text}, the overall lines) re-derived from ``run_dir``'s tidy table."""
    df, config, _ = read_run(run_dir)
    name = str(df["prediction"].iloc[0]) if len(df) else config["prediction"]
    profile = config.get("profile")
    pred = view(name)
    pred.profile = profile
    tables = pred.tables(df)
    verdicts = [t for t in tables if t.verdict]
    run_id = str(df["run_id"].iloc[0]) if len(df) else run_dir.name
    files = {}
    if verdicts:
        files = {
            "verdicts.csv": verdicts_csv(verdicts, name, profile),
            "verdicts.tex": verdicts_tex(verdicts, name, run_id, profile),
        }
    lines = [line for line in overall_lines(tables, profile) if line]
    return name, files, [part for line in lines for part in _md_parts(line, exploratory(profile))]


def _md_parts(line: str, explore: bool) -> list[str]:
    """The pieces of an overall line as SUMMARY.md prints them (an exploratory line's head is set in bold)."""
    head, sep, rest = line.partition("; ") if explore else (line, "", "")
    return [head, rest] if sep else [head]


def _first_difference(a: str, b: str) -> str:
    for i, (x, y) in enumerate(zip(a.splitlines(), b.splitlines(), strict=False), 1):
        if x != y:
            return f"line {i}: published {x[:100]!r}, derived {y[:100]!r}"
    return f"published {len(a.splitlines())} lines, derived {len(b.splitlines())}"


def _cell_equal(a: str, b: str) -> bool:
    """Two CSV cells agree: the same text, or two numbers within 1e-9 relative or 1e-10 absolute (an
    interval's end near 0 is the difference of two larger numbers, so its relative error is not small);
    both NaN agree."""
    if a == b:
        return True
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    return (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-10)


def _difference(fname: str, published: str, derived: str) -> str | None:
    """Where ``published`` and ``derived`` first differ, or None when they agree.

    ``verdicts.tex`` (numbers at four significant digits) must agree byte for byte. ``verdicts.csv``
    prints every number in full, and its last digits move with the numerical libraries (a t quantile
    or a float sum differs in the 12th digit between numpy/scipy releases), so its numbers agree within
    1e-9 relative or 1e-10 absolute; any edit a reader could see (or that could move a verdict) is far
    larger, and the same numbers stand in ``verdicts.tex`` at four significant digits, checked exactly."""
    if fname != "verdicts.csv":
        return None if published == derived else _first_difference(published, derived)
    a, b = list(csv.reader(io.StringIO(published))), list(csv.reader(io.StringIO(derived)))
    for i, (ra, rb) in enumerate(zip(a, b, strict=False), 1):
        if len(ra) != len(rb) or not all(_cell_equal(x, y) for x, y in zip(ra, rb, strict=True)):
            bad = next((j for j, (x, y) in enumerate(zip(ra, rb, strict=False)) if not _cell_equal(x, y)), None)
            where = f"column {bad + 1}: published {ra[bad]!r}, derived {rb[bad]!r}" if bad is not None else "width"
            return f"row {i}, {where}"
    return None if len(a) == len(b) else f"published {len(a)} rows, derived {len(b)}"


def verify(root: Path) -> tuple[list[str], list[str]]:
    """(what was checked, the differences) for the published directory ``root``."""
    root = Path(root)
    checked: list[str] = []
    problems: list[str] = []
    found = runs(root)
    if not found:
        return checked, [f"{root}: no prediction folder (a folder with manifest.json)"]
    summary = root / "SUMMARY.md"
    md = summary.read_text() if summary.exists() else None
    if md is None:
        problems.append(f"{summary}: missing")
    for run_dir in found:
        name, files, parts = derive(run_dir)
        for fname, text in files.items():
            path = run_dir / fname
            if not path.exists():
                problems.append(f"{path}: missing")
            elif (diff := _difference(fname, path.read_text(), text)) is not None:
                problems.append(f"{path}: differs from its tidy table ({diff})")
            else:
                checked.append(f"{run_dir.name}/{fname}")
        if md is not None:
            absent = [p for p in parts if p not in md]
            if absent:
                problems.append(f"{summary}: {name}'s headline is not what its table gives (missing {absent[0]!r})")
            elif parts:
                checked.append(f"SUMMARY.md: {name}'s headline")
    return checked, problems


def command(args: list[str]) -> int:
    """``bench verify DIR``: re-derive every verdict table and headline of a published directory from its
    tidy tables (:mod:`bench.report.verify`); exit code 1 on any difference, so none can be hand-edited."""
    if len(args) != 1 or "=" in args[0]:
        raise UsageError("verify: expected one published directory (e.g. bench verify results/published/confirm-DATE)")
    root = Path(args[0])
    if not root.is_dir():
        raise UsageError(f"verify: '{root}' is not a directory")
    checked, problems = verify(root)
    for line in problems:
        print(f"differs: {line}")
    print(f"verify {root}: {len(checked)} checks agree with the tidy tables, {len(problems)} differ")
    return 1 if problems else 0
