"""Robustness through a frozen probe (bench/evaluate/robustness.py) and the planted controls of
protocol §11.5.12: level 0 of every perturbation gives the clean accuracy exactly, and a code whose
units are each copied 4x retains more under random unit zeroing than the original."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.evaluate import robustness as R
from bench.evaluate.probe import linear_probe, standardize
from predictions.pruning.curves import structured_pruning


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def planted(n: int, g: torch.Generator, distinct: int = 16, copies: int = 1):
    """``distinct`` independent Gaussian sources, each copied ``copies`` times; 10 classes from a
    fixed random linear teacher on the sources (every source matters)."""
    teacher = torch.randn(distinct, 10, generator=_gen(123))
    s = torch.randn(n, distinct, generator=g)
    y = (s @ teacher + 0.5 * torch.randn(n, 10, generator=g)).argmax(1)
    return s.repeat_interleave(copies, 1), y


def identity(x: torch.Tensor) -> torch.Tensor:
    return x


@pytest.fixture(scope="module")
def encoder():
    """A fixed random Linear(64, 32) + ReLU on digits' 8x8 images."""
    lin = torch.nn.Linear(64, 32)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(32, 64, generator=_gen(7)) / 4)
        lin.bias.zero_()
    return lambda x: torch.relu(lin(x))


def _splits(ds):
    return ds.train.x, ds.train.y, ds.val.x, ds.val.y, ds.test.x, ds.test.y


def test_level_zero_gives_the_clean_accuracy_exactly(digits, encoder):
    rows = R.robustness(
        encoder,
        *_splits(digits),
        10,
        image_shape=digits.image_shape,
        fractions=(0.0,),
        sigmas=(0.0,),
        occlusions=(0.0,),
    )
    assert [(r["split"], r["perturbation"]) for r in rows] == [
        (s, p) for s in ("val", "test") for p in ("none", "zero", "noise", "occlude")
    ]
    for split in ("val", "test"):
        these = [r for r in rows if r["split"] == split]
        assert {r["accuracy"] for r in these} == {these[0]["accuracy"]}
        assert [r["retained"] for r in these] == [1.0] * 4
    clean = next(r for r in rows if r["split"] == "test")["accuracy"]
    # the clean accuracy is the standard probe's on the same features (§6, L2 chosen on val)
    f = [encoder(x) for x in (digits.train.x, digits.val.x, digits.test.x)]
    ref = linear_probe(f[0], digits.train.y, f[1], digits.val.y, f[2], digits.test.y, 10)
    assert clean == float(ref.test_acc[0])


def test_default_levels_perturb_and_retained_is_the_formula(digits, encoder):
    rows = R.robustness(encoder, *_splits(digits), 10, image_shape=digits.image_shape, seed=1)
    test = [r for r in rows if r["split"] == "test"]
    assert [(r["perturbation"], r["level"]) for r in test] == [
        ("none", 0.0),
        ("zero", 0.1),
        ("zero", 0.3),
        ("zero", 0.5),
        ("noise", 0.1),
        ("noise", 0.3),
        ("occlude", 0.25),
    ]
    assert [r["draws"] for r in test] == [1, 5, 5, 5, 1, 1, 1]
    clean = test[0]["accuracy"]
    for r in test:
        assert r["retained"] == pytest.approx((r["accuracy"] - 0.1) / (clean - 0.1), abs=1e-12)
    by = {(r["perturbation"], r["level"]): r["accuracy"] for r in test}
    assert by[("zero", 0.5)] < by[("zero", 0.1)] <= clean  # more units zeroed, less accuracy
    assert by[("noise", 0.3)] < clean and by[("occlude", 0.25)] < clean
    s = R.summarize(rows)
    assert s["zero"] == pytest.approx(np.mean([r["retained"] for r in test if r["perturbation"] == "zero"]))
    assert s["all"] == pytest.approx(np.mean([r["retained"] for r in test[1:]]))
    assert rows == R.robustness(encoder, *_splits(digits), 10, image_shape=digits.image_shape, seed=1)  # seeded


