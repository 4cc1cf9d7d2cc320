"""compile=true (bench.train.compiled): its own job keys, a loss that falls like the eager one, torch's Adam."""

from __future__ import annotations

import dataclasses
import shutil

import pytest
import torch

from bench.data import DataConfig, load_dataset
from bench.engine.jobs import JobSpec
from bench.train import compiled
from bench.train.methods import METHODS
from bench.train.trainer import batch_slices, build, data_info, fit_encoder, train

CPU = torch.device("cpu")
EAGER_IDENTITY = {
    "bench_version",
    "code",
    "libraries",
    "method",
    "method_cfg",
    "dataset",
    "data_cfg",
    "width",
    "seed",
    "epochs",
    "batch_size",
    "data_hash",
}
HAS_CXX = any(shutil.which(c) for c in ("g++", "c++", "clang++"))


def _spec(**kw) -> JobSpec:
    return JobSpec.make("infomax", METHODS.get("infomax").Config(), "digits", DataConfig(), 16, 0, 2, 128, **kw)


def test_compile_is_part_of_the_key_and_eager_keys_are_unchanged():
    eager, default, comp = _spec(compile=False), _spec(), _spec(compile=True)
    assert set(eager.identity()) == EAGER_IDENTITY  # no "compile" field in an eager job's identity
    assert eager.key == default.key
    assert comp.key != eager.key
    assert comp.identity()["compile"] is True
    assert {k: v for k, v in comp.identity().items() if not k.startswith("compile")} == eager.identity()


def test_handwritten_adam_is_torch_adam_bit_for_bit():
    gen = torch.Generator().manual_seed(0)
    p0 = torch.randn(7, 5, generator=gen)
    grads = [torch.randn(7, 5, generator=gen) for _ in range(6)]
    for wd in (0.0, 0.01):
        ref = p0.clone().requires_grad_(True)
        opt = torch.optim.Adam([ref], lr=1e-3, weight_decay=wd)
        p, m, v = p0.clone(), torch.zeros_like(p0), torch.zeros_like(p0)
        for step, g in enumerate(grads, start=1):
            ref.grad = g.clone()
            opt.step()
            compiled.adam_update(p, g, m, v, step, lr=1e-3, weight_decay=wd)
            assert torch.equal(p, ref.detach()), (wd, step)
            assert torch.equal(m, opt.state[ref]["exp_avg"]) and torch.equal(v, opt.state[ref]["exp_avg_sq"])


def test_functional_step_matches_the_eager_trainer_uncompiled():
    """make_step (grad_and_value over functional_call, Adam by hand with a tensor step count), run
    without torch.compile, follows the eager trainer's torch.optim.Adam to 1e-6 over 5 steps."""
    ds = load_dataset("digits")
    x = ds.train.x[:640]
    cfg = METHODS.get("infomax").Config(weight_decay=1e-3)
    torch.manual_seed(0)
    ref = build("infomax", cfg, data_info(ds), 16)
    torch.manual_seed(0)
    fun = build("infomax", cfg, data_info(ds), 16)
    train(ref, x, None, epochs=1, batch_size=128, seed=3)
    names = [n for n, _ in fun.named_parameters()]
    params = [p.detach().clone() for p in fun.parameters()]
    m, v = [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]
    t, sums = torch.zeros((), dtype=torch.long), torch.zeros(4)
    step = compiled.make_step(fun, names, [])
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(3))
    for lo, hi in batch_slices(len(x), 128):
        step(params, [], m, v, t, sums, x, None, perm[lo:hi])
    assert int(t) == 5
    for p, q in zip(params, ref.parameters(), strict=True):
        assert not torch.equal(p, dict(fun.named_parameters())[names[0]].detach())  # it moved
        torch.testing.assert_close(p, q.detach(), atol=1e-6, rtol=0)


