"""Planted controls of the dependent-factor datasets (protocol 11.5.10, for 11.2c and 11.0).

``ica`` with Gaussian-copula and elliptical sources, ``dsprites`` with coupled positions and with
deduplicated factor tuples. The defaults must give the datasets of before bit for bit: the
references below are verbatim copies of the loaders' draws at commit 475c54f (before these options
existed), so they do not share a line with the code under test.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from scipy import stats

from bench.config import ConfigError, parse_overrides
from bench.data import DataConfig, Dataset, load_dataset, sprites, stratified_split
from bench.data.core import _FRACTIONS, data_identity
from bench.data.embedded import (
    copula_pairs,
    distinct_tuples,
    elliptical_laplace,
    laplace_to_normal,
    normal_to_laplace,
)

N = 20_000
RHOS = (0.25, 0.5, 0.75)
DSPRITES_SIZES = (3, 6, 16, 16, 16)


# ----------------------------------------------------------------------------- references (475c54f)


def _ref_haar(rng: np.random.Generator, k: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((k, k)))
    return q * np.sign(np.diag(r))


def _ref_two_rotation(rng: np.random.Generator, k: int) -> np.ndarray:
    return _ref_haar(rng, k) @ np.diag(rng.uniform(1.0, 2.0, size=k)) @ _ref_haar(rng, k).T


def _ref_ica(cfg: DataConfig) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
    """load_ica's x, s and split at 475c54f."""
    k = cfg.sources
    rng = np.random.default_rng((cfg.split_seed, 0x1CA))
    s = rng.laplace(0.0, 1.0, size=(cfg.n, k))
    a1 = _ref_two_rotation(rng, k)
    a2 = _ref_two_rotation(rng, k)
    if cfg.mixing == "linear":
        x = s @ a1.T
    else:
        h = s @ a1.T
        x = np.where(h > 0, h, 0.2 * h) @ a2.T
    tr, va, te = stratified_split(np.zeros(cfg.n), _FRACTIONS, cfg.split_seed)
    mean, std = x[tr].mean(axis=0), x[tr].std(axis=0)
    x = (x - mean) / std
    return x, s, (tr, va, te)


def _ref_dsprites_idx(cfg: DataConfig) -> np.ndarray:
    """load_dsprites's factor draws at 475c54f."""
    sizes = (len(sprites.SHAPES), len(sprites.SCALES), len(sprites.ORIENTATIONS), 16, 16)
    rng = np.random.default_rng((cfg.split_seed, 0x5B1))
    return np.stack([rng.integers(0, k, size=cfg.n) for k in sizes], axis=1)


def _assert_split_equals(ds: Dataset, x, y, factors, parts) -> None:
    for split, idx in zip((ds.train, ds.val, ds.test), parts, strict=True):
        t = torch.from_numpy(idx)
        assert torch.equal(split.x, torch.as_tensor(x)[t].to(torch.float32))
        assert torch.equal(split.factors, torch.as_tensor(factors)[t].to(torch.float32))
        assert (split.y is None) == (y is None)
        if y is not None:
            assert torch.equal(split.y, torch.as_tensor(y)[t].to(torch.int64))


def _all_factors(ds: Dataset) -> np.ndarray:
    return torch.cat([ds.train.factors, ds.val.factors, ds.test.factors]).double().numpy()


def _offdiag(m: np.ndarray) -> np.ndarray:
    return m[~np.eye(len(m), dtype=bool)]


def _laplace_ks(s: np.ndarray) -> float:
    """The largest Kolmogorov-Smirnov distance of a column of ``s`` from Laplace(0, 1)."""
    return max(stats.kstest(col, stats.laplace.cdf).statistic for col in s.T)


# ----------------------------------------------------------------------------- ica: defaults


