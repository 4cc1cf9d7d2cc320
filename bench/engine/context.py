"""The runner's :class:`bench.protocol.EncoderSource`: what a protocol sees of a run.

:class:`RunContext` serves the datasets on the run's device, the seeds, ``encoders()`` (trained or
loaded through the content-addressed cache) and ``measure()`` (a protocol's per-encoder work, run
where the encoder is and cached: :mod:`bench.engine.measure`). Failed jobs are recorded as ``job_failed``
rows with their reason (never dropped) and are not handed to the prediction; methods that cannot
run on the data become ``job_skipped`` rows with theirs, so every requested method is in the table.
Progress bars, threads, the pool and the cache stay here and in :mod:`bench.engine.scheduler`.

Splits (docs/protocol.md, data and profiles): outside ``confirm`` every job and measurement reads
``data.split_seed`` [0]. In ``confirm`` the split seed is the job's seed: the job of seed s trains
on the split (and the generated ``dsprites`` draws, ``ica`` sources and mixing) of split_seed = s,
and every measurement of that encoder resolves its ``src.dataset(...)`` against the same split
seed (its :class:`bench.engine.measure.MeasureTask` carries that data config). What a protocol's ``run``
reads outside a measurement (``src.dataset(name)``: input sizes, class lists, factor names) is
the first seed's split there, or any seed's with ``seed=``.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import torch

from bench.config import ConfigError, RunConfig
from bench.data import DataConfig, Dataset, canonical_config, load_dataset
from bench.engine.fetch import EncoderAccess
from bench.engine.jobs import JobSpec, data_info
from bench.engine.measure import MeasureCache, Measured, MeasureTask, cached, compute
from bench.engine.scheduler import Engine
from bench.protocol import Encoder, Prediction, data_tag, row
from bench.train.methods import METHODS


class RunContext(EncoderAccess):
    """The runner's :class:`bench.protocol.EncoderSource`: data, encoders, seeds, matrices."""

    def __init__(
        self,
        cfg: RunConfig,
        prediction: Prediction,
        device: torch.device,
        methods: list[str],
        engine: Engine | None = None,
    ):
        self.cfg, self.prediction, self.device, self.methods = cfg, prediction, device, methods
        self.pcfg = prediction.cfg
        self.seeds: list[int] = cfg.resolved_seeds()
        self.profile: str = cfg.profile
        self.batch_size: int = cfg.batch_size
        self.engine = engine or Engine(cfg, device)
        self.cache = self.engine.cache
        self.jobs: list[dict[str, Any]] = []
        self.failure_rows: list[dict[str, Any]] = []
        self.matrices: list[pd.DataFrame] = []
        self.skipped: list[dict[str, Any]] = []  # methods that cannot run on the data, with why
        self.wait_seconds = 0.0  # the main process blocked on the pool
        self.measure_seconds = 0.0  # measurements computed for this run (worker-seconds)
        self.mcache = MeasureCache(self.cache.root)
        self.planning = self.planned = False
        self.recorder = (
            None  # bench.engine.plan's dry run: encoders()/measure() hand it their specs/tasks, yield nothing
        )
        self._datasets: dict[tuple, Dataset] = {}
        self._fresh: dict[str, tuple[Encoder, float]] = {}  # trained with their cell, not yet handed out

    @property
    def dataset_name(self) -> str:
        return self.pcfg.dataset

    def split_seed(self, seed: int | None = None) -> int:
        """The split seed of a job of ``seed``: the seed itself in ``confirm`` (None: the first of the
        run's seeds), else ``data.split_seed``, whatever the seed."""
        if self.profile != "confirm":
            return self.cfg.data.split_seed
        return self.seeds[0] if seed is None else seed

    def data_config(
        self, data: dict[str, Any] | None = None, seed: int | None = None, name: str | None = None
    ) -> DataConfig:
        """The run's data options for a job of ``seed`` (its split seed: :meth:`split_seed`), with a
        protocol's ``data`` overrides (e.g. ``{"mixing": "nonlinear"}``) on dataset ``name`` (default the
        run's); a ``pretrain_n`` that names the whole default training set is the default (one data, one key:
        :func:`bench.data.canonical_config`)."""
        base = self.cfg.data
        split = self.split_seed(seed)
        if split != base.split_seed:
            base = dataclasses.replace(base, split_seed=split)
        if not data:
            return base
        return canonical_config(name or self.dataset_name, dataclasses.replace(base, **data))

    def dataset(self, name: str | None = None, data: dict[str, Any] | None = None, seed: int | None = None) -> Dataset:
        """The run's dataset (or ``name``) with ``data`` overrides, split for a job of ``seed``
        (:meth:`split_seed`; it only matters in ``confirm``)."""
        name = name or self.dataset_name
        return self._dataset_for(name, self.data_config(data, seed, name))

    def _job_dataset(self, spec: JobSpec) -> Dataset:
        """The dataset ``spec`` trains on: its own data config (in ``confirm``, its seed's split)."""
        return self._dataset_for(spec.dataset, spec.data_cfg)

    def _dataset_for(self, name: str, data_cfg: DataConfig) -> Dataset:
        key = (name, data_cfg)
        if key not in self._datasets:  # one copy per device (a GPU copy per call would add up)
            try:
                self._datasets[key] = load_dataset(key[0], key[1], self.device)
            except ValueError as e:  # a class subset the base does not have
                raise ConfigError(str(e)) from None
        return self._datasets[key]

    def matrix(self, enc: Encoder, name: str, values: np.ndarray) -> None:
        """Collect a matrix-valued result as long rows (integer indices) of the matrices table."""
        if not self.planning:
            self._matrix(enc.spec, name, values)

    def _matrix(self, s: JobSpec, name: str, values: np.ndarray) -> None:
        v = np.asarray(values, dtype=float)
        i, j = np.indices(v.shape)
        self.matrices.append(
            pd.DataFrame(
                {
                    "dataset": s.dataset,
                    "method": s.method,
                    "width": s.width,
                    "seed": s.seed,
                    "matrix": name,
                    "i": i.ravel().astype(np.int32),
                    "j": j.ravel().astype(np.int32),
                    "value": v.ravel(),
                }
            )
        )

    def spec(
        self,
        method: str,
        width: int,
        seed: int,
        dataset: str | None = None,
        data: dict[str, Any] | None = None,
        method_cfg: dict[str, Any] | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
    ) -> JobSpec:
        """The job; ``method_cfg`` overrides fields of the method's run config (P3's CNN channel width);
        ``epochs`` the dataset's budget (an open question's equal-steps budget across data sizes),
        ``batch_size`` the run's (an open question's B = 2K sensitivity)."""
        name = dataset or self.dataset_name
        # input size and classes do not depend on the split: the run-level copy answers for every seed
        width = METHODS.get(method).resolve_width(data_info(self.dataset(name, data)), width)
        mcfg = self.cfg.method_config(method)
        if method_cfg:
            try:
                mcfg = dataclasses.replace(mcfg, **method_cfg)
                mcfg.check()
            except (TypeError, ValueError) as e:
                raise ConfigError(f"{method}: {e}") from None
        data_cfg = self.data_config(data, seed, name)  # the key hashes the data the job reads: its own split
        return JobSpec(
            method,
            mcfg,
            name,
            data_cfg,
            width,
            seed,
            epochs or self.cfg.resolved_epochs(name),
            batch_size or self.cfg.batch_size,
            self._dataset_for(name, data_cfg).content_hash,
            self.cfg.compile,
        )

    def plan(self) -> int:
        """Run the protocol against a recorder: submit every job it asks for to the pool now.

        Best effort: a protocol that stops early on the empty encoders has submitted what it
        asked for so far; whatever it asks for later is submitted then. Returns the jobs planned."""
        if not self.engine.parallel or self.planned:
            return 0
        self.planned = True
        before = len(self.engine.pool.futures) if self.engine.pool else 0
        self.planning = True
        try:
            for _ in self.prediction.run(self):
                pass
        except Exception:  # noqa: BLE001 - planning only; the real run reports errors
            pass
        finally:
            self.planning = False
        return (len(self.engine.pool.futures) if self.engine.pool else 0) - before

    def _select(
        self, methods, widths, seeds, dataset, data, method_cfg=None, epochs=None, batch_size=None
    ) -> tuple[list[JobSpec], Dataset, dict[str, str]]:
        """The jobs of a selection (methods that cannot run on the data become ``job_skipped``
        rows with their reason), its run-level dataset (what a job trains on is
        :meth:`_job_dataset`: its split may differ), and the ``data`` (and ``method_cfg``) tags of
        its status rows."""
        methods = list(methods or self.methods)
        widths = list(widths or [self.pcfg.width])
        seeds = list(seeds if seeds is not None else self.seeds)
        ds = self.dataset(dataset, data)
        tag = {"data": data_tag(data)} if data else {}  # status rows say which DataConfig they are for
        if method_cfg:
            tag["method_cfg"] = data_tag(method_cfg)
        if epochs:  # a request's own budget (a question's axis): its status rows say which point they are
            tag["epochs"] = epochs
        if batch_size:
            tag["batch_size"] = batch_size
        for m in list(methods):
            why = METHODS.get(m).unsupported(data_info(ds))
            if why:
                methods.remove(m)
                if self.planning:
                    continue
                self.skipped.append({"method": m, "dataset": ds.name, "reason": why})
                self.failure_rows += [
                    {
                        "dataset": ds.name,
                        "method": m,
                        "width": w,
                        "seed": s,
                        "metric": "job_skipped",
                        "value": 1.0,
                        "note": why,
                        **tag,
                    }
                    for w in widths
                    for s in seeds
                ]
                print(f"skipping {m} on {ds.name}: {why}", file=sys.stderr)
        specs = [
            self.spec(m, w, s, dataset, data, method_cfg, epochs, batch_size)
            for m in methods
            for w in widths
            for s in seeds
        ]
        return list(dict.fromkeys(specs)), ds, tag  # raw: one job whatever the width

    def encoders(
        self,
        methods: Iterable[str] | None = None,
        widths: Iterable[int] | None = None,
        seeds: Iterable[int] | None = None,
        dataset: str | None = None,
        data: dict[str, Any] | None = None,
        method_cfg: dict[str, Any] | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
    ) -> Iterator[Encoder]:
        """Train or load every (method, width, seed) job; yield the successful encoders.

        ``dataset`` and ``data`` (DataConfig overrides) select another dataset than the run's;
        ``method_cfg`` overrides fields of the selection's method configs (e.g. ``{"channels": 6}``)."""
        specs, _, tag = self._select(methods, widths, seeds, dataset, data, method_cfg, epochs, batch_size)
        if self.recorder is not None:  # a dry run (bench plan): what would be trained, nothing yielded
            self.recorder.jobs(specs)
            return
        engine = self.engine
        if engine.parallel:  # misses go to the pool now (a cell's seeds together); hits load here
            misses = [s for s in specs if not engine.pooled(s) and not self.cache.has(s)]
            engine.progress.add(len(misses))
            for group in self._cells(misses):
                engine.submit_group(group) if len(group) > 1 else engine.submit(group[0])
        if self.planning:
            return
        engine.progress.add(sum(not engine.pooled(s) for s in specs))
        if not engine.parallel:
            self._train_cells([s for s in specs if not self.cache.has(s)])
        for spec in specs:
            own = self._job_dataset(spec)
            enc, record = self._pooled(spec, own) if engine.pooled(spec) else self._inline(spec, own)
            self._record(spec, record)
            if enc.ok:
                yield enc
            else:
                self.failure_rows.append(row(enc, "job_failed", 1.0, note=enc.reason, **tag))

    def measure(
        self,
        fn: Callable[..., list[dict[str, Any]]],
        *args: Any,
        methods: Iterable[str] | None = None,
        widths: Iterable[int] | None = None,
        seeds: Iterable[int] | None = None,
        dataset: str | None = None,
        data: dict[str, Any] | None = None,
        method_cfg: dict[str, Any] | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """For every successful job of the selection (as :meth:`encoders`), the rows of the
        measurement ``fn(enc, src, *args)`` (a method of the prediction), in the selection's order.

        With a pool each measurement runs in the worker that trains or loads its encoder; either
        way it is cached (:mod:`bench.engine.measure`). A measurement that raises becomes a
        ``measure_failed`` row with its reason."""
        specs, _, tag = self._select(methods, widths, seeds, dataset, data, method_cfg, epochs, batch_size)
        # a measurement reads the split its encoder trained on (confirm: the job's seed's)
        tasks = [MeasureTask.make(spec, fn, args, self.data_config(seed=spec.seed), self.device.type) for spec in specs]
        if self.recorder is not None:  # a dry run (bench plan): what would be measured, nothing yielded
            self.recorder.measures(tasks)
            return
        engine = self.engine
        todo = [
            t for t in tasks if not engine.pooled(t.spec, t) and cached(t, self.cache, self.mcache, read=False) is None
        ]
        train = [t for t in todo if not self.cache.has(t.spec)]  # a cell's missing seeds train together
        if engine.parallel:  # what is not measured yet goes to the pool now, job and measurement together
            engine.progress.add(len(todo))
            by_spec = {t.spec: t for t in train}
            for group in self._cells([t.spec for t in train]):
                if len(group) > 1:
                    engine.submit_group(group, [by_spec[s] for s in group])
            for t in todo:
                engine.submit(t.spec, t)  # the rest; a task already in a group keeps its group
        if self.planning:
            return
        engine.progress.add(sum(not engine.pooled(t.spec, t) for t in tasks))
        if not engine.parallel:
            self._train_cells([t.spec for t in train])
        for t in tasks:
            if engine.pooled(t.spec, t):
                summary, record = self._wait(t.spec, t)
                measured = summary.get("measured")
            else:
                measured, record = self._measure_here(t, self._job_dataset(t.spec))
            self._record(t.spec, record)
            if record["status"] != "ok":
                self.failure_rows.append(
                    {**_status_row(t.spec), "metric": "job_failed", "value": 1.0, "note": record["reason"], **tag}
                )
                continue
            self.measure_seconds += 0.0 if measured.cached else measured.seconds
            if measured.error:
                print(
                    f"bench: measurement {t.name} of {t.spec.method} seed={t.spec.seed} failed: {measured.error}",
                    file=sys.stderr,
                    flush=True,
                )
                self.failure_rows.append(
                    {
                        **_status_row(t.spec),
                        "metric": "measure_failed",
                        "value": 1.0,
                        "note": f"{t.name}: {measured.error}",
                        **tag,
                    }
                )
                continue
            for name, values in measured.matrices:
                self._matrix(t.spec, name, values)
            yield [dict(r) for r in measured.rows]

    def _measure_here(self, task: MeasureTask, ds: Dataset) -> tuple[Measured | None, dict[str, Any]]:
        """In this process: the cached measurement (the encoder is not even loaded), else train or
        load the encoder and measure it."""
        found = cached(task, self.cache, self.mcache)
        if found is not None:
            hit, meta = found
            self.engine.progress.line(task.spec, True, meta["train_seconds"], True, "", measured=hit)
            return hit, {
                "status": "ok",
                "cached": True,
                "train_seconds": meta["train_seconds"],
                "wall_seconds": 0.0,
                "load_seconds": 0.0,
                "reason": "",
            }
        enc, record = self._inline(task.spec, ds, quiet=True)
        if not enc.ok:
            self.engine.progress.job_done(enc)
            return None, record
        measured = compute(task, enc, lambda name, cfg: self._dataset_for(name, cfg), self.device)
        self.mcache.store(task.key, measured)
        self.engine.progress.line(task.spec, enc.cached, enc.train_seconds, True, "", measured=measured)
        return measured, record

    def _record(self, spec: JobSpec, record: dict[str, Any]) -> None:
        self.jobs.append(
            {
                "key": spec.key,
                "method": spec.method,
                "dataset": spec.dataset,
                "width": spec.width,
                "seed": spec.seed,
                **record,
            }
        )


def _status_row(spec: JobSpec) -> dict[str, Any]:
    return {"dataset": spec.dataset, "method": spec.method, "width": spec.width, "seed": spec.seed}
