"""MNIST-1D: a procedural 40-dimensional, 10-class dataset, generated here (no download, no file).

Attribution: MNIST-1D is by Sam Greydanus, "Scaling down deep learning" (arXiv:2011.14439, 2020;
with D. Kobak, "Scaling down deep learning with MNIST-1D", ICML 2024), released under the Apache
License 2.0 at https://github.com/greydanus/mnist1d. This module re-implements its generator from
that description, vectorised over draws: the ten 12-point digit templates and the default
arguments (``get_dataset_args``) are the published ones; the code is the bench's own. The
upstream ``get_dataset`` downloads and writes ``./mnist1d_data.pkl``, and ``make_dataset`` seeds
numpy's global RNG: this module does neither. It opens no socket, writes no file and draws only
from local ``np.random.Generator`` s.

One draw of class c (:func:`transform`): the template of c, plus 1e-8 so no template point is
exactly 0, padded on the right with p ~ U{36..60} zeros and linearly resampled to 72 points (a
random dilation); scaled by 1 + 0.4 (u - 1/2); rolled right by k ~ U{0..47} points; the points that
are exactly 0 (the padding) replaced by correlated noise (0.25 N(0, 1) smoothed by a Gaussian of
sigma 2 points); iid noise 0.02 N(0, 1) added everywhere; sheared by subtracting
0.75 (u - 1/2) linspace(-1/2, 1/2, 72); linearly resampled to 40 points.

Layout (docs/protocol.md §11.0). Draws come from independent generator streams, each addressed by
``(split_seed, stream, chunk)``, so the same draw never appears in two splits and a longer read of a
stream only appends draws:

* ``train``: the first ``DataConfig.pretrain_n`` [16,384] draws of the pretraining pool (at most
  :data:`POOL` = 262,144), what the encoder trains on; nested (N = 1,024 is the first 1,024 of
  N = 4,096, bit for bit);
* ``probe`` (``Dataset.probe_train``): 4,000 separate draws, what the linear probe trains on;
* ``val``: 2,000 draws; ``test``: 10,000 draws.

Labels come in blocks of ten holding each class once (in a random order), so every split of a
multiple of ten draws is exactly balanced and every prefix of the pool within one draw of it.
Inputs are standardised with one scalar mean and one scalar std fit on the probe-train draws
(upstream standardises the whole set with one scalar pair); the pool's prefixes are thus
standardised alike, whatever N.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

from bench.data.core import DATASETS, DataConfig, Dataset, Split, _summary

# the ten 12-point templates of digits 0..9, as published (before normalisation: :func:`templates`)
_RAW_TEMPLATES = np.array(
    [
        [5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5],
        [5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5],
        [5, 6, 6.5, 6.5, 6, 5.25, 4.75, 4, 3.5, 3.5, 4, 5],
        [5, 6, 6.5, 6.5, 6, 5, 5, 6, 6.5, 6.5, 6, 5],
        [5, 4.4, 3.8, 3.2, 2.6, 2.6, 5, 5, 5, 5, 5, 5],
        [5, 3, 3, 3, 3, 5, 6, 6.5, 6.5, 6, 4.5, 5],
        [5, 4, 3.5, 3.25, 3, 3, 3, 3, 3.25, 3.5, 4, 5],
        [5, 7, 7, 6.6, 6.2, 5.8, 5.4, 5, 4.6, 4.2, 5, 5],
        [5, 4, 3.5, 3.5, 4, 5, 5, 4, 3.5, 3.5, 4, 5],
        [5, 4, 3.5, 3.5, 4, 5, 5, 5, 5, 4.7, 4.3, 5],
    ]
)
N_CLASSES = 10
# Greydanus's defaults (get_dataset_args)
PADDING = (36, 60)  # zeros appended: U{36..60}
SCALE_COEFF = 0.4
MAX_TRANSLATION = 48  # roll by U{0..47}
CORR_NOISE_SCALE = 0.25
CORR_NOISE_SIGMA = 2.0  # points, of the Gaussian smoothing the correlated noise
IID_NOISE_SCALE = 0.02
SHEAR_SCALE = 0.75
FINAL_LENGTH = 40
WIDTH = 12 + PADDING[1]  # every padded template is resampled to this many points
EPS = 1e-8  # added to the template so that only the padding is exactly 0
# the layout of docs/protocol.md §11.0
POOL = 262_144
DEFAULT_PRETRAIN = 16_384
PROBE_TRAIN, VAL, TEST = 4_000, 2_000, 10_000
STREAMS = {"pool": 0, "probe": 1, "val": 2, "test": 3}
CHUNK = 5_120  # draws per generator: a multiple of 10 (whole label blocks)
_TAG = 0x1D  # this dataset's entry in the (split_seed, tag, stream, chunk) seed


def templates() -> np.ndarray:
    """(10, 12) float64: each raw template standardised (mean 0, std 1 over its 12 points), shifted
    to start (and so end) at 0, and divided by 6, as Greydanus's ``get_templates``."""
    x = _RAW_TEMPLATES - _RAW_TEMPLATES.mean(1, keepdims=True)
    x = x / x.std(1, keepdims=True)
    return (x - x[:, :1]) / 6.0


def resample(v: np.ndarray, length: np.ndarray, m: int) -> np.ndarray:
    """Linear interpolation of each row's first ``length`` points, taken as equally spaced on
    [0, 1], at ``m`` equally spaced points of [0, 1] (``scipy.interpolate.interp1d(kind="linear")``
    row by row). ``v``: (n, W) float64 with W >= max(length); ``length``: (n,) int >= 2; -> (n, m)."""
    pos = np.linspace(0.0, 1.0, m)[None, :] * (length[:, None] - 1)
    lo = np.minimum(np.floor(pos).astype(np.int64), length[:, None] - 2)
    frac = pos - lo
    left = np.take_along_axis(v, lo, axis=1)
    right = np.take_along_axis(v, lo + 1, axis=1)
    return left + frac * (right - left)


