"""Two random views of a minibatch, batched on the input's device, for the self-supervised baselines.

Every contrastive / redundancy-reduction baseline (``simclr``, ``moco``, ``byol``, ``swav``,
``barlow_twins``, ``vicreg``) trains on two views ``make_views(x, image_shape, cfg)`` of the
same minibatch (drawn in their shared base, :class:`bench.train.twoview.TwoViewMethod`). The views
are drawn with the global torch generator (seeded by the job), one batched call per operation:
no per-sample Python.

Images (``image_shape = (C, H, W)``, inputs flattened ``(N, C*H*W)`` in [0, 1]), in this order:

1. one random affine warp per image, a single ``F.affine_grid`` + ``F.grid_sample`` call
   (bilinear, zero padding = the black background of these datasets): a *random resized crop
   at native size* (area fraction ``U[crop_scale_min, crop_scale_max]``, aspect ratio
   log-uniform in ``[1/crop_ratio_max, crop_ratio_max]``, placed wholly inside the image), then a
   rotation ``U[-rotate_deg, rotate_deg]`` and a translation ``U[-translate, translate]`` image
   sides;
2. random erasing (Zhong et al. 2020, AAAI): with probability ``erase_prob`` a box of area
   fraction ``U[erase_scale_min, erase_scale_max]`` and aspect ratio log-uniform in
   [0.3, 3.3] (torchvision's) is set to 0;
3. Gaussian pixel noise ``N(0, noise_std^2)``, then clamping back into [0, 1].

No colour operations: the embedded data are grey-level (MNIST, optdigits, dSprites); on the
colour torchvision sets (``cifar10``, ``svhn``) these views are weaker than the published recipes.

Why not the ImageNet recipe (SimCLR, Chen et al. 2020, appendix A: crop area 0.08-1, colour
jitter 0.8, grey-scale, blur; CIFAR-10 runs keep the same crops): on 8x8 ``digits`` and 28x28
``mnist5k`` an 8% crop keeps one or two strokes of a digit, so the two views of an image no
longer share its class, and colour jitter has nothing to act on in grey-level strokes. The
defaults here are this suite's small-image adaptation, not a published recipe: crop area 0.6-1,
+-15 degrees, +-10% shift, noise 0.05, a 2-10% box erased half the time. They keep a view of a
digit recognisably that digit; a test checks that the view stays correlated with its original
and that the ImageNet-strength crop does not.

Vectors (``image_shape is None``, e.g. ``ica``): Gaussian noise of ``feature_noise`` times each
feature's batch standard deviation, then feature dropout (each entry zeroed with probability
``feature_dropout``, no rescaling).

The strengths are flat float fields of :class:`AugmentConfig`, the base of every
self-supervised method's config, so ``simclr.rotate_deg=10`` works from the command line and
the defaults live here only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bench.train.methods import MethodConfig

ERASE_RATIO = (0.3, 3.3)  # torchvision.transforms.RandomErasing's aspect-ratio range


@dataclass(frozen=True)
class AugmentConfig(MethodConfig):
    """View strengths shared (as flat fields) by every self-supervised method's config."""

    crop_scale_min: float = 0.6  # area fraction of the random resized crop
    crop_scale_max: float = 1.0
    crop_ratio_max: float = 4 / 3  # aspect ratio log-uniform in [1/r, r]
    rotate_deg: float = 15.0
    translate: float = 0.1  # fraction of the image side
    erase_prob: float = 0.5
    erase_scale_min: float = 0.02  # area fraction of the erased box
    erase_scale_max: float = 0.1
    noise_std: float = 0.05  # pixel units (images in [0, 1])
    feature_noise: float = 0.1  # vectors: times each feature's batch std
    feature_dropout: float = 0.1  # vectors: probability of zeroing an entry

    def check(self) -> None:
        super().check()
        if not 0 < self.crop_scale_min <= self.crop_scale_max <= 1:
            raise ValueError(
                f"crop_scale_min: need 0 < crop_scale_min <= crop_scale_max <= 1, "
                f"got {self.crop_scale_min}, {self.crop_scale_max}"
            )
        if self.crop_ratio_max < 1:
            raise ValueError(f"crop_ratio_max: must be >= 1, got {self.crop_ratio_max}")
        if not 0 <= self.erase_scale_min <= self.erase_scale_max <= 1:
            raise ValueError(
                f"erase_scale_min: need 0 <= erase_scale_min <= erase_scale_max <= 1, "
                f"got {self.erase_scale_min}, {self.erase_scale_max}"
            )
        if not 0 <= self.erase_prob <= 1:
            raise ValueError(f"erase_prob: must be in [0, 1], got {self.erase_prob}")
        if not 0 <= self.feature_dropout < 1:
            raise ValueError(f"feature_dropout: must be in [0, 1), got {self.feature_dropout}")
        for key in ("rotate_deg", "translate", "noise_std", "feature_noise"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key}: must be >= 0, got {getattr(self, key)}")


