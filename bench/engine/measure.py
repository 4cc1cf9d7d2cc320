"""Measurements: one encoder's evaluation, run where the encoder is and cached like it.

A protocol's per-encoder work (its probes, curves and metrics) is a *measurement*: a method of
the prediction, ``fn(enc, src, *args) -> rows``, that reads one encoder and datasets and returns
tidy rows (and matrices through ``src.matrix``). The protocol asks for them with
:meth:`bench.engine.runner.RunContext.measure` instead of looping over ``encoders()`` itself, so that

* with a pool (``workers > 1``, Dask, Slurm) each measurement runs in the worker that trains or
  loads its encoder, right after training: evaluation is parallel like training, and the main
  process never loads the encoder;
* its result is cached next to the encoders (``cache/measures/KEY.npz``), keyed by the encoder's
  job key, the prediction's config, the measurement's name and arguments, the run's data options,
  the device type and the source of every project module the protocol reaches: an unchanged
  rerun, a ``bench rerun`` or another prediction's ``prediction=all`` reads it back instead of
  measuring again; any change to those re-measures;
* a measurement that raises is recorded as a ``measure_failed`` row with its reason (and one
  stderr line), and the run goes on, like a diverged job.

A measurement runs with the global RNGs seeded from the job's seed (inside
``torch.random.fork_rng``), so its rows do not depend on which process ran it or what ran
before it there.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import sys
import time
import traceback
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench import provenance
from bench.data import DataConfig, Dataset
from bench.data.core import data_identity
from bench.engine.jobs import KEY_LIBRARIES, JobCache, JobSpec
from bench.protocol import Encoder
from bench.storage import atomic_write

MEASURES = "measures"  # the cache's subfolder of measurements
# reached through bench.protocol's View only: they decide verdicts from the tidy table and never run
# inside a measurement, so editing them must not invalidate every cached measurement
PRESENTATION = frozenset(
    {
        "bench.evaluate.verdicts",
        "bench.evaluate.stats",
        "bench.report.plots",
        "bench.report.build",
        "bench.report.summary",
        "bench.report.summary_page",
        "bench.evaluate.families",
        "bench.evaluate.resampling",
        "bench.evaluate.inference",
        "bench.report.pdftable",
    }
)


@functools.cache
def code_hash(module_name: str) -> str:
    """Hash of the source of ``module_name`` and of every project module it reaches through its
    module-level names, transitively (the protocol, its curves and metrics, the probe, ...)."""
    return provenance.code_hash([module_name], exclude=PRESENTATION)


@dataclass(frozen=True)
class MeasureTask:
    """One measurement: ``fn`` (a method of a prediction) applied to the encoder of ``spec``."""

    spec: JobSpec
    fn: Callable[..., list[dict[str, Any]]]  # bound method of a Prediction: pickles by reference
    args: tuple
    data_cfg: DataConfig  # the run's data options at the job's split seed: what ``src.dataset(name)`` resolves against
    device_type: str
    key: str = ""  # computed by :meth:`make` in the main process; a worker checks it against its own

    @classmethod
    def make(
        cls, spec: JobSpec, fn: Callable[..., list[dict[str, Any]]], args: tuple, data_cfg: DataConfig, device_type: str
    ) -> MeasureTask:
        if data_cfg.split_seed != spec.data_cfg.split_seed:  # confirm: split seed = the job's seed, both sides
            raise ValueError(
                f"measurement of {spec.key} on split_seed {data_cfg.split_seed}, but its encoder "
                f"trained on split_seed {spec.data_cfg.split_seed}"
            )
        task = cls(spec, fn, tuple(args), data_cfg, device_type)
        return dataclasses.replace(task, key=task.computed_key())

    @property
    def name(self) -> str:
        owner = self.fn.__self__
        return f"{owner.name}.{self.fn.__name__}"

    def identity(self) -> dict[str, Any]:
        owner = self.fn.__self__
        data_cfg = data_identity(self.data_cfg)  # no root / download; fields added later only when set
        return {
            "job": self.spec.key,
            "measure": self.name,
            "args": repr(self.args),
            "config": dataclasses.asdict(owner.cfg),
            "data": data_cfg,
            "device": self.device_type,
            "code": code_hash(type(owner).__module__),
            "measure_code": code_hash(__name__),
            "libraries": provenance.library_versions(KEY_LIBRARIES),
        }

    def computed_key(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True, default=str)
        return f"{self.spec.method}-{self.fn.__name__.strip('_')}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


class MeasureSource:
    """What a measurement sees (a slice of :class:`bench.protocol.EncoderSource`): the device,
    datasets resolved against the run's data options, and a sink for matrices."""

    def __init__(self, device: torch.device, data_cfg: DataConfig, datasets: Callable[[str, DataConfig], Dataset]):
        self.device = device
        self._data_cfg = data_cfg
        self._datasets = datasets
        self.matrices: list[tuple[str, np.ndarray]] = []

    def dataset(self, name: str, data: dict[str, Any] | None = None) -> Dataset:
        return self._datasets(name, dataclasses.replace(self._data_cfg, **data) if data else self._data_cfg)

    def matrix(self, enc: Encoder, name: str, values: np.ndarray) -> None:
        self.matrices.append((name, np.asarray(values, dtype=float)))


