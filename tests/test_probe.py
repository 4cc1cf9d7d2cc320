"""The linear probe and kNN on inputs with known answers (docs/protocol.md §6, §9)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bench.evaluate.probe import L2_GRID, knn_accuracy, linear_probe


def _splits(x, y, n=(600, 200, 200)):
    a, b = n[0], n[0] + n[1]
    return x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:]


def test_l2_grid_is_the_protocols():
    assert len(L2_GRID) == 6 and abs(L2_GRID[0] - 1e-4) < 1e-12 and abs(L2_GRID[-1] - 10) < 1e-9


def test_one_hot_label_features_give_accuracy_one():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (1000,), generator=g)
    x = F.one_hot(y, 10).float()
    r = linear_probe(*_splits(x, y), n_classes=10)
    assert float(r.test_acc[0]) == 1.0
    assert knn_accuracy(*(_splits(x, y)[i] for i in (0, 1, 4, 5)), n_classes=10) == 1.0


def test_noise_features_give_chance():
    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 4, (3000,), generator=g)
    x = torch.randn(3000, 16, generator=g)
    r = linear_probe(*_splits(x, y, (2000, 500, 500)), n_classes=4)
    assert abs(float(r.test_acc[0]) - 0.25) < 0.07


def test_masks_refit_on_kept_features_only():
    g = torch.Generator().manual_seed(2)
    y = torch.randint(0, 3, (1000,), generator=g)
    informative = F.one_hot(y, 3).float() + 0.1 * torch.randn(1000, 3, generator=g)
    x = torch.cat([informative, torch.randn(1000, 5, generator=g)], 1)
    masks = torch.tensor([[1.0] * 8, [0, 0, 0, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0, 0, 0]])
    r = linear_probe(*_splits(x, y), n_classes=3, masks=masks)
    assert r.test_acc[0] > 0.95 and r.test_acc[2] > 0.95
    assert r.test_acc[1] < 0.5  # only noise left
    assert torch.all(r.weight[1, :3] == 0) and torch.all(r.weight[2, 3:] == 0)


def test_l2_is_chosen_on_val_not_test():
    """Flip the test labels: a test-selected probe would change, a val-selected one must not."""
    g = torch.Generator().manual_seed(3)
    y = torch.randint(0, 2, (1000,), generator=g)
    x = y[:, None].float() + 0.8 * torch.randn(1000, 4, generator=g)
    s = _splits(x, y)
    a = linear_probe(*s, n_classes=2)
    b = linear_probe(*s[:5], 1 - s[5], n_classes=2)
    assert float(a.l2[0]) == float(b.l2[0])
    assert abs(float(a.test_acc[0]) + float(b.test_acc[0]) - 1) < 1e-9


@pytest.mark.slow
def test_batched_probe_matches_converged_sklearn_at_the_same_l2(digits):
    """The one probe against scikit-learn's LogisticRegression, C = 1 / (l2 N), on the data the
    suite runs: every masked probe of the batched path (the pruning protocol's use) scores within
    0.005 of a fully converged fit at the L2 strength the path chose, and the unmasked probe too."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from bench.engine.jobs import data_info
    from bench.evaluate.probe import standardize
    from bench.train.methods import METHODS

    torch.manual_seed(0)
    k = 32
    m = METHODS.get("random")(METHODS.get("random").Config(), data_info(digits), k)
    with torch.no_grad():
        f = [m.encode(s.x) for s in (digits.train, digits.val, digits.test)]
    z = standardize(*f)
    g = torch.Generator().manual_seed(0)
    masks = torch.ones(6, k)
    for i, p in enumerate((0.0, 0.2, 0.4, 0.6, 0.8, 0.9)):
        masks[i, torch.randperm(k, generator=g)[: round(p * k)]] = 0
    r = linear_probe(z[0], digits.train.y, z[1], digits.val.y, z[2], digits.test.y, 10, masks=masks, standardized=True)
    n = len(digits.train.y)
    for i in range(len(masks)):
        keep = masks[i].bool().numpy()
        ref = LogisticRegression(C=1 / (float(r.l2[i]) * n), tol=1e-10, max_iter=20000)
        ref.fit(z[0][:, keep].double().numpy(), digits.train.y.numpy())
        acc = float(np.mean(ref.predict(z[2][:, keep].double().numpy()) == digits.test.y.numpy()))
        assert abs(float(r.test_acc[i]) - acc) <= 0.005, (i, float(r.l2[i]), float(r.test_acc[i]), acc)


def _autograd_loss(x, y, n_classes, l2, masks, w, b, weight):
    """The probe's objective as the autograd closure wrote it before the analytic gradient:
    (N, G, C) logits, ``logsumexp - gather``, mean (or ``weight``-ed) CE + l2 / 2 ||m W||^2."""
    g, k = w.shape[0], x.shape[-1]
    m3 = (torch.ones(g, k, dtype=x.dtype) if masks is None else masks.to(x.dtype))[:, :, None]
    wm = w * m3
    if x.dim() == 2:
        logits = (x @ wm.permute(1, 0, 2).reshape(k, -1)).view(len(y), g, n_classes) + b[None]
        target = y[:, None, None].expand(len(y), g, 1)
        rw = None if weight is None else weight.T
    else:
        logits = torch.baddbmm(b[:, None, :], x, wm)
        target = y[None, :, None].expand(g, len(y), 1)
        rw = weight
    if rw is None:
        ce = (torch.logsumexp(logits, -1).sum() - logits.gather(-1, target).sum()) / len(y)
    else:
        ce = (rw * (torch.logsumexp(logits, -1) - logits.gather(-1, target)[..., 0])).sum()
    return ce + 0.5 * l2 * wm.pow(2).sum()


@pytest.mark.parametrize("stacked", [False, True])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_analytic_gradient_is_autograds(stacked, masked, weighted):
    """fit_logreg's closure (loss and gradient in one pass, no autograd) against autograd's
    gradient of the same loss, in float64, on random data: shared (N, K) or stacked (G, N, K)
    features, with and without 0/1 masks and row weights, at a non-trivial point."""
    from bench.evaluate.probe import _problem

    gen = torch.Generator().manual_seed(int(stacked) + 2 * int(masked) + 4 * int(weighted))
    n, k, c, l2 = 50, 7, 4, 0.3
    g = 3 if stacked or masked else 1  # shared x without masks: one probe
    x = torch.randn(*((g,) if stacked else ()), n, k, generator=gen, dtype=torch.float64)
    y = torch.randint(0, c, (n,), generator=gen)
    masks = (torch.rand(g, k, generator=gen) > 0.4).double() if masked else None
    weight = torch.rand(g, n, generator=gen, dtype=torch.float64) if weighted else None
    if weighted:
        weight[:, ::3] = 0
        weight /= weight.sum(1, keepdim=True)
    w0 = 3 * torch.randn(g, k, c, generator=gen, dtype=torch.float64)
    b0 = torch.randn(g, c, generator=gen, dtype=torch.float64)
    loss_grad, w, b = _problem(x, y, c, l2, masks, (w0, b0), weight)
    loss, dw, db = loss_grad()
    ref_w, ref_b = w0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
    ref = _autograd_loss(x, y, c, l2, masks, ref_w, ref_b, weight)
    ref.backward()
    ref = ref.detach()
    assert torch.allclose(loss, ref, rtol=1e-10, atol=0)
    assert torch.allclose(dw.transpose(1, 2), ref_w.grad, rtol=1e-10, atol=1e-12)
    assert torch.allclose(db, ref_b.grad, rtol=1e-10, atol=1e-12)
    # float32, as the suite runs it: within 1e-5 relative of the float64 autograd gradient
    loss_grad, *_ = _problem(
        x.float(),
        y,
        c,
        l2,
        None if masks is None else masks.float(),
        (w0.float(), b0.float()),
        None if weight is None else weight.float(),
    )
    loss32, dw32, db32 = loss_grad()
    scale = ref_w.grad.abs().max()
    assert abs(float(loss32) - float(ref)) <= 1e-5 * abs(float(ref))
    assert float((dw32.transpose(1, 2).double() - ref_w.grad).abs().max()) <= 1e-5 * float(scale)
    assert float((db32.double() - ref_b.grad).abs().max()) <= 1e-5 * float(ref_b.grad.abs().max())
