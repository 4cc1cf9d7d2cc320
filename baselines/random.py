"""Reference: an untrained ``Linear(D, K) + ReLU`` encoder (PyTorch's default init)."""

from __future__ import annotations

import torch
from torch import nn

from bench.train.methods import METHODS, Method, NoConfig


@METHODS.register()
class Random(Method):
    """Random features: untrained Linear + ReLU (the floor every method must beat)."""

    name = "random"
    role = "reference"
    kind = "none"
    citation = "random-features reference (Rahimi & Recht 2007); nn.Linear default init"
    Config = NoConfig

    def __init__(self, cfg, info, width):
        super().__init__(cfg, info, width)
        self.encoder = nn.Linear(info.input_dim, width)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.encoder(x))