def _uniform(u: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * u


def affine_matrices(
    n: int, cfg: AugmentConfig, device: torch.device, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(n, 2, 3) random ``affine_grid`` matrices: resized crop, then rotation and translation.

    In ``affine_grid``'s normalised coordinates (image = [-1, 1]^2) an output point ``u`` samples
    the input at ``R(theta) diag(s_w, s_h) u + c + t``: ``s_w, s_h`` are the crop's side
    fractions, ``c`` its centre (drawn so the crop lies inside the image), ``t`` the shift.
    Rotation acts in normalised coordinates, i.e. exactly for square images. Draws from
    ``generator`` (None: the global RNG).
    """
    u = torch.rand(n, 6, device=device, generator=generator)
    return _affine_from(u, torch.rand(n, device=device, generator=generator), cfg)


def _affine_from(u: torch.Tensor, u_rot: torch.Tensor, cfg: AugmentConfig) -> torch.Tensor:
    """:func:`affine_matrices` of its uniform draws ``u`` (n, 6) and ``u_rot`` (n,)."""
    area = _uniform(u[:, 0], cfg.crop_scale_min, cfg.crop_scale_max)
    log_r = math.log(cfg.crop_ratio_max)
    ratio = torch.exp(_uniform(u[:, 1], -log_r, log_r))
    sw = torch.sqrt(area * ratio).clamp(max=1.0)
    sh = torch.sqrt(area / ratio).clamp(max=1.0)
    cx = (1 - sw) * _uniform(u[:, 2], -1, 1) + 2 * cfg.translate * _uniform(u[:, 4], -1, 1)
    cy = (1 - sh) * _uniform(u[:, 3], -1, 1) + 2 * cfg.translate * _uniform(u[:, 5], -1, 1)
    theta = math.radians(cfg.rotate_deg) * _uniform(u_rot, -1, 1)
    cos, sin = torch.cos(theta), torch.sin(theta)
    return torch.stack([torch.stack([sw * cos, -sh * sin, cx], 1), torch.stack([sw * sin, sh * cos, cy], 1)], 1)


def erase_masks(
    n: int, h: int, w: int, cfg: AugmentConfig, device: torch.device, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(n, h, w) boolean masks, each a random box (or nothing, with prob. 1 - erase_prob)."""
    return _erase_from(torch.rand(n, 5, device=device, generator=generator), h, w, cfg)


def _erase_from(u: torch.Tensor, h: int, w: int, cfg: AugmentConfig) -> torch.Tensor:
    """:func:`erase_masks` of its uniform draws ``u`` (n, 5)."""
    device = u.device
    area = h * w * _uniform(u[:, 0], cfg.erase_scale_min, cfg.erase_scale_max)
    ratio = torch.exp(_uniform(u[:, 1], math.log(ERASE_RATIO[0]), math.log(ERASE_RATIO[1])))
    bh = torch.sqrt(area * ratio).round().clamp(1, h)
    bw = torch.sqrt(area / ratio).round().clamp(1, w)
    y0 = torch.floor(u[:, 2] * (h - bh + 1))
    x0 = torch.floor(u[:, 3] * (w - bw + 1))
    # separable: the box is (row in [y0, y0 + bh)) AND (col in [x0, x0 + bw)), so two small
    # (n, h) and (n, w) masks and one broadcast AND give the same (n, h, w) mask; four
    # full-size broadcast comparisons and ANDs cost ~4x more (bool broadcasting is slow on CPU)
    rows = torch.arange(h, device=device, dtype=area.dtype)[None, :]
    cols = torch.arange(w, device=device, dtype=area.dtype)[None, :]
    in_rows = (rows >= y0[:, None]) & (rows < (y0 + bh)[:, None]) & (u[:, 4] < cfg.erase_prob)[:, None]
    in_cols = (cols >= x0[:, None]) & (cols < (x0 + bw)[:, None])
    return in_rows[:, :, None] & in_cols[:, None, :]


_BASE_GRIDS: dict[tuple, torch.Tensor] = {}


def affine_grid(theta: torch.Tensor, size: list[int]) -> torch.Tensor:
    """``F.affine_grid(theta, size, align_corners=False)`` bit for bit, its (N, H, W, 3) base grid kept
    between calls on a CPU (rebuilding it, a strided fill, cost more than the transform itself, and
    more than linearly so for the S*B rows of seeds trained together). The same ``bmm`` of the same
    base grid as ``affine_grid_generator``'s; other devices call ``F.affine_grid``."""
    n, _, h, w = size
    if theta.device.type != "cpu":
        return F.affine_grid(theta, size, align_corners=False)
    key = (n, h, w, theta.dtype)
    base = _BASE_GRIDS.get(key)
    if base is None:
        if len(_BASE_GRIDS) >= 16:
            _BASE_GRIDS.clear()
        base = torch.empty(n, h, w, 3, dtype=theta.dtype)
        base[..., 0] = _linspace_from_neg_one(w, theta.dtype)
        base[..., 1] = _linspace_from_neg_one(h, theta.dtype).unsqueeze(-1)
        base[..., 2] = 1
        _BASE_GRIDS[key] = base
    return base.view(n, h * w, 3).bmm(theta.transpose(1, 2)).view(n, h, w, 2)


def _linspace_from_neg_one(k: int, dtype: torch.dtype) -> torch.Tensor:
    """ATen's ``linspace_from_neg_one`` (align_corners=False): pixel centres in [-1, 1]."""
    if k <= 1:
        return torch.zeros((), dtype=dtype)
    return torch.linspace(-1, 1, k, dtype=dtype) * (k - 1) / k


def image_draws(
    n: int,
    image_shape: tuple[int, int, int],
    cfg: AugmentConfig,
    device: torch.device,
    dtype: torch.dtype,
    generator: torch.Generator | None = None,
) -> list[torch.Tensor | None]:
    """Every random draw of one image view of ``n`` inputs, in :func:`augment_images`' order:
    the crop/shift uniforms (n, 6), the rotation's (n,), the erasing's (n, 5), the pixel noise
    (n, C, H, W) (None when ``noise_std`` is 0), from ``generator`` (None: the global RNG)."""
    u = torch.rand(n, 6, device=device, generator=generator)
    u_rot = torch.rand(n, device=device, generator=generator)
    u_erase = torch.rand(n, 5, device=device, generator=generator)
    noise = (
        torch.randn((n, *image_shape), device=device, dtype=dtype, generator=generator) if cfg.noise_std > 0 else None
    )
    return [u, u_rot, u_erase, noise]


def images_view(
    x: torch.Tensor, image_shape: tuple[int, int, int], cfg: AugmentConfig, draws: list[torch.Tensor | None]
) -> torch.Tensor:
    """The view of flattened images ``x`` (N, C*H*W) that :func:`image_draws` ``draws`` make: no
    randomness of its own, every op per row, so the draws of several seeds concatenated on dim 0
    give each seed's rows exactly (the seeds trained together warp, erase and add noise at once)."""
    u, u_rot, u_erase, noise = draws
    n = x.shape[0]
    c, h, w = image_shape
    img = x.reshape(n, c, h, w)
    grid = affine_grid(_affine_from(u, u_rot, cfg).to(x.dtype), [n, c, h, w])
    img = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # in place on grid_sample's fresh output (no gradient flows through a view): the same values
    # as out-of-place masked_fill, noise add and clamp, without three (N, C, H, W) temporaries
    img.masked_fill_(_erase_from(u_erase, h, w, cfg)[:, None], 0.0)
    if noise is not None:
        img.add_(noise.mul_(cfg.noise_std))
    return img.clamp_(0.0, 1.0).reshape(n, c * h * w)


def augment_images(
    x: torch.Tensor, image_shape: tuple[int, int, int], cfg: AugmentConfig, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One random view of flattened images ``x`` (N, C*H*W) in [0, 1] -> (N, C*H*W) in [0, 1]."""
    return images_view(x, image_shape, cfg, image_draws(x.shape[0], image_shape, cfg, x.device, x.dtype, generator))


def augment_vectors(x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """One random view of vectors ``x`` (N, D): relative Gaussian noise, then feature dropout."""
    if cfg.feature_noise > 0:
        x = x + cfg.feature_noise * x.detach().std(0, correction=0, keepdim=True) * torch.randn_like(
            x, generator=generator
        )
    if cfg.feature_dropout > 0:
        x = x * (torch.rand_like(x, generator=generator) >= cfg.feature_dropout)
    return x


def augment(
    x: torch.Tensor,
    image_shape: tuple[int, int, int] | None,
    cfg: AugmentConfig,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One random view of ``x`` (N, D): image augmentations when ``image_shape`` is set, else vector ones."""
    if image_shape is None:
        return augment_vectors(x, cfg, generator)
    return augment_images(x, image_shape, cfg, generator)


def make_views(
    x: torch.Tensor, image_shape: tuple[int, int, int] | None, cfg: AugmentConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent random views ``(x1, x2)`` of the minibatch ``x`` (N, D), each (N, D)."""
    return augment(x, image_shape, cfg), augment(x, image_shape, cfg)


def make_views_stacked(
    x: torch.Tensor,
    image_shape: tuple[int, int, int] | None,
    cfg: AugmentConfig,
    generators: list[torch.Generator],
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`make_views` for S seeds trained together: ``x`` (S, B, D), seed s's views drawn from
    ``generators[s]`` in the single-seed order (view 1's draws, then view 2's), each (S, B, D)
    slice equal to ``make_views(x[s])`` under that seed's global RNG. Images: the draws per seed
    (S small calls), the warp, erasing and noise once on the (S*B) rows; vectors: per seed (their
    noise scale is a batch statistic)."""
    S, B, D = x.shape
    if image_shape is None:
        return tuple(torch.stack([augment_vectors(x[s], cfg, g) for s, g in enumerate(generators)]) for _ in range(2))
    views = []
    for _ in range(2):
        per = [image_draws(B, image_shape, cfg, x.device, x.dtype, g) for g in generators]
        draws = [None if d[0] is None else torch.cat(d) for d in zip(*per, strict=True)]
        views.append(images_view(x.reshape(S * B, D), image_shape, cfg, draws).view(S, B, D))
    return views[0], views[1]
