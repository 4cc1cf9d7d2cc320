"""Reference tests of the self-supervised baselines: losses, views, momentum targets, queues.

Every loss is compared with an independent, literal transcription of its paper's formula in
plain Python (explicit loops over a tiny batch, ``math.exp`` / ``math.log``), to 1e-5. The
views of :mod:`bench.train.augment` get known-answer checks (identity strengths give the input back,
a crop stays inside the image, the erased region is one box, noise has its std) and the
properties the baselines rely on (a view of a digit is still that digit's image).
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from baselines.barlow_twins import barlow_twins_loss
from baselines.byol import byol_loss
from baselines.moco import info_nce
from baselines.simclr import nt_xent
from baselines.swav import sinkhorn, swav_loss
from baselines.vicreg import vicreg_loss, vicreg_terms
from bench.config import ConfigError, parse_overrides
from bench.engine.jobs import data_info
from bench.train import augment
from bench.train.augment import AugmentConfig, make_views
from bench.train.methods import METHODS

SSL = ["simclr", "moco", "byol", "swav", "barlow_twins", "vicreg"]
IDENTITY = AugmentConfig(
    crop_scale_min=1.0,
    crop_scale_max=1.0,
    crop_ratio_max=1.0,
    rotate_deg=0.0,
    translate=0.0,
    erase_prob=0.0,
    noise_std=0.0,
    feature_noise=0.0,
    feature_dropout=0.0,
)


def rows(t: torch.Tensor) -> list[list[float]]:
    return t.double().tolist()


def dot(a, b):
    return sum(x * y for x, y in zip(a, b, strict=True))


def unit(a):
    n = math.sqrt(dot(a, a))
    return [x / n for x in a]


def close(a: torch.Tensor, b: float, tol: float = 1e-5) -> bool:
    return abs(float(a) - b) <= tol * max(1.0, abs(b))


@pytest.fixture
def pair():
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(6, 5, generator=g, dtype=torch.float64)
    z2 = z1 + 0.7 * torch.randn(6, 5, generator=g, dtype=torch.float64)
    return z1 * torch.tensor([0.3, 0.8, 1.0, 1.7, 2.5], dtype=torch.float64), z2


# ------------------------------------------------------------------------------ losses
def test_nt_xent_matches_pairwise_reference(pair):
    z1, z2 = pair
    tau = 0.5
    u = [unit(r) for r in rows(z1) + rows(z2)]
    n = len(u) // 2
    total = 0.0
    for i in range(2 * n):
        pos = i + n if i < n else i - n
        denom = sum(math.exp(dot(u[i], u[k]) / tau) for k in range(2 * n) if k != i)
        total += -math.log(math.exp(dot(u[i], u[pos]) / tau) / denom)
    assert close(nt_xent(z1, z2, tau), total / (2 * n))
    assert close(nt_xent(z1.float(), z2.float(), tau), total / (2 * n), 1e-5)


def test_info_nce_matches_reference(pair):
    z1, z2 = pair
    queue = torch.randn(7, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    tau = 0.2
    qs, ks, negs = [unit(r) for r in rows(z1)], [unit(r) for r in rows(z2)], [unit(r) for r in rows(queue)]
    total = 0.0
    for q, k in zip(qs, ks, strict=True):
        pos = math.exp(dot(q, k) / tau)
        total += -math.log(pos / (pos + sum(math.exp(dot(q, m) / tau) for m in negs)))
    assert close(info_nce(z1, z2, queue, tau), total / len(qs))


def test_barlow_twins_matches_eq2_reference(pair):
    z1, z2 = pair
    lambd = 5e-3
    a, b = rows(z1), rows(z2)
    n, d = len(a), len(a[0])
    ma = [sum(r[i] for r in a) / n for i in range(d)]
    mb = [sum(r[i] for r in b) / n for i in range(d)]
    ca = [[r[i] - ma[i] for i in range(d)] for r in a]
    cb = [[r[i] - mb[i] for i in range(d)] for r in b]
    loss = 0.0
    for i in range(d):
        for j in range(d):
            num = sum(ca[k][i] * cb[k][j] for k in range(n))
            c_ij = num / (
                math.sqrt(sum(ca[k][i] ** 2 for k in range(n))) * math.sqrt(sum(cb[k][j] ** 2 for k in range(n)))
            )
            loss += (1 - c_ij) ** 2 if i == j else lambd * c_ij**2
    assert close(barlow_twins_loss(z1, z2, lambd, eps=0.0), loss)
    assert close(barlow_twins_loss(z1, z2, lambd), loss, 1e-3)  # BatchNorm's eps barely moves it


def test_barlow_twins_known_answers():
    """Centred orthonormal columns: C = I for identical views (loss 0), C = -I for opposite ones."""
    z = torch.randn(64, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    z = torch.linalg.qr(z - z.mean(0))[0]
    assert float(barlow_twins_loss(z, z, 5e-3, eps=0.0)) < 1e-10
    assert close(barlow_twins_loss(z, -z, 5e-3, eps=0.0), 8 * (1 - (-1)) ** 2)


def test_vicreg_matches_reference(pair):
    z1, z2 = pair
    a, b = rows(z1), rows(z2)
    n, d = len(a), len(a[0])

    def var_term(z):
        out = 0.0
        for j in range(d):
            m = sum(r[j] for r in z) / n
            std = math.sqrt(sum((r[j] - m) ** 2 for r in z) / (n - 1) + 1e-4)
            out += max(0.0, 1.0 - std)
        return out / d

    def cov_term(z):
        means = [sum(r[j] for r in z) / n for j in range(d)]
        out = 0.0
        for i in range(d):
            for j in range(d):
                if i != j:
                    cov = sum((r[i] - means[i]) * (r[j] - means[j]) for r in z) / (n - 1)
                    out += cov**2
        return out / d

    inv = sum((a[k][j] - b[k][j]) ** 2 for k in range(n) for j in range(d)) / (n * d)
    ref = 25 * inv + 25 * (var_term(a) + var_term(b)) + 1 * (cov_term(a) + cov_term(b))
    assert var_term(a) > 0.05  # the fixture's small columns make the hinge active
    assert close(vicreg_loss(z1, z2, sim=25, var=25, cov=1), ref)
    assert close(sum(vicreg_terms(z1, z2).values()), ref)
    assert close(vicreg_loss(z1, z2, sim=2, var=0, cov=0), 2 * inv)


def test_byol_loss_matches_reference(pair):
    p, z = pair
    ref = sum(2 - 2 * dot(a, b) / math.sqrt(dot(a, a) * dot(b, b)) for a, b in zip(rows(p), rows(z), strict=True))
    assert close(byol_loss(p, z), ref / p.shape[0])
    assert close(byol_loss(p, 3.0 * p), 0.0)


def ref_sinkhorn(scores: list[list[float]], eps: float, iters: int) -> list[list[float]]:
    """Caron et al. 2020, Algorithm 1, transcribed with loops: Q is P x B."""
    b, p = len(scores), len(scores[0])
    q = [[math.exp(scores[i][k] / eps) for i in range(b)] for k in range(p)]
    s = sum(sum(r) for r in q)
    q = [[v / s for v in r] for r in q]
    for _ in range(iters):
        for k in range(p):
            rs = sum(q[k])
            q[k] = [v / rs / p for v in q[k]]
        for i in range(b):
            cs = sum(q[k][i] for k in range(p))
            for k in range(p):
                q[k][i] = q[k][i] / cs / b
    return [[q[k][i] * b for k in range(p)] for i in range(b)]


@pytest.fixture
def scores():
    g = torch.Generator().manual_seed(2)
    z = torch.nn.functional.normalize(torch.randn(8, 4, generator=g, dtype=torch.float64), dim=1)
    c = torch.nn.functional.normalize(torch.randn(5, 4, generator=g, dtype=torch.float64), dim=1)
    z2 = torch.nn.functional.normalize(z + 0.3 * torch.randn(8, 4, generator=g, dtype=torch.float64), dim=1)
    return z @ c.T, z2 @ c.T


def test_sinkhorn_matches_algorithm_1(scores):
    s, _ = scores
    ref = ref_sinkhorn(rows(s), 0.05, 3)
    assert torch.allclose(sinkhorn(s, 0.05, 3), torch.tensor(ref, dtype=torch.float64), atol=1e-8)


def test_sinkhorn_marginals_are_uniform(scores):
    s, _ = scores
    b, p = s.shape
    for iters, tol in ((3, 0.5), (200, 1e-3)):
        q = sinkhorn(s, 0.05, iters)
        assert torch.allclose(q.sum(1), torch.ones(b, dtype=q.dtype), atol=1e-9)  # each sample: a distribution
        assert torch.allclose(q.sum(0), torch.full((p,), b / p, dtype=q.dtype), atol=tol * b / p)
    raw = torch.softmax(s / 0.05, dim=1).sum(0)  # without Sinkhorn the assignment is far from equal
    assert float((raw - b / p).abs().max()) > float((sinkhorn(s, 0.05, 3).sum(0) - b / p).abs().max())


def test_swav_loss_matches_reference(scores):
    s1, s2 = scores
    tau = 0.1
    q1, q2 = ref_sinkhorn(rows(s1), 0.05, 3), ref_sinkhorn(rows(s2), 0.05, 3)

    def ce(q, s):
        out = 0.0
        for qi, si in zip(q, s, strict=True):
            lse = math.log(sum(math.exp(v / tau) for v in si))
            out -= sum(qk * (sk / tau - lse) for qk, sk in zip(qi, si, strict=True))
        return out / len(q)

    ref = 0.5 * (ce(q1, rows(s2)) + ce(q2, rows(s1)))
    assert close(swav_loss(s1, s2, tau, 0.05, 3), ref)


def test_swav_gradient_flows_through_predictions_only(scores):
    s1, s2 = (s.clone().requires_grad_(True) for s in scores)
    swav_loss(s1, s2).backward()
    # d/ds of -sum q log softmax(s/T) is (softmax(s/T) - q) / T per row: rows sum to zero
    assert torch.allclose(s1.grad.sum(1), torch.zeros(s1.shape[0], dtype=s1.dtype), atol=1e-12)
    assert s1.grad.abs().sum() > 0


# ------------------------------------------------------------------------------ views
def pearson_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, M) correlation between every row of a and every row of b."""
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    return (a / a.norm(dim=1, keepdim=True)) @ (b / b.norm(dim=1, keepdim=True)).T


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 6, 6)])
def test_image_views_shapes_range_determinism(shape):
    x = torch.rand(32, math.prod(shape))
    torch.manual_seed(0)
    x1, x2 = make_views(x, shape, AugmentConfig())
    torch.manual_seed(0)
    y1, y2 = make_views(x, shape, AugmentConfig())
    assert x1.shape == x2.shape == x.shape and x1.dtype == x.dtype
    assert float(x1.min()) >= 0 and float(x1.max()) <= 1
    assert torch.equal(x1, y1) and torch.equal(x2, y2)
    assert (x1 - x2).abs().amax(1).min() > 0  # every pair of views differs