@dataclass
class Measured:
    """A measurement's outcome: rows and matrices, or the reason it failed."""

    rows: list[dict[str, Any]]
    matrices: list[tuple[str, np.ndarray]]
    seconds: float
    cached: bool = False
    error: str = ""


def compute(
    task: MeasureTask, enc: Encoder, datasets: Callable[[str, DataConfig], Dataset], device: torch.device
) -> Measured:
    """Run the measurement on ``enc`` with the RNGs seeded from the job's seed."""
    src = MeasureSource(device, task.data_cfg, datasets)
    t0 = time.perf_counter()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(task.spec.seed)
            rows = list(task.fn(enc, src, *task.args))
    except Exception as e:  # noqa: BLE001 - recorded as a failed measurement, the sweep goes on
        where = traceback.extract_tb(e.__traceback__)[-1]
        first = (str(e).strip().splitlines() or [""])[0][:200]
        why = f"{type(e).__name__}: {first} ({Path(where.filename).name}:{where.lineno})"
        return Measured([], [], time.perf_counter() - t0, error=why)
    return Measured(rows, src.matrices, time.perf_counter() - t0)


class MeasureCache:
    """``ROOT/measures/KEY.npz``: the rows (JSON) and matrices of one measurement, one file
    written atomically (``allow_pickle=False`` on reading). Failed measurements are not cached."""

    def __init__(self, root: str | Path):
        self.root = Path(root) / MEASURES

    def path(self, key: str) -> Path:
        return self.root / f"{key}.npz"

    def has(self, key: str) -> bool:
        return self.path(key).exists()

    def load(self, key: str) -> Measured | None:
        try:
            with np.load(self.path(key), allow_pickle=False) as z:
                meta = json.loads(z["meta"].tobytes().decode())
                if meta.get("key") != key:
                    raise ValueError(f"it belongs to {meta.get('key')}")
                mats = [(name, z[f"m{i}"]) for i, name in enumerate(meta["matrices"])]
                return Measured(meta["rows"], mats, meta["seconds"], cached=True)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
            print(
                f"bench: warning: measurement {self.path(key)} is unusable ({type(e).__name__}: {e}); measuring again",
                file=sys.stderr,
                flush=True,
            )
            return None

    def store(self, key: str, m: Measured) -> None:
        if m.error:
            return
        meta = {"key": key, "rows": m.rows, "seconds": m.seconds, "matrices": [n for n, _ in m.matrices]}
        arrays = {"meta": np.frombuffer(json.dumps(meta, default=str).encode(), dtype=np.uint8)}
        arrays |= {f"m{i}": v for i, (_, v) in enumerate(m.matrices)}
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write(self.path(key), buf.getvalue())


def cached_job(cache: JobCache, spec: JobSpec) -> dict[str, Any] | None:
    """The job's checked metadata when its entry is usable without loading the encoder (None:
    absent or corrupt, so the encoder must be loaded or trained)."""
    try:
        return cache.read_meta(spec)
    except Exception:  # noqa: BLE001 - CacheCorrupt and friends: the slow path reports it
        return None


def cached(
    task: MeasureTask, cache: JobCache, mcache: MeasureCache, read: bool = True
) -> tuple[Measured | None, dict[str, Any]] | None:
    """``(measurement, job meta)`` when both the measurement and its successful job are cached,
    else None; with ``read=False`` the measurement file is only looked for, not read (planning)."""
    if not mcache.has(task.key):
        return None
    meta = cached_job(cache, task.spec)
    if meta is None or meta["status"] != "ok":
        return None
    if not read:
        return None, meta
    hit = mcache.load(task.key)
    return None if hit is None else (hit, meta)
