"""Known-answer checks for mae, supervised, supervised_cnn, fastica and gmm.

The registry-parametrized checks (shapes, backward, learns, determinism) live in
test_methods.py; these test what is specific to each method: MAE's masking and masked-only
loss, the supervised methods' use of labels and the CNN's stem, FastICA's source recovery
(the planted control of docs/protocol.md section 9) and the GMM's E-step against scikit-learn.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.mixture import GaussianMixture

from baselines.mae import MAE, auto_num_heads, auto_patch_size, masked_mse, random_masking
from bench.data import DataConfig, load_dataset
from bench.engine.jobs import data_info
from bench.train.methods import METHODS, DataInfo
from bench.train.trainer import train

VECTORS = DataInfo(input_dim=8, n_classes=None, image_shape=None)
MNIST_INFO = DataInfo(input_dim=784, n_classes=10, image_shape=(1, 28, 28))


def build(name, info, width, seed=0, **overrides):
    torch.manual_seed(seed)
    cls = METHODS.get(name)
    return cls(cls.Config(**overrides), info, width)


# ----------------------------------------------------------------------------- mae
def test_mae_masks_75_percent_of_patches_per_sample():
    ids_keep, ids_restore, mask = random_masking(256, 16, 0.75, torch.device("cpu"))
    assert mask.shape == (256, 16) and ids_keep.shape == (256, 4)
    assert torch.equal(mask.sum(1), torch.full((256,), 12.0))
    assert (mask.gather(1, ids_keep) == 0).all()  # the kept patches are exactly the unmasked ones
    assert len({tuple(r) for r in mask.int().tolist()}) > 100  # drawn per sample, not one shared mask
    assert (mask.mean(0) - 0.75).abs().max() < 0.15  # every position gets masked about as often


def test_mae_patch_and_head_rules():
    assert [auto_patch_size(s, s) for s in (8, 28, 32, 6)] == [2, 4, 4, 1]
    assert [auto_num_heads(k) for k in (64, 16, 6, 9)] == [4, 4, 2, 1]
    for width, heads in [(16, 4), (6, 2), (9, 1)]:
        m = build("mae", DataInfo(64, 10, (1, 8, 8)), width)
        assert m.patch_size == 2 and m.grid == (4, 4)
        assert all(b.attn.num_heads == heads for b in m.encoder.blocks)
        assert m.encode(torch.rand(3, 64)).shape == (3, width)
    assert build("mae", MNIST_INFO, 64).grid == (7, 7)


def test_mae_loss_is_on_masked_patches_only(digits):
    m = build("mae", data_info(digits), 16)
    x = digits.train.x[:32]
    torch.manual_seed(5)
    pred, target, mask = m.reconstruct(x)
    # the encoder never sees a masked patch: overwrite the masked patches' pixels, same mask draw
    p = m.patchify(x)
    scrambled = torch.where(mask[..., None].bool(), torch.rand_like(p), p)
    x2 = scrambled.reshape(32, 4, 4, 2, 2).permute(0, 1, 3, 2, 4).reshape(32, 64)
    assert torch.equal(m.patchify(x2), scrambled)  # the inverse of patchify, written out
    torch.manual_seed(5)
    pred2, target2, mask2 = m.reconstruct(x2)
    assert torch.equal(mask, mask2)
    assert torch.allclose(pred, pred2, atol=1e-6)
    assert not torch.allclose(target, target2)
    # the loss: mean over masked patches of the per-patch MSE (reference transcription)
    torch.manual_seed(5)
    loss = m.loss_terms(x)["mse_masked"]
    per_patch = ((pred - target) ** 2).mean(-1)
    ref = per_patch[mask.bool()].mean()
    assert torch.allclose(loss, ref, rtol=1e-5)
    assert not torch.allclose(loss, per_patch.mean(), rtol=1e-3)
    # errors on visible patches cost nothing, errors on masked ones do
    wrong_visible = torch.where(mask[..., None].bool(), target, target + 5.0)
    assert masked_mse(wrong_visible, target, mask) == 0
    assert masked_mse(target + 5.0 * mask[..., None], target, mask) == pytest.approx(25.0)


def test_image_methods_refuse_vectors():
    for name in ("mae", "supervised_cnn"):
        why = METHODS.get(name).unsupported(VECTORS)
        assert isinstance(why, str) and "image" in why
        with pytest.raises(ValueError, match="image"):
            build(name, VECTORS, 8)
    assert METHODS.get("mae").unsupported(MNIST_INFO) is None
    assert isinstance(METHODS.get("supervised").unsupported(VECTORS), str)
    assert METHODS.get("supervised").unsupported(MNIST_INFO) is None
    assert MAE.unsupported(DataInfo(64, None, (1, 8, 8))) is None  # mae needs no labels


# ----------------------------------------------------------------------------- supervised
def test_supervised_learns_the_labels(digits):
    x, y = digits.train.x, digits.train.y
    m = build("supervised", data_info(digits), 16, lr=1e-2)  # a larger step: 3 epochs are 30 steps
    assert m.uses_labels
    log = train(m, x, y, epochs=3, batch_size=128, seed=0)
    assert log.history[-1]["ce"] < 0.8 * log.history[0]["ce"]
    with torch.no_grad():
        train_acc = float((m.head(m.encode(x)).argmax(1) == y).float().mean())
        feats = m.encode(x)
    assert train_acc > 0.6  # chance is 0.1
    assert (feats >= 0).all() and feats.shape == (len(x), 16)  # ReLU hidden units
    assert m.n_params_encoder() == 64 * 16 + 16 and m.n_params_train() == 16 * 10 + 10
    # control: trained on shuffled labels, the same model is at chance on the true ones
    shuffled = build("supervised", data_info(digits), 16, lr=1e-2)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    train(shuffled, x, y[perm], epochs=3, batch_size=128, seed=0)
    with torch.no_grad():
        assert float((shuffled.logits(x).argmax(1) == y).float().mean()) < 0.25


def test_supervised_cnn_shapes_and_stem(digits):
    m = build("supervised_cnn", data_info(digits), 12)
    assert m.uses_labels
    f = m.encode(digits.train.x[:5])
    assert f.shape == (5, 12)
    net = m.encoder[0]
    stem = torch.nn.Sequential(net.conv1, net.bn1, net.act1, net.maxpool)
    assert stem(torch.rand(2, 1, 8, 8)).shape[-2:] == (8, 8)  # stride-1 stem, no pooling at 8x8
    assert stem(torch.rand(2, 1, 28, 28)).shape[-2:] == (28, 28)  # the conv alone keeps any size
    big = build("supervised_cnn", MNIST_INFO, 12).encoder[0]
    big_stem = torch.nn.Sequential(big.conv1, big.bn1, big.act1, big.maxpool)
    assert big_stem(torch.rand(2, 1, 28, 28)).shape[-2:] == (14, 14)  # auto: one max-pool at >= 16 px
    assert m.n_params_train() == 12 * 10 + 10
    loss = m.loss_terms(digits.train.x[:16], digits.train.y[:16])["ce"]
    loss.backward()
    assert net.conv1.weight.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- fastica
def mcc(features: torch.Tensor, sources: torch.Tensor) -> float:
    """Mean |Pearson corr| between features and sources after one-to-one matching."""
    k = features.shape[1]
    c = np.abs(np.corrcoef(features.T.numpy(), sources.T.numpy())[:k, k:])
    rows, cols = linear_sum_assignment(-np.nan_to_num(c))
    return float(c[rows, cols].mean())


@pytest.fixture(scope="module")
def ica():
    return load_dataset("ica", DataConfig(n=3000))


def test_fastica_recovers_a_linear_laplace_mixture_and_pca_does_not(ica):
    k = ica.train.factors.shape[1]
    scores = {}
    for name in ("fastica", "pca"):
        m = build(name, data_info(ica), k)
        m.fit(ica.train.x, None, 0)
        with torch.no_grad():
            scores[name] = mcc(m.encode(ica.test.x), ica.test.factors)
    assert scores["fastica"] > 0.95, scores
    assert scores["pca"] < 0.8, scores  # docs/protocol.md §9: the two-rotation mixing defeats PCA


def test_fastica_is_a_frozen_linear_encoder_with_dead_extra_features(ica):
    d = ica.input_dim
    m = build("fastica", data_info(ica), d + 4)
    m.fit(ica.train.x, None, 0)
    w = m.encoder_weight()
    assert w is not None and w.shape == (d + 4, d) and not w.requires_grad
    assert (w[d:] == 0).all() and (w[:d].norm(dim=1) > 0).all()
    x = ica.test.x
    assert torch.allclose(m.encode(x), x @ w.T + m.encoder.bias, atol=1e-5)
    f = m.encode(ica.train.x)
    assert torch.allclose(f[:, :d].std(0), torch.ones(d), atol=0.01)  # unit-variance sources
    assert (f[:, d:] == 0).all()
    assert bool(m.converged) and int(m.n_iter) > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fastica", "pca"])
def test_decompositions_on_digits_with_constant_pixels(digits, name):
    """docs/protocol.md §9: on the data the suite runs (digits has constant border pixels, the first
    one among them), FastICA's train features are uncorrelated and as informative as PCA's."""
    from bench.evaluate.metrics import correlation
    from bench.evaluate.probe import linear_probe

    assert (digits.train.x[:, 0] == digits.train.x[0, 0]).all()  # the case that broke sklearn's whitening
    k = 32
    feats = {}
    for m_name in dict.fromkeys([name, "pca"]):
        m = build(m_name, data_info(digits), k)
        m.fit(digits.train.x, None, 0)
        with torch.no_grad():
            feats[m_name] = [m.encode(s.x) for s in (digits.train, digits.val, digits.test)]
    f = feats[name][0]
    assert int(torch.linalg.matrix_rank(f.double())) == k
    r = correlation(f)
    r.fill_diagonal_(0)
    assert float(r.abs().max()) < 0.05
    acc = {
        m_name: float(
            linear_probe(
                *[t for pair in zip(fs, (digits.train.y, digits.val.y, digits.test.y), strict=True) for t in pair],
                digits.n_classes,
            ).test_acc[0]
        )
        for m_name, fs in feats.items()
    }
    assert abs(acc[name] - acc["pca"]) <= 0.01, acc


# ----------------------------------------------------------------------------- gmm
def test_gmm_responsibilities_match_sklearn(digits):
    k = 10
    m = build("gmm", data_info(digits), k)
    m.fit(digits.train.x, None, 3)
    r = m.encode(digits.test.x)
    assert r.shape == (len(digits.test.x), k) and r.dtype == torch.float32
    assert torch.allclose(r.sum(1), torch.ones(len(r)), atol=1e-5)
    cfg = m.cfg
    ref = GaussianMixture(
        k, covariance_type="diag", reg_covar=cfg.reg_covar, max_iter=cfg.max_iter, tol=cfg.tol, random_state=3
    ).fit(digits.train.x.double().numpy())
    expected = ref.predict_proba(digits.test.x.double().numpy())
    assert np.abs(r.numpy() - expected).max() < 1e-4
    assert m.encoder_weight() is None
    d = digits.input_dim
    assert m.n_params_encoder() == 2 * k * d + k and m.n_params_train() == 0
    # the fitted mixture lives in the state dict (what the job cache stores)
    fresh = build("gmm", data_info(digits), k)
    fresh.load_state_dict(m.state_dict())
    assert torch.equal(fresh.encode(digits.test.x), r)
