"""How a run gets its encoders: trained in this process (per-epoch bars, the seeds of a cell together),
or waited for from the pool and loaded from the cache. :class:`bench.engine.context.RunContext` inherits it;
it expects the context's ``cfg``, ``engine``, ``cache``, ``device``, ``dataset()``, ``_job_dataset()``,
``_fresh`` and ``wait_seconds``. The main RNG is never advanced here (``torch.random.fork_rng``)."""

from __future__ import annotations

import sys
import time
from typing import Any

import torch

from bench.data import Dataset
from bench.engine.jobs import JobSpec
from bench.engine.measure import MeasureTask
from bench.protocol import Encoder
from bench.train import seedbatch


class EncoderAccess:
    """The training and waiting half of a run context (see the module docstring)."""

    def _cells(self, specs: list[JobSpec]) -> list[list[JobSpec]]:
        """``specs`` in groups that train together: the seeds of one cell of a batchable method
        (``batch_seeds=true``), every other job alone; in first-seen order."""
        return seedbatch.cells(specs, self.cfg.batch_seeds, lambda name: self.dataset(name).input_dim)

    def _train_cells(self, specs: list[JobSpec]) -> None:
        """In this process: train the missing seeds of each cell together before they are asked for
        one by one (:meth:`_inline` hands each out as trained now, not cached)."""
        for group in self._cells(specs):
            if len(group) < 2:
                continue
            bar = self.engine.progress.epochs(f"{group[0].method} x{len(group)} seeds", group[0].epochs)
            t0 = time.perf_counter()
            with torch.random.fork_rng(devices=self._rng_devices()):
                encs = self.cache.get_group(
                    group,
                    [self._job_dataset(s) for s in group],
                    on_epoch=None if bar is None else (lambda e, t, bar=bar: bar.update(1)),
                )
            if bar is not None:
                bar.close()
            wall = (time.perf_counter() - t0) / len(group)
            self._fresh.update({e.spec.key: (e, wall) for e in encs if not e.cached})

    def _inline(self, spec: JobSpec, ds: Dataset, quiet: bool = False) -> tuple[Encoder, dict[str, Any]]:
        """Train or load in this process, with a per-epoch bar; the main RNG is left untouched."""
        if spec.key in self._fresh:  # trained a moment ago with its cell's other seeds
            enc, wall = self._fresh.pop(spec.key)
            if not quiet:
                self.engine.progress.job_done(enc)
            return enc, {
                "status": enc.status,
                "cached": False,
                "train_seconds": enc.train_seconds,
                "wall_seconds": wall,
                "load_seconds": 0.0,
                "reason": enc.reason,
            }
        bar = self.engine.progress.epochs(f"{spec.method} s{spec.seed}", spec.epochs)
        on_epoch = None
        if bar is not None:

            def on_epoch(epoch, terms, bar=bar):
                bar.update(1)
                bar.set_postfix_str(f"loss {terms.get('loss', float('nan')):.4g}")

        t0 = time.perf_counter()
        with torch.random.fork_rng(devices=self._rng_devices()):
            enc = self.cache.get(spec, ds, on_epoch, on_wait=self._waiting(spec))
        if bar is not None:
            bar.close()
        wall = time.perf_counter() - t0
        if not quiet:
            self.engine.progress.job_done(enc)
        return enc, {
            "status": enc.status,
            "cached": enc.cached,
            "train_seconds": enc.train_seconds,
            "wall_seconds": wall,
            "load_seconds": wall if enc.cached else 0.0,
            "reason": enc.reason,
        }

    def _pooled(self, spec: JobSpec, ds: Dataset) -> tuple[Encoder, dict[str, Any]]:
        """Wait for the job's worker, then load its encoder from the cache."""
        summary, record = self._wait(spec)
        t1 = time.perf_counter()
        if summary.get("worker_error"):
            enc = Encoder(spec, None, "failed", summary["reason"], 0.0, False, {})
        else:
            with torch.random.fork_rng(devices=self._rng_devices()):
                enc = self.cache.load(spec, ds)
                if enc is None:  # the worker's entry vanished or is corrupt: train it here
                    enc = self.cache.get(spec, ds)
        return enc, {**record, "status": enc.status, "reason": enc.reason, "load_seconds": time.perf_counter() - t1}

    def _wait(self, spec: JobSpec, task: MeasureTask | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Block on the pool for a job (or a measurement): its summary, and its manifest record."""
        t0 = time.perf_counter()
        summary = self.engine.pool.result(spec, task)
        waited = time.perf_counter() - t0
        self.wait_seconds += waited
        return summary, {
            "status": summary["status"],
            "cached": bool(summary["cached"]),
            "train_seconds": summary["train_seconds"],
            "wall_seconds": summary["wall_seconds"],
            "load_seconds": 0.0,
            "waited_seconds": waited,
            "reason": summary["reason"],
            "worker": f"{summary.get('host', '?')}:{summary.get('pid', '?')}",
        }

    def _rng_devices(self) -> list:
        return [self.device] if self.device.type == "cuda" else []

    @staticmethod
    def _waiting(spec: JobSpec):
        def note(holder: dict) -> None:
            print(
                f"waiting for {spec.method} seed={spec.seed} ({spec.key}): being trained by pid "
                f"{holder.get('pid', '?')} on {holder.get('host', '?')}",
                file=sys.stderr,
                flush=True,
            )

        return note
