"""``mnist1d`` and nested pretraining subsets (docs/protocol.md §11.0; the planted controls of §11.5.9).

MNIST-1D is Greydanus's (2020) procedural dataset, generated in :mod:`bench.data.mnist1d`; the
loader must be offline, file-free and leave numpy's global RNG alone, draw its splits from
disjoint streams with exactly balanced classes, nest its pool's prefixes, and read what the paper
reads with a raw-input logistic regression. ``data.pretrain_n`` on ``mnist5k`` cuts the encoder's
train to nested stratified prefixes while the probe keeps all of train (:mod:`bench.data.subsets`).
"""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
from scipy.interpolate import interp1d
from scipy.ndimage import gaussian_filter

from bench.data import DATASETS, PROVIDES, DataConfig, Dataset, Split, load_dataset
from bench.data import mnist1d as m1
from bench.data.subsets import pretrain_subset, stratified_order

SMALL = DataConfig(pretrain_n=1_024)  # the pool's smallest N: one generator chunk
MNIST5K_NS = (437, 875, 1_750, 3_500)


def _splits(ds):
    return {"train": ds.train, "probe": ds.probe_train, "val": ds.val, "test": ds.test}


# ----------------------------------------------------------------------------- the generator


def _reference_transform(x: np.ndarray, d: m1.Draws) -> np.ndarray:
    """One row at a time, the upstream steps as written in Greydanus's ``transform.py`` (pad with
    concatenate, ``interp1d``, roll as two slices, 1-D ``gaussian_filter``), fed the same draws."""
    out = []
    for i, row in enumerate(x):
        s = np.concatenate([row + m1.EPS, np.zeros(d.pad[i])])
        s = interp1d(np.linspace(0, 1, len(s)), s, kind="linear")(np.linspace(0, 1, m1.WIDTH))
        s = s * (1 + m1.SCALE_COEFF * (d.scale[i] - 0.5))
        k = d.shift[i]
        s = np.concatenate([s[-k:], s[:-k]]) if k else s
        mask = s != 0
        s = mask * s + (1 - mask) * gaussian_filter(m1.CORR_NOISE_SCALE * d.corr[i], m1.CORR_NOISE_SIGMA)
        s = s + m1.IID_NOISE_SCALE * d.iid[i]
        s = s - m1.SHEAR_SCALE * (d.shear[i] - 0.5) * np.linspace(-0.5, 0.5, len(s))
        out.append(interp1d(np.linspace(0, 1, len(s)), s, kind="linear")(np.linspace(0, 1, m1.FINAL_LENGTH)))
    return np.stack(out)


def test_transform_equals_a_row_by_row_transcription_of_the_upstream_steps():
    rng = np.random.default_rng(3)
    y = np.arange(300) % 10
    d = m1.Draws.sample(rng, len(y), m1.WIDTH)
    d = m1.Draws(**{**vars(d), "shift": np.where(np.arange(len(y)) < 5, 0, d.shift)})  # k = 0 included
    got = m1.transform(m1.templates()[y], d)
    np.testing.assert_allclose(got, _reference_transform(m1.templates()[y], d), rtol=0, atol=1e-12)
    assert got.shape == (300, 40)


def test_templates_start_and_end_at_zero_and_are_distinct():
    t = m1.templates()
    assert t.shape == (10, 12)
    assert np.all(t[:, 0] == 0) and np.allclose(t[:, -1], 0)
    assert np.allclose((t * 6).std(1), 1)  # standardised before the shift and the / 6
    assert len({row.tobytes() for row in t}) == 10


def test_the_padding_alone_gets_correlated_noise():
    """A point of the template (never exactly 0: + eps) keeps its value; the padding is noise."""
    n = 200
    rng = np.random.default_rng(0)
    d = m1.Draws.sample(rng, n, m1.WIDTH)
    quiet = m1.Draws(**{**vars(d), "iid": np.zeros_like(d.iid), "corr": np.zeros_like(d.corr)})
    loud = m1.Draws(**{**vars(quiet), "corr": 100.0 * np.ones_like(d.corr)})
    x = m1.templates()[np.arange(n) % 10]
    a, b = m1.transform(x, quiet), m1.transform(x, loud)
    moved = np.abs(a - b) > 1
    assert moved.any(1).all()  # every draw has padding (36..60 of 72 points)
    assert (~moved).any(1).all()  # and template points the noise does not touch


# ----------------------------------------------------------------------------- the loader's planted controls


