"""Seeds trained together: the S missing seeds of one cell as one batched step, bit for bit.

A cell is one (method, config, dataset, width, budget) job over several seeds. Training its seeds
one after another repeats the same small step S times, and on a CPU (or a GPU, where the step is
launch-bound) that step is dispatch overhead more than arithmetic. :func:`train_group` stacks the S
seeds' parameters on a leading dim, so each op of the step runs once for all of them:

* each seed is built exactly as :func:`bench.train.trainer.fit_encoder` builds it (``torch.manual_seed``,
  then the method's constructor), so its initial weights are its own;
* each seed keeps its own minibatch order (its own ``randperm`` generator, as in
  :func:`bench.train.trainer.train`) and its own stream of in-step draws (:class:`SeedRNG`: the global
  RNG state the single-seed job would have had after building);
* the method states its step for stacked tensors (``loss_terms_batched``: ``baddbmm``/``bmm``
  where the single-seed step has ``addmm``/``mm``); the S per-seed losses are summed before
  ``backward``, so each seed's gradient is that of its own loss, and one Adam steps the stacked
  parameters: Adam is elementwise, so each seed's update is unchanged;
* buffers (BatchNorm statistics, queues, momentum targets) and ``after_step`` are per seed;
* a seed whose loss or parameters stop being finite is recorded as failed at that epoch with its
  reason, exactly as the single-seed trainer records it; the other seeds go on;
* at the end each seed's weights are written back into its own method, which is scored, checked and
  cached as one job, exactly as today.

The test (tests/test_seedbatch.py) trains every batched method for 2 epochs both ways and asserts
``torch.equal`` on every parameter and buffer and equal loss histories. ``batch_seeds=false`` (or a
method without ``batched = True``: ``mae``, ``supervised_cnn``, the closed-form methods) trains one
seed at a time through the reference path. ``torch.func.vmap`` is not used: it is not bit-identical,
and under InfoMax's amplification a 1-ulp difference grows into another encoder.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

from bench.train import convergence
from bench.train.methods import METHODS, Method
from bench.train.trainer import JobFailed, batch_slices, finish, fit_encoder, seeded_build

if TYPE_CHECKING:
    from bench.data import Dataset


def batchable(method_name: str, input_dim: int | None = None) -> bool:
    """Whether ``method_name``'s seeds train together: its class has a batched step (``batched``)
    and, given the data's ``input_dim``, the step pays there (``batch_max_dim``)."""
    cls = METHODS.get(method_name)
    if cls.kind != "gradient" or not cls.batched:
        return False
    return input_dim is None or cls.batch_max_dim is None or input_dim <= cls.batch_max_dim


def cells(specs: Sequence[Any], batch_seeds: bool, input_dim: Callable[[str], int | None]) -> list[list[Any]]:
    """Jobs (:class:`bench.engine.jobs.JobSpec`) in the groups that train as one task, in first-seen order:
    with ``batch_seeds`` the seeds of one cell (``spec.cell()``) of a method whose step pays on
    that data (``input_dim(dataset)``; :func:`batchable`), every other job alone (a compiled step
    is one seed's graph). The run (:mod:`bench.engine.context`) and its plan (:mod:`bench.engine.plan`) group alike."""
    groups: dict[Any, list[Any]] = {}
    for s in specs:
        together = batch_seeds and not s.compile and batchable(s.method, input_dim(s.dataset))
        groups.setdefault(s.cell() if together else s, []).append(s)
    return list(groups.values())


class SeedRNG:
    """Each seed's own generators for the draws inside a step, in the single-seed job's order.

    ``dev[s]``: seed s's generator on the run's device (what ``torch.rand(..., device=x.device)``
    would draw from in its own job); ``cpu[s]``: its CPU generator (for draws made on the CPU
    while training on a GPU; the same objects as ``dev`` on a CPU run)."""

    def __init__(self, cpu: list[torch.Generator], dev: list[torch.Generator], device: torch.device):
        self.cpu, self.dev, self.device = cpu, dev, device

    def __len__(self) -> int:
        return len(self.dev)

    def each(self, draw: Callable[[torch.Generator], torch.Tensor]) -> torch.Tensor:
        """``stack([draw(gen_s) for each seed])``: one draw per seed from its own device generator."""
        return torch.stack([draw(g) for g in self.dev])

    def rand(self, *shape: int) -> torch.Tensor:
        """(S, *shape) uniform draws, seed s's slice from its own generator."""
        return self.each(lambda g: torch.rand(shape, generator=g, device=self.device))

    def randn(self, *shape: int) -> torch.Tensor:
        """(S, *shape) standard normal draws, seed s's slice from its own generator."""
        return self.each(lambda g: torch.randn(shape, generator=g, device=self.device))


def _global_generators(device: torch.device) -> tuple[torch.Generator, torch.Generator]:
    """Copies of the global RNG states now (CPU, and the device's), as independent generators."""
    cpu = torch.Generator()
    cpu.set_state(torch.get_rng_state())
    if device.type != "cuda":
        return cpu, cpu
    dev = torch.Generator(device=device)
    dev.set_state(torch.cuda.get_rng_state(device))
    return cpu, dev


