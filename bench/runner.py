"""Runs a prediction: resolves its config, serves it encoders, writes its tidy rows.

The :class:`RunContext` implements :class:`bench.protocol.EncoderSource`, all a protocol sees:
the datasets on the run's device, the seeds, and :meth:`RunContext.encoders`, which trains or
loads each job through the content-addressed cache (progress bars and threads stay here). Failed jobs are recorded as ``job_failed`` rows with their reason
(never dropped) and are not handed to the prediction; methods that cannot run on the data
become ``job_skipped`` rows with theirs, so every requested method is in the table.
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
from bench.jobs import Encoder, JobCache, JobSpec, data_info
from bench.methods import METHODS
from bench.protocol import NEEDS, PREDICTIONS, Prediction, data_tag, row


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda requested but no CUDA device is available (choices: auto, cpu)")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


class Progress:
    """tqdm bars on a terminal, plain log lines otherwise (CI, files)."""

    def __init__(self, total: int, enabled: bool | None = None):
        self.tty = sys.stderr.isatty() if enabled is None else enabled
        self.total, self.done = total, 0
        self.bar = None
        if self.tty:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="jobs", unit="job", dynamic_ncols=True)

    def epochs(self, desc: str, total: int):
        if not self.tty:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit="ep", leave=False, dynamic_ncols=True)

    def job_done(self, enc: Encoder) -> None:
        self.done += 1
        s = enc.spec
        how = "cached" if enc.cached else f"trained in {enc.train_seconds:.1f}s"
        status = "" if enc.ok else f"  FAILED: {enc.reason}"
        line = f"[{self.done}/{self.total}] {s.method} {s.dataset} K={s.width} seed={s.seed}: {how}{status}"
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"{s.method} seed={s.seed}")
            if not enc.ok:
                self.bar.write(line)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class RunContext:
    """The runner's :class:`bench.protocol.EncoderSource`: data, encoders, seeds, matrices."""

    def __init__(self, cfg: RunConfig, prediction: Prediction, device: torch.device, methods: list[str]):
        self.cfg, self.prediction, self.device, self.methods = cfg, prediction, device, methods
        self.pcfg = prediction.cfg
        self.seeds: list[int] = cfg.resolved_seeds()
        self.profile: str = cfg.profile
        self.cache = JobCache(cfg.cache_dir(), device)
        self.jobs: list[dict[str, Any]] = []
        self.failure_rows: list[dict[str, Any]] = []
        self.matrices: list[pd.DataFrame] = []
        self.skipped: list[dict[str, Any]] = []  # methods that cannot run on the data, with why
        self.progress: Progress | None = None

    @property
    def dataset_name(self) -> str:
        return self.pcfg.dataset

    def data_config(self, data: dict[str, Any] | None = None) -> DataConfig:
        """The run's data options, with a protocol's ``data`` overrides (e.g. ``{"mixing": "nonlinear"}``)."""
        return dataclasses.replace(self.cfg.data, **data) if data else self.cfg.data

    def dataset(self, name: str | None = None, data: dict[str, Any] | None = None) -> Dataset:
        try:
            return load_dataset(name or self.dataset_name, self.data_config(data), self.device)
        except ValueError as e:  # a class subset the base does not have
            raise ConfigError(str(e)) from None

    def matrix(self, enc: Encoder, name: str, values: np.ndarray) -> None:
        """Collect a matrix-valued result as long rows (integer indices) of the matrices table."""
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
                self.skipped.append({"method": m, "dataset": ds.name, "reason": why})
                self.failure_rows += [{"dataset": ds.name, "method": m, "width": w, "seed": s, "metric": "job_skipped",
                                       "value": 1.0, "note": why, **tag} for w in widths for s in seeds]
                print(f"skipping {m} on {ds.name}: {why}", file=sys.stderr)
        specs = [self.spec(m, w, s, dataset, data) for m in methods for w in widths for s in seeds]
        specs = list(dict.fromkeys(specs))  # raw: one job whatever the width
        self.progress = Progress(len(specs))
        try:
            for spec in specs:
                bar = self.progress.epochs(f"{spec.method} s{spec.seed}", spec.epochs)
                on_epoch = None
                if bar is not None:
                    def on_epoch(epoch, terms, bar=bar):
                        bar.update(1)
                        bar.set_postfix_str(f"loss {terms.get('loss', float('nan')):.4g}")
                t0 = time.perf_counter()
                enc = self.cache.get(spec, ds, on_epoch)
                if bar is not None:
                    bar.close()
                self.jobs.append({"key": spec.key, "method": spec.method, "dataset": spec.dataset,
                                  "width": spec.width, "seed": spec.seed, "status": enc.status,
                                  "cached": enc.cached, "train_seconds": enc.train_seconds,
                                  "wall_seconds": time.perf_counter() - t0, "reason": enc.reason})
                self.progress.job_done(enc)
                if enc.ok:
                    yield enc
                else:
                    self.failure_rows.append(row(enc, "job_failed", 1.0, note=enc.reason, **tag))
        finally:
            self.progress.close()


