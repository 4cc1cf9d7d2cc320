"""``bench perf table=true``: the cost table of :mod:`bench.engine.costs` measured on this device, and
the batched-seeds throughput lines of ``bench perf``.

* **training cells**: for each (method, dataset) the ``confirm`` run needs, a few training steps
  of the method (after one warm-up step) at the job's width and batch size, scaled to the cell's
  steps per epoch; a method that is not gradient-trained (``pca``, ``gmm``, ...) is fitted once,
  whole, and its time divided by the job's epochs. Cells of one method with the same input shape,
  width and classes share one timing;
* **batched seeds**: per batchable method (:func:`bench.train.seedbatch.batchable`), S seeds trained by
  :func:`bench.train.seedbatch.train_group` against S sequential :func:`bench.train.trainer.fit_encoder` calls
  (the same epochs), at S = 3 and S = 10;
* **measurements**: the seconds recorded by the measurements already in this cache
  (:func:`harvest`); the default table fills in the rest when the table is read.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.engine.costs import BATCH_POINTS, CostTable, cell

INTERPRETABILITY_FNS = ("measure_dsprites", "measure_ica", "measure_real")


# ----------------------------------------------------------------------------- from a cache
def measurement_name(fn: str, rows: list[dict[str, Any]]) -> str:
    """``prediction.function`` of a cached measurement (its file names the function only)."""
    if fn in INTERPRETABILITY_FNS:
        return f"interpretability.{fn}"
    if fn == "measure_pair":
        return f"transfer.{fn}"
    metrics = {r.get("metric", "") for r in rows}
    if any(m.startswith("aurc") for m in metrics):
        return f"pruning.{fn}"
    if "params_deployed" in metrics:
        return f"efficiency.{fn}"
    return f"probe.{fn}"


def harvest(roots: list[str | Path], sizes: dict[tuple[str, str], int] | None = None) -> CostTable:
    """Training cells and measurement seconds recorded in cache folders: a job's (train + convergence
    scoring) seconds per epoch, one seed at a time (batched entries are left out), and a
    measurement's seconds; medians per cell. ``sizes``: (dataset, data options JSON) -> training-set
    size, filled by loading the dataset when absent."""
    from bench.data import DataConfig, load_dataset

    sizes = {} if sizes is None else sizes
    train: dict[str, list[tuple[float, int]]] = {}
    measure: dict[str, list[float]] = {}
    for root in roots:
        for f in glob.glob(str(Path(root) / "*" / "meta.json")):
            try:
                meta = json.loads(Path(f).read_text())
                spec = meta["spec"]
                if meta.get("status") != "ok" or (meta.get("seed_group") or 1) > 1:
                    continue
                key = (spec["dataset"], json.dumps(spec["data_cfg"], sort_keys=True))
                if key not in sizes:
                    ds = load_dataset(spec["dataset"], DataConfig(**spec["data_cfg"]), torch.device("cpu"))
                    sizes[key] = int(ds.train.x.shape[0])
                conv = (meta.get("convergence") or {}).get("seconds", 0.0)
                per_epoch = (meta["train_seconds"] + conv) / max(int(spec["epochs"]), 1)
                train.setdefault(cell(spec["method"], spec["dataset"]), []).append((per_epoch, sizes[key]))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        for f in glob.glob(str(Path(root) / "measures" / "*.npz")):
            try:
                with np.load(f, allow_pickle=False) as z:
                    meta = json.loads(z["meta"].tobytes().decode())
                method, fn, _ = Path(f).stem.rsplit("-", 2)
                rows = meta["rows"]
                if not rows:
                    continue
                name = measurement_name(fn if fn.startswith("measure") else f"measure_{fn}", rows)
                measure.setdefault(cell(name, method, rows[0]["dataset"]), []).append(float(meta["seconds"]))
            except (OSError, ValueError, KeyError, TypeError):
                continue
    return CostTable(
        train={
            k: {"epoch_seconds": statistics.median(s for s, _ in v), "n_train": statistics.median(n for _, n in v)}
            for k, v in train.items()
        },
        measure={k: statistics.median(v) for k, v in measure.items()},
    )


# ----------------------------------------------------------------------------- timed here
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_cell(spec, ds, device: torch.device, steps: int = 4) -> float:
    """Seconds per seed-epoch of ``spec``'s method on ``ds``: ``steps`` timed training steps after
    a warm-up step, scaled to an epoch; a fitted method: one whole fit over the job's epochs."""
    from bench.train.trainer import batch_slices, build, data_info, fit_encoder, train

    torch.manual_seed(0)
    method = build(spec.method, spec.method_cfg, data_info(ds), spec.width).to(device)
    if method.kind != "gradient":
        _sync(device)
        t0 = time.perf_counter()
        fit_encoder(
            spec.method,
            spec.method_cfg,
            ds,
            spec.width,
            0,
            epochs=spec.epochs,
            batch_size=spec.batch_size,
            device=device,
            track=False,
        )
        _sync(device)
        return (time.perf_counter() - t0) / max(spec.epochs, 1)
    x, y = ds.train.x, ds.train.y if method.uses_labels else None
    n_steps = len(batch_slices(x.shape[0], spec.batch_size))
    k = min(steps, n_steps)
    sub = slice(0, k * spec.batch_size)

    def run(n: int) -> None:
        train(
            method,
            x[: n * spec.batch_size],
            None if y is None else y[: n * spec.batch_size],
            epochs=1,
            batch_size=spec.batch_size,
            seed=0,
        )

    run(1)  # warm-up (allocations, lazy modules)
    _sync(device)
    t0 = time.perf_counter()
    train(method, x[sub], None if y is None else y[sub], epochs=1, batch_size=spec.batch_size, seed=1)
    _sync(device)
    return (time.perf_counter() - t0) / k * n_steps


