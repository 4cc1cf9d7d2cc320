"""The small base of the two-view self-supervised baselines and their MLP head.

``simclr``, ``moco``, ``byol``, ``swav``, ``barlow_twins`` and ``vicreg`` share one body:

* the deployed encoder ``h = ReLU(Linear(D, K) x)`` (attribute ``encoder``), exactly the subject's;
* a training-only projector (attribute ``projector``) built by :func:`mlp_head` from the config's
  ``proj_hidden`` and ``proj_dim``, with :attr:`TwoViewMethod.proj_layers` hidden blocks and
  batch norm when :attr:`TwoViewMethod.proj_batch_norm`;
* a step draws two views ``make_views(x, image_shape, cfg)`` (:mod:`bench.augment`) and returns
  :meth:`TwoViewMethod.pair_loss` of them, the one hook a method implements.

Each method keeps in its own file its paper's loss (a pure function), its config and whatever
else it trains (predictor, prototypes, momentum targets and queue, ``after_step``), created
after ``super().__init__`` so that the parameters keep their order: encoder, projector, the rest.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from bench.augment import make_views
from bench.methods import Method


def mlp_head(d_in: int, hidden: int, d_out: int, n_hidden: int = 1, batch_norm: bool = True) -> nn.Sequential:
    """The projector / predictor MLP of the SSL methods (training-only):
    ``n_hidden`` blocks of ``Linear -> [BatchNorm1d] -> ReLU``, then ``Linear(hidden, d_out)``."""
    layers: list[nn.Module] = []
    for i in range(n_hidden):
        layers += [nn.Linear(d_in if i == 0 else hidden, hidden)]
        layers += [nn.BatchNorm1d(hidden)] if batch_norm else []
        layers += [nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(hidden if n_hidden else d_in, d_out))


class TwoViewMethod(Method):
    """Base of the two-view SSL methods: encoder, projector, two views, one ``pair_loss`` hook.

    The config is an :class:`~bench.augment.AugmentConfig` with ``proj_hidden`` and ``proj_dim``.
    """

    proj_layers: ClassVar[int] = 1  # hidden blocks of the projector (mlp_head's n_hidden)
    proj_batch_norm: ClassVar[bool] = True

    def __init__(self, cfg, info, width):
        super().__init__(cfg, info, width)
        cfg.check()
        self.encoder = nn.Linear(info.input_dim, width)
        self.projector = mlp_head(width, cfg.proj_hidden, cfg.proj_dim, self.proj_layers, self.proj_batch_norm)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.encoder(x))

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Projection ``projector(encode(x))`` of inputs ``x`` (N, D) -> (N, proj_dim)."""
        return self.projector(self.encode(x))

    def loss_terms(self, x, y=None):
        x1, x2 = make_views(x, self.info.image_shape, self.cfg)
        return self.pair_loss(x1, x2)

    def pair_loss(self, x1: torch.Tensor, x2: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named loss terms of two views ``x1``, ``x2`` (N, D) of one minibatch, row i of each
        from the same input."""
        raise NotImplementedError
