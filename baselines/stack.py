"""Greedy layer-wise stack: each layer a registered method trained on the frozen layer below.

Hinton, G. E., Osindero, S. & Teh, Y.-W. (2006). A fast learning algorithm for deep belief nets;
Bengio, Y., Lamblin, P., Popovici, D. & Larochelle, H. (2007). Greedy layer-wise training of deep
networks. A stack of ``layers`` (registered method names, or ``"identity"``), every layer ``width``
units wide (an identity layer as wide as its input), trained bottom up, one layer at a time:

* layer 1 is exactly the plain single-layer job of its method: the global RNG seeded with the job's
  seed, the method built with its default ``Config`` on the data's :class:`DataInfo`, then
  :func:`bench.train.loop.train` with ``seed`` (a gradient method; the stack's ``epochs`` and
  ``batch_size``), ``method.fit(x, y, seed)`` (a fit method) or nothing (``random``). Its weights are
  those of that job bit for bit (:func:`bench.train.trainer.fit_encoder` does the same);
* layer l > 1 (1-based) is built and trained the same way with the derived seed ``seed + 1000 (l - 1)``
  on ``DataInfo(input_dim of the layer below, n_classes, image_shape None)``, on the layer below's
  frozen training output standardised with that output's TRAIN mean and population sd per unit (a
  dead unit, sd below :data:`bench.evaluate.metrics.DEAD_TOL` relative to the largest, keeps sd 1);
  ``random`` is an untrained ``Linear + ReLU`` of it;
* ``identity`` passes the layer below's raw output through, unstandardised (its standardisation is the
  identity, mean 0 and sd 1): its features are the layer below's bit for bit, so the control reproduces
  every measure of that layer exactly (a standardised copy moves values by ulps, enough to flip a tie in
  the probe's choice of L2 on val);
* a layer whose method models probabilities (``rbm``, :data:`RAW_INPUT`) reads the layer below
  unstandardised, as the DBN of Hinton et al. (2006) feeds one RBM's hidden probabilities to the
  next as its visible probabilities; that output must lie in [0, 1] on train (else the job fails
  with the reason), and its standardisation is the identity (mean 0, sd 1).

Features: the top layer's; :meth:`Stack.layer_features` gives every layer's (raw, before the next
layer's standardisation). The deployed modules are every layer's deployed modules; a layer's
training-only modules (a decoder, a visible bias) stay training-only. The layers' own configs are
their defaults (the run's ``<method>.<field>=`` overrides do not reach them), and a fit method
ignores the job's epochs, so the budget is the stack's own ``epochs`` and ``batch_size``.
Unlisted (``listed = False``): it runs only where a run or a question names it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bench.train import loop
from bench.train.loop import JobFailed
from bench.train.methods import METHODS, DataInfo, Method

IDENTITY = "identity"
SEED_STRIDE = 1000  # layer l (1-based) trains with seed + SEED_STRIDE (l - 1)
RAW_INPUT = frozenset({"rbm"})  # Bernoulli visibles: they read the layer below's probabilities, unstandardised
DEAD_TOL = 1e-6  # bench.evaluate.metrics.DEAD_TOL (not imported: evaluation code stays out of the cache key)
MAX_LAYERS = 8


@dataclass(frozen=True)
class StackConfig:
    """The layers bottom up and the budget each gradient layer trains for."""

    layers: tuple[str, ...] = ("infomax", "infomax", "infomax")
    epochs: int = 40
    batch_size: int = 128

    def check(self) -> None:
        if not 1 <= len(self.layers) <= MAX_LAYERS:
            raise ValueError(f"layers: need 1 to {MAX_LAYERS} layers, got {len(self.layers)}")
        names = set(METHODS.names())
        for i, name in enumerate(self.layers):
            if name == IDENTITY:
                if i == 0:
                    raise ValueError("layers: the first layer cannot be identity (it has no layer below to pass on)")
                continue
            if name not in names or name == Stack.name:
                choices = ", ".join(sorted(names - {Stack.name}) + [IDENTITY])
                raise ValueError(f"layers: unknown layer '{name}' (choices: {choices})")
            cls = METHODS.get(name)
            if cls.uses_labels:
                raise ValueError(f"layers: '{name}' trains on labels; a stack's layers are unsupervised")
            if cls.kind not in ("gradient", "fit", "none"):
                raise ValueError(f"layers: '{name}' has kind '{cls.kind}'")
        if self.epochs < 1:
            raise ValueError(f"epochs: must be >= 1, got {self.epochs}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size: must be >= 2, got {self.batch_size}")


class Identity(nn.Module):
    """A layer that passes its input (the layer below's raw output) through: no parameter, nothing to train."""

    kind = "none"

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def deployed_modules(self) -> list[nn.Module]:
        return []


class Standardise(nn.Module):
    """``(h - mean) / sd`` with the layer below's train statistics (buffers: saved with the encoder)."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("sd", torch.ones(dim))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return (h - self.mean) / self.sd

    @torch.no_grad()
    def fit(self, h: torch.Tensor) -> None:
        """Train mean and population sd per unit of ``h`` (N, K); a dead unit keeps sd 1."""
        mean = h.double().mean(0)
        sd = h.double().std(0, unbiased=False)
        live = sd > DEAD_TOL * (1.0 + sd.max())
        self.mean.copy_(mean.to(self.mean.dtype))
        self.sd.copy_(torch.where(live, sd, torch.ones_like(sd)).to(self.sd.dtype))


def layer_seed(seed: int, index: int) -> int:
    """The seed of layer ``index`` (0-based): the job's seed for the first, then ``+ SEED_STRIDE`` per layer."""
    return seed + SEED_STRIDE * index


@METHODS.register()
class Stack(Method):
    """Greedy layer-wise stack of registered methods, each trained on the standardised frozen layer below."""

    name = "stack"
    role = "reference"
    kind = "fit"
    listed = False
    citation = (
        "Hinton, Osindero & Teh 2006, A fast learning algorithm for deep belief nets; "
        "Bengio, Lamblin, Popovici & Larochelle 2007, Greedy layer-wise training of deep networks"
    )
    Config = StackConfig

    @staticmethod
    def component_methods(cfg: StackConfig) -> list[str]:
        """The registered methods the layers train: their source is in the job's key (bench.engine.jobs)."""
        return sorted({name for name in cfg.layers if name != IDENTITY})

    def __init__(self, cfg: StackConfig, info: DataInfo, width: int):
        super().__init__(cfg, info, width)
        cfg.check()
        self.layers = nn.ModuleList()
        self.inputs = nn.ModuleList()  # inputs[i]: the standardisation of layer i's input (identity for i = 0)
        self.infos: list[DataInfo] = []
        dim = info.input_dim
        for i, name in enumerate(cfg.layers):
            layer_info = info if i == 0 else DataInfo(dim, info.n_classes, None)
            self.infos.append(layer_info)
            self.inputs.append(Standardise(dim))
            self.layers.append(self._build(name, layer_info))
            dim = dim if name == IDENTITY else width
        self.logs: list[list[dict[str, float]]] = []  # per layer: the training history (set by fit)

    def _build(self, name: str, info: DataInfo) -> nn.Module:
        if name == IDENTITY:
            return Identity()
        cls = METHODS.get(name)
        return cls(cls.Config(), info, self.width)

    @property
    def feature_dim(self) -> int:
        dim = self.info.input_dim
        for name in self.cfg.layers:
            dim = dim if name == IDENTITY else self.width
        return dim

    def fit(self, x: torch.Tensor, y: torch.Tensor | None, seed: int) -> None:
        """Train the layers bottom up, each on the frozen, standardised output of the one below."""
        c = self.cfg
        first = c.layers[0]
        why = METHODS.get(first).unsupported(self.info)
        if why:
            raise JobFailed(f"layer 1 ({first}): {why}")
        h = x
        self.logs = []
        for i, name in enumerate(c.layers):
            if i > 0:
                self._fit_input(i, name, h)
            z = self.inputs[i](h) if i > 0 else h
            s = layer_seed(seed, i)
            torch.manual_seed(s)  # as bench.train.trainer.seeded_build: the initial weights, then in-step draws
            layer = self._build(name, self.infos[i]).to(x.device)
            log: list[dict[str, float]] = []
            if getattr(layer, "kind", "none") == "gradient":
                log = loop.train(layer, z, None, epochs=c.epochs, batch_size=c.batch_size, seed=s).history
            elif layer.kind == "fit":
                layer.fit(z, None, s)
            self.layers[i] = layer
            self.logs.append(log)
            h = _encode_all(layer, z)
        self.eval()

    def _fit_input(self, i: int, name: str, h: torch.Tensor) -> None:
        if name == IDENTITY:  # the layer below bit for bit: no standardisation
            return
        if name in RAW_INPUT:  # probabilities in, unstandardised: the standardisation stays the identity
            lo, hi = float(h.min()), float(h.max())
            if lo < 0.0 or hi > 1.0:
                raise JobFailed(
                    f"layer {i + 1} ({name}) reads probabilities, but layer {i} ({self.cfg.layers[i - 1]}) "
                    f"outputs values in [{lo:.3g}, {hi:.3g}] on train"
                )
            return
        self.inputs[i].fit(h)

    def layer_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every layer's features of ``x`` (N, D), bottom up: raw outputs, before the next layer's
        standardisation (an identity layer's output is the layer below's)."""
        out = []
        h = x
        with torch.no_grad():
            self.eval()
            for i, layer in enumerate(self.layers):
                z = self.inputs[i](h) if i > 0 else h
                h = _encode_all(layer, z)
                out.append(h)
        return out

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for i, layer in enumerate(self.layers):
            h = layer.encode(self.inputs[i](h) if i > 0 else h)
        return h

    def deployed_modules(self) -> list[nn.Module]:
        return [m for layer in self.layers for m in layer.deployed_modules()]

    def encoder_weight(self) -> torch.Tensor | None:
        return None


def _encode_all(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A layer's features of every row of ``x`` in eval mode, without gradients."""
    if isinstance(layer, Method):
        return layer.encode_all(x)
    with torch.no_grad():
        return layer.encode(x)
