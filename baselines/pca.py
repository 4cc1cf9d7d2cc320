"""PCA: the top-K principal components as a linear encoder.

Pearson, K. (1901). On lines and planes of closest fit to systems of points in space.
Fitted by SVD of the centred training inputs; the deployed encoder is ``Linear(D, K)`` with
``W = components`` and ``b = -W mean``, so features are the (unwhitened) projections and every
protocol that inspects incoming weights (magnitude pruning) treats PCA like the others.
Components beyond the centred training inputs' numerical rank (``digits``: 61 of 64, its border
pixels being constant) are zero rows, i.e. dead features, never directions fitted to rounding noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bench.train.methods import METHODS, Method, NoConfig


@dataclass(frozen=True)
class PCAConfig(NoConfig):
    whiten: bool = False  # scale each component to unit variance


@METHODS.register()
class PCA(Method):
    """PCA (top-K principal components, linear encoder)."""

    name = "pca"
    kind = "fit"
    citation = "Pearson 1901; Hotelling 1933"
    Config = PCAConfig

    def __init__(self, cfg, info, width):
        super().__init__(cfg, info, width)
        self.encoder = nn.Linear(info.input_dim, width)
        self.encoder.requires_grad_(False)

    @torch.no_grad()
    def fit(self, x, y, seed):
        mean = x.mean(0)
        xc = (x - mean).double()
        _, s, vt = torch.linalg.svd(xc, full_matrices=False)
        tol = max(xc.shape) * torch.finfo(s.dtype).eps * float(s.max())  # numpy's rank tolerance
        k = min(self.width, int((s > tol).sum()))
        w = torch.zeros(self.width, x.shape[1], dtype=torch.float64, device=x.device)
        w[:k] = vt[:k]  # rows beyond the centred data's rank stay zero (dead features, not noise directions)
        signs = torch.sign(w[:k].sum(1, keepdim=True)).clamp(min=0) * 2 - 1  # deterministic sign
        w[:k] *= signs
        if self.cfg.whiten:
            sd = (s[:k] / (x.shape[0] - 1) ** 0.5).clamp(min=1e-8)
            w[:k] /= sd[:, None]
        self.encoder.weight.copy_(w.float())
        self.encoder.bias.copy_(-(w.float() @ mean))

    def encode(self, x):
        return self.encoder(x)
