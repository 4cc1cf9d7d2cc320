"""``compile=true``: one fused, compiled training step per method (opt in; other numerics).

The eager trainer (:func:`bench.train.trainer.train`) dispatches every op of a step from Python: on
these small models the step is overhead, not arithmetic. Here the whole step, forward, backward
(``torch.func.grad_and_value`` over ``torch.func.functional_call``) and the Adam update written
out by hand, is one graph under ``torch.compile`` (``fullgraph=True``; ``mode="reduce-overhead"``,
i.e. CUDA graphs, on a GPU). It trains the same model with the same data order, loss and
optimiser (torch's Adam: betas (0.9, 0.999), eps 1e-8, weight decay as L2 added to the gradient)
and the same random draws inside a loss (DAE masks, VAE noise, augmentations: torch's own random
ops on the job's generators, ``fallback_random``), but a compiled kernel rounds differently, and
amplified over a job (InfoMax) that makes other weights: a compiled job is a job of its own
(``JobSpec.compile``, cached beside the eager encoder, never replacing it).

Compiling costs seconds to tens of seconds, so a compiled step is kept per (method, config,
shapes, device) in :data:`_ENTRIES`: a long-lived worker compiles once and every later job of the
same kind reuses the graph. The entry owns the step's state tensors (parameters, buffers, Adam
moments, the training inputs) at fixed addresses, so CUDA graphs replay across jobs without
re-recording; during a job the method's own parameters and buffers alias them (its ``after_step``
hooks, e.g. BYOL's and MoCo's momentum updates, run eagerly on the same storage), and at the end
they get their own copies back.

A method whose step is not one traceable graph falls back to the eager trainer with a one-line
reason (recorded in the job's meta as ``compile``): those in :data:`EAGER_ONLY`, one whose
``loss_terms`` rebinds a buffer or an attribute (RBM's persistent chains, MoCo's keys kept for its
``after_step``: state outside the graph), or one whose compilation raises.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from bench.train.loop import TrainLog
    from bench.train.methods import Method

BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults, as bench.train.trainer uses them
EPS = 1e-8
# methods never compiled, with why (measured: benchmarks/compile_cost.py probe=all)
EAGER_ONLY: dict[str, str] = {
    # it does compile (fallback_random keeps its masks), but cold in 776 s on the loaded 2-core machine
    "mae": "timm ViT: its compile (776 s cold, 2 epochs of digits) costs more than a mae job trains",
}

_ENTRIES: dict[tuple, _Entry | str] = {}  # key -> compiled step, or the reason it falls back
_LOCK = threading.Lock()
STATS = {"compiled": 0, "reused": 0, "fallback": 0}  # this process's counts (benchmarks read them)


def adam_update(
    p: torch.Tensor,
    g: torch.Tensor,
    m: torch.Tensor,
    v: torch.Tensor,
    step: int | torch.Tensor,
    *,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float] = BETAS,
    eps: float = EPS,
) -> None:
    """One Adam step on ``p`` in place (``m``, ``v``: its moments; ``step``: 1 at the first update).

    With an int ``step`` these are the ops of ``torch.optim.Adam``'s single-tensor path (bit for
    bit); with a tensor ``step`` (the compiled graph, which must not recompile per step) the bias
    corrections are computed on the device."""
    beta1, beta2 = betas
    if weight_decay != 0:
        g = g.add(p, alpha=weight_decay)
    m.lerp_(g, 1 - beta1)
    v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    step_size = lr / bias_correction1
    if isinstance(step, torch.Tensor):
        denom = (v.sqrt() / bias_correction2.sqrt()).add_(eps)
        p.sub_(m / denom * step_size)
    else:
        denom = (v.sqrt() / bias_correction2**0.5).add_(eps)
        p.addcdiv_(m, denom, value=-step_size)


class _Loss(nn.Module):
    """``forward`` = the method's ``loss_terms`` (what ``functional_call`` calls)."""

    def __init__(self, method: nn.Module):
        super().__init__()
        self.m = method

    def forward(self, x, y):
        return self.m.loss_terms(x, y)


