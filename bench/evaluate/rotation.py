"""The rotation ladder of protocol 11.2b: a whitened code turned by ``expm(t S)``, so its probe accuracy and
Gaussian TC stay fixed while the dependence between its units changes with t (same information, different
independence; no training)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from bench.evaluate.similarity import Array, _as_features


def skew_symmetric(k: int, seed: int = 0) -> torch.Tensor:
    """Random (k, k) skew-symmetric ``S = (G - G^T)`` scaled to ``||S||_F = sqrt(k)`` (protocol §11.2b),
    float64 on the CPU, ``G`` standard normal from ``torch.Generator().manual_seed(seed)``.

    ``expm(t S)`` is then a rotation whose angles have a root-mean-square of ``t`` radians
    (the eigenvalues ``+-i theta_j`` of S satisfy ``2 sum theta_j^2 = ||S||_F^2 = k``)."""
    if k < 2:
        raise ValueError(f"k: a rotation needs at least 2 units, got {k}")
    g = torch.randn(k, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    s = g - g.T
    return s * (math.sqrt(k) / torch.linalg.matrix_norm(s))


def rotation_ladder(z: Array, ts: Sequence[float], seed: int = 0) -> list[torch.Tensor]:
    """Rotate a whitened code by ``R(t) = expm(t S)`` for each ``t`` (protocol §11.2b), S from :func:`skew_symmetric`.

    Row ``z_i`` becomes ``z_i R(t)`` (``torch.linalg.matrix_exp``, in float64, returned in ``z``'s
    dtype and device). ``R(t)`` is orthogonal, so a whitened code stays whitened: the probe accuracy
    and the Gaussian TC are fixed by construction, and only the higher-order dependence between
    units changes with t. ``t = 0`` returns ``z`` exactly. The same seed gives the same S for every t,
    so the ladder is one path ``R(t1) R(t2) = R(t1 + t2)``.

    Args:
        z: (n, K) code, whitened (covariance ~ identity) for the protocol's use. ts: the rungs.
    Returns:
        One (n, K) code per t, in the order of ``ts``.
    """
    zt = torch.as_tensor(z)
    x = _as_features("z", zt)
    s = skew_symmetric(x.shape[1], seed).to(x.device)
    return [(x @ torch.linalg.matrix_exp(float(t) * s)).to(zt.dtype) for t in ts]
