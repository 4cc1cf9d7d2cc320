"""Benchmark (not a test): samples/s of one InfoMax training epoch on mnist5k at batch 128.

python3 benchmarks/infomax_epoch.py [--device cpu|cuda] [--width 64] [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch

from bench.catalog import load_all
from bench.data import load_dataset
from bench.engine.jobs import data_info
from bench.train.methods import METHODS
from bench.train.trainer import train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--method", default="infomax")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (the suite's default is 1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load_all()
    ds = load_dataset("mnist5k", device=args.device)
    cls = METHODS.get(args.method)
    torch.manual_seed(0)
    m = cls(cls.Config(), data_info(ds), args.width).to(args.device)
    train(m, ds.train.x, None, epochs=1, batch_size=args.batch_size, seed=0)  # warm-up
    times = []
    for r in range(args.repeats):
        if args.device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        train(m, ds.train.x, None, epochs=1, batch_size=args.batch_size, seed=r)
        if args.device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    n = ds.train.x.shape[0]
    best, med = min(times), sorted(times)[len(times) // 2]
    print(
        f"{args.method} on mnist5k: N={n} D={ds.input_dim} K={args.width} batch={args.batch_size} "
        f"device={args.device} threads={torch.get_num_threads()}"
    )
    print(f"one epoch: median {med * 1e3:.1f} ms, best {best * 1e3:.1f} ms -> {n / med:,.0f} samples/s (median)")


if __name__ == "__main__":
    main()
