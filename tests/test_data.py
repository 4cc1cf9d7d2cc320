"""Tests of bench.data: shapes, splits, procedural generators, missing-data errors, memoisation."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.data import (
    DATASETS,
    DataConfig,
    DataNotFoundError,
    Dataset,
    load_dataset,
    stratified_split,
)
from bench.data.sprites import render as _render_sprites
from bench.registry import UnknownNameError

SMALL = DataConfig(n=2000)
EMBEDDED_IMAGES = {"digits": (1797, (1, 8, 8)), "mnist5k": (5000, (1, 28, 28))}
TORCHVISION = ["mnist", "fashion_mnist", "kmnist", "cifar10", "svhn"]
DSPRITES_GRID = {"shape": 3, "scale": 6, "orientation": 16, "pos_x": 16, "pos_y": 16}


def _splits(ds: Dataset):
    return ds.train, ds.val, ds.test


def _class_fractions(y: torch.Tensor, n_classes: int) -> np.ndarray:
    return np.bincount(y.numpy(), minlength=n_classes) / len(y)


def _assert_stratified(ds: Dataset, tol: float = 0.02) -> None:
    assert ds.n_classes is not None
    fr = [_class_fractions(s.y, ds.n_classes) for s in _splits(ds)]
    for other in fr[1:]:
        np.testing.assert_allclose(other, fr[0], atol=tol)


def _linear_r2(factors: torch.Tensor, x: torch.Tensor) -> float:
    """R^2 of the least-squares affine map factors -> x."""
    s = torch.cat([factors.double(), torch.ones(len(factors), 1, dtype=torch.float64)], 1)
    x = x.double()
    resid = x - s @ torch.linalg.lstsq(s, x).solution
    return float(1 - resid.square().sum() / (x - x.mean(0)).square().sum())


# ----------------------------------------------------------------------------- splits


def test_stratified_split_partitions_and_stratifies():
    y = np.repeat(np.arange(4), [100, 200, 300, 400])
    parts = stratified_split(y, (0.7, 0.15, 0.15), seed=3)
    joined = np.concatenate(parts)
    assert len(joined) == len(y) and len(np.unique(joined)) == len(y)  # disjoint, covering
    assert [len(p) for p in parts] == [700, 150, 150]
    whole = np.bincount(y) / len(y)
    for p in parts:
        assert p.dtype == np.int64
        np.testing.assert_allclose(np.bincount(y[p], minlength=4) / len(p), whole, atol=0.02)


def test_stratified_split_deterministic_in_seed_only():
    y = np.random.default_rng(0).integers(0, 5, size=1000)
    a, b, c = stratified_split(y, seed=1), stratified_split(y, seed=1), stratified_split(y, seed=2)
    for pa, pb in zip(a, b, strict=True):
        np.testing.assert_array_equal(pa, pb)
    assert not np.array_equal(a[0], c[0])


def test_stratified_split_small_classes_exact_totals():
    y = np.arange(100) % 10  # 10 per class: per-class rounding alone would give 80 / 20
    tr, va, te = stratified_split(y, (0.85, 0.15, 0.0))
    assert (len(tr), len(va), len(te)) == (85, 15, 0)
    for part, frac in [(tr, 0.85), (va, 0.15)]:
        assert np.abs(np.bincount(y[part], minlength=10) - frac * 10).max() <= 1


def test_stratified_split_rejects_bad_fractions():
    with pytest.raises(ValueError, match="fractions"):
        stratified_split(np.zeros(10), (0.5, 0.6, 0.1))


# ----------------------------------------------------------------------------- embedded images


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EMBEDDED_IMAGES))
def test_embedded_image_dataset(name):
    total, image_shape = EMBEDDED_IMAGES[name]
    ds = load_dataset(name)
    assert ds.name == name and ds.n_classes == 10 and ds.image_shape == image_shape
    assert ds.input_dim == int(np.prod(image_shape))
    assert ds.factor_names is None and ds.factor_discrete is None
    sizes = [len(s.x) for s in _splits(ds)]
    assert sum(sizes) == total
    np.testing.assert_allclose(np.array(sizes) / total, [0.7, 0.15, 0.15], atol=0.01)
    for s in _splits(ds):
        assert s.x.dtype == torch.float32 and s.y.dtype == torch.int64 and s.factors is None
        assert s.x.shape == (len(s.y), ds.input_dim) and s.x.device.type == "cpu"
        assert s.x.min() >= 0 and s.x.max() <= 1
        assert set(s.y.unique().tolist()) == set(range(10))
    assert max(s.x.max() for s in _splits(ds)) == 1.0  # scaled by the true maximum
    _assert_stratified(ds)


def test_splits_cover_every_row_once():
    from sklearn.datasets import load_digits

    raw = load_digits().data / 16.0
    ds = load_dataset("digits")
    got = torch.cat([s.x for s in _splits(ds)]).double().numpy()
    rows_raw, counts_raw = np.unique(raw.astype(np.float32), axis=0, return_counts=True)
    rows_got, counts_got = np.unique(got.astype(np.float32), axis=0, return_counts=True)
    np.testing.assert_array_equal(rows_got, rows_raw)
    np.testing.assert_array_equal(counts_got, counts_raw)


def test_splits_fixed_by_split_seed():
    loader = DATASETS.get("digits")
    a, b = loader(DataConfig(split_seed=0)), loader(DataConfig(split_seed=0))
    c = loader(DataConfig(split_seed=1))
    for sa, sb in zip(_splits(a), _splits(b), strict=True):
        assert torch.equal(sa.x, sb.x) and torch.equal(sa.y, sb.y)
    assert not torch.equal(a.test.x, c.test.x)


# ----------------------------------------------------------------------------- dsprites


@pytest.fixture(scope="module")
def dsprites() -> Dataset:
    return load_dataset("dsprites", SMALL)


def test_dsprites_shapes_and_factor_grid(dsprites):
    ds = dsprites
    assert ds.image_shape == (1, 32, 32) and ds.input_dim == 1024 and ds.n_classes == 3
    assert ds.factor_names == list(DSPRITES_GRID) and ds.factor_discrete == [True] * 5
    assert sum(len(s.x) for s in _splits(ds)) == SMALL.n
    f = torch.cat([s.factors for s in _splits(ds)])
    assert f.dtype == torch.float32 and f.shape == (SMALL.n, 5)
    for j, size in enumerate(DSPRITES_GRID.values()):
        assert torch.equal(f[:, j].unique(), torch.arange(size, dtype=torch.float32))
    for s in _splits(ds):
        assert torch.equal(s.y, s.factors[:, 0].long()) and s.y.dtype == torch.int64
    _assert_stratified(ds)


def test_dsprites_images_binary_nonempty_inside_canvas(dsprites):
    x = torch.cat([s.x for s in _splits(dsprites)])
    assert x.dtype == torch.float32
    assert torch.equal(x.unique(), torch.tensor([0.0, 1.0]))
    assert (x.sum(1) > 0).all()
    img = x.view(-1, 32, 32)
    border = img[:, [0, -1], :].sum() + img[:, :, [0, -1]].sum()
    assert border == 0


def test_dsprites_larger_scale_lights_more_pixels(dsprites):
    x = torch.cat([s.x for s in _splits(dsprites)])
    scale = torch.cat([s.factors[:, 1] for s in _splits(dsprites)])
    area = torch.stack([x[scale == k].sum(1).mean() for k in range(6)])
    assert (area.diff() > 0).all()


def test_dsprites_shapes_differ_at_same_pose():
    pose = np.random.default_rng(0).integers(0, [6, 16, 16, 16], size=(50, 4))
    imgs = [_render_sprites(np.column_stack([np.full(50, k), pose])) for k in range(3)]
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        assert ((imgs[a] != imgs[b]).flatten(1).sum(1) > 0).all()


def test_dsprites_deterministic_and_seeded():
    loader = DATASETS.get("dsprites")
    a, b = loader(SMALL), loader(SMALL)
    c = loader(DataConfig(n=SMALL.n, split_seed=1))
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.train.factors, b.train.factors)
    assert not torch.equal(a.train.factors, c.train.factors)


# ----------------------------------------------------------------------------- ica


@pytest.mark.parametrize("mixing", ["linear", "nonlinear"])
def test_ica_structure_and_standardisation(mixing):
    cfg = DataConfig(n=2000, sources=5, mixing=mixing)
    ds = load_dataset("ica", cfg)
    assert ds.n_classes is None and ds.image_shape is None and ds.input_dim == 5
    assert ds.factor_discrete == [False] * 5 and len(ds.factor_names) == 5
    assert [len(s.x) for s in _splits(ds)] == [1400, 300, 300]
    for s in _splits(ds):
        assert s.y is None and s.x.dtype == torch.float32 and s.factors.shape == (len(s.x), 5)
    torch.testing.assert_close(ds.train.x.mean(0), torch.zeros(5), atol=1e-5, rtol=0)
    torch.testing.assert_close(ds.train.x.std(0), torch.ones(5), atol=1e-3, rtol=0)
    assert ds.test.x.mean(0).abs().max() > 1e-3  # test is transformed, not refit
    src = torch.cat([s.factors for s in _splits(ds)])
    kurtosis = (src**4).mean(0) / (src**2).mean(0) ** 2
    assert (kurtosis > 4).all()  # Laplace: 6; a Gaussian would give 3


def test_ica_linear_mixing_is_exactly_linear():
    ds = load_dataset("ica", SMALL)
    assert _linear_r2(ds.train.factors, ds.train.x) > 0.999
    assert _linear_r2(ds.test.factors, ds.test.x) > 0.999


def test_ica_nonlinear_mixing_is_not_linear():
    ds = load_dataset("ica", DataConfig(n=2000, mixing="nonlinear"))
    assert _linear_r2(ds.train.factors, ds.train.x) < 0.95


def test_ica_same_sources_same_observations():
    lin = load_dataset("ica", SMALL)
    nonlin = load_dataset("ica", DataConfig(n=2000, mixing="nonlinear"))
    assert torch.equal(lin.train.factors, nonlin.train.factors)  # sources fixed by split_seed
    other = DATASETS.get("ica")(DataConfig(n=2000, split_seed=1))
    assert not torch.equal(lin.train.factors, other.train.factors)


def test_ica_linear_mixing_has_two_rotations():
    """A = Q1 diag(d) Q2^T: x's principal axes are not the sources' directions, so the whitened
    PCA code is a rotation of the sources, not the sources (the old Q diag(d) mixing failed this)."""
    ds = load_dataset("ica", DataConfig(n=20000))
    s, x = ds.train.factors.double(), ds.train.x.double()
    a = torch.linalg.lstsq(s - s.mean(0), x - x.mean(0)).solution.T  # x = A s (+ standardisation)
    sv = torch.linalg.svdvals(a)
    assert sv.max() / sv.min() < 2.5  # well conditioned
    _, vecs = torch.linalg.eigh(torch.cov(x.T))
    pcs = (x - x.mean(0)) @ vecs
    corr = torch.corrcoef(torch.cat([pcs, s], 1).T)[:8, 8:].abs()
    assert corr.max(1).values.mean() < 0.8  # no principal component is close to one source


def test_ica_unknown_mixing():
    with pytest.raises(ValueError, match="linear.*nonlinear"):
        DATASETS.get("ica")(DataConfig(n=100, mixing="quadratic"))


# ----------------------------------------------------------------------------- views


def test_class_subset_view_keeps_the_base_splits_and_renumbers_labels():
    base = load_dataset("mnist5k")
    lo, hi = load_dataset("mnist5k[0-4]"), load_dataset("mnist5k[5-9]")
    assert lo.name == "mnist5k[0-4]" and lo.n_classes == hi.n_classes == 5
    for b, a, c in zip(_splits(base), _splits(lo), _splits(hi), strict=True):
        keep = b.y >= 5
        assert torch.equal(c.x, b.x[keep]) and torch.equal(c.y, b.y[keep] - 5)
        assert torch.equal(a.x, b.x[~keep]) and torch.equal(a.y, b.y[~keep])
    assert load_dataset("digits[0,2,4]").train.y.unique().tolist() == [0, 1, 2]


@pytest.mark.parametrize("bad", ["digits[]", "digits[4-2]", "digits[1,1]", "digits[0-4", "digits[a]"])
def test_malformed_class_subsets_are_refused(bad):
    with pytest.raises(ValueError, match="dataset"):
        load_dataset(bad)


def test_class_subset_outside_the_base_is_refused():
    with pytest.raises(ValueError, match="classes 0..9"):
        load_dataset("digits[8-11]")
    with pytest.raises(ValueError, match="no classes"):
        load_dataset("ica[0-1]", SMALL)


def test_digits28_is_digits_resized_onto_mnists_frame():
    d, d28 = load_dataset("digits"), load_dataset("digits28")
    assert d28.image_shape == (1, 28, 28) and d28.input_dim == 784
    assert torch.equal(d.train.y, d28.train.y) and torch.equal(d.test.y, d28.test.y)  # same rows, same split
    assert 0 <= float(d28.train.x.min()) and float(d28.train.x.max()) <= 1  # mnist5k's intensity scale
    small = torch.nn.functional.interpolate(
        d28.train.x.reshape(-1, 1, 28, 28), size=(8, 8), mode="bilinear", antialias=True
    )
    corr = torch.corrcoef(torch.stack([small.flatten(), d.train.x.flatten()]))[0, 1]
    assert corr > 0.95  # resizing back recovers the 8x8 image


# ----------------------------------------------------------------------------- torchvision


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_missing_files(name, tmp_path):
    root = tmp_path / "nothing_here"
    with pytest.raises(DataNotFoundError) as err:
        load_dataset(name, DataConfig(root=str(root)))
    assert isinstance(err.value, FileNotFoundError)
    assert str(root) in str(err.value) and "data.download=true" in str(err.value)


def _write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array in the IDX format that torchvision's MNIST reader expects."""
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize(("name", "folder"), [("mnist", "MNIST"), ("kmnist", "KMNIST")])
def test_torchvision_mnist_family_from_local_files(name, folder, tmp_path):
    rng = np.random.default_rng(0)
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    sizes = {"train": 400, "t10k": 100}
    for prefix, n in sizes.items():
        images = rng.integers(0, 256, size=(n, 28, 28))
        images[0, 0, 0] = 255
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    ds = load_dataset(name, DataConfig(root=str(tmp_path)))
    assert ds.image_shape == (1, 28, 28) and ds.n_classes == 10 and ds.input_dim == 784
    assert [len(s.x) for s in _splits(ds)] == [340, 60, 100]  # val = 15% of official train
    for s in _splits(ds):
        assert s.x.dtype == torch.float32 and s.y.dtype == torch.int64
        assert s.x.min() >= 0 and s.x.max() <= 1
    assert ds.train.x.max() == 1.0 or ds.val.x.max() == 1.0
    assert torch.equal(ds.test.y, torch.arange(100) % 10)  # official test split, in order
    _assert_stratified(ds, tol=1e-9)


