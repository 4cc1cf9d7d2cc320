"""Known-answer and planted tests of the similarity measures (bench/evaluate/similarity.py; planted controls 11.5.1,
11.5.2 and the Gaussian-TC part of 11.5.11 of docs/protocol.md §11)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bench.evaluate import rotation as rot
from bench.evaluate import similarity as sim
from bench.evaluate.metrics import gaussian_tc, pairwise_mi_binned


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=_gen(seed), dtype=torch.float64)


def _orthogonal(k: int, seed: int) -> torch.Tensor:
    q, r = torch.linalg.qr(_randn(k, k, seed=seed))
    return q * torch.sign(torch.diagonal(r))


def _whiten(x: torch.Tensor) -> torch.Tensor:
    """Exactly whitened on its own rows: mean 0, population covariance I."""
    x = x - x.mean(0)
    evals, evecs = torch.linalg.eigh(x.T @ x / x.shape[0])
    return x @ evecs @ torch.diag(evals.rsqrt()) @ evecs.T


def _correlated(n: int, k: int, seed: int) -> torch.Tensor:
    """A code with unequal unit scales and correlated units (not whitened)."""
    return _randn(n, k, seed=seed) @ _randn(k, k, seed=seed + 1) + 2.0


# -- an independent transcription of Song et al. 2012, eq. 5, with explicit n x n Gram matrices


def _hsic1_reference(x: torch.Tensor, y: torch.Tensor) -> float:
    n = x.shape[0]
    k, l_ = x @ x.T, y @ y.T
    k.fill_diagonal_(0.0)
    l_.fill_diagonal_(0.0)
    one = torch.ones(n, dtype=x.dtype)
    value = (k * l_).sum() + k.sum() * l_.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (one @ k @ l_ @ one)
    return float(value / (n * (n - 3)))


def _hsic0_reference(x: torch.Tensor, y: torch.Tensor) -> float:
    n = x.shape[0]
    h = torch.eye(n, dtype=x.dtype) - 1.0 / n
    return float(torch.trace(x @ x.T @ h @ y @ y.T @ h) / (n - 1) ** 2)


def _cka_reference(x: torch.Tensor, y: torch.Tensor, hsic) -> float:
    return hsic(x, y) / math.sqrt(hsic(x, x) * hsic(y, y))


@pytest.mark.parametrize("n,p,q", [(40, 3, 5), (12, 30, 40)])  # feature-space form; n x n Gram form
def test_estimators_match_a_gram_matrix_transcription(n, p, q):
    x = _randn(n, p, seed=1) + 5.0  # uncentred: the estimators must not depend on the offset
    y = x[:, :1] ** 2 @ _randn(1, q, seed=2) + _randn(n, q, seed=3) - 1.0
    assert sim.hsic_unbiased(x, y) == pytest.approx(_hsic1_reference(x, y), rel=1e-9)
    assert sim.hsic_biased(x, y) == pytest.approx(_hsic0_reference(x, y), rel=1e-9)
    assert sim.cka(x, y, standardised=False) == pytest.approx(_cka_reference(x, y, _hsic1_reference), rel=1e-9)
    assert sim.cka(x, y, standardised=False, debiased=False) == pytest.approx(
        _cka_reference(x, y, _hsic0_reference), rel=1e-9
    )
    z = lambda f: (f - f.mean(0)) / f.std(0, correction=0)  # noqa: E731
    assert sim.cka(x, y) == pytest.approx(_cka_reference(z(x), z(y), _hsic1_reference), rel=1e-9)
    # numpy and float32 inputs are accepted; the result is symmetric
    assert sim.cka(y.float().numpy(), x.float().numpy()) == pytest.approx(sim.cka(x, y), abs=1e-5)


def test_self_and_rotation_plus_isotropic_scaling_give_one():
    x = _correlated(300, 16, seed=4)
    rotated = 3.7 * x @ _orthogonal(16, seed=5)
    for debiased in (True, False):
        for standardised in (True, False):
            assert sim.cka(x, x, standardised=standardised, debiased=debiased) == pytest.approx(1.0, abs=1e-12)
        assert sim.cka(x, rotated, standardised=False, debiased=debiased) == pytest.approx(1.0, abs=1e-10)
    # standardised units: invariant to rotation + scaling of a whitened code ...
    w = _whiten(x)
    assert sim.cka(w, 0.2 * w @ _orthogonal(16, seed=6)) == pytest.approx(1.0, abs=1e-10)
    # ... but not of a code whose units have unequal scales and correlations (it trades that for unit scales)
    assert sim.cka(x, rotated) < 0.99
    # a different code is not 1
    assert sim.cka(x, _correlated(300, 16, seed=40)) < 0.5


@pytest.mark.parametrize("k,biased", [(64, 0.11), (1024, 0.67)])
def test_independent_codes_read_zero_where_the_biased_cka_reads_high(k, biased):
    a, b = _randn(500, k, seed=7), _randn(500, k, seed=8)
    for standardised in (True, False):
        assert abs(sim.cka(a, b, standardised=standardised)) < 0.02
    # the biased CKA's bias grows with the width (protocol §11.5.1: .11 and .67 at n = 500)
    value = sim.cka(a, b, debiased=False)
    assert value == pytest.approx(biased, abs=0.02)
    assert value > 0.08


def test_row_shuffle_null_is_about_zero():
    a = _correlated(400, 24, seed=9)
    b = torch.relu(a @ _randn(24, 40, seed=10)) + 0.5 * _randn(400, 40, seed=11)
    assert sim.cka(a, b) > 0.3
    null = sim.shuffle_null(a, b, seed=3)
    assert null.values.shape == (sim.NULL_DRAWS,)
    assert abs(null.mean) < 0.01
    assert 0 < null.sd < 0.02
    assert null.mean == pytest.approx(null.values.mean()) and null.sd == pytest.approx(null.values.std(ddof=1))
    again, other = sim.shuffle_null(a, b, seed=3), sim.shuffle_null(a, b, seed=4)
    assert np.array_equal(again.values, null.values) and not np.array_equal(other.values, null.values)
    # each draw is CKA(a, b[perm]) for a seeded permutation
    gen = _gen(3)
    perm = torch.randperm(400, generator=gen)
    assert null.values[0] == pytest.approx(sim.cka(a, b[perm]), rel=1e-9)
    # the biased CKA's null reads its bias, well above the debiased one's
    assert sim.shuffle_null(a, b, seed=3, debiased=False).mean > 0.02 + 3 * abs(null.mean)
    with pytest.raises(ValueError, match="draws"):
        sim.shuffle_null(a, b, draws=1)


@pytest.mark.parametrize("k", [64, 1024])
def test_lognormal_unit_rescaling_moves_raw_cka_only(k):
    a = _randn(500, k, seed=12)
    scaled = a * torch.exp(_randn(k, seed=13))  # lognormal per-unit scales, sigma = 1
    assert sim.cka(a, scaled, standardised=False) < 0.6  # the few largest units dominate raw CKA
    assert sim.cka(a, scaled, standardised=False, debiased=False) < 0.6
    assert sim.cka(a, scaled) == pytest.approx(1.0, abs=1e-10)


def test_constant_units_and_degenerate_inputs():
    a = _correlated(200, 6, seed=14)
    with_dead = torch.cat([a, torch.full((200, 2), 3.0), torch.zeros(200, 1)], 1)
    for standardised in (True, False):
        assert sim.cka(with_dead, a, standardised=standardised) == pytest.approx(1.0, abs=1e-10)
        assert math.isnan(sim.cka(torch.full((200, 4), 2.0), a, standardised=standardised))
    assert math.isfinite(sim.cka(with_dead, with_dead))
    bad = a.clone()
    bad[3, 1] = math.nan
    assert math.isnan(sim.cka(bad, a)) and math.isnan(sim.cka(bad, a, standardised=False))
    with pytest.raises(ValueError, match="same inputs"):
        sim.cka(a, a[:-1])
    with pytest.raises(ValueError, match="at least 4"):
        sim.cka(a[:3], a[:3])
    with pytest.raises(ValueError, match="shape"):
        sim.cka(a[:, 0], a)


def _method(latent: torch.Tensor, seeds: range, noise: float, base: int, k: int = 12) -> dict[int, torch.Tensor]:
    """Seed -> a rotated, noisy readout of a shared latent (what a method learns, up to its seed)."""
    return {
        s: latent @ _orthogonal(latent.shape[1], base + s)[:, :k]
        + noise * _randn(latent.shape[0], k, seed=base + 50 + s)
        for s in seeds
    }


def test_cross_seed_ceiling_and_normalised_similarity():
    latent = _randn(300, 12, seed=15)
    a = _method(latent, range(4), noise=0.5, base=100)
    b = _method(latent, range(4), noise=1.5, base=200)  # the same subspace, noisier
    c = _method(_randn(300, 12, seed=16), range(3), noise=0.5, base=300)  # an unrelated subspace
    pairs = [(s, t) for s in a for t in a if s < t]
    assert sim.cka_within(a) == pytest.approx(np.mean([sim.cka(a[s], a[t]) for s, t in pairs]), rel=1e-12)
    assert math.isnan(sim.cka_within({0: a[0]}))

    sab = sim.ceiling_normalised(a, b)
    manual = np.mean([sim.cka(a[s], b[t]) for s in a for t in b if s != t])
    assert sab.n_pairs == 12 and sab.cka == pytest.approx(manual, rel=1e-12)
    assert sab.s == pytest.approx(manual / math.sqrt(sim.cka_within(a) * sim.cka_within(b)), rel=1e-12)
    # raw CKA ranks the noisier method far from a; normalised by the ceilings it is "as similar as a seed"
    assert sab.cka < 0.9 * sab.cka_w_a
    assert sab.s == pytest.approx(1.0, abs=0.05)
    assert abs(sim.ceiling_normalised(a, c).s) < 0.1
    # S(A, A) = 1 exactly: the numerator, like the ceiling, never pairs a seed with itself
    assert sim.ceiling_normalised(a, a).s == pytest.approx(1.0, abs=1e-12)
    twin = {s: f.clone() for s, f in a.items()}  # seed s of "twin" is seed s of a: a same-seed pair would read 1
    assert sim.ceiling_normalised(a, twin).s == pytest.approx(1.0, abs=1e-12)

    table = sim.similarity_matrix({"a": a, "b": b, "c": c})
    assert len(table) == 9
    assert table["a", "b"] == sab and table["b", "a"] == sab
    assert table["c", "c"].s == pytest.approx(1.0, abs=1e-12)
    assert table["a", "c"].s == pytest.approx(sim.ceiling_normalised(a, c).s, rel=1e-12)
    with pytest.raises(ValueError, match="same inputs"):
        sim.ceiling_normalised(a, {0: b[0][:-1], 1: b[1][:-1]})


def test_matched_units_of_a_permuted_sign_flipped_copy_score_one():
    a_train, a_test = _correlated(500, 10, seed=17), _correlated(400, 10, seed=18)
    perm = torch.randperm(10, generator=_gen(19))
    flip = torch.tensor([1.0, -1, -1, 1, 1, -1, 1, -1, 1, 1], dtype=torch.float64) * torch.linspace(0.1, 5, 10)
    m = sim.matched_unit_corr(a_train, a_train[:, perm] * flip, a_test, a_test[:, perm] * flip)
    assert m.score == pytest.approx(1.0, abs=1e-12) and m.score_live == pytest.approx(1.0, abs=1e-12)
    assert np.array_equal(perm.numpy()[m.cols], m.rows)
    # fewer units on one side: the min(K_a, K_b) units of the smaller code are matched
    few = perm[:6]
    m = sim.matched_unit_corr(a_train, a_train[:, few], a_test, a_test[:, few])
    assert len(m.rows) == 6 and m.score == pytest.approx(1.0, abs=1e-12)
    m = sim.matched_unit_corr(a_train[:, few], a_train, a_test[:, few], a_test)
    assert len(m.rows) == 6 and m.score == pytest.approx(1.0, abs=1e-12)


def test_a_rotated_whitened_copy_matches_poorly_while_cka_stays_one():
    z_train = _whiten(_randn(2000, 64, seed=20))
    z_test = _whiten(_randn(1000, 64, seed=21))
    q = _orthogonal(64, seed=22)
    m = sim.matched_unit_corr(z_train, z_train @ q, z_test, z_test @ q)
    assert m.score < 0.5
    assert sim.cka(z_test, z_test @ q) == pytest.approx(1.0, abs=1e-10)


def test_matching_is_fit_on_train_and_scored_on_test():
    x = _randn(600, 4, seed=23)
    a_train, a_test = x[:300], x[300:]
    # on train, b's unit 0 copies a's unit 1 and vice versa; on test, each copies its namesake
    b_train = a_train[:, [1, 0, 2, 3]]
    b_test = a_test.clone()
    m = sim.matched_unit_corr(a_train, b_train, a_test, b_test)
    assert list(m.cols[np.argsort(m.rows)]) == [1, 0, 2, 3]
    test_corr = np.abs(np.corrcoef(a_test.T.numpy(), b_test.T.numpy())[:4, 4:])
    assert m.score == pytest.approx(test_corr[m.rows, m.cols].mean(), rel=1e-9)
    assert m.score < 0.6  # a test-fit matching would score 1


def test_dead_units_score_zero_in_score_and_drop_out_of_score_live():
    a_train, a_test = _correlated(300, 8, seed=24), _correlated(300, 8, seed=25)
    b_train, b_test = a_train.clone(), a_test.clone()
    b_train[:, [2, 5]] = 0.7
    b_test[:, [2, 5]] = 0.7
    m = sim.matched_unit_corr(a_train, b_train, a_test, b_test)
    assert (m.dead_a, m.dead_b) == (0, 2)
    assert m.score == pytest.approx(6 / 8, abs=1e-12)
    assert m.score_live == pytest.approx(1.0, abs=1e-12)
    bad = a_test.clone()
    bad[0, 0] = math.inf
    assert math.isnan(sim.matched_unit_corr(a_train, b_train, bad, b_test).score)
    with pytest.raises(ValueError, match="same units"):
        sim.matched_unit_corr(a_train, b_train, a_test[:, :7], b_test)


def test_rotation_ladder_keeps_a_whitened_code_whitened():
    k = 64
    s = rot.skew_symmetric(k, seed=3)
    assert torch.equal(s, -s.T)
    assert float(torch.linalg.matrix_norm(s)) == pytest.approx(math.sqrt(k), rel=1e-12)
    z64 = _whiten(_randn(2000, k, seed=26))
    z = z64.float()
    ts = [0.0, 0.25, 0.5, 1.0, 2.0]
    ladder = rot.rotation_ladder(z, ts, seed=3)
    assert len(ladder) == len(ts) and torch.equal(ladder[0], z)  # t = 0 is the input, bit for bit
    assert all(r.dtype == z.dtype and r.shape == z.shape for r in ladder)
    moved = [float((r.double() - z64).norm() / z64.norm()) for r in ladder[1:]]
    assert min(moved) > 0.1  # every other rung really rotates
    for r in rot.rotation_ladder(z64, ts, seed=3):
        cov = r.T @ r / r.shape[0]
        assert torch.allclose(cov, torch.eye(k, dtype=cov.dtype), atol=1e-10)
        assert abs(gaussian_tc(r)) < 1e-6
    # the same S for every t: one path, R(t1) R(t2) = R(t1 + t2)
    half, one = rot.rotation_ladder(z64, [0.5, 1.0], seed=3)
    assert torch.allclose(rot.rotation_ladder(half, [0.5], seed=3)[0], one, atol=1e-10)
    assert not torch.allclose(rot.rotation_ladder(z64, [1.0], seed=4)[0], one)


def test_rotating_independent_non_gaussian_units_adds_dependence_not_gaussian_tc():
    u = torch.rand(2, 20000, 8, generator=_gen(27), dtype=torch.float64)
    lap = torch.log(u[0]) - torch.log(u[1])  # Laplace(0, 1): a difference of two Exp(1)
    z = _whiten(lap)
    r0, r1 = rot.rotation_ladder(z, [0.0, 1.0], seed=5)
    assert abs(gaussian_tc(r1)) < 1e-6
    assert pairwise_mi_binned(r1) > pairwise_mi_binned(r0) + 0.005
