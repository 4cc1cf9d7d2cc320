"""Make ``bench/engine/costs_default.json``: the cost table of the reference machine (``bench plan``).

    python benchmarks/make_cost_table.py CACHE_DIR [...] [--measures CACHE_DIR ...] [--steps 8] [--out FILE]

Run it on the reference machine (a 2-core CPU), from the repository root, with cache folders of
real runs there (only read). It writes:

* **training** cells: the median recorded seconds per seed-epoch (``train_seconds`` plus the
  convergence scoring's seconds, over ``epochs``) of the cache entries trained one seed at a time;
  every other cell that ``bench plan prediction=all profile=confirm`` needs is timed here
  (:func:`bench.engine.perf_table.time_cells`: a few steps, scaled to an epoch); the median ratio
  recorded / timed over the cells that have both puts them on one scale, and the whole table is
  then scaled to issue 20's cold ``prediction=pruning`` run on a quiet reference machine
  (:data:`ISSUE_TRAIN`; ``--no-issue-anchor``: the recorded scale), since the recorded runs and
  today's timings ran under other loads;
* **batched seeds**: measured here with :func:`bench.engine.perf_table.batch_table` when
  :mod:`bench.train.seedbatch` is in this build, else none (rerun this script after it is);
* **measurements**: the median recorded seconds per (prediction.measurement, method, dataset);
  the cells of ``--measures`` folders (recent runs of today's code) replace the older ones (the
  older cells of the same measurement are scaled by its median today/older ratio), all scaled
  by ``--anchor NAME=SECONDS`` (e.g. ``pruning.measure_encoder=22.7``: issue 20's cold pruning run
  on a quiet reference machine, 1637 worker-s over 72 encoders) when they ran on a busy machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's bench, not an installed one

CALIBRATE = ("infomax", "ae", "simclr", "supervised")  # recorded cells also timed: the recorded/timed ratio
# issue 20's cold `bench run prediction=pruning` (quick, workers=2) on a quiet reference machine: worker-seconds
# of its slowest methods, 3 seeds of mnist5k at 40 epochs each, as the pool records them (training + the
# measurement made right after it, 1637 s / 72 encoders on average)
ISSUE_TRAIN = {"mae": 582.0, "supervised_cnn": 292.0, "vicreg": 248.0, "barlow_twins": 240.0, "byol": 182.0}
ISSUE_MEASURE = 1637.0 / 72


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("caches", nargs="+", help="cache folders of real runs (read only)")
    ap.add_argument(
        "--measures",
        nargs="*",
        default=[],
        help="cache folders of recent runs whose measurement seconds take precedence (today's code)",
    )
    ap.add_argument(
        "--anchor",
        default="",
        help="NAME=SECONDS: scale the --measures cells so that measurement NAME's median is SECONDS "
        "(a figure from a quiet machine: recent runs on a shared one are slowed alike)",
    )
    ap.add_argument(
        "--issue-anchor",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="scale the training cells to issue 20's cold pruning run (ISSUE_TRAIN)",
    )
    ap.add_argument("--steps", type=int, default=8, help="timed training steps per cell")
    ap.add_argument(
        "--out", default=str(Path(__file__).resolve().parents[1] / "bench" / "engine" / "costs_default.json")
    )
    args = ap.parse_args(argv)

    from bench.catalog import load_all
    from bench.engine.costs import cell, device_name
    from bench.engine.perf_table import batch_table, confirm_cells, harvest, time_cells

    load_all()
    torch.set_num_threads(1)  # as bench run's workers
    device = torch.device("cpu")
    t0 = time.perf_counter()
    table = harvest(args.caches)
    if args.measures:
        fresh = harvest(args.measures).measure
        scale = 1.0
        if args.anchor:
            name, _, secs = args.anchor.partition("=")
            mine = [v for k, v in fresh.items() if k.split("|")[0] == name]
            scale = float(secs) / statistics.median(mine) if mine else 1.0
        fresh = {k: v * scale for k, v in fresh.items()}
        # an older cell of a measurement today's runs also made: scaled by that measurement's median
        # today/older ratio over the cells both have (the code changed, e.g. more pruning criteria)
        for name in {k.split("|")[0] for k in fresh}:
            ratios = [
                fresh[k] / v for k, v in table.measure.items() if k in fresh and k.startswith(name + "|") and v > 0
            ]
            if ratios:
                r = statistics.median(ratios)
                for k in [k for k in table.measure if k.startswith(name + "|") and k not in fresh]:
                    table.measure[k] *= r
                print(f"  {name}: older cells x{r:.2f} (median over {len(ratios)})", flush=True)
        table.measure.update(fresh)
        print(f"measurements of today's code: {len(fresh)} cells, scaled by {scale:.3f}", flush=True)
    recorded = dict(table.train)
    print(f"recorded: {len(recorded)} training cells, {len(table.measure)} measurement cells", flush=True)
    with_tmp = Path("/tmp") / "bench-cost-table-cache"  # an empty cache: only its path is used by the plan
    cells = confirm_cells(str(with_tmp), device)
    print(f"confirm needs {len(cells)} training cells ({args.steps} timed steps each)", flush=True)
    # time the cells no run recorded, and for the calibration the recorded cells of CALIBRATE (gradient-trained)
    todo = {k: v for k, v in cells.items() if cell(*k) not in recorded or k[0] in CALIBRATE}
    print(f"timing {len(todo)} of them", flush=True)
    timed = time_cells(todo, device, args.steps, log=lambda line: print(line, flush=True))
    both = [
        recorded[k]["epoch_seconds"] / v["epoch_seconds"]
        for k, v in timed.items()
        if k in recorded and v["epoch_seconds"] > 0 and recorded[k]["epoch_seconds"] > 0
    ]
    r_rec = statistics.median(both) if both else 1.0
    # the quiet reference machine's scale: the issue's per-epoch figures against today's timings
    anchors = (
        [
            ((ISSUE_TRAIN[m] / 3 - ISSUE_MEASURE) / 40) / timed[cell(m, "mnist5k")]["epoch_seconds"]
            for m in ISSUE_TRAIN
            if cell(m, "mnist5k") in timed
        ]
        if args.issue_anchor
        else []
    )
    r_anchor = statistics.median(anchors) if anchors else r_rec
    print(
        f"recorded/timed {r_rec:.3f} over {len(both)} cells; issue/timed {r_anchor:.3f} over {len(anchors)} "
        f"anchors ({', '.join(f'{a:.2f}' for a in anchors)})",
        flush=True,
    )
    for k, v in recorded.items():
        table.train[k] = {**v, "epoch_seconds": v["epoch_seconds"] * r_anchor / r_rec}
    for k, v in timed.items():
        if k not in recorded:
            table.train[k] = {"epoch_seconds": v["epoch_seconds"] * r_anchor, "n_train": v["n_train"], "timed": True}
    table.batch = batch_table({m for m, _ in cells}, device, log=lambda line: print(line, flush=True))
    n_timed = sum(1 for k in cells if cell(*k) not in recorded)
    table.device = f"cpu ({device_name(device)}), {torch.get_num_threads()} thread(s) per worker"
    table.note = (
        f"reference machine; {len(recorded)} training cells recorded by real runs, {n_timed} timed "
        f"({args.steps} steps), on one scale through the recorded/timed ratio {r_rec:.3f} (over {len(both)} "
        f"cells), scaled to the quiet machine of issue 20's cold pruning run by {r_anchor:.3f} (median over "
        f"{len(anchors)} of its methods); measurements recorded by real runs"
        + (f" (recent ones anchored to {args.anchor} s)" if args.anchor else "")
        + "; "
        f"batched seeds {'measured' if table.batch else 'not measured (no bench.train.seedbatch)'}"
    )
    table.save(args.out)
    print(f"{table.note}\nwrote {args.out} in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
