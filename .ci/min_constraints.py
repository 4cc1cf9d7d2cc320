#!/usr/bin/env python3
"""Print a pip constraints file that pins every direct dependency to its declared minimum.

Each ``name>=X`` in ``[project].dependencies`` of pyproject.toml becomes ``name==X``, so the minimum
versions have one home (pyproject.toml). ``--skip a,b`` leaves those names out (they then resolve to
whatever the environment already has). A dependency without a ``>=`` bound is an error: every direct
dependency must declare the oldest version it is tested with.

    python3 .ci/min_constraints.py --skip torch,torchvision > /tmp/min.txt
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*([^;]*)")


def minima(pyproject: Path) -> dict[str, str]:
    """``{name: minimum}`` of ``[project].dependencies``, in their order."""
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    out = {}
    for dep in deps:
        m = REQ.match(dep)
        if not m:
            raise SystemExit(f"min_constraints: cannot parse dependency {dep!r}")
        name, spec = m.group(1), m.group(2)
        low = [s.strip()[2:].strip() for s in spec.split(",") if s.strip().startswith(">=")]
        if len(low) != 1:
            raise SystemExit(f"min_constraints: {dep!r} needs exactly one '>=' bound (its tested minimum)")
        out[name] = low[0]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pyproject", type=Path, default=Path(__file__).resolve().parent.parent / "pyproject.toml")
    ap.add_argument("--skip", default="", help="comma-separated names to leave unpinned")
    args = ap.parse_args(argv)
    skip = {s.strip().lower() for s in args.skip.split(",") if s.strip()}
    for name, low in minima(args.pyproject).items():
        if name.lower() not in skip:
            sys.stdout.write(f"{name}=={low}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