@dataclass(frozen=True)
class Draws:
    """The random part of n draws of :func:`transform`, one entry per row."""

    pad: np.ndarray  # (n,) int: zeros appended, U{36..60}
    scale: np.ndarray  # (n,) float: u ~ U[0, 1); the signal is scaled by 1 + 0.4 (u - 1/2)
    shift: np.ndarray  # (n,) int: points rolled right, U{0..47}
    corr: np.ndarray  # (n, 72) float: N(0, 1), smoothed into the correlated noise
    iid: np.ndarray  # (n, 72) float: N(0, 1), the iid noise
    shear: np.ndarray  # (n,) float: u ~ U[0, 1); the shear's slope is 0.75 (u - 1/2)

    @classmethod
    def sample(cls, rng: np.random.Generator, n: int, width: int) -> Draws:
        """n draws from ``rng`` (in this order: pad, scale, shift, corr, iid, shear)."""
        return cls(
            pad=rng.integers(PADDING[0], PADDING[1] + 1, size=n),
            scale=rng.random(n),
            shift=rng.integers(0, MAX_TRANSLATION, size=n),
            corr=rng.standard_normal((n, width)),
            iid=rng.standard_normal((n, width)),
            shear=rng.random(n),
        )


def transform(x: np.ndarray, d: Draws) -> np.ndarray:
    """Greydanus's transform of (n, 12) templates into (n, 40) signals, given the random draws ``d``
    (the module docstring's steps; width 72 = 12 + the largest padding)."""
    n, t = x.shape
    width = t + PADDING[1]  # = WIDTH for the 12-point templates
    v = np.zeros((n, width + 1))
    v[:, :t] = x + EPS
    x = resample(v, t + d.pad, width)
    x = x * (1.0 + SCALE_COEFF * (d.scale - 0.5))[:, None]
    x = np.take_along_axis(x, (np.arange(width)[None, :] - d.shift[:, None]) % width, axis=1)
    corr = gaussian_filter1d(CORR_NOISE_SCALE * d.corr, CORR_NOISE_SIGMA, axis=1)
    x = np.where(x != 0, x, corr)
    x = x + IID_NOISE_SCALE * d.iid
    x = x - (SHEAR_SCALE * (d.shear - 0.5))[:, None] * np.linspace(-0.5, 0.5, width)[None, :]
    return resample(x, np.full(n, width), FINAL_LENGTH)


def _chunk(seed: int, stream: int, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Draws ``index * CHUNK .. (index + 1) * CHUNK - 1`` of one stream: (CHUNK, 40) float64 inputs
    (not standardised) and (CHUNK,) int64 labels, from their own generator."""
    rng = np.random.default_rng([seed, _TAG, stream, index])
    y = rng.permuted(np.tile(np.arange(N_CLASSES), (CHUNK // N_CLASSES, 1)), axis=1).reshape(-1)
    return transform(templates()[y], Draws.sample(rng, CHUNK, WIDTH)), y


def draw(seed: int, stream: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` draws of stream ``stream`` under ``seed``: (n, 40) float64 inputs (not
    standardised) and (n,) int64 labels. Reading more of a stream only appends draws: ``draw(s, t,
    m)`` is the first m rows of ``draw(s, t, n)`` for m <= n. Never touches numpy's global RNG."""
    parts = [_chunk(seed, stream, c) for c in range(math.ceil(n / CHUNK))]
    return np.concatenate([p[0] for p in parts])[:n], np.concatenate([p[1] for p in parts])[:n]


@DATASETS.register("mnist1d")
def load_mnist1d(cfg: DataConfig) -> Dataset:
    """MNIST-1D (Greydanus 2020), procedural 1-D digits, 40 points, 10 classes; pretraining pool apart.

    Generated here from ``cfg.split_seed`` (:mod:`bench.data.mnist1d`; Apache-2.0, Greydanus's
    templates and defaults). ``train``: the first ``cfg.pretrain_n`` [16,384] of a 262,144-draw
    pool (the encoder's data, nested across N); ``probe_train``: 4,000 separate draws (the probe's);
    val 2,000 and test 10,000 separate draws; classes balanced exactly in blocks of ten. One scalar
    mean and std, fit on probe-train, standardise every split. ``cfg.n`` is not read.
    """
    n = DEFAULT_PRETRAIN if cfg.pretrain_n is None else cfg.pretrain_n
    if not 1 <= n <= POOL:
        raise ValueError(f"mnist1d: pretrain_n must lie in 1..{POOL} (its pool's draws), got {n}")
    sizes = {"pool": n, "probe": PROBE_TRAIN, "val": VAL, "test": TEST}
    raw = {name: draw(cfg.split_seed, STREAMS[name], size) for name, size in sizes.items()}
    mean, std = raw["probe"][0].mean(), raw["probe"][0].std()

    def split(name: str) -> Split:
        x, y = raw[name]
        x = torch.from_numpy(((x - mean) / std).astype(np.float32))
        return Split(x=x, y=torch.from_numpy(y.astype(np.int64)), factors=None)

    return Dataset(
        name="mnist1d",
        train=split("pool"),
        val=split("val"),
        test=split("test"),
        n_classes=N_CLASSES,
        image_shape=None,
        factor_names=None,
        factor_discrete=None,
        description=_summary(load_mnist1d),
        probe=split("probe"),
    )
