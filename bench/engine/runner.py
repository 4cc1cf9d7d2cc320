"""Runs a prediction: resolves its config, serves it (:mod:`bench.engine.context`), writes its tidy rows.

With ``workers > 1`` (or a cluster executor) the runner first *plans*: it runs each protocol
against a recorder that notes every job and measurement it asks for and hands it nothing,
submits all of them to the pool at once (a measurement goes with its job: the worker that trains
an encoder measures it), then runs the protocols for real, each ``encoders()`` or ``measure()``
call waiting for its own results in the protocol's order. The tables do not depend on the number
of workers: every job and measurement seeds itself, and the main process's RNG is shielded from
loading and training (``torch.random.fork_rng``).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pandas as pd
import torch

from bench import results
from bench.arguments import build_prediction
from bench.config import ConfigError, RunConfig
from bench.data import PROVIDES, Dataset
from bench.engine.context import RunContext
from bench.engine.scheduler import Engine, timing
from bench.protocol import NEEDS, Prediction
from bench.train.methods import METHODS


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda requested but no CUDA device is available (choices: auto, cpu)")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


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
    # a method with ``listed = False`` (an open question's composite: a greedy stack, a 3-layer reference) runs
    # only where it is named, so the predictions' method lists, and their families, stay what they were
    listed = [m for m in METHODS.names() if getattr(METHODS.get(m), "listed", True)]
    return prediction.default_methods(listed, cfg.profile)


def setup_device(cfg: RunConfig) -> torch.device:
    device = resolve_device(cfg.device)
    torch.set_num_threads(cfg.threads)
    return device


def execute(
    cfg: RunConfig, argv: list[str] | None = None, engine: Engine | None = None, ctx: RunContext | None = None
) -> Path:
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
    dev_name = (
        torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    )
    man = results.manifest(dev_name, started, ctx.jobs, argv, commit)
    man["skipped"] = ctx.skipped
    man["timing"] = timing(
        ctx.jobs, time.perf_counter() - t_start, ctx.wait_seconds, engine.workers, engine.where, ctx.measure_seconds
    )
    man["rerun"] = {"argv": list(argv) if argv is not None else None, "cwd": str(Path.cwd())}
    resolved = cfg.to_dict() | {
        "resolved": {
            "prediction": dataclasses.asdict(prediction.cfg),
            "methods": methods,
            "seeds": cfg.resolved_seeds(),
            "device": str(device),
            "workers": engine.workers,
            "method_configs": {m: dataclasses.asdict(cfg.method_config(m)) for m in methods},
        }
    }
    matrices = pd.concat(ctx.matrices, ignore_index=True) if ctx.matrices else None
    if matrices is not None:
        matrices.insert(0, "run_id", run_id)
    return results.write_run(Path(cfg.out), cfg.prediction, run_id, df, resolved, man, matrices)


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
