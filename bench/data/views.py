"""Derived datasets for transfer (P2): class-subset views, step-matched views, ``digits28c``, ``digits28``.

* A class-subset view ``base[classes]`` (``mnist5k[0-4]``) never redraws a split: it restricts
  its base's train / val / test to some classes, so ``mnist5k[0-4]`` and ``mnist5k[5-9]``
  partition ``mnist5k``'s splits.
* A step-matched view ``source~budget`` (``mnist5k~digits28c``) is ``source`` with its train
  split cut to a stratified random subset of the size of ``budget``'s train split (val and test
  unchanged), drawn from ``(split_seed, name)``; it takes its budget (epochs) and what it
  provides from ``budget`` (:func:`budget_base`), so it trains for exactly ``budget``'s steps:
  ``epochs(budget) x floor(N_train(budget) / 128)``. It is P2's step-matched source.
* ``digits28c``: ``digits`` framed like MNIST; ``digits28``: v1's full-frame stretch.
"""

from __future__ import annotations

import dataclasses
import re
import zlib

import numpy as np
import torch

from bench.data.core import DATASETS, DataConfig, Dataset, Split, _labelled_image_dataset, _summary, stratified_split

# a class-subset view: ``mnist5k[0-4]``, ``digits[5-9]``, ``digits28[0,2,4]``
_VIEW = re.compile(r"^(?P<base>[A-Za-z0-9_]+)\[(?P<classes>[0-9][0-9,\- ]*)\]$")


def parse_view(name: str) -> tuple[str, tuple[int, ...] | None]:
    """``"mnist5k[0-4]"`` -> ``("mnist5k", (0, 1, 2, 3, 4))``; a plain name -> ``(name, None)``.

    Classes are ranges ``a-b`` (inclusive) and single labels, comma-separated, kept in
    increasing order. Raises ValueError on an empty, repeated or malformed class list."""
    m = _VIEW.match(name)
    if m is None:
        if "[" in name or "]" in name:
            raise ValueError(f"dataset: malformed class subset '{name}' (write e.g. mnist5k[0-4] or digits[0,2,4])")
        return name, None
    classes: list[int] = []
    for part in m["classes"].replace(" ", "").split(","):
        lo, _, hi = part.partition("-")
        if not lo or (_ and not hi):
            raise ValueError(f"dataset: malformed class subset '{name}' (write e.g. mnist5k[0-4] or digits[0,2,4])")
        a, b = int(lo), int(hi or lo)
        if b < a:
            raise ValueError(f"dataset: empty class range '{part}' in '{name}'")
        classes += range(a, b + 1)
    if len(set(classes)) != len(classes):
        raise ValueError(f"dataset: a class is listed twice in '{name}'")
    return m["base"], tuple(sorted(classes))


MATCH = "~"  # ``source~budget``: a step-matched view


def parse_matched(name: str) -> tuple[str, str] | None:
    """``"mnist5k[0-4]~digits[5-9]"`` -> ``("mnist5k[0-4]", "digits[5-9]")``; None without ``~``."""
    if MATCH not in name:
        return None
    source, budget = name.split(MATCH, 1)
    if not source or not budget or MATCH in budget:
        raise ValueError(f"dataset: malformed step-matched view '{name}' (write e.g. mnist5k~digits28c)")
    parse_view(source), parse_view(budget)
    return source, budget


def budget_base(name: str) -> str:
    """The registered dataset whose budget (epochs) and provisions ``name`` takes: the base of a
    class-subset view, the budget's base of a step-matched view."""
    matched = parse_matched(name)
    return parse_view(matched[1] if matched else name)[0]


