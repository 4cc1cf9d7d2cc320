"""The one training loop every gradient method shares, and the one way a job is fitted.

In-memory minibatches on the run's device (an index permutation per epoch, no DataLoader,
no per-sample Python), Adam by default, a per-epoch log of every loss term, and a guard that
stops a job whose loss or parameters stop being finite, recording it as failed with its
reason. :func:`fit_encoder` seeds, builds and fits one job (gradient or closed-form) and
returns its state and metadata, with a gradient job's convergence flag (:mod:`bench.train.convergence`:
the probe's val score at half the budget and at the end, read without touching the weights or
the RNG streams of training): everything that determines a trained encoder lives here (and
in the method and loss modules, and :mod:`bench.train.seedbatch` for seeds trained together), so their
source is what the cache key hashes, with the bytes of the data the job reads, not the cache's
bookkeeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from bench.train import convergence, loop
from bench.train.loop import JobFailed, TrainLog, batch_slices  # noqa: F401 (the trainer's public names)
from bench.train.methods import METHODS, DataInfo, Method

if TYPE_CHECKING:
    from bench.data import Dataset


def train(
    method: Method,
    x: torch.Tensor,
    y: torch.Tensor | None,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    compiled: bool = False,
) -> TrainLog:
    """:func:`bench.train.loop.train`, or with ``compiled`` the fused step of :mod:`bench.train.compiled`
    (imported only then: eager keys do not hash it)."""
    if compiled:
        from bench.train import compiled as fused

        return fused.train(method, x, y, epochs=epochs, batch_size=batch_size, seed=seed, on_epoch=on_epoch)
    return loop.train(method, x, y, epochs=epochs, batch_size=batch_size, seed=seed, on_epoch=on_epoch)


def data_info(ds: Dataset) -> DataInfo:
    return DataInfo(ds.input_dim, ds.n_classes, ds.image_shape)


def build(method: str, cfg: Any, info: DataInfo, width: int) -> Method:
    return METHODS.get(method)(cfg, info, width)


def seeded_build(method_name: str, method_cfg: Any, ds: Dataset, width: int, seed: int, device: torch.device) -> Method:
    """Seed the global RNGs with ``seed`` and build the job's method on ``device``: the initial
    weights, and the global RNG state its in-step draws (masks, noise, augmentations) start from."""
    torch.manual_seed(seed)
    return build(method_name, method_cfg, data_info(ds), width).to(device)


def fit_encoder(
    method_name: str,
    method_cfg: Any,
    ds: Dataset,
    width: int,
    seed: int,
    *,
    epochs: int,
    batch_size: int,
    device: torch.device,
    on_epoch=None,
    track: bool = True,
    compile: bool = False,
) -> tuple[Method | None, dict[str, Any]]:
    """Seed, build and fit one job on ``ds.train``; return ``(method or None, meta)``.

    ``meta`` holds ``status`` ("ok" | "failed"), ``reason``, ``train_seconds``, the loss
    ``history`` and, when ok, ``diagnostics``, ``under_trained`` and ``convergence``
    (:mod:`bench.train.convergence`; None for a method that is not gradient-trained). ``track=False``
    skips the convergence scores (the tests check that the weights do not depend on it);
    ``train_seconds`` excludes their time. ``compile=True`` trains with :mod:`bench.train.compiled`'s fused
    step and records in ``meta["compile"]`` whether it compiled or fell back to eager (and why). A
    diverged job is returned as failed with its reason (never raised): the sweep records it and goes on.
    This is the reference path: the seeds of one cell trained together
    (:func:`bench.train.seedbatch.train_group`) give the same weights bit for bit.
    """
    method = seeded_build(method_name, method_cfg, ds, width, seed, device)
    x, y = ds.train.x, ds.train.y
    y = y if method.uses_labels else None
    meta: dict[str, Any] = {"device": str(device)}
    tracker = convergence.Tracker(method, ds, epochs) if track and method.kind == "gradient" else None
    hook = on_epoch
    if tracker is not None:

        def hook(epoch: int, terms: dict[str, float]) -> None:
            tracker.on_epoch(epoch)
            if on_epoch is not None:
                on_epoch(epoch, terms)

    t0 = time.perf_counter()
    try:
        if method.kind == "gradient":
            if tracker is not None and tracker.half_epoch == 0:  # a one-epoch budget: "half" is the start
                tracker.record("half")
            log = train(method, x, y, epochs=epochs, batch_size=batch_size, seed=seed, on_epoch=hook, compiled=compile)
            if compile:
                meta["compile"] = log.compile
            meta["history"] = log.history
            meta["final_loss"] = log.final
            if tracker is not None:
                tracker.record("end")
        elif method.kind == "fit":
            method.fit(x, y, seed)
    except JobFailed as e:
        spent = time.perf_counter() - t0 - (tracker.seconds if tracker is not None else 0.0)
        meta.update(status="failed", reason=e.reason, train_seconds=spent, history=e.history)
        return None, meta
    ok = finish(method, x, meta, tracker)
    meta["train_seconds"] = time.perf_counter() - t0 - (tracker.seconds if tracker is not None else 0.0)
    return (method if ok else None), meta


def finish(method: Method, x: torch.Tensor, meta: dict[str, Any], tracker: convergence.Tracker | None) -> bool:
    """After training: the features on the training set must be finite; record the job's status,
    convergence flag and diagnostics in ``meta``. Returns whether the job is ok."""
    a = method.encode_all(x)
    if not torch.isfinite(a).all():
        meta.update(status="failed", reason="non-finite features on the training set", history=[])
        return False
    meta["status"] = "ok"
    meta.update(tracker.meta() if tracker is not None else {"under_trained": None, "convergence": None})
    w = method.encoder_weight()
    meta["diagnostics"] = {
        "act_scale": float(a.abs().max()),  # max |a| on train: InfoMax's -log Var is unbounded below
        "act_mean": float(a.mean()),
        "encoder_weight_norm": float(w.detach().norm()) if w is not None else float("nan"),
        "n_params_encoder": method.n_params_encoder(),
        "n_params_train": method.n_params_train(),
    }
    return True
