"""Gaussian mixture: explicit EM, with the component responsibilities as features.

Dempster, Laird & Rubin (1977), "Maximum likelihood from incomplete data via the EM
algorithm"; fitted with scikit-learn's ``GaussianMixture`` (diagonal covariances, K
components, k-means initialisation, ``max_iter`` [100], ``random_state = seed``). This is the
essay's mechanism made explicit: where InfoMax's LSE term gives units the responsibilities
``softmax(-a)`` implicitly, here they come from an explicitly fitted mixture,

    r_k(x) = pi_k N(x; mu_k, diag s_k) / sum_j pi_j N(x; mu_j, diag s_j),

    log N(x; mu, diag s) = -1/2 [ D log 2 pi + sum_d log s_d + sum_d (x_d - mu_d)^2 / s_d ].

Features are ``r(x)`` (N, K), each row summing to 1. :meth:`encode` computes them in torch
from the stored means (K, D), variances (K, D) and log mixing weights (K,), in float64 (a sum
of D squared standardised distances loses the small differences between components in float32)
and returns float32. These are frozen ``nn.Parameter`` s (``requires_grad = False``) so they are
counted as the deployed encoder's parameters and cached with the state dict.

``reg_covar`` [1e-3] is added to every variance: on [0, 1] pixels a pixel that is constant
inside a component (an always-black border) would otherwise get a variance of ~0 and an
unbounded likelihood that lets that one pixel decide the responsibilities. 1e-3 is a standard
deviation of ~0.03, small against the spread of a pixel that does vary (a stroke pixel's
standard deviation is ~0.3-0.4), so it tames the constant pixels and hardly touches the others.

The deployed encoder ``self.encoder`` is a :class:`DiagGaussianMixture`, not a single linear
layer, so :meth:`encoder_weight` returns None (the means are the closest analogue, but the
quadratic form also depends on the variances, so magnitude pruning of "weights" is undefined).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from torch import nn

from bench.train.methods import METHODS, DataInfo, Method


@dataclass(frozen=True)
class GMMConfig:
    reg_covar: float = 1e-3
    max_iter: int = 100
    n_init: int = 1
    tol: float = 1e-3  # scikit-learn's default (on the per-sample lower bound)

    def check(self) -> None:
        if self.reg_covar <= 0:
            raise ValueError(f"reg_covar: must be > 0, got {self.reg_covar}")
        if self.max_iter < 1:
            raise ValueError(f"max_iter: must be >= 1, got {self.max_iter}")
        if self.n_init < 1:
            raise ValueError(f"n_init: must be >= 1, got {self.n_init}")
        if self.tol <= 0:
            raise ValueError(f"tol: must be > 0, got {self.tol}")


def diag_gaussian_log_likelihood(x: torch.Tensor, means: torch.Tensor, variances: torch.Tensor) -> torch.Tensor:
    """``log N(x_n; mu_k, diag s_k)`` for every sample and component, vectorised.

    Args:
        x: (N, D); means, variances: (K, D), variances > 0.

    Returns:
        (N, K): ``-1/2 [D log 2 pi + sum_d log s_kd + sum_d (x_nd - mu_kd)^2 / s_kd]``, with the
        quadratic expanded as ``x^2 @ (1/s)^T - 2 x @ (mu/s)^T + sum(mu^2/s)`` (two matmuls,
        no (N, K, D) tensor).
    """
    prec = variances.reciprocal()
    quad = (x * x) @ prec.T - 2.0 * x @ (means * prec).T + (means * means * prec).sum(1)
    log_det = variances.log().sum(1)
    return -0.5 * (x.shape[1] * math.log(2 * math.pi) + log_det + quad)


def responsibilities(
    x: torch.Tensor, means: torch.Tensor, variances: torch.Tensor, log_weights: torch.Tensor
) -> torch.Tensor:
    """E-step: posterior ``r_nk = softmax_k(log pi_k + log N(x_n; mu_k, diag s_k))``, (N, K)."""
    return torch.softmax(log_weights + diag_gaussian_log_likelihood(x, means, variances), dim=1)


class DiagGaussianMixture(nn.Module):
    """The deployed encoder: a diagonal Gaussian mixture's parameters and its E-step.

    Frozen float64 parameters (``requires_grad = False``): ``means`` (K, D), ``variances``
    (K, D), ``log_weights`` (K,). ``forward(x)`` -> responsibilities (N, K), float32.
    """

    def __init__(self, n_components: int, dim: int):
        super().__init__()
        ones = torch.ones(n_components, dim, dtype=torch.float64)
        self.means = nn.Parameter(ones.clone(), requires_grad=False)
        self.variances = nn.Parameter(ones.clone(), requires_grad=False)
        uniform = torch.full((n_components,), -math.log(n_components), dtype=torch.float64)
        self.log_weights = nn.Parameter(uniform, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return responsibilities(x.double(), self.means, self.variances, self.log_weights).float()


@METHODS.register()
class GMM(Method):
    """Gaussian mixture (diagonal, explicit EM): responsibilities as features."""

    name = "gmm"
    kind = "fit"
    citation = "Dempster, Laird & Rubin 1977, Maximum likelihood from incomplete data via the EM algorithm"
    Config = GMMConfig

    def __init__(self, cfg: GMMConfig, info: DataInfo, width: int):
        super().__init__(cfg, info, width)
        cfg.check()
        self.encoder = DiagGaussianMixture(width, info.input_dim)
        self.register_buffer("converged", torch.tensor(False))
        self.register_buffer("n_iter", torch.tensor(0))

    @torch.no_grad()
    def fit(self, x: torch.Tensor, y: torch.Tensor | None, seed: int) -> None:
        gm = GaussianMixture(
            n_components=self.width,
            covariance_type="diag",
            reg_covar=self.cfg.reg_covar,
            max_iter=self.cfg.max_iter,
            n_init=self.cfg.n_init,
            tol=self.cfg.tol,
            random_state=seed,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # recorded in ``converged`` instead
            gm.fit(x.detach().cpu().double().numpy())
        self.encoder.means.copy_(torch.as_tensor(gm.means_))
        self.encoder.variances.copy_(torch.as_tensor(gm.covariances_))
        self.encoder.log_weights.copy_(torch.as_tensor(gm.weights_).log())
        self.converged.fill_(bool(gm.converged_))
        self.n_iter.fill_(int(gm.n_iter_))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)
