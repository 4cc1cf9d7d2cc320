"""The subject: InfoMax + implicit EM on a single linear layer, and its ablations.

``z = W x + b``, ``a = act(z)``; the losses are batch statistics of the minibatch's
activations (docs/protocol.md §4, :mod:`bench.train.losses`):

=================  ==================  ==================================  ==========
name               activation          loss                                role
=================  ==================  ==================================  ==========
infomax            ReLU                LSE + 1.0 H + 1.0 TC                subject
infomax_softmax    ReLU, then softmax  H + lambda_tc TC (on the softmax)   ablation
infomax_noem       ReLU                H + TC                              ablation
lse_only           ReLU                LSE                                 ablation
=================  ==================  ==================================  ==========

Source: the essay "InfoMax vs. Pretraining Prior Art" ("InfoMax vs. Pretraining Prior Art"): "Maximize H(z_j)
per output, minimize TC(z) across outputs" with softmax responsibilities as the mechanism.
Optimiser: Adam, lr 1e-3, batch 128 (the run's batch size).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bench.train import losses
from bench.train.methods import METHODS, DataInfo, Method, MethodConfig
from bench.train.seedbatch import stacked_linear


@dataclass(frozen=True)
class InfoMaxConfig(MethodConfig):
    lambda_lse: float = 1.0
    lambda_h: float = 1.0
    lambda_tc: float = 1.0
    tc: str = "corr"  # "corr" (sum of squared off-diagonal correlations) | "logdet"
    eps: float = 1e-6

    def check(self) -> None:
        super().check()
        if self.tc not in losses.TC_TERMS:
            raise ValueError(f"tc: unknown '{self.tc}' (choices: {', '.join(sorted(losses.TC_TERMS))})")
        if self.eps <= 0:
            raise ValueError(f"eps: must be > 0, got {self.eps}")


class _InfoMaxBase(Method):
    """Shared body: a single ``Linear(D, K)`` encoder and the weighted InfoMax terms."""

    role = "ablation"
    citation = "InfoMax + implicit EM essay ('InfoMax vs. Pretraining Prior Art'); docs/protocol.md §4"
    Config = InfoMaxConfig

    def __init__(self, cfg: InfoMaxConfig, info: DataInfo, width: int):
        super().__init__(cfg, info, width)
        cfg.check()
        self.encoder = nn.Linear(info.input_dim, width)

    batched = True

    def activate(self, z: torch.Tensor) -> torch.Tensor:
        """The units' activation of pre-activations ``z`` (..., K)."""
        return torch.relu(z)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.encoder(x))

    def loss_terms(self, x, y=None):
        return self.terms(self.encode(x))

    def loss_terms_batched(self, p, b, x, y, rng):
        return self.terms(self.activate(stacked_linear(x, p["encoder.weight"], p["encoder.bias"])))

    def terms(self, a: torch.Tensor) -> dict[str, torch.Tensor]:
        """The weighted loss terms of activations ``a``: (B, K), or (S, B, K) for S seeds."""
        c = self.cfg
        terms = {}
        if c.lambda_lse:
            terms["lse"] = c.lambda_lse * losses.lse_term(a)
        if c.lambda_h:
            terms["entropy"] = c.lambda_h * losses.entropy_term(a, c.eps)
        if c.lambda_tc:
            terms["tc"] = c.lambda_tc * losses.TC_TERMS[c.tc](a, c.eps)
        return terms


@METHODS.register()
class InfoMax(_InfoMaxBase):
    """InfoMax + implicit EM (the subject): ReLU units, loss LSE + H + TC."""

    name = "infomax"
    role = "subject"


@dataclass(frozen=True)
class InfoMaxNoEMConfig(InfoMaxConfig):
    lambda_lse: float = 0.0


@METHODS.register()
class InfoMaxNoEM(_InfoMaxBase):
    """Ablation: InfoMax without the EM term (loss H + TC)."""

    name = "infomax_noem"
    Config = InfoMaxNoEMConfig


@dataclass(frozen=True)
class LSEOnlyConfig(InfoMaxConfig):
    lambda_h: float = 0.0
    lambda_tc: float = 0.0


@METHODS.register()
class LSEOnly(_InfoMaxBase):
    """Ablation: EM without InfoMax (loss LSE only; expected to collapse)."""

    name = "lse_only"
    Config = LSEOnlyConfig


@dataclass(frozen=True)
class InfoMaxSoftmaxConfig(InfoMaxConfig):
    lambda_lse: float = 0.0
    lambda_tc: float = 0.0


@METHODS.register()
class InfoMaxSoftmax(_InfoMaxBase):
    """Ablation: competition inside the layer (softmax of ReLU units), loss H + lambda_tc TC."""

    name = "infomax_softmax"
    Config = InfoMaxSoftmaxConfig

    def activate(self, z: torch.Tensor) -> torch.Tensor:
        return torch.softmax(torch.relu(z), dim=-1)
