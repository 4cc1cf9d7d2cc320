"""The subject's loss terms as pure functions of a minibatch of activations.

All take ``a``: (B, K) activations of one minibatch and return a scalar tensor; given (S, B, K), the
minibatches of S seeds trained together (:mod:`bench.train.seedbatch`), they return the S per-seed values,
each bit-identical to the scalar of its own (B, K) slice (batch over dim -2, units over dim -1).
Reference: the essay "InfoMax vs. Pretraining Prior Art" ("InfoMax vs. Pretraining Prior Art") and docs/protocol.md §4.
"""

from __future__ import annotations

import torch


def entropy_term(a: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Gaussian marginal-entropy proxy, to be minimised.

    ``H = -sum_j log(Var(a_j) + eps)`` with the (biased) variance over the batch. The
    Gaussian entropy of unit j is 1/2 log(2 pi e Var(a_j)), so minimising H maximises every
    unit's entropy and keeps every unit alive. Unbounded below: it rewards ever larger
    activations, which the suite records (activation scale) rather than hides.
    """
    return -torch.log(a.var(dim=-2, unbiased=False) + eps).sum(-1)


def correlation(a: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(K, K) Pearson correlation of the columns of ``a`` (B, K), eps-stabilised ((S, K, K) for (S, B, K))."""
    c = a - a.mean(dim=-2, keepdim=True)
    cov = c.mT @ c / a.shape[-2]
    sd = torch.sqrt(torch.diagonal(cov, dim1=-2, dim2=-1) + eps)
    return cov / (sd.unsqueeze(-1) * sd.unsqueeze(-2))


def tc_term(a: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Decorrelation proxy of total correlation: ``TC = sum_{j != k} Corr(A)_{jk}^2``."""
    r = correlation(a, eps)
    return (r**2).sum((-2, -1)) - (torch.diagonal(r, dim1=-2, dim2=-1) ** 2).sum(-1)


def tc_logdet_term(a: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Gaussian total correlation ``TC = -1/2 log det Corr(A)`` (>= 0, 0 iff uncorrelated)."""
    r = correlation(a, eps)
    k = r.shape[-1]
    return -0.5 * torch.logdet(r + 1e-4 * torch.eye(k, dtype=r.dtype, device=r.device))


def lse_term(a: torch.Tensor) -> torch.Tensor:
    """Implicit-EM term ``LSE = -sum_batch logsumexp_j(-a_j)``.

    Its gradient w.r.t. ``a_j`` of each input is exactly the responsibility
    ``r_j = softmax(-a)_j``: gradient descent on it is a responsibility-weighted (E-step
    weighted) update of every unit, the implicit-EM identity. Summed (not averaged) over the
    batch, as docs/protocol.md §4 states it, so the identity holds per input.
    """
    return -torch.logsumexp(-a, dim=-1).sum(-1)


TC_TERMS = {"corr": tc_term, "logdet": tc_logdet_term}
