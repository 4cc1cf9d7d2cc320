"""Reference: the raw inputs as features (identity encoder, K = D)."""

from __future__ import annotations

import torch
from torch import nn

from bench.train.methods import METHODS, Method, NoConfig


@METHODS.register()
class Raw(Method):
    """Raw inputs (identity encoder; its width is the input dimension)."""

    name = "raw"
    role = "reference"
    kind = "none"
    citation = "reference point; no training"
    Config = NoConfig

    @classmethod
    def resolve_width(cls, info, width):
        return info.input_dim

    def __init__(self, cfg, info, width):
        super().__init__(cfg, info, info.input_dim)
        self.encoder = nn.Identity()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x
