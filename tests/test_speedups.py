"""Speed-ups that must not change the math: each new implementation against the old one.

The reference functions below are the previous implementations, kept verbatim as the oracle.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from bench.train import augment
from bench.train.augment import ERASE_RATIO, AugmentConfig, _uniform, affine_matrices, make_views


def _old_erase_masks(n, h, w, cfg, device):
    u = torch.rand(n, 5, device=device)
    area = h * w * _uniform(u[:, 0], cfg.erase_scale_min, cfg.erase_scale_max)
    ratio = torch.exp(_uniform(u[:, 1], math.log(ERASE_RATIO[0]), math.log(ERASE_RATIO[1])))
    bh = torch.sqrt(area * ratio).round().clamp(1, h)
    bw = torch.sqrt(area / ratio).round().clamp(1, w)
    y0 = torch.floor(u[:, 2] * (h - bh + 1))
    x0 = torch.floor(u[:, 3] * (w - bw + 1))
    rows = torch.arange(h, device=device, dtype=area.dtype)[None, :, None]
    cols = torch.arange(w, device=device, dtype=area.dtype)[None, None, :]
    box = (
        (rows >= y0[:, None, None])
        & (rows < (y0 + bh)[:, None, None])
        & (cols >= x0[:, None, None])
        & (cols < (x0 + bw)[:, None, None])
    )
    return box & (u[:, 4] < cfg.erase_prob)[:, None, None]


def _old_augment_images(x, image_shape, cfg):
    n = x.shape[0]
    c, h, w = image_shape
    img = x.reshape(n, c, h, w)
    grid = F.affine_grid(affine_matrices(n, cfg, x.device).to(x.dtype), [n, c, h, w], align_corners=False)
    img = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    img = img.masked_fill(_old_erase_masks(n, h, w, cfg, x.device)[:, None], 0.0)
    if cfg.noise_std > 0:
        img = img + cfg.noise_std * torch.randn_like(img)
    return img.clamp(0.0, 1.0).reshape(n, c * h * w)


@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 8, 8), (3, 32, 32), (1, 5, 9)])
@pytest.mark.parametrize("erase_prob", [0.5, 1.0])
def test_views_identical_to_the_old_implementation(shape, erase_prob):
    cfg = AugmentConfig(erase_prob=erase_prob)
    x = torch.rand(64, math.prod(shape))
    torch.manual_seed(3)
    new = make_views(x, shape, cfg)
    torch.manual_seed(3)
    old = (_old_augment_images(x, shape, cfg), _old_augment_images(x, shape, cfg))
    assert all(torch.equal(a, b) for a, b in zip(new, old, strict=True))
    torch.manual_seed(4)
    m_new = augment.erase_masks(256, shape[1], shape[2], cfg, x.device)
    torch.manual_seed(4)
    assert torch.equal(m_new, _old_erase_masks(256, shape[1], shape[2], cfg, x.device))


def test_views_leave_the_input_untouched():
    x = torch.rand(16, 784)
    x0 = x.clone()
    make_views(x, (1, 28, 28), AugmentConfig())
    assert torch.equal(x, x0)


def test_nt_xent_target_unchanged():
    n = 7
    old = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    assert torch.equal(torch.arange(2 * n).roll(n), old)


def test_supervised_cnn_channels_last_same_function():
    """channels_last is a memory layout: outputs and gradients match the contiguous model."""
    from baselines.supervised_cnn import SupervisedCNN, SupervisedCNNConfig
    from bench.train.methods import DataInfo

    info = DataInfo(784, 10, (1, 28, 28))
    torch.manual_seed(0)
    m = SupervisedCNN(SupervisedCNNConfig(), info, 16)
    assert m.encoder[0].conv1.weight.is_contiguous(memory_format=torch.channels_last)
    ref = SupervisedCNN(SupervisedCNNConfig(), info, 16).to(memory_format=torch.contiguous_format)
    ref.load_state_dict(m.state_dict())
    assert ref.encoder[0].conv1.weight.is_contiguous()
    x, y = torch.rand(32, 784), torch.randint(0, 10, (32,))
    ref_fwd = ref.encoder(x.reshape(-1, 1, 28, 28))
    torch.testing.assert_close(m.encode(x), ref_fwd, rtol=1e-4, atol=1e-5)
    m.loss_terms(x, y)["ce"].backward()
    F.cross_entropy(ref.head(ref.encoder(x.reshape(-1, 1, 28, 28))), y).backward()
    for (name, p), q in zip(m.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-3, atol=1e-5, msg=name)


def test_supervised_cnn_channels_last_state_round_trip(tmp_path):
    """The job cache's save / load (weights_only) keeps the encoder's function."""
    from baselines.supervised_cnn import SupervisedCNN, SupervisedCNNConfig
    from bench.train.methods import DataInfo

    info = DataInfo(784, 10, (1, 28, 28))
    torch.manual_seed(0)
    m = SupervisedCNN(SupervisedCNNConfig(), info, 16).eval()
    torch.save({k: v.detach().cpu() for k, v in m.state_dict().items()}, tmp_path / "state.pt")
    torch.manual_seed(1)
    m2 = SupervisedCNN(SupervisedCNNConfig(), info, 16)
    m2.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    m2.eval()
    x = torch.rand(8, 784)
    assert torch.equal(m.encode_all(x), m2.encode_all(x))
