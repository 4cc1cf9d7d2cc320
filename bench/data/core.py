"""The data model of the bench: :class:`Dataset`, :class:`Split`, :class:`DataConfig`, the dataset
registry, content hashing and the shared split helpers. The loaders live in :mod:`bench.data.embedded`,
:mod:`bench.data.views` and :mod:`bench.data.fullsize`; :mod:`bench.data` is the public face."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from bench.registry import Registry

# train / val / test where a dataset has no official test split
_FRACTIONS = (0.7, 0.15, 0.15)
# val carved out of an official train split
_VAL_FRACTION = 0.15
# the laws of ``ica``'s sources (:func:`bench.data.embedded.load_ica`)
SOURCES_LAWS = ("laplace", "copula", "elliptical")


# what each dataset provides beyond inputs (a prediction's ``needs`` are checked against it)
PROVIDES = {
    "digits": {"labels"},
    "digits28": {"labels"},
    "digits28c": {"labels"},
    "mnist5k": {"labels"},
    "mnist1d": {"labels"},
    "dsprites": {"labels", "factors"},
    "ica": {"factors"},
    "mnist": {"labels"},
    "fashion_mnist": {"labels"},
    "kmnist": {"labels"},
    "cifar10": {"labels"},
    "svhn": {"labels"},
}


@dataclass(frozen=True)
class DataConfig:
    """Data options, overridable from the command line as ``data.<field>=value``."""

    root: str = "data"  # where torchvision datasets live
    download: bool = False  # only download when the user asks
    split_seed: int = 0  # fixes train/val/test splits, independent of method seeds
    n: int = 20000  # draws for procedural datasets (dsprites, ica)
    sources: int = 8  # ica: number of sources K (= observed dim D)
    mixing: str = "linear"  # ica: "linear" | "nonlinear"
    sources_law: str = "laplace"  # ica: "laplace" (independent) | "copula" (pairs, copula_rho) | "elliptical"
    copula_rho: float = 0.0  # ica, sources_law=copula: Gaussian-copula correlation of sources (0,1), (2,3), ...
    pos_coupling: float | None = None  # dsprites: s in p(pos_x, pos_y) ~ exp(-(c1 - c2)^2 / 2 s^2); none: uniform
    dedupe: bool = False  # dsprites: every factor tuple at most once, so no tuple is in two splits
    pretrain_n: int | None = None  # encoder's data: first N of mnist1d's pool (none: 16384), else stratified N of train

    def __post_init__(self) -> None:
        """Check the dependent-factor options (protocol 11.2c) and store ``pos_coupling=inf`` as
        ``None``, so both spellings of "uncoupled" are one config (one cache key, clean JSON); a
        ``pretrain_n`` is a positive number of draws."""
        if self.pretrain_n is not None and self.pretrain_n < 1:
            raise ValueError(f"pretrain_n must be a positive number of draws or none, got {self.pretrain_n}")
        if self.sources_law not in SOURCES_LAWS:
            raise ValueError(f"unknown sources_law '{self.sources_law}' (choices: {', '.join(SOURCES_LAWS)})")
        if not -1.0 < self.copula_rho < 1.0:
            raise ValueError(f"copula_rho must lie in (-1, 1), got {self.copula_rho}")
        if self.copula_rho != 0.0 and self.sources_law != "copula":
            raise ValueError(f"copula_rho={self.copula_rho} needs sources_law=copula (got '{self.sources_law}')")
        if self.pos_coupling is not None:
            if math.isinf(self.pos_coupling) and self.pos_coupling > 0:
                object.__setattr__(self, "pos_coupling", None)
            elif not self.pos_coupling > 0:  # also refuses nan
                raise ValueError(f"pos_coupling must be > 0 or none (uniform), got {self.pos_coupling}")


#: the ``DataConfig`` fields added after the first confirmatory run, with the defaults that reproduce the
#: data from before they existed (:func:`data_identity` leaves them out of a cache key at these values)
ADDED_DEFAULTS = {
    "sources_law": "laplace",
    "copula_rho": 0.0,
    "pos_coupling": None,
    "dedupe": False,
    "pretrain_n": None,
}


def data_identity(cfg: DataConfig) -> dict:
    """What of ``cfg`` belongs in an encoder's cache key: every field but ``root`` and ``download``
    (where the files live), and without the :data:`ADDED_DEFAULTS` fields at their defaults, so a
    config that sets none of them keys exactly as it did before they were added (a cache filled
    then still hits)."""
    out = dataclasses.asdict(cfg)
    out.pop("root", None)
    out.pop("download", None)
    for name, default in ADDED_DEFAULTS.items():
        if name in out and out[name] == default:
            del out[name]
    return out


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
    #: the split a probe trains on when it is not ``train`` (see :attr:`probe_train`), else None
    probe: Split | None = None
    # memo of :attr:`content_hash`, shared by the copies :meth:`to` makes (the same data elsewhere);
    # ``dataclasses.replace`` (a view, a subset) starts a fresh one
    _memo: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def input_dim(self) -> int:
        """D, the flattened input dimension."""
        return int(self.train.x.shape[1])

    @property
    def probe_train(self) -> Split:
        """The split a linear probe trains on. ``train`` is what the encoder trains on; the two differ
        only when a pretraining set is set apart from the labels the probe reads (docs/protocol.md
        §11.0): ``mnist1d``'s pool prefix vs its 4,000 probe-train draws, a ``data.pretrain_n``
        prefix of train vs the whole train split. Everywhere else this is ``train`` itself."""
        return self.train if self.probe is None else self.probe

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
            self,
            train=self.train.to(device),
            val=self.val.to(device),
            test=self.test.to(device),
            probe=None if self.probe is None else self.probe.to(device),
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

# datasets whose loader reads ``DataConfig.pretrain_n`` itself (a pool of separate draws); for every
# other dataset :func:`bench.data.load_dataset` cuts train to a stratified prefix (:mod:`bench.data.subsets`)
OWN_PRETRAIN = frozenset({"mnist1d"})


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
