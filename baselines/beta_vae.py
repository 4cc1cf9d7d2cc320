"""beta-VAE: the VAE of :mod:`baselines.vae` with the KL term weighted by beta = 4.

Higgins, I. et al. (2017). beta-VAE: Learning basic visual concepts with a constrained
variational framework (ICLR); beta = 4 is the paper's value for 2D shapes (dSprites). Loss
``recon + beta * KL``; everything else (linear Gaussian encoder whose mean is the deployed
feature, Bernoulli / Gaussian likelihood, linear decoder) is ``vae``'s. Only the default differs,
as with disentanglement_lib's ``BetaVAE``.
"""

from __future__ import annotations

from dataclasses import dataclass

from baselines.vae import VAE, VAEConfig
from bench.train.methods import METHODS


@dataclass(frozen=True)
class BetaVAEConfig(VAEConfig):
    beta: float = 4.0


@METHODS.register()
class BetaVAE(VAE):
    """beta-VAE (Higgins et al. 2017): VAE with KL weight beta = 4."""

    name = "beta_vae"
    citation = "Higgins et al. 2017, beta-VAE: Learning basic visual concepts with a constrained variational framework"
    Config = BetaVAEConfig
