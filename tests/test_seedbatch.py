"""Seeds trained together (bench.train.seedbatch) against the reference path, one seed at a time.

For every method with a batched step: S = 3 seeds, 2 epochs, both ways; every parameter and buffer
must be ``torch.equal`` and the per-epoch loss histories and convergence scores equal. A seed that
diverges is recorded as failed with the single-seed trainer's reason while the others go on.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from bench.catalog import load_all
from bench.config import RunConfig
from bench.data import DataConfig, load_dataset
from bench.train.methods import METHODS, DataInfo, Method, MethodConfig
from bench.train.seedbatch import batchable, stacked_linear, train_group
from bench.train.trainer import fit_encoder

load_all()
CPU = torch.device("cpu")
SEEDS = [0, 1, 2]
BATCHED = sorted(n for n in METHODS.names() if batchable(n))


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", DataConfig(), CPU)


def both_ways(name, ds, seeds=SEEDS, epochs=2, width=16, datasets=None):
    cfg = RunConfig().method_config(name)
    datasets = datasets or [ds] * len(seeds)
    group = train_group(name, cfg, datasets, width, seeds, epochs=epochs, batch_size=128, device=CPU)
    one = [
        fit_encoder(name, cfg, d, width, s, epochs=epochs, batch_size=128, device=CPU)
        for d, s in zip(datasets, seeds, strict=True)
    ]
    return group, one


def assert_same(group, one):
    for (mg, meta_g), (mo, meta_o) in zip(group, one, strict=True):
        assert meta_g["status"] == meta_o["status"], (meta_g.get("reason"), meta_o.get("reason"))
        assert meta_g.get("reason") == meta_o.get("reason")
        assert repr(meta_g["history"]) == repr(meta_o["history"])  # repr: NaN equals NaN, floats exact
        assert meta_g.get("convergence") == meta_o.get("convergence") or (
            {k: v for k, v in meta_g["convergence"].items() if k != "seconds"}
            == {k: v for k, v in meta_o["convergence"].items() if k != "seconds"}
        )
        if mo is None:
            assert mg is None
            continue
        sg, so = mg.state_dict(), mo.state_dict()
        assert list(sg) == list(so)
        for k in so:
            assert torch.equal(sg[k], so[k]), f"{k}: max |d| {(sg[k].double() - so[k].double()).abs().max():.3g}"


def test_the_subject_and_the_autoencoders_are_batched():
    assert {"infomax", "infomax_noem", "infomax_softmax", "lse_only"} <= set(BATCHED)
    assert not batchable("pca") and not batchable("raw")  # closed-form / nothing to train


@pytest.mark.slow
def test_a_step_that_does_not_pay_on_large_inputs_trains_one_seed_at_a_time(digits):
    assert batchable("ae", 64) and not batchable("ae", 784)  # ae.batch_max_dim: measured on mnist5k
    assert batchable("infomax", 784) and batchable("infomax", 4096)
    # the same cell with the input wider than the limit: the reference path, one seed at a time
    ae = METHODS.get("ae")
    old = ae.batch_max_dim
    try:
        ae.batch_max_dim = digits.input_dim - 1
        group, one = both_ways("ae", digits, epochs=1)
    finally:
        ae.batch_max_dim = old
    assert all("seed_group" not in meta for _, meta in group)
    assert_same(group, one)


@pytest.mark.slow
@pytest.mark.parametrize("name", BATCHED)
def test_batched_seeds_equal_one_seed_at_a_time(name, digits):
    if METHODS.get(name).unsupported(DataInfo(digits.input_dim, digits.n_classes, digits.image_shape)):
        pytest.skip(f"{name} does not run on digits")
    group, one = both_ways(name, digits)
    assert all(meta["seed_group"] == 3 for _, meta in group)
    assert_same(group, one)


@pytest.mark.slow
def test_seeds_on_their_own_splits_are_batched_too():
    """confirm: each seed trains on its own split seed's data (another train set of the same shape)."""
    dss = [load_dataset("digits", DataConfig(split_seed=s), CPU) for s in (100, 101)]
    assert not torch.equal(dss[0].train.x, dss[1].train.x)
    group, one = both_ways("infomax", None, seeds=[100, 101], datasets=dss)
    assert group[0][1]["seed_group"] == 2
    assert_same(group, one)


@pytest.mark.slow
def test_timing_is_the_groups_wall_time_shared(digits):
    group, _ = both_ways("infomax", digits, epochs=1)
    metas = [m for _, m in group]
    assert {m["group_seconds"] for m in metas} == {metas[0]["group_seconds"]}
    assert metas[0]["train_seconds"] == pytest.approx(metas[0]["group_seconds"] / 3)


# ----------------------------------------------------------------------------- a seed that diverges
@dataclass(frozen=True)
class _Cfg(MethodConfig):
    pass


class _Fragile(Method):
    """A toy method whose loss is NaN for the seeds whose initial draw ``u`` is below 0.5."""

    name = "_fragile"
    Config = _Cfg
    batched = True

    def __init__(self, cfg, info, width):
        super().__init__(cfg, info, width)
        self.encoder = nn.Linear(info.input_dim, width)
        self.register_buffer("u", torch.rand(()))

    def encode(self, x):
        return torch.relu(self.encoder(x))

    def loss_terms(self, x, y=None):
        return {"l": self.encode(x).pow(2).mean() * torch.log(self.u - 0.5)}

    def loss_terms_batched(self, p, b, x, y, rng):
        a = torch.relu(stacked_linear(x, p["encoder.weight"], p["encoder.bias"]))
        return {"l": a.pow(2).mean((-2, -1)) * torch.log(b["u"] - 0.5)}


def test_a_diverged_seed_fails_alone(digits):
    METHODS.register()(_Fragile)
    try:
        us = {}
        for s in range(8):
            torch.manual_seed(s)
            us[s] = float(_Fragile(_Cfg(), DataInfo(digits.input_dim), 4).u)
        bad = [s for s in us if us[s] < 0.5][:1]
        good = [s for s in us if us[s] >= 0.5][:2]
        assert bad and len(good) == 2
        seeds = [good[0], bad[0], good[1]]
        group, one = both_ways("_fragile", digits, seeds=seeds, width=4)
        assert [m["status"] for _, m in group] == ["ok", "failed", "ok"]
        assert "non-finite loss" in group[1][1]["reason"]
        assert_same(group, one)
    finally:
        METHODS._items.pop("_fragile", None)


def test_unlabelled_data_is_batched_too():
    """ica has no labels (y is None): the seeds still train together, bit for bit."""
    ica = load_dataset("ica", DataConfig(n=2000), CPU)
    assert ica.train.y is None
    group, one = both_ways("infomax", ica, seeds=[0, 1], epochs=1, width=8)
    assert group[0][1]["seed_group"] == 2
    assert_same(group, one)
