"""Supervised CNN: a small timm ResNet trained end to end on the labels (images only).

He, Zhang, Ren & Sun (2016), "Deep Residual Learning for Image Recognition"; the ``resnet10t``
variant of timm (Wightman, "PyTorch Image Models"; tiered deep stem, average-pool shortcuts,
one BasicBlock per stage) built with ``pretrained=False``, ``in_chans = C``, ``num_classes=0``
(pooled features) and narrow stages of widths ``c x (1, 2, 4, 8)``: the channel width ``c``
is the config field ``channels`` [8, i.e. stages (8, 16, 32, 64)], so that the quick profile
(40 epochs of mnist5k's 3500 training images) trains in about a minute on one busy CPU core
(60 s measured; c = 16 took ~3x longer; ImageNet's (64, 128, 256, 512) is 8x wider, ~64x the
multiply-adds per conv). ``c`` is the CNN's size variable in P3 (parameter efficiency), which
sweeps it at a fixed projection width. Cross-entropy on the training labels, the shared
trainer's Adam (lr 1e-3).

Stem for small images: timm's stem (a stride-2 3x3 conv stack + a stride-2 max-pool) shrinks
the input 4x before the first stage, which leaves a 2x2 map for 8x8 digits. It is replaced by
one stride-1 3x3 conv ``Conv2d(C, stem_out, 3, stride=1, padding=1)`` (``stem_out`` = the width
the first stage expects, followed by timm's own BatchNorm + ReLU), so the stem keeps the spatial
size. timm's stride-2 max-pool is kept only for images with a side >= 16
(``stem_pool="auto"``): 28x28 -> 14x14 before the first stage, 32x32 -> 16x16, while 8x8 stays
8x8. This is a compute compromise, not a published recipe: without the pool the first stage
runs at 28x28 and a training step on mnist5k costs ~3x more (~270 vs ~90 ms per batch of 128
on one core), past the quick profile's budget.

Deployed encoder (``self.encoder``): the backbone plus a linear projection ``Linear(8c, K)``
to the penultimate width K; features are that projection (linear, no activation). The
classifier ``self.head = Linear(K, C)`` is training-only.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import timm
import torch
import torch.nn.functional as F
from torch import nn

from bench.train.methods import METHODS, DataInfo, Method, MethodConfig

POOL_MIN_SIDE = 16
STAGE_MULTIPLIERS = (1, 2, 4, 8)  # stage widths c x these: resnet10t's ratios (ImageNet's c is 64)
STEM_POOL = ("auto", "on", "off")


def stage_widths(c: int) -> tuple[int, ...]:
    """The stage widths of channel width ``c``: ``c x (1, 2, 4, 8)``."""
    return tuple(c * m for m in STAGE_MULTIPLIERS)


@dataclass(frozen=True)
class SupervisedCNNConfig(MethodConfig):
    model: str = "resnet10t"  # a timm ResNet (accepts ``channels`` and ``stem_width``)
    channels: int = 8  # c, the channel width: stage widths c x STAGE_MULTIPLIERS
    stem_pool: str = "auto"  # "auto": keep the stride-2 max-pool when min(H, W) >= 16

    def check(self) -> None:
        super().check()
        if self.channels < 2:
            raise ValueError(f"channels: the channel width c must be >= 2, got {self.channels}")
        if self.stem_pool not in STEM_POOL:
            raise ValueError(f"stem_pool: unknown '{self.stem_pool}' (choices: {', '.join(STEM_POOL)})")


def small_image_resnet(model: str, in_chans: int, channels: tuple[int, ...], keep_pool: bool) -> nn.Module:
    """A timm ResNet with a stride-1 3x3 stem to ``channels[0]``; ``forward`` gives pooled features
    (N, channels[-1]).

    timm's deep stem ends at ``2 * stem_width`` channels, so an odd ``channels[0]`` (c = 5) would
    enter the first stage one channel short and buy a 1x1 shortcut there; the stem is built to
    ``channels[0]`` instead, and the first block reads that many (every c: the same architecture).
    The replaced deep stem is never used (its zero-width convolutions at c < 8 are not warned about)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Initializing zero-element tensors")
        net = timm.create_model(
            model,
            pretrained=False,
            in_chans=in_chans,
            num_classes=0,
            channels=channels,
            stem_width=max(channels[0] // 2, 1),
        )
    c0 = channels[0]
    if net.bn1.num_features != c0:
        net.bn1 = type(net.bn1)(c0)
        block = net.layer1[0]
        old = block.conv1
        block.conv1 = nn.Conv2d(
            c0, old.out_channels, old.kernel_size, old.stride, old.padding, old.dilation, bias=False
        )
        block.downsample = None  # in and out widths now agree: the identity shortcut, as at even c
    net.conv1 = nn.Conv2d(in_chans, c0, kernel_size=3, stride=1, padding=1, bias=False)
    if not keep_pool:
        net.maxpool = nn.Identity()
    return net


@METHODS.register()
class SupervisedCNN(Method):
    """Supervised CNN (small timm ResNet, stride-1 stem, linear projection to K, on labels)."""

    name = "supervised_cnn"
    citation = "He et al. 2016, Deep Residual Learning for Image Recognition; timm resnet10t (Wightman 2019)"
    uses_labels = True
    Config = SupervisedCNNConfig

    def __init__(self, cfg: SupervisedCNNConfig, info: DataInfo, width: int):
        super().__init__(cfg, info, width)
        cfg.check()
        why = self.unsupported(info)
        if why:
            raise ValueError(f"supervised_cnn: {why}")
        c, h, w = info.image_shape
        keep_pool = cfg.stem_pool == "on" or (cfg.stem_pool == "auto" and min(h, w) >= POOL_MIN_SIDE)
        backbone = small_image_resnet(cfg.model, c, stage_widths(cfg.channels), keep_pool)
        self.encoder = nn.Sequential(backbone, nn.Linear(backbone.num_features, width))
        self.head = nn.Linear(width, info.n_classes)
        # channels_last (NHWC) conv weights and activations: the same network and arithmetic up to
        # float rounding, ~20% less time per step on one CPU core (oneDNN's native layout; avoids
        # reorders around every conv, batch norm and pool); cuDNN handles it as well
        self.to(memory_format=torch.channels_last)

    @classmethod
    def unsupported(cls, info: DataInfo) -> str | None:
        if info.image_shape is None:
            return "needs image inputs (image_shape is None)"
        if info.n_classes is None:
            return "needs class labels (the data has none)"
        return None

    def classifier(self) -> nn.Module:
        return self.head

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x.reshape(-1, *self.info.image_shape).contiguous(memory_format=torch.channels_last))

    def loss_terms(self, x, y=None):
        if y is None:
            raise ValueError("supervised_cnn: loss_terms needs labels y")
        return {"ce": F.cross_entropy(self.head(self.encode(x)), y)}
