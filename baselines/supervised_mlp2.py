"""Two-layer supervised MLP: ``Linear(D, 2K) + ReLU + Linear(2K, K) + ReLU + Linear(K, C)``.

Rumelhart, Hinton & Williams (1986), "Learning representations by back-propagating errors":
the conventional task-trained network, here two hidden layers (widths 2K then K) trained end to
end by backpropagation on the training labels with the cross-entropy loss
``-mean_i log softmax(V h2_i + c)_{y_i}``, ``h2 = relu(W2 relu(W1 x + b1) + b2)`` (Adam, lr 1e-3,
the shared trainer's batch). It is the "larger conventional model" of PROTOCOL.md §8 P3: at the
same feature width K it holds ``2K (D + 1) + K (2K + 1)`` deployed floats, more than twice the
single-layer encoders' ``K (D + 1)``.

Deployed encoder ``self.encoder = Sequential(Linear(D, 2K), ReLU, Linear(2K, K))``; features are
``relu(self.encoder(x))`` (N, K). The classifier ``self.head = Linear(K, C)`` is training-only
(kept as an attribute, like ``supervised``'s, for protocols that evaluate the trained head).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bench.methods import METHODS, DataInfo, Method, MethodConfig


@dataclass(frozen=True)
class SupervisedMLP2Config(MethodConfig):
    """Adam, lr 1e-3, no weight decay (the shared :class:`MethodConfig` defaults)."""


@METHODS.register()
class SupervisedMLP2(Method):
    """Two-layer supervised MLP (hidden 2K then K ReLU units = features, linear head on labels)."""

    name = "supervised_mlp2"
    citation = "Rumelhart, Hinton & Williams 1986, Learning representations by back-propagating errors"
    uses_labels = True
    Config = SupervisedMLP2Config

    def __init__(self, cfg: SupervisedMLP2Config, info: DataInfo, width: int):
        super().__init__(cfg, info, width)
        cfg.check()
        if info.n_classes is None:
            raise ValueError(f"supervised_mlp2: {self.unsupported(info)}")
        self.encoder = nn.Sequential(nn.Linear(info.input_dim, 2 * width), nn.ReLU(), nn.Linear(2 * width, width))
        self.head = nn.Linear(width, info.n_classes)

    @classmethod
    def unsupported(cls, info: DataInfo) -> str | None:
        return None if info.n_classes is not None else "needs class labels (the data has none)"

    def classifier(self) -> nn.Module:
        return self.head

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.encoder(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores of the trained head on the K ReLU features, (N, D) -> (N, C)."""
        return self.head(self.encode(x))

    def loss_terms(self, x, y=None):
        if y is None:
            raise ValueError("supervised_mlp2: loss_terms needs labels y")
        return {"ce": F.cross_entropy(self.logits(x), y)}
