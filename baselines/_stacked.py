"""Small stacked-seed helpers for the baselines (a candidate for :mod:`bench.train.seedbatch`).

:func:`stacked_module` runs an ``nn.Linear`` or an ``nn.Sequential`` of ``Linear`` / ``ReLU`` /
``Tanh`` layers for S seeds at once, from the stacked parameters ``p`` (name -> (S, ...)) of
:class:`bench.train.seedbatch.Stacked`: each seed's slice is bit-identical to the module on that slice
(``addmm`` <-> ``baddbmm``).
"""

from __future__ import annotations

import torch
from torch import nn

from bench.train.seedbatch import stacked_linear

_ACTIVATIONS = {nn.ReLU: torch.relu, nn.Tanh: torch.tanh, nn.Sigmoid: torch.sigmoid}


def stacked_module(module: nn.Module, prefix: str, p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``module`` (named ``prefix`` in the method) applied to x (S, B, D) with the S seeds' parameters ``p``."""
    if isinstance(module, nn.Linear):
        return stacked_linear(x, p[f"{prefix}.weight"], p.get(f"{prefix}.bias"))
    if isinstance(module, nn.Sequential):
        for i, layer in enumerate(module):
            x = stacked_module(layer, f"{prefix}.{i}", p, x)
        return x
    for cls, fn in _ACTIVATIONS.items():
        if type(module) is cls:
            return fn(x)
    raise TypeError(f"no stacked form for {type(module).__name__} ({prefix})")
