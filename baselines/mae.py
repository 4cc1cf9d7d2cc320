"""Masked autoencoder: masked patch prediction with a small vision transformer.

He, Chen, Xie, Li, Dollar & Girshick (2022), "Masked Autoencoders Are Scalable Vision
Learners" (CVPR). The image is cut into non-overlapping p x p patches (L of them); a random
75% are masked per image; the encoder (timm ``vision_transformer.Block`` s) sees only the
visible patches; a narrower, shallower decoder gets the encoded visible tokens plus a shared
learnt mask token at every masked position and predicts the masked patches' pixels. Loss: the
mean squared error over the masked patches only,

    loss = sum_{n,l} m_nl * mean_j (pred_nlj - target_nlj)^2 / sum_{n,l} m_nl,   m_nl = 1 if masked.

Choices for tiny images (defaults in :class:`MAEConfig`):

* Patch size rule (``patch_size=0``): the largest p in (4, 2, 1) that divides H and W and
  leaves at least 16 patches, so 75% masking still leaves >= 4 visible ones: p = 4 for
  28x28 (L = 49) and 32x32 (L = 64), p = 2 for 8x8 (L = 16).
* Width K = the embedding width. Heads (``num_heads=0``): the largest of (4, 2, 1) dividing K
  (the same rule for the decoder's width). Depth [2], MLP ratio [4], qkv bias as in MAE. A
  method does not see the run's profile: depth 2 is the default for both; on the full profile
  raise it from the command line (``mae.depth=4``).
* Decoder width (``decoder_width=0``): K // 2, at least 8; depth [1]. Training-only.
* Positional embeddings: fixed 2D sin-cos (MAE's ``get_2d_sincos_pos_embed``), buffers, not
  parameters; with K not a multiple of 4, the last K mod 4 dimensions are zero.
* No class token: features are the mean over ALL L encoder tokens after the final LayerNorm,
  with NO masking at encode time (He et al. 2022, appendix A.1, find average pooling works as
  well as a class token).
* Kept patches per image: ``int(L * (1 - mask_ratio))``, MAE's rounding: 4 of 16 on 8x8
  (exactly 75% masked), 12 of 49 on 28x28 (75.5%).
* ``norm_pix_loss`` [off]: MAE's per-patch normalised target helps on 16x16 natural-image
  patches, but a 2x2 or 4x4 patch of a digit is often constant (all background), so its
  variance is ~0 and the normalised target is noise amplified by 1/sqrt(eps).
* The prediction layer starts small, N(0, 0.02) (see :meth:`MAE._init_weights`): raw pixel
  targets are far smaller than a xavier layer's first outputs.
* Optimiser: the shared trainer's Adam, lr 1e-3, no weight decay (MAE's AdamW with lr 1.5e-4 *
  batch / 256, warm-up and cosine schedule is tuned for ImageNet-scale runs of 800+ epochs).

Deployed encoder (``self.encoder``): patch embedding + positional embedding + encoder blocks +
final norm. Decoder, mask token and prediction head are training-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from timm.models.vision_transformer import Block
from torch import nn

from bench.train.methods import METHODS, DataInfo, Method, MethodConfig

PATCH_SIZES = (4, 2, 1)
HEAD_COUNTS = (4, 2, 1)
MIN_PATCHES = 16
_layer_norm = partial(nn.LayerNorm, eps=1e-6)  # MAE's norm layer


@dataclass(frozen=True)
class MAEConfig(MethodConfig):
    mask_ratio: float = 0.75
    patch_size: int = 0  # 0: the largest of (4, 2, 1) dividing H and W with >= 16 patches
    depth: int = 2
    num_heads: int = 0  # 0: the largest of (4, 2, 1) dividing the width
    mlp_ratio: float = 4.0
    decoder_width: int = 0  # 0: width // 2, at least 8
    decoder_depth: int = 1
    norm_pix_loss: bool = False

    def check(self) -> None:
        super().check()
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio: must be in (0, 1), got {self.mask_ratio}")
        for field in ("patch_size", "num_heads", "decoder_width"):
            if getattr(self, field) < 0:
                raise ValueError(f"{field}: must be >= 0 (0 = automatic), got {getattr(self, field)}")
        if self.depth < 1 or self.decoder_depth < 1:
            raise ValueError(f"depth, decoder_depth: must be >= 1, got {self.depth}, {self.decoder_depth}")
        if self.mlp_ratio <= 0:
            raise ValueError(f"mlp_ratio: must be > 0, got {self.mlp_ratio}")


def auto_patch_size(height: int, width: int) -> int:
    """The largest p in (4, 2, 1) dividing both sides with at least 16 patches (else 1)."""
    for p in PATCH_SIZES:
        if height % p == 0 and width % p == 0 and (height // p) * (width // p) >= MIN_PATCHES:
            return p
    return 1


def auto_num_heads(dim: int) -> int:
    """The largest head count in (4, 2, 1) that divides ``dim``."""
    return next(h for h in HEAD_COUNTS if dim % h == 0)


def sincos_pos_embed_2d(grid_h: int, grid_w: int, dim: int) -> torch.Tensor:
    """Fixed 2D sin-cos positional embedding (MAE's ``get_2d_sincos_pos_embed``), (L, dim).

    With ``q = dim // 4`` frequencies ``omega_i = 10000^(-i / q)``, token (r, c) (row-major, L =
    grid_h * grid_w) gets ``[sin(r omega), cos(r omega), sin(c omega), cos(c omega)]``; the
    last ``dim - 4 q`` dimensions are zero.
    """
    q = dim // 4
    emb = torch.zeros(grid_h * grid_w, dim)
    if q == 0:
        return emb
    omega = 10000.0 ** (-torch.arange(q, dtype=torch.float64) / q)
    rows, cols = torch.meshgrid(torch.arange(grid_h), torch.arange(grid_w), indexing="ij")
    r = rows.reshape(-1, 1).double() * omega
    c = cols.reshape(-1, 1).double() * omega
    emb[:, : 4 * q] = torch.cat([r.sin(), r.cos(), c.sin(), c.cos()], dim=1).float()
    return emb


def patchify(x: torch.Tensor, image_shape: tuple[int, int, int], p: int) -> torch.Tensor:
    """(N, C*H*W) flattened images -> (N, L, p*p*C) patches, row-major over the patch grid."""
    c, h, w = image_shape
    n = x.shape[0]
    x = x.reshape(n, c, h // p, p, w // p, p)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(n, (h // p) * (w // p), p * p * c)


def random_masking(
    n: int, length: int, mask_ratio: float, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample random masking by argsort of uniform noise (MAE's ``random_masking``).

    Keeps ``n_keep = int(L * (1 - mask_ratio))`` patches per sample (draws from torch's global
    generator, so a seeded run is reproducible).

    Returns:
        ids_keep (N, n_keep): indices of the visible patches; ids_restore (N, L): the inverse
        of the shuffle; mask (N, L): 1 for a masked patch, 0 for a visible one.
    """
    n_keep = int(length * (1 - mask_ratio))
    ids_shuffle = torch.rand(n, length, device=device).argsort(dim=1)
    ids_restore = ids_shuffle.argsort(dim=1)
    mask = torch.ones(n, length, device=device)
    mask[:, :n_keep] = 0
    return ids_shuffle[:, :n_keep], ids_restore, mask.gather(1, ids_restore)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over masked patches of the per-patch mean squared error; pred, target (N, L, P), mask (N, L)."""
    per_patch = (pred - target).pow(2).mean(-1)
    return (per_patch * mask).sum() / mask.sum()


class ViTEncoder(nn.Module):
    """Patch embedding + fixed positional embedding + transformer blocks + final LayerNorm."""

    def __init__(self, patch_dim: int, grid: tuple[int, int], width: int, depth: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.patch_embed = nn.Linear(patch_dim, width)  # = MAE's Conv2d(kernel = stride = p)
        self.register_buffer("pos_embed", sincos_pos_embed_2d(*grid, width), persistent=False)
        self.blocks = nn.ModuleList(
            Block(width, heads, mlp_ratio, qkv_bias=True, norm_layer=_layer_norm) for _ in range(depth)
        )
        self.norm = _layer_norm(width)

    def forward(self, patches: torch.Tensor, ids_keep: torch.Tensor | None = None) -> torch.Tensor:
        """(N, L, P) patches -> (N, L', K) tokens; only the ``ids_keep`` (N, L') ones when given."""
        t = self.patch_embed(patches) + self.pos_embed
        if ids_keep is not None:
            t = t.gather(1, ids_keep[..., None].expand(-1, -1, t.shape[-1]))
        for blk in self.blocks:
            t = blk(t)
        return self.norm(t)


@METHODS.register()
class MAE(Method):
    """Masked autoencoder (small ViT from timm blocks, 75% masking, mean-pooled tokens)."""

    name = "mae"
    citation = "He et al. 2022, Masked Autoencoders Are Scalable Vision Learners"
    Config = MAEConfig

    def __init__(self, cfg: MAEConfig, info: DataInfo, width: int):
        super().__init__(cfg, info, width)
        cfg.check()
        why = self.unsupported(info)
        if why:
            raise ValueError(f"mae: {why}")
        c, h, w = info.image_shape
        p = cfg.patch_size or auto_patch_size(h, w)
        if h % p or w % p:
            raise ValueError(f"patch_size: {p} does not divide the image's {h}x{w}")
        heads = cfg.num_heads or auto_num_heads(width)
        if width % heads:
            raise ValueError(f"num_heads: {heads} does not divide the width {width}")
        dec_width = cfg.decoder_width or max(8, width // 2)
        dec_heads = auto_num_heads(dec_width)
        self.patch_size, self.num_heads, self.grid = p, heads, (h // p, w // p)
        patch_dim = p * p * c

        self.encoder = ViTEncoder(patch_dim, self.grid, width, cfg.depth, heads, cfg.mlp_ratio)
        self.decoder_embed = nn.Linear(width, dec_width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dec_width))
        self.register_buffer("decoder_pos_embed", sincos_pos_embed_2d(*self.grid, dec_width), persistent=False)
        self.decoder_blocks = nn.ModuleList(
            Block(dec_width, dec_heads, cfg.mlp_ratio, qkv_bias=True, norm_layer=_layer_norm)
            for _ in range(cfg.decoder_depth)
        )
        self.decoder_norm = _layer_norm(dec_width)
        self.decoder_pred = nn.Linear(dec_width, patch_dim)
        self._init_weights()

    def _init_weights(self) -> None:
        """MAE's initialisation (xavier-uniform linears, patch embedding included, zero biases,
        unit LayerNorms, mask token ~ N(0, 0.02)), except a small prediction layer.

        Why: MAE's targets are normalised (inputs standardised, ``norm_pix_loss``), so a xavier
        output layer on LayerNorm'd tokens starts at the targets' scale. Raw [0, 1] pixel
        targets have a per-pixel variance of ~0.07, and the xavier layer's unit-variance
        predictions start at a loss ~15x that of predicting the mean image; the early Adam steps
        go into shrinking them and the model then sits on the mean-image plateau (on mnist5k,
        width 64, 40 epochs: masked MSE 0.066 vs the mean image's 0.068, probe 0.79). The
        prediction layer gets timm's ViT init instead, truncated N(0, 0.02): predictions start
        near 0, and gradients still reach the encoder from the first step (a zero init would
        block them for one step).
        """
        nn.init.normal_(self.mask_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.decoder_pred.weight, std=0.02)

    @classmethod
    def unsupported(cls, info: DataInfo) -> str | None:
        return None if info.image_shape is not None else "needs image inputs (image_shape is None)"

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N, L, p*p*C)."""
        return patchify(x, self.info.image_shape, self.patch_size)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Mean of the encoder's tokens over all L patches (nothing masked), (N, D) -> (N, K)."""
        return self.encoder(self.patchify(x)).mean(1)

    def reconstruct(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One masked forward pass: (pred, target, mask), shapes (N, L, P), (N, L, P), (N, L).

        The encoder sees only the visible patches; the decoder predicts every patch from them
        and the mask tokens. The target is the patch pixels, normalised per patch with
        ``norm_pix_loss``.
        """
        patches = self.patchify(x)
        n, length, _ = patches.shape
        ids_keep, ids_restore, mask = random_masking(n, length, self.cfg.mask_ratio, x.device)
        latent = self.decoder_embed(self.encoder(patches, ids_keep))
        fill = self.mask_token.expand(n, length - latent.shape[1], -1)
        t = torch.cat([latent, fill], dim=1).gather(1, ids_restore[..., None].expand(-1, -1, latent.shape[-1]))
        t = t + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            t = blk(t)
        pred = self.decoder_pred(self.decoder_norm(t))
        target = patches
        if self.cfg.norm_pix_loss:
            mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
            target = (target - mean) / (var + 1e-6).sqrt()
        return pred, target, mask

    def loss_terms(self, x, y=None):
        return {"mse_masked": masked_mse(*self.reconstruct(x))}
