"""Where jobs run: in the main process, a local process pool, a Dask cluster or Slurm.

Every engine is a standard :class:`concurrent.futures.Executor`; a job is one call of
:func:`run_job` (a picklable spec plus the cache directory), which trains the encoder into the
shared cache (or finds it there) and returns a small summary. The main process loads the
encoder from the cache, so the tables cannot depend on where or in which order jobs ran: each
job seeds itself and shares no RNG (docs/protocol.md §1: a job is deterministic on CPU).

* ``executor=local`` (default): ``workers=1`` trains in the main process (per-epoch bars);
  ``workers=N`` uses N spawned processes; ``workers=auto``: the usable CPU cores on CPU (one
  torch thread each), several processes sharing each GPU on CUDA.
* ``executor=dask``: a Dask distributed scheduler at ``executor.address=tcp://host:8786``, or a
  local cluster (``workers`` processes, one thread each) when no address is given.
* ``executor=slurm``: one Slurm job per encoder through submitit (``executor.partition``,
  ``executor.gpus_per_job``, ``executor.cpus_per_job``, ``executor.time_min``); logs under
  ``executor.folder`` (default ``<out>/slurm``). ``executor.cluster=local`` runs the same code
  through submitit's local executor (the tests do).

Workers on other machines need the same code and data (the job key hashes the source and the
data's bytes: a worker whose code or data differs is refused) and a ``cache=`` directory every
worker can reach. The missing seeds of one cell go to one worker as one task (:func:`run_group`)
and train together (:mod:`bench.seedbatch`).
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.jobs import JobSpec

ENGINES = ("local", "dask", "slurm")
GPU_WORKERS_PER_DEVICE = 6  # tiny models leave one GPU idle between a single process's kernel launches


@dataclass(frozen=True)
class ExecutorConfig:
    """``executor=`` and its ``executor.*`` options (defaults here, and only here)."""

    kind: str = "local"
    address: str = ""  # dask: scheduler address; empty = a local cluster
    partition: str = ""  # slurm partition
    gpus_per_job: int = 0
    cpus_per_job: int = 1
    time_min: int = 60  # slurm time limit per job, minutes
    cluster: str = "slurm"  # submitit cluster: "slurm", or "local" (tests, a workstation)
    folder: str = ""  # submitit logs; empty = <out>/slurm

    def check(self) -> None:
        if self.kind not in ENGINES:
            raise ValueError(f"executor: unknown '{self.kind}' (choices: {', '.join(ENGINES)})")
        if self.cluster not in ("slurm", "local"):
            raise ValueError(f"executor.cluster: unknown '{self.cluster}' (choices: slurm, local)")
        if self.address and not self.address.startswith(("tcp://", "tls://", "inproc://", "ucx://")):
            raise ValueError(f"executor.address: expected tcp://HOST:PORT, got '{self.address}'")
        for key in ("gpus_per_job", "cpus_per_job", "time_min"):
            lo = 0 if key == "gpus_per_job" else 1
            if getattr(self, key) < lo:
                raise ValueError(f"executor.{key}: must be >= {lo}, got {getattr(self, key)}")


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_workers(workers: int | str, device_type: str) -> int:
    """``auto``: one process per usable core on CPU; on CUDA, several per GPU (capped by cores)."""
    if workers != "auto":
        return int(workers)
    cores = usable_cores()
    if device_type == "cuda":
        import torch

        return max(1, min(cores, GPU_WORKERS_PER_DEVICE * torch.cuda.device_count()))
    return cores


# ----------------------------------------------------------------------------- the job itself
_WORKER: dict[str, Any] = {}


def _worker_init(threads: int) -> None:
    """Once per worker process: register every method, one torch thread per process."""
    import torch

    from bench.catalog import load_all

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
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    _worker_init(threads)


def _device(device: str):
    import torch

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
    from bench.data import load_dataset
    from bench.jobs import JobCache, data_mismatch

    t0 = time.perf_counter()
    dev = _device(device)
    ds = load_dataset(spec.dataset, spec.data_cfg, dev)
    why = data_mismatch(spec, ds)
    if why:
        return {"key": spec.key, "status": "failed", "reason": why, "cached": False, "train_seconds": 0.0,
                "wall_seconds": time.perf_counter() - t0, "worker_error": True, "pid": os.getpid(),
                "host": socket.gethostname(), "device": str(dev)}
    cache = JobCache(cache_root, dev)
    waited: list[dict] = []
    enc = cache.get(spec, ds, on_wait=waited.append)
    return {"key": spec.key, "status": enc.status, "reason": enc.reason, "cached": enc.cached,
            "train_seconds": enc.train_seconds, "wall_seconds": time.perf_counter() - t0,
            "waited_for": waited[0] if waited else None, "pid": os.getpid(), "host": socket.gethostname(),
            "device": str(dev)}


def run_group(specs: list[JobSpec], tasks: list | None, cache_root: str, device: str,
              threads: int = 1) -> dict[str, Any]:
    """The seeds of one cell in one worker: train the missing ones together
    (:meth:`bench.jobs.JobCache.get_group`), then, given their measurement tasks,
    measure each. Returns ``{"group": {key: summary}}``, a :func:`run_job` (or
    :func:`bench.measure.run_measure`) summary per job (or task) key."""
    if _WORKER.get("threads") != threads:
        _worker_init(threads)
    from bench.data import load_dataset
    from bench.jobs import JobCache

    t0 = time.perf_counter()
    dev = _device(device)
    cache = JobCache(cache_root, dev)
    encs = cache.get_group(specs, [load_dataset(s.dataset, s.data_cfg, dev) for s in specs])
    wall = time.perf_counter() - t0
    out: dict[str, Any] = {}
    for spec, enc in zip(specs, encs, strict=True):
        out[spec.key] = {"key": spec.key, "status": enc.status, "reason": enc.reason, "cached": enc.cached,
                         "train_seconds": enc.train_seconds, "wall_seconds": wall / len(specs), "waited_for": None,
                         "pid": os.getpid(), "host": socket.gethostname(), "device": str(dev),
                         "seed_group": enc.meta.get("seed_group", 1)}
    if tasks:
        from bench.measure import run_measure

        for task in tasks:
            job = out[task.spec.key]
            summary = run_measure(task, cache_root, device, threads)
            # the encoder was trained by this group a moment ago, not found in the cache
            out[task.key] = {**summary, "cached": job["cached"], "train_seconds": job["train_seconds"],
                             "wall_seconds": job["wall_seconds"] + summary["wall_seconds"]}
    return {"group": out}


# ----------------------------------------------------------------------------- engines
class SubmititExecutor(cf.Executor):
    """submitit's executor behind ``concurrent.futures``: a Future per submitted Slurm job."""

    def __init__(self, cfg: ExecutorConfig, folder: str):
        import submitit

        self.inner = submitit.AutoExecutor(folder=folder, cluster=cfg.cluster)
        params: dict[str, Any] = {"timeout_min": cfg.time_min, "cpus_per_task": cfg.cpus_per_job,
                                  "gpus_per_node": cfg.gpus_per_job, "name": "bench"}
        if cfg.partition:
            params["slurm_partition"] = cfg.partition
        self.inner.update_parameters(**params)
        self.waiters = cf.ThreadPoolExecutor(max_workers=32, thread_name_prefix="submitit-wait")

    def submit(self, fn, /, *args, **kwargs) -> cf.Future:
        job = self.inner.submit(fn, *args, **kwargs)
        return self.waiters.submit(job.result)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.waiters.shutdown(wait=wait, cancel_futures=cancel_futures)


