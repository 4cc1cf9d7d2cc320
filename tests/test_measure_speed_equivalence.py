"""The cheaper measurements of issue 20 against their reference paths (``fast=False``).

Pruning: the refit path starts at the strongest L2 from the full probe's fit there instead of
from the val-chosen full probe; every curve the measurement produces stays within the reference
probe's own rounding noise (see the test's docstring for why not within 0.002), and the fast path
makes fewer L-BFGS evaluations. Transfer: both scalings as one batched problem, and the batched
L-BFGS cut down to its active problems, give the same rows bit for bit. kNN R^2: the two-pass distance update gives the three-pass reference's values.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

import bench.evaluate.probe as probe
from bench.evaluate import metrics as M
from bench.train.methods import METHODS, DataInfo
from predictions.pruning.protocol import Pruning, PruningConfig
from predictions.transfer import pairs as P
from predictions.transfer.probing import budget_probe, budget_probes
from predictions.transfer.protocol import Transfer, TransferConfig

TOL = 0.002  # the probe's tolerance for a curve entry (issue 20)


def _encoder(digits, width: int = 16, seed: int = 0):
    torch.manual_seed(seed)
    method = METHODS.get("random")(None, DataInfo(digits.input_dim, digits.n_classes, digits.image_shape), width)
    spec = SimpleNamespace(dataset="digits", method="random", width=width, seed=seed)
    return SimpleNamespace(spec=spec, method=method, meta={}, train_seconds=0.0, features=method.encode_all)


class _Src:
    """The two things a measurement asks of its source: a dataset and a place for matrices."""

    def __init__(self, ds):
        self.ds = ds

    def dataset(self, name=None, **_):
        return self.ds

    def matrix(self, enc, name, values):
        pass


def _count_evaluations(monkeypatch) -> dict:
    """Counts the probe-evaluations of :func:`bench.evaluate.probe.fit_logreg`: each loss evaluation of a
    batched problem of G probes counts G (its cost is about linear in G)."""
    calls = {"n": 0}
    real = probe._problem

    def counted(*args, **kwargs):
        loss_grad, w, b = real(*args, **kwargs)

        def wrapped():
            calls["n"] += w.shape[0]
            return loss_grad()

        return wrapped, w, b

    monkeypatch.setattr(probe, "_problem", counted)
    return calls


def _rows(prediction, fn, *args) -> dict:
    return {
        (
            r["metric"],
            *(
                str(r.get(c))
                for c in ("criterion", "probe_mode", "fraction", "sparsity", "budget", "l2_mode", "scaling")
            ),
        ): r["value"]
        for r in fn(*args)
        if not r["metric"].endswith("_seconds")
    }


def _refit_touched(k) -> bool:
    """Curve entries the fast path recomputes: the refit curves of the unit criteria and the
    unstructured probes (the frozen and rank curves and the full probe are fitted alike)."""
    return (k[0] == "acc" and k[2] == "refit" and k[1] != "rank") or k[0] == "unstructured_acc"


@pytest.mark.slow
def test_pruning_curves_fast_stay_within_the_reference_probes_own_rounding_noise(digits, monkeypatch):
    """The fast warm start against the reference path, on every curve the measurement produces.

    max |d acc| <= 0.002 (the tolerance issue 20 asked for) cannot hold on digits for ANY change of
    the probes' arithmetic: test is 270 rows (one row = 0.0037), and the reference path itself moves
    up to 0.026 (one refit entry, a val-chosen L2 that flips) when the features are multiplied by
    1 + 2^-20, which standardisation removes up to rounding. So: the entries the fast path does not
    refit are equal; the refit ones move no more than that rounding moves the reference (largest,
    mean and count above 0.002); and the fast path makes fewer L-BFGS evaluations."""
    enc, src = _encoder(digits), _Src(digits)
    pred = Pruning(PruningConfig(dataset="digits", width=16))
    calls = _count_evaluations(monkeypatch)
    out, evaluations = {}, {}
    for fast in (False, True):
        pred.fast = fast
        start = calls["n"]
        out[fast] = _rows(pred, pred.measure_encoder, enc, src, 0)
        evaluations[fast] = calls["n"] - start
    pred.fast = False
    real = enc.features
    enc.features = lambda x: real(x) * (1 + 2**-20)  # the reference under a rounding-level change
    noisy = _rows(pred, pred.measure_encoder, enc, src, 0)
    ref, new = out[False], out[True]
    assert ref.keys() == new.keys() == noisy.keys()
    curves = [k for k in ref if k[0] in ("acc", "unstructured_acc", "probe_acc")]
    modes = {(k[1], k[2]) for k in curves if k[0] == "acc"}
    # every criterion (magnitude: the random encoder is one Linear), both probe modes, the rank curve
    assert modes == {
        (c, m) for c in ("magnitude", "variance", "random", "importance", "redundancy") for m in ("refit", "frozen")
    } | {("rank", "refit")}
    assert len([k for k in curves if k[0] == "unstructured_acc"]) == 7
    for k in ref:
        if not _refit_touched(k) and k[0] != "retained" and not k[0].startswith(("aurc", "prunable")):
            assert ref[k] == new[k] or (math.isnan(ref[k]) and math.isnan(new[k])), k
    touched = [k for k in curves if _refit_touched(k)]
    assert len(touched) == 5 * 10 + 7  # 5 criteria x 10 fractions (0 included), 7 sparsities
    d_new = torch.tensor([abs(new[k] - ref[k]) for k in touched])
    d_noise = torch.tensor([abs(noisy[k] - ref[k]) for k in touched])
    assert float(d_new.max()) <= max(TOL, float(d_noise.max())), (float(d_new.max()), float(d_noise.max()))
    assert float(d_new.mean()) <= 2 * float(d_noise.mean()) + 1e-4, (float(d_new.mean()), float(d_noise.mean()))
    assert int((d_new > TOL).sum()) <= int((d_noise > TOL).sum()) + 2
    # the point of the fast path: fewer L-BFGS probe-evaluations (a wrong warm start costs more, not fewer)
    assert evaluations[True] < 0.95 * evaluations[False], evaluations


@pytest.mark.slow
def test_transfer_both_scalings_in_one_batch_equal_one_probe_per_scaling(digits):
    enc = _encoder(digits, width=16, seed=1)
    f = [enc.features(s.x) for s in (digits.train, digits.val, digits.test)]
    subsets = P.draw_subsets(digits.train.y, "1", 4, 1, "eq") + P.draw_subsets(digits.train.y, "5", 2, 1, "eq")
    args = (f[0], digits.train.y, f[1], digits.val.y, f[2], digits.test.y, digits.n_classes, subsets)
    together = budget_probes(*args, scalings=("scalar", "unit"))
    for sc in ("scalar", "unit"):
        alone = budget_probe(*args, scaling=sc)
        for field in ("test_acc", "l2", "fixed_acc"):
            assert torch.equal(getattr(alone, field), getattr(together[sc], field)), (sc, field)


@pytest.mark.slow
def test_transfer_measurement_fast_equals_the_reference(digits):
    enc, src = _encoder(digits, width=16, seed=2), _Src(digits)
    pred = Transfer(TransferConfig(budgets=("1", "5", "10"), draws=(3, 2, 1)))
    out = {}
    for fast in (False, True):
        pred.fast = fast
        out[fast] = _rows(pred, pred.measure_pair, enc, src, "digits_lo_hi", "transfer", ("1", "5", "10"), ())
    assert out[False].keys() == out[True].keys() and len(out[True]) > 10
    assert out[False] == out[True]


@pytest.mark.slow
def test_batched_lbfgs_compaction_keeps_every_iterate(digits, monkeypatch):
    """Dropping stopped problems from the L-BFGS state changes no probe's result, bit for bit."""
    import functools

    from predictions.transfer import probing

    enc = _encoder(digits, width=16, seed=4)
    f = [enc.features(s.x) for s in (digits.train, digits.val, digits.test)]
    subsets = (
        P.draw_subsets(digits.train.y, "1", 6, 4, "cmp")
        + P.draw_subsets(digits.train.y, "10", 2, 4, "cmp")
        + P.draw_subsets(digits.train.y, "all", 1, 4, "cmp")
    )
    args = (f[0], digits.train.y, f[1], digits.val.y, f[2], digits.test.y, digits.n_classes, subsets)
    compacted = budget_probes(*args)
    monkeypatch.setattr(probing, "batched_lbfgs", functools.partial(probing.batched_lbfgs, compact=False))
    whole = budget_probes(*args)
    for sc in compacted:
        for field in ("test_acc", "l2", "fixed_acc"):
            assert torch.equal(getattr(compacted[sc], field), getattr(whole[sc], field)), (sc, field)