def timing(jobs: list[dict[str, Any]], wall: float) -> dict[str, Any]:
    """Where a run's wall time went: training (jobs trained now), loading (cache hits), the protocol."""
    trained = [j for j in jobs if not j["cached"]]
    train = sum(j["wall_seconds"] for j in trained)
    load = sum(j["wall_seconds"] for j in jobs if j["cached"])
    per_method: dict[str, float] = {}
    for j in trained:
        per_method[j["method"]] = per_method.get(j["method"], 0.0) + j["wall_seconds"]
    top = dict(sorted(per_method.items(), key=lambda kv: -kv[1])[:5])
    return {"wall_seconds": wall, "jobs_trained": len(trained), "jobs_cached": len(jobs) - len(trained),
            "train_seconds": train, "load_seconds": load, "protocol_seconds": max(wall - train - load, 0.0),
            "slowest_methods_seconds": top, "threads": torch.get_num_threads()}


def timing_line(t: dict[str, Any]) -> str:
    """One line for the terminal: ``wall 812 s = training 640 s (40 jobs) + ...``."""
    top = ", ".join(f"{m} {s:.0f} s" for m, s in t["slowest_methods_seconds"].items())
    return (f"wall {t['wall_seconds']:.0f} s = training {t['train_seconds']:.0f} s ({t['jobs_trained']} jobs"
            f"{'; slowest: ' + top if top else ''}) + cache loads {t['load_seconds']:.0f} s ({t['jobs_cached']} jobs)"
            f" + protocol {t['protocol_seconds']:.0f} s, on {t['threads']} CPU thread(s) or the GPU")


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


def execute(cfg: RunConfig, argv: list[str] | None = None) -> Path:
    """Run ``cfg.prediction`` end to end; returns the written run directory."""
    started, t_start, commit = results.now(), time.perf_counter(), results.git_commit()
    prediction = build_prediction(cfg)
    device = resolve_device(cfg.device)
    if device.type == "cpu":
        torch.set_num_threads(cfg.threads)
    if cfg.methods is not None:
        methods = list(cfg.methods)
    elif prediction.cfg.methods:
        methods = list(prediction.cfg.methods)
    else:
        methods = prediction.default_methods(METHODS.names())
    ctx = RunContext(cfg, prediction, device, methods)
    check_needs(prediction, ctx.dataset())
    run_id = results.new_run_id()
    rows = list(prediction.run(ctx)) + ctx.failure_rows
    for r in rows:
        r.setdefault("run_id", run_id)
        r.setdefault("prediction", cfg.prediction)
    df = results.tidy_frame(rows)
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    man = results.manifest(dev_name, started, ctx.jobs, argv, commit)
    man["skipped"] = ctx.skipped
    man["timing"] = timing(ctx.jobs, time.perf_counter() - t_start)
    resolved = cfg.to_dict() | {"resolved": {"prediction": dataclasses.asdict(prediction.cfg), "methods": methods,
                                             "seeds": cfg.resolved_seeds(), "device": str(device),
                                             "method_configs": {m: dataclasses.asdict(cfg.method_config(m)) for m in methods}}}
    matrices = pd.concat(ctx.matrices, ignore_index=True) if ctx.matrices else None
    if matrices is not None:
        matrices.insert(0, "run_id", run_id)
    return results.write_run(Path(cfg.out), cfg.prediction, run_id, df, resolved, man, matrices)
