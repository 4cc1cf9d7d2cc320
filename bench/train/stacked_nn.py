"""Small modules run on S seeds' stacked parameters, each seed's slice bit for bit its own module's.

The seeds trained together (:mod:`bench.train.seedbatch`) keep every parameter and buffer stacked on a
leading seed dim (``p``, ``b``: name -> (S, ...)). :func:`forward` runs a module of the method
(``nn.Linear``, ``nn.BatchNorm1d``, ``nn.ReLU`` and ``nn.Sequential`` of them: the heads of the
two-view baselines) on (S, B, D) inputs with those tensors, and the helpers below state the few
steps that have no bit-identical batched form as one call per seed:

* batch norm in training mode (:func:`batch_norm`): each seed's statistics over its own B rows,
  its running mean/var and ``num_batches_tracked`` updated in place in its slice of the stacked
  buffers. With H channels a multiple of 16, one ``F.batch_norm`` over the (B, S*H) layout gives
  each seed's channels exactly (CPU: the per-channel kernels are vectorised across channels, a
  partial vector at the end reduces in another order); otherwise one call per seed;
* :func:`nll_mean` (and :func:`cross_entropy`, one ``log_softmax`` then it): ``F.nll_loss``'s mean
  is a cascade sum of its own, so one call per seed;
* :func:`tmm`: ``a.mT @ b`` with ``mm``'s gradient layout (Barlow Twins' cross-correlation);
* :func:`per_seed`: any function of (B, ...) slices, stacked;
* :func:`ema_`: the momentum update of a target network, ``t <- m t + (1 - m) o``, on the stacked
  tensors (elementwise; checked equal per slice for sizes off the vector width too, 7, 20, 100).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from bench.train.seedbatch import stacked_linear

Tensors = dict[str, torch.Tensor]


def per_seed(fn: Callable[..., torch.Tensor], *xs: torch.Tensor) -> torch.Tensor:
    """``fn`` of (B, ...) tensors, or, given (S, B, ...) ones, the (S, ...) stack of ``fn`` per seed."""
    if xs[0].dim() == 2:
        return fn(*xs)
    # unbind, not x[s]: one backward that stacks the S gradients, where S selects would each
    # scatter theirs into a zero (S, B, ...) tensor and then be summed (S^2 the memory traffic)
    return torch.stack([fn(*sl) for sl in zip(*(x.unbind(0) for x in xs), strict=True)])


def nll_mean(logp: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``F.nll_loss(logp, target)`` (mean over rows) of (B, C) log-probabilities, or the (S,) per-seed
    values of (S, B, C) ones (one ``target`` (B,) for every seed)."""
    return per_seed(lambda lp: F.nll_loss(lp, target), logp)


def batch_norm(x: torch.Tensor, p: Tensors, b: Tensors, prefix: str, mod: nn.BatchNorm1d) -> torch.Tensor:
    """``mod(x)`` in training mode for S seeds: x (S, B, H), ``p``/``b`` the stacked parameters and
    buffers, ``prefix`` the module's name in them (``"projector.1."``)."""
    S, B, H = x.shape
    rm, rv = b.get(prefix + "running_mean"), b.get(prefix + "running_var")
    nbt = b.get(prefix + "num_batches_tracked")
    if nbt is not None:
        nbt.add_(1)
    if mod.momentum is None:
        raise NotImplementedError("batch norm with a cumulative average (momentum=None) is not batched")
    w, bias = p.get(prefix + "weight"), p.get(prefix + "bias")
    if H % 16 == 0:
        flat = x.transpose(0, 1).reshape(B, S * H)
        out = F.batch_norm(
            flat,
            None if rm is None else rm.view(S * H),
            None if rv is None else rv.view(S * H),
            None if w is None else w.reshape(S * H),
            None if bias is None else bias.reshape(S * H),
            True,
            mod.momentum,
            mod.eps,
        )
        return out.view(B, S, H).transpose(0, 1)
    xs, ws = x.unbind(0), [None] * S if w is None else w.unbind(0)
    bs = [None] * S if bias is None else bias.unbind(0)
    return torch.stack(
        [
            F.batch_norm(
                xs[s],
                None if rm is None else rm[s],
                None if rv is None else rv[s],
                ws[s],
                bs[s],
                True,
                mod.momentum,
                mod.eps,
            )
            for s in range(S)
        ]
    )


def forward(mod: nn.Module, name: str, x: torch.Tensor, p: Tensors, b: Tensors) -> torch.Tensor:
    """``mod(x)`` for S seeds: ``mod`` is the method's module called ``name`` (its structure; its
    own tensors are not used), x (S, B, D), ``p``/``b`` the stacked parameters and buffers."""
    pre = name + "."
    if isinstance(mod, nn.Sequential):
        for i, sub in enumerate(mod):
            x = forward(sub, f"{pre}{i}", x, p, b)
        return x
    if isinstance(mod, nn.Linear):
        return stacked_linear(x, p[pre + "weight"], p.get(pre + "bias"))
    if isinstance(mod, nn.BatchNorm1d):
        if not mod.training or not mod.track_running_stats and mod.running_mean is not None:
            raise NotImplementedError("only batch norm in training mode is batched")
        return batch_norm(x, p, b, pre, mod)
    if isinstance(mod, nn.ReLU):
        return torch.relu(x)
    raise NotImplementedError(f"{type(mod).__name__} has no stacked form")


@torch.no_grad()
def ema_(targets: Sequence[torch.Tensor], onlines: Sequence[torch.Tensor], momentum: float) -> None:
    """In place ``t <- m t + (1 - m) o`` for the stacked (S, ...) tensors: ``t.mul_(m).add_(o, alpha=1 - m)``,
    the single-seed update, on every seed at once."""
    for t, o in zip(targets, onlines, strict=True):
        t.mul_(momentum).add_(o.detach(), alpha=1 - momentum)


def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``F.cross_entropy(logits, target)`` of (B, C) logits, or the (S,) per-seed values of (S, B, C)
    ones: one ``log_softmax`` over every seed, then :func:`nll_mean` per seed (what
    ``F.cross_entropy`` does inside)."""
    if logits.dim() == 2:
        return F.cross_entropy(logits, target)
    return nll_mean(F.log_softmax(logits, dim=-1), target)


class _TransposedMatmul(torch.autograd.Function):
    """``a.mT @ b`` of stacked (S, B, m), (S, B, n) with the gradients ``mm`` gives one seed:
    ``b @ g.mT`` for ``a`` and ``a @ g`` for ``b``, both contiguous. (``bmm``'s own backward returns
    ``a``'s gradient as a transposed view, and the elementwise backward steps before it then reduce
    in another memory order.)"""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(a, b)
        return a.mT @ b

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        a, b = ctx.saved_tensors
        ga = b @ g.mT if ctx.needs_input_grad[0] else None
        gb = a @ g if ctx.needs_input_grad[1] else None
        return ga, gb


def tmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a.mT @ b``: (B, m), (B, n) -> (m, n) (``mm``), or S seeds' (S, B, m), (S, B, n) -> (S, m, n), each
    seed's value and gradients those of ``mm`` on its slices."""
    return a.mT @ b if a.dim() == 2 else _TransposedMatmul.apply(a, b)