def geometry(spec, ds) -> tuple:
    return (
        spec.method,
        dataclasses.astuple(spec.method_cfg),
        ds.input_dim,
        ds.image_shape,
        ds.n_classes,
        spec.width,
        spec.batch_size,
        spec.epochs if spec.method in ("pca", "fastica", "gmm") else 0,
    )


def seed_rates(
    method: str, ds, device: torch.device, seeds: int, epochs: int = 1, reps: int = 2
) -> tuple[float, float] | None:
    """(sequential, batched) seed-samples/s of ``seeds`` seeds of ``method`` on ``ds`` for
    ``epochs`` epochs, each the best of ``reps`` (A B A B); None when the method has no batched form."""
    from bench.config import RunConfig
    from bench.engine import plan
    from bench.train.trainer import fit_encoder

    if not plan.batchable(method, ds.input_dim):
        return None
    seedbatch = plan.seedbatch
    mcfg = RunConfig().method_config(method)
    width, bs = 64, RunConfig().batch_size
    fit_encoder(method, mcfg, ds, width, 0, epochs=1, batch_size=bs, device=device, track=False)  # warm-up
    seq, bat = [], []
    for _ in range(reps):
        _sync(device)
        t0 = time.perf_counter()
        for s in range(seeds):
            fit_encoder(method, mcfg, ds, width, s, epochs=epochs, batch_size=bs, device=device, track=False)
        _sync(device)
        seq.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        seedbatch.train_group(
            method,
            mcfg,
            [ds] * seeds,
            width,
            list(range(seeds)),
            epochs=epochs,
            batch_size=bs,
            device=device,
            track=False,
        )
        _sync(device)
        bat.append(time.perf_counter() - t0)
    work = seeds * epochs * ds.train.x.shape[0]
    return work / min(seq), work / min(bat)


def batch_lines(
    ds, device: torch.device, methods=("infomax", "ae", "simclr"), epochs: int = 1, small=None
) -> list[str]:
    """``bench perf``'s batched-seeds table (one line saying why when there is nothing to time). A
    method that batches small inputs only (``batch_max_dim``) is timed on ``small`` (e.g. digits)."""
    from bench.engine import plan

    title = (
        f"batched seeds: seedbatch.train_group vs sequential trainer.fit_encoder, {epochs} epoch(s), "
        f"best of 2 (A B A B), seed-samples/s"
    )
    rows = [f"  {'method':<10} {'S':>3} {'data':<10} {'sequential':>12} {'batched':>12} {'ratio':>7}"]
    for m in methods:
        data = ds if plan.batchable(m, ds.input_dim) else small
        if data is None or not plan.batchable(m, data.input_dim):
            where = ds.name + ("" if small is None else f" or {small.name}")
            rows.append(f"  {m:<10} {'-':>3} {'-':<10} skipped: {m} is not batchable on {where}")
            continue
        for s in BATCH_POINTS:
            seq, bat = seed_rates(m, data, device, s, epochs)
            rows.append(f"  {m:<10} {s:>3} {data.name:<10} {seq:>12,.0f} {bat:>12,.0f} {bat / seq:>6.2f}x")
    return [title, *rows]


