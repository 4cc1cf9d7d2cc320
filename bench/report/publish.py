"""``bench publish``: turn a finished run of the four predictions into a published results directory
(:mod:`bench.report.published` reads its headlines back for the exploratory reports).

A published directory (``results/published/<profile>-<date>/``, committed to the repository) holds::

    SUMMARY.md  summary.pdf  pruning.pdf  transfer.pdf  efficiency.pdf  interpretability.pdf
    pruning/    results.parquet  matrices.parquet  config.json  manifest.json  verdicts.csv  verdicts.tex  *.png
    transfer/   ...

Only tables (Parquet), never the cache or the CSV twin. The reports, verdict exports and summary are
regenerated from the copied tables by this code, then :func:`bench.report.verify.verify` re-derives them
before the directory appears: it is assembled in a hidden sibling and renamed into place, so an interrupted
or failed publication leaves nothing behind. Before anything is written, each run's manifest must name the
commit that ran it and the protocol's hash with a clean protocol file, and all runs must share one profile
and one seed list: a publication that cannot say what produced it is refused.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from bench.arguments import UsageError
from bench.report.published import PUBLISHED

TABLES = ("results.parquet", "matrices.parquet", "config.json", "manifest.json")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


class PublishError(ValueError):
    """A run that cannot be published as it is (one line: what is wrong, and with which run)."""


def _check_runs(runs: dict[str, Path], allow_dirty: bool = False) -> tuple[str, list[int]]:
    """(profile, seeds) shared by ``runs``; PublishError when a manifest cannot name its code or the runs differ.
    ``allow_dirty``: accept a commit with uncommitted edits (``+dirty``; tests only: a publication names a commit)."""
    profiles, seed_lists = {}, {}
    for name, run in runs.items():
        man = json.loads((run / "manifest.json").read_text())
        config = json.loads((run / "config.json").read_text())
        commit = str(man.get("git_commit") or "")
        if allow_dirty:
            commit = commit.removesuffix("+dirty")
        if not _COMMIT.match(commit):
            why = "uncommitted edits" if commit.endswith("+dirty") else "no git commit"
            raise PublishError(f"{run}: its manifest names {why} ({man.get('git_commit')}), so nobody could rerun it")
        if not man.get("protocol_hash"):
            raise PublishError(f"{run}: its manifest names no protocol hash")
        if man.get("protocol_dirty"):
            raise PublishError(f"{run}: docs/protocol.md had uncommitted edits when it ran")
        failed = [j for j in man.get("jobs", []) if j.get("status") not in ("ok", "cached")]
        if failed and not all(j.get("reason") for j in failed):
            raise PublishError(f"{run}: a failed job has no recorded reason")
        profiles[name] = config.get("profile")
        seed_lists[name] = run_seeds(config)
    if len(set(profiles.values())) > 1:
        raise PublishError(f"the runs have different profiles: {profiles}")
    if len({tuple(s) for s in seed_lists.values()}) > 1:
        raise PublishError(f"the runs have different seeds: {seed_lists}")
    return next(iter(profiles.values())) or "unknown", next(iter(seed_lists.values()))


def run_seeds(config: dict) -> list[int]:
    """The seeds a run used: its resolved list (a profile's seeds are resolved at run time), else the given one."""
    seeds = (config.get("resolved") or {}).get("seeds") or config.get("seeds") or []
    return sorted(int(s) for s in seeds)


def default_dest(profile: str, day: date | None = None) -> Path:
    return PUBLISHED / f"{profile}-{(day or date.today()).isoformat()}"


@dataclass
class Publication:
    dest: Path
    files: list[Path]
    profile: str
    seeds: list[int]
    checks: int

    @property
    def size(self) -> int:
        return sum(f.stat().st_size for f in self.files)


def publish(
    out: Path | str, dest: Path | str | None = None, require_all: bool = True, allow_dirty: bool = False
) -> Publication:
    """Publish the latest run of every prediction under ``out`` into ``dest`` (default
    ``results/published/<profile>-<today>``). ``require_all``: refuse unless all of :func:`bench.protocol.in_all`
    have a run. PublishError (nothing written) for a run that cannot be published, an existing ``dest``, or a
    regenerated verdict that does not verify."""
    from bench.protocol import in_all
    from bench.report import build
    from bench.report.summary import build_summary_of
    from bench.report.verify import verify
    from bench.results import latest_run

    out = Path(out)
    runs = {name: run for name in in_all() if (run := latest_run(out, name)) is not None}
    missing = [name for name in in_all() if name not in runs]
    if not runs or (require_all and missing):
        raise PublishError(f"no finished run under '{out}' for: {', '.join(missing)} (publish needs all of them)")
    profile, seeds = _check_runs(runs, allow_dirty)
    dest = Path(dest) if dest is not None else default_dest(profile)
    if dest.exists():
        raise PublishError(f"'{dest}' exists: a publication is never overwritten (choose another dest=)")
    stage = dest.parent / f".{dest.name}.partial-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    try:
        staged = {}
        for name, run in runs.items():
            (stage / name).mkdir(parents=True)
            for fname in TABLES:
                if (run / fname).exists():
                    shutil.copyfile(run / fname, stage / name / fname)
            staged[name] = stage / name
        for run in staged.values():  # the reports of this code, from the copied tables only
            build.build_report(run, stage)
        build_summary_of(staged, stage)
        checked, problems = verify(stage)
        if problems:
            raise PublishError(f"the regenerated verdicts do not verify: {problems[0]}")
        os.replace(stage, dest)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    files = sorted(p for p in dest.rglob("*") if p.is_file())
    return Publication(dest, files, profile, seeds, len(checked))


def command(args: list[str]) -> int:
    """``bench publish``: copy the latest run of each prediction under ``out`` into a published directory,
    regenerate its reports and summary from the copied tables, verify them, then move it into place
    (:mod:`bench.report.publish`). ``all=false`` publishes whichever predictions have a run."""
    from bench.syntax import coerce, key_values

    kv, rest = key_values(args, ("out", "dest", "all"), positional=True)
    if rest:
        raise UsageError(f"publish: unexpected argument '{rest[0]}' (keys: out=, dest=, all=)")
    require_all = coerce("all", kv.get("all", "true"), bool)
    try:
        pub = publish(Path(kv.get("out", "results")), kv.get("dest"), require_all=require_all)
    except PublishError as e:
        raise UsageError(f"publish: {e}") from None
    print(
        f"published {pub.dest}: profile {pub.profile}, seeds {pub.seeds}, {len(pub.files)} files, "
        f"{pub.size / 2**20:.1f} MiB; {pub.checks} checks agree with the tidy tables (bench verify {pub.dest})"
    )
    return 0