@pytest.mark.parametrize(
    "cfg",
    [
        DataConfig(),
        DataConfig(mixing="nonlinear"),
        DataConfig(split_seed=3, sources=5, n=3000),
        DataConfig(sources_law="copula", copula_rho=0.0),  # the copula path draws nothing at rho = 0
    ],
    ids=["default", "nonlinear", "seed3-odd-k", "copula-rho0"],
)
def test_ica_defaults_equal_the_data_of_before_bit_for_bit(cfg):
    x, s, parts = _ref_ica(cfg)
    _assert_split_equals(load_dataset("ica", cfg), x, None, s, parts)


def test_ica_default_config_hashes_like_before():
    ref = load_dataset("ica", DataConfig())
    assert load_dataset("ica", DataConfig(sources_law="copula")).content_hash == ref.content_hash
    assert load_dataset("ica", DataConfig(sources_law="copula", copula_rho=0.25)).content_hash != ref.content_hash


def test_laplace_normal_maps_invert_each_other_into_the_far_tails():
    s = np.array([-40.0, -12.0, -1.0, -1e-9, 0.0, 1e-9, 0.5, 3.0, 25.0, 40.0])
    g = laplace_to_normal(s)
    np.testing.assert_allclose(normal_to_laplace(g), s, rtol=1e-10, atol=1e-15)
    assert np.all(np.diff(g) > 0) and g[4] == 0.0  # monotone, 0 -> 0
    draws = np.random.default_rng(0).laplace(size=N)
    assert stats.kstest(laplace_to_normal(draws), stats.norm.cdf).statistic < 0.015


# ----------------------------------------------------------------------------- ica: copula


