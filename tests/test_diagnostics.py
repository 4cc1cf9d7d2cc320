"""Per-job diagnostics (bench/evaluate/diagnostics.py) and the planted controls of protocol §11.5:
the TC floor at K >= B (11.5.5), per-term gradient norms against separate autograd passes (11.5.6),
and the ablation identities of the subject (11.5.4)."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from bench.evaluate import diagnostics as D
from bench.train import loop, losses
from bench.train.methods import METHODS, DataInfo
from bench.train.trainer import fit_encoder

B = 128


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def tc_floor(k: int, b: int = B) -> float:
    """||Corr||_F^2 >= tr(Corr)^2 / rank and rank <= B - 1 (centred): TC >= K^2 / (B - 1) - K."""
    return k * k / (b - 1) - k


# ----------------------------------------------------------------------------- TC floor (11.5.5)
@pytest.mark.parametrize("k", [256, 1024])
def test_tc_is_above_its_floor_on_random_data_at_k_above_b(k):
    a = torch.randn(4, B, k, generator=_gen(k))  # four iid Gaussian batches (S, B, K)
    relu = torch.relu(torch.randn(B, 64, generator=_gen(1)) @ torch.randn(64, k, generator=_gen(2)))  # subject at init
    for tc in (*losses.tc_term(a).tolist(), float(losses.tc_term(relu))):
        assert tc >= tc_floor(k) * (1 - 1e-5), (tc, tc_floor(k))
    iid = k * (k - 1) / (B - 1)  # E[r^2] = 1 / (B - 1) for independent Gaussian columns
    assert float(losses.tc_term(a).mean()) == pytest.approx(iid, rel=0.01)
    if k == 1024:
        assert tc_floor(k) == pytest.approx(7232.5, abs=0.1) and iid == pytest.approx(8248, abs=1)


def test_tc_floor_is_attained_by_copies_of_an_orthonormal_basis():
    """K = 2 (B - 1): each of the B - 1 centred orthonormal directions twice. Corr has B - 1 equal
    eigenvalues, the bound's equality case: TC = K (copies - 1) = the floor."""
    q, _ = torch.linalg.qr(torch.randn(B, B, generator=_gen(3), dtype=torch.float64))
    centred = q - q.mean(0)  # rank B - 1 after centring; orthonormalise what is left
    basis, _, _ = torch.linalg.svd(centred, full_matrices=False)
    a = basis[:, : B - 1].repeat(1, 2)  # (B, 254)
    k = a.shape[1]
    assert float(losses.tc_term(a, eps=1e-12)) == pytest.approx(tc_floor(k), rel=1e-6)


@pytest.mark.parametrize("k", [16, 64, 126])
def test_below_b_the_floor_does_not_bind(k):
    """At K < B - 1 the floor is negative: TC >= 0 is the binding bound, and iid data sit well above both."""
    assert tc_floor(k) < 0
    tc = losses.tc_term(torch.randn(8, B, k, generator=_gen(k)))
    assert bool((tc > 0).all())
    assert float(tc.mean()) == pytest.approx(k * (k - 1) / (B - 1), rel=0.05)


# ----------------------------------------------------------------------------- gradient norms (11.5.6)
@pytest.fixture()
def subject(digits):
    torch.manual_seed(0)
    m = METHODS.get("infomax")(METHODS.get("infomax").Config(lambda_h=0.5, lambda_tc=2.0), DataInfo(64, 10), 48)
    return m, digits.train.x[:B]


def _fresh_norm(model, batch, pick) -> float:
    """One backward pass of ``pick(terms)`` on a fresh copy of the model and a fresh graph."""
    m = copy.deepcopy(model)
    pick(m.loss_terms(batch)).backward()
    return math.sqrt(sum(float(p.grad.double().pow(2).sum()) for p in m.parameters()))


def test_term_gradient_norms_equal_separate_backward_passes(subject):
    model, x = subject
    norms = D.gradient_norms(model, x, model.loss_terms)
    assert set(norms) == {"grad_norm_lse", "grad_norm_entropy", "grad_norm_tc", "r_em"}
    for name in ("lse", "entropy", "tc"):
        assert norms[f"grad_norm_{name}"] == pytest.approx(_fresh_norm(model, x, lambda t, n=name: t[n]), rel=1e-6)
    infomax = _fresh_norm(model, x, lambda t: t["entropy"] + t["tc"])  # the norm of the summed gradient
    assert norms["r_em"] == pytest.approx(norms["grad_norm_lse"] / infomax, rel=1e-6)
    split = norms["grad_norm_lse"] / (norms["grad_norm_entropy"] + norms["grad_norm_tc"])
    assert abs(norms["r_em"] - split) > 1e-3 * split  # not the sum of the norms
    assert all(p.grad is None for p in model.parameters())  # nothing accumulated into the model


