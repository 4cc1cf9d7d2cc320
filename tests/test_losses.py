"""The subject's losses against independent, straightforward transcriptions (docs/protocol.md §4)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bench.train import losses


@pytest.fixture
def acts():
    g = torch.Generator().manual_seed(0)
    return torch.relu(torch.randn(16, 5, generator=g, dtype=torch.float64) + 0.3)


def test_implicit_em_identity():
    """d LSE / d a_j equals the responsibility softmax(-a)_j, exactly, for every input."""
    g = torch.Generator().manual_seed(1)
    a = (torch.randn(32, 7, generator=g, dtype=torch.float64) * 3).requires_grad_(True)
    losses.lse_term(a).backward()
    assert torch.allclose(a.grad, torch.softmax(-a.detach(), dim=1), atol=1e-6, rtol=0)


def _var(col):
    m = sum(col) / len(col)
    return sum((v - m) ** 2 for v in col) / len(col)


def _corr(ci, cj, eps):
    mi, mj = sum(ci) / len(ci), sum(cj) / len(cj)
    cov = sum((u - mi) * (v - mj) for u, v in zip(ci, cj, strict=True)) / len(ci)
    return cov / math.sqrt((_var(ci) + eps) * (_var(cj) + eps))


def test_entropy_term_matches_loop(acts):
    cols = acts.T.tolist()
    ref = -sum(math.log(_var(c) + 1e-6) for c in cols)
    assert float(losses.entropy_term(acts, 1e-6)) == pytest.approx(ref, rel=1e-10)


def test_tc_term_matches_loop(acts):
    cols = acts.T.tolist()
    k = len(cols)
    ref = sum(_corr(cols[i], cols[j], 1e-6) ** 2 for i in range(k) for j in range(k) if i != j)
    assert float(losses.tc_term(acts, 1e-6)) == pytest.approx(ref, rel=1e-9)


def test_tc_logdet_matches_numpy_and_vanishes_when_uncorrelated(acts):
    cols = acts.T.tolist()
    k = len(cols)
    r = np.array([[_corr(cols[i], cols[j], 1e-6) for j in range(k)] for i in range(k)])
    ref = -0.5 * np.linalg.slogdet(r + 1e-4 * np.eye(k))[1]
    assert float(losses.tc_logdet_term(acts, 1e-6)) == pytest.approx(ref, rel=1e-8)
    g = torch.Generator().manual_seed(5)
    ind = torch.randn(20000, 4, generator=g, dtype=torch.float64)
    assert abs(float(losses.tc_logdet_term(ind))) < 0.01  # independent columns: TC ~ 0
    mixed = ind @ torch.tensor([[1.0, 0.9, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.float64)
    assert float(losses.tc_logdet_term(mixed)) > 0.3


def test_lse_term_matches_loop(acts):
    ref = -sum(math.log(sum(math.exp(-v) for v in row)) for row in acts.tolist())
    assert float(losses.lse_term(acts)) == pytest.approx(ref, rel=1e-12)


def test_duplicated_units_raise_tc():
    g = torch.Generator().manual_seed(2)
    a = torch.randn(256, 4, generator=g, dtype=torch.float64)
    dup = torch.cat([a[:, :2], a[:, :2]], 1)
    assert float(losses.tc_term(dup)) > 1.9 > float(losses.tc_term(a))