def matched_subset(source: Dataset, n_train: int, split_seed: int, name: str) -> Dataset:
    """``source`` with its train split cut to ``n_train`` rows, stratified by class, at random
    (seeded by ``split_seed`` and ``name``); val and test unchanged. Raises ValueError when the
    source has fewer than ``n_train`` train rows (a subset cannot grow)."""
    n = len(source.train.x)
    if not 0 < n_train < n:
        raise ValueError(
            f"dataset: '{name}' needs {n_train} train rows of '{source.name}', which has {n}"
            + (" (a step-matched source cannot be larger than its source)" if n_train >= n else "")
        )
    y = source.train.y.cpu().numpy() if source.train.y is not None else np.zeros(n, dtype=np.int64)
    seed = np.random.SeedSequence([int(split_seed), zlib.crc32(name.encode())])
    keep = torch.from_numpy(stratified_split(y, (n_train / n, 1.0 - n_train / n, 0.0), seed)[0])
    t = source.train
    train = Split(
        x=t.x[keep].contiguous(),
        y=None if t.y is None else t.y[keep].contiguous(),
        factors=None if t.factors is None else t.factors[keep].contiguous(),
    )
    return dataclasses.replace(
        source,
        name=name,
        train=train,
        description=f"{source.description} (train: a stratified random {n_train} of {n})",
    )


def class_subset(ds: Dataset, classes: tuple[int, ...], name: str) -> Dataset:
    """The view of ``ds`` on ``classes`` only (see :func:`load_dataset`); splits are not redrawn."""
    if ds.n_classes is None:
        raise ValueError(f"dataset: '{ds.name}' has no classes to take a subset of ('{name}')")
    bad = [c for c in classes if not 0 <= c < ds.n_classes]
    if bad:
        raise ValueError(f"dataset: '{ds.name}' has classes 0..{ds.n_classes - 1}, not {bad} ('{name}')")
    remap = torch.full((ds.n_classes,), -1, dtype=torch.int64)
    remap[list(classes)] = torch.arange(len(classes))

    def sub(s: Split) -> Split:
        keep = remap[s.y] >= 0
        return Split(
            x=s.x[keep].contiguous(),
            y=remap[s.y[keep]].contiguous(),
            factors=None if s.factors is None else s.factors[keep].contiguous(),
        )

    return dataclasses.replace(
        ds,
        name=name,
        train=sub(ds.train),
        val=sub(ds.val),
        test=sub(ds.test),
        probe=None if ds.probe is None else sub(ds.probe),
        n_classes=len(classes),
        description=f"{ds.description} (classes {', '.join(map(str, classes))} only)",
    )


