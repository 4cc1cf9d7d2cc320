"""Supervised MLP: the conventional task-trained model, ``Linear(D, K) + ReLU + Linear(K, C)``.

Rumelhart, Hinton & Williams (1986), "Learning representations by back-propagating errors":
one hidden layer trained end to end by backpropagation on the training labels with the
cross-entropy loss ``-mean_i log softmax(V relu(W x_i + b) + c)_{y_i}`` (Adam, lr 1e-3, the
shared trainer's batch). The deployed encoder is the hidden layer ``self.encoder = Linear(D, K)``;
features are its ReLU units ``relu(W x + b)`` (N, K), the same encoder family as the
single-layer unsupervised methods. The classifier ``self.head = Linear(K, C)`` is
training-only, but kept as an attribute: a pruning protocol can remove hidden units and
evaluate the trained head on the kept ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from baselines._stacked import stacked_module
from bench.train.methods import METHODS, DataInfo, Method, MethodConfig


@dataclass(frozen=True)
class SupervisedConfig(MethodConfig):
    """Adam, lr 1e-3, no weight decay (the shared :class:`MethodConfig` defaults)."""


@METHODS.register()
class Supervised(Method):
    """Supervised MLP (ReLU hidden layer = features, linear head on labels, cross-entropy)."""

    name = "supervised"
    citation = "Rumelhart, Hinton & Williams 1986, Learning representations by back-propagating errors"
    uses_labels = True
    Config = SupervisedConfig

    def __init__(self, cfg: SupervisedConfig, info: DataInfo, width: int):
        super().__init__(cfg, info, width)
        cfg.check()
        if info.n_classes is None:
            raise ValueError(f"{self.name}: {self.unsupported(info)}")
        self.encoder = self.build_encoder(info.input_dim, width)
        self.head = nn.Linear(width, info.n_classes)

    @staticmethod
    def build_encoder(input_dim: int, width: int) -> nn.Module:
        """The deployed encoder whose ReLU'd output (N, K) is the features: one ``Linear(D, K)``."""
        return nn.Linear(input_dim, width)

    @classmethod
    def unsupported(cls, info: DataInfo) -> str | None:
        return None if info.n_classes is not None else "needs class labels (the data has none)"

    def classifier(self) -> nn.Module:
        return self.head

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.encoder(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores of the trained head on the ReLU features, (N, D) -> (N, C)."""
        return self.head(self.encode(x))

    def loss_terms(self, x, y=None):
        if y is None:
            raise ValueError(f"{self.name}: loss_terms needs labels y")
        return {"ce": cross_entropy(self.logits(x), y)}

    # seeds trained together (bench.train.seedbatch): the same network and loss on stacked weights. On: 1.2-1.3x
    # at mnist5k, K = 64, S = 3 and 10 on one CPU thread (benchmarks/seedbatch_speed.py); supervised_mlp2
    # inherits it (1.02-1.10x there, 2.1x on digits)
    batched = True

    def loss_terms_batched(self, p, b, x, y, rng):
        if y is None:
            raise ValueError(f"{self.name}: loss_terms needs labels y")
        a = torch.relu(stacked_module(self.encoder, "encoder", p, x))
        return {"ce": cross_entropy(stacked_module(self.head, "head", p, a), y)}


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``F.cross_entropy`` (mean over the batch) of logits (B, C) and labels (B,); for S seeds, (S, B, C)
    and (S, B) give the S per-seed values (one call per seed: its batch mean sums in its own order)."""
    if logits.dim() == 2:
        return F.cross_entropy(logits, y)
    return torch.stack([F.cross_entropy(lg, t) for lg, t in zip(logits, y, strict=True)])
