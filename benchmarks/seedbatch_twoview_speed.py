"""Benchmark (not a test): seeds trained together against one at a time, for the two-view methods.

    python benchmarks/seedbatch_twoview_speed.py simclr moco [--seeds 3 10] [--repeats 3] [--threads 1]

For each method and each S: the seed-samples/s of S seeds trained as one batched step
(:func:`bench.train.seedbatch.train_stacked`) and of the same S seeds trained one after another
(:func:`bench.train.trainer.train`), on mnist5k (K=64, batch 128, 2 epochs by default, one thread), and
their ratio. The two variants alternate (A B A B ...) and the best of ``--repeats`` is kept, so a
busy machine hurts both alike. Only the training loops are timed (no scoring, no checks).

``--clock cpu`` (the default) times the process's CPU time (one thread: the work done, whatever
else runs on the machine; on a shared, oversubscribed machine wall time mostly measures the
scheduler); ``--clock wall`` times wall time. Both are printed; the ratio is the chosen clock's.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's bench, not an installed one

from bench.catalog import load_all
from bench.config import RunConfig
from bench.data import DataConfig, load_dataset
from bench.train.seedbatch import SeedRNG, Stacked, _global_generators, train_stacked
from bench.train.trainer import seeded_build, train


def _clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(t0: tuple[float, float]) -> tuple[float, float]:
    return tuple(b - a for a, b in zip(t0, _clocks(), strict=True))


def sequential(name, cfg, ds, width, seeds, epochs, batch_size, device) -> tuple[float, float]:
    """(wall, cpu) seconds of the seeds' :func:`bench.train.trainer.train` loops, one after another."""
    wall = cpu = 0.0
    for seed in seeds:
        m = seeded_build(name, cfg, ds, width, seed, device)
        t0 = _clocks()
        train(m, ds.train.x, None, epochs=epochs, batch_size=batch_size, seed=seed)
        w, c = _since(t0)
        wall, cpu = wall + w, cpu + c
    return wall, cpu


def batched(name, cfg, ds, width, seeds, epochs, batch_size, device) -> tuple[float, float]:
    """(wall, cpu) seconds of the seeds' batched loop, :func:`bench.train.seedbatch.train_stacked`."""
    methods, cpu, dev = [], [], []
    for seed in seeds:
        methods.append(seeded_build(name, cfg, ds, width, seed, device))
        c, d = _global_generators(device)
        cpu.append(c)
        dev.append(d)
    st = Stacked(methods)
    t0 = _clocks()
    train_stacked(st, SeedRNG(cpu, dev, device), [ds] * len(seeds), seeds, epochs=epochs, batch_size=batch_size)
    return _since(t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("methods", nargs="+")
    ap.add_argument("--dataset", default="mnist5k")
    ap.add_argument("--seeds", type=int, nargs="+", default=[3, 10])
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--clock", choices=["cpu", "wall"], default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load_all()
    device = torch.device(args.device)
    ds = load_dataset(args.dataset, DataConfig(), device)
    n = ds.train.x.shape[0]
    if args.clock == "cpu" and device.type != "cpu":
        ap.error("--clock cpu times CPU work: use --clock wall on a GPU")
    print(
        f"{args.dataset}: N={n} D={ds.input_dim} K={args.width} batch={args.batch_size} epochs={args.epochs} "
        f"threads={torch.get_num_threads()} device={args.device} best of {args.repeats} (interleaved), "
        f"seed-samples/s by {args.clock} time"
    )
    print(
        f"{'method':<14}{'S':>4}{'batched/s':>12}{'sequential/s':>14}{'ratio':>8}   (wall: batched/s sequential/s ratio)"
    )
    for name in args.methods:
        cfg = RunConfig().method_config(name)
        for S in args.seeds:
            seeds = list(range(S))
            kw = dict(epochs=args.epochs, batch_size=args.batch_size, device=device)
            tb, ts = [], []
            for _ in range(args.repeats):
                tb.append(batched(name, cfg, ds, args.width, seeds, **kw))
                ts.append(sequential(name, cfg, ds, args.width, seeds, **kw))
            work = S * n * args.epochs
            k = 1 if args.clock == "cpu" else 0
            rb, rs = work / min(t[k] for t in tb), work / min(t[k] for t in ts)
            wb, ws = work / min(t[0] for t in tb), work / min(t[0] for t in ts)
            print(
                f"{name:<14}{S:>4}{rb:>12,.0f}{rs:>14,.0f}{rb / rs:>7.2f}x   "
                f"(wall: {wb:,.0f} {ws:,.0f} {wb / ws:.2f}x)",
                flush=True,
            )


if __name__ == "__main__":
    main()
