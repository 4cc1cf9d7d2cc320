"""FastICA: the classical InfoMax-ICA family member, as a linear encoder.

Hyvarinen & Oja (2000), "Independent component analysis: algorithms and applications",
Neural Networks 13; fitted with scikit-learn's ``FastICA`` (parallel fixed-point iteration,
``fun="logcosh"``, ``whiten="unit-variance"``, ``max_iter`` [400], ``random_state = seed``).
After whitening, it finds W with independent, unit-variance sources ``s = W (x - mu)``;
under the InfoMax principle (Bell & Sejnowski 1995) maximising output entropy through a
fixed sigmoid is the same estimator.

The deployed encoder is ``Linear(D, K)`` holding the unmixing matrix and the offset,
``weight = components_`` (K, D), ``bias = -components_ @ mean_``, so features are the source
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

from bench.methods import METHODS, DataInfo, Method


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
    """FastICA (scikit-learn, unit-variance whitening; linear encoder = unmixing matrix)."""

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
        xd = x.detach().double()
        k = min(self.width, int(torch.linalg.matrix_rank(xd - xd.mean(0))))
        ica = SkFastICA(
            n_components=k,
            whiten="unit-variance",
            fun=self.cfg.fun,
            max_iter=self.cfg.max_iter,
            tol=self.cfg.tol,
            random_state=seed,
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            ica.fit(xd.cpu().numpy())
        not_converged = any(issubclass(w.category, ConvergenceWarning) for w in caught)
        for w in caught:  # anything other than non-convergence is still shown
            if not issubclass(w.category, ConvergenceWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        w_full, b_full = np.zeros((self.width, d)), np.zeros(self.width)
        w_full[:k] = ica.components_
        b_full[:k] = -ica.components_ @ ica.mean_
        self.encoder.weight.copy_(torch.as_tensor(w_full))
        self.encoder.bias.copy_(torch.as_tensor(b_full))
        self.converged.fill_(not not_converged)
        self.n_iter.fill_(int(ica.n_iter_))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)
