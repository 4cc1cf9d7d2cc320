"""The torchvision-backed datasets (docs/protocol.md §2): read from ``data.root``, downloaded only on request.

Registered in :data:`bench.data.DATASETS` like the embedded ones; official test splits, val
carved from train, statistics fit on train only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from bench.data.core import (
    _VAL_FRACTION,
    DATASETS,
    DataConfig,
    DataNotFoundError,
    Dataset,
    Split,
    _make_split,
    _summary,
    stratified_split,
)


class DataCorruptError(DataNotFoundError):
    """A dataset file is present but unreadable (truncated, partial, replaced); the message names it."""


IDX_FILES = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "kmnist": "KMNIST"}


def _idx_problem(path: Path) -> str | None:
    """What is wrong with an IDX file (MNIST's format: 2 zero bytes, a type code, ndim, ndim
    big-endian int32 sizes, then the values), or None when its size matches its header."""
    sizes = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}
    with open(path, "rb") as f:
        head = f.read(4)
        if len(head) < 4 or head[:2] != b"\0\0" or head[2] not in sizes or not 1 <= head[3] <= 4:
            return "not an IDX file (bad header)"
        dims = f.read(4 * head[3])
    if len(dims) < 4 * head[3]:
        return "truncated header"
    n = int(np.prod([int.from_bytes(dims[i : i + 4], "big") for i in range(0, len(dims), 4)]))
    want, got = 4 + len(dims) + n * sizes[head[2]], path.stat().st_size
    return None if got == want else f"{got} bytes where its header says {want} (truncated or partial)"


def check_files(name: str, root: str, md5: bool = True) -> str | None:
    """One line naming the first present-but-corrupt file of dataset ``name`` under ``root``
    (missing files are the loader's 'not found' error); None when every present file is sound.
    IDX files are checked against their header; CIFAR-10 and SVHN files against their MD5
    (``md5=False`` skips those: torchvision verifies them before it reads them)."""
    from torchvision.datasets.utils import check_integrity

    files: list[tuple[Path, str | None]] = []
    if name in IDX_FILES:
        raw = Path(root) / IDX_FILES[name] / "raw"
        files = [
            (raw / f"{part}-{kind}-idx{3 if kind == 'images' else 1}-ubyte", None)
            for part in ("train", "t10k")
            for kind in ("images", "labels")
        ]
    elif name == "cifar10":
        from torchvision.datasets import CIFAR10

        files = [(Path(root) / CIFAR10.base_folder / f, md5) for f, md5 in CIFAR10.train_list + CIFAR10.test_list]
    elif name == "svhn":
        from torchvision.datasets import SVHN

        files = [(Path(root) / f, md5) for _, f, md5 in (SVHN.split_list[k] for k in ("train", "test"))]
    for path, digest in files:
        if not path.is_file() or (digest is not None and not md5):
            continue
        problem = (
            _idx_problem(path) if digest is None else (None if check_integrity(str(path), digest) else "MD5 mismatch")
        )
        if problem:
            return (
                f"{name}: corrupt dataset file {path}: {problem}. Delete it and fetch it again "
                f"(data.download=true), or point data.root= at a good copy."
            )
    return None


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
    bad = check_files(name, cfg.root, md5=False)  # IDX sizes (cheap); torchvision checks MD5s itself
    if bad:
        raise DataCorruptError(bad)
    try:
        parts = [make(True), make(False)]
    except Exception as err:
        bad = check_files(name, cfg.root)
        if bad:
            raise DataCorruptError(bad) from err
        if cfg.download or not isinstance(err, RuntimeError):
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
    tr, va, _ = stratified_split(y_tr.numpy(), (1.0 - _VAL_FRACTION, _VAL_FRACTION, 0.0), cfg.split_seed)
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
