"""Sparse autoencoder: ``Linear(D, K) + ReLU`` encoder, linear decoder, MSE + L1 on codes.

Ng, A. (2011). Sparse autoencoder (CS294A lecture notes); the L1-penalised ReLU form used in
dictionary learning for interpretability (Bricken et al. 2023, "Towards Monosemanticity").
Loss ``mean_i ||x_i - D a_i||^2 + l1 * mean_i ||a_i||_1`` (squared error summed over input
dimensions, averaged over the batch) with ``l1 = 0.01``
(the foundation issue's default). The decoder is training-only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bench.methods import METHODS, Method, MethodConfig


@dataclass(frozen=True)
class SAEConfig(MethodConfig):
    l1: float = 0.01

    def check(self) -> None:
        super().check()
        if self.l1 < 0:
            raise ValueError(f"l1: must be >= 0, got {self.l1}")


@METHODS.register()
class SAE(Method):
    """Sparse autoencoder (ReLU encoder, linear decoder, MSE + 0.01 L1)."""

    name = "sae"
    citation = "Ng 2011, Sparse autoencoder; Bricken et al. 2023, Towards Monosemanticity"
    Config = SAEConfig

    def __init__(self, cfg, info, width):
        super().__init__(cfg, info, width)
        self.encoder = nn.Linear(info.input_dim, width)
        self.decoder = nn.Linear(width, info.input_dim)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.encoder(x))

    def loss_terms(self, x, y=None):
        a = self.encode(x)
        mse = (self.decoder(a) - x).pow(2).sum(1).mean()
        return {"mse": mse, "l1": self.cfg.l1 * a.abs().sum(1).mean()}
