"""Benchmark (not a test): seeds trained together against one at a time, for the two-view methods.

    python benchmarks/seedbatch_twoview_speed.py simclr moco [--seeds 3 10] [--repeats 3] [--threads 1]

For each method and each S: the seed-samples/s of S seeds trained as one batched step
(:func:`bench.seedbatch.train_stacked`) and of the same S seeds trained one after another
(:func:`bench.trainer.train`), on mnist5k (K=64, batch 128, 2 epochs by default, one thread), and
their ratio. The two variants alternate (A B A B ...) and the best of ``--repeats`` is kept, so a
busy machine hurts both alike. Only the training loops are timed (no scoring, no checks).
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
from bench.seedbatch import SeedRNG, Stacked, _global_generators, train_stacked
from bench.trainer import seeded_build, train


def sequential(name, cfg, ds, width, seeds, epochs, batch_size, device) -> float:
    t = 0.0
    for seed in seeds:
        m = seeded_build(name, cfg, ds, width, seed, device)
        t0 = time.perf_counter()
        train(m, ds.train.x, None, epochs=epochs, batch_size=batch_size, seed=seed)
        t += time.perf_counter() - t0
    return t


def batched(name, cfg, ds, width, seeds, epochs, batch_size, device) -> float:
    methods, cpu, dev = [], [], []
    for seed in seeds:
        methods.append(seeded_build(name, cfg, ds, width, seed, device))
        c, d = _global_generators(device)
        cpu.append(c)
        dev.append(d)
    st = Stacked(methods)
    t0 = time.perf_counter()
    train_stacked(st, SeedRNG(cpu, dev, device), [ds] * len(seeds), seeds, epochs=epochs, batch_size=batch_size)
    return time.perf_counter() - t0


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
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load_all()
    device = torch.device(args.device)
    ds = load_dataset(args.dataset, DataConfig(), device)
    n = ds.train.x.shape[0]
    print(f"{args.dataset}: N={n} D={ds.input_dim} K={args.width} batch={args.batch_size} epochs={args.epochs} "
          f"threads={torch.get_num_threads()} device={args.device} best of {args.repeats} (interleaved)")
    print(f"{'method':<14}{'S':>4}{'batched/s':>12}{'sequential/s':>14}{'ratio':>8}")
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
            rb, rs = work / min(tb), work / min(ts)
            print(f"{name:<14}{S:>4}{rb:>12,.0f}{rs:>14,.0f}{rb / rs:>7.2f}x", flush=True)


if __name__ == "__main__":
    main()