def confirm_cells(cache_dir: str, device: torch.device) -> dict[tuple[str, str], Any]:
    """(method, dataset) -> a representative job (its most common width) of ``bench plan
    prediction=all profile=confirm``: the cells the main job trains."""
    from collections import Counter

    from bench.arguments import all_configs
    from bench.engine import plan

    cfgs = all_configs(["profile=confirm", f"cache={cache_dir}", f"device={device.type}"])
    cache = plan.JobCache(cache_dir, device)
    specs = [s for cfg in cfgs.values() for s in plan.enumerate_prediction(cfg, device, cache).specs]
    common = Counter((s.method, s.dataset, s.width) for s in specs)
    cells: dict[tuple[str, str], Any] = {}
    for s in sorted(specs, key=lambda s: -common[s.method, s.dataset, s.width]):
        cells.setdefault((s.method, s.dataset), s)
    return cells


def time_cells(
    cells: dict[tuple[str, str], Any], device: torch.device, steps: int = 4, log=print
) -> dict[str, dict[str, float]]:
    """Training cells timed here (:func:`time_cell`; cells of one :func:`geometry` share a timing,
    scaled by their training-set sizes)."""
    from bench.data import load_dataset

    timed: dict[tuple, float] = {}
    datasets: dict[str, Any] = {}
    out = {}
    for (m, d), spec in sorted(cells.items()):
        if d not in datasets:
            datasets[d] = load_dataset(d, spec.data_cfg, device)
        ds = datasets[d]
        n = int(ds.train.x.shape[0])
        g = geometry(spec, ds)
        if g not in timed:
            t0 = time.perf_counter()
            timed[g] = time_cell(spec, ds, device, steps) / n
            log(f"  timed {m} on {d} (K={spec.width}): {timed[g] * n:.3f} s/epoch ({time.perf_counter() - t0:.1f} s)")
        out[cell(m, d)] = {"epoch_seconds": timed[g] * n, "n_train": n}
    return out


def batch_table(methods, device: torch.device, log=print) -> dict[str, dict[str, float]]:
    """Per batchable method: its batched per-seed speed-up at S = 3 and S = 10, one epoch, on mnist5k
    (on digits for a method that batches small inputs only: the plan asks :func:`bench.engine.plan.batchable`
    per dataset before it uses a speed-up)."""
    from bench.data import DataConfig, load_dataset
    from bench.engine import plan

    big, small = (load_dataset(n, DataConfig(), device) for n in ("mnist5k", "digits"))
    out = {}
    for m in sorted(m for m in set(methods) if plan.batchable(m)):
        ds = big if plan.batchable(m, big.input_dim) else small
        if not plan.batchable(m, ds.input_dim):
            continue
        pts = {}
        for s in BATCH_POINTS:
            seq, bat = seed_rates(m, ds, device, s, epochs=1, reps=1)
            pts[str(s)] = bat / seq
        out[m] = pts
        log(f"  batched {m} on {ds.name}: x{pts['3']:.2f} at S=3, x{pts['10']:.2f} at S=10")
    return out


def measure_table(cache_dir: str, device: torch.device, device_label: str, steps: int = 4, log=print) -> CostTable:
    """The cost table of this device: every training cell of ``bench plan prediction=all
    profile=confirm`` timed here, the batched speed-ups of its batchable methods, the measurements
    this cache recorded."""
    cells = confirm_cells(cache_dir, device)
    table = harvest([cache_dir])
    table.train, table.device = time_cells(cells, device, steps, log), device_label
    table.batch = batch_table({m for m, _ in cells}, device, log)
    return table
