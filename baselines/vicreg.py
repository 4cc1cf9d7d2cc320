"""VICReg: variance-invariance-covariance regularisation of two views' embeddings.

Bardes, A., Ponce, J., LeCun, Y. (2022). VICReg: Variance-Invariance-Covariance
Regularization for Self-Supervised Learning. ICLR. arXiv:2105.04906.

Deployed: ``h = ReLU(Linear(D, K) x)``, exactly the subject's encoder (:mod:`bench.train.twoview`'s
shared body). Training-only: the expander, the base's ``projector`` (three linear layers, batch
norm and ReLU after the first two: the paper's). Loss :func:`vicreg_loss`, logged as its three
weighted terms. Defaults:

* coefficients sim 25, var 25, cov 1, variance target gamma 1 and epsilon 1e-4 (the paper's);
* expander widths 512-512-512 instead of 8192-8192-8192 (the encoder has K = 16-256 features
  here, not 2048); Adam lr 1e-3 (the suite's optimiser) instead of LARS; views from
  :mod:`bench.train.augment`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bench.train import stacked_nn
from bench.train.augment import AugmentConfig
from bench.train.methods import METHODS
from bench.train.twoview import TwoViewMethod


def invariance_loss(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """``s(Z, Z') = 1/(N d) sum_b ||z_b - z'_b||^2`` (mean squared error), Bardes et al. 2022, eq. 5.

    (S, N, d) inputs (S seeds): the (S,) per-seed values, ``F.mse_loss`` per seed (its own reduction)."""
    return stacked_nn.per_seed(F.mse_loss, z1, z2)


def variance_loss(z: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """``v(Z) = 1/d sum_j max(0, gamma - sqrt(Var(z_j) + eps))`` (unbiased variance), eq. 1-2."""
    return F.relu(gamma - torch.sqrt(z.var(-2) + eps)).mean(-1)


def covariance_loss(z: torch.Tensor) -> torch.Tensor:
    """``c(Z) = 1/d sum_{i != j} Cov(Z)_ij^2``, ``Cov = (Z - mean)^T (Z - mean) / (N - 1)``, eq. 3-4."""
    n, d = z.shape[-2:]
    zc = z - z.mean(-2, keepdim=True)
    cov = zc.mT @ zc / (n - 1)
    return (cov.pow(2).sum((-2, -1)) - torch.diagonal(cov, dim1=-2, dim2=-1).pow(2).sum(-1)) / d


def vicreg_terms(
    z1: torch.Tensor, z2: torch.Tensor, sim: float = 25.0, var: float = 25.0, cov: float = 1.0
) -> dict[str, torch.Tensor]:
    """The three weighted terms of :func:`vicreg_loss` (their sum is the loss); each (S,) for (S, N, d)
    embeddings of S seeds (batch dim -2, features -1 in every term)."""
    return {
        "invariance": sim * invariance_loss(z1, z2),
        "variance": var * (variance_loss(z1) + variance_loss(z2)),
        "covariance": cov * (covariance_loss(z1) + covariance_loss(z2)),
    }


def vicreg_loss(
    z1: torch.Tensor, z2: torch.Tensor, sim: float = 25.0, var: float = 25.0, cov: float = 1.0
) -> torch.Tensor:
    """VICReg's loss, Bardes et al. 2022, eq. 6.

    ``L = sim * s(Z, Z') + var * (v(Z) + v(Z')) + cov * (c(Z) + c(Z'))`` with
    :func:`invariance_loss`, :func:`variance_loss` and :func:`covariance_loss`, as eq. 6 writes
    it. The official code (facebookresearch/vicreg) averages the two variance terms instead of
    summing them, i.e. runs at an effective ``var / 2``; the paper's form is kept here.

    Args:
        z1, z2: (N, d) expanded embeddings of the two views, row b of each from the same input.
    """
    return sum(vicreg_terms(z1, z2, sim, var, cov).values())


@dataclass(frozen=True)
class VICRegConfig(AugmentConfig):
    sim: float = 25.0
    var: float = 25.0
    cov: float = 1.0
    proj_hidden: int = 512
    proj_dim: int = 512

    def check(self) -> None:
        super().check()
        for key in ("sim", "var", "cov"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key}: must be >= 0, got {getattr(self, key)}")
        for key in ("proj_hidden", "proj_dim"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}: must be >= 1, got {getattr(self, key)}")


@METHODS.register()
class VICReg(TwoViewMethod):
    """VICReg (invariance 25, variance 25, covariance 1; 3-layer expander)."""

    name = "vicreg"
    citation = "Bardes, Ponce, LeCun 2022, VICReg (ICLR)"
    Config = VICRegConfig
    proj_layers = 2

    def pair_loss(self, x1, x2, st=None):
        c = self.cfg
        return vicreg_terms(self.project(x1, st), self.project(x2, st), c.sim, c.var, c.cov)