def stacked_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``nn.Linear`` for S seeds: x (S, B, D), weight (S, K, D), bias (S, K) -> (S, B, K), each
    slice bit-identical to ``F.linear(x[s], weight[s], bias[s])`` (``addmm`` <-> ``baddbmm``)."""
    if bias is None:
        return torch.bmm(x, weight.mT)
    return torch.baddbmm(bias.unsqueeze(1), x, weight.mT)


class Stacked:
    """The S seeds' parameters and buffers stacked by name, and the way back into each method."""

    def __init__(self, methods: Sequence[Method]):
        self.methods = list(methods)
        per = [dict(m.named_parameters()) for m in methods]
        self.p = {
            n: torch.stack([d[n].detach() for d in per]).requires_grad_(t.requires_grad) for n, t in per[0].items()
        }
        bufs = [dict(m.named_buffers()) for m in methods]
        self.b = {n: torch.stack([d[n] for d in bufs]) for n in bufs[0]}

    def trainable(self) -> list[torch.Tensor]:
        return [t for t in self.p.values() if t.requires_grad]

    def finite(self) -> torch.Tensor:
        """(S,) whether every parameter of each seed is finite (one tensor, one sync)."""
        return torch.stack([torch.isfinite(t).flatten(1).all(1) for t in self.p.values()]).all(0)

    @torch.no_grad()
    def write_back(self) -> None:
        """Copy each seed's slice into its own method's parameters and buffers."""
        for s, m in enumerate(self.methods):
            for n, t in m.named_parameters():
                t.copy_(self.p[n][s])
            for n, t in m.named_buffers():
                t.copy_(self.b[n][s])


def _data(datasets: Sequence[Dataset], uses_labels: bool) -> tuple[torch.Tensor, torch.Tensor | None, bool]:
    """The seeds' training inputs as one (S*N, D) table (or the shared (N, D) one when every seed
    trains on the same tensors), their labels likewise, and whether it is shared."""
    xs = [d.train.x for d in datasets]
    shared = all(x is xs[0] for x in xs)
    ys = [d.train.y for d in datasets] if uses_labels else None
    if shared:
        return xs[0], (ys[0] if ys is not None else None), True
    return torch.cat(xs), (torch.cat(ys) if ys is not None else None), False


def train_stacked(
    st: Stacked,
    rng: SeedRNG,
    datasets: Sequence[Dataset],
    seeds: Sequence[int],
    *,
    epochs: int,
    batch_size: int,
    on_epoch: Callable[[int, list[dict[str, float] | None]], None] | None = None,
) -> tuple[list[list[dict[str, float]]], list[str | None]]:
    """The batched :func:`bench.train.trainer.train`: per seed, the loss history and None, or the history
    up to the failing epoch and the reason (the message the single-seed trainer raises)."""
    m0 = st.methods[0]
    S, n = len(seeds), datasets[0].train.x.shape[0]
    x, y, shared = _data(datasets, m0.uses_labels)
    device = x.device
    opt = torch.optim.Adam(
        st.trainable(), lr=m0.cfg.lr, weight_decay=m0.cfg.weight_decay, fused=True if device.type == "cuda" else None
    )
    orders = [torch.Generator().manual_seed(seed) for seed in seeds]
    offset = None if shared else (torch.arange(S, device=device) * n).unsqueeze(1)
    bounds = batch_slices(n, batch_size)
    histories: list[list[dict[str, float]]] = [[] for _ in seeds]
    failed: list[str | None] = [None] * S
    for m in st.methods:
        m.train()
    for epoch in range(epochs):
        perm = torch.stack([torch.randperm(n, generator=g) for g in orders]).to(device)
        sums: dict[str, torch.Tensor] = {}
        for lo, hi in bounds:
            idx = perm[:, lo:hi] if shared else perm[:, lo:hi] + offset
            flat = idx.reshape(-1)
            xb = x.index_select(0, flat).view(S, hi - lo, *x.shape[1:])
            yb = None if y is None else y.index_select(0, flat).view(S, hi - lo)
            terms = m0.loss_terms_batched(st.p, st.b, xb, yb, rng)
            loss = sum(terms.values())
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()  # d(sum)/d(loss_s) = 1: each seed's gradient is its own loss's
            opt.step()
            m0.after_step_batched(st.p, st.b, rng)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v.detach()
            sums["loss"] = sums.get("loss", 0.0) + loss.detach()
        totals = torch.stack([torch.as_tensor(v, device=device).expand(S) for v in sums.values()]).tolist()
        finite = st.finite().tolist()
        means: list[dict[str, float] | None] = [None] * S
        for s in range(S):
            if failed[s] is not None:
                continue
            means[s] = {k: totals[i][s] / len(bounds) for i, k in enumerate(sums)}
            histories[s].append(means[s])
            bad = [k for k, v in means[s].items() if not math.isfinite(v)]
            if bad:
                failed[s] = f"non-finite loss term(s) {bad} at epoch {epoch + 1}"
            elif not finite[s]:
                failed[s] = f"non-finite parameters at epoch {epoch + 1}"
            if failed[s] is not None:
                means[s] = None
        if all(f is not None for f in failed):
            break
        if on_epoch is not None:
            on_epoch(epoch, means)
    for m in st.methods:
        m.eval()
    return histories, failed