def test_identity_strengths_return_the_input():
    x = torch.rand(16, 3 * 9 * 9)
    assert torch.allclose(augment.augment_images(x, (3, 9, 9), IDENTITY), x, atol=1e-5)
    assert torch.equal(augment.augment_vectors(x, IDENTITY), x)


def test_affine_parameters_stay_in_their_ranges():
    cfg = AugmentConfig(crop_scale_min=0.5, crop_scale_max=0.9, rotate_deg=20.0, translate=0.1)
    a = augment.affine_matrices(4000, cfg, torch.device("cpu")).double()
    area = torch.linalg.det(a[:, :, :2])  # rotation has det 1: det = crop area fraction
    assert float(area.min()) >= 0.5 - 1e-6 and float(area.max()) <= 0.9 + 1e-6
    angle = torch.rad2deg(torch.atan2(a[:, 1, 0], a[:, 0, 0]))
    assert float(angle.abs().max()) <= 20 + 1e-4 and float(angle.abs().max()) > 18
    sw = a[:, :, 0].norm(dim=1)
    assert float((a[:, 0, 2].abs() - (1 - sw) - 0.2).max()) <= 1e-6


def test_crop_stays_inside_the_image():
    """A constant image cropped (no rotation, no shift) stays constant away from the border:
    a crop reaching outside the image would pull in the zero padding."""
    cfg = dataclasses.replace(IDENTITY, crop_scale_min=0.3, crop_scale_max=0.9, crop_ratio_max=4 / 3)
    torch.manual_seed(0)
    v = augment.augment_images(torch.ones(500, 28 * 28), (1, 28, 28), cfg).reshape(500, 28, 28)
    assert torch.allclose(v[:, 1:-1, 1:-1], torch.ones(500, 26, 26), atol=1e-5)
    assert float(v.min()) >= 0.5 - 1e-5  # at most half a pixel of padding at the very edge


