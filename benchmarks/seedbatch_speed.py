"""Seed-samples/s of seeds trained together (bench.train.seedbatch) against one seed at a time.

    python -m benchmarks.seedbatch_speed ae dae sae vae [--seeds 3 10] [--repeats 3] [--dataset mnist5k] [--force]

For each method and S: S seeds trained for ``--epochs`` (2) on ``--dataset``'s train split at width
``--width`` (64), batch 128, one thread, sequentially (``fit_encoder`` per seed: the reference path)
and batched (``train_group``), alternating A B A B ``--repeats`` times; the best time of each is kept
(other processes share the machine). Time is that of the calls (building each seed's method and its
post-training feature check included, both ways): wall time, and this process's CPU time (steadier
on a shared machine: one thread, so CPU time is wall time minus the waits for a core). Seed-samples/s
is S * epochs * N_train / wall seconds. The last column checks that both ways gave the same weights
bit for bit. ``--force`` switches on the batched step of a method that has one but leaves it off
(its class sets ``batched = False`` where it was measured not to pay), to measure it again.
"""

from __future__ import annotations

import argparse
import time

import torch

from bench.catalog import load_all
from bench.config import RunConfig
from bench.data import DataConfig, load_dataset
from bench.train.methods import METHODS
from bench.train.seedbatch import batchable, train_group
from bench.train.trainer import fit_encoder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("methods", nargs="+")
    ap.add_argument("--seeds", type=int, nargs="+", default=[3, 10])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dataset", default="mnist5k")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--force", action="store_true", help="switch on the batched steps that are off")
    a = ap.parse_args()
    torch.set_num_threads(1)
    load_all()
    cpu = torch.device("cpu")
    ds = load_dataset(a.dataset, DataConfig(), cpu)
    n = ds.train.x.shape[0]
    print(
        f"{a.dataset} N_train={n} K={a.width} batch={a.batch_size} epochs={a.epochs} threads=1 "
        f"best of {a.repeats} (A B interleaved); torch {torch.__version__}"
    )
    print(
        f"{'method':<16} {'S':>3} {'seq s-s/s':>10} {'batched s-s/s':>14} {'ratio':>6} {'cpu ratio':>9}  same weights"
    )
    for name in a.methods:
        cfg = RunConfig().method_config(name)
        if a.force and METHODS.get(name).kind == "gradient":
            METHODS.get(name).batched = True
        for S in a.seeds:
            seeds = list(range(S))
            kw = dict(epochs=a.epochs, batch_size=a.batch_size, device=cpu, track=False)
            seq_t = bat_t = seq_c = bat_c = float("inf")
            for _ in range(a.repeats):
                t0, c0 = time.perf_counter(), time.process_time()
                one = [fit_encoder(name, cfg, ds, a.width, s, **kw) for s in seeds]
                seq_t, seq_c = min(seq_t, time.perf_counter() - t0), min(seq_c, time.process_time() - c0)
                t0, c0 = time.perf_counter(), time.process_time()
                group = train_group(name, cfg, [ds] * S, a.width, seeds, **kw)
                bat_t, bat_c = min(bat_t, time.perf_counter() - t0), min(bat_c, time.process_time() - c0)
            same = all(
                (mo is None) == (mg is None)
                and (mo is None or all(torch.equal(v, mg.state_dict()[k]) for k, v in mo.state_dict().items()))
                for (mo, _), (mg, _) in zip(one, group, strict=True)
            )
            rate = S * a.epochs * n
            note = "" if batchable(name) else "  (no batched step: both sequential)"
            print(
                f"{name:<16} {S:>3} {rate / seq_t:>10.0f} {rate / bat_t:>14.0f} {seq_t / bat_t:>6.2f} {seq_c / bat_c:>9.2f}  "
                f"{'yes' if same else 'NO'}{note}",
                flush=True,
            )


if __name__ == "__main__":
    main()