def test_redundant_copies_retain_more_under_unit_zeroing():
    """§11.5.12: the measure can see redundancy pay. Each of 16 sources copied 4x (K = 64) against
    the 16 sources alone: zeroing p of the units removes a source only when all 4 copies go."""
    out = {}
    for copies in (1, 4):
        g = _gen(0)
        (ftr, ytr), (fva, yva), (fte, yte) = (planted(n, g, copies=copies) for n in (1500, 1000, 1000))
        rows = R.robustness(identity, ftr, ytr, fva, yva, fte, yte, 10, sigmas=(), occlusions=())
        out[copies] = {r["level"]: r["retained"] for r in rows if r["split"] == "test" and r["perturbation"] == "zero"}
    for p in R.ZERO_FRACTIONS:
        assert out[4][p] > out[1][p] + 0.05, (p, out)
    assert np.mean(list(out[1].values())) < 0.8  # the original really loses accuracy


def test_unit_zeroing_is_p1s_random_frozen_curve():
    """Same probe, same seeded orders, same removal of round(p K) units: P1's numbers exactly."""
    g = _gen(2)
    (ftr, ytr), (fva, yva), (fte, yte) = (planted(n, g, distinct=24) for n in (800, 600, 600))
    curves = structured_pruning(
        ftr, ytr, fva, yva, fte, yte, 10, fractions=(0.0, *R.ZERO_FRACTIONS), criteria=("random",), seed=3, rank=False
    )
    rows = R.robustness(identity, ftr, ytr, fva, yva, fte, yte, 10, sigmas=(), occlusions=(), seed=3)
    test = [r["accuracy"] for r in rows if r["split"] == "test"]
    # the same draws and probe: equal up to P1's float mean over draws (this module averages hit counts,
    # so that p = 0 is the clean accuracy bit for bit)
    np.testing.assert_allclose(test, curves.test[("random", "frozen")], rtol=0, atol=1e-12)
    probe = R.fit_frozen_probe(ftr, ytr, fva, yva, 10)
    assert torch.equal(probe.weight, curves.probe[0]) and probe.l2 == curves.l2


def test_frozen_probe_standardises_like_the_probe(digits, encoder):
    with torch.no_grad():  # a dead (constant) unit appended: its std is taken as 1, as standardize does
        f = [torch.cat([encoder(x), torch.zeros(len(x), 1)], 1) for x in (digits.train.x, digits.val.x, digits.test.x)]
    probe = R.fit_frozen_probe(f[0], digits.train.y, f[1], digits.val.y, 10)
    for mine, ref in zip((probe.standardize(v) for v in f), standardize(*f), strict=True):
        assert torch.equal(mine, ref)
    assert probe.std[-1] == 1 and bool((probe.std[:-1] != 1).all())


def test_zeroed_units_are_set_to_their_train_mean(digits, encoder):
    f_tr, f_va, f_te = (encoder(x) for x in (digits.train.x, digits.val.x, digits.test.x))
    probe = R.fit_frozen_probe(f_tr, digits.train.y, f_va, digits.val.y, 10)
    keep = R.zeroing_masks(f_te.shape[1], (0.3,), 2, seed=0)[:, 0]  # (2, K)
    for m in keep:
        replaced = torch.where(m.bool(), f_te, probe.mean)  # raw features, dropped units at their train mean
        direct = probe.accuracy(probe.standardize(replaced), digits.test.y)
        assert torch.equal(probe.accuracy(probe.standardize(f_te), digits.test.y, m[None]), direct)


