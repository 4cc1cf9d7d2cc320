"""Make ``bench/costs_default.json``: the cost table of the reference machine (``bench plan``).

    python benchmarks/make_cost_table.py CACHE_DIR [...] [--measures CACHE_DIR ...] [--steps 8] [--out FILE]

Run it on the reference machine (a 2-core CPU), from the repository root, with cache folders of
real runs there (only read). It writes:

* **training** cells: the median recorded seconds per seed-epoch (``train_seconds`` plus the
  convergence scoring's seconds, over ``epochs``) of the cache entries trained one seed at a time;
  every other cell that ``bench plan prediction=all profile=confirm`` needs is timed here
  (:func:`bench.perf_table.time_cells`: a few steps, scaled to an epoch) and calibrated by the
  median ratio recorded / timed over the cells that have both (timing a few steps leaves out the
  per-epoch checks, the convergence scores and a shared machine's contention);
* **batched seeds**: measured here with :func:`bench.perf_table.batch_table` when
  :mod:`bench.seedbatch` is in this build, else none (rerun this script after it is);
* **measurements**: the median recorded seconds per (prediction.measurement, method, dataset);
  the cells of ``--measures`` folders (recent runs of today's code) replace the older ones.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("caches", nargs="+", help="cache folders of real runs (read only)")
    ap.add_argument("--measures", nargs="*", default=[],
                    help="cache folders of recent runs whose measurement seconds take precedence (today's code)")
    ap.add_argument("--steps", type=int, default=8, help="timed training steps per cell")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "bench" / "costs_default.json"))
    args = ap.parse_args(argv)

    from bench.catalog import load_all
    from bench.costs import cell
    from bench.perf import device_name
    from bench.perf_table import batch_table, confirm_cells, harvest, time_cells

    load_all()
    torch.set_num_threads(1)  # as bench run's workers
    device = torch.device("cpu")
    t0 = time.perf_counter()
    table = harvest(args.caches)
    if args.measures:
        fresh = harvest(args.measures).measure
        table.measure.update(fresh)
        print(f"measurements of today's code: {len(fresh)} cells", flush=True)
    recorded = dict(table.train)
    print(f"recorded: {len(recorded)} training cells, {len(table.measure)} measurement cells", flush=True)
    with_tmp = Path("/tmp") / "bench-cost-table-cache"  # an empty cache: only its path is used by the plan
    cells = confirm_cells(str(with_tmp), device)
    print(f"confirm needs {len(cells)} training cells; timing them ({args.steps} steps each)", flush=True)
    timed = time_cells(cells, device, args.steps, log=lambda line: print(line, flush=True))
    both = [recorded[k]["epoch_seconds"] / v["epoch_seconds"] for k, v in timed.items()
            if k in recorded and v["epoch_seconds"] > 0 and recorded[k]["epoch_seconds"] > 0]
    ratio = statistics.median(both) if both else 1.0
    for k, v in timed.items():
        if k not in recorded:
            table.train[k] = {"epoch_seconds": v["epoch_seconds"] * ratio, "n_train": v["n_train"],
                              "timed": True}
    table.batch = batch_table({m for m, _ in cells}, device, log=lambda line: print(line, flush=True))
    n_timed = sum(1 for k in cells if cell(*k) not in recorded)
    table.device = f"cpu ({device_name(device)}), {torch.get_num_threads()} thread(s) per worker"
    table.note = (f"reference machine; {len(recorded)} training cells recorded by real runs, {n_timed} timed "
                  f"({args.steps} steps) and scaled by the median recorded/timed ratio {ratio:.2f} "
                  f"(over {len(both)} cells); measurements recorded by real runs; "
                  f"batched seeds {'measured' if table.batch else 'not measured (no bench.seedbatch)'}")
    table.save(args.out)
    print(f"{table.note}\nwrote {args.out} in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