def _pickle(path: Path, obj: object) -> None:
    path.write_bytes(pickle.dumps(obj))


def test_torchvision_cifar10_from_local_files(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)  # no real md5s
    monkeypatch.setattr(tv_cifar.CIFAR10, "_check_integrity", lambda self: True)
    folder = tmp_path / tv_cifar.CIFAR10.base_folder
    folder.mkdir()
    rng = np.random.default_rng(0)
    chw = {}  # batch file -> (n, 3, 32, 32) images as stored (CHW rows)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        chw[name] = rng.integers(0, 256, size=(20, 3, 32, 32)).astype(np.uint8)
        labels = (np.arange(20) % 10).tolist()
        _pickle(folder / name, {"data": chw[name].reshape(20, -1), "labels": labels})
    _pickle(folder / "batches.meta", {"label_names": [str(i) for i in range(10)]})
    ds = load_dataset("cifar10", DataConfig(root=str(tmp_path)))
    assert ds.image_shape == (3, 32, 32) and ds.input_dim == 3072 and ds.n_classes == 10
    assert [len(s.x) for s in _splits(ds)] == [85, 15, 20]
    expected = torch.from_numpy(chw["test_batch"].reshape(20, -1)).float() / 255
    torch.testing.assert_close(ds.test.x, expected, rtol=0, atol=0)  # CHW order, /255


