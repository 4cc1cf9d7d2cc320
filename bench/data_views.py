"""Derived datasets: class-subset views (``mnist5k[0-4]``) and ``digits28``, for transfer (P2).

A view never redraws a split: it restricts its base's train / val / test to some classes, so
``mnist5k[0-4]`` and ``mnist5k[5-9]`` partition ``mnist5k``'s splits.
"""

from __future__ import annotations

import dataclasses
import re

import torch

from bench.data import DATASETS, DataConfig, Dataset, Split, _labelled_image_dataset, _summary

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
        return Split(x=s.x[keep].contiguous(), y=remap[s.y[keep]].contiguous(),
                     factors=None if s.factors is None else s.factors[keep].contiguous())

    return dataclasses.replace(ds, name=name, train=sub(ds.train), val=sub(ds.val), test=sub(ds.test),
                               n_classes=len(classes),
                               description=f"{ds.description} (classes {', '.join(map(str, classes))} only)")


@DATASETS.register("digits28")
def load_digits28(cfg: DataConfig) -> Dataset:
    """UCI optdigits resized to 28x28 (antialiased bilinear), 1797 x 784, 10 classes: MNIST's frame.

    The ``digits`` images (pixels /16, in [0, 1], the same intensity scale as ``mnist5k``'s /255)
    resized from 8x8 to 28x28 with ``torch.nn.functional.interpolate(mode="bilinear",
    antialias=True)`` and clipped to [0, 1], so an encoder trained on ``mnist5k`` can read them
    (PROTOCOL.md §8 P2, the ``mnist5k -> digits`` pair). Same rows and the same stratified split
    as ``digits``.
    """
    from sklearn.datasets import load_digits as sk_load_digits

    d = sk_load_digits()
    img = torch.as_tensor(d.data / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
    big = torch.nn.functional.interpolate(img, size=(28, 28), mode="bilinear", antialias=True, align_corners=False)
    x = big.clamp(0.0, 1.0).reshape(len(img), -1).numpy()
    return _labelled_image_dataset("digits28", x, d.target, cfg, (1, 28, 28), _summary(load_digits28))