def test_erasing_cuts_one_box_with_the_set_probability():
    cfg = dataclasses.replace(IDENTITY, erase_prob=1.0, erase_scale_min=0.02, erase_scale_max=0.1)
    torch.manual_seed(0)
    v = augment.augment_images(torch.ones(300, 28 * 28), (1, 28, 28), cfg).reshape(300, 28, 28)
    hole = v < 0.5
    r, c = hole.any(2), hole.any(1)
    box = r[:, :, None] & c[:, None, :]  # the bounding box of the erased pixels
    assert torch.equal(hole, box)
    area = hole.sum((1, 2)).float() / (28 * 28)
    assert float(area.min()) > 0.01 and float(area.max()) < 0.15
    torch.manual_seed(0)
    half = augment.augment_images(torch.ones(2000, 64), (1, 8, 8), dataclasses.replace(cfg, erase_prob=0.5))
    assert abs(float((half < 0.5).any(1).float().mean()) - 0.5) < 0.05


def test_pixel_noise_has_its_std():
    torch.manual_seed(0)
    v = augment.augment_images(torch.full((200, 64), 0.5), (1, 8, 8), dataclasses.replace(IDENTITY, noise_std=0.05))
    assert abs(float(v.std()) - 0.05) < 0.003 and abs(float(v.mean()) - 0.5) < 0.003


