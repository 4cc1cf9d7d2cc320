"""Known-answer tests for the P1 metrics (bench/evaluate/metrics.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import mutual_info_score

from bench.evaluate import metrics as M


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def independent():
    return torch.randn(20000, 8, generator=_gen(0))


def duplicated(n: int = 4000, distinct: int = 16, copies: int = 4, seed: int = 1) -> torch.Tensor:
    """K = distinct * copies features: each of ``distinct`` independent features copied ``copies`` times."""
    return torch.randn(n, distinct, generator=_gen(seed)).repeat_interleave(copies, 1)


def test_gaussian_tc_known_answers(independent):
    assert abs(M.gaussian_tc(independent)) < 0.01
    x = torch.randn(50000, generator=_gen(2))
    for rho in (0.5, 0.9):
        y = rho * x + math.sqrt(1 - rho**2) * torch.randn(50000, generator=_gen(3))
        assert M.gaussian_tc(torch.stack([x, y], 1)) == pytest.approx(-0.5 * math.log(1 - rho**2), abs=0.02)
    # invariant to rescaling each feature; copies are highly redundant; dead features add nothing
    scaled = independent * torch.tensor([1e-3, 1, 10, 1e3, 1, 1, 2, 5])
    assert M.gaussian_tc(scaled) == pytest.approx(M.gaussian_tc(independent), abs=1e-6)
    assert M.gaussian_tc(duplicated()) > 100
    with_dead = torch.cat([independent, torch.full((20000, 2), 3.0)], 1)
    assert M.gaussian_tc(with_dead) == pytest.approx(M.gaussian_tc(independent), abs=1e-6)


def test_pairwise_mi_matches_a_plain_reference():
    f = torch.randn(600, 5, generator=_gen(4))
    f[:, 1] = f[:, 0] ** 2 + 0.3 * torch.randn(600, generator=_gen(5))
    f[:, 3] = 0.0  # a dead feature
    codes = []
    for col in f.T.numpy().astype(np.float64):
        lo, hi = col.min(), col.max()
        span = hi - lo if hi > lo else 1.0
        codes.append(np.clip(np.floor((col - lo) / span * 20), 0, 19).astype(int))
    ref = np.mean([mutual_info_score(codes[i], codes[j]) for i in range(5) for j in range(i + 1, 5)])
    assert M.pairwise_mi_binned(f, bins=20, miller_madow=False) == pytest.approx(ref, rel=1e-6)
    assert M.pairwise_mi_binned(f, bins=20, miller_madow=False, block=20 * 20 * 5) == pytest.approx(ref, rel=1e-6)


def test_pairwise_mi_known_answers(independent):
    assert abs(M.pairwise_mi_binned(independent)) < 0.01
    u = torch.rand(20000, 1, generator=_gen(6)).repeat(1, 3)  # identical uniform features: MI = H(bin) = log 20
    assert M.pairwise_mi_binned(u) == pytest.approx(math.log(20), abs=0.01)
    assert M.pairwise_mi_binned(duplicated()) > 5 * M.pairwise_mi_binned(duplicated()[:, ::4])


def test_mean_abs_offdiag_corr():
    x = torch.randn(50000, generator=_gen(7))
    y = -0.6 * x + 0.8 * torch.randn(50000, generator=_gen(8))
    assert M.mean_abs_offdiag_corr(torch.stack([x, y], 1)) == pytest.approx(0.6, abs=0.01)
    assert M.mean_abs_offdiag_corr(torch.randn(50000, 6, generator=_gen(9))) < 0.01
    d = duplicated(n=50000)  # 3 of the 63 other features of each are exact copies
    assert M.mean_abs_offdiag_corr(d) == pytest.approx(3 / 63, abs=0.005)


def test_effective_rank(independent):
    assert M.effective_rank(independent) == pytest.approx(1.0, abs=0.01)
    assert M.effective_rank(duplicated()) == pytest.approx(0.25, abs=0.01)
    assert M.effective_rank(torch.randn(500, 1, generator=_gen(10)).repeat(1, 8)) == pytest.approx(1 / 8, abs=1e-6)
    # correlation-based: scale does not matter; covariance-based: unequal variances lower it
    scaled = independent * torch.tensor([10.0, 1, 1, 1, 1, 1, 1, 0.1])
    assert M.effective_rank(scaled) == pytest.approx(M.effective_rank(independent), abs=1e-6)
    assert M.effective_rank(scaled, on="cov") < 0.5 < M.effective_rank(independent, on="cov")
    assert M.effective_rank(torch.zeros(10, 4)) == 0.0


def test_max_weight_cosine_and_dead_fraction():
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=_gen(11)))
    assert M.max_weight_cosine(q[:8]) == pytest.approx(0.0, abs=1e-6)
    w = torch.cat([q[:8], 3.0 * q[2:3]])  # a rescaled copy of row 2
    assert M.max_weight_cosine(w) == pytest.approx(1.0, abs=1e-6)
    assert M.max_weight_cosine(torch.stack([q[0], -q[0]])) == pytest.approx(-1.0, abs=1e-6)  # signed
    f = torch.randn(100, 8, generator=_gen(12))
    f[:, [1, 5]] = 2.5
    assert M.dead_fraction(f) == 0.25


def test_retained_aurc_prunable():
    p = np.round(np.arange(10) * 0.1, 1)
    acc = np.array([0.9, 0.9, 0.895, 0.88, 0.85, 0.8, 0.7, 0.5, 0.3, 0.1])
    r = M.retained_accuracy(acc, acc[0], 0.1)
    assert r[0] == 1.0 and r[-1] == 0.0
    assert np.allclose(r, (acc - 0.1) / 0.8)
    assert np.isnan(M.retained_accuracy(acc, 0.1, 0.1)).all()  # nothing to retain at chance
    assert np.isnan(M.retained_accuracy(acc, 0.105, 0.1, min_gap=0.01)).all()  # nor within 1 point of it
    assert M.retained_accuracy(acc, 0.12, 0.1, min_gap=0.01)[0] == pytest.approx(40.0)
    assert M.aurc(p, np.ones(10)) == pytest.approx(1.0)
    assert M.aurc(p, 1 - p) == pytest.approx(0.5)  # mean of 1 - p over [0.1, 0.9]
    assert M.aurc(p, np.where(p <= 0.5, 1.0, 0.0)) == pytest.approx((0.4 + 0.05) / 0.8)
    assert M.aurc(p[::-1], (1 - p)[::-1]) == pytest.approx(0.5)  # order of the points does not matter
    assert M.prunable_fraction(p, acc) == pytest.approx(0.2)  # 0.895 >= 0.89, 0.88 < 0.89
    assert M.prunable_fraction(p, acc, tol=0.05) == pytest.approx(0.4)
    assert M.prunable_fraction(p, np.r_[0.9, np.full(9, 0.5)]) == 0.0
    with pytest.raises(ValueError, match="fractions"):
        M.prunable_fraction(p[1:], acc[1:])


# --------------------------------------------------------------------------- nonlinear predictability
def _split(f: torch.Tensor, n_train: int) -> tuple[torch.Tensor, torch.Tensor]:
    return f[:n_train], f[n_train:]


def test_knn_predictability_matches_sklearn():
    from sklearn.metrics import r2_score
    from sklearn.neighbors import KNeighborsRegressor

    f = torch.randn(700, 5, generator=_gen(20)) * torch.tensor([1.0, 5.0, 0.1, 2.0, 1.0]) + 3.0
    f[:, 1] = f[:, 0] * f[:, 2] + 0.1 * f[:, 1]
    f[:, 4] = 7.0  # dead: neither target nor predictor
    tr, te = _split(f.double().numpy(), 500)
    mu, sd = tr.mean(0), tr.std(0)
    live = [0, 1, 2, 3]
    ztr, zte = (tr[:, live] - mu[live]) / sd[live], (te[:, live] - mu[live]) / sd[live]
    ref = []
    for j in range(4):
        others = [i for i in range(4) if i != j]
        knn = KNeighborsRegressor(n_neighbors=10).fit(ztr[:, others], ztr[:, j])
        ref.append(min(1.0, max(0.0, r2_score(zte[:, j], knn.predict(zte[:, others])))))  # clipped to [0, 1]
    r2 = M.knn_predictability_r2(*_split(f, 500))
    assert r2.shape == (5,) and math.isnan(float(r2[4]))
    assert r2[:4].numpy() == pytest.approx(np.array(ref), abs=1e-9)
    assert M.nonlinear_predictability(*_split(f, 500)) == pytest.approx(np.mean(ref), abs=1e-9)


def test_nonlinear_predictability_duplicated_features():
    # 4 independent Laplace sources, each copied 4 times (+ 1e-3 noise): every feature is a function of its copies
    u = torch.rand(4500, 4, generator=_gen(21)) - 0.5
    lap = -torch.sign(u) * torch.log1p(-2 * u.abs())  # Laplace(0, 1) by inversion
    f = lap.repeat_interleave(4, 1) + 1e-3 * torch.randn(4500, 16, generator=_gen(22))
    assert M.nonlinear_predictability(*_split(f, 4000)) > 0.95
    # the same sources without their copies are unpredictable
    assert M.nonlinear_predictability(*_split(f[:, ::4], 4000)) < 0.05


def test_nonlinear_predictability_independent_features():
    # unrelated neighbours: E (y - mean of k train values)^2 = (1 + 1/k) var, so R^2 ~ -1/k, clipped to 0
    for seed in (23, 24):
        f = torch.randn(2500, 8, generator=_gen(seed))
        assert 0.0 <= M.nonlinear_predictability(*_split(f, 2000)) < 0.02
        r2 = M.knn_predictability_r2(*_split(f, 2000))
        assert ((r2 >= 0) & (r2 <= 1)).all()


def test_nonlinear_predictability_is_bounded_for_features_nearly_constant_on_test():
    """A feature used by a handful of train rows and constant on test (a rare GMM component) once
    read R^2 = -2e30 and decided the mean; clipped, it reads 0 and the mean stays in [0, 1]."""
    f = torch.randn(2500, 6, generator=_gen(26))
    f[:, 5] = 0.0
    f[:3, 5] = 1.0  # live on train (3 of 2000 rows), nearly constant on test
    f[2400, 5] = 1e-9
    p = M.nonlinear_predictability(*_split(f, 2000))
    assert 0.0 <= p <= 1.0
    r2 = M.knn_predictability_r2(*_split(f, 2000))
    assert 0.0 <= float(r2[5]) <= 1.0


def test_nonlinear_predictability_sees_dependence_correlation_misses():
    x1 = 2 * torch.rand(2500, generator=_gen(25)) - 1
    x2 = x1**2 + 0.05 * torch.randn(2500, generator=_gen(26))
    f = torch.stack([x1, x2], 1)
    tr, te = _split(f, 2000)
    assert abs(float(M.correlation(te)[0, 1])) < 0.1  # linear redundancy: none
    r2 = M.knn_predictability_r2(tr, te)
    assert r2[1] > 0.8  # x2 = x1^2 is predicted from x1
    assert r2[0] < 0.1  # x1 is not predicted from x2 (its sign is lost)
    assert M.nonlinear_predictability(tr, te) == pytest.approx(float(r2.mean()))
    # with independent columns beside them, x2 is still predicted; the noise columns are not
    g = torch.cat([f, torch.randn(2500, 2, generator=_gen(27))], 1)
    r2g = M.knn_predictability_r2(*_split(g, 2000))
    assert r2g[1] > 0.8 and (r2g[[0, 2, 3]] < 0.05).all()


def test_nonlinear_predictability_invariances_and_chunks():
    x = torch.randn(1300, 6, generator=_gen(28), dtype=torch.float64)  # float64: rescaling is then exact enough
    x[:, 1] = torch.sin(2 * x[:, 0]) + 0.3 * x[:, 1]
    x[:, 3] = x[:, 2] * x[:, 4] + 0.2 * x[:, 3]
    ref = M.nonlinear_predictability(*_split(x, 1000))
    assert ref > 0.2
    perm = torch.randperm(6, generator=_gen(29))
    assert M.nonlinear_predictability(*_split(x[:, perm], 1000)) == pytest.approx(ref, abs=1e-9)
    scale = torch.tensor([1e-2, 1.0, 7.0, 1e2, 0.5, 2.0])  # within the dead rule's 1 / tol range of sds
    assert M.nonlinear_predictability(*_split(x * scale + 5.0, 1000)) == pytest.approx(ref, abs=1e-9)
    dead = torch.cat([x[:, :3], torch.full((1300, 1), 2.5), x[:, 3:], torch.zeros(1300, 1)], 1)
    assert M.nonlinear_predictability(*_split(dead, 1000)) == pytest.approx(ref, abs=1e-9)
    r2 = M.knn_predictability_r2(*_split(dead, 1000))
    assert torch.isnan(r2[[3, 7]]).all() and not torch.isnan(r2[[0, 1, 2, 4, 5, 6]]).any()
    for chunk in (1, 7, 10_000):
        assert M.nonlinear_predictability(*_split(x, 1000), chunk=chunk) == pytest.approx(ref, abs=1e-12)
    # float32 input gives the float64 answer up to the input's rounding; fewer than 2 live features: nan
    assert M.nonlinear_predictability(*_split(x.float(), 1000)) == pytest.approx(ref, abs=1e-3)
    assert math.isnan(M.nonlinear_predictability(*_split(torch.cat([x[:, :1], torch.ones(1300, 3)], 1), 1000)))
