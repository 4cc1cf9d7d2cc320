"""The two-view methods' batched step, beyond tests/test_seedbatch.py's digits run at the defaults.

* each seed's views drawn from its own generator equal ``make_views`` of its slice under that
  seed's global RNG (images with a partial batch and without noise, vectors);
* the stacked heads: batch norm per seed with its running statistics, on both of its layouts,
  and Barlow Twins' ``a.mT @ b`` with ``mm``'s gradients;
* whole runs, batched against one seed at a time (every parameter and buffer ``torch.equal``,
  equal loss histories): on vectors (``ica``), with a projector width that takes batch norm's
  per-seed path, and with MoCo queues smaller than a batch (keys truncated) or wrapping mid-queue.

A method whose batched step is bit-identical but does not pay on a CPU keeps ``batched = False``
(trained one seed at a time); its batched step is still tested here, switched on for the test
(``on``), on digits as tests/test_seedbatch.py does for the methods that are on.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench.config import RunConfig
from bench.data import DataConfig, load_dataset
from bench.train import stacked_nn
from bench.train.augment import AugmentConfig, make_views, make_views_stacked
from bench.train.methods import METHODS
from bench.train.seedbatch import train_group
from bench.train.trainer import fit_encoder

CPU = torch.device("cpu")
TWO_VIEW = ["simclr", "moco", "byol", "swav", "barlow_twins", "vicreg"]


@pytest.fixture
def on(monkeypatch):
    """Switch a method's batched step on for the test (``on("moco")``), whatever its class says."""
    return lambda name: monkeypatch.setattr(METHODS.get(name), "batched", True)


@pytest.mark.parametrize(
    ("image_shape", "cfg"),
    [
        ((1, 8, 8), AugmentConfig()),
        ((1, 8, 8), AugmentConfig(noise_std=0.0, erase_prob=1.0)),
        ((3, 5, 7), AugmentConfig()),
        (None, AugmentConfig()),
    ],
)
def test_stacked_views_are_each_seeds_own(image_shape, cfg):
    S, B = 3, 106  # a partial batch: the seeds' rows do not start on a vector boundary
    d = 64 if image_shape is None else image_shape[0] * image_shape[1] * image_shape[2]
    x = torch.rand(S, B, d)
    gens = [torch.Generator().manual_seed(10 + s) for s in range(S)]
    v1, v2 = make_views_stacked(x, image_shape, cfg, gens)
    assert v1.shape == v2.shape == (S, B, d)
    for s in range(S):
        torch.manual_seed(10 + s)
        w1, w2 = make_views(x[s], image_shape, cfg)
        assert torch.equal(v1[s], w1) and torch.equal(v2[s], w2)
    assert not torch.equal(v1[0], v1[1])  # each seed its own draws


@pytest.mark.parametrize("hidden", [32, 20])  # (B, S*H) layout; per seed (20 is off the vector width)
def test_stacked_batch_norm_is_each_seeds_own(hidden):
    S, B = 3, 106
    mods = []
    for s in range(S):
        torch.manual_seed(s)
        bn = nn.BatchNorm1d(hidden)
        nn.init.normal_(bn.weight)
        nn.init.normal_(bn.bias)
        bn.running_mean.normal_()
        mods.append(bn)
    p = {
        n: torch.stack([dict(m.named_parameters())[n].detach() for m in mods]).requires_grad_()
        for n in ("weight", "bias")
    }
    b = {n: torch.stack([dict(m.named_buffers())[n] for m in mods]) for n in dict(mods[0].named_buffers())}
    x = torch.randn(S, B, hidden, requires_grad=True)
    g = torch.randn(S, B, hidden)
    out = stacked_nn.forward(
        mods[0], "bn", x, {"bn." + k: v for k, v in p.items()}, {"bn." + k: v for k, v in b.items()}
    )
    out.backward(g)
    for s, m in enumerate(mods):
        xs = x[s].detach().clone().requires_grad_()
        o = m(xs)
        o.backward(g[s])
        assert torch.equal(out[s], o)
        assert torch.equal(x.grad[s], xs.grad)
        assert torch.equal(p["weight"].grad[s], m.weight.grad) and torch.equal(p["bias"].grad[s], m.bias.grad)
        for n, t in m.named_buffers():
            assert torch.equal(b[n][s], t), n
    assert b["num_batches_tracked"].tolist() == [1] * S


