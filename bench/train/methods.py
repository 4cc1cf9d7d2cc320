"""The method interface: every representation learner behind one small contract.

A method is an ``nn.Module`` that declares

* ``name`` (registry name = file name = config section), ``role`` (``subject``,
  ``ablation``, ``baseline`` or ``reference``), ``citation``;
* ``Config``: a frozen dataclass holding its defaults, in exactly one place;
* ``kind``: ``"gradient"`` (the shared trainer calls :meth:`loss_terms`), ``"fit"``
  (:meth:`fit` is called once on the training inputs) or ``"none"`` (nothing to train);
* :meth:`encode` ``(N, D) -> (N, K)`` features, with the deployed encoder's modules in
  :meth:`deployed_modules`; everything else it owns (decoders, projectors, momentum
  targets) is training-only and counted separately;
* its parts, declared rather than looked up: :meth:`encoder_weight` (the single-layer weight,
  or None) and :meth:`classifier` (its own trained classifier, or None).

The shared trainer owns the loop (:mod:`bench.train.trainer`); a method only returns its loss
terms as a dict of tensors whose sum is minimised.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from bench.registry import Registry

METHODS: Registry[type[Method]] = Registry("method")


@dataclass(frozen=True)
class DataInfo:
    """What a method may know about the data when it is built (never the test split)."""

    input_dim: int
    n_classes: int | None = None
    image_shape: tuple[int, int, int] | None = None


@dataclass(frozen=True)
class NoConfig:
    """Config of a method with nothing to set (``raw``, ``random``)."""

    def check(self) -> None:
        pass


@dataclass(frozen=True)
class MethodConfig:
    """Fields every gradient method shares; subclasses add their own defaults."""

    lr: float = 1e-3
    weight_decay: float = 0.0

    def check(self) -> None:
        """Range checks; raise ``ValueError("field: what is wrong")``. Extend with super()."""
        if self.lr <= 0:
            raise ValueError(f"lr: must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay: must be >= 0, got {self.weight_decay}")


class Method(nn.Module):
    """Base class of every registered method (see the module docstring)."""

    name: ClassVar[str] = ""
    role: ClassVar[str] = "baseline"
    citation: ClassVar[str] = ""
    kind: ClassVar[str] = "gradient"
    uses_labels: ClassVar[bool] = False
    Config: ClassVar[type] = MethodConfig

    def __init__(self, cfg: Any, info: DataInfo, width: int):
        super().__init__()
        self.cfg, self.info, self.width = cfg, info, width

    # -- the contract ------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Features of ``x`` (N, D) -> (N, K)."""
        raise NotImplementedError

    def loss_terms(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Named scalar loss terms on one minibatch; the trainer minimises their sum."""
        raise NotImplementedError

    def fit(self, x: torch.Tensor, y: torch.Tensor | None, seed: int) -> None:
        """Non-gradient methods: fit on the training inputs once."""
        raise NotImplementedError

    def after_step(self) -> None:
        """Hook run after each optimiser step (momentum targets, queues). Default: nothing."""

    # -- seeds trained together (bench.train.seedbatch) --------------------------------------------
    # A method with ``batched = True`` also states its step for S seeds at once: ``p`` and ``b``
    # map each name of ``named_parameters()`` / ``named_buffers()`` to the S seeds' tensors stacked
    # on a new leading dim, ``x`` is (S, B, D) (``y`` (S, B)), and every random draw comes from that
    # seed's own generator in ``rng`` (:class:`bench.train.seedbatch.SeedRNG`), in the order and shapes
    # of the single-seed step. Each seed's terms, parameters and buffers must equal those of
    # :meth:`loss_terms` / :meth:`after_step` on its own slice bit for bit (tests/test_seedbatch.py).
    batched: ClassVar[bool] = False
    # train seeds together only on inputs of at most this many dimensions (None: any): where the
    # stacked (S, B, D) tensors leave the CPU's cache, a GEMM-bound step gains nothing (measured per method)
    batch_max_dim: ClassVar[int | None] = None

    def loss_terms_batched(
        self, p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor | None, rng: Any
    ) -> dict[str, torch.Tensor]:
        """The S seeds' loss terms, each of shape (S,) (only when ``batched``)."""
        raise NotImplementedError

    def after_step_batched(self, p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], rng: Any) -> None:
        """:meth:`after_step` for S stacked seeds, in place under no_grad. Default: nothing."""

    def deployed_modules(self) -> list[nn.Module]:
        """Modules that make up the deployed encoder (their parameters are the features' cost)."""
        return [self.encoder]

    def encoder_weight(self) -> torch.Tensor | None:
        """(K, D) incoming weights of a single-layer encoder, else None.

        Default: the weight of ``self.encoder`` when it is one ``nn.Linear`` (the single-layer
        methods); a method whose deployed encoder is anything else gets None."""
        return self.encoder.weight if isinstance(self.encoder, nn.Linear) else None

    def classifier(self) -> nn.Module | None:
        """The method's own trained classifier over its (N, K) features, (N, K) -> (N, C) logits,
        if it has one (the supervised baselines); None for every method trained without labels."""
        return None

    @torch.no_grad()
    def encode_all(self, x: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
        """Features of many inputs (N, D) -> (N, K), in eval mode, ``chunk`` rows at a time."""
        self.eval()
        return torch.cat([self.encode(x[i : i + chunk]) for i in range(0, len(x), chunk)])

    @classmethod
    def unsupported(cls, info: DataInfo) -> str | None:
        """Why this method cannot run on such data (e.g. an image model on ``ica``), else None."""
        return None

    @classmethod
    def resolve_width(cls, info: DataInfo, width: int) -> int:
        """The width this method really has (``raw`` overrides: its width is the input's)."""
        return width

    # -- derived -------------------------------------------------------------------------
    @property
    def feature_dim(self) -> int:
        return self.width

    def n_params_encoder(self) -> int:
        seen = {id(p): p for m in self.deployed_modules() for p in m.parameters()}
        return int(sum(p.numel() for p in seen.values()))

    def n_params_train(self) -> int:
        """Training-only parameters (decoders, heads, projectors, targets)."""
        deployed = {id(p) for m in self.deployed_modules() for p in m.parameters()}
        return int(sum(p.numel() for p in self.parameters() if id(p) not in deployed))

    @classmethod
    def describe(cls) -> str:
        doc = (cls.__doc__ or "").strip().splitlines()
        return doc[0] if doc else ""

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return dataclasses.asdict(cls.Config())


def build_method(name: str, cfg: Any, info: DataInfo, width: int) -> Method:
    cls = METHODS.get(name)
    return cls(cfg, info, width)