def make_step(template: Method, train_names: list[str], other_names: list[str]) -> Callable:
    """The functional step ``step(params, others, m, v, t, sums, x, y, idx)``, all in place.

    ``params`` (trainable, in ``train_names`` order) take one Adam step on the loss of the
    minibatch ``x[idx]``; ``others`` (frozen parameters, buffers) are read (and updated in place
    by the loss, e.g. BatchNorm statistics); ``t`` counts the steps; ``sums`` accumulates each
    loss term and the total. ``template`` supplies the code and the config, never the tensors."""
    wrapper = _Loss(template)
    names = [f"m.{n}" for n in train_names]
    others_ = [f"m.{n}" for n in other_names]
    lr, wd = template.cfg.lr, template.cfg.weight_decay

    def loss(params, others, xb, yb):
        tensors = dict(zip(names, params, strict=True))
        tensors.update(zip(others_, others, strict=True))
        terms = torch.func.functional_call(wrapper, tensors, (xb, yb))
        total = sum(terms.values())
        return total, torch.stack([*terms.values(), total]).detach()

    def step(params, others, m, v, t, sums, x, y, idx):
        xb = x.index_select(0, idx)
        yb = None if y is None else y.index_select(0, idx)
        grads, (_, values) = torch.func.grad_and_value(loss, has_aux=True)(params, others, xb, yb)
        t.add_(1)
        for p, g, m_, v_ in zip(params, grads, m, v, strict=True):
            adam_update(p, g, m_, v_, t, lr=lr, weight_decay=wd)
        sums.add_(values)

    return step


def _compile(fn: Callable, device: torch.device, tag: str) -> Callable:
    # a code object of its own per entry: dynamo keeps its cache (and its recompile limit) per code
    # object, and every entry would otherwise pile up on make_step's one inner function
    fn = type(fn)(
        fn.__code__.replace(co_name=f"step_{tag}"), fn.__globals__, f"step_{tag}", fn.__defaults__, fn.__closure__
    )
    # fallback_random: random ops stay torch's own, so a loss draws what the eager step draws (DAE masks,
    # VAE noise, augmentations: max |dW| 2e-7 against eager for dae, 2e-2 with inductor's generator)
    options = {"fallback_random": True}
    if device.type == "cuda":  # mode="reduce-overhead": CUDA graphs (mode= and options= are exclusive)
        options |= torch._inductor.list_mode_options("reduce-overhead")
    return torch.compile(fn, fullgraph=True, dynamic=False, options=options)


@dataclass
class _Entry:
    """One compiled step and the state tensors it runs on (fixed addresses, reused per job)."""

    step: Callable
    train_names: list[str]
    other_names: list[str]
    terms: list[str]
    params: list[torch.Tensor]
    others: list[torch.Tensor]
    m: list[torch.Tensor]
    v: list[torch.Tensor]
    t: torch.Tensor
    sums: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor | None
    ran: bool = False  # the step has run once (compiled) for some job
    lock: threading.Lock = field(default_factory=threading.Lock)


def _names(method: nn.Module) -> tuple[list[str], list[str]]:
    train = [n for n, p in method.named_parameters() if p.requires_grad]
    others = [n for n, p in method.named_parameters() if not p.requires_grad]
    others += [n for n, _ in method.named_buffers()]
    return train, others


def _state_ids(method: nn.Module) -> dict[str, int]:
    """``{name: id(value)}`` of every buffer and plain attribute of every submodule (not parameters,
    submodules or hooks): what a loss that keeps state outside its graph would rebind."""
    out = {}
    for mod_name, mod in method.named_modules():
        for attr, value in vars(mod).items():
            if attr == "_buffers":
                out |= {f"{mod_name}.{k}".lstrip("."): id(b) for k, b in value.items()}
            elif not (attr.startswith("_") and isinstance(value, dict | set)):  # not nn.Module bookkeeping
                out[f"{mod_name}.{attr}".lstrip(".")] = id(value)
    return out


