"""Everything that runs in a worker process (a local pool process, a Dask worker or a Slurm job): its
one-time setup, and the three kinds of task the engines submit, each a picklable call that returns a small
summary: :func:`run_job` (train one encoder into the shared cache, or find it there), :func:`run_group`
(the missing seeds of one cell trained together, then measured) and :func:`run_measure` (train or load an
encoder and measure it, or read the cached measurement). The main process reads results from the caches
alone, so the tables cannot depend on where or in which order tasks ran."""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

import torch

from bench.catalog import load_all
from bench.data import DataConfig, Dataset, load_dataset
from bench.engine.jobs import JobCache, JobSpec, data_mismatch
from bench.engine.measure import MeasureCache, MeasureTask, cached, compute
from bench.storage import release_held

# ----------------------------------------------------------------------------- the job itself
_WORKER: dict[str, Any] = {}


def _worker_init(threads: int) -> None:
    """Once per worker process: register every method, one torch thread per process."""
    load_all()
    torch.set_num_threads(threads)
    _WORKER["threads"] = threads


def _pool_worker_init(threads: int, parent: int) -> None:
    """A local pool process: exit when the main process ``parent`` is gone (a killed ``bench run``
    left its spawned workers training orphaned jobs for over an hour), then :func:`_worker_init`.
    The parent's pid comes from the main process: a worker still importing when the main process
    dies would otherwise take its new parent (init) for the one to watch."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        release_held()  # an entry finished in the last moment must not leave its lock file behind
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    _worker_init(threads)


def _device(device: str):
    if device.startswith("cuda") and ":" not in device and torch.cuda.device_count() > 1:
        return torch.device(f"cuda:{os.getpid() % torch.cuda.device_count()}")  # spread processes over GPUs
    return torch.device(device)


def run_job(spec: JobSpec, cache_root: str, device: str, threads: int = 1) -> dict[str, Any]:
    """Train ``spec`` into the cache at ``cache_root`` (or find it there); return a summary.

    Runs in a worker: a pool process, a Dask worker or a Slurm job. The caller compares the
    returned ``key`` with its own: a worker running other code would compute another key. A
    worker whose data hashes differently from ``spec.data_hash`` fails the job with the reason."""
    if _WORKER.get("threads") != threads:
        _worker_init(threads)
    t0 = time.perf_counter()
    dev = _device(device)
    ds = load_dataset(spec.dataset, spec.data_cfg, dev)
    why = data_mismatch(spec, ds)
    if why:
        return {
            "key": spec.key,
            "status": "failed",
            "reason": why,
            "cached": False,
            "train_seconds": 0.0,
            "wall_seconds": time.perf_counter() - t0,
            "worker_error": True,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "device": str(dev),
        }
    cache = JobCache(cache_root, dev)
    waited: list[dict] = []
    enc = cache.get(spec, ds, on_wait=waited.append)
    return {
        "key": spec.key,
        "status": enc.status,
        "reason": enc.reason,
        "cached": enc.cached,
        "train_seconds": enc.train_seconds,
        "wall_seconds": time.perf_counter() - t0,
        "waited_for": waited[0] if waited else None,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "device": str(dev),
    }


def run_group(
    specs: list[JobSpec], tasks: list | None, cache_root: str, device: str, threads: int = 1
) -> dict[str, Any]:
    """The seeds of one cell in one worker: train the missing ones together
    (:meth:`bench.engine.jobs.JobCache.get_group`), then, given their measurement tasks,
    measure each. Returns ``{"group": {key: summary}}``, a :func:`run_job` (or
    :func:`bench.engine.measure.run_measure`) summary per job (or task) key."""
    if _WORKER.get("threads") != threads:
        _worker_init(threads)
    t0 = time.perf_counter()
    dev = _device(device)
    cache = JobCache(cache_root, dev)
    encs = cache.get_group(specs, [load_dataset(s.dataset, s.data_cfg, dev) for s in specs])
    wall = time.perf_counter() - t0
    out: dict[str, Any] = {}
    for spec, enc in zip(specs, encs, strict=True):
        out[spec.key] = {
            "key": spec.key,
            "status": enc.status,
            "reason": enc.reason,
            "cached": enc.cached,
            "train_seconds": enc.train_seconds,
            "wall_seconds": wall / len(specs),
            "waited_for": None,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "device": str(dev),
            "seed_group": enc.meta.get("seed_group", 1),
        }
    if tasks:
        for task in tasks:
            job = out[task.spec.key]
            summary = run_measure(task, cache_root, device, threads)
            # the encoder was trained by this group a moment ago, not found in the cache
            out[task.key] = {
                **summary,
                "cached": job["cached"],
                "train_seconds": job["train_seconds"],
                "wall_seconds": job["wall_seconds"] + summary["wall_seconds"],
            }
    return {"group": out}


# ----------------------------------------------------------------------------- in a worker
_DATASETS: dict[tuple, Dataset] = {}


def _worker_dataset(device: torch.device):
    def get(name: str, data_cfg: DataConfig) -> Dataset:
        key = (name, data_cfg, str(device))
        if key not in _DATASETS:
            if len(_DATASETS) > 8:  # a worker serves many runs: keep memory bounded
                _DATASETS.clear()
            _DATASETS[key] = load_dataset(name, data_cfg, device)
        return _DATASETS[key]

    return get


def run_measure(task: MeasureTask, cache_root: str, device: str, threads: int = 1) -> dict[str, Any]:
    """Train or load ``task.spec``'s encoder in this worker and measure it (or read the cached
    measurement). Returns the job summary of :func:`run_job` plus
    ``measured`` (rows, matrices, seconds, cached, error)."""
    if _WORKER.get("threads") != threads:
        _worker_init(threads)
    t0 = time.perf_counter()
    dev = _device(device)
    datasets = _worker_dataset(dev)
    cache, mcache = JobCache(cache_root, dev), MeasureCache(cache_root)
    spec = task.spec
    if task.computed_key() != task.key:
        return {
            "key": spec.key,
            "status": "failed",
            "worker_error": True,
            "cached": False,
            "train_seconds": 0.0,
            "wall_seconds": 0.0,
            "measured": None,
            "reason": f"worker computed measurement key {task.computed_key()}, expected {task.key}: it runs other code",
        }
    found = cached(task, cache, mcache)
    waited: list[dict] = []
    if found is not None:
        measured, meta = found
        status, reason, from_cache, train_s = "ok", "", True, meta["train_seconds"]
    else:
        ds = datasets(spec.dataset, spec.data_cfg)
        why = data_mismatch(spec, ds)
        if why:
            return {
                "key": spec.key,
                "status": "failed",
                "worker_error": True,
                "cached": False,
                "train_seconds": 0.0,
                "wall_seconds": time.perf_counter() - t0,
                "measured": None,
                "reason": why,
            }
        enc = cache.get(spec, ds, on_wait=waited.append)
        status, reason, from_cache, train_s = enc.status, enc.reason, enc.cached, enc.train_seconds
        measured = None
        if enc.ok:
            measured = compute(task, enc, datasets, dev)
            mcache.store(task.key, measured)
    return {
        "key": spec.key,
        "status": status,
        "reason": reason,
        "cached": from_cache,
        "train_seconds": train_s,
        "wall_seconds": time.perf_counter() - t0,
        "waited_for": waited[0] if waited else None,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "device": str(dev),
        "measured": measured,
    }
