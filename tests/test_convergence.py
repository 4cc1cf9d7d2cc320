"""The convergence flag (docs/protocol.md, the convergence flag): planted controls, the metric per
dataset, None for methods that are not gradient-trained, and weights untouched by measuring it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from bench.config import RunConfig
from bench.data import DataConfig, load_dataset
from bench.engine.jobs import JobCache, JobSpec
from bench.protocol import row
from bench.train import convergence
from bench.train.methods import METHODS, Method, MethodConfig
from bench.train.trainer import fit_encoder

CPU = torch.device("cpu")


def _fit(name: str, ds, width: int = 8, epochs: int = 2, track: bool = True, **cfg):
    conf = RunConfig(method_overrides={name: cfg} if cfg else {}).method_config(name)
    return fit_encoder(name, conf, ds, width, 0, epochs=epochs, batch_size=128, device=CPU, track=track)


@dataclass(frozen=True)
class _RevealConfig(MethodConfig):
    reveal_steps: int = 40  # optimiser steps until every input is visible


class _Reveal(Method):
    """Test-only planted job: its features are the inputs with the first ``k(t)`` of D visible,
    k growing linearly with the optimiser steps until ``reveal_steps``, then constant. The probe's
    val accuracy therefore rises for exactly as long as the reveal lasts."""

    name = "_reveal"
    Config = _RevealConfig

    def __init__(self, cfg, info, width):
        super().__init__(cfg, info, width)
        self.encoder = nn.Identity()
        self.dummy = nn.Parameter(torch.zeros(1))  # something for Adam to hold
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def encode(self, x):
        d = x.shape[1]
        k = min(int(self.steps), self.cfg.reveal_steps) * d // self.cfg.reveal_steps
        return x * (torch.arange(d, device=x.device) < k).to(x.dtype)

    def loss_terms(self, x, y=None):
        return {"zero": self.dummy.sum() * 0.0}

    def after_step(self):
        self.steps += 1


@pytest.fixture
def reveal():
    METHODS.register()(_Reveal)
    yield "_reveal"
    METHODS._items.pop("_reveal")


def test_planted_rising_job_is_flagged_and_converged_job_is_not(reveal, digits):
    steps = 4 * 10  # 4 epochs of 10 minibatches (1258 train rows, the tail of 106 kept)
    _, rising = _fit(reveal, digits, width=64, epochs=4, reveal_steps=steps)  # still revealing at the end
    _, done = _fit(reveal, digits, width=64, epochs=4, reveal_steps=steps // 4)  # all visible after epoch 1
    for meta in (rising, done):
        c = meta["convergence"]
        assert c["metric"] == "probe_val_acc" and c["threshold"] == 0.01 and c["half_epoch"] == 2
        assert meta["under_trained"] == (c["end"] - c["half"] > 0.01)
    r, d = rising["convergence"], done["convergence"]
    assert rising["under_trained"] is True and r["end"] - r["half"] > 0.02, r  # half: 32 of 64 pixels seen
    assert done["under_trained"] is False and d["half"] == d["end"] > 0.9, d  # nothing changes after epoch 1


def test_one_epoch_budget_reads_half_at_initialisation(reveal, digits):
    _, meta = _fit(reveal, digits, width=64, epochs=1, reveal_steps=10)
    c = meta["convergence"]
    assert c["half_epoch"] == 0 and c["half"] < 0.2 < 0.9 < c["end"] and meta["under_trained"] is True


@pytest.mark.parametrize("name", ["pca", "fastica", "gmm", "raw", "random"])
def test_methods_not_gradient_trained_get_no_flag(name, digits, tmp_path):
    cfg = RunConfig()
    spec = JobSpec.make(name, cfg.method_config(name), "digits", cfg.data, 8, 0, 2, 128)
    enc = JobCache(tmp_path, CPU).get(spec, digits)
    assert enc.ok and enc.meta["under_trained"] is None and enc.meta["convergence"] is None
    assert row(enc, "x", 1.0)["under_trained"] is None


def test_flag_reaches_rows_and_survives_the_cache(digits, tmp_path):
    cfg = RunConfig()
    spec = JobSpec.make("infomax", cfg.method_config("infomax"), "digits", cfg.data, 8, 0, 2, 128)
    cache = JobCache(tmp_path, CPU)
    enc = cache.get(spec, digits)
    again = cache.get(spec, digits)
    assert again.cached and isinstance(enc.meta["under_trained"], bool)
    assert again.meta["convergence"] == enc.meta["convergence"]
    assert row(again, "x", 1.0)["under_trained"] is enc.meta["under_trained"]


def test_ica_uses_val_mcc_on_pre_activations():
    ds = load_dataset("ica", DataConfig(n=2000))
    method, meta = _fit("infomax", ds, width=8, epochs=2)
    c = meta["convergence"]
    assert c["metric"] == "val_mcc" and c["threshold"] == 0.01 and 0 <= c["half"] <= 1 and 0 <= c["end"] <= 1
    with torch.no_grad():
        z_tr, z_va = method.encoder(ds.train.x), method.encoder(ds.val.x)  # z = Wx + b, as P4 reads it
    assert c["end"] == pytest.approx(convergence.val_mcc(z_tr, ds.train.factors, z_va, ds.val.factors))


def test_dsprites_probes_the_shape_label():
    ds = load_dataset("dsprites", DataConfig(n=1000))
    assert torch.equal(ds.train.y, ds.train.factors[:, 0].long())  # y is the shape
    method, meta = _fit("infomax", ds, width=8, epochs=2)
    c = meta["convergence"]
    f_tr, f_va = method.encode_all(ds.train.x), method.encode_all(ds.val.x)
    assert c["metric"] == "probe_val_acc" and ds.n_classes == 3
    assert c["end"] == convergence.probe_val_acc(f_tr, ds.train.y, f_va, ds.val.y, 3)


def test_probe_val_acc_is_the_best_val_accuracy_over_the_l2_grid(digits):
    from bench.evaluate.probe import L2_GRID, linear_probe

    f_tr, f_va = digits.train.x[:, :20], digits.val.x[:, :20]
    got = convergence.probe_val_acc(f_tr, digits.train.y, f_va, digits.val.y, 10)
    assert got == float(linear_probe(f_tr, digits.train.y, f_va, digits.val.y, f_va, digits.val.y, 10).val_acc[0])
    per_l2 = [
        float(linear_probe(f_tr, digits.train.y, f_va, digits.val.y, f_va, digits.val.y, 10, l2_grid=(l2,)).val_acc[0])
        for l2 in L2_GRID
    ]
    assert got >= max(per_l2) - 0.01  # the warm-started path reaches the single fits' best (within L-BFGS noise)


# methods that draw from the global RNG while training (noise, augmentations, masks, sampling) or
# whose modules behave differently in train and eval mode (BatchNorm in supervised_cnn)
RNG_OR_MODE = ["infomax", "dae", "simclr", "vae", "mae", "supervised_cnn", "byol", "moco", "swav"]


@pytest.mark.slow
@pytest.mark.parametrize("name", RNG_OR_MODE)
def test_weights_are_bit_identical_with_and_without_the_flag(name, digits):
    tracked, meta = _fit(name, digits, epochs=3)  # "half" after epoch 1 of 3: training goes on after it
    plain, plain_meta = _fit(name, digits, epochs=3, track=False)
    assert meta["convergence"]["half_epoch"] == 1 and plain_meta["convergence"] is None
    a, b = tracked.state_dict(), plain.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{name}: {k} differs when the convergence flag is computed"
    assert meta["history"] == plain_meta["history"]


def test_probe_is_fit_on_a_fixed_subset_of_a_large_train_split(reveal, digits, monkeypatch):
    assert convergence.probe_rows(14000, convergence.MAX_PROBE_TRAIN) is None  # dsprites' default: whole
    n = len(digits.train.x)
    rows = convergence.probe_rows(n, 500)
    assert torch.equal(rows, convergence.probe_rows(n, 500)) and len(rows) == 500
    assert torch.equal(rows, rows.sort().values) and len(rows.unique()) == 500
    monkeypatch.setattr(convergence, "MAX_PROBE_TRAIN", 500)
    method, meta = _fit(reveal, digits, width=64, epochs=2, reveal_steps=5)
    f_tr, f_va = method.encode_all(digits.train.x[rows]), method.encode_all(digits.val.x)
    assert meta["convergence"]["end"] == convergence.probe_val_acc(f_tr, digits.train.y[rows], f_va, digits.val.y, 10)


def test_recording_restores_every_module_s_own_mode(digits):
    """A submodule kept in eval mode (a frozen target network, say) stays so after a score."""
    from bench.catalog import load_all
    from bench.train.methods import METHODS
    from bench.train.trainer import build, data_info

    load_all()
    method = build("byol", METHODS.get("byol").Config(), data_info(digits), 16)
    method.train()
    method.target_encoder.eval()
    tracker = convergence.Tracker(method, digits, epochs=2)
    tracker.record("half")
    assert method.training and not method.target_encoder.training
    assert all(m.training for m in method.encoder.modules())
