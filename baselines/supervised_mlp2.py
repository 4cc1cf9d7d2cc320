"""Two-layer supervised MLP: ``Linear(D, 2K) + ReLU + Linear(2K, K) + ReLU + Linear(K, C)``.

Rumelhart, Hinton & Williams (1986), "Learning representations by back-propagating errors":
the conventional task-trained network, here two hidden layers (widths 2K then K) trained end to
end by backpropagation on the training labels with the cross-entropy loss
``-mean_i log softmax(V h2_i + c)_{y_i}``, ``h2 = relu(W2 relu(W1 x + b1) + b2)`` (Adam, lr 1e-3,
the shared trainer's batch). It is the "larger conventional model" of docs/protocol.md §8 P3: at the
same feature width K it holds ``2K (D + 1) + K (2K + 1)`` deployed floats, more than twice the
single-layer encoders' ``K (D + 1)``.

Deployed encoder ``self.encoder = Sequential(Linear(D, 2K), ReLU, Linear(2K, K))``; features are
``relu(self.encoder(x))`` (N, K). The classifier ``self.head = Linear(K, C)`` is training-only
(kept as an attribute, like ``supervised``'s, for protocols that evaluate the trained head).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from baselines.supervised import Supervised
from bench.train.methods import METHODS, MethodConfig


@dataclass(frozen=True)
class SupervisedMLP2Config(MethodConfig):
    """Adam, lr 1e-3, no weight decay (the shared :class:`MethodConfig` defaults)."""


@METHODS.register()
class SupervisedMLP2(Supervised):
    """Two-layer supervised MLP (hidden 2K then K ReLU units = features, linear head on labels)."""

    name = "supervised_mlp2"
    citation = "Rumelhart, Hinton & Williams 1986, Learning representations by back-propagating errors"
    Config = SupervisedMLP2Config

    @staticmethod
    def build_encoder(input_dim: int, width: int) -> nn.Module:
        """``Linear(D, 2K) + ReLU + Linear(2K, K)``: the features are this output's ReLU."""
        return nn.Sequential(nn.Linear(input_dim, 2 * width), nn.ReLU(), nn.Linear(2 * width, width))
