"""Autoencoder: ``Linear(D, K) + ReLU`` encoder, linear decoder, squared reconstruction error.

Rumelhart, D. E., Hinton, G. E. & Williams, R. J. (1986). Learning internal representations
by error propagation; the single-hidden-layer form of Bourlard & Kamp (1988) and Baldi &
Hornik (1989) (with a linear encoder it spans the PCA subspace; the ReLU makes it
nonlinear). Loss ``mean_i ||x_i - D relu(W x_i + c)||^2``: squared error summed over input
dimensions, averaged over the batch (the convention of :mod:`baselines.sae`, which is this
model plus an L1 penalty on the codes). The decoder ``D`` (``Linear(K, D)``) is training-only.
"""

from __future__ import annotations

import torch
from torch import nn

from baselines._stacked import stacked_module
from bench.train.methods import METHODS, DataInfo, Method, MethodConfig


def reconstruction_mse(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``mean_i sum_d (x_hat_id - x_id)^2`` for (N, D) tensors, a scalar; for (S, N, D), the S seeds' values."""
    return (x_hat - x).pow(2).sum(-1).mean(-1)


@METHODS.register()
class AE(Method):
    """Autoencoder (ReLU encoder, linear decoder, MSE)."""

    name = "ae"
    citation = "Rumelhart, Hinton & Williams 1986; Bourlard & Kamp 1988; Baldi & Hornik 1989"
    Config = MethodConfig

    def __init__(self, cfg: MethodConfig, info: DataInfo, width: int):
        super().__init__(cfg, info, width)
        cfg.check()
        self.encoder = nn.Linear(info.input_dim, width)
        self.decoder = nn.Linear(width, info.input_dim)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.encoder(x))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encode(x))

    def loss_terms(self, x, y=None):
        return {"mse": reconstruction_mse(self.reconstruct(x), x)}

    # seeds trained together (bench.train.seedbatch): the same loss on (S, B, D), the stacked weights in p,
    # bit-identical (tests/test_baselines_ae_rbm.py). It pays on small inputs only: on one CPU thread at
    # mnist5k (D = 784), K = 64 it runs at 0.86-1.04x the sequential speed (the step is GEMM- and
    # memory-bound, and stacking the seeds' (B, D) tensors takes them out of L2); on digits (D = 64) 3x at
    # S = 10. Hence batch_max_dim; dae inherits both. benchmarks/seedbatch_speed.py measures it.
    batched = True
    batch_max_dim = 256

    def reconstruct_batched(self, p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """:meth:`reconstruct` for S seeds: x (S, B, D) -> (S, B, D)."""
        return stacked_module(self.decoder, "decoder", p, torch.relu(stacked_module(self.encoder, "encoder", p, x)))

    def loss_terms_batched(self, p, b, x, y, rng):
        return {"mse": reconstruction_mse(self.reconstruct_batched(p, x), x)}