def _key(method: Method, x: torch.Tensor, y: torch.Tensor | None, batch_size: int) -> tuple:
    shapes = tuple((n, tuple(t.shape), t.dtype) for n, t in method.state_dict(keep_vars=True).items())
    return (
        method.name,
        method.cfg,
        method.info,
        type(method).__qualname__,
        method.width,
        shapes,
        tuple(x.shape),
        x.dtype,
        None if y is None else (tuple(y.shape), y.dtype),
        batch_size,
        x.device.type,
        x.device.index,
    )


def _build(method: Method, x: torch.Tensor, y: torch.Tensor | None, batch_size: int, tag: str) -> _Entry | str:
    """A new entry for ``method``'s kind of job, or the reason it cannot be compiled."""
    if method.name in EAGER_ONLY:
        return EAGER_ONLY[method.name]
    template = copy.deepcopy(method).train()
    before = _state_ids(template)
    # the loss's term names (the graph returns their values only): one eager probe of the copy,
    # with the RNG streams restored so the job's draws are untouched
    devices = [x.device] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        n = min(batch_size, x.shape[0])
        terms = list(template.loss_terms(x[:n], None if y is None else y[:n]).keys())
    after = _state_ids(template)
    rebound = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    if rebound:  # e.g. RBM's persistent chains, MoCo's keys kept for after_step: state outside any graph
        return f"loss_terms sets {', '.join(rebound)} (state outside the graph)"
    train_names, other_names = _names(method)
    named = dict(method.named_parameters()) | dict(method.named_buffers())
    params = [named[n].detach().clone() for n in train_names]
    entry = _Entry(
        step=_compile(make_step(template, train_names, other_names), x.device, tag),
        train_names=train_names,
        other_names=other_names,
        terms=terms + ["loss"],
        params=params,
        others=[named[n].detach().clone() for n in other_names],
        m=[torch.zeros_like(p) for p in params],
        v=[torch.zeros_like(p) for p in params],
        t=torch.zeros((), dtype=torch.long, device=x.device),
        sums=torch.zeros(len(terms) + 1, device=x.device),
        x=torch.empty_like(x),
        y=None if y is None else torch.empty_like(y),
    )
    if x.device.type == "cuda":  # CUDA graphs replay in place only on inputs at fixed, declared addresses
        for t in (*entry.params, *entry.others, *entry.m, *entry.v, entry.t, entry.sums, entry.x, entry.y):
            if t is not None:
                torch._dynamo.mark_static_address(t)
    return entry


def _entry(method: Method, x: torch.Tensor, y: torch.Tensor | None, batch_size: int) -> _Entry | str:
    key = _key(method, x, y, batch_size)
    with _LOCK:
        if key not in _ENTRIES:
            _ENTRIES[key] = _build(method, x, y, batch_size, str(len(_ENTRIES)))
        return _ENTRIES[key]


def _set(method: nn.Module, name: str, tensor: torch.Tensor) -> None:
    """Point the method's parameter or buffer ``name`` at ``tensor``'s storage."""
    mod_name, _, leaf = name.rpartition(".")
    mod = method.get_submodule(mod_name)
    if leaf in mod._parameters:
        mod._parameters[leaf].data = tensor
    else:
        mod._buffers[leaf] = tensor