def test_vector_views_noise_and_dropout():
    torch.manual_seed(0)
    x = 3.0 * torch.randn(4000, 6) + 1.0
    d = augment.augment_vectors(torch.ones(4000, 6), dataclasses.replace(IDENTITY, feature_dropout=0.1))
    assert abs(float((d == 0).float().mean()) - 0.1) < 0.01 and set(d.unique().tolist()) == {0.0, 1.0}
    n = augment.augment_vectors(x, dataclasses.replace(IDENTITY, feature_noise=0.1))
    assert abs(float((n - x).std() / x.std()) - 0.1) < 0.01
    x1, x2 = make_views(x, None, AugmentConfig())
    assert x1.shape == x.shape and not torch.equal(x1, x2)


def view_similarity(x, y, image_shape, cfg):
    """Mean pixel correlation of a view with its original, with the other originals, and the
    share of views whose most correlated original has the view's class."""
    torch.manual_seed(0)
    v, _ = make_views(x, image_shape, cfg)
    r = pearson_rows(v, x)
    own = torch.diagonal(r)
    others = (r.sum(1) - own) / (len(x) - 1)
    return float(own.mean()), float(others.mean()), float((y[r.argmax(1)] == y).float().mean())


def test_a_view_of_a_digit_stays_that_digits_image(digits):
    x, y = digits.test.x[:200], digits.test.y[:200]
    own, others, same_class = view_similarity(x, y, digits.image_shape, AugmentConfig())
    assert own > 0.5 and own - others > 0.15 and same_class > 0.6
    # the ImageNet-strength recipe (8% crops, strong noise and erasing) destroys 8x8 digits
    strong = AugmentConfig(crop_scale_min=0.08, rotate_deg=45, noise_std=0.2, erase_scale_max=0.33)
    s_own, _, s_same = view_similarity(x, y, digits.image_shape, strong)
    assert s_own < own - 0.2 and s_same < same_class - 0.2


def test_images_are_warped_in_one_batched_call(monkeypatch):
    calls = {"grid_sample": 0, "affine_grid": 0}
    for name, owner in (("grid_sample", augment.F), ("affine_grid", augment)):
        orig = getattr(owner, name)

        def counted(*a, _orig=orig, _name=name, **k):
            calls[_name] += 1
            return _orig(*a, **k)

        monkeypatch.setattr(owner, name, counted)
    make_views(torch.rand(257, 64), (1, 8, 8), AugmentConfig())
    assert calls == {"grid_sample": 2, "affine_grid": 2}  # one per view, whatever the batch size
    # S seeds trained together: still one per view, over the S*B rows
    gens = [torch.Generator().manual_seed(s) for s in range(3)]
    augment.make_views_stacked(torch.rand(3, 257, 64), (1, 8, 8), AugmentConfig(), gens)
    assert calls == {"grid_sample": 4, "affine_grid": 4}