class DaskExecutor(cf.Executor):
    """A Dask distributed client's ``concurrent.futures`` executor (and the local cluster it made)."""

    def __init__(self, cfg: ExecutorConfig, workers: int):
        from distributed import Client, LocalCluster

        self.cluster = None
        if cfg.address:
            self.client = Client(cfg.address)
        else:
            self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                        dashboard_address=None, host="127.0.0.1")
            self.client = Client(self.cluster)
        self.inner = self.client.get_executor(pure=False)

    def submit(self, fn, /, *args, **kwargs) -> cf.Future:
        return self.inner.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.inner.shutdown(wait=wait)
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def make_executor(cfg: ExecutorConfig, workers: int, threads: int, out: str) -> cf.Executor | None:
    """The engine for a run; None means train in the main process (``local`` with one worker)."""
    if cfg.kind == "local":
        if workers <= 1:
            return None
        import multiprocessing as mp

        return cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                      initializer=_pool_worker_init, initargs=(threads, os.getpid()))
    if cfg.kind == "dask":
        return DaskExecutor(cfg, max(workers, 1))
    return SubmititExecutor(cfg, cfg.folder or os.path.join(out, "slurm"))


class JobPool:
    """Submits jobs to an executor once each and hands their summaries back in any order.

    ``on_done(summary, spec)`` is called (in a helper thread) as each job finishes: the progress
    line. A job that raised in its worker (a bug, a killed process, a lost node) comes back as a
    ``failed`` summary with the reason, not cached, so the sweep goes on and a rerun retries it.
    """

    def __init__(self, executor: cf.Executor, cache_root: str, device: str, threads: int, on_done=None):
        self.executor, self.cache_root, self.device, self.threads = executor, cache_root, device, threads
        self.futures: dict[str, cf.Future] = {}
        self.specs: dict[str, JobSpec] = {}
        self.on_done = on_done
        self.lock = threading.Lock()

    def submit(self, spec: JobSpec, task=None) -> cf.Future:
        """Train ``spec`` (or, given a :class:`bench.measure.MeasureTask`, train it and measure it
        in the same worker); a key already submitted returns its future."""
        key = spec.key if task is None else task.key
        with self.lock:
            if key in self.futures:
                return self.futures[key]
            if task is None:
                fut = self.executor.submit(run_job, spec, self.cache_root, self.device, self.threads)
            else:
                from bench.measure import run_measure

                fut = self.executor.submit(run_measure, task, self.cache_root, self.device, self.threads)
            self.futures[key], self.specs[key] = fut, spec
        if self.on_done is not None:
            fut.add_done_callback(lambda f, spec=spec, key=key: self.on_done(self._summary(f, spec, key), spec))
        return fut

    def submit_group(self, specs: list[JobSpec], tasks: list | None = None) -> None:
        """Train the seeds of one cell together in one worker (:func:`run_group`), then measure each
        given its tasks (``tasks[i]`` is ``specs[i]``'s); keys already submitted are left out."""
        keys = [s.key for s in specs] if tasks is None else [t.key for t in tasks]
        with self.lock:
            todo = [i for i, k in enumerate(keys) if k not in self.futures]
            if not todo:
                return
            specs = [specs[i] for i in todo]
            tasks = None if tasks is None else [tasks[i] for i in todo]
            fut = self.executor.submit(run_group, specs, tasks, self.cache_root, self.device, self.threads)
            for i, spec in zip(todo, specs, strict=True):
                self.futures[keys[i]], self.specs[keys[i]] = fut, spec
        if self.on_done is not None:
            for i, spec in zip(todo, specs, strict=True):
                fut.add_done_callback(lambda f, spec=spec, key=keys[i]: self.on_done(self._summary(f, spec, key), spec))

    @staticmethod
    def _summary(fut: cf.Future, spec: JobSpec, key: str | None = None) -> dict[str, Any]:
        try:
            out = fut.result()
        except BaseException as e:  # noqa: BLE001 - a worker's failure is recorded, never raised
            first = (str(e).strip().splitlines() or [""])[0][:200]
            return {"key": spec.key, "status": "failed", "reason": f"worker error: {type(e).__name__}: {first}",
                    "cached": False, "train_seconds": 0.0, "wall_seconds": 0.0, "worker_error": True}
        if "group" in out:  # one summary per job or task of a seed group
            out = out["group"].get(key or spec.key) or {"key": "?"}
        if out["key"] != spec.key:
            return {**out, "status": "failed", "worker_error": True,
                    "reason": f"worker computed job key {out['key']}, expected {spec.key}: it runs other code"}
        return out

    def result(self, spec: JobSpec, task=None) -> dict[str, Any]:
        return self._summary(self.submit(spec, task), spec, spec.key if task is None else task.key)

    @property
    def pending(self) -> int:
        return sum(not f.done() for f in self.futures.values())

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


def describe(cfg: ExecutorConfig, workers: int) -> str:
    if cfg.kind == "local":
        return "the main process" if workers <= 1 else f"{workers} local worker processes"
    if cfg.kind == "dask":
        return f"dask at {cfg.address}" if cfg.address else f"a local dask cluster of {workers} workers"
    return f"submitit ({cfg.cluster}{', partition ' + cfg.partition if cfg.partition else ''})"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
