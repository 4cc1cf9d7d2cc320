"""The headline of a prediction in the newest published results directory (``results/published/<profile>-<date>``,
written by ``bench publish``): what exploratory reports print beside their own table, so a user of the quick
profile sees the pre-registered answer at once. Reads ``<prediction>/verdicts.csv`` only."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

PUBLISHED = Path("results") / "published"
DATED = re.compile(r"^(?P<profile>[a-z]+)-(?P<date>\d{4}-\d{2}-\d{2})$")


@dataclass(frozen=True)
class Published:
    """A prediction's headline in a published directory."""

    profile: str
    day: str
    word: str
    why: str
    where: Path

    def line(self) -> str:
        return f"published {self.profile} run, {self.day}: {self.word} ({self.why}) [{self.where}]"


def _roots() -> list[Path]:
    """Where published directories are looked for: ``$BENCH_PUBLISHED`` (a path; empty: nowhere), else
    ``results/published`` under the working directory and under this package's checkout."""
    env = os.environ.get("BENCH_PUBLISHED")
    if env is not None:
        return [Path(env)] if env else []
    here = Path(__file__).resolve().parents[2] / PUBLISHED
    return list(dict.fromkeys([PUBLISHED.resolve(), here]))


def published_headline(name: str, profile: str = "confirm", roots: Iterable[Path] | None = None) -> Published | None:
    """The headline of prediction ``name`` in the newest published ``<profile>-<date>`` directory, or None."""
    found = []
    for root in _roots() if roots is None else roots:
        if not Path(root).is_dir():
            continue
        for d in Path(root).iterdir():
            m = DATED.match(d.name)
            if m and m["profile"] == profile and (d / name / "verdicts.csv").is_file():
                found.append((m["date"], d))
    if not found:
        return None
    day, d = max(found)
    rows = pd.read_csv(d / name / "verdicts.csv")
    head = rows[rows["table"] == "headline"]
    if head.empty:
        return None
    r = head.iloc[0]
    where = d / name
    try:
        where = where.relative_to(Path.cwd())
    except ValueError:
        pass
    return Published(profile, day, str(r["headline"]), str(r.get("reason", "") or ""), where)