def _knn_r2_reference(f_train, f_test, k=10):
    """The three-pass distance update the kNN R^2 had before (square, then subtract)."""
    a_all, b_all = f_train.double(), f_test.double()
    mu, sd = a_all.mean(0), a_all.std(0, unbiased=False)
    idx = torch.nonzero(M._live(sd, M.DEAD_TOL)).flatten()
    a, b = (a_all[:, idx] - mu[idx]) / sd[idx], (b_all[:, idx] - mu[idx]) / sd[idx]
    d2 = b.pow(2).sum(1, keepdim=True) + a.pow(2).sum(1)[None, :] - 2.0 * (b @ a.T)
    sse = torch.zeros(len(idx), dtype=torch.float64)
    for j in range(len(idx)):
        dj = d2 - (b[:, j, None] - a[None, :, j]).square()
        yhat = a[:, j][torch.topk(dj, k, dim=1, largest=False).indices].mean(1)
        sse[j] = (b[:, j] - yhat).pow(2).sum()
    sst = (b - b.mean(0)).pow(2).sum(0)
    return (1.0 - sse / sst).clamp(0.0, 1.0)


def test_knn_r2_two_pass_update_matches_the_reference(digits):
    enc = _encoder(digits, width=12, seed=3)
    f_train, f_test = enc.features(digits.train.x), enc.features(digits.test.x)
    got = M.knn_predictability_r2(f_train, f_test, chunk=100)
    live = ~torch.isnan(got)
    assert int(live.sum()) >= 8
    assert torch.allclose(got[live], _knn_r2_reference(f_train, f_test), rtol=0, atol=1e-12)