@DATASETS.register("digits28")
def load_digits28(cfg: DataConfig) -> Dataset:
    """UCI optdigits resized to 28x28 (antialiased bilinear), 1797 x 784, 10 classes: MNIST's frame.

    The ``digits`` images (pixels /16, in [0, 1], the same intensity scale as ``mnist5k``'s /255)
    resized from 8x8 to 28x28 with ``torch.nn.functional.interpolate(mode="bilinear",
    antialias=True)`` and clipped to [0, 1]: the whole 8x8 frame stretched, unlike MNIST's 20 px
    ink box (P2's secondary pair ``mnist_digits_stretch``; ``digits28c`` frames them as MNIST
    does). Same rows and the same stratified split as ``digits``.
    """
    from sklearn.datasets import load_digits as sk_load_digits

    d = sk_load_digits()
    img = torch.as_tensor(d.data / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
    big = torch.nn.functional.interpolate(img, size=(28, 28), mode="bilinear", antialias=True, align_corners=False)
    x = big.clamp(0.0, 1.0).reshape(len(img), -1).numpy()
    return _labelled_image_dataset("digits28", x, d.target, cfg, (1, 28, 28), _summary(load_digits28))


FRAME, BOX = 28, 20  # MNIST's frame: the ink's longer side resized to 20 px, centred by centre of mass in 28 x 28


def _resample(
    start: torch.Tensor, length: torch.Tensor, out: torch.Tensor, offset: torch.Tensor, n_in: int
) -> torch.Tensor:
    """Per image, the (FRAME, n_in) matrix that resizes input pixels ``[start, start + length)``
    to ``out`` pixels, antialiased (a triangle filter of support max(1, length / out), weights
    normalised per output pixel, as ``interpolate(mode="bilinear", antialias=True)``), and places
    them at frame pixels ``[offset, offset + out)``. All (N,) int64 -> (N, FRAME, n_in) float64."""
    i = torch.arange(FRAME, dtype=torch.float64)[None, :, None] - offset[:, None, None]  # local output pixel
    j = torch.arange(n_in, dtype=torch.float64)[None, None, :] - start[:, None, None]  # local input pixel
    scale = (length / out).double()[:, None, None]
    centre = (i + 0.5) * scale  # the output pixel's centre in input coordinates
    w = (1.0 - ((j + 0.5 - centre).abs() / scale.clamp(min=1.0))).clamp(min=0.0)
    w = w * ((j >= 0) & (j < length[:, None, None]) & (i >= 0) & (i < out[:, None, None]))
    return w / w.sum(2, keepdim=True).clamp(min=1e-12)


def frame_like_mnist(img: torch.Tensor) -> torch.Tensor:
    """(N, h, w) images in [0, 1] -> (N, 28, 28): each image's ink bounding box (pixels > 0)
    resized, antialiased, to a longer side of 20 px keeping its aspect (shorter side
    ``max(1, round(20 * short / long))``), then placed in the 28 x 28 frame shifted by whole
    pixels so that its centre of mass is nearest the frame's centre (13.5, 13.5) while the box
    stays in the frame (LeCun et al.'s MNIST normalisation). Separable: two (N, 28, h|w)
    resampling matrices per image, no per-image loop."""
    n, h, w = img.shape
    x = img.double()
    ink = x > 0
    rows, cols = ink.any(2), ink.any(1)  # (N, h), (N, w)
    if not bool(rows.any(1).all()):
        raise ValueError("frame_like_mnist: an image has no ink")
    top = rows.double().argmax(1)
    height = h - top - rows.flip(1).double().argmax(1)
    left = cols.double().argmax(1)
    width = w - left - cols.flip(1).double().argmax(1)
    long = torch.maximum(height, width).double()
    out_h = torch.where(height >= width, BOX, (BOX * height / long).round().clamp(min=1)).long()
    out_w = torch.where(width >= height, BOX, (BOX * width / long).round().clamp(min=1)).long()
    zero = torch.zeros(n, dtype=torch.int64)

    def place(off_r: torch.Tensor, off_c: torch.Tensor) -> torch.Tensor:
        a_r, a_c = _resample(top, height, out_h, off_r, h), _resample(left, width, out_w, off_c, w)
        return torch.einsum("nrj,njk,nck->nrc", a_r, x, a_c)

    local = place(zero, zero)  # the resized box at the frame's top-left corner
    mass = local.sum((1, 2))
    grid = torch.arange(FRAME, dtype=torch.float64)
    com_r = (local.sum(2) * grid).sum(1) / mass
    com_c = (local.sum(1) * grid).sum(1) / mass
    centre = (FRAME - 1) / 2
    off_r = torch.minimum(torch.maximum((centre - com_r).round().long(), zero), FRAME - out_h)
    off_c = torch.minimum(torch.maximum((centre - com_c).round().long(), zero), FRAME - out_w)
    return place(off_r, off_c).clamp(0.0, 1.0).float()


@DATASETS.register("digits28c")
def load_digits28c(cfg: DataConfig) -> Dataset:
    """UCI optdigits framed like MNIST (28x28, ink box 20 px, centre of mass centred), 1797 x 784, 10 classes.

    The ``digits`` images (pixels /16, in [0, 1], the intensity scale of ``mnist5k``'s /255)
    through :func:`frame_like_mnist`, so an encoder trained on ``mnist5k`` sees digits framed as
    its own (docs/protocol.md, data; P2's ``mnist_digits`` pair). Same rows and the same
    stratified split as ``digits``.
    """
    from sklearn.datasets import load_digits as sk_load_digits

    d = sk_load_digits()
    img = torch.as_tensor(d.data / 16.0, dtype=torch.float32).reshape(-1, 8, 8)
    x = frame_like_mnist(img).reshape(len(img), -1).numpy()
    return _labelled_image_dataset("digits28c", x, d.target, cfg, (1, 28, 28), _summary(load_digits28c))