def test_torchvision_svhn_from_local_files(tmp_path, monkeypatch):
    import scipy.io
    import torchvision.datasets.svhn as tv_svhn

    monkeypatch.setattr(tv_svhn.SVHN, "_check_integrity", lambda self: True)
    rng = np.random.default_rng(0)
    chw = {}
    for split, n in [("train", 60), ("test", 30)]:
        chw[split] = rng.integers(0, 256, size=(n, 3, 32, 32)).astype(np.uint8)
        mat = {"X": chw[split].transpose(2, 3, 1, 0), "y": (np.arange(n) % 10 + 1)[:, None]}
        scipy.io.savemat(tmp_path / f"{split}_32x32.mat", mat)  # SVHN's (H, W, C, N) layout
    ds = load_dataset("svhn", DataConfig(root=str(tmp_path)))
    assert ds.image_shape == (3, 32, 32) and ds.n_classes == 10
    assert [len(s.x) for s in _splits(ds)] == [51, 9, 30]
    expected = torch.from_numpy(chw["test"].reshape(30, -1)).float() / 255
    torch.testing.assert_close(ds.test.x, expected, rtol=0, atol=0)
    assert torch.equal(ds.test.y, (torch.arange(30) + 1) % 10)  # label 10 means digit 0


# ----------------------------------------------------------------------------- registry, cache