def test_zeroing_masks():
    m = R.zeroing_masks(20, (0.0, 0.1, 0.3, 0.5), 5, seed=0)
    assert m.shape == (5, 4, 20)
    assert (20 - m.sum(-1)).tolist() == [[0, 2, 6, 10]] * 5
    assert bool((m[:, 2] <= m[:, 1]).all())  # nested: a unit dropped at .1 stays dropped at .3
    assert len({tuple(r.tolist()) for r in m[:, 3]}) == 5  # the draws differ
    assert torch.equal(m, R.zeroing_masks(20, (0.0, 0.1, 0.3, 0.5), 5, seed=0))


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32), (1, 64, 64)])
def test_image_occluder_is_one_square_of_a_quarter(shape):
    c, h, w = shape
    m = R.occluder_masks(300, c * h * w, 0.25, _gen(0), shape).view(300, c, h, w)
    assert (m.sum((1, 2, 3)) == c * h * w // 4).all()  # exactly 25% of every input
    assert torch.equal(m, m[:, :1].expand_as(m))  # every channel at the same place
    rows, cols = m[:, 0].any(2), m[:, 0].any(1)  # (N, H), (N, W)
    assert torch.equal(m[:, 0], rows[:, :, None] & cols[:, None, :])  # a rectangle ...
    side = round((h * w / 4) ** 0.5)
    assert (rows.sum(1) == side).all() and (cols.sum(1) == side).all()  # ... a square
    top = rows.int().argmax(1)
    assert torch.equal(rows, (torch.arange(h) >= top[:, None]) & (torch.arange(h) < top[:, None] + side))  # contiguous
    assert len(set(top.tolist())) == h - side + 1  # every row position is drawn
    assert torch.equal(m.view(300, -1), R.occluder_masks(300, c * h * w, 0.25, _gen(0), shape))


def test_segment_occluder_is_one_contiguous_quarter():
    m = R.occluder_masks(500, 40, 0.25, _gen(1))
    assert (m.sum(1) == 10).all()
    start = m.int().argmax(1)
    i = torch.arange(40)
    assert torch.equal(m, (i >= start[:, None]) & (i < start[:, None] + 10))
    assert set(start.tolist()) == set(range(31))
    assert not R.occluder_masks(5, 40, 0.0, _gen(1)).any()
    x = torch.rand(500, 40) + 1
    assert torch.equal(R.occlude(x, m) == 0, m)
    with pytest.raises(ValueError, match="image_shape"):
        R.occluder_masks(5, 40, 0.25, _gen(1), (1, 8, 8))


def test_noise_is_scaled_by_each_input_dimensions_train_sd():
    x = torch.zeros(20000, 3)
    sd = torch.tensor([0.0, 1.0, 4.0])
    eps = torch.randn(x.shape, generator=_gen(0))
    d = R.input_noise(x, sd, 0.3, eps)
    assert bool((d[:, 0] == 0).all())  # a constant input dimension gets no noise
    assert d[:, 1:].std(0).tolist() == pytest.approx([0.3, 1.2], rel=0.03)
    assert torch.equal(R.input_noise(x + 1, sd, 0.0, eps), x + 1)


def test_noise_goes_through_the_encoder():
    """Inputs whose class lives in dimension 0 only: noise of 3 sd there destroys it, while the
    unit-zeroing rows (features, no input) are unaffected by the noise level."""
    g = _gen(4)

    def split(n):
        y = torch.randint(0, 2, (n,), generator=g)
        return torch.cat(
            [y[:, None].float() + 0.05 * torch.randn(n, 1, generator=g), torch.randn(n, 3, generator=g)], 1
        ), y

    (xtr, ytr), (xva, yva), (xte, yte) = split(2000), split(1000), split(1000)
    rows = R.robustness(identity, xtr, ytr, xva, yva, xte, yte, 2, fractions=(), sigmas=(0.1, 6.0), occlusions=())
    acc = {r["level"]: r["accuracy"] for r in rows if r["split"] == "test"}
    assert acc[0.0] > 0.99 and acc[0.1] > 0.99 and acc[6.0] < 0.75


def test_zeroing_at_p_0_is_the_clean_accuracy_bit_for_bit_whatever_the_split_size():
    """Equal draws: the mean over draws comes from integer hit counts (np.mean([120/132] * 5) != 120/132)."""

    assert np.mean([120 / 132] * 5) != 120 / 132  # the rounding this guards against
    torch.manual_seed(0)
    for n in (132, 397, 750):
        z = torch.randn(n, 6)
        y = torch.randint(0, 3, (n,))
        probe = R.FrozenProbe(torch.zeros(6), torch.ones(6), torch.randn(6, 3), torch.zeros(3), 1.0, 3)
        out = R.perturbed_accuracies(
            probe, lambda x: x, z, y, torch.ones(6), fractions=(0.0,), sigmas=(), occlusions=()
        )
        assert out[1][2] == out[0][2]
