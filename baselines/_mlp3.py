"""The 3-layer MLP body the open questions' depth references share (``infomax_mlp3``, ``supervised_mlp3``):
``Linear(D, K) + ReLU + Linear(K, K) + ReLU + Linear(K, K)``, and every layer's ReLU activations."""

from __future__ import annotations

import torch
from torch import nn

LAYERS = (0, 2, 4)  # the Linear modules of the body, bottom up


def mlp3(input_dim: int, width: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(input_dim, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width)
    )


def layer_features(body: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    """The three layers' ReLU activations of ``x`` (N, D), bottom up (the caller sets eval mode)."""
    out, h = [], x
    with torch.no_grad():
        for i in LAYERS:
            h = torch.relu(body[i](h))
            out.append(h)
    return out
