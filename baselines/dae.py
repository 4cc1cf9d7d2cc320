"""Denoising autoencoder with masking noise: reconstruct the clean input from a corrupted one.

Vincent, P., Larochelle, H., Bengio, Y. & Manzagol, P.-A. (2008). Extracting and composing
robust features with denoising autoencoders (ICML); Vincent, P. et al. (2010). Stacked
denoising autoencoders, JMLR 11. Masking noise ``q(x~|x)``: for each example a fixed number
``round(nu * D)`` of input components, chosen at random, are forced to 0 (Vincent 2008 §2.3;
exactly that count per row, drawn with ``torch.rand`` on the global RNG the job seeds). The loss
is the :mod:`baselines.ae` loss with the corrupted input in and the clean input as target,
``mean_i ||x_i - D relu(W x~_i + c)||^2``.

Default ``nu = 0.25``: Vincent et al. choose the destruction fraction on validation data from
{0.10, 0.25, 0.40} (the MNIST-variants benchmark), and 0.25 is the middle of that range. The
papers' DAE uses sigmoid units, tied weights and cross-entropy for [0, 1] inputs; here the
encoder (``Linear(D, K) + ReLU``), untied linear decoder and MSE are those of ``ae`` and ``sae``
so that the comparison isolates the denoising criterion. Features are computed on clean
inputs; the decoder is training-only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from baselines.ae import AE, reconstruction_mse
from bench.train.methods import METHODS, MethodConfig
from bench.train.seedbatch import SeedRNG


def masking_noise(x: torch.Tensor, fraction: float, generator: torch.Generator | SeedRNG | None = None) -> torch.Tensor:
    """Zero exactly ``round(fraction * D)`` uniformly chosen components of each row of ``x`` (N, D).

    The choice is the top ``round(fraction * D)`` of uniform draws ``(N, D)`` from ``generator``
    (None: the global RNG). For S seeds trained together, ``x`` is (S, N, D) and ``generator`` a
    :class:`~bench.train.seedbatch.SeedRNG`: seed s's draws come from its own generator, as in its own job."""
    n_drop = round(fraction * x.shape[-1])
    if n_drop == 0:
        return x
    if isinstance(generator, SeedRNG):
        u = generator.rand(*x.shape[1:])
    else:
        u = torch.rand(x.shape, device=x.device, generator=generator)
    drop = u.topk(n_drop, dim=-1).indices
    return x.scatter(-1, drop, 0.0)


@dataclass(frozen=True)
class DAEConfig(MethodConfig):
    noise: float = 0.25  # masking fraction nu (Vincent et al. 2008, 2010)

    def check(self) -> None:
        super().check()
        if not 0 <= self.noise < 1:
            raise ValueError(f"noise: must be in [0, 1), got {self.noise}")


@METHODS.register()
class DAE(AE):
    """Denoising autoencoder (masking noise 0.25, ReLU encoder, linear decoder, MSE)."""

    name = "dae"
    citation = "Vincent et al. 2008, Extracting and composing robust features with denoising autoencoders; 2010 JMLR"
    Config = DAEConfig

    def loss_terms(self, x, y=None):
        x_tilde = masking_noise(x, self.cfg.noise)
        return {"mse": reconstruction_mse(self.reconstruct(x_tilde), x)}

    def loss_terms_batched(self, p, b, x, y, rng):
        x_tilde = masking_noise(x, self.cfg.noise, rng)
        return {"mse": reconstruction_mse(self.reconstruct_batched(p, x_tilde), x)}
