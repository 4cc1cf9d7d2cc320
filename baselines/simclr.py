"""SimCLR: contrastive learning of two augmented views with the NT-Xent loss.

Chen, T., Kornblith, S., Norouzi, M., Hinton, G. (2020). A Simple Framework for Contrastive
Learning of Visual Representations. ICML. arXiv:2002.05709.

Deployed: ``h = ReLU(Linear(D, K) x)``, exactly the subject's encoder (:mod:`bench.train.twoview`'s
shared body). Training-only: the projection head ``g(h) = W2 ReLU(BN(W1 h))`` (the paper's
nonlinear head; its code adds batch norm), whose output ``z`` enters the loss. Defaults:

* temperature 0.5 (the paper's CIFAR-10 value, appendix B.9), projection output 128 (paper);
* projection hidden width 512 instead of the encoder's 2048: here the encoder has K = 16-256
  features, and a 2048-wide head would be 10-100x the deployed encoder (small-image adaptation);
* Adam at the suite's lr 1e-3 (the trainer's optimiser for every method) instead of LARS at
  batch 4096, which exists to make huge batches trainable; no weight decay, like the subject;
* views from :mod:`bench.train.augment` (mild crops, rotation, noise, erasing) instead of the
  ImageNet recipe, which is too strong for 8x8 and 28x28 grey digits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bench.train import stacked_nn
from bench.train.augment import AugmentConfig
from bench.train.methods import METHODS
from bench.train.twoview import TwoViewMethod


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent (normalised temperature-scaled cross entropy), Chen et al. 2020, eq. 1.

    With the 2N embeddings ``u = [z1; z2]`` l2-normalised, ``s_ij = u_i . u_j / tau`` and
    ``p(i)`` the other view of the same input,
    ``L = 1/(2N) sum_i -log( exp(s_{i,p(i)}) / sum_{k != i} exp(s_ik) )``.

    Args:
        z1, z2: (N, d) projections of the two views, row i of each from the same input, or (S, N, d)
            for S seeds trained together.
        temperature: tau > 0.

    Returns:
        Scalar mean loss over the 2N anchors (S of them, one per seed, given (S, N, d)).
    """
    n = z1.shape[-2]
    u = F.normalize(torch.cat([z1, z2], dim=-2), dim=-1)
    s = (u @ u.mT) / temperature
    s = s.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=s.device), float("-inf"))
    target = torch.arange(2 * n, device=s.device).roll(n)  # [n..2n-1, 0..n-1], built on s's device (no H2D copy)
    return stacked_nn.cross_entropy(s, target)


@dataclass(frozen=True)
class SimCLRConfig(AugmentConfig):
    temperature: float = 0.5
    proj_hidden: int = 512
    proj_dim: int = 128

    def check(self) -> None:
        super().check()
        if self.temperature <= 0:
            raise ValueError(f"temperature: must be > 0, got {self.temperature}")
        for key in ("proj_hidden", "proj_dim"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}: must be >= 1, got {getattr(self, key)}")


@METHODS.register()
class SimCLR(TwoViewMethod):
    """SimCLR (NT-Xent on two views, temperature 0.5, MLP projection head)."""

    name = "simclr"
    citation = "Chen, Kornblith, Norouzi, Hinton 2020, A Simple Framework for Contrastive Learning (ICML)"
    Config = SimCLRConfig

    def pair_loss(self, x1, x2, st=None):
        return {"nt_xent": nt_xent(self.project(x1, st), self.project(x2, st), self.cfg.temperature)}
