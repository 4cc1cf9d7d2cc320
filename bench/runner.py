"""Runs a prediction: resolves its config, serves it encoders, writes its tidy rows.

The :class:`RunContext` implements :class:`bench.protocol.EncoderSource`, all a protocol sees:
the datasets on the run's device, the seeds, and :meth:`RunContext.encoders`, which trains or
loads each job through the content-addressed cache (progress bars and threads stay here).
Failed jobs are recorded as ``job_failed`` rows with their reason (never dropped) and are not
handed to the prediction; methods that cannot run on the data become ``job_skipped`` rows with
theirs, so every requested method is in the table.

With ``workers > 1`` (or a cluster executor) the runner first *plans*: it runs each protocol
against a recorder that notes every job it asks for and hands it no encoder, submits all of
them to the pool at once, then runs the protocols for real, each ``encoders()`` call waiting for
its own jobs in the protocol's order. Training overlaps with the evaluation of finished jobs,
and the tables do not depend on the number of workers: every job seeds itself, and the main
process's RNG is shielded from loading and training (``torch.random.fork_rng``).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from bench import results
from bench.config import ConfigError, RunConfig
from bench.data import PROVIDES, DataConfig, Dataset, load_dataset
from bench.engine import Engine, timing
from bench.jobs import Encoder, JobSpec, data_info
from bench.methods import METHODS
from bench.protocol import NEEDS, PREDICTIONS, Prediction, data_tag, row


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda requested but no CUDA device is available (choices: auto, cpu)")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


class RunContext:
    """The runner's :class:`bench.protocol.EncoderSource`: data, encoders, seeds, matrices."""

    def __init__(self, cfg: RunConfig, prediction: Prediction, device: torch.device, methods: list[str],
                 engine: Engine | None = None):
        self.cfg, self.prediction, self.device, self.methods = cfg, prediction, device, methods
        self.pcfg = prediction.cfg
        self.seeds: list[int] = cfg.resolved_seeds()
        self.profile: str = cfg.profile
        self.engine = engine or Engine(cfg, device)
        self.cache = self.engine.cache
        self.jobs: list[dict[str, Any]] = []
        self.failure_rows: list[dict[str, Any]] = []
        self.matrices: list[pd.DataFrame] = []
        self.skipped: list[dict[str, Any]] = []  # methods that cannot run on the data, with why
        self.wait_seconds = 0.0  # the main process blocked on the pool
        self.planning = self.planned = False
        self._datasets: dict[tuple, Dataset] = {}

    @property
    def dataset_name(self) -> str:
        return self.pcfg.dataset

    def data_config(self, data: dict[str, Any] | None = None) -> DataConfig:
        """The run's data options, with a protocol's ``data`` overrides (e.g. ``{"mixing": "nonlinear"}``)."""
        return dataclasses.replace(self.cfg.data, **data) if data else self.cfg.data

    def dataset(self, name: str | None = None, data: dict[str, Any] | None = None) -> Dataset:
        key = (name or self.dataset_name, self.data_config(data))
        if key not in self._datasets:  # one copy per device (a GPU copy per call would add up)
            try:
                self._datasets[key] = load_dataset(key[0], key[1], self.device)
            except ValueError as e:  # a class subset the base does not have
                raise ConfigError(str(e)) from None
        return self._datasets[key]

    def matrix(self, enc: Encoder, name: str, values: np.ndarray) -> None:
        """Collect a matrix-valued result as long rows (integer indices) of the matrices table."""
        if self.planning:
            return
        v = np.asarray(values, dtype=float)
        i, j = np.indices(v.shape)
        s = enc.spec
        self.matrices.append(pd.DataFrame({"dataset": s.dataset, "method": s.method, "width": s.width,
                                           "seed": s.seed, "matrix": name, "i": i.ravel().astype(np.int32),
                                           "j": j.ravel().astype(np.int32), "value": v.ravel()}))

    def spec(self, method: str, width: int, seed: int, dataset: str | None = None,
             data: dict[str, Any] | None = None) -> JobSpec:
        name = dataset or self.dataset_name
        width = METHODS.get(method).resolve_width(data_info(self.dataset(name, data)), width)
        return JobSpec(method, self.cfg.method_config(method), name, self.data_config(data), width, seed,
                       self.cfg.resolved_epochs(name), self.cfg.batch_size)

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

    def encoders(
        self,
        methods: Iterable[str] | None = None,
        widths: Iterable[int] | None = None,
        seeds: Iterable[int] | None = None,
        dataset: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> Iterator[Encoder]:
        """Train or load every (method, width, seed) job; yield the successful encoders.

        ``dataset`` and ``data`` (DataConfig overrides) select another dataset than the run's."""
        methods = list(methods or self.methods)
        widths = list(widths or [self.pcfg.width])
        seeds = list(seeds if seeds is not None else self.seeds)
        ds = self.dataset(dataset, data)
        tag = {"data": data_tag(data)} if data else {}  # status rows say which DataConfig they are for
        for m in list(methods):
            why = METHODS.get(m).unsupported(data_info(ds))
            if why:
                methods.remove(m)
                if self.planning:
                    continue
                self.skipped.append({"method": m, "dataset": ds.name, "reason": why})
                self.failure_rows += [{"dataset": ds.name, "method": m, "width": w, "seed": s, "metric": "job_skipped",
                                       "value": 1.0, "note": why, **tag} for w in widths for s in seeds]
                print(f"skipping {m} on {ds.name}: {why}", file=sys.stderr)
        specs = [self.spec(m, w, s, dataset, data) for m in methods for w in widths for s in seeds]
        specs = list(dict.fromkeys(specs))  # raw: one job whatever the width
        engine = self.engine
        if engine.parallel:  # misses go to the pool now; hits load here
            misses = [s for s in specs if not engine.pooled(s) and not self.cache.has(s)]
            engine.progress.add(len(misses))
            for s in misses:
                engine.submit(s)
        if self.planning:
            return
        engine.progress.add(sum(not engine.pooled(s) for s in specs))
        for spec in specs:
            enc, record = self._pooled(spec, ds) if engine.pooled(spec) else self._inline(spec, ds)
            self.jobs.append({"key": spec.key, "method": spec.method, "dataset": spec.dataset,
                              "width": spec.width, "seed": spec.seed, **record})
            if enc.ok:
                yield enc
            else:
                self.failure_rows.append(row(enc, "job_failed", 1.0, note=enc.reason, **tag))

    def _inline(self, spec: JobSpec, ds: Dataset) -> tuple[Encoder, dict[str, Any]]:
        """Train or load in this process, with a per-epoch bar; the main RNG is left untouched."""
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
        self.engine.progress.job_done(enc)
        return enc, {"status": enc.status, "cached": enc.cached, "train_seconds": enc.train_seconds,
                     "wall_seconds": wall, "load_seconds": wall if enc.cached else 0.0, "reason": enc.reason}

    def _pooled(self, spec: JobSpec, ds: Dataset) -> tuple[Encoder, dict[str, Any]]:
        """Wait for the job's worker, then load its encoder from the cache."""
        t0 = time.perf_counter()
        summary = self.engine.pool.result(spec)
        waited = time.perf_counter() - t0
        self.wait_seconds += waited
        t1 = time.perf_counter()
        if summary.get("worker_error"):
            enc = Encoder(spec, None, "failed", summary["reason"], 0.0, False, {})
        else:
            with torch.random.fork_rng(devices=self._rng_devices()):
                enc = self.cache.load(spec, ds)
                if enc is None:  # the worker's entry vanished or is corrupt: train it here
                    enc = self.cache.get(spec, ds)
        load = time.perf_counter() - t1
        return enc, {"status": enc.status, "cached": bool(summary["cached"]),
                     "train_seconds": summary["train_seconds"], "wall_seconds": summary["wall_seconds"],
                     "load_seconds": load, "waited_seconds": waited, "reason": enc.reason,
                     "worker": f"{summary.get('host', '?')}:{summary.get('pid', '?')}"}

    def _rng_devices(self) -> list:
        return [self.device] if self.device.type == "cuda" else []

    @staticmethod
    def _waiting(spec: JobSpec):
        def note(holder: dict) -> None:
            print(f"waiting for {spec.method} seed={spec.seed} ({spec.key}): being trained by pid "
                  f"{holder.get('pid', '?')} on {holder.get('host', '?')}", file=sys.stderr, flush=True)
        return note


def build_prediction(cfg: RunConfig) -> Prediction:
    pcls = PREDICTIONS.get(cfg.prediction)
    over = dict(cfg.prediction_overrides)
    if cfg.dataset is not None:
        over["dataset"] = cfg.dataset
    if cfg.width is not None:
        over["width"] = cfg.width
    try:
        pcfg = pcls.Config(**over)
        pcfg.check()
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{cfg.prediction}: {e}") from None
    return pcls(pcfg)


def has(ds: Dataset, need: str) -> bool:
    """Whether ``ds`` provides what a prediction ``needs`` (see :data:`bench.protocol.NEEDS`)."""
    if need == "labels":
        return ds.n_classes is not None
    if need == "factors":
        return ds.train.factors is not None
    raise ValueError(f"needs: unknown '{need}' (choices: {', '.join(NEEDS)})")


def check_needs(prediction: Prediction, ds: Dataset) -> None:
    """One clear error, before anything is trained, when the dataset lacks what the prediction needs."""
    for need in sorted(prediction.needs):
        if not has(ds, need):
            ok = [n for n, provides in PROVIDES.items() if need in provides]
            raise ConfigError(f"{prediction.name}: dataset '{ds.name}' has no {need} (choices: {', '.join(ok)})")


def resolve_methods(cfg: RunConfig, prediction: Prediction) -> list[str]:
    if cfg.methods is not None:
        return list(cfg.methods)
    if prediction.cfg.methods:
        return list(prediction.cfg.methods)
    return prediction.default_methods(METHODS.names())


def setup_device(cfg: RunConfig) -> torch.device:
    device = resolve_device(cfg.device)
    torch.set_num_threads(cfg.threads)
    return device


def execute(cfg: RunConfig, argv: list[str] | None = None, engine: Engine | None = None,
            ctx: RunContext | None = None) -> Path:
    """Run ``cfg.prediction`` end to end; returns the written run directory.

    ``engine``: a shared jobs engine (``prediction=all``); ``ctx``: a planned context."""
    started, t_start, commit = results.now(), time.perf_counter(), results.git_commit()
    own = engine is None and ctx is None
    if ctx is None:
        prediction = build_prediction(cfg)
        device = setup_device(cfg)
        engine = engine or Engine(cfg, device)
        ctx = RunContext(cfg, prediction, device, resolve_methods(cfg, prediction), engine)
        check_needs(prediction, ctx.dataset())
    prediction, device, engine, methods = ctx.prediction, ctx.device, ctx.engine, ctx.methods
    try:
        ctx.plan()
        run_id = results.new_run_id()
        rows = list(prediction.run(ctx)) + ctx.failure_rows
    finally:
        if own:
            engine.close()
    for r in rows:
        r.setdefault("run_id", run_id)
        r.setdefault("prediction", cfg.prediction)
    df = results.tidy_frame(rows)
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    man = results.manifest(dev_name, started, ctx.jobs, argv, commit)
    man["skipped"] = ctx.skipped
    man["timing"] = timing(ctx.jobs, time.perf_counter() - t_start, ctx.wait_seconds, engine.workers, engine.where)
    man["rerun"] = {"argv": list(argv) if argv is not None else None, "cwd": str(Path.cwd())}
    resolved = cfg.to_dict() | {"resolved": {"prediction": dataclasses.asdict(prediction.cfg), "methods": methods,
                                             "seeds": cfg.resolved_seeds(), "device": str(device),
                                             "workers": engine.workers,
                                             "method_configs": {m: dataclasses.asdict(cfg.method_config(m)) for m in methods}}}
    matrices = pd.concat(ctx.matrices, ignore_index=True) if ctx.matrices else None
    if matrices is not None:
        matrices.insert(0, "run_id", run_id)
    return results.write_run(Path(cfg.out), cfg.prediction, run_id, df, resolved, man, matrices)


ALL = ("pruning", "transfer", "efficiency", "interpretability")  # prediction=all, in this order


def execute_all(cfgs: dict[str, RunConfig], argv: list[str] | None = None) -> list[Path]:
    """The four predictions in one command, sharing one cache and one pool: every job of every
    prediction is planned and submitted first, so training runs while earlier ones evaluate."""
    first = next(iter(cfgs.values()))
    device = setup_device(first)
    engine = Engine(first, device)
    try:
        ctxs = {}
        for name, cfg in cfgs.items():  # validate everything before anything trains
            prediction = build_prediction(cfg)
            ctx = RunContext(cfg, prediction, device, resolve_methods(cfg, prediction), engine)
            check_needs(prediction, ctx.dataset())
            ctxs[name] = ctx
        for ctx in ctxs.values():
            ctx.plan()
        return [execute(cfgs[name], argv, engine, ctx) for name, ctx in ctxs.items()]
    finally:
        engine.close()
