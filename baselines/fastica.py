"""FastICA: the classical InfoMax-ICA family member, as a linear encoder.

Hyvarinen & Oja (2000), "Independent component analysis: algorithms and applications",
Neural Networks 13. The inputs are whitened here (PCA to unit variance, below), then
scikit-learn's ``FastICA(whiten=False)`` (parallel fixed-point iteration, ``fun="logcosh"``,
``max_iter`` [400], ``random_state = seed``) finds the rotation that makes the whitened
components independent; the sources are ``s = R V (x - mu)``, unit variance and uncorrelated on
train. Under the InfoMax principle (Bell & Sejnowski 1995) maximising output entropy through a
fixed sigmoid is the same estimator.

Whitening in the project, not in scikit-learn: scikit-learn's own whitening fixes each
principal axis' sign by ``sign(u[0])``, the loading of the first input column. On image data
that column is a constant border pixel, its loading is 0, and ``sign(0) = 0`` zeroes whole rows
of the whitening matrix: on ``digits`` at K = 32 the "independent" components had rank 31 and
a largest |off-diagonal corr| of 0.76, and four of the 64 directions were lost on ``mnist5k``.
Here ``V`` keeps the top ``n_components`` right singular vectors of the centred train inputs
whose singular value is above the rank tolerance (constant columns have zero loadings in them
and cannot break anything), scaled by ``sqrt(N) / s_i``.

The deployed encoder is ``Linear(D, K)`` holding the unmixing matrix and the offset,
``weight = R V`` (K, D), ``bias = -R V mu``, so features are the source
estimates (linear, no activation) and magnitude-based pruning applies as to any linear encoder.
Its parameters are frozen (``requires_grad = False``); they are still parameters, so they are
counted and cached.

Width: FastICA cannot extract more components than the centred data's rank (at most
``min(D, N - 1)``; ``digits`` has rank 61 < D = 64, its border pixels being constant), since
whitening divides by the singular values; ``n_components = min(K, rank)`` and the remaining
``K - n_components`` rows stay zero (dead, constant-zero features), as in ``pca``.

Convergence: a ``ConvergenceWarning`` (``max_iter`` reached) is caught, not printed; the
buffers ``converged`` and ``n_iter`` record it, and are cached with the state dict.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.decomposition import FastICA as SkFastICA
from sklearn.exceptions import ConvergenceWarning
from torch import nn

from bench.train.methods import METHODS, DataInfo, Method


@dataclass(frozen=True)
class FastICAConfig:
    max_iter: int = 400
    tol: float = 1e-4  # scikit-learn's default
    fun: str = "logcosh"  # contrast G: "logcosh" | "exp" | "cube"

    def check(self) -> None:
        if self.max_iter < 1:
            raise ValueError(f"max_iter: must be >= 1, got {self.max_iter}")
        if self.tol <= 0:
            raise ValueError(f"tol: must be > 0, got {self.tol}")
        if self.fun not in ("logcosh", "exp", "cube"):
            raise ValueError(f"fun: unknown '{self.fun}' (choices: logcosh, exp, cube)")


@METHODS.register()
class FastICA(Method):
    """FastICA (PCA whitening in the project, then scikit-learn's fixed-point rotation; linear encoder = unmixing matrix)."""

    name = "fastica"
    kind = "fit"
    citation = "Hyvarinen & Oja 2000, Independent component analysis: algorithms and applications"
    Config = FastICAConfig

    def __init__(self, cfg: FastICAConfig, info: DataInfo, width: int):
        super().__init__(cfg, info, width)
        cfg.check()
        self.encoder = nn.Linear(info.input_dim, width)
        self.encoder.requires_grad_(False)
        self.register_buffer("converged", torch.tensor(False))
        self.register_buffer("n_iter", torch.tensor(0))

    @torch.no_grad()
    def fit(self, x: torch.Tensor, y: torch.Tensor | None, seed: int) -> None:
        d = x.shape[1]
        mean, whitener = pca_whitener(x.detach().double().cpu(), self.width)
        k = whitener.shape[0]
        z = ((x.detach().double().cpu() - mean) @ whitener.T).numpy()
        ica = SkFastICA(
            whiten=False,  # z is white already: FastICA only rotates it
            fun=self.cfg.fun,
            max_iter=self.cfg.max_iter,
            tol=self.cfg.tol,
            random_state=seed,
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            ica.fit(z)
        not_converged = any(issubclass(w.category, ConvergenceWarning) for w in caught)
        for w in caught:  # anything other than non-convergence is still shown
            if not issubclass(w.category, ConvergenceWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        w_full, b_full = np.zeros((self.width, d)), np.zeros(self.width)
        unmix = ica.components_ @ whitener.numpy()  # (k, D): rotation after whitening
        w_full[:k] = unmix
        b_full[:k] = -unmix @ mean.numpy()
        self.encoder.weight.copy_(torch.as_tensor(w_full))
        self.encoder.bias.copy_(torch.as_tensor(b_full))
        self.converged.fill_(not not_converged)
        self.n_iter.fill_(int(ica.n_iter_))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)


def pca_whitener(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Train mean (D,) and PCA whitening matrix (k', D), k' = min(k, rank of the centred x).

    ``V_i = sqrt(N) / s_i * v_i`` for the right singular vectors ``v_i`` of the centred inputs
    (N, D) with singular value ``s_i`` above ``max(N, D) * eps * s_max`` (numpy's rank
    tolerance), so ``(x - mean) @ V.T`` has identity covariance (1/N). The sign of each ``v_i``
    is fixed by its largest-magnitude loading (never by one column's loading, which is 0 for a
    constant pixel).
    """
    mean = x.mean(0)
    _, s, vt = torch.linalg.svd(x - mean, full_matrices=False)
    tol = max(x.shape) * torch.finfo(s.dtype).eps * float(s.max()) if len(s) else 0.0
    k = min(k, int((s > tol).sum()))
    v = vt[:k]
    v = v * torch.sign(v.gather(1, v.abs().argmax(1, keepdim=True)))
    return mean, v * (x.shape[0] ** 0.5 / s[:k])[:, None]
