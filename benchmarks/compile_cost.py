"""When does ``compile=true`` pay? Eager against compiled training steps, in one process on one thread.

    python benchmarks/compile_cost.py [methods=infomax,ae] [dataset=mnist5k] [epochs=6] [probe=false|all|a,b]

For each method (``mnist5k``, K = 64, batch 128) it prints:

* the **per-step time** of the eager trainer (:func:`bench.train.trainer.train`) and of the compiled step
  (:mod:`bench.train.compiled`), each the fastest epoch of ``epochs`` (after a warm-up epoch), the two
  runs interleaved (eager, compiled, eager, compiled), so a burst of other work on a shared machine
  does not decide the ratio;
* the **cold compile** seconds (a fresh process with an empty inductor cache: what the first job
  of a new worker pays), the **warm-disk** seconds (a fresh process whose inductor cache is
  filled: a restarted worker), and a **reused** job beside an eager one (``epochs`` epochs, best
  of 3: the entry of :mod:`bench.train.compiled` is hit, nothing compiles);
* the **break-even**: the epochs after which a cold compile has paid for itself (compile seconds /
  (eager - compiled) seconds per epoch), the same for a warm-disk start, and both in jobs of
  confirm's budget on that dataset (a worker that trains that many jobs of one kind gains).

``probe=all`` (or a list of methods) trains every gradient method (or those) compiled for 2 epochs
on ``digits`` and says which compile and which fall back to the eager step (with the reason), the
compile seconds, whether two compiled runs of one seed agree bit for bit, and the max weight (and
buffer) difference against the eager run (random draws in a loss are torch's own under
``fallback_random``, so what differs is rounding, amplified over the steps).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import catalog  # noqa: E402
from bench.config import RunConfig  # noqa: E402
from bench.data import load_dataset  # noqa: E402
from bench.train import compiled, trainer  # noqa: E402
from bench.train.methods import METHODS  # noqa: E402

WIDTH = 64
BATCH = 128


def _method(name: str, ds, seed: int = 0):
    torch.manual_seed(seed)
    return trainer.build(name, METHODS.get(name).Config(), trainer.data_info(ds), WIDTH)


def _epochs(name: str, ds, epochs: int, compile_: bool) -> tuple[list[float], float, str]:
    """Train one job; return its per-epoch seconds (from an epoch-end callback), its total and note."""
    m = _method(name, ds)
    y = ds.train.y if m.uses_labels else None
    stamps = [time.perf_counter()]
    log = trainer.train(
        m,
        ds.train.x,
        y,
        epochs=epochs,
        batch_size=BATCH,
        seed=0,
        compiled=compile_,
        on_epoch=lambda e, t: stamps.append(time.perf_counter()),
    )
    per = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    return per, stamps[-1] - stamps[0], getattr(log, "compile", "eager")


def child(name: str, dataset: str, epochs: int) -> dict:
    """One fresh process: a compiled job (cold or warm-disk), then a second one (reused)."""
    ds = load_dataset(dataset)
    steps = len(trainer.batch_slices(len(ds.train.x), BATCH))
    per1, total1, note1 = _epochs(name, ds, epochs, True)
    per2, total2, note2 = _epochs(name, ds, epochs, True)
    return {
        "first_epoch": per1[0],
        "first_total": total1,
        "note": note1,
        "second_total": total2,
        "second_note": note2,
        "steps": steps,
        "compiled_epochs": per1[1:] + per2,
    }


def _spawn(args: list[str], cache_dir: str) -> dict:
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache_dir, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, __file__, *args], env=env, capture_output=True, text=True, check=False)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"child {args} failed ({out.returncode}): {out.stderr.strip().splitlines()[-3:]}")
    return json.loads(lines[-1])


def cost(methods: list[str], dataset: str, epochs: int) -> None:
    ds = load_dataset(dataset)
    steps = len(trainer.batch_slices(len(ds.train.x), BATCH))
    budget = RunConfig(profile="confirm").resolved_epochs(dataset)
    print(
        f"== compile cost: {dataset} (K={WIDTH}, batch {BATCH}, {steps} steps/epoch), one process, "
        f"{torch.get_num_threads()} thread, torch {torch.__version__}, {time.strftime('%H:%M:%S')}"
    )
    head = (
        f"{'method':<9} {'eager ms/step':>13} {'compiled ms/step':>16} {'speedup':>7} {'cold compile s':>14} "
        f"{'warm-disk s':>11} {'reused job s':>12} {'eager job s':>11} {'break-even ep (cold/warm)':>26} "
        f"{'jobs (cold/warm)':>22}"
    )
    print(head)
    for name in methods:
        with tempfile.TemporaryDirectory(prefix="inductor-") as cache:
            cold = _spawn(["child", name, dataset, str(epochs)], cache)  # empty inductor cache
            warm = _spawn(["child", name, dataset, str(epochs)], cache)  # its cache filled by the cold one
        eager_ep, comp_ep = [], list(cold["compiled_epochs"]) + list(warm["compiled_epochs"])
        eager_total = reused_total = float("inf")
        _epochs(name, ds, 1, True)  # this process's entry: compiled once (its disk cache is warm), then reused
        for _ in range(3):  # eager and compiled jobs interleaved
            per, total, _ = _epochs(name, ds, epochs, False)
            eager_ep += per
            eager_total = min(eager_total, total)
            per, total, _ = _epochs(name, ds, epochs, True)
            comp_ep += per
            reused_total = min(reused_total, total)
        e, c = min(eager_ep) / steps, min(comp_ep) / steps
        # a compiled job's first epoch = compile + one epoch: the compile time is its excess
        cold_s = cold["first_epoch"] - c * steps
        warm_s = warm["first_epoch"] - c * steps
        gain = (e - c) * steps  # seconds saved per epoch
        be = f"{cold_s / gain:.0f} / {warm_s / gain:.0f}" if gain > 0 else "never"
        jobs = f"{cold_s / gain / budget:.1f} / {warm_s / gain / budget:.1f}" if gain > 0 else "never"
        print(
            f"{name:<9} {1e3 * e:>13.2f} {1e3 * c:>16.2f} {e / c:>6.2f}x {cold_s:>14.1f} {warm_s:>11.1f} "
            f"{reused_total:>12.2f} {eager_total:>11.2f} {be:>26} {jobs:>22}"
        )
        print(
            f"          (cold process: {cold['note']}, then {cold['second_note']} in {cold['second_total']:.2f} s; "
            f"warm-disk process: {warm['note']})"
        )
    print(
        f"break-even: epochs (and {budget}-epoch jobs: confirm's {dataset} budget) after which a worker's compile "
        f"has paid; a reused entry pays from its first step. ms/step: the fastest of the timed epochs, eager and "
        f"compiled interleaved; job s: {epochs}-epoch jobs, best of 3"
    )


def probe(names: list[str]) -> None:
    ds = load_dataset("digits")
    print(f"== probe: every method compiled, digits, 2 epochs, K={WIDTH}, batch {BATCH}")
    print(f"{'method':<16} {'status':<9} {'compile s':>9} {'same twice':>10} {'max|dW| vs eager':>16}  note")
    eager_only = dict(compiled.EAGER_ONLY)
    compiled.EAGER_ONLY.clear()  # measure them too
    for name in names:
        t0 = time.perf_counter()
        try:
            runs = []
            for c in (False, True, True):
                m = _method(name, ds)
                log = trainer.train(
                    m, ds.train.x, ds.train.y if m.uses_labels else None, epochs=2, batch_size=BATCH, seed=0, compiled=c
                )
                runs.append((m.state_dict(), getattr(log, "compile", "eager"), log.history[-1]["loss"]))
            note = runs[1][1]
            status = "eager" if note.startswith("eager") else "compiled"
            same = all(torch.equal(runs[1][0][k], runs[2][0][k]) for k in runs[1][0])
            dw = max(
                float((runs[1][0][k].float() - runs[0][0][k].float()).abs().max())
                for k in runs[0][0]
                if runs[0][0][k].numel()
            )
            secs = time.perf_counter() - t0
            print(
                f"{name:<16} {status:<9} {secs:>9.1f} {str(same):>10} {dw:>16.2e}  {note}"
                f"{'' if name not in eager_only else ' [EAGER_ONLY: ' + eager_only[name] + ']'}",
                flush=True,
            )
        except Exception as e:  # noqa: BLE001 - a probe reports and goes on
            print(
                f"{name:<16} {'error':<9} {time.perf_counter() - t0:>9.1f}  {type(e).__name__}: {str(e)[:200]}",
                flush=True,
            )
    compiled.EAGER_ONLY.update(eager_only)


def main(argv: list[str]) -> None:
    torch.set_num_threads(1)
    catalog.load_all()
    if argv and argv[0] == "child":
        print(json.dumps(child(argv[1], argv[2], int(argv[3]))))
        return
    opts = {"methods": "infomax,ae", "dataset": "mnist5k", "epochs": "6", "probe": "false"}
    for a in argv:
        k, _, v = a.partition("=")
        if k not in opts:
            raise SystemExit(f"compile_cost: unknown key '{k}' (keys: {', '.join(opts)})")
        opts[k] = v
    if opts["probe"] != "false":
        names = (
            [n for n in METHODS.names() if METHODS.get(n).kind == "gradient"]
            if opts["probe"] == "all"
            else opts["probe"].split(",")
        )
        probe(names)
        return
    cost(opts["methods"].split(","), opts["dataset"], int(opts["epochs"]))


if __name__ == "__main__":
    main(sys.argv[1:])
