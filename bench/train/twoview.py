"""The small base of the two-view self-supervised baselines and their MLP head.

``simclr``, ``moco``, ``byol``, ``swav``, ``barlow_twins`` and ``vicreg`` share one body:

* the deployed encoder ``h = ReLU(Linear(D, K) x)`` (attribute ``encoder``), exactly the subject's;
* a training-only projector (attribute ``projector``) built by :func:`mlp_head` from the config's
  ``proj_hidden`` and ``proj_dim``, with :attr:`TwoViewMethod.proj_layers` hidden blocks and
  batch norm when :attr:`TwoViewMethod.proj_batch_norm`;
* a step draws two views ``make_views(x, image_shape, cfg)`` (:mod:`bench.train.augment`) and returns
  :meth:`TwoViewMethod.pair_loss` of them, the one hook a method implements.

Seeds trained together (:mod:`bench.train.seedbatch`; off, see ``TwoViewMethod.batched``): ``loss_terms_batched`` draws each seed's views
from its own generator (:func:`bench.train.augment.make_views_stacked`) and calls the same
``pair_loss`` with ``st = (p, b)``, the stacked parameters and buffers; a method runs its modules
through :meth:`TwoViewMethod.run` (the module itself, or :func:`bench.train.stacked_nn.forward` on the
stacked tensors) and writes its loss once for (B, d) and (S, B, d) (batch dim -2, features -1).

Each method keeps in its own file its paper's loss (a pure function), its config and whatever
else it trains (predictor, prototypes, momentum targets and queue, ``after_step``), created
after ``super().__init__`` so that the parameters keep their order: encoder, projector, the rest.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from bench.train import stacked_nn
from bench.train.augment import make_views, make_views_stacked
from bench.train.methods import Method

Stack = tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]  # (p, b): stacked parameters, buffers


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

    The config is an :class:`~bench.train.augment.AugmentConfig` with ``proj_hidden`` and ``proj_dim``.
    """

    # The batched step (loss_terms_batched below, each method's after_step_batched) is bit-identical to
    # one seed at a time (tests/test_seedbatch_twoview.py switches it on) but does not pay on a CPU:
    # 0.85-1.01x the sequential seed-samples/s at S = 3 and 10 on mnist5k, by CPU time, for all six
    # (benchmarks/seedbatch_twoview_speed.py). Their step is arithmetic and memory traffic (784-pixel
    # views, 512-wide heads), not dispatch: bmm runs ~10% slower than S mm, and S-fold tensors fall out
    # of cache. So the seeds train one at a time; set True where the step is launch-bound (a GPU).
    batched: ClassVar[bool] = False
    proj_layers: ClassVar[int] = 1  # hidden blocks of the projector (mlp_head's n_hidden)
    proj_batch_norm: ClassVar[bool] = True

    def __init__(self, cfg, info, width):
        super().__init__(cfg, info, width)
        cfg.check()
        self.encoder = nn.Linear(info.input_dim, width)
        self.projector = mlp_head(width, cfg.proj_hidden, cfg.proj_dim, self.proj_layers, self.proj_batch_norm)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.encoder(x))

    def run(self, name: str, x: torch.Tensor, st: Stack | None = None) -> torch.Tensor:
        """The module called ``name`` on ``x``: (N, D) through the module itself, or, with ``st``,
        (S, N, D) through each seed's stacked tensors."""
        mod = getattr(self, name)
        return mod(x) if st is None else stacked_nn.forward(mod, name, x, *st)

    def project(self, x: torch.Tensor, st: Stack | None = None) -> torch.Tensor:
        """Projection ``projector(encode(x))`` of inputs ``x`` (N, D) -> (N, proj_dim) (or S seeds' (S, N, .))."""
        return self.run("projector", torch.relu(self.run("encoder", x, st)), st)

    def loss_terms(self, x, y=None):
        x1, x2 = make_views(x, self.info.image_shape, self.cfg)
        return self.pair_loss(x1, x2)

    def loss_terms_batched(self, p, b, x, y, rng):
        x1, x2 = make_views_stacked(x, self.info.image_shape, self.cfg, rng.dev)
        return self.pair_loss(x1, x2, (p, b))

    def pair_loss(self, x1: torch.Tensor, x2: torch.Tensor, st: Stack | None = None) -> dict[str, torch.Tensor]:
        """Named loss terms of two views ``x1``, ``x2`` (N, D) of one minibatch, row i of each
        from the same input; with ``st`` (S seeds trained together) the views are (S, N, D) and
        each term is (S,)."""
        raise NotImplementedError
