"""SwAV: swapped prediction of online cluster assignments (Sinkhorn-Knopp codes) between two views.

Caron, M., Misra, I., Mairal, J., Goyal, P., Bojanowski, P., Joulin, A. (2020). Unsupervised
Learning of Visual Features by Contrasting Cluster Assignments. NeurIPS. arXiv:2006.09882.

Deployed: ``h = ReLU(Linear(D, K) x)``, exactly the subject's encoder (:mod:`bench.train.twoview`'s
shared body). Training-only: the projection head ``Linear - BN - ReLU - Linear`` (the paper's)
and the prototypes ``C`` (P unit vectors, re-normalised after every step in
:meth:`SwAV.after_step`, as the paper's code does). Each view's l2-normalised projection ``z``
is scored against the prototypes, ``scores = z C^T``; codes ``q = sinkhorn(scores, eps, iters)``
of one view are the targets of the other view's ``softmax(scores / T)`` (:func:`swav_loss`).
Defaults:

* eps 0.05, 3 Sinkhorn-Knopp iterations, temperature 0.1, projection 128 (the paper's);
* 100 prototypes instead of 3000: the paper's 3000 serve ImageNet's 1000 classes at batch 4096;
  at batch 128 without a queue, the equal-partition constraint of Sinkhorn spreads each batch
  over the prototypes, which is meaningful only with fewer prototypes than batch rows (still an
  order of magnitude more than the 10 classes of the embedded datasets);
* omitted: multi-crop (extra low-resolution crops; at 8x8 and 28x28 there is no resolution to
  spare), the feature queue (the paper adds it only for small batches over long schedules) and
  the first-epoch freezing of the prototypes;
* projection hidden width 512 instead of 2048 (the encoder has K = 16-256 features here); Adam
  lr 1e-3 (the suite's optimiser) instead of LARS; views from :mod:`bench.train.augment`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bench.train.augment import AugmentConfig
from bench.train.methods import METHODS
from bench.train.twoview import TwoViewMethod


@torch.no_grad()
def sinkhorn(scores: torch.Tensor, eps: float, iters: int) -> torch.Tensor:
    """Sinkhorn-Knopp codes, Caron et al. 2020, eq. 3 and Algorithm 1 (``distributed_sinkhorn``).

    Starts from ``Q = exp(scores / eps)^T`` (P, B), normalised to sum 1, then ``iters`` times
    rescales its rows to sum ``1/P`` (each prototype gets an equal share of the batch) and its
    columns to sum ``1/B``; returned times B, so every row of the (B, P) result sums to 1 and
    every prototype's column sums to about ``B / P``.

    Args:
        scores: (B, P) prototype scores ``z . c`` of one view (no gradient is taken); (S, B, P) for
            S seeds, each normalised on its own.
        eps: entropy regularisation epsilon > 0.
        iters: number of row/column normalisation rounds.
    """
    q = torch.exp((scores - scores.amax((-2, -1), keepdim=True)) / eps).mT
    p, b = q.shape[-2:]
    q = q / q.sum((-2, -1), keepdim=True)
    for _ in range(iters):
        q = q / q.sum(dim=-1, keepdim=True) / p
        q = q / q.sum(dim=-2, keepdim=True) / b
    return (q * b).mT


def swav_loss(
    scores1: torch.Tensor, scores2: torch.Tensor, temperature: float = 0.1, eps: float = 0.05, iters: int = 3
) -> torch.Tensor:
    """SwAV's swapped prediction loss, Caron et al. 2020, eq. 1-2.

    ``L = 1/2 mean_b [ l(q2_b, s1_b) + l(q1_b, s2_b) ]``, ``l(q, s) = -sum_p q_p log softmax(s / T)_p``,
    with codes ``q_v = sinkhorn(scores_v, eps, iters)`` computed without gradient.

    Args:
        scores1, scores2: (B, P) scores of the two views against the normalised prototypes, or
            (S, B, P) for S seeds, giving (S,) losses.
    """
    q1, q2 = sinkhorn(scores1.detach(), eps, iters), sinkhorn(scores2.detach(), eps, iters)
    l12 = -(q1 * F.log_softmax(scores2 / temperature, dim=-1)).sum(-1).mean(-1)
    l21 = -(q2 * F.log_softmax(scores1 / temperature, dim=-1)).sum(-1).mean(-1)
    return 0.5 * (l12 + l21)


@dataclass(frozen=True)
class SwAVConfig(AugmentConfig):
    temperature: float = 0.1
    sinkhorn_eps: float = 0.05
    sinkhorn_iters: int = 3
    n_prototypes: int = 100
    proj_hidden: int = 512
    proj_dim: int = 128

    def check(self) -> None:
        super().check()
        for key in ("temperature", "sinkhorn_eps"):
            if getattr(self, key) <= 0:
                raise ValueError(f"{key}: must be > 0, got {getattr(self, key)}")
        for key in ("sinkhorn_iters", "n_prototypes", "proj_hidden", "proj_dim"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}: must be >= 1, got {getattr(self, key)}")


@METHODS.register()
class SwAV(TwoViewMethod):
    """SwAV (100 normalised prototypes, Sinkhorn eps 0.05 x3, temperature 0.1; no multi-crop)."""

    name = "swav"
    citation = (
        "Caron et al. 2020, Unsupervised Learning of Visual Features by Contrasting Cluster Assignments (NeurIPS)"
    )
    Config = SwAVConfig

    def __init__(self, cfg: SwAVConfig, info, width):
        super().__init__(cfg, info, width)
        self.prototypes = nn.Linear(cfg.proj_dim, cfg.n_prototypes, bias=False)
        self._normalize_prototypes()

    @torch.no_grad()
    def _normalize_prototypes(self, w: torch.Tensor | None = None) -> None:
        """Each prototype (row of ``w``: (P, d), or (S, P, d) stacked; default the module's) to unit length."""
        w = self.prototypes.weight if w is None else w
        w.copy_(F.normalize(w, dim=-1))

    def pair_loss(self, x1, x2, st=None):
        s1 = self.run("prototypes", F.normalize(self.project(x1, st), dim=-1), st)
        s2 = self.run("prototypes", F.normalize(self.project(x2, st), dim=-1), st)
        c = self.cfg
        return {"swav": swav_loss(s1, s2, c.temperature, c.sinkhorn_eps, c.sinkhorn_iters)}

    def after_step(self) -> None:
        self._normalize_prototypes()

    def after_step_batched(self, p, b, rng) -> None:
        self._normalize_prototypes(p["prototypes.weight"])
