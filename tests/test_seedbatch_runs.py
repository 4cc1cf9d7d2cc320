"""A run whose seeds train together gives the tables a run one seed at a time gives.

The same small probe sweep (digits, the InfoMax family and a method without a batched step) in
three ways: ``batch_seeds=false`` (the reference path), batched in this process, batched in a pool
of two workers. The tidy tables must hold identical values (timings aside); the batched runs'
cache entries record their seed group, and the manifest says each job was trained, not loaded.
"""

from __future__ import annotations

import json

import pytest

from bench import results
from bench.cli import main

pytestmark = pytest.mark.slow  # every test here trains or runs a prediction

SWEEP = ["prediction=probe", "dataset=digits", "methods=[infomax,lse_only,pca]", "seeds=3", "epochs=2", "width=16"]


def run(out, *extra: str):
    assert main(["run", *SWEEP, f"out={out}", f"reports={out / 'reports'}", *extra]) == 0
    df, _, man = results.read_run(results.latest_run(out, "probe"))
    return df, man


def groups(out) -> dict[str, set[int]]:
    """method -> the seed_group sizes its cache entries record."""
    seen: dict[str, set[int]] = {}
    for meta in (out / "cache").glob("*/meta.json"):
        m = json.loads(meta.read_text())
        seen.setdefault(m["spec"]["method"], set()).add(m.get("seed_group", 1))
    return seen


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("seq")
    df, man = run(out, "workers=1", "batch_seeds=false")
    assert groups(out) == {"infomax": {1}, "lse_only": {1}, "pca": {1}}
    return df


@pytest.mark.parametrize("workers", [1, 2])
def test_batched_runs_give_the_reference_tables(reference, tmp_path, workers):
    df, man = run(tmp_path, f"workers={workers}")
    same, why = results.same_values(reference, df)
    assert same, why
    assert groups(tmp_path) == {"infomax": {3}, "lse_only": {3}, "pca": {1}}
    assert len(man["jobs"]) == 9 and not any(j["cached"] for j in man["jobs"])