def _normal_scores_corr(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of the van der Waerden scores Phi^-1(rank / (n + 1)): the copula's rho."""
    za, zb = (stats.norm.ppf(stats.rankdata(v) / (len(v) + 1)) for v in (a, b))
    return float(np.corrcoef(za, zb)[0, 1])


@pytest.mark.parametrize("rho", RHOS)
def test_copula_correlation_is_rho_within_two_hundredths(rho):
    cfg = DataConfig(sources_law="copula", copula_rho=rho)
    s = _all_factors(load_dataset("ica", cfg))
    pairs = copula_pairs(cfg.sources)
    assert pairs == [(0, 1), (2, 3), (4, 5), (6, 7)]
    for i, j in pairs:
        assert abs(_normal_scores_corr(s[:, i], s[:, j]) - rho) < 0.02
        spearman = stats.spearmanr(s[:, i], s[:, j]).statistic
        assert abs(spearman - 6 / np.pi * np.arcsin(rho / 2)) < 0.02
    for i, j in [(1, 2), (3, 4), (0, 7)]:  # across pairs: independent (standard error 1 / sqrt(N) = .007)
        assert abs(_normal_scores_corr(s[:, i], s[:, j])) < 0.03
    assert _laplace_ks(s) < 0.015  # every marginal is still Laplace(0, 1)


def test_copula_keeps_the_first_source_of_each_pair_and_the_mixing():
    base = load_dataset("ica", DataConfig(n=3000))
    dep = load_dataset("ica", DataConfig(n=3000, sources_law="copula", copula_rho=0.5))
    assert torch.equal(dep.train.factors[:, 0::2], base.train.factors[:, 0::2])
    assert not torch.equal(dep.train.factors[:, 1::2], base.train.factors[:, 1::2])
    # the same A: x = (s A^T - mean) / std, so regressing x on (s, 1) recovers A^T up to a scale per column
    directions = []
    for ds in (base, dep):
        s = torch.cat([ds.train.factors.double(), torch.ones(len(ds.train.x), 1, dtype=torch.float64)], 1)
        fit = torch.linalg.lstsq(s, ds.train.x.double()).solution
        assert float((s @ fit - ds.train.x.double()).abs().max()) < 1e-5  # exactly linear
        directions.append(fit[:-1] / fit[:-1].norm(dim=0))
    assert torch.allclose(*directions, atol=1e-5)


# ----------------------------------------------------------------------------- ica: elliptical


def _excess_kurtosis(z: np.ndarray) -> np.ndarray:
    z = (z - z.mean(0)) / z.std(0)
    return (z**4).mean(0) - 3.0


def test_elliptical_sources_are_uncorrelated_but_dependent():
    ell = _all_factors(load_dataset("ica", DataConfig(sources_law="elliptical")))
    ind = _all_factors(load_dataset("ica", DataConfig()))
    # standard error of a correlation of these sources: sqrt(E s_i^2 s_j^2 / N) / Var s = sqrt(8 / N) / 2 = .01
    assert np.abs(_offdiag(np.corrcoef(ell.T))).max() < 0.04
    sq = _offdiag(np.corrcoef((ell**2).T))  # theory: Var v / Var s^2 = 4 / 20
    assert sq.min() > 0.12 and abs(sq.mean() - 0.2) < 0.03
    assert np.abs(_offdiag(np.corrcoef((ind**2).T))).max() < 0.03  # the control: independent
    assert _laplace_ks(ell) < 0.015


def test_elliptical_law_looks_the_same_in_every_direction():
    """Spherical: a random direction is as heavy-tailed as a source axis, so no rotation picks the
    sources out (for independent Laplace sources it is much less so: the CLT)."""
    rng = np.random.default_rng(1)
    w = rng.standard_normal((8, 64))
    w /= np.linalg.norm(w, axis=0)
    ell = _all_factors(load_dataset("ica", DataConfig(sources_law="elliptical")))
    ind = _all_factors(load_dataset("ica", DataConfig()))
    k_axis, k_dir = _excess_kurtosis(ell).mean(), _excess_kurtosis(ell @ w).mean()
    assert abs(k_axis - 3.0) < 0.5 and abs(k_dir - k_axis) < 0.3
    assert _excess_kurtosis(ind @ w).mean() < 0.5 * _excess_kurtosis(ind).mean()


def test_elliptical_marginal_is_exactly_laplace_by_construction():
    rng = np.random.default_rng(2)
    s = elliptical_laplace(rng.laplace(size=(N, 1)), rng.exponential(2.0, size=(N, 1)))
    assert stats.kstest(s[:, 0], stats.laplace.cdf).statistic < 0.015
    wrong = elliptical_laplace(rng.laplace(size=(N, 1)), rng.exponential(1.0, size=(N, 1)))
    assert stats.kstest(wrong[:, 0], stats.laplace.cdf).statistic > 0.03  # the check can fail


# ----------------------------------------------------------------------------- dsprites


def test_dsprites_uncoupled_equals_the_data_of_before_bit_for_bit():
    cfg = DataConfig()
    idx = _ref_dsprites_idx(cfg)
    x = sprites.render(idx).reshape(cfg.n, -1)
    parts = stratified_split(idx[:, 0], _FRACTIONS, cfg.split_seed)
    inf = DataConfig(pos_coupling=float("inf"))
    assert inf == cfg and inf.pos_coupling is None
    _assert_split_equals(load_dataset("dsprites", inf), x, idx[:, 0], idx.astype(np.float32), parts)


def _law_corr(s: float) -> float:
    p = sprites.position_law(s)
    c = np.arange(16.0)
    px, py = p.sum(1), p.sum(0)
    mx, my = px @ c, py @ c
    cov = (p * np.outer(c - mx, c - my)).sum()
    return float(cov / np.sqrt((px @ (c - mx) ** 2) * (py @ (c - my) ** 2)))


def test_coupled_positions_correlate_as_their_law_says():
    base = load_dataset("dsprites", DataConfig())
    got = {}
    for s in (0.4, 0.2):
        ds = load_dataset("dsprites", DataConfig(pos_coupling=s))
        f = _all_factors(ds)
        got[s] = np.corrcoef(f[:, 3], f[:, 4])[0, 1]
        assert abs(got[s] - _law_corr(s)) < 0.02
        assert torch.equal(ds.train.factors[:, :3], base.train.factors[:, :3])  # only positions moved
    f0 = _all_factors(base)
    assert abs(np.corrcoef(f0[:, 3], f0[:, 4])[0, 1]) < 0.03
    assert got[0.2] > got[0.4] + 0.2 and got[0.4] > 0.3


def test_position_law():
    p = sprites.position_law(0.2)
    assert p.shape == (16, 16) and abs(p.sum() - 1) < 1e-12
    np.testing.assert_allclose(p, p.T)  # symmetric in x and y
    assert p[3, 3] / p[3, 7] == pytest.approx(np.exp((4 / 15) ** 2 / (2 * 0.04)))
    assert np.all(sprites.position_law(None) == 1 / 256)


def _tuples(split) -> set[tuple[int, ...]]:
    return {tuple(r) for r in split.factors.to(torch.int64).tolist()}


@pytest.mark.parametrize("coupling", [None, 0.2])
def test_dedupe_has_no_duplicate_and_no_tuple_in_two_splits(coupling):
    ds = load_dataset("dsprites", DataConfig(dedupe=True, pos_coupling=coupling))
    tr, va, te = (_tuples(s) for s in (ds.train, ds.val, ds.test))
    assert len(tr) == len(ds.train.x) and len(va) == len(ds.val.x) and len(te) == len(ds.test.x)
    assert len(tr) + len(va) + len(te) == N
    assert not (tr & va or tr & te or va & te)
    plain = load_dataset("dsprites", DataConfig(pos_coupling=coupling))
    assert len(set().union(*(_tuples(s) for s in (plain.train, plain.val, plain.test)))) < N  # without: duplicates
    # positions are the plain draws'; the rest are redrawn, still about uniform
    f, g = _all_factors(ds), _all_factors(plain)
    assert sorted(map(tuple, f[:, 3:].astype(int))) == sorted(map(tuple, g[:, 3:].astype(int)))
    for col, k in zip(range(3), DSPRITES_SIZES[:3], strict=True):
        freq = np.bincount(f[:, col].astype(int), minlength=k) / N
        assert np.abs(freq - 1 / k).max() < 0.02
    # the images follow the factors
    x = sprites.render(ds.train.factors[:50].to(torch.int64).numpy()).reshape(50, -1)
    assert torch.equal(ds.train.x[:50], x)


def test_distinct_tuples_refuses_a_cell_beyond_its_capacity():
    rng = np.random.default_rng(0)
    idx = np.zeros((289, 5), dtype=np.int64)  # 289 draws in one position cell of 288 tuples
    with pytest.raises(ValueError, match="lower data.n"):
        distinct_tuples(idx, DSPRITES_SIZES, rng)
    out = distinct_tuples(idx[:288], DSPRITES_SIZES, rng)
    assert len({tuple(r) for r in out}) == 288 and np.all(out[:, 3:] == 0)


# ----------------------------------------------------------------------------- config


def test_new_options_are_checked_and_serialise_cleanly():
    for bad in (
        {"sources_law": "student"},
        {"copula_rho": 0.5},  # needs sources_law=copula
        {"sources_law": "copula", "copula_rho": 1.0},
        {"pos_coupling": 0.0},
        {"pos_coupling": float("nan")},
        {"pos_coupling": float("-inf")},
    ):
        with pytest.raises(ValueError):
            DataConfig(**bad)
    for cfg in (DataConfig(), DataConfig(pos_coupling=float("inf")), DataConfig(pos_coupling=0.2, dedupe=True)):
        json.dumps(dataclasses.asdict(cfg), allow_nan=False)  # strict JSON: no Infinity in a cache key
    with pytest.raises(ConfigError, match="needs sources_law=copula"):
        parse_overrides(["dataset=ica", "data.copula_rho=0.5"])
    cfg = parse_overrides(["dataset=dsprites", "data.pos_coupling=none", "data.dedupe=true"]).data
    assert cfg.pos_coupling is None and cfg.dedupe


def test_data_identity_at_the_defaults_is_the_key_of_before():
    """The fields of DataConfig at 475c54f, less root and download, are what a default config keys on."""
    assert data_identity(DataConfig()) == {"split_seed": 0, "n": 20000, "sources": 8, "mixing": "linear"}
    assert data_identity(DataConfig(dedupe=True))["dedupe"] is True
    assert data_identity(DataConfig(sources_law="copula", copula_rho=0.5))["copula_rho"] == 0.5