@pytest.fixture(autouse=True)
def _restore_fast():
    yield
    Pruning.fast = Transfer.fast = True


@pytest.mark.slow
def test_pruning_measures_a_supervised_encoder_with_its_head_both_ways(digits):
    """A method with its own classifier adds the head curves (head_pruning, which fits no probe):
    the fast and reference paths both measure it, with the same head rows (a `fast=` passed where
    it does not belong failed every supervised encoder of a cold pruning run)."""
    from bench.config import RunConfig
    from bench.train.trainer import fit_encoder

    cfg = RunConfig().method_config("supervised")
    method, meta = fit_encoder(
        "supervised", cfg, digits, 16, 0, epochs=1, batch_size=128, device=torch.device("cpu"), track=False
    )
    assert meta["status"] == "ok" and method.classifier() is not None
    enc = SimpleNamespace(
        spec=SimpleNamespace(dataset="digits", method="supervised", width=16, seed=0),
        method=method,
        meta={},
        train_seconds=0.0,
        features=method.encode_all,
    )
    pred = Pruning(PruningConfig(dataset="digits", width=16, fractions=(0.0, 0.5), criteria=("importance", "random")))
    try:
        out = {}
        for fast in (False, True):
            pred.fast = fast
            out[fast] = _rows(pred, pred.measure_encoder, enc, _Src(digits), 0)
    finally:
        pred.fast = True
    heads = [k for k in out[True] if k[0] == "head_acc" or k[2] == "head"]
    diff = {k: (out[True][k], out[False][k]) for k in heads if repr(out[True][k]) != repr(out[False][k])}  # NaN: NaN
    assert heads and not diff, diff
