"""The eager training loop every gradient method shares: in-memory minibatches on the run's device (an
index permutation per epoch, no DataLoader, no per-sample Python), Adam by default, a per-epoch log of every
loss term, and a guard that stops a job whose loss or parameters stop being finite (:class:`JobFailed`).
:mod:`bench.train.trainer` fits jobs with it; :mod:`bench.train.compiled` falls back on it."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from bench.train.methods import Method


class JobFailed(RuntimeError):
    """A job that diverged; ``reason`` is recorded in the results, never dropped."""

    def __init__(self, reason: str, history: list[dict[str, float]] | None = None):
        super().__init__(reason)
        self.reason = reason
        self.history = history or []


@dataclass
class TrainLog:
    seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)  # per epoch: term -> mean

    @property
    def final(self) -> dict[str, float]:
        return self.history[-1] if self.history else {}


def batch_slices(n: int, batch_size: int) -> list[tuple[int, int]]:
    """Minibatch bounds; a trailing partial batch is dropped when smaller than half a batch,
    since batch statistics (variances, correlations) of a handful of rows are noise."""
    bounds = [(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < batch_size // 2:
        bounds.pop()
    return bounds


def train(
    method: Method,
    x: torch.Tensor,
    y: torch.Tensor | None,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainLog:
    """Minimise ``sum(method.loss_terms(xb, yb).values())`` for ``epochs`` passes over ``x``.

    Args:
        method: a gradient method; its own config supplies ``lr`` and ``weight_decay``.
        x: (N, D) training inputs on the run's device; y: (N,) labels or None.
        seed: seeds the minibatch order (the caller seeds the initialisation).
        on_epoch: called with (epoch, mean loss terms) after each epoch (progress bars).

    Raises:
        JobFailed: when a loss or a parameter is NaN/inf; the history so far is attached.
    """
    params = [p for p in method.parameters() if p.requires_grad]
    # fused Adam on CUDA: one kernel per step instead of a chain of small ones (CPU keeps the default)
    opt = torch.optim.Adam(
        params, lr=method.cfg.lr, weight_decay=method.cfg.weight_decay, fused=True if x.device.type == "cuda" else None
    )
    gen = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    bounds = batch_slices(n, batch_size)
    log = TrainLog()
    t0 = time.perf_counter()
    method.train()
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=gen).to(x.device)
        sums: dict[str, torch.Tensor] = {}
        for lo, hi in bounds:
            idx = perm[lo:hi]
            # index_select: the same rows as x[idx], about twice as fast a gather on CPU
            terms = method.loss_terms(x.index_select(0, idx), None if y is None else y.index_select(0, idx))
            loss = sum(terms.values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            method.after_step()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v.detach()
            sums["loss"] = sums.get("loss", 0.0) + loss.detach()
        totals = torch.stack([torch.as_tensor(v, device=x.device) for v in sums.values()]).tolist()  # one sync
        means = {k: v / len(bounds) for k, v in zip(sums, totals, strict=True)}
        log.history.append(means)
        bad = [k for k, v in means.items() if not math.isfinite(v)]
        if bad:
            raise JobFailed(f"non-finite loss term(s) {bad} at epoch {epoch + 1}", log.history)
        if not bool(torch.stack([torch.isfinite(p).all() for p in params]).all()):  # one sync
            raise JobFailed(f"non-finite parameters at epoch {epoch + 1}", log.history)
        if on_epoch is not None:
            on_epoch(epoch, means)
    method.eval()
    log.seconds = time.perf_counter() - t0
    return log
