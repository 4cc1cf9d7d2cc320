"""Three-layer supervised MLP: ``Linear(D, K) + ReLU + Linear(K, K) + ReLU + Linear(K, K) + ReLU + Linear(K, C)``.

Rumelhart, Hinton & Williams (1986), "Learning representations by back-propagating errors": the
conventional task-trained network with three hidden layers of K units, trained end to end by
backpropagation on the training labels with the cross-entropy loss ``-mean_i log softmax(V h3_i + c)_{y_i}``
(Adam, lr 1e-3, the shared trainer's batch). The label oracle of the depth question
(docs/protocol.md §11.4): what three layers reach when they are told the classes.

Deployed encoder ``self.encoder = Sequential(Linear(D, K), ReLU, Linear(K, K), ReLU, Linear(K, K))``;
features ``relu(self.encoder(x))`` (N, K), the third layer's units; :meth:`SupervisedMLP3.layer_features`
gives the three layers' activations. The classifier ``self.head = Linear(K, C)`` is training-only
(kept, as :mod:`baselines.supervised`'s, for protocols that read the trained head). Unlisted
(``listed = False``): it runs only where a run or a question names it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from baselines._mlp3 import layer_features, mlp3
from baselines.supervised import Supervised
from bench.train.methods import METHODS, MethodConfig


@dataclass(frozen=True)
class SupervisedMLP3Config(MethodConfig):
    """Adam, lr 1e-3, no weight decay (the shared :class:`MethodConfig` defaults)."""


@METHODS.register()
class SupervisedMLP3(Supervised):
    """Three-layer supervised MLP (K ReLU units per layer; the third = features; linear head on labels)."""

    name = "supervised_mlp3"
    role = "reference"
    listed = False
    citation = "Rumelhart, Hinton & Williams 1986, Learning representations by back-propagating errors"
    Config = SupervisedMLP3Config
    batched = False  # seeds train one at a time

    @staticmethod
    def build_encoder(input_dim: int, width: int) -> nn.Module:
        """``Linear(D, K) + ReLU + Linear(K, K) + ReLU + Linear(K, K)``: the features are this output's ReLU."""
        return mlp3(input_dim, width)

    def layer_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The three hidden layers' ReLU activations of ``x`` (N, D), bottom up, in eval mode."""
        self.eval()
        return layer_features(self.encoder, x)
