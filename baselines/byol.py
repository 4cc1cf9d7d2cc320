"""BYOL: an online network predicts a slow-moving (EMA) target network's projection of another view.

Grill, J.-B., Strub, F., Altche, F., et al. (2020). Bootstrap Your Own Latent: A New Approach
to Self-Supervised Learning. NeurIPS. arXiv:2006.07733.

Deployed: the online encoder ``h = ReLU(Linear(D, K) x)``, exactly the subject's
(:mod:`bench.train.twoview`'s shared body). Training-only: the online projector and predictor
(``Linear - BN - ReLU - Linear`` each, the paper's), and the target encoder + projector (an
exponential moving average of the online ones, never trained by gradients:
``requires_grad=False``, updated in :meth:`BYOL.after_step` as
``xi <- tau xi + (1 - tau) theta``). Loss: the symmetrised
``byol_loss(q(z1), z2') + byol_loss(q(z2), z1')``, target projections ``z'`` under no_grad.
Defaults:

* tau = 0.99, constant. The paper uses tau_base 0.996 raised to 1 by a cosine schedule over
  training; a method here does not know its total step count (the shared trainer owns the
  loop), and a quick run is only 300-1100 steps, so the faster constant 0.99 (time constant
  100 steps; the paper's ablation of tau_base in section 5 finds 0.99 nearly as good as
  0.996) is used;
* projection 128 and hidden width 512 instead of 256 and 4096 (the encoder has K = 16-256
  features here, not 2048); Adam lr 1e-3 (the suite's optimiser) instead of LARS;
  views from :mod:`bench.train.augment`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bench.train import stacked_nn
from bench.train.augment import AugmentConfig
from bench.train.methods import METHODS
from bench.train.twoview import TwoViewMethod, mlp_head


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BYOL's regression loss, Grill et al. 2020, eq. 2: ``mean_i 2 - 2 cos(p_i, z_i)``.

    Equal to the squared distance of the l2-normalised vectors, ``||p/|p| - z/|z|||^2``.

    Args:
        p: (N, d) online predictions; z: (N, d) target projections (the caller detaches them);
            or (S, N, d) each for S seeds, giving (S,) losses.
    """
    return (2 - 2 * F.cosine_similarity(p, z, dim=-1)).mean(-1)


@torch.no_grad()
def ema_(target: nn.Module, online: nn.Module, tau: float) -> None:
    """In place ``xi <- tau xi + (1 - tau) theta`` for every parameter of ``target``."""
    stacked_nn.ema_(list(target.parameters()), list(online.parameters()), tau)


@dataclass(frozen=True)
class BYOLConfig(AugmentConfig):
    tau: float = 0.99
    proj_hidden: int = 512
    proj_dim: int = 128
    pred_hidden: int = 512

    def check(self) -> None:
        super().check()
        if not 0 <= self.tau < 1:
            raise ValueError(f"tau: must be in [0, 1), got {self.tau}")
        for key in ("proj_hidden", "proj_dim", "pred_hidden"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}: must be >= 1, got {getattr(self, key)}")


@METHODS.register()
class BYOL(TwoViewMethod):
    """BYOL (predictor MLP, EMA target tau=0.99, symmetric loss)."""

    name = "byol"
    citation = "Grill et al. 2020, Bootstrap Your Own Latent (NeurIPS)"
    Config = BYOLConfig

    def __init__(self, cfg: BYOLConfig, info, width):
        super().__init__(cfg, info, width)
        self.predictor = mlp_head(cfg.proj_dim, cfg.pred_hidden, cfg.proj_dim)
        self.target_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
        self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)

    def pair_loss(self, x1, x2, st=None):
        p1 = self.run("predictor", self.project(x1, st), st)
        p2 = self.run("predictor", self.project(x2, st), st)
        with torch.no_grad():
            t1 = self.run("target_projector", torch.relu(self.run("target_encoder", x1, st)), st)
            t2 = self.run("target_projector", torch.relu(self.run("target_encoder", x2, st)), st)
        return {"byol": byol_loss(p1, t2) + byol_loss(p2, t1)}

    def after_step(self) -> None:
        ema_(self.target_encoder, self.encoder, self.cfg.tau)
        ema_(self.target_projector, self.projector, self.cfg.tau)

    def after_step_batched(self, p, b, rng) -> None:
        targets = [n for n in p if n.startswith(("target_encoder.", "target_projector."))]
        stacked_nn.ema_([p[n] for n in targets], [p[n[len("target_") :]] for n in targets], self.cfg.tau)