def test_registered_with_labels_and_one_dimensional_inputs():
    ds = load_dataset("mnist1d", SMALL)
    assert "mnist1d" in DATASETS.names() and PROVIDES["mnist1d"] == {"labels"}
    assert ds.n_classes == 10 and ds.image_shape is None and ds.input_dim == 40
    sizes = {k: len(s.x) for k, s in _splits(ds).items()}
    assert sizes == {"train": 1_024, "probe": m1.PROBE_TRAIN, "val": m1.VAL, "test": m1.TEST}
    for s in _splits(ds).values():
        assert s.x.dtype == torch.float32 and s.y.dtype == torch.int64 and s.factors is None
    assert len(load_dataset("mnist1d").train.x) == m1.DEFAULT_PRETRAIN


def test_scalar_standardisation_fit_on_probe_train():
    ds = load_dataset("mnist1d", SMALL)
    p = ds.probe_train.x.double()
    assert abs(float(p.mean())) < 1e-6 and abs(float(p.std(unbiased=False)) - 1) < 1e-6
    per_point = p.std(0)
    assert float(per_point.max() - per_point.min()) > 0.1  # one scalar pair, not per-point statistics
    assert abs(float(ds.test.x.double().mean())) > 1e-6  # the test split's own statistics were not used


def test_deterministic_in_n_and_seed():
    load = DATASETS.get("mnist1d")  # the loader itself: no memo between loads
    a, b = load(SMALL), load(SMALL)
    c = load(DataConfig(pretrain_n=1_024, split_seed=1))
    for k in _splits(a):
        sa, sb, sc = _splits(a)[k], _splits(b)[k], _splits(c)[k]
        assert torch.equal(sa.x, sb.x) and torch.equal(sa.y, sb.y)
        assert not torch.equal(sa.x, sc.x)


def test_numpy_global_rng_state_is_unchanged():
    np.random.seed(1234)
    before = np.random.get_state()
    DATASETS.get("mnist1d")(SMALL)
    after = np.random.get_state()
    assert before[0] == after[0] and np.array_equal(before[1], after[1]) and before[2:] == after[2:]


