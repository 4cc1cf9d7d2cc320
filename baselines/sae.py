"""Sparse autoencoder: ``Linear(D, K) + ReLU`` encoder, unit-norm linear decoder, MSE + L1 on codes.

Bricken et al. (2023), "Towards Monosemanticity: Decomposing Language Models With Dictionary
Learning" (Transformer Circuits Thread): a ReLU encoder, a linear decoder whose columns
(one dictionary atom per feature) are renormalised to unit L2 norm after every optimiser step,
and the loss ``||x - x_hat||^2 + lambda ||f||_1``. The renormalisation is what makes the L1
penalty bite: without it the codes shrink while the decoder grows, and the penalty is dodged
(the reason this file changed; a test checks that the columns stay unit norm).

The L1 strength is the published one, not tuned here: ``lambda = 5`` (Templeton et al. 2024,
"Scaling Monosemanticity"), which Anthropic's recipe (Conerly et al. 2024, "Circuits Updates,
April 2024: training SAEs") states for inputs scaled by one constant so that
``E ||x||_2 = sqrt(D)``. A penalty strength is only meaningful at a known input scale, so the
scale is carried over instead of the raw number: scaling ``x`` by ``c = sqrt(D) / E||x||_2``
multiplies the reconstruction term by ``c^2`` and the (equivalently rescaled) codes' L1 by ``c``,
so on the raw inputs the same objective is

    mean_i ||x_i - D f_i - d_0||^2 + (lambda / c) * mean_i ||f_i||_1,   ||D_:,k||_2 = 1,

with ``E ||x||_2`` estimated on each minibatch (detached). Departures from Bricken et al.: no
pre-encoder bias subtraction, no resampling of dead features, Adam at the suite's shared
``lr`` and the suite's epoch budget. The decoder is training-only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from baselines.ae import reconstruction_mse
from bench.train.methods import METHODS, Method, MethodConfig
from bench.train.seedbatch import stacked_linear


@dataclass(frozen=True)
class SAEConfig(MethodConfig):
    l1: float = 5.0  # Templeton et al. 2024, at E||x||_2 = sqrt(D) (see the module docstring)

    def check(self) -> None:
        super().check()
        if self.l1 < 0:
            raise ValueError(f"l1: must be >= 0, got {self.l1}")


@METHODS.register()
class SAE(Method):
    """Sparse autoencoder (ReLU encoder, unit-norm decoder columns, MSE + L1 at the published lambda 5)."""

    name = "sae"
    citation = "Bricken et al. 2023, Towards Monosemanticity; Templeton et al. 2024, Scaling Monosemanticity"
    Config = SAEConfig

    def __init__(self, cfg, info, width):
        super().__init__(cfg, info, width)
        self.encoder = nn.Linear(info.input_dim, width)
        self.decoder = nn.Linear(width, info.input_dim)
        self.after_step()
        with torch.no_grad():  # encoder initialised to the decoder's transpose (Conerly et al. 2024)
            self.encoder.weight.copy_(self.decoder.weight.T)
            self.encoder.bias.zero_()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.encoder(x))

    def loss_terms(self, x, y=None):
        a = self.encode(x)
        return self.terms(a, self.decoder(a), x)

    def terms(self, a: torch.Tensor, x_hat: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The loss terms of codes ``a`` (B, K), reconstructions ``x_hat`` and inputs ``x`` (B, D);
        of S seeds at once for (S, B, K), (S, B, D): the S per-seed values."""
        scale = math.sqrt(x.shape[-1]) / x.detach().norm(dim=-1).mean(-1).clamp(min=1e-12)  # c
        return {"mse": reconstruction_mse(x_hat, x), "l1": self.cfg.l1 / scale * a.abs().sum(-1).mean(-1)}

    @torch.no_grad()
    def after_step(self) -> None:
        """Renormalise every decoder column (one feature's dictionary atom) to unit L2 norm."""
        unit_columns_(self.decoder.weight)

    # seeds trained together (bench.train.seedbatch): the same terms and renormalisation on stacked tensors;
    # bit-identical; small inputs only, as for ae: 0.97x at mnist5k, K = 64, S = 10 on one CPU thread (3x on digits)
    batched = True
    batch_max_dim = 256

    def loss_terms_batched(self, p, b, x, y, rng):
        a = torch.relu(stacked_linear(x, p["encoder.weight"], p["encoder.bias"]))
        return self.terms(a, stacked_linear(a, p["decoder.weight"], p["decoder.bias"]), x)

    @torch.no_grad()
    def after_step_batched(self, p, b, rng):
        unit_columns_(p["decoder.weight"])


def unit_columns_(w: torch.Tensor) -> None:
    """Divide each column of ``w`` (D, K) by its L2 norm, in place ((S, D, K): each seed's own)."""
    w.div_(w.norm(dim=-2, keepdim=True).clamp(min=1e-12))
