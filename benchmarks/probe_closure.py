"""Benchmark (not a test): the batched probe's L-BFGS closure and one masked ``linear_probe``.

The pruning prediction's shape: G = 70 masks of one (3500, 64) float32 standardised mnist5k
feature matrix (a seeded random Linear(784, 64) + ReLU), 10 classes, the 6-value L2 path; and
the same G probes on a (G, N, K) stack (the 3-D path). The reference is ``bench/evaluate/probe.py`` at
git revision ``--ref`` (default ``main``), loaded as a module next to the working tree's.

    PYTHONPATH=. python3 benchmarks/probe_closure.py [--ref main] [--repeats 3] [--groups 70]
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import subprocess
import sys
import tempfile
import time

import torch

import bench.evaluate.probe as current


def load_ref(rev: str):
    """``bench/evaluate/probe.py`` at git revision ``rev``, as a module."""
    root = pathlib.Path(__file__).resolve().parents[1]
    src = subprocess.run(
        ["git", "show", f"{rev}:bench/evaluate/probe.py"], cwd=root, check=True, capture_output=True, text=True
    ).stdout
    path = pathlib.Path(tempfile.mkdtemp()) / "probe_ref.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("probe_ref", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["probe_ref"] = mod
    spec.loader.exec_module(mod)
    return mod


class _Counting(torch.optim.LBFGS):
    """L-BFGS that counts and times its closure calls (patched in for the benchmark only)."""

    calls = 0
    seconds = 0.0

    def step(self, closure):
        def timed():
            t0 = time.perf_counter()
            out = closure()
            _Counting.seconds += time.perf_counter() - t0
            _Counting.calls += 1
            return out

        return super().step(timed)


def features(groups: int, kind: str = "random"):
    """Standardised (3500, 64) mnist5k train features (and val, test) of a seeded random
    Linear(784, 64) + ReLU (``random``) or the top 64 principal components (``pca``), labels,
    ``groups`` masks dropping 0, 10, .., 90% of the features, and the number of classes."""
    from bench.data import load_dataset

    ds = load_dataset("mnist5k")
    xs = [s.x.reshape(len(s.x), -1).float() for s in (ds.train, ds.val, ds.test)]
    if kind == "pca":
        mean = xs[0].mean(0)
        basis = torch.linalg.svd(xs[0] - mean, full_matrices=False).Vh[:64].T
        f = [(a - mean) @ basis for a in xs]
    else:
        torch.manual_seed(0)
        enc = torch.nn.Sequential(torch.nn.Linear(784, 64), torch.nn.ReLU())
        with torch.no_grad():
            f = [enc(a) for a in xs]
    z = current.standardize(*f)
    ys = (ds.train.y, ds.val.y, ds.test.y)
    g = torch.Generator().manual_seed(0)
    masks = torch.ones(groups, 64)
    for i in range(groups):
        masks[i, torch.randperm(64, generator=g)[: round((i % 10) / 10 * 64)]] = 0
    return z, ys, masks, ds.n_classes


def best_of(fn, repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return min(ts)


def probe_run(mod, z, ys, masks, c, repeats, stack: bool):
    """Best wall time of one linear_probe, its closure count and mean closure time, its result."""
    if stack:  # the same masked probes as G feature sets: (G, N, K) features with zeroed columns
        z = [s[None] * masks[:, None, :] for s in z]
        masks = None
    real = torch.optim.LBFGS
    torch.optim.LBFGS = _Counting
    try:
        res = []
        ts = []
        for _ in range(repeats):
            _Counting.calls, _Counting.seconds = 0, 0.0
            t0 = time.perf_counter()
            res.append(mod.linear_probe(z[0], ys[0], z[1], ys[1], z[2], ys[2], c, masks=masks, standardized=True))
            ts.append(time.perf_counter() - t0)
    finally:
        torch.optim.LBFGS = real
    return min(ts), _Counting.calls, _Counting.seconds / max(_Counting.calls, 1), res[-1]


def one_closure(mod, z, ys, masks, c, repeats, scale=0.1):
    """Best mean time of the closure calls of ``fit_logreg(max_iter=1)`` (one L-BFGS iteration:
    a closure and its line search's) from weights ~ N(0, scale^2): 0.1 gives logits of a few
    units, 3 logits gaps in the hundreds (exp(z - max) underflows: subnormal territory)."""
    x = z[0]
    w0 = torch.randn(len(masks), x.shape[1], c, generator=torch.Generator().manual_seed(1)) * scale
    init = (w0, torch.zeros(len(masks), c))
    real = torch.optim.LBFGS
    torch.optim.LBFGS = _Counting
    try:
        best = float("inf")
        for _ in range(repeats):
            _Counting.calls, _Counting.seconds = 0, 0.0
            mod.fit_logreg(x, ys[0], c, 1e-2, masks, init=init, max_iter=1)
            best = min(best, _Counting.seconds / _Counting.calls)
    finally:
        torch.optim.LBFGS = real
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", default="main", help="git revision of the reference bench/evaluate/probe.py")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--groups", type=int, default=70)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--features", choices=("random", "pca"), default="random")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ref = load_ref(args.ref)
    z, ys, masks, c = features(args.groups, args.features)
    print(
        f"features={args.features} G={len(masks)} N={tuple(z[0].shape)} C={c} threads={torch.get_num_threads()} torch={torch.__version__}"
    )
    for scale in (0.1, 3.0):
        for name, mod in (("ref", ref), ("new", current)):
            t = one_closure(mod, z, ys, masks, c, 5 * args.repeats, scale)
            print(f"{name:4s} one closure (2-D, G={len(masks)}, W ~ N(0, {scale:g}^2)): {t * 1e3:8.2f} ms")
    results = {}
    for stack in (False, True):
        for name, mod in (("ref", ref), ("new", current)):
            t, calls, per, r = probe_run(mod, z, ys, masks, c, args.repeats, stack)
            results[name] = r
            print(
                f"{name:4s} linear_probe {'3-D' if stack else '2-D'}: {t:6.2f} s  closures={calls:4d}  "
                f"per closure {per * 1e3:6.2f} ms"
            )
        a, b = results["ref"], results["new"]
        d, same = (a.test_acc - b.test_acc).abs(), a.l2 == b.l2
        print(
            f"     |test_acc ref - new|: max {float(d.max()):.4f} mean {float(d.mean()):.5f}; same l2 chosen: "
            f"{int(same.sum())}/{len(same)}, max over those {float(d[same].max()):.4f}"
        )


if __name__ == "__main__":
    main()