def test_no_socket_and_no_file(tmp_path, monkeypatch):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("the mnist1d loader must not open a connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.chdir(tmp_path)
    before = sorted(os.walk(tmp_path))
    ds = DATASETS.get("mnist1d")(SMALL)
    assert len(ds.train.x) == 1_024
    assert attempts == [] and sorted(os.walk(tmp_path)) == before
    assert not os.path.exists("mnist1d_data.pkl")


def test_classes_balanced_exactly_and_every_pool_prefix_within_one():
    ds = load_dataset("mnist1d", DataConfig(pretrain_n=m1.CHUNK * 2 + 7))  # crosses generator chunks
    for name, size in (("probe", m1.PROBE_TRAIN), ("val", m1.VAL), ("test", m1.TEST)):
        counts = torch.bincount(_splits(ds)[name].y, minlength=10)
        assert counts.tolist() == [size // 10] * 10, name
    onehot = torch.nn.functional.one_hot(ds.train.y, 10).cumsum(0)  # class counts of every prefix
    assert int((onehot.max(1).values - onehot.min(1).values).max()) <= 1


def test_the_draws_are_disjoint():
    """No row occurs in two splits (nor twice in one): each split is its own generator stream."""
    ds = load_dataset("mnist1d", SMALL)
    rows = torch.cat([s.x for s in _splits(ds).values()]).numpy()
    assert len(np.unique(rows, axis=0)) == len(rows)
    assert len(set(m1.STREAMS.values())) == len(m1.STREAMS)
    pool, probe = m1.draw(0, m1.STREAMS["pool"], 50)[0], m1.draw(0, m1.STREAMS["probe"], 50)[0]
    assert not np.isclose(pool[:, None, :], probe[None, :, :]).all(-1).any()


def test_pool_prefixes_are_nested_and_the_other_splits_do_not_move():
    small, big = load_dataset("mnist1d", SMALL), load_dataset("mnist1d", DataConfig(pretrain_n=4_096))
    assert torch.equal(small.train.x, big.train.x[:1_024]) and torch.equal(small.train.y, big.train.y[:1_024])
    for k in ("probe", "val", "test"):
        assert torch.equal(_splits(small)[k].x, _splits(big)[k].x)
    x7, y7 = m1.draw(5, 0, m1.CHUNK + 1)
    x9, y9 = m1.draw(5, 0, 2 * m1.CHUNK + 3)
    assert np.array_equal(x7, x9[: m1.CHUNK + 1]) and np.array_equal(y7, y9[: m1.CHUNK + 1])


def test_pretrain_n_outside_the_pool_is_refused():
    with pytest.raises(ValueError, match="262144"):
        DATASETS.get("mnist1d")(DataConfig(pretrain_n=m1.POOL + 1))
    with pytest.raises(ValueError, match="pretrain_n"):
        DataConfig(pretrain_n=0)


def test_raw_logistic_regression_reads_greydanus_32_percent():
    """Greydanus (2020), 4,000 train / 1,000 test: logistic regression 32% (MLP 68%, CNN 94%)."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    ds = load_dataset("mnist1d", SMALL)
    p, t = ds.probe_train, ds.test
    with threadpool_limits(1):  # a 4,000 x 40 fit: threads only contend
        clf = LogisticRegression(max_iter=1_000).fit(p.x.numpy(), p.y.numpy())
    acc = clf.score(t.x[:1_000].numpy(), t.y[:1_000].numpy())
    assert abs(acc - 0.32) <= 0.07, acc


def test_to_moves_the_probe_split():
    moved = load_dataset("mnist1d", SMALL, device="meta")
    assert moved.probe_train.x.device.type == "meta" and moved.train.x.device.type == "meta"


# ----------------------------------------------------------------------------- nested stratified prefixes


def test_every_prefix_of_the_stratified_order_is_stratified():
    y = np.repeat(np.arange(10), [350, 350, 349, 351, 300, 400, 350, 350, 350, 350])
    order = stratified_order(y, 0)
    assert np.array_equal(np.sort(order), np.arange(len(y)))
    counts = np.cumsum(np.eye(10)[y[order]], axis=0)  # (n, 10) class counts of every prefix
    share = np.arange(1, len(y) + 1)[:, None] * np.bincount(y) / len(y)
    assert np.abs(counts - share).max() < 1 + 1e-9
    assert not np.array_equal(order, stratified_order(y, 1))
    assert np.abs(np.cumsum(np.eye(10)[y[np.random.default_rng(0).permutation(len(y))]], 0) - share).max() > 1


@pytest.fixture(scope="module")
def mnist5k_ns():
    return {n: load_dataset("mnist5k", DataConfig(pretrain_n=n)) for n in MNIST5K_NS}


def _row_set(x: torch.Tensor) -> set[bytes]:
    return {r.tobytes() for r in x.numpy()}


def test_mnist5k_prefixes_are_nested_and_stratified(mnist5k_ns):
    sets = [_row_set(mnist5k_ns[n].train.x) for n in MNIST5K_NS]
    for n, ds, rows in zip(MNIST5K_NS, mnist5k_ns.values(), sets, strict=True):
        assert len(ds.train.x) == n == len(rows)
        counts = torch.bincount(ds.train.y, minlength=10)
        assert int(counts.max() - counts.min()) <= 1, (n, counts.tolist())
    assert all(a < b for a, b in zip(sets, sets[1:], strict=False))


def test_mnist5k_probe_keeps_all_train_labels_and_val_test_stay(mnist5k_ns):
    full = load_dataset("mnist5k")
    for ds in mnist5k_ns.values():
        assert torch.equal(ds.probe_train.x, full.train.x) and torch.equal(ds.probe_train.y, full.train.y)
        assert torch.equal(ds.val.x, full.val.x) and torch.equal(ds.test.y, full.test.y)


def test_mnist5k_default_is_todays_loader_bit_for_bit(mnist5k_ns):
    today = DATASETS.get("mnist5k")(DataConfig())  # the registered loader, untouched by pretrain_n
    ds = load_dataset("mnist5k")
    for a, b in ((ds.train, today.train), (ds.val, today.val), (ds.test, today.test)):
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert ds.probe is None and ds.probe_train is ds.train
    assert ds.content_hash == today.content_hash == mnist5k_ns[3_500].content_hash
    assert mnist5k_ns[1_750].content_hash != ds.content_hash


def test_pretrain_n_larger_than_train_is_refused():
    with pytest.raises(ValueError, match="3500"):
        load_dataset("mnist5k", DataConfig(pretrain_n=3_501))


def test_a_class_subset_view_cuts_the_probe_split_too():
    ds = load_dataset("mnist5k[0-4]", DataConfig(pretrain_n=875))
    assert set(ds.probe_train.y.tolist()) == set(range(5)) and len(ds.probe_train.x) == 1_750
    assert set(ds.train.y.tolist()) <= set(range(5))


def test_pretrain_subset_keeps_train_order_and_works_without_labels():
    n = 500
    split = Split(x=torch.arange(n, dtype=torch.float32)[:, None], y=torch.arange(n) % 3, factors=None)
    ds = Dataset("toy", split, split, split, 3, None, None, None)
    sub = pretrain_subset(ds, 101, 0)
    kept = sub.train.x[:, 0].long()
    assert torch.equal(kept, kept.sort().values) and torch.equal(sub.train.y, kept % 3)
    assert sub.probe_train is ds.train and sub.val is ds.val
    assert torch.bincount(sub.train.y).tolist() in ([34, 34, 33], [34, 33, 34], [33, 34, 34])
    assert pretrain_subset(ds, n, 0) is ds
    unlabelled = Dataset("toy", Split(split.x, None, None), split, split, None, None, None, None)
    assert len(pretrain_subset(unlabelled, 7, 0).train.x) == 7
