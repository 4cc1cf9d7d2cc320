"""The jobs side of a command: progress display, the cache and the worker pool, and timing.

:class:`Engine` is shared by the predictions of one command (``prediction=all``): one cache,
one pool (started at the first cache miss), one progress display. :func:`timing` says where a
run's wall time went.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import torch

from bench.config import RunConfig
from bench.engine import executors
from bench.engine.executors import JobPool
from bench.engine.jobs import JobCache, JobSpec
from bench.protocol import Encoder


class Progress:
    """One overall bar on a terminal (plus per-epoch bars for jobs trained in this process) and a
    line per finished job; plain log lines otherwise (CI, files). Safe to call from threads."""

    def __init__(self, total: int = 0, enabled: bool | None = None):
        self.tty = sys.stderr.isatty() if enabled is None else enabled
        self.total, self.done = total, 0
        self.bar = None
        self.lock = threading.Lock()
        if self.tty:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="jobs", unit="job", dynamic_ncols=True)

    def add(self, n: int) -> None:
        with self.lock:
            self.total += n
            if self.bar is not None:
                self.bar.total = self.total
                self.bar.refresh()

    def epochs(self, desc: str, total: int):
        if not self.tty:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit="ep", leave=False, dynamic_ncols=True)

    def line(
        self, spec: JobSpec, cached: bool, seconds: float, ok: bool, reason: str, where: str = "", measured=None
    ) -> None:
        """``measured``: the job's :class:`bench.engine.measure.Measured`, when it was measured too."""
        with self.lock:
            self.done += 1
            how = "cached" if cached else f"trained in {seconds:.1f}s{where}"
            if measured is not None:
                how += ", measurement cached" if measured.cached else f", measured in {measured.seconds:.1f}s"
            status = "" if ok else f"  FAILED: {reason}"
            if measured is not None and measured.error:
                status = f"  MEASUREMENT FAILED: {measured.error}"
            text = (
                f"[{self.done}/{max(self.total, self.done)}] {spec.method} {spec.dataset} K={spec.width} "
                f"seed={spec.seed}: {how}{status}"
            )
            if self.bar is not None:
                self.bar.update(1)
                self.bar.set_postfix_str(f"{spec.method} seed={spec.seed}")
                if not cached or not ok or (measured is not None and not measured.cached):
                    self.bar.write(text)
            else:
                print(text, file=sys.stderr, flush=True)

    def job_done(self, enc: Encoder) -> None:
        self.line(enc.spec, enc.cached, enc.train_seconds, enc.ok, enc.reason)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Engine:
    """The jobs side of one command: the cache, the progress display and (when ``workers > 1``
    or a cluster executor is chosen) the pool; shared by the predictions of ``prediction=all``."""

    def __init__(self, cfg: RunConfig, device: torch.device):
        self.cfg, self.device = cfg, device
        self.cache = JobCache(cfg.cache_dir(), device)
        self.workers = executors.resolve_workers(cfg.workers, device.type)
        self.progress = Progress()
        # a pool when jobs may run elsewhere; its processes (or cluster) start at the first cache miss
        self.parallel = cfg.executor.kind != "local" or self.workers > 1
        self._pool: JobPool | None = None
        self.where = executors.describe(cfg.executor, self.workers)

    @property
    def pool(self) -> JobPool | None:
        return self._pool

    def submit(self, spec: JobSpec, task=None) -> None:
        """Hand a job that is not in the cache (or a :class:`bench.engine.measure.MeasureTask`: the job
        and its measurement) to the pool, started now if need be."""
        self._start().submit(spec, task)

    def _start(self) -> JobPool:
        if self._pool is None:
            ex = executors.make_executor(self.cfg.executor, self.workers, self.cfg.threads, self.cfg.out)
            self._pool = JobPool(ex, str(self.cache.root), str(self.device), self.cfg.threads, self._done)
        return self._pool

    def submit_group(self, specs: list[JobSpec], tasks=None) -> None:
        """Hand the missing seeds of one cell to one worker, to train together (and measure)."""
        self._start().submit_group(specs, tasks)

    def pooled(self, spec: JobSpec, task=None) -> bool:
        return self._pool is not None and (spec.key if task is None else task.key) in self._pool.futures

    def _done(self, summary: dict[str, Any], spec: JobSpec) -> None:
        where = f" on {summary.get('host', '?')}" if self.cfg.executor.kind != "local" else ""
        self.progress.line(
            spec,
            summary["cached"],
            summary["train_seconds"],
            summary["status"] == "ok",
            summary["reason"],
            where,
            measured=summary.get("measured"),
        )

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        self.progress.close()


def timing(
    jobs: list[dict[str, Any]],
    wall: float,
    waited: float = 0.0,
    workers: int = 1,
    where: str = "the main process",
    measured: float = 0.0,
) -> dict[str, Any]:
    """Where a run's wall time went. The main process's wall = waiting for training (training
    in-process with one worker; blocked on the pool otherwise) + cache loads + the protocol.
    ``train_seconds`` is the jobs' own training time summed over workers (worker-seconds);
    ``measure_seconds`` the time spent measuring encoders (:mod:`bench.engine.measure`) wherever that
    ran (in the pool it overlaps the main process's waiting; 0 when every one came from the cache)."""
    trained = [j for j in jobs if not j["cached"]]
    train = sum(j["wall_seconds"] for j in trained)
    load = sum(j.get("load_seconds", j["wall_seconds"] if j["cached"] else 0.0) for j in jobs)
    if workers <= 1 and not waited:
        waited = train
    per_method: dict[str, float] = {}
    for j in trained:
        per_method[j["method"]] = per_method.get(j["method"], 0.0) + j["wall_seconds"]
    top = dict(sorted(per_method.items(), key=lambda kv: -kv[1])[:5])
    return {
        "wall_seconds": wall,
        "jobs_trained": len(trained),
        "jobs_cached": len(jobs) - len(trained),
        "train_seconds": train,
        "waiting_seconds": waited,
        "load_seconds": load,
        "protocol_seconds": max(wall - waited - load, 0.0),
        "slowest_methods_seconds": top,
        "threads": torch.get_num_threads(),
        "workers": workers,
        "where": where,
        "measure_seconds": measured,
    }


def timing_line(t: dict[str, Any]) -> str:
    """One line for the terminal: ``wall 812 s = training 640 s (40 jobs) + ...``."""
    top = ", ".join(f"{m} {s:.0f} s" for m, s in t["slowest_methods_seconds"].items())
    workers = t.get("workers", 1)
    head = (
        f"wall {t['wall_seconds']:.0f} s = waiting for training/measuring {t.get('waiting_seconds', t['train_seconds']):.0f} s"
        f" + cache loads {t['load_seconds']:.0f} s + protocol {t['protocol_seconds']:.0f} s"
    )
    jobs = (
        f"{t['jobs_trained']} jobs trained in {t['train_seconds']:.0f} s of worker time on "
        f"{t.get('where', 'the main process')}{' (slowest: ' + top + ')' if top else ''}, "
        f"{t['jobs_cached']} cache hits"
    )
    dev = f"{t['threads']} torch thread(s) per process" + ("" if workers <= 1 else f", {workers} workers")
    meas = f"measurements {t.get('measure_seconds', 0.0):.0f} s of worker time (the rest read from the cache)"
    return f"{head}; {jobs}; {meas}; {dev}"
