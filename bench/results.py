"""Tidy results (docs/protocol.md §10): one row per measured number, written atomically.

``results/<prediction>/<run_id>/`` holds ``results.parquet``, ``results.csv``,
``config.json`` and ``manifest.json``; ``results/<prediction>/latest`` names the newest
complete run. A run directory is assembled under a temporary name and renamed into place,
so a reader never sees half a run.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import bench
from bench.provenance import library_versions
from bench.storage import atomic_dir_write, atomic_write, sweep_orphans  # noqa: F401 (atomic_write: re-exported)

KEY_COLUMNS = ["run_id", "prediction", "dataset", "method", "width", "seed", "metric", "value"]
TAIL_COLUMNS = ["n_params_encoder", "n_params_train", "train_seconds", "under_trained", "note"]
PROTOCOL_DOC = "docs/protocol.md"  # the scientific contract; its git blob hash goes into every manifest


def tidy_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows -> DataFrame with the schema's column order: keys, conditions (sorted), tail."""
    df = pd.DataFrame(rows)
    for c in KEY_COLUMNS + TAIL_COLUMNS:
        if c not in df.columns:
            df[c] = pd.NA
    cond = sorted(c for c in df.columns if c not in KEY_COLUMNS + TAIL_COLUMNS)
    df = df[KEY_COLUMNS + cond + TAIL_COLUMNS]
    df["value"] = df["value"].astype(float)
    df["under_trained"] = df["under_trained"].map(lambda v: pd.NA if v is None or v is pd.NA or v != v else bool(v))
    df["under_trained"] = df["under_trained"].astype("boolean")  # True / False / <NA>: no flag (not gradient-trained)
    for c in cond + ["note"]:
        if df[c].dtype == object:
            df[c] = df[c].astype("string")
    return df


def git_commit() -> str:
    here = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if out.returncode != 0:
        return "unknown"
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _git(root: Path, *args: str) -> str | None:
    """stdout of ``git -C root args`` stripped, or None when git fails (no git, not a checkout, no such object)."""
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def protocol_version(commit: str | None = None, root: Path | None = None) -> tuple[str | None, bool | None]:
    """``(protocol_hash, protocol_dirty)`` of :data:`PROTOCOL_DOC` for the run's manifest.

    ``protocol_hash``: the git blob hash of the file as committed at ``commit`` (the run's commit,
    as :func:`git_commit` wrote it, a ``+dirty`` suffix ignored; HEAD when None), i.e.
    ``git hash-object docs/protocol.md`` of the committed text; None outside a git checkout or
    when that commit has no such file. ``protocol_dirty``: the working copy's blob hash differs
    from it (edited, deleted, or never committed); None outside a git checkout.
    """
    root = Path(root) if root is not None else Path(__file__).resolve().parent.parent
    if _git(root, "rev-parse", "--git-dir") is None:
        return None, None
    rev = (commit or "HEAD").removesuffix("+dirty")
    if rev == "unknown":
        rev = "HEAD"
    committed = _git(root, "rev-parse", "--verify", "--quiet", f"{rev}:{PROTOCOL_DOC}")
    path = root / PROTOCOL_DOC
    working = _git(root, "hash-object", "--", str(path)) if path.is_file() else None
    return committed, working != committed


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + os.urandom(2).hex()


def manifest(
    device: str, started: str, jobs: list[dict[str, Any]], argv: list[str] | None = None, commit: str | None = None
) -> dict[str, Any]:
    """The run's provenance. ``commit``: the git commit read when the run started (the code it
    imported); read now when not given (a commit made during a long run would otherwise be
    recorded as the run's). ``protocol_hash`` / ``protocol_dirty``: the protocol page at that
    commit and whether the working copy differs from it (:func:`protocol_version`)."""
    commit = commit if commit is not None else git_commit()
    protocol_hash, protocol_dirty = protocol_version(commit)
    return {
        "package": "infomax-bench",
        "version": bench.__version__,
        "git_commit": commit,
        "protocol_hash": protocol_hash,
        "protocol_dirty": protocol_dirty,
        "libraries": library_versions(),
        "device": device,
        "platform": platform.platform(),
        "command": " ".join(argv if argv is not None else sys.argv),
        "started": started,
        "finished": now(),
        "jobs": jobs,
    }