def test_a_method_that_rebinds_a_buffer_falls_back_to_the_eager_step():
    """RBM's persistent chains are state outside any graph: the job trains eagerly, bit for bit the
    eager job (the probe of its loss terms leaves the RNG untouched), and says why in its meta."""
    ds = load_dataset("digits")
    cfg = METHODS.get("rbm").Config(persistent=True)
    kw = {"epochs": 1, "batch_size": 128, "device": CPU, "track": False}
    m_eager, meta_eager = fit_encoder("rbm", cfg, ds, 16, 0, **kw)
    m_comp, meta = fit_encoder("rbm", cfg, ds, 16, 0, compile=True, **kw)
    assert "compile" not in meta_eager
    assert meta["compile"].startswith("eager: loss_terms sets chains"), meta["compile"]
    for (k, a), b in zip(m_eager.state_dict().items(), m_comp.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


@pytest.mark.slow
@pytest.mark.skipif(not HAS_CXX, reason="torch.compile on CPU needs a C++ compiler (none on PATH)")
def test_compiled_infomax_lowers_the_loss_near_the_eager_run():
    full = load_dataset("digits")  # its first 1024 rows: 8 whole batches, one graph to compile
    tr = full.train
    ds = dataclasses.replace(full, train=dataclasses.replace(tr, x=tr.x[:1024], y=tr.y[:1024], factors=None))
    cfg = METHODS.get("infomax").Config()
    kw = {"epochs": 2, "batch_size": 128, "device": CPU, "track": False}
    m_eager, meta_eager = fit_encoder("infomax", cfg, ds, 16, 0, **kw)
    m_comp, meta = fit_encoder("infomax", cfg, ds, 16, 0, compile=True, **kw)
    assert meta["status"] == "ok" and meta["compile"].startswith("compiled"), meta.get("compile")
    first, last = meta["history"][0]["loss"], meta["history"][-1]["loss"]
    eager_last = meta_eager["history"][-1]["loss"]
    assert last < first
    assert abs(last - eager_last) <= 0.02 * abs(eager_last)  # the same training, other rounding
    w_e, w_c = m_eager.encoder_weight().detach(), m_comp.encoder_weight().detach()
    assert float((w_e - w_c).abs().max()) < 1e-2
    # the compiled weights are the method's own (no longer the entry's shared storage)
    entry = next(e for e in compiled.entries().values() if not isinstance(e, str))
    assert all(p.data_ptr() != q.data_ptr() for p in m_comp.parameters() for q in entry.params)
    # a second job of the same kind reuses the compiled step and reproduces the first bit for bit
    m_again, meta_again = fit_encoder("infomax", cfg, ds, 16, 0, compile=True, **kw)
    assert meta_again["compile"] == "compiled (reused)"
    assert torch.equal(m_again.encoder_weight(), m_comp.encoder_weight())


@pytest.mark.skipif(not HAS_CXX, reason="torch.compile on CPU needs a C++ compiler (none on PATH)")
def test_a_step_that_is_not_one_graph_falls_back_with_its_start_restored():
    """A loss with a data-dependent Python branch cannot be one graph: the first (compiling) call
    raises, and the job trains eagerly from its own start, bit for bit the eager job."""
    infomax = METHODS.get("infomax")

    class Branchy(infomax):
        def loss_terms(self, x, y=None):
            terms = super().loss_terms(x, y)
            if float(terms["lse"].detach()) > 1e9:  # .item(): a graph break, refused under fullgraph
                terms["lse"] = terms["lse"] * 0
            return terms

    ds = load_dataset("digits")
    x = ds.train.x[:512]
    runs = []
    for comp in (False, True):
        torch.manual_seed(0)
        m = Branchy(infomax.Config(), data_info(ds), 8)
        log = (compiled.train if comp else train)(m, x, None, epochs=1, batch_size=128, seed=1)
        runs.append((m, log))
    assert runs[1][1].compile.startswith("eager: not one graph"), runs[1][1].compile
    for a, b in zip(runs[0][0].parameters(), runs[1][0].parameters(), strict=True):
        assert torch.equal(a, b)
    assert runs[0][1].history == runs[1][1].history