def test_a_dict_of_callables_gives_the_same_norms(subject):
    model, x = subject
    c = model.cfg
    terms = {
        "lse": lambda b: c.lambda_lse * losses.lse_term(model.encode(b)),
        "entropy": lambda b: c.lambda_h * losses.entropy_term(model.encode(b)),
        "tc": lambda b: c.lambda_tc * losses.tc_term(model.encode(b)),
    }
    a, b = D.gradient_norms(model, x, terms), D.gradient_norms(model, x, model.loss_terms)
    assert a == pytest.approx(b, rel=1e-6)


def test_r_em_without_an_em_or_infomax_term():
    g = {"entropy": [torch.ones(3)], "tc": [-torch.ones(3)]}
    assert math.isnan(D.r_em(g))  # infomax_noem: no EM term
    assert D.r_em({**g, "lse": [torch.ones(3)]}) == math.inf  # H and TC cancel exactly
    assert D.r_em({"lse": [torch.ones(4)], "tc": [torch.ones(1)]}) == 2.0  # a term of weight 0 counts as 0
    with pytest.raises(ValueError, match="scalar"):
        D.term_gradients(torch.nn.Linear(2, 2), torch.ones(3, 2), lambda b: {"x": b.sum(0)})


def test_job_diagnostics(subject):
    model, x = subject
    a = torch.cat([torch.randn(100, 3, generator=_gen(0)), torch.zeros(100, 1)], 1)
    a[7, 1] = -9.0
    d = D.job_diagnostics(a, D.seconds_per_sample(3.0, 2 * 600))
    assert d == {"act_scale": 9.0, "dead_fraction": 0.25, "seconds_per_sample": 0.0025}
    full = D.job_diagnostics(model.encode_all(x), 1e-4, model, x, model.loss_terms)
    assert full["r_em"] == D.gradient_norms(model, x, model.loss_terms)["r_em"] > 0
    assert math.isnan(D.activation_scale(torch.tensor([[1.0, math.nan]])))


# ----------------------------------------------------------------------------- ablation identities (11.5.4)
KW = {"epochs": 2, "batch_size": B, "device": torch.device("cpu"), "track": False}


def _fit(name: str, digits, **cfg):
    method, meta = fit_encoder(name, METHODS.get(name).Config(**cfg), digits, 16, 3, **KW)
    assert meta["status"] == "ok"
    return method, meta


def test_infomax_without_lse_is_infomax_noem_value_for_value(digits):
    a, meta_a = _fit("infomax", digits, lambda_lse=0.0)
    b, meta_b = _fit("infomax_noem", digits)
    assert meta_a["history"] == meta_b["history"]
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert na == nb and torch.equal(pa, pb), na
    c, _ = _fit("infomax", digits)  # control: the EM term does change the trained weights
    assert not torch.equal(c.encoder.weight, a.encoder.weight)


class _LSEPlusH(METHODS.get("infomax")):
    """Reference: the LSE + H objective written out (not registered)."""

    def terms(self, a):
        return {"lse": losses.lse_term(a), "entropy": losses.entropy_term(a)}


def test_infomax_without_tc_is_the_lse_plus_h_objective(digits):
    cls = METHODS.get("infomax")
    torch.manual_seed(1)
    m = cls(cls.Config(lambda_tc=0.0), DataInfo(64, 10), 16)
    ref = _LSEPlusH(cls.Config(), DataInfo(64, 10), 16)
    ref.load_state_dict(m.state_dict())
    x = digits.train.x[:B]
    a = m.encode(x)
    assert m.loss_terms(x) == {"lse": losses.lse_term(a), "entropy": losses.entropy_term(a)}
    for model in (m, ref):
        loop.train(model, digits.train.x, None, epochs=2, batch_size=B, seed=5)
    assert torch.equal(m.encoder.weight, ref.encoder.weight) and torch.equal(m.encoder.bias, ref.encoder.bias)