def write_run(
    out: Path,
    prediction: str,
    run_id: str,
    df: pd.DataFrame,
    config: dict,
    man: dict,
    matrices: pd.DataFrame | None = None,
) -> Path:
    """Write one complete run directory atomically and point ``latest`` at it.

    ``matrices`` (optional): matrix-valued results in long form (``matrix, i, j, value`` with the
    job's columns), kept out of the tidy table as ``matrices.parquet``."""

    for what, name in (("prediction", prediction), ("run_id", run_id)):
        if not _is_name(str(name)):
            raise ValueError(f"{what}: need one plain directory name, got {name!r}")
    pred_dir = Path(out) / prediction
    pred_dir.mkdir(parents=True, exist_ok=True)
    sweep_orphans(pred_dir)  # a killed run's half-written directory (its writer is dead)
    files = {"results.parquet": df.to_parquet(index=False), "results.csv": df.to_csv(index=False).encode()}
    if matrices is not None and len(matrices):
        files["matrices.parquet"] = matrices.to_parquet(index=False)
    files["config.json"] = json.dumps(config, indent=1, default=str).encode()
    files["manifest.json"] = json.dumps(man, indent=1, default=str).encode()
    final = pred_dir / run_id
    atomic_dir_write(final, files)
    atomic_write(pred_dir / "latest", run_id + "\n")
    return final


TIMING_COLUMNS = ("run_id", "train_seconds")  # differ between identical runs, as do *_seconds metrics


def same_values(a: pd.DataFrame, b: pd.DataFrame) -> tuple[bool, str]:
    """Whether two tidy tables hold the same rows and bit-identical values, timings aside;
    when not, a short description of the first difference."""

    def values(df: pd.DataFrame) -> pd.DataFrame:
        df = df[~df["metric"].astype(str).str.endswith("_seconds")]  # timing rows (protocol_seconds)
        return df.drop(columns=[c for c in TIMING_COLUMNS if c in df.columns]).reset_index(drop=True)

    a, b = values(a), values(b)
    if list(a.columns) != list(b.columns):
        return False, f"columns differ: {sorted(set(a.columns) ^ set(b.columns))}"
    if len(a) != len(b):
        return False, f"{len(a)} rows against {len(b)}"
    try:
        pd.testing.assert_frame_equal(a, b, check_exact=True, check_dtype=False)
    except AssertionError as e:
        va, vb = a["value"].to_numpy(float), b["value"].to_numpy(float)
        diff = ~((va == vb) | (np.isnan(va) & np.isnan(vb)))
        gap = float(np.nanmax(np.abs(va - vb)[diff])) if diff.any() else 0.0
        return False, f"{int(diff.sum())} of {len(va)} values differ (max |diff| {gap:.3g}); {str(e).splitlines()[0]}"
    return True, ""


def _is_name(name: str) -> bool:
    """A single path component: no separator, not empty, not ``.`` / ``..``, no NUL."""
    return (
        bool(name) and name not in (".", "..") and not any(c in name for c in "/\\\0") and not Path(name).is_absolute()
    )


def latest_run(out: Path, prediction: str) -> Path | None:
    """The run directory ``out/prediction/latest`` names, or None: no ``latest``, a run that is not
    there, or a ``latest`` whose content is not one plain directory name (``../..``, an absolute
    path, a symlink leading out of ``out/prediction``: never followed outside it)."""
    pred_dir = Path(out) / prediction
    p = pred_dir / "latest"
    if not p.is_file():
        return None
    try:
        name = p.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not _is_name(name):
        return None
    run = pred_dir / name
    if not run.is_dir() or run.resolve().parent != pred_dir.resolve():
        return None
    return run


def read_matrices(run_dir: Path) -> pd.DataFrame:
    """The run's matrices table (empty, with its columns, when the run has none)."""
    path = Path(run_dir) / "matrices.parquet"
    if path.exists():
        return pd.read_parquet(path)
    return pd.DataFrame(columns=["run_id", "dataset", "method", "width", "seed", "matrix", "i", "j", "value"])


def read_run(run_dir: Path) -> tuple[pd.DataFrame, dict, dict]:
    run_dir = Path(run_dir)
    pq = run_dir / "results.parquet"
    df = pd.read_parquet(pq) if pq.exists() else pd.read_csv(run_dir / "results.csv")
    config = json.loads((run_dir / "config.json").read_text())
    man = json.loads((run_dir / "manifest.json").read_text())
    return df, config, man
