"""P1 pruning mechanics and the planted controls of docs/protocol.md §9 (predictions/pruning/)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from baselines.pca import PCA
from bench.evaluate import metrics as M
from bench.evaluate.probe import accuracy, fit_logreg, standardize
from bench.train.methods import METHODS, DataInfo
from predictions.pruning import criteria as C
from predictions.pruning import curves as P


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def planted_split(n: int, g: torch.Generator, distinct: int = 16, copies: int = 4):
    """K = distinct * copies features: ``distinct`` independent sources each copied ``copies`` times;
    10 classes from a fixed random linear teacher on the sources, so every source matters."""
    teacher = torch.randn(distinct, 10, generator=_gen(123))
    s = torch.randn(n, distinct, generator=g)
    y = (s @ teacher + 0.5 * torch.randn(n, 10, generator=g)).argmax(1)
    return s.repeat_interleave(copies, 1), y


@pytest.fixture(scope="module")
def planted():
    g = _gen(0)
    (ftr, ytr), (fva, yva), (fte, yte) = planted_split(1500, g), planted_split(1000, g), planted_split(1000, g)
    w = torch.randn(16, 32, generator=g).repeat_interleave(4, 0)
    curves = P.structured_pruning(ftr, ytr, fva, yva, fte, yte, 10, weight=w, seed=0)
    return curves, fte


def test_masks_from_orders():
    orders = torch.tensor([[2, 0, 3, 1], [1, 2, 3, 0]])
    m = C.masks_from_orders(orders, [0.0, 0.25, 0.5, 0.75])
    assert m.shape == (2, 4, 4)
    assert m[0].tolist() == [[1, 1, 1, 1], [1, 1, 0, 1], [0, 1, 0, 1], [0, 1, 0, 0]]
    assert m[1, 2].tolist() == [1, 0, 0, 1]


def test_orders():
    f = torch.randn(500, 6, generator=_gen(1)) * torch.tensor([3.0, 1, 2, 0.5, 4, 1.5])
    assert C.variance_order(f).tolist() == [3, 1, 5, 2, 0, 4]
    w = torch.diag(torch.tensor([2.0, 1, 3]))
    assert C.magnitude_order(w).tolist() == [1, 0, 2]
    assert C.importance_order(torch.tensor([0.0, 0.01, 0.0, 0.0]), torch.tensor([0.3, 0.0, 0.1, 0.2])).tolist() == [
        2,
        3,
        0,
        1,
    ]
    draws = C.random_orders(8, 5, seed=3)
    assert draws.shape == (5, 8) and all(sorted(o.tolist()) == list(range(8)) for o in draws)
    assert torch.equal(draws, C.random_orders(8, 5, seed=3)) and not torch.equal(draws, C.random_orders(8, 5, 4))


def test_redundancy_order_removes_copies_first():
    s = torch.randn(800, 5, generator=_gen(2))
    f = torch.cat([s.repeat_interleave(3, 1), torch.zeros(800, 1)], 1)  # 5 sources x 3 copies, then a dead one
    order = C.redundancy_order(f).tolist()
    assert order[0] == 15  # dead first
    first = order[1:11]  # the 10 surplus copies
    assert sorted({j // 3 for j in order[11:]}) == [0, 1, 2, 3, 4]  # one copy of every source survives
    assert all(sum(j // 3 == src for j in first) == 2 for src in range(5))


def test_val_halves_are_disjoint_stratified_and_fixed():
    y = torch.arange(10).repeat_interleave(31)  # class-sorted, as the mnist5k splits come back
    a, b = C.val_halves(y)
    assert len(set(a.tolist()) & set(b.tolist())) == 0 and len(a) + len(b) == len(y)
    assert (torch.bincount(y[a], minlength=10) - torch.bincount(y[b], minlength=10)).abs().max() <= 1
    assert torch.equal(a, C.val_halves(y)[0]) and not torch.equal(a, torch.arange(0, len(y), 2))


@pytest.mark.slow
def test_planted_duplicates_prunable_fraction_and_effective_rank(planted):
    """§9: K/4 distinct features copied 4 times: prunable fraction 0.75 +- 0.1 under redundancy and
    under the val-chosen best criterion; effective rank near 0.25; r(0) = 1 exactly."""
    curves, fte = planted
    s = P.summarize(curves, chance=0.1)
    assert s.prunable[("redundancy", "refit")] == pytest.approx(0.75, abs=0.1)
    best = s.best["refit"]
    assert s.prunable[(best, "refit")] == pytest.approx(0.75, abs=0.1)
    assert s.prunable[("random", "refit")] < 0.5  # a criterion blind to copies cannot do it
    assert M.effective_rank(fte) == pytest.approx(0.25, abs=0.02)
    for r in s.retained.values():
        assert r[0] == 1.0
    assert set(s.retained) == {(c, m) for c in C.CRITERIA for m in ("refit", "frozen")} | {("rank", "refit")}
    assert best in C.PRIMARY_CRITERIA
    # 16 distinct directions: dropping principal components below 16 of 64 loses nothing either
    assert s.prunable[("rank", "refit")] == pytest.approx(0.75, abs=0.1)


@pytest.mark.slow  # reads the module fixture's whole run
def test_frozen_mode_is_the_full_probe_with_features_at_their_train_mean(planted):
    curves, _ = planted
    g = _gen(0)
    (ftr, _), _, (fte, yte) = planted_split(1500, g), planted_split(1000, g), planted_split(1000, g)
    z_tr, z_te = standardize(ftr, fte)
    keep = torch.ones(64)
    keep[C.variance_order(ftr)[: round(0.5 * 64)]] = 0
    w, b = curves.probe
    acc = ((z_te * keep) @ w + b).argmax(1).eq(yte).double().mean()
    assert curves.test[("variance", "frozen")][5] == pytest.approx(float(acc), abs=1e-12)


@pytest.fixture(scope="module")
def pca_digits(digits):
    m = PCA(PCA.Config(), DataInfo(digits.input_dim, digits.n_classes, digits.image_shape), 32)
    m.fit(digits.train.x, None, 0)
    with torch.no_grad():
        return m, [m.encode(s.x) for s in (digits.train, digits.val, digits.test)]


@pytest.mark.slow
def test_pca_variance_beats_random_at_every_fraction(pca_digits, digits):
    """§9 / issue 4: PCA is decorrelated, yet its low-variance components go at little cost."""
    m, f = pca_digits
    d = digits
    curves = P.structured_pruning(
        f[0],
        d.train.y,
        f[1],
        d.val.y,
        f[2],
        d.test.y,
        d.n_classes,
        weight=m.encoder_weight(),
        criteria=("variance", "random"),
    )
    for mode in ("refit", "frozen"):
        assert (curves.test[("variance", mode)][1:] > curves.test[("random", mode)][1:]).all()
        assert curves.test[("variance", mode)][0] == curves.test[("random", mode)][0] == curves.test_acc


@pytest.mark.slow
def test_rank_curve_is_rotation_invariant_and_unit_pruning_is_not(pca_digits, digits):
    """§9: a random orthogonal rotation of the (unwhitened) PCA code keeps its probe accuracy and its
    ``rank`` AURC (within 0.02) while its unit-pruning AURC under the best criterion changes."""
    _, f = pca_digits
    d = digits
    q, _ = torch.linalg.qr(torch.randn(32, 32, generator=_gen(7), dtype=torch.float64))
    rotated = [(x.double() @ q).float() for x in f]
    out = {}
    for name, feats in (("pca", f), ("rotated", rotated)):
        c = P.structured_pruning(
            feats[0],
            d.train.y,
            feats[1],
            d.val.y,
            feats[2],
            d.test.y,
            d.n_classes,
            criteria=C.PRIMARY_CRITERIA,
            random_draws=2,
        )
        out[name] = (c, P.summarize(c, chance=0.1))
    (c0, s0), (c1, s1) = out["pca"], out["rotated"]
    assert abs(c0.test_acc - c1.test_acc) <= 0.02
    assert abs(s0.aurc[("rank", "refit")] - s1.aurc[("rank", "refit")]) <= 0.02
    unit0, unit1 = s0.aurc[(s0.best["refit"], "refit")], s1.aurc[(s1.best["refit"], "refit")]
    assert unit0 - unit1 > 0.05, (unit0, unit1)  # the rotation spreads the variance over all units
    # for the unrotated PCA code, dropping the smallest-variance units is dropping the last components
    assert abs(s0.aurc[("variance", "refit")] - s0.aurc[("rank", "refit")]) <= 0.02


def test_unstructured_pruning_copies_and_compresses(digits):
    torch.manual_seed(0)
    method = METHODS.get("random")(None, DataInfo(digits.input_dim, digits.n_classes, digits.image_shape), 32)
    before = {k: v.clone() for k, v in method.state_dict().items()}
    splits = [(s.x, s.y) for s in (digits.train, digits.val, digits.test)]
    un = P.unstructured_pruning(method, splits, digits.n_classes, sparsities=(0.0, 0.5, 0.9))
    expected = [1.0, 1 / 0.5, 1 / 0.1]
    assert un.compression == pytest.approx(expected, rel=1e-3)
    assert all(torch.equal(v, method.state_dict()[k]) for k, v in before.items())  # the encoder is untouched
    assert ((un.test > 0.5) & (un.test <= 1)).all() and un.test[2] < un.test[0]
    with torch.no_grad():
        feats = [method.encode(x) for x, _ in splits]
    again = P.unstructured_pruning(method, splits, digits.n_classes, sparsities=(0.0, 0.5, 0.9), unpruned=feats)
    assert np.array_equal(again.test, un.test) and np.array_equal(again.compression, un.compression)
    dup, ratio = P.magnitude_pruned(method, 0.9)
    assert float((dup.encoder.weight == 0).double().mean()) == pytest.approx(0.9, abs=1e-3)
    raw = METHODS.get("raw")(None, DataInfo(digits.input_dim), digits.input_dim)
    assert P.prunable_weights(raw.deployed_modules()) == []
    with pytest.raises(ValueError, match="no Linear/Conv"):
        P.magnitude_pruned(raw, 0.5)


class _StubSupervised(nn.Module):
    """What the pruning protocol needs of the ``supervised`` baseline: a declared trained head."""

    def __init__(self, head: nn.Module | None):
        super().__init__()
        self.head = head

    def classifier(self) -> nn.Module | None:
        return self.head


def test_head_pruning_uses_the_models_own_head(digits):
    from predictions.pruning.protocol import _head

    torch.manual_seed(0)
    enc = nn.Linear(digits.input_dim, 32)
    a = [torch.relu(enc(s.x)).detach() for s in (digits.train, digits.val, digits.test)]
    w, b = fit_logreg(a[0], digits.train.y, digits.n_classes, 1e-3, max_iter=200)
    head = nn.Linear(32, digits.n_classes)
    with torch.no_grad():
        head.weight.copy_(w[0].T)
        head.bias.copy_(b[0])
    assert _head(_StubSupervised(head), a[0], digits.n_classes) is head
    assert _head(_StubSupervised(nn.Linear(32, 3)), a[0], digits.n_classes) is None  # not a classifier head
    assert _head(_StubSupervised(None), a[0], digits.n_classes) is None  # trained without labels: no head
    c = P.head_pruning(
        head, a[0], a[1], digits.val.y, a[2], digits.test.y, weight=enc.weight, criteria=("importance", "random")
    )
    own = float(accuracy(a[2], digits.test.y, w, b)[0])
    assert c.test_acc == pytest.approx(own, abs=1e-12)
    s = P.summarize(c, chance=0.1)
    assert s.aurc[("importance", "head")] > s.aurc[("random", "head")]
    assert all(r[0] == 1.0 for r in s.retained.values()) and s.best["head"] in ("importance", "random")


@pytest.mark.slow
def test_cli_smoke(tmp_path):
    """``bench run prediction=pruning`` as a user runs it, on digits with a tiny budget."""
    out, rep = tmp_path / "results", tmp_path / "reports"
    cmd = [
        sys.executable,
        "-m",
        "bench.cli",
        "run",
        "prediction=pruning",
        "dataset=digits",
        "methods=[infomax,pca]",
        "seeds=2",
        "epochs=2",
        "pruning.random_draws=2",
        "pruning.fractions=[0,0.3,0.6,0.9]",
        "pruning.sparsities=[0,0.9]",
        f"out={out}",
        f"reports={rep}",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-2000:]
    assert "Primary: AURC" in res.stdout and (rep / "pruning.pdf").exists()
    from bench.results import read_matrices, read_run

    run_dir = next(p for p in (out / "pruning").iterdir() if p.name != "latest")
    df, _, _ = read_run(run_dir)
    best = df[df["metric"] == "aurc_best"]
    assert len(best[best["probe_mode"] == "refit"]) == 4 and best["value"].between(-0.5, 1.5).all()
    r0 = df[(df["metric"] == "retained") & (df["fraction"] == 0)]
    assert len(r0) == 2 * 2 * (5 * 2 + 1) and (r0["value"] == 1.0).all()  # 5 criteria x 2 modes, and rank
    assert "corr" not in set(df["metric"])  # matrices live in their own table, not as K^2 metric rows
    corr = read_matrices(run_dir)
    corr = corr[corr["matrix"] == "corr"]
    assert set(corr["method"]) == {"infomax", "pca"} and set(corr["seed"]) == {0} and len(corr) == 2 * 64 * 64
    assert corr["i"].dtype.kind == "i" and corr["j"].dtype.kind == "i"  # feature indices as integers
    assert set(df.loc[df["metric"] == "compression_ratio", "sparsity"]) == {0.0, 0.9}
    assert set(df.loc[df["metric"] == "aurc_best", "criterion"]) <= set(C.PRIMARY_CRITERIA)
    assert df.loc[df["metric"] == "nonlinear_predictability", "value"].notna().all()
    for name in ("retained_accuracy", "aurc", "basis", "unstructured", "diagnostics", "correlation_heatmaps"):
        assert (rep / "pruning" / f"{name}.png").exists()


def test_magnitude_pruning_handles_channels_last_conv_weights(digits):
    """supervised_cnn keeps its conv weights channels_last (faster on CPU); global_unstructured
    flattens with view(-1), which crashed the cold pruning run at that method."""
    from bench.config import RunConfig
    from bench.engine.jobs import build, data_info
    from predictions.pruning.curves import magnitude_pruned

    cfg = RunConfig()
    m = build("supervised_cnn", cfg.method_config("supervised_cnn"), data_info(digits), 16)
    assert any(p.dim() == 4 and not p.is_contiguous() for p in m.parameters())  # the case that broke
    dup, ratio = magnitude_pruned(m, 0.5)
    assert ratio == pytest.approx(2.0, rel=0.01) and dup.encode_all(digits.val.x).shape == (len(digits.val.x), 16)
