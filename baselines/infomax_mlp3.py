"""End-to-end InfoMax on the top of a three-layer MLP: the subject's loss through a deep encoder.

``h1 = relu(W1 x + b1)``, ``h2 = relu(W2 h1 + b2)``, ``a = relu(W3 h2 + b3)`` (every layer K wide);
the subject's loss (docs/protocol.md §4: ``LSE + 1.0 H + 1.0 TC``, the terms of
:mod:`bench.train.losses` through :meth:`bench.train.subject.InfoMax.terms`, the subject's own
config and weights) on the top layer's activations ``a`` only, backpropagated through all three
layers by the shared trainer (Adam, lr 1e-3, the run's batch). Source: the essay "InfoMax vs.
Pretraining Prior Art" ("Maximize H(z_j) per output, minimize TC(z) across outputs", softmax
responsibilities as the mechanism), here as the end-to-end reference of the depth question
(docs/protocol.md §11.4) beside the greedy stack :mod:`baselines.stack`.

Deployed encoder ``self.encoder = Sequential(Linear(D, K), ReLU, Linear(K, K), ReLU, Linear(K, K))``;
features ``relu(self.encoder(x))`` (N, K); :meth:`InfoMaxMLP3.layer_features` gives the three
layers' activations. Unlisted (``listed = False``): it runs only where a run or a question names it.
"""

from __future__ import annotations

import torch

from baselines._mlp3 import layer_features, mlp3
from bench.train.methods import METHODS, DataInfo, Method
from bench.train.subject import InfoMaxConfig, _InfoMaxBase


@METHODS.register()
class InfoMaxMLP3(_InfoMaxBase):
    """InfoMax + implicit EM on the top of a 3-layer ReLU MLP, trained end to end (K units per layer)."""

    name = "infomax_mlp3"
    role = "reference"
    listed = False
    citation = "InfoMax + implicit EM essay ('InfoMax vs. Pretraining Prior Art'), end to end through 3 layers"
    Config = InfoMaxConfig
    batched = False  # seeds train one at a time: the stacked step of the single layer does not apply

    def __init__(self, cfg: InfoMaxConfig, info: DataInfo, width: int):
        Method.__init__(self, cfg, info, width)  # not the single layer's __init__: no Linear(D, K) drawn and dropped
        cfg.check()
        self.encoder = mlp3(info.input_dim, width)

    def layer_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The three layers' ReLU activations of ``x`` (N, D), bottom up, in eval mode."""
        self.eval()
        return layer_features(self.encoder, x)
