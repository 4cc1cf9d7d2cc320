"""Barlow Twins: make the cross-correlation of two views' batch-normalised embeddings the identity.

Zbontar, J., Jing, L., Misra, I., LeCun, Y., Deny, S. (2021). Barlow Twins: Self-Supervised
Learning via Redundancy Reduction. ICML. arXiv:2103.03230.

Deployed: ``h = ReLU(Linear(D, K) x)``, exactly the subject's encoder (:mod:`bench.train.twoview`'s
shared body). Training-only: the projector (three linear layers, batch norm and ReLU after the
first two: the paper's). Loss :func:`barlow_twins_loss` on the two views' projections. Defaults:

* lambda 5e-3 (the paper's);
* projector widths 512-512-512 instead of 8192-8192-8192 (the encoder has K = 16-256
  features here, not 2048; an 8192-wide projector would be 10^4 times the deployed encoder and
  slow on CPU); Adam lr 1e-3 (the suite's optimiser) instead of LARS; views from
  :mod:`bench.train.augment`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.train import stacked_nn
from bench.train.augment import AugmentConfig
from bench.train.methods import METHODS
from bench.train.twoview import TwoViewMethod


def batch_standardize(z: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``(z - mean_b z) / sqrt(var_b z + eps)`` per column: ``BatchNorm1d(affine=False)`` in training mode."""
    return (z - z.mean(-2, keepdim=True)) / torch.sqrt(z.var(-2, unbiased=False, keepdim=True) + eps)


def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, lambd: float, eps: float = 1e-5) -> torch.Tensor:
    """Barlow Twins' loss, Zbontar et al. 2021, eq. 1-2.

    ``C_ij = sum_b z1n_bi z2n_bj / N`` with ``z1n, z2n`` the batch-standardised embeddings
    (mean 0, biased variance 1: eq. 2's normalisation, the paper code's affine-free batch norm),
    ``L = sum_i (1 - C_ii)^2 + lambda sum_i sum_{j != i} C_ij^2``.

    Args:
        z1, z2: (N, d) projections of the two views, row b of each from the same input (or (S, N, d)
            for S seeds, giving (S,) losses).
        lambd: weight of the redundancy-reduction (off-diagonal) term.
        eps: added to the variances, as in ``BatchNorm1d``.
    """
    n = z1.shape[-2]
    c = stacked_nn.tmm(batch_standardize(z1, eps), batch_standardize(z2, eps)) / n
    diag = torch.diagonal(c, dim1=-2, dim2=-1)
    on = (1 - diag).pow(2).sum(-1)
    off = c.pow(2).sum((-2, -1)) - diag.pow(2).sum(-1)
    return on + lambd * off


@dataclass(frozen=True)
class BarlowTwinsConfig(AugmentConfig):
    lambd: float = 5e-3
    proj_hidden: int = 512
    proj_dim: int = 512

    def check(self) -> None:
        super().check()
        if self.lambd < 0:
            raise ValueError(f"lambd: must be >= 0, got {self.lambd}")
        for key in ("proj_hidden", "proj_dim"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}: must be >= 1, got {getattr(self, key)}")


@METHODS.register()
class BarlowTwins(TwoViewMethod):
    """Barlow Twins (cross-correlation to identity, lambda 5e-3, 3-layer projector)."""

    name = "barlow_twins"
    citation = "Zbontar, Jing, Misra, LeCun, Deny 2021, Barlow Twins (ICML)"
    Config = BarlowTwinsConfig
    proj_layers = 2

    def pair_loss(self, x1, x2, st=None):
        return {"barlow_twins": barlow_twins_loss(self.project(x1, st), self.project(x2, st), self.cfg.lambd)}
