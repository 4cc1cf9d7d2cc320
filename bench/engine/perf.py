"""``bench perf``: where the suite's time goes, measured in one process on the current device.

Prints one aligned table:

* **trainer throughput** (samples/s) of ``infomax`` and ``simclr`` at batch 128 and 1024 on
  ``mnist5k`` (K = 64): the real :func:`bench.train.trainer.train` for ``EPOCHS`` epochs after one
  warm-up epoch, beside the same model trained by a plain research-code loop (a
  ``DataLoader(TensorDataset(x), shuffle=True)``, ``loss.item()`` every step, the same Adam),
  and the ratio trainer / plain. Each rate is that of the loop's fastest epoch (timed by an
  epoch-end callback), so a burst of other work on a shared machine does not decide a ratio;
* **InfoMax FLOP/s** at batch 128 and 1024 against a **large-matmul peak** measured here (a
  2048 x 2048 fp32 matmul, best of ``PEAK_REPS``), i.e. the roofline fraction. FLOPs per step are
  counted by ``torch.utils.flop_counter.FlopCounterMode`` on one training step (matmul-type ops,
  forward and backward). For the subject it equals the analytic count
  ``4 B D K + 6 B K^2``: the encoder's forward ``W x`` (2 B D K) and its weight gradient
  (2 B D K; the input needs no gradient, so there is no ``dL/dx`` matmul), the correlation
  matrix's ``c^T c`` (2 B K^2) and its backward (two B K^2 matmuls, 4 B K^2). Elementwise work
  (ReLU, logsumexp, variances, Adam) is not counted, so the fraction is an upper bound of how
  much of the step is matmul at peak speed. When the fraction at batch 1024 on CPU is under
  ``PROFILE_BELOW``, a short torch.profiler table (top ops by self CPU time over a few steps)
  says where the time goes;
* **probe fit**: one full :func:`bench.evaluate.probe.linear_probe` (its whole L2 grid) on the mnist5k
  features of an untrained (seeded) ``infomax`` encoder;
* **batched seeds**: seed-samples/s of ``infomax``, ``ae`` and ``simclr`` at S = 3 and S = 10
  trained by :func:`bench.train.seedbatch.train_group` against S sequential
  :func:`bench.train.trainer.fit_encoder` calls, and the ratio (:func:`bench.engine.perf_table.batch_lines`);
* **end to end** (``e2e=true``): the wall time of ``bench run prediction=all`` (quick profile)
  in a subprocess, into a temporary ``out=`` with a fresh cache.

``table=true`` instead measures the cost table of ``bench plan`` on this device and stores it in
the cache (``cache=``, default ``results/cache``): :mod:`bench.engine.perf_table`.

Keys: ``device=auto|cpu|cuda``, ``e2e=false|true``, ``table=false|true``, ``cache=DIR``, ``steps=N`` (optional: N steps per epoch
instead of full epochs, for a fast smoke run), ``threads=N`` (CPU threads for torch, default 1
like ``bench run``). CUDA clocks are read after ``torch.cuda.synchronize()``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import torch
from torch.utils.data import DataLoader, TensorDataset

from bench.config import ConfigError, key_values
from bench.engine.costs import device_name

KEYS = ("device", "e2e", "steps", "threads", "table", "cache")
DATASET = "mnist5k"
WIDTH = 64
METHODS_TIMED = ("infomax", "simclr")
BATCHES = (128, 1024)
EPOCHS = 5  # timed epochs after the warm-up epoch (1 when steps= is given)
PEAK_N = 2048
PEAK_REPS = 5
PROFILE_BELOW = 0.30
PROFILE_STEPS = 5
PROFILE_TOP = 8
E2E_ARGS = ("prediction=all", "profile=quick")
BATCH_EPOCHS = 3  # epochs per seed in the batched-seeds lines (building and the final encode amortised)


# ----------------------------------------------------------------------------- parsing
def parse_args(args: list[str]) -> dict:
    """``key=value`` args -> {device, e2e, steps, threads}; a bad one raises a one-line ConfigError."""
    opts: dict = {"device": "auto", "e2e": False, "steps": None, "threads": 1, "table": False, "cache": None}
    for k, v in key_values(args, KEYS, "perf")[0].items():
        if k == "device":
            if v not in ("auto", "cpu", "cuda"):
                raise ConfigError(f"device: unknown '{v}' (choices: auto, cpu, cuda)")
            opts[k] = v
        elif k in ("e2e", "table"):
            if v.lower() not in ("true", "false"):
                raise ConfigError(f"{k}: expected true or false, got '{v}'")
            opts[k] = v.lower() == "true"
        elif k == "cache":
            if not v:
                raise ConfigError("cache: expected a folder, got ''")
            opts[k] = v
        else:
            try:
                n = int(v)
            except ValueError:
                n = 0
            if n < 1:
                raise ConfigError(f"{k}: expected an integer >= 1, got '{v}'")
            opts[k] = n
    return opts


# ----------------------------------------------------------------------------- helpers
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], object], device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def _build(name: str, info, seed: int = 0):
    from bench.train.methods import METHODS

    torch.manual_seed(seed)
    cls = METHODS.get(name)
    return cls(cls.Config(), info, WIDTH)


def plain_loop(
    method, x: torch.Tensor, batch_size: int, epochs: int, on_epoch: Callable[[int], None] | None = None
) -> int:
    """The research-code baseline: DataLoader over a TensorDataset, ``loss.item()`` every step.

    Same model, loss and optimiser (Adam with the method's lr / weight decay) as the trainer;
    calls ``on_epoch(samples)`` after each epoch and returns the number of samples processed."""
    params = [p for p in method.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=method.cfg.lr, weight_decay=method.cfg.weight_decay)
    loader = DataLoader(TensorDataset(x), batch_size=batch_size, shuffle=True)
    method.train()
    seen, running = 0, 0.0
    for _ in range(epochs):
        for (xb,) in loader:
            loss = sum(method.loss_terms(xb, None).values())
            opt.zero_grad()
            loss.backward()
            opt.step()
            method.after_step()
            running += loss.item()
            seen += xb.shape[0]
        if on_epoch is not None:
            on_epoch(seen)
    method.eval()
    return seen


def epoch_size(n: int, batch_size: int) -> tuple[int, int]:
    """(samples, steps) of one trainer epoch (a short trailing batch may be dropped)."""
    from bench.train.trainer import batch_slices

    bounds = batch_slices(n, batch_size)
    return sum(hi - lo for lo, hi in bounds), len(bounds)


class _EpochClock:
    """Per-epoch wall times (CUDA synchronised) from an epoch-end callback."""

    def __init__(self, device: torch.device):
        self.device = device
        _sync(device)
        self.marks = [time.perf_counter()]

    def __call__(self, *_) -> None:
        _sync(self.device)
        self.marks.append(time.perf_counter())

    def best(self) -> float:
        return min(b - a for a, b in zip(self.marks, self.marks[1:], strict=False))


def throughput(name: str, info, x: torch.Tensor, batch_size: int, epochs: int, device: torch.device):
    """(trainer samples/s, plain-loop samples/s, trainer seconds per step), each from its fastest
    of ``epochs`` epochs after a warm-up epoch (the fastest epoch: robust to a shared machine)."""
    from bench.train.trainer import train

    m = _build(name, info).to(device)
    train(m, x, None, epochs=1, batch_size=batch_size, seed=0)  # warm-up
    clock = _EpochClock(device)
    train(m, x, None, epochs=epochs, batch_size=batch_size, seed=1, on_epoch=clock)
    t = clock.best()
    n_ep, steps_ep = epoch_size(x.shape[0], batch_size)

    m = _build(name, info).to(device)
    plain_loop(m, x, batch_size, 1)  # warm-up
    pclock = _EpochClock(device)
    plain_loop(m, x, batch_size, epochs, on_epoch=pclock)
    return n_ep / t, x.shape[0] / pclock.best(), t / steps_ep


def step_flops(info, x: torch.Tensor, batch_size: int) -> int:
    """Matmul FLOPs of one InfoMax training step (forward + backward), by FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    m = _build("infomax", info).to(x.device)
    with FlopCounterMode(display=False) as fc:
        sum(m.loss_terms(x[:batch_size]).values()).backward()
    return int(fc.get_total_flops())


def matmul_peak(device: torch.device, n: int = PEAK_N, reps: int = PEAK_REPS) -> float:
    """FLOP/s of the best of ``reps`` n x n fp32 matmuls."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    a @ b  # warm-up
    best = min(_timed(lambda: a @ b, device) for _ in range(reps))
    return 2 * n**3 / best


def profile_lines(info, x: torch.Tensor, batch_size: int, steps: int = PROFILE_STEPS) -> list[str]:
    """Top ops by self CPU time over ``steps`` InfoMax trainer steps at ``batch_size`` (fewer when
    the training set is smaller than ``steps`` batches)."""
    from torch.profiler import ProfilerActivity, profile

    from bench.train.trainer import train

    m = _build("infomax", info).to(x.device)
    xs = x[: batch_size * steps]
    steps = epoch_size(xs.shape[0], batch_size)[1]
    train(m, xs, None, epochs=1, batch_size=batch_size, seed=0)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train(m, xs, None, epochs=1, batch_size=batch_size, seed=0)
    ev = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in ev) or 1.0
    out = []
    for e in ev[:PROFILE_TOP]:
        out.append(
            f"{e.key[:40]:<40} {e.self_cpu_time_total / 1e3 / steps:8.2f} ms/step "
            f"{100 * e.self_cpu_time_total / total:5.1f}%  {e.count / steps:5.1f} calls/step"
        )
    return out


def probe_seconds(ds, device: torch.device) -> tuple[float, float]:
    """(seconds, test accuracy) of one linear-probe fit with its L2 grid on untrained infomax features."""
    from bench.engine.jobs import data_info
    from bench.evaluate.probe import linear_probe

    m = _build("infomax", data_info(ds)).to(device)
    f = [m.encode_all(s.x) for s in (ds.train, ds.val, ds.test)]
    res: list = []
    t = _timed(
        lambda: res.append(linear_probe(f[0], ds.train.y, f[1], ds.val.y, f[2], ds.test.y, ds.n_classes)), device
    )
    return t, float(res[0].test_acc[0])


def e2e_seconds(run_args: list[str], device: str) -> tuple[float, int]:
    """(wall seconds, exit code) of ``python -m bench run *run_args`` into a temporary out= and cache=."""
    with tempfile.TemporaryDirectory(prefix="bench-perf-") as tmp:
        cmd = [
            sys.executable,
            "-m",
            "bench",
            "run",
            *run_args,
            f"device={device}",
            f"out={tmp}/results",
            f"reports={tmp}/reports",
            f"cache={tmp}/cache",
        ]
        t0 = time.perf_counter()
        rc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
        return time.perf_counter() - t0, rc


# ----------------------------------------------------------------------------- command
def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(
        c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    ).rstrip()


def _table(title: str, header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return [title, "  " + _row(header, widths), *("  " + _row(r, widths) for r in rows)]


def cmd_perf(args: list[str]) -> int:
    """``bench perf [device=auto|cpu|cuda] [e2e=false|true] [steps=N] [threads=N]``; prints the table."""
    from bench.catalog import load_all
    from bench.data import DataConfig, load_dataset
    from bench.engine.jobs import data_info
    from bench.engine.runner import resolve_device

    opts = parse_args(args)
    device = resolve_device(opts["device"])
    if device.type == "cpu":
        torch.set_num_threads(opts["threads"])
    load_all()
    t_all = time.perf_counter()
    if opts["table"]:
        return _cost_table(opts, device, t_all)
    ds = load_dataset(DATASET, DataConfig(), device)
    info = data_info(ds)
    steps, epochs = opts["steps"], EPOCHS if opts["steps"] is None else 1
    out = [
        f"bench perf: device {device.type} ({device_name(device)}), torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, {DATASET} K={WIDTH}, best of {epochs} timed epoch(s) after 1 warm-up"
        + (f", {steps} steps per epoch" if steps else "")
    ]

    rows, step_s = [], {}
    for name in METHODS_TIMED:
        for bs in BATCHES:
            x = ds.train.x if steps is None else ds.train.x[: steps * bs]
            tr, pl, s = throughput(name, info, x, bs, epochs, device)
            step_s[name, bs] = s
            rows.append([name, str(bs), f"{tr:,.0f}", f"{pl:,.0f}", f"{tr / pl:.2f}x"])
    out += _table("trainer throughput (samples/s)", ["method", "batch", "trainer", "plain loop", "trainer/plain"], rows)

    peak = matmul_peak(device)
    rows, fractions = [], {}
    for bs in BATCHES:
        fl = step_flops(info, ds.train.x, bs)
        rate = fl / step_s["infomax", bs]
        fractions[bs] = rate / peak
        rows.append(
            [
                str(bs),
                f"{fl / 1e6:.1f}",
                f"{step_s['infomax', bs] * 1e3:.2f}",
                f"{rate / 1e9:.2f}",
                f"{100 * rate / peak:.1f}%",
            ]
        )
    out += _table(
        f"infomax step FLOP/s (FlopCounterMode) vs {PEAK_N}x{PEAK_N} fp32 matmul peak {peak / 1e9:.1f} GFLOP/s",
        ["batch", "MFLOP/step", "ms/step", "GFLOP/s", "roofline"],
        rows,
    )
    if device.type == "cpu" and fractions[BATCHES[-1]] < PROFILE_BELOW:
        out.append(
            f"profile: infomax batch {BATCHES[-1]} reaches {100 * fractions[BATCHES[-1]]:.1f}% < "
            f"{100 * PROFILE_BELOW:.0f}% of peak; top ops by self CPU time (trainer steps):"
        )
        out += ["  " + line for line in profile_lines(info, ds.train.x, BATCHES[-1])]

    from bench.engine.perf_table import batch_lines

    small = load_dataset("digits", DataConfig(), device)
    cut = (lambda d: d) if steps is None else (lambda d: _head(d, steps * BATCHES[0]))  # noqa: E731
    out += batch_lines(cut(ds), device, small=cut(small), epochs=BATCH_EPOCHS if steps is None else 1)
    t_probe, acc = probe_seconds(ds, device)
    out.append(
        f"probe fit: {t_probe:.2f} s (linear probe, 6-value L2 grid, untrained infomax features, test acc {acc:.3f})"
    )
    if opts["e2e"]:
        t_e2e, rc = e2e_seconds(list(E2E_ARGS), device.type)
        out.append(f"end to end: {t_e2e:.1f} s (bench run {' '.join(E2E_ARGS)}, fresh cache, exit code {rc})")
    else:
        out.append("end to end: skipped (e2e=true runs bench run prediction=all)")
    out.append(f"perf total: {time.perf_counter() - t_all:.1f} s")
    print("\n".join(out), flush=True)
    return 0


def _head(ds, n: int):
    """``ds`` with its training set cut to the first ``n`` samples (a fast smoke run)."""
    import dataclasses

    from bench.data import Split

    t = ds.train
    cut = Split(t.x[:n], None if t.y is None else t.y[:n], None if t.factors is None else t.factors[:n])
    return dataclasses.replace(ds, train=cut)


def _cost_table(opts: dict, device: torch.device, t_all: float) -> int:
    """``bench perf table=true``: measure the cost table of this device and store it in the cache."""
    from bench.config import RunConfig
    from bench.engine import costs
    from bench.engine.perf_table import measure_table

    cache = opts["cache"] or RunConfig().cache_dir()
    label = f"{device.type} ({device_name(device)}), torch {torch.__version__}, threads {torch.get_num_threads()}"
    print(
        f"bench perf table: timing the training cells of bench plan prediction=all profile=confirm on {label}",
        flush=True,
    )
    table = measure_table(cache, device, label, steps=opts["steps"] or 4, log=lambda line: print(line, flush=True))
    table.note = "bench perf table=true: a few timed training steps per cell; measurements from this cache"
    path = table.save(costs.stored_path(cache, device.type, device_name(device)))
    print(
        f"cost table: {len(table.train)} training cells, {len(table.batch)} batched methods, "
        f"{len(table.measure)} measurements -> {path} (bench plan with cache={cache} uses it on this device)"
    )
    print(f"perf total: {time.perf_counter() - t_all:.1f} s")
    return 0