def _attach(e: _Entry, method: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> None:
    named = dict(method.named_parameters()) | dict(method.named_buffers())
    for names, tensors in ((e.train_names, e.params), (e.other_names, e.others)):
        for n, t in zip(names, tensors, strict=True):
            t.copy_(named[n].detach())
            _set(method, n, t)
    for t in (*e.m, *e.v, e.t, e.sums):
        t.zero_()
    e.x.copy_(x)
    if y is not None:
        e.y.copy_(y)


def _detach(e: _Entry, method: nn.Module) -> None:
    for names, tensors in ((e.train_names, e.params), (e.other_names, e.others)):
        for n, t in zip(names, tensors, strict=True):
            _set(method, n, t.detach().clone())


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
    """:func:`bench.train.trainer.train` with the compiled step; the returned log's ``compile`` says
    ``"compiled ..."`` (with the compile seconds of a cold entry) or ``"eager: <why>"``."""
    kw = {"epochs": epochs, "batch_size": batch_size, "seed": seed, "on_epoch": on_epoch}
    entry = _entry(method, x, y, batch_size)
    if isinstance(entry, str):
        return _eager(method, x, y, entry, **kw)
    with entry.lock:
        devices = [x.device] if x.device.type == "cuda" else []
        rng = [torch.get_rng_state()] + [torch.cuda.get_rng_state(d) for d in devices]
        _attach(entry, method, x, y)
        try:
            return _run(entry, method, x, **kw)
        except _NotOneGraph as err:  # the first call compiles: a failure there falls back to eager
            _detach(entry, method)
            torch.set_rng_state(rng[0])
            for d, s in zip(devices, rng[1:], strict=True):
                torch.cuda.set_rng_state(s, d)
            cause = err.__cause__
            first = (str(cause).strip().splitlines() or [""])[0][:160]
            reason = f"not one graph ({type(cause).__name__}: {first})"
            with _LOCK:
                _ENTRIES[_key(method, x, y, batch_size)] = reason
            return _eager(method, x, y, reason, **kw)
        finally:
            if method.get_parameter(entry.train_names[0]).data_ptr() == entry.params[0].data_ptr():
                _detach(entry, method)


class _NotOneGraph(Exception):
    """The first (compiling) call of a step raised."""


def _run(
    entry: _Entry,
    method: Method,
    x: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    on_epoch: Callable[[int, dict[str, float]], None] | None,
) -> TrainLog:
    from bench.train import loop as trainer

    gen = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    bounds = trainer.batch_slices(n, batch_size)
    shapes = set() if entry.ran else {hi - lo for lo, hi in bounds}  # each batch shape compiles once
    log = trainer.TrainLog()
    log.compile = "compiled (reused)" if entry.ran else "compiled"
    compile_s = 0.0
    args = (entry.params, entry.others, entry.m, entry.v, entry.t, entry.sums, entry.x, entry.y)
    t0 = time.perf_counter()
    method.train()
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=gen).to(x.device)
        entry.sums.zero_()
        for lo, hi in bounds:
            if hi - lo in shapes:
                shapes.discard(hi - lo)
                t1 = time.perf_counter()
                try:
                    entry.step(*args, perm[lo:hi])
                except Exception as err:  # any compiler error means: not one graph
                    if entry.ran:
                        raise
                    raise _NotOneGraph() from err
                compile_s += time.perf_counter() - t1
                if not entry.ran:
                    entry.ran = True
                    STATS["compiled"] += 1
            else:
                entry.step(*args, perm[lo:hi])
            method.after_step()
        totals = entry.sums.tolist()  # one sync
        means = {k: v / len(bounds) for k, v in zip(entry.terms, totals, strict=True)}
        log.history.append(means)
        bad = [k for k, v in means.items() if not math.isfinite(v)]
        if bad:
            raise trainer.JobFailed(f"non-finite loss term(s) {bad} at epoch {epoch + 1}", log.history)
        if not bool(torch.stack([torch.isfinite(p).all() for p in entry.params]).all()):  # one sync
            raise trainer.JobFailed(f"non-finite parameters at epoch {epoch + 1}", log.history)
        if on_epoch is not None:
            on_epoch(epoch, means)
    method.eval()
    log.seconds = time.perf_counter() - t0
    if log.compile == "compiled":
        log.compile = f"compiled ({compile_s:.1f} s to compile)"
    else:
        STATS["reused"] += 1
    return log


def _eager(method: Method, x, y, reason: str, **kw) -> TrainLog:
    from bench.train import loop as trainer

    STATS["fallback"] += 1
    log = trainer.train(method, x, y, **kw)
    log.compile = f"eager: {reason}"
    return log


def entries() -> dict[tuple, Any]:
    """The process's entries (tests and benchmarks): key -> entry or fallback reason."""
    return dict(_ENTRIES)
