"""Variational autoencoder: Gaussian posterior with a linear mean, reparameterised ELBO.

Kingma, D. P. & Welling, M. (2014). Auto-encoding variational Bayes (ICLR). Posterior
``q(z|x) = N(mu(x), diag exp(logvar(x)))`` with ``mu = W x + c`` (``self.encoder``,
``Linear(D, K)``) and ``logvar = W' x + c'`` (a training-only ``Linear(D, K)``); prior
``N(0, I)``; ``z = mu + exp(logvar / 2) * eps`` with ``eps ~ N(0, I)`` from ``torch.randn_like``
(the global RNG the job seeds). Loss per minibatch (the negative ELBO, weighted KL):

    recon + beta * mean_i KL(q(z|x_i) || p(z)),
    KL = 1/2 sum_k (mu_k^2 + exp(logvar_k) - 1 - logvar_k)       (summed over the K latents).

Likelihood: Bernoulli for image data in [0, 1] (``info.image_shape`` set), ``recon =
mean_i sum_d BCE_with_logits(g(z_i)_d, x_id)`` (Kingma & Welling's MNIST model); for data
without an image shape (``ica``: standardised reals) a unit-variance Gaussian, ``recon =
mean_i 1/2 ||x_i - g(z_i)||^2`` (its negative log-likelihood up to a constant, so ``beta`` keeps
its meaning). Decoder ``g``: linear, ``Linear(K, D)`` (``decoder_hidden = 0``, the default),
as in ``ae`` / ``dae`` / ``sae`` so that the comparison isolates the objective; with
``decoder_hidden = H > 0`` one hidden tanh layer of H units, Kingma & Welling's MNIST decoder
(H = 500). Deployed features are the posterior mean ``mu`` itself: linear, no ReLU (what a VAE
deploys). Optimiser: the suite's Adam, lr 1e-3 (Kingma & Welling used Adagrad).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from baselines._stacked import stacked_module
from bench.train.methods import METHODS, DataInfo, Method, MethodConfig
from bench.train.seedbatch import SeedRNG


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, diag exp(logvar)) || N(0, I))`` per row: (N, K), (N, K) -> (N,) ((S, N, K) -> (S, N)).

    ``1/2 sum_k (mu_k^2 + exp(logvar_k) - 1 - logvar_k)`` (Kingma & Welling 2014, Appendix B).
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)


def standard_normal(like: torch.Tensor, generator: torch.Generator | SeedRNG | None = None) -> torch.Tensor:
    """``eps ~ N(0, I)`` of ``like``'s shape: ``torch.randn_like(like)`` from ``generator`` (None: the
    global RNG). For S seeds, ``like`` is (S, N, K) and ``generator`` a :class:`~bench.train.seedbatch.SeedRNG`:
    seed s's (N, K) draws come from its own generator, as in its own job."""
    if isinstance(generator, SeedRNG):
        return generator.randn(*like.shape[1:])
    return torch.randn_like(like, generator=generator)


@dataclass(frozen=True)
class VAEConfig(MethodConfig):
    beta: float = 1.0  # KL weight (1: the ELBO)
    decoder_hidden: int = 0  # 0: linear decoder; H > 0: one tanh hidden layer of H units

    def check(self) -> None:
        super().check()
        if self.beta < 0:
            raise ValueError(f"beta: must be >= 0, got {self.beta}")
        if self.decoder_hidden < 0:
            raise ValueError(f"decoder_hidden: must be >= 0, got {self.decoder_hidden}")


@METHODS.register()
class VAE(Method):
    """Variational autoencoder (linear Gaussian encoder, features = posterior mean, beta = 1)."""

    name = "vae"
    citation = "Kingma & Welling 2014, Auto-encoding variational Bayes"
    Config = VAEConfig

    def __init__(self, cfg: VAEConfig, info: DataInfo, width: int):
        super().__init__(cfg, info, width)
        cfg.check()
        d = info.input_dim
        self.encoder = nn.Linear(d, width)
        self.logvar = nn.Linear(d, width)
        h = cfg.decoder_hidden
        self.decoder = nn.Linear(width, d) if h == 0 else nn.Sequential(nn.Linear(width, h), nn.Tanh(), nn.Linear(h, d))
        self.bernoulli = info.image_shape is not None

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def reconstruction_nll(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``-log p(x|z)`` summed over input dims, averaged over rows (decoder output ``out``: logits or means);
        for (S, N, D) tensors, the S seeds' values."""
        if self.bernoulli:
            return F.binary_cross_entropy_with_logits(out, x, reduction="none").sum(-1).mean(-1)
        return 0.5 * (out - x).pow(2).sum(-1).mean(-1)

    def loss_terms(self, x, y=None):
        return self.terms(self.encoder(x), self.logvar(x), self.decoder, x, None)

    def terms(
        self, mu: torch.Tensor, logvar: torch.Tensor, decode, x: torch.Tensor, generator: SeedRNG | None
    ) -> dict[str, torch.Tensor]:
        """The loss terms of the posterior ``mu``, ``logvar`` (B, K) of inputs ``x`` (B, D), with decoder
        ``decode``; for S seeds at once, (S, B, K), (S, B, D) and their SeedRNG: the S per-seed values."""
        z = mu + (0.5 * logvar).exp() * standard_normal(mu, generator)
        recon = self.reconstruction_nll(decode(z), x)
        return {"recon": recon, "kl": self.cfg.beta * gaussian_kl(mu, logvar).mean(-1)}

    # seeds trained together (bench.train.seedbatch): the same terms on stacked tensors, each seed's own noise;
    # bit-identical; small inputs only, as for ae: 0.94x at mnist5k, K = 64, S = 10 on one CPU thread (2.3x on
    # digits); beta_vae inherits the flags
    batched = True
    batch_max_dim = 256

    def loss_terms_batched(self, p, b, x, y, rng):
        mu, logvar = (stacked_module(m, n, p, x) for m, n in ((self.encoder, "encoder"), (self.logvar, "logvar")))
        return self.terms(mu, logvar, lambda z: stacked_module(self.decoder, "decoder", p, z), x, rng)