def test_unknown_name():
    with pytest.raises(UnknownNameError, match="digits"):
        load_dataset("no_such_dataset")


def test_registry_lists_all_datasets_with_descriptions():
    expected = {"digits", "digits28", "digits28c", "mnist5k", "mnist1d", "dsprites", "ica", *TORCHVISION}
    assert set(DATASETS.names()) == expected
    for name in expected:
        doc = DATASETS.get(name).__doc__
        assert doc and doc.strip().splitlines()[0]
    assert load_dataset("digits").description == DATASETS.get("digits").__doc__.splitlines()[0]


def test_load_dataset_memoises_per_config():
    a, b = load_dataset("ica", SMALL), load_dataset("ica", SMALL)
    assert a.train.x is b.train.x and a.test.factors is b.test.factors
    c = load_dataset("ica", DataConfig(n=2000, split_seed=5))
    assert c.train.x is not a.train.x


def test_to_moves_every_tensor():
    ds = load_dataset("ica", SMALL).to(torch.device("cpu"))
    moved = ds.to("meta")
    assert moved is not ds and moved.name == ds.name
    for s in _splits(moved):
        assert s.x.device.type == "meta" and s.factors.device.type == "meta"
    assert ds.train.x.device.type == "cpu"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["digits", "mnist5k", "dsprites", "ica"])
def test_provides_declares_what_each_dataset_has(name):
    from bench.data import PROVIDES

    ds = load_dataset(name, SMALL)
    assert ("labels" in PROVIDES[name]) == (ds.n_classes is not None)
    assert ("factors" in PROVIDES[name]) == (ds.train.factors is not None)


def test_every_registered_dataset_declares_what_it_provides():
    from bench.data import PROVIDES

    assert set(PROVIDES) == set(DATASETS.names())


def test_config_accepts_class_subset_datasets_and_refuses_bad_ones():
    from bench.config import ConfigError, parse_overrides

    cfg = parse_overrides(["prediction=probe", "dataset=mnist5k[0-4]"])
    assert cfg.dataset == "mnist5k[0-4]" and cfg.resolved_epochs(cfg.dataset) == cfg.resolved_epochs("mnist5k")
    for bad in ("dataset=nope[0-4]", "dataset=digits[4-2]", "dataset=[digits]"):
        with pytest.raises(ConfigError):
            parse_overrides(["prediction=probe", bad])