def train_group(
    method_name: str,
    method_cfg: Any,
    datasets: Sequence[Dataset],
    width: int,
    seeds: Sequence[int],
    *,
    epochs: int,
    batch_size: int,
    device: torch.device,
    on_epoch=None,
    track: bool = True,
) -> list[tuple[Method | None, dict[str, Any]]]:
    """:func:`bench.train.trainer.fit_encoder` for each seed (``datasets[s]`` is seed s's data), the
    seeds trained as one batched step when the method has one; the same ``(method or None, meta)``
    per seed, bit for bit. ``meta`` gains ``seed_group`` (S) and ``group_seconds`` (the group's wall
    time, convergence scoring excluded); ``train_seconds`` is ``group_seconds / S``. A method without
    a batched step, a single seed, or seeds whose training sets differ in shape train one at a time."""
    S = len(seeds)
    shapes = {(tuple(d.train.x.shape), None if d.train.y is None else tuple(d.train.y.shape)) for d in datasets}
    if S < 2 or not batchable(method_name, datasets[0].input_dim) or len(shapes) > 1:
        return [
            fit_encoder(
                method_name,
                method_cfg,
                ds,
                width,
                seed,
                epochs=epochs,
                batch_size=batch_size,
                device=device,
                on_epoch=on_epoch,
                track=track,
            )
            for ds, seed in zip(datasets, seeds, strict=True)
        ]
    methods, cpu, dev = [], [], []
    for ds, seed in zip(datasets, seeds, strict=True):
        methods.append(seeded_build(method_name, method_cfg, ds, width, seed, device))
        c, d = _global_generators(device)  # the state the single-seed job's in-step draws start from
        cpu.append(c)
        dev.append(d)
    trackers = [convergence.Tracker(m, ds, epochs) if track else None for m, ds in zip(methods, datasets, strict=True)]
    st, rng = Stacked(methods), SeedRNG(cpu, dev, device)

    def hook(epoch: int, means: list[dict[str, float] | None]) -> None:
        due = [
            s for s, tr in enumerate(trackers) if tr is not None and means[s] is not None and epoch + 1 == tr.half_epoch
        ]
        if due:
            st.write_back()
            for s in due:
                trackers[s].on_epoch(epoch)
        if on_epoch is not None:
            first = next((m for m in means if m is not None), None)
            if first is not None:
                on_epoch(epoch, first)

    def scored() -> float:
        return sum(tr.seconds for tr in trackers if tr is not None)

    t0 = time.perf_counter()
    for tr in trackers:
        if tr is not None and tr.half_epoch == 0:  # a one-epoch budget: "half" is the start
            tr.record("half")
    try:
        histories, failed = train_stacked(st, rng, datasets, seeds, epochs=epochs, batch_size=batch_size, on_epoch=hook)
    except RuntimeError as e:  # a linear-algebra error in a diverged seed, say: the reference path decides
        first = (str(e).strip().splitlines() or [""])[0][:160]
        print(
            f"bench: batched {method_name} seeds {list(seeds)} fell back to one seed at a time "
            f"({type(e).__name__}: {first})",
            file=sys.stderr,
            flush=True,
        )
        return [
            fit_encoder(
                method_name,
                method_cfg,
                ds,
                width,
                seed,
                epochs=epochs,
                batch_size=batch_size,
                device=device,
                on_epoch=on_epoch,
                track=track,
            )
            for ds, seed in zip(datasets, seeds, strict=True)
        ]
    st.write_back()
    out: list[tuple[Method | None, dict[str, Any]]] = []
    for s, (m, ds) in enumerate(zip(methods, datasets, strict=True)):
        meta: dict[str, Any] = {"device": str(device)}
        if failed[s] is not None:
            meta.update(status="failed", reason=failed[s], history=histories[s])
            out.append((None, meta))
            continue
        meta["history"] = histories[s]
        meta["final_loss"] = histories[s][-1] if histories[s] else {}
        if trackers[s] is not None:
            trackers[s].record("end")
        ok = finish(m, ds.train.x, meta, trackers[s])
        out.append((m if ok else None, meta))
    group = time.perf_counter() - t0 - scored()
    for _, meta in out:
        meta.update(train_seconds=group / S, seed_group=S, group_seconds=group)
    return out


__all__ = ["JobFailed", "SeedRNG", "Stacked", "batchable", "cells", "stacked_linear", "train_group", "train_stacked"]
