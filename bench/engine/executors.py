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
and train together (:mod:`bench.train.seedbatch`).
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import sys
import threading
from typing import TYPE_CHECKING, Any

from bench.config import ENGINES, ExecutorConfig  # noqa: F401 (re-exported)
from bench.provenance import usable_cores  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    from bench.engine.jobs import JobSpec

GPU_WORKERS_PER_DEVICE = 6  # tiny models leave one GPU idle between a single process's kernel launches


def resolve_workers(workers: int | str, device_type: str) -> int:
    """``auto``: one process per usable core on CPU; on CUDA, several per GPU (capped by cores)."""
    if workers != "auto":
        return int(workers)
    cores = usable_cores()
    if device_type == "cuda":
        import torch

        return max(1, min(cores, GPU_WORKERS_PER_DEVICE * torch.cuda.device_count()))
    return cores


# ----------------------------------------------------------------------------- engines
class SubmititExecutor(cf.Executor):
    """submitit's executor behind ``concurrent.futures``: a Future per submitted Slurm job."""

    def __init__(self, cfg: ExecutorConfig, folder: str):
        import submitit

        self.inner = submitit.AutoExecutor(folder=folder, cluster=cfg.cluster)
        params: dict[str, Any] = {
            "timeout_min": cfg.time_min,
            "cpus_per_task": cfg.cpus_per_job,
            "gpus_per_node": cfg.gpus_per_job,
            "name": "bench",
        }
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
            self.cluster = LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1"
            )
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
    from bench.engine import worker  # imported when a pool is made: bench.config reads ExecutorConfig without torch

    if cfg.kind == "local":
        if workers <= 1:
            return None
        import multiprocessing as mp

        return cf.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=mp.get_context("spawn"),
            initializer=worker._pool_worker_init,
            initargs=(threads, os.getpid()),
        )
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
        from bench.engine import worker

        self.worker = worker
        self.executor, self.cache_root, self.device, self.threads = executor, cache_root, device, threads
        self.futures: dict[str, cf.Future] = {}
        self.specs: dict[str, JobSpec] = {}
        self.on_done = on_done
        self.lock = threading.Lock()

    def submit(self, spec: JobSpec, task=None) -> cf.Future:
        """Train ``spec`` (or, given a :class:`bench.engine.measure.MeasureTask`, train it and measure it
        in the same worker); a key already submitted returns its future."""
        key = spec.key if task is None else task.key
        with self.lock:
            if key in self.futures:
                return self.futures[key]
            if task is None:
                fut = self.executor.submit(self.worker.run_job, spec, self.cache_root, self.device, self.threads)
            else:
                fut = self.executor.submit(self.worker.run_measure, task, self.cache_root, self.device, self.threads)
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
            fut = self.executor.submit(self.worker.run_group, specs, tasks, self.cache_root, self.device, self.threads)
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
            return {
                "key": spec.key,
                "status": "failed",
                "reason": f"worker error: {type(e).__name__}: {first}",
                "cached": False,
                "train_seconds": 0.0,
                "wall_seconds": 0.0,
                "worker_error": True,
            }
        if "group" in out:  # one summary per job or task of a seed group
            out = out["group"].get(key or spec.key) or {"key": "?"}
        if out["key"] != spec.key:
            return {
                **out,
                "status": "failed",
                "worker_error": True,
                "reason": f"worker computed job key {out['key']}, expected {spec.key}: it runs other code",
            }
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
