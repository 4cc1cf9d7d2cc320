"""MoCo v2: contrastive learning against a queue of keys from a momentum encoder.

He, K., Fan, H., Wu, Y., Xie, S., Girshick, R. (2020). Momentum Contrast for Unsupervised
Visual Representation Learning. CVPR. Chen, X., Fan, H., Girshick, R., He, K. (2020). Improved
Baselines with Momentum Contrastive Learning. arXiv:2003.04297 (v2: MLP head, temperature 0.2,
stronger augmentation).

Deployed: the query encoder ``h = ReLU(Linear(D, K) x)``, exactly the subject's
(:mod:`bench.train.twoview`'s shared body). Training-only: the MLP head ``Linear - ReLU - Linear``
(v2's, no batch norm, so MoCo's shuffling BN is not needed), the key encoder and key head
(momentum copies, no gradients) and the queue of negative keys. A step: query ``q`` from view
1, key ``k`` from view 2 through the momentum copy, InfoNCE of ``q`` against ``k`` and the
queue (:func:`info_nce`); after the optimiser step (:meth:`MoCo.after_step`) the momentum copy
moves, ``theta_k <- m theta_k + (1 - m) theta_q``, and the batch's keys replace the oldest in
the queue. Defaults:

* temperature 0.2, head output 128 (v2);
* momentum m = 0.99 instead of 0.999: with 0.999 the key encoder's time constant is 1000
  steps, while a quick run here is 300 (``digits``: 10 steps x 30 epochs) to 1100 (``mnist5k``)
  steps, so the keys would come from an encoder that has barely left its initialisation (on
  ``digits``, width 16, 30 epochs, the loss *rose* under 0.999, 5.86 -> 6.36, while it falls
  under 0.99, 5.83 -> 5.57); 0.99 (time constant 100 steps) is the usual value for CIFAR-size
  runs (e.g. MoCo's CIFAR-10 demo notebook);
* queue 1024 keys instead of 65536: the queue must be smaller than the training set (1258
  ``digits`` training inputs), or it holds stale keys of the very input being contrasted;
* head hidden width 512 instead of 2048 (the encoder has K = 16-256 features here); Adam,
  lr 1e-3 (the suite's optimiser) instead of SGD 0.03; views from :mod:`bench.train.augment`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bench.train import stacked_nn
from bench.train.augment import AugmentConfig
from bench.train.methods import METHODS
from bench.train.twoview import TwoViewMethod


def info_nce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float) -> torch.Tensor:
    """MoCo's InfoNCE, He et al. 2020, eq. 1 and Algorithm 1.

    ``L = mean_i -log( exp(q_i . k_i / tau) / (exp(q_i . k_i / tau) + sum_j exp(q_i . n_j / tau)) )``
    with ``q``, ``k`` and the queue's negatives ``n_j`` l2-normalised.

    Args:
        q: (N, d) queries; k: (N, d) positive keys (no gradient is taken through them);
        queue: (Q, d) negative keys (or (S, N, d), (S, N, d), (S, Q, d) for S seeds: (S,) losses).
        temperature: tau > 0.
    """
    q, k, queue = F.normalize(q, dim=-1), F.normalize(k, dim=-1), F.normalize(queue, dim=-1)
    l_pos = (q * k).sum(-1, keepdim=True)
    l_neg = q @ queue.mT
    logits = torch.cat([l_pos, l_neg], -1) / temperature
    return stacked_nn.cross_entropy(logits, torch.zeros(q.shape[-2], dtype=torch.long, device=q.device))


@torch.no_grad()
def ema_(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """In place ``theta_target <- m theta_target + (1 - m) theta_online`` for every parameter."""
    stacked_nn.ema_(list(target.parameters()), list(online.parameters()), momentum)


@torch.no_grad()
def enqueue_(queue: torch.Tensor, ptr: torch.Tensor, k: torch.Tensor) -> None:
    """Write keys ``k`` (B, d) over the oldest of ``queue`` (Q, d) from ``ptr`` (a 0-dim index) on,
    wrapping around, and advance ``ptr``; or, for S seeds, (S, B, d), (S, Q, d) and (S,), each seed's
    queue its own."""
    q_size, d = queue.shape[-2:]
    k = k[..., -q_size:, :]
    idx = (ptr.unsqueeze(-1) + torch.arange(k.shape[-2], device=k.device)) % q_size  # (..., B)
    base = (torch.arange(ptr.numel(), device=k.device) * q_size).view(ptr.shape).unsqueeze(-1)
    queue.view(-1, d)[(idx + base).reshape(-1)] = k.reshape(-1, d)
    ptr.copy_((ptr + k.shape[-2]) % q_size)


@dataclass(frozen=True)
class MoCoConfig(AugmentConfig):
    temperature: float = 0.2
    momentum: float = 0.99
    queue_size: int = 1024
    proj_hidden: int = 512
    proj_dim: int = 128

    def check(self) -> None:
        super().check()
        if self.temperature <= 0:
            raise ValueError(f"temperature: must be > 0, got {self.temperature}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum: must be in [0, 1), got {self.momentum}")
        for key in ("queue_size", "proj_hidden", "proj_dim"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}: must be >= 1, got {getattr(self, key)}")


@METHODS.register()
class MoCo(TwoViewMethod):
    """MoCo v2 (momentum key encoder m=0.99, queue of 1024 keys, temperature 0.2, MLP head)."""

    name = "moco"
    citation = (
        "He, Fan, Wu, Xie, Girshick 2020, Momentum Contrast (CVPR); "
        "Chen, Fan, Girshick, He 2020, Improved Baselines with Momentum Contrastive Learning"
    )
    Config = MoCoConfig
    proj_batch_norm = False

    def __init__(self, cfg: MoCoConfig, info, width):
        super().__init__(cfg, info, width)
        self.key_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
        self.key_projector = copy.deepcopy(self.projector).requires_grad_(False)
        self.register_buffer("queue", F.normalize(torch.randn(cfg.queue_size, cfg.proj_dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        self._pending_keys: torch.Tensor | None = None

    def pair_loss(self, x1, x2, st=None):
        q = self.project(x1, st)
        with torch.no_grad():
            k = F.normalize(self.run("key_projector", torch.relu(self.run("key_encoder", x2, st)), st), dim=-1)
        self._pending_keys = k
        queue = self.queue if st is None else st[1]["queue"]
        return {"info_nce": info_nce(q, k, queue.clone(), self.cfg.temperature)}

    @torch.no_grad()
    def after_step(self) -> None:
        """Momentum update of the key encoder and head, then enqueue the last batch's keys."""
        ema_(self.key_encoder, self.encoder, self.cfg.momentum)
        ema_(self.key_projector, self.projector, self.cfg.momentum)
        k, self._pending_keys = self._pending_keys, None
        if k is not None:
            enqueue_(self.queue, self.queue_ptr, k)

    @torch.no_grad()
    def after_step_batched(self, p, b, rng) -> None:
        keys = [n for n in p if n.startswith(("key_encoder.", "key_projector."))]
        stacked_nn.ema_([p[n] for n in keys], [p[n[len("key_") :]] for n in keys], self.cfg.momentum)
        k, self._pending_keys = self._pending_keys, None
        if k is not None:
            enqueue_(b["queue"], b["queue_ptr"], k)
