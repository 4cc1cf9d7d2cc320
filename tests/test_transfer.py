"""P2 transfer: the probe's mechanics and the planted controls of docs/protocol.md (P2) on planted codes.

The run-based controls (identical subsets, raw transfer = in-domain, the view) are in
``tests/test_transfer_run.py``, the data views (``digits28c``, step-matched) in ``tests/test_transfer_data.py``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.data import load_dataset
from bench.evaluate.probe import L2_GRID, accuracy, fit_logreg, standardize
from predictions.transfer import pairs as P
from predictions.transfer.probing import budget_probe, fit_subsets
from predictions.transfer.protocol import Transfer, TransferConfig, flag


# ------------------------------------------------------------------------------ kappa on planted codes
def _labels(n_per_class: int, c: int, g: torch.Generator) -> torch.Tensor:
    return torch.arange(c).repeat_interleave(n_per_class)[torch.randperm(c * n_per_class, generator=g)]


@pytest.mark.parametrize("scaling", ["scalar", "unit"])
def test_one_hot_labels_give_cca_1_and_a_constant_code_gives_0(scaling):
    g = torch.Generator().manual_seed(0)
    c = 5
    y = [_labels(n, c, g) for n in (40, 20, 20)]  # train, val, test (balanced test)
    subsets = [s for b in ("1", "5", "all") for s in P.draw_subsets(y[0], b, 3, seed=0, pair="planted")]
    onehot = [torch.nn.functional.one_hot(t, c).float() for t in y]
    res = budget_probe(onehot[0], y[0], onehot[1], y[1], onehot[2], y[2], c, subsets, scaling=scaling)
    assert torch.allclose(P.kappa(res.test_acc, c), torch.ones(len(subsets), dtype=torch.float64))
    assert torch.allclose(P.kappa(res.fixed_acc, c), torch.ones(len(subsets), dtype=torch.float64))
    for value in (1.0, 0.1):  # 0.1: its float mean is not exactly 0.1, the code is still constant
        const = [torch.full((len(t), 8), value) for t in y]
        res = budget_probe(const[0], y[0], const[1], y[1], const[2], y[2], c, subsets, scaling=scaling)
        assert P.kappa(res.test_acc, c).abs().max() < 1e-9  # one class predicted: 1/C of a balanced test
    assert P.kappa(0.2, 5) == 0.0 and P.kappa(1.0, 5) == 1.0 and P.kappa(0.6, 5) == pytest.approx(0.5)


def test_each_gathered_subset_is_the_same_problem_as_fitting_it_alone():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(300, 6, generator=g)
    y = (x[:, :3] @ torch.randn(3, 4, generator=g)).argmax(1)
    subsets = [np.arange(0, 300, 7), np.arange(5, 200, 3), np.arange(1, 300, 7)]
    xs = standardize(x)[0].double()
    for l2 in (1e-2, 1e-4):
        w, b = fit_subsets(xs, y, 4, l2, subsets, max_iter=300)
        for i, s in enumerate(subsets):
            w1, b1 = fit_logreg(xs[s], y[s], 4, l2, max_iter=1000)
            assert torch.allclose(w[i], w1[0], atol=2e-3)
            assert torch.allclose(b[i] - b[i].mean(), b1[0] - b1[0].mean(), atol=2e-3)
            assert accuracy(xs, y, w[i : i + 1], b[i : i + 1]) == accuracy(xs, y, w1, b1)


def _digits_code(k: int = 24):
    """Features of the digits splits through a seeded random projection and a ReLU (a stand-in encoder)."""
    d = load_dataset("digits")
    proj = torch.randn(d.train.x[0].numel(), k, generator=torch.Generator().manual_seed(0))
    return d, [torch.relu(s.x.flatten(1).float() @ proj) for s in (d.train, d.val, d.test)]


def _weighted_budget_probe(f_train, y_train, f_val, y_val, f_test, y_test, n_classes, subsets, fixed_l2=1e-2):
    """The former formulation, kept as a reference: the G probes as ONE L-BFGS problem on all N shared
    train rows, probe g weighting its rows 1 / |S_g| and every other row 0 (``fit_logreg``'s weight)."""
    x_tr, x_va, x_te = standardize(f_train.float(), f_val.float(), f_test.float())
    weight = torch.zeros(len(subsets), len(x_tr), dtype=torch.float64)
    for g, idx in enumerate(subsets):
        weight[g, torch.as_tensor(idx, dtype=torch.int64)] = 1.0 / len(idx)
    masks = torch.ones(len(subsets), x_tr.shape[1])
    grid = {float(v) for v in L2_GRID}
    best_val = best_test = best_l2 = fixed = init = None
    for l2 in sorted(grid | {fixed_l2}, reverse=True):
        init = fit_logreg(x_tr, y_train, n_classes, l2, masks, init=init, weight=weight)
        test, val = accuracy(x_te, y_test, *init), accuracy(x_va, y_val, *init)
        fixed = test if l2 == fixed_l2 else fixed
        if best_val is None:
            best_val, best_test, best_l2 = val, test, torch.full_like(val, l2)
            continue
        better = val > best_val
        best_val, best_test = torch.where(better, val, best_val), torch.where(better, test, best_test)
        best_l2 = torch.where(better, torch.full_like(best_l2, l2), best_l2)
    return best_test, best_l2, fixed


@pytest.mark.slow
def test_budget_probe_agrees_with_the_weighted_formulation_on_a_real_code():
    d, f = _digits_code()
    budgets, draws = ("1", "5", "10", "all"), (6, 4, 3, 1)
    plan = [(b, s) for b, k in zip(budgets, draws, strict=True) for s in P.draw_subsets(d.train.y, b, k, 0, "ref")]
    subsets = [s for _, s in plan]
    new = budget_probe(f[0], d.train.y, f[1], d.val.y, f[2], d.test.y, d.n_classes, subsets, scaling="unit")
    old_test, old_l2, old_fixed = _weighted_budget_probe(
        f[0], d.train.y, f[1], d.val.y, f[2], d.test.y, d.n_classes, subsets
    )
    at = np.array([b for b, _ in plan])
    for b in budgets:  # per budget, the mean over draws (what the protocol reports)
        i = torch.as_tensor(np.flatnonzero(at == b))
        assert abs(float(new.test_acc[i].mean() - old_test[i].mean())) <= 0.02, b
        assert abs(float(new.fixed_acc[i].mean() - old_fixed[i].mean())) <= 0.02, b
    assert float((new.l2 == old_l2).double().mean()) >= 0.75  # the same val-chosen L2 for most probes
    assert float((new.test_acc - old_test).abs().max()) <= 0.05


@pytest.mark.slow
def test_a_probe_does_not_depend_on_the_other_subsets_in_the_batch():
    d, f = _digits_code()
    ones, fives = P.draw_subsets(d.train.y, "1", 2, 0, "alone"), P.draw_subsets(d.train.y, "5", 1, 0, "alone")
    a = ones[0]
    alone = budget_probe(f[0], d.train.y, f[1], d.val.y, f[2], d.test.y, d.n_classes, [a])
    crowd = budget_probe(f[0], d.train.y, f[1], d.val.y, f[2], d.test.y, d.n_classes, [fives[0], ones[1], a])
    assert abs(float(alone.test_acc[0] - crowd.test_acc[2])) <= 1e-3
    assert abs(float(alone.fixed_acc[0] - crowd.fixed_acc[2])) <= 1e-3
    assert float(alone.l2[0]) == float(crowd.l2[2])


# ------------------------------------------------------------------------------ the labelled draws
def test_draws_are_stratified_at_random_never_a_prefix_and_seeded_without_the_method():
    y = torch.arange(5).repeat_interleave(40)  # class-sorted, as the mnist5k train split comes back
    a = P.draw_subsets(y, "5", 4, seed=0, pair="mnist_lo_hi")
    assert len(a) == 4 and all(len(s) == 25 for s in a)
    assert all(torch.bincount(y[torch.as_tensor(s)], minlength=5).tolist() == [5] * 5 for s in a)
    prefix = np.concatenate([np.arange(k * 40, k * 40 + 5) for k in range(5)])
    assert not any(np.array_equal(s, prefix) for s in a) and not np.array_equal(a[0], a[1])
    again = P.draw_subsets(y, "5", 4, seed=0, pair="mnist_lo_hi")
    assert all(np.array_equal(s, t) for s, t in zip(a, again, strict=True))
    for other in (P.draw_subsets(y, "5", 4, 1, "mnist_lo_hi"), P.draw_subsets(y, "5", 4, 0, "digits_lo_hi")):
        assert not np.array_equal(a[0], other[0])
    assert np.array_equal(P.draw_subsets(y, "all", 3, 0, "x")[0], np.arange(200))
    assert len(P.draw_subsets(y, "all", 3, 0, "x")) == 1


# ------------------------------------------------------------------------------ rotation invariance (scaling)
BUDGETS = (("1", 6), ("5", 3), ("10", 2))


def _cca(codes, d, seed: int = 0) -> float:
    """Mean cca over n in {1, 5, 10} of the main probe (default scaling) on ``d``'s splits."""
    subsets = [s for b, k in BUDGETS for s in P.draw_subsets(d.train.y, b, k, seed, "rotation")]
    res = budget_probe(codes[0], d.train.y, codes[1], d.val.y, codes[2], d.test.y, d.n_classes, subsets)
    return float(P.kappa(res.test_acc.mean(), d.n_classes))


def _rotation(k: int, seed: int) -> torch.Tensor:
    return torch.linalg.qr(torch.randn(k, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))[0]


def _pca(d, k: int) -> list[torch.Tensor]:
    x = d.train.x.double()
    mu = x.mean(0)
    v = torch.linalg.svd(x - mu, full_matrices=False).Vh[:k]
    return [((s.x.double() - mu) @ v.T).float() for s in (d.train, d.val, d.test)]


@pytest.mark.slow
def test_a_random_rotation_of_any_code_keeps_its_cca():
    """Fails under v1's per-unit standardisation (it whitens the PCA code; a rotated one it does not)."""
    d, relu = _digits_code()
    for name, code in (("random ReLU code", relu), ("PCA code, K = 16", _pca(d, 16))):
        q = _rotation(code[0].shape[1], 1).float()
        a, b = _cca(code, d), _cca([c @ q for c in code], d)
        assert abs(a - b) <= 0.01, (name, a, b)


@pytest.mark.slow
def test_pca_at_k_equal_d_gives_raws_cca():
    """PCA at K = D is a rotation of the centred pixels: the probe must read it like ``raw`` (v1: it did not)."""
    d = load_dataset("digits")
    raw = [s.x for s in (d.train, d.val, d.test)]
    a, b = _cca(raw, d), _cca(_pca(d, d.input_dim), d)
    assert abs(a - b) <= 0.01, (a, b)


# ------------------------------------------------------------------------------ config, profile, flags
def test_infeasible_budgets_are_rejected_with_their_reason():
    y = torch.tensor([0] * 10 + [1] * 3)
    assert P.infeasible(y, 2, "3") == "" and P.infeasible(y, 2, "all") == ""
    assert "class 1 has 3 train examples" in P.infeasible(y, 2, "4")
    for bad in (
        {"budgets": ("1", "5", "10", "0"), "draws": (1, 1, 1, 1)},
        {"budgets": ("1", "5", "10", "x")},
        {"draws": (1, 2)},
        {"budgets": ("5", "10"), "draws": (1, 1)},
        {"pairs": ("nope",)},
        {"pairs": ("dsprites",)},
    ):
        with pytest.raises(ValueError, match="budgets|draws|pairs"):
            TransferConfig(**bad).check()


def test_confirm_refuses_a_pairs_subset_lacking_a_primary_pair():
    for pairs in (("digits_lo_hi",), ("mnist_lo_hi", "digits_lo_hi", "mnist_digits_stretch")):
        pred = Transfer(TransferConfig(pairs=pairs))
        with pytest.raises(ValueError, match="pairs: confirm needs every primary pair.*missing.*mnist_digits"):
            pred.check_profile("confirm")
        pred.check_profile("quick")  # exploratory: runs, and says "primary not computed" (test_transfer_run)
    Transfer(TransferConfig()).check_profile("confirm")
    Transfer(TransferConfig(pairs=P.PRIMARY)).check_profile("confirm")


def test_the_pairs_of_the_protocol():
    assert P.PRIMARY == ("mnist_digits", "mnist_lo_hi", "digits_lo_hi")
    assert P.PAIRS["mnist_digits"].target == "digits28c" and P.PAIRS["mnist_digits_stretch"].target == "digits28"
    assert P.PAIRS["mnist_digits_stretch"].group == "stretch"
    assert P.PAIRS["digits_lo_hi"].width == 32 and all(P.PAIRS[p].width is None for p in P.PAIRS if p != "digits_lo_hi")
    assert "dsprites" not in P.PAIRS
    pair = P.PAIRS["mnist_digits"]
    assert P.matched_source(3500, 1258, pair) == "mnist5k~digits28c"  # sizes differ: a step-matched view
    assert P.matched_source(1800, 1750, P.PAIRS["mnist_lo_hi"]) == "mnist5k[0-4]"  # within 10%: the primary's own


def test_a_derived_row_is_under_trained_if_any_of_its_encoders_is():
    assert flag([False, True, None]) is True and flag([False, False]) is False
    assert flag([False, None]) is None and flag([]) is None
    kappas = {
        ("p", ref, "pca", 0, "1", "val", "scalar"): (0.5, ut)
        for ref, ut in (("transfer", False), ("in_domain", False), ("matched", True))
    }
    rows = {r["metric"]: r for r in Transfer._group_rows(kappas, [("p", "1")], "pca", 0, 8, "val", "scalar", "x", "1")}
    assert rows["kappa_transfer_mean"]["under_trained"] is False
    assert rows["gap_mean"]["under_trained"] is True and rows["gap_mean"]["value"] == 0.0
    kappas[("p", "transfer", "pca", 0, "1", "val", "scalar")] = (0.5, None)
    rows = {r["metric"]: r for r in Transfer._group_rows(kappas, [("p", "1")], "pca", 0, 8, "val", "scalar", "x", "1")}
    assert rows["kappa_transfer_mean"]["under_trained"] is None