# ------------------------------------------------------------------------------ configs
@pytest.mark.parametrize("name", SSL)
def test_view_strengths_are_flat_fields_with_shared_defaults(name):
    cfg_cls = METHODS.get(name).Config
    assert issubclass(cfg_cls, AugmentConfig)
    shared = {f.name for f in dataclasses.fields(AugmentConfig)}
    assert {k: v for k, v in dataclasses.asdict(cfg_cls()).items() if k in shared} == dataclasses.asdict(
        AugmentConfig()
    )
    cfg = parse_overrides(["prediction=probe", f"{name}.rotate_deg=5", f"{name}.crop_scale_min=0.8"])
    assert cfg.method_config(name).rotate_deg == 5.0 and cfg.method_config(name).crop_scale_min == 0.8
    with pytest.raises(ConfigError, match="crop_scale_min"):
        parse_overrides(["prediction=probe", f"{name}.crop_scale_min=0"])


@pytest.mark.parametrize("name", SSL)
def test_training_only_parts_are_not_deployed(name, digits):
    torch.manual_seed(0)
    m = METHODS.get(name)(METHODS.get(name).Config(), data_info(digits), 16)
    assert m.deployed_modules() == [m.encoder] and isinstance(m.encoder, torch.nn.Linear)
    assert m.n_params_encoder() == 64 * 16 + 16 and m.n_params_train() > 0
    x = digits.test.x[:5]
    assert torch.equal(m.encode(x), torch.relu(m.encoder(x)))


# ------------------------------------------------------------------------------ momentum targets
def one_step(m, x):
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=1e-2)
    loss = sum(m.loss_terms(x).values())
    opt.zero_grad()
    loss.backward()
    opt.step()


def test_moco_queue_and_momentum_encoder_update(digits):
    torch.manual_seed(0)
    cls = METHODS.get("moco")
    m = cls(cls.Config(queue_size=100), data_info(digits), 16)
    x = digits.train.x
    assert not any(p.requires_grad for p in [*m.key_encoder.parameters(), *m.key_projector.parameters()])
    key_before = [p.clone() for p in m.key_encoder.parameters()]
    queue_before = m.queue.clone()
    one_step(m, x[:64])
    assert all(p.grad is None for p in m.key_encoder.parameters())
    k1 = m._pending_keys.clone()
    online = [p.detach().clone() for p in m.encoder.parameters()]
    gap_before = sum(float((o - k).norm()) for o, k in zip(online, key_before, strict=True))
    m.after_step()
    for kb, o, k in zip(key_before, online, m.key_encoder.parameters(), strict=True):
        assert torch.allclose(k, 0.99 * kb + 0.01 * o, atol=1e-7)
    gap_after = sum(float((o - k).norm()) for o, k in zip(online, m.key_encoder.parameters(), strict=True))
    assert 0 < gap_after < gap_before
    assert torch.equal(m.queue[:64], k1) and torch.equal(m.queue[64:], queue_before[64:])
    assert int(m.queue_ptr) == 64
    one_step(m, x[64:128])
    k2 = m._pending_keys.clone()
    m.after_step()
    assert torch.equal(m.queue[64:], k2[:36]) and torch.equal(m.queue[:28], k2[36:])  # wraps around
    assert torch.equal(m.queue[28:64], k1[28:]) and int(m.queue_ptr) == 28


def test_byol_target_is_not_trained_by_gradients(digits):
    torch.manual_seed(0)
    cls = METHODS.get("byol")
    m = cls(cls.Config(), data_info(digits), 16)
    target = [*m.target_encoder.parameters(), *m.target_projector.parameters()]
    online = [*m.encoder.parameters(), *m.projector.parameters()]
    assert not any(p.requires_grad for p in target)
    before = [p.clone() for p in target]
    one_step(m, digits.train.x[:128])
    assert all(p.grad is None for p in target)
    assert all(torch.equal(p, b) for p, b in zip(target, before, strict=True))  # the step left it alone
    m.after_step()
    for b, o, t in zip(before, online, target, strict=True):
        assert torch.allclose(t, 0.99 * b + 0.01 * o.detach(), atol=1e-7)
    assert any(not torch.equal(t, b) for t, b in zip(target, before, strict=True))


def test_swav_prototypes_stay_on_the_unit_sphere(digits):
    torch.manual_seed(0)
    cls = METHODS.get("swav")
    m = cls(cls.Config(), data_info(digits), 16)
    one_step(m, digits.train.x[:128])
    assert not torch.allclose(m.prototypes.weight.norm(dim=1), torch.ones(100), atol=1e-4)
    m.after_step()
    assert torch.allclose(m.prototypes.weight.norm(dim=1), torch.ones(100), atol=1e-6)
