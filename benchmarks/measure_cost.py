"""Benchmark (not a test): one pruning and one transfer measurement, reference path against fast path.

Trains (or loads from ``--cache``) one encoder on mnist5k (quick epochs, K = 64) and one on the
source of ``--pair`` (default ``mnist_lo_hi``: mnist5k[0-4] -> mnist5k[5-9]), then times, in this
process on one thread, best of ``--repeats`` with the two variants interleaved (A B A B ...):

* ``pruning``: :meth:`predictions.pruning.protocol.Pruning.measure_encoder` with ``fast=False``
  and the kNN R^2 of ``bench/evaluate/metrics.py`` at git revision ``--ref`` (the old path), against the
  working tree with ``fast=True``;
* ``transfer``: :meth:`predictions.transfer.protocol.Transfer.measure_pair` (the pair's transfer
  reference, every feasible budget) with ``fast=False`` (one batched probe per scaling) and the
  batched L-BFGS with ``compact=False`` (its whole state every iteration) against ``fast=True``
  (both scalings in one batch, the L-BFGS state cut down to the active problems).

It also prints the L-BFGS probe-evaluations of each pruning variant (each loss evaluation of a
batched problem of G probes counts G), which the machine's load does not change, and the largest
difference between the two variants' accuracy rows.

    PYTHONPATH=. python3 benchmarks/measure_cost.py [--method infomax] [--repeats 3] [--ref 123fc13]
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import math
import pathlib
import subprocess
import sys
import tempfile
import time

import torch

from bench.catalog import load_all

load_all()

import bench.evaluate.probe as probe  # noqa: E402
from bench.config import parse_overrides  # noqa: E402
from bench.engine.context import RunContext  # noqa: E402
from bench.engine.runner import build_prediction, setup_device  # noqa: E402
from bench.protocol import PREDICTIONS  # noqa: E402
from predictions.pruning import protocol as pruning_protocol  # noqa: E402
from predictions.transfer import pairs as P  # noqa: E402
from predictions.transfer import probing  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_ref(rev: str, path: str = "bench/evaluate/metrics.py"):
    """``path`` at git revision ``rev``, as a module."""
    src = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    file = pathlib.Path(tempfile.mkdtemp()) / "metrics_ref.py"
    file.write_text(src)
    spec = importlib.util.spec_from_file_location("metrics_ref", file)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["metrics_ref"] = mod
    spec.loader.exec_module(mod)
    return mod


def context(prediction: str, method: str, cache: str, extra: tuple[str, ...] = ()):
    args = [
        f"prediction={prediction}",
        f"methods=[{method}]",
        "seeds=1",
        "workers=1",
        f"cache={cache}",
        f"out={cache}/out",
        "threads=1",
        *extra,
    ]
    cfg = parse_overrides(args, PREDICTIONS.get(prediction).Config, prediction)
    pred = build_prediction(cfg)
    return pred, RunContext(cfg, pred, setup_device(cfg), [method])


class Evaluations:
    """Counts probe-evaluations of :func:`bench.evaluate.probe.fit_logreg` (G per loss evaluation)."""

    def __init__(self):
        self.n = 0
        real = probe._problem

        def counted(*args, **kwargs):
            loss_grad, w, b = real(*args, **kwargs)

            def wrapped():
                self.n += w.shape[0]
                return loss_grad()

            return wrapped, w, b

        probe._problem = counted


def rows_by_key(rows: list[dict]) -> dict:
    cols = ("criterion", "probe_mode", "fraction", "sparsity", "budget", "l2_mode", "scaling")
    return {(r["metric"], *(str(r.get(c)) for c in cols)): r["value"] for r in rows}


def max_acc_diff(a: dict, b: dict) -> float:
    keys = [k for k in a if k[0] in ("acc", "unstructured_acc", "probe_acc", "kappa") and not math.isnan(a[k])]
    return max(abs(a[k] - b[k]) for k in keys)


def ab(name: str, variants: dict, repeats: int, evaluations: Evaluations | None = None) -> None:
    """Best-of-``repeats`` seconds of each variant, interleaved; prints one line per variant."""
    best = {v: math.inf for v in variants}
    evals, rows = {}, {}
    for _ in range(repeats):
        for v, fn in variants.items():
            n0 = evaluations.n if evaluations else 0
            t0 = time.perf_counter()
            rows[v] = rows_by_key(fn())
            best[v] = min(best[v], time.perf_counter() - t0)
            if evaluations:
                evals[v] = evaluations.n - n0
    old, new = variants
    for v in variants:
        extra = f", {evals[v]} probe-evaluations" if evaluations else ""
        print(f"{name:9s} {v:4s}: best {best[v]:6.2f} s of {repeats}{extra}")
    print(
        f"{name:9s} old/new = {best[old] / best[new]:.2f}x; max |d acc| between the two: "
        f"{max_acc_diff(rows[old], rows[new]):.4f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", default="infomax")
    ap.add_argument("--pair", default="mnist_lo_hi", choices=sorted(P.PAIRS))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cache", default=str(pathlib.Path(tempfile.gettempdir()) / "measure-cost-cache"))
    ap.add_argument("--ref", default="123fc13", help="git revision of the old bench/evaluate/metrics.py (kNN R^2)")
    ap.add_argument("--only", choices=("pruning", "transfer"), default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    evaluations = Evaluations()
    print(
        f"measure_cost: {a.method}, one thread, torch {torch.__version__}, best of {a.repeats} interleaved "
        f"(old = fast=False, kNN R^2 at {a.ref}, "
        "L-BFGS compact=False; new = this tree)"
    )

    if a.only in (None, "pruning"):
        pred, ctx = context("pruning", a.method, a.cache)
        enc = next(ctx.encoders())
        old_metrics, new_metrics = load_ref(a.ref), pruning_protocol.metrics

        def pruning(fast: bool):
            def run():
                pred.fast = fast
                pruning_protocol.metrics = new_metrics if fast else old_metrics
                try:
                    return pred.measure_encoder(enc, ctx, enc.spec.seed)
                finally:
                    pruning_protocol.metrics = new_metrics

            return run

        print(f"pruning: {a.method} on {enc.spec.dataset}, K={enc.spec.width}, seed {enc.spec.seed}")
        ab("pruning", {"old": pruning(False), "new": pruning(True)}, a.repeats, evaluations)

    if a.only in (None, "transfer"):
        pred, ctx = context("transfer", a.method, a.cache, (f"transfer.pairs=[{a.pair}]",))
        pair = P.PAIRS[a.pair]
        enc = next(ctx.encoders(dataset=pair.source, widths=[pair.width or pred.cfg.width]))
        target = ctx.dataset(pair.target)
        feasible = tuple(b for b in pred.cfg.budgets if not P.infeasible(target.train.y, target.n_classes, b))

        compacting = probing.batched_lbfgs

        def transfer(fast: bool):
            def run():
                pred.fast = fast
                probing.batched_lbfgs = compacting if fast else functools.partial(compacting, compact=False)
                try:
                    return pred.measure_pair(enc, ctx, a.pair, "transfer", feasible, ())
                finally:
                    probing.batched_lbfgs = compacting

            return run

        print(f"transfer: {a.method} {pair.source} -> {pair.target}, K={enc.spec.width}, budgets {list(feasible)}")
        ab("transfer", {"old": transfer(False), "new": transfer(True)}, a.repeats)


if __name__ == "__main__":
    main()