def test_tmm_has_mms_values_and_gradients():
    S, B = 3, 106
    a, c = torch.randn(S, B, 48, requires_grad=True), torch.randn(S, B, 40, requires_grad=True)
    # a gradient that goes on through a batch statistic: bmm's transposed-view gradient broke this
    out = stacked_nn.tmm(F.normalize(a - a.mean(-2, keepdim=True), dim=-2), c)
    g = torch.randn_like(out)
    out.backward(g)
    for s in range(S):
        a_s, c_s = a[s].detach().clone().requires_grad_(), c[s].detach().clone().requires_grad_()
        o = F.normalize(a_s - a_s.mean(0, keepdim=True), dim=0).T @ c_s
        o.backward(g[s])
        assert torch.equal(out[s], o)
        assert torch.equal(a.grad[s], a_s.grad) and torch.equal(c.grad[s], c_s.grad)


def _both_ways(name, cfg, datasets, seeds, width=16, epochs=2, track=False):
    group = train_group(name, cfg, datasets, width, seeds, epochs=epochs, batch_size=128, device=CPU, track=track)
    one = [
        fit_encoder(name, cfg, d, width, s, epochs=epochs, batch_size=128, device=CPU, track=track)
        for d, s in zip(datasets, seeds, strict=True)
    ]
    for (mg, meta_g), (mo, meta_o) in zip(group, one, strict=True):
        assert meta_g["seed_group"] == len(seeds)
        assert meta_g["status"] == meta_o["status"] == "ok"
        assert repr(meta_g["history"]) == repr(meta_o["history"])
        if track:
            drop = {"seconds"}
            assert {k: v for k, v in meta_g["convergence"].items() if k not in drop} == {
                k: v for k, v in meta_o["convergence"].items() if k not in drop
            }
        sg, so = mg.state_dict(), mo.state_dict()
        assert list(sg) == list(so)
        for k in so:
            assert torch.equal(sg[k], so[k]), f"{k}: max |d| {(sg[k].double() - so[k].double()).abs().max():.3g}"
    return group


@pytest.mark.slow
@pytest.mark.parametrize("name", TWO_VIEW)
def test_digits_batched_equal_one_seed_at_a_time(name, digits, on):
    """tests/test_seedbatch.py's check (S = 3, 2 epochs, convergence scores too) for a method that is off."""
    if METHODS.get(name).batched:
        pytest.skip("on: tests/test_seedbatch.py checks it")
    on(name)
    _both_ways(name, RunConfig().method_config(name), [digits] * 3, [0, 1, 2], track=True)


@pytest.mark.slow
@pytest.mark.parametrize("name", TWO_VIEW)
def test_vectors_batched_equal_one_seed_at_a_time(name, on):
    on(name)
    ds = load_dataset("ica", DataConfig(), CPU)
    # dummy labels (unused by these methods): train_group (at 4e2d1e7) reads train.y.shape, None on ica
    ds = dataclasses.replace(ds, train=dataclasses.replace(ds.train, y=torch.zeros(len(ds.train.x), dtype=torch.long)))
    _both_ways(name, RunConfig().method_config(name), [ds] * 2, [0, 1], epochs=1)


def test_a_projector_width_off_the_vector_width(digits, on):
    """proj_hidden 20: batch norm's per-seed path inside a whole run."""
    on("byol")
    cfg = dataclasses.replace(RunConfig().method_config("byol"), proj_hidden=20, pred_hidden=24)
    _both_ways("byol", cfg, [digits] * 2, [0, 1], epochs=1)


@pytest.mark.parametrize("queue_size", [100, 300])  # smaller than a batch (keys truncated); wrapping mid-queue
def test_moco_queues_stay_each_seeds_own(digits, queue_size, on):
    on("moco")
    cfg = dataclasses.replace(RunConfig().method_config("moco"), queue_size=queue_size)
    group = _both_ways("moco", cfg, [digits] * 3, [0, 1, 2], epochs=1)
    n = digits.train.x.shape[0]  # one epoch enqueues every training input's key once
    expect = 0 if queue_size < 128 else n % queue_size
    assert [int(m.queue_ptr) for m, _ in group] == [expect] * 3


@pytest.mark.parametrize("size", [[128, 1, 28, 28], [106, 1, 8, 8], [64, 3, 5, 9], [7, 1, 1, 4]])
def test_cached_affine_grid_is_affine_grid(size):
    from bench.train.augment import affine_grid

    for _ in range(2):  # built, then from the cache
        theta = torch.randn(size[0], 2, 3)
        assert torch.equal(affine_grid(theta, size), F.affine_grid(theta, size, align_corners=False))
