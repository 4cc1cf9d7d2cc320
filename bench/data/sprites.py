"""The dSprites-like renderer: factor indices -> 32x32 binary sprites, vectorised over draws.

After dSprites (Matthey, Higgins, Hassabis & Lerchner 2017): shape (square, ellipse, heart),
scale (6 values in [0.5, 1]), orientation (16 in [0, 2 pi)), pos_x and pos_y (16 each).
:func:`bench.data.load_dsprites` draws the factors and splits; this module only draws pixels.
"""

from __future__ import annotations

import math

import numpy as np
import torch

SHAPES = ("square", "ellipse", "heart")
SIZE = 32
SCALES = np.linspace(0.5, 1.0, 6)
ORIENTATIONS = np.arange(16) * (2 * math.pi / 16)
# half-width of a scale-1 square, in canvas units (canvas = [-1, 1]^2)
_SPRITE_RADIUS = 0.35
# farthest point of any shape from its centre, in local units (the square's corner)
_SPRITE_REACH = math.sqrt(2.0)
_POS_LIMIT = 1.0 - _SPRITE_RADIUS * _SPRITE_REACH * SCALES[-1] - 1.0 / SIZE
POSITIONS = np.linspace(-_POS_LIMIT, _POS_LIMIT, 16)
# heart curve shrunk by 1/1.2 and centred on its bounding box
_HEART_K, _HEART_YC = 1.2, 0.118


def _inside(shape: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Implicit shape test in the sprite's local frame (unit half-width, v pointing up).

    square: max(|u|, |v|) <= 1; ellipse: u^2 + (v / 0.5)^2 <= 1;
    heart: (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0 with x = 1.2 u, y = 1.2 v + 0.118 (radius < 1.12).
    """
    if shape == 0:
        return (u.abs_() <= 1.0) & (v.abs_() <= 1.0)
    if shape == 1:
        return u.square_().add_(v.square_().mul_(4.0)) <= 1.0
    x2 = u.mul_(_HEART_K).square_()
    y = v.mul_(_HEART_K).add_(_HEART_YC)
    y3 = y.pow(3)
    t = y.square_().add_(x2).sub_(1.0)
    return t.pow(3) <= x2.mul_(y3)


def render(idx: np.ndarray, chunk: int = 8192) -> torch.Tensor:
    """Render dSprites-like binary images from factor indices, vectorised over draws.

    A pixel centre p = (x_j, y_i) (canvas [-1, 1]^2, y up) is lit when its local coordinates
    (u, v) = R(-theta) (p - c) / (0.35 * scale) pass the shape test. Both are separable,
    u = a_j + b_i, so each costs one broadcast add over (N, 32, 32). Positions keep the rotated
    sprite inside the canvas.

    Args:
        idx: (N, 5) integer indices into (shape, scale, orientation, pos_x, pos_y) grids.
        chunk: draws rendered at once (bounds memory; not a per-image loop).

    Returns:
        (N, 32, 32) float32 images in {0, 1}.
    """
    idx = np.asarray(idx, dtype=np.int64)
    step = 2.0 / SIZE
    grid = (np.arange(SIZE) + 0.5) * step - 1.0
    gx, gy = grid[None, :], -grid[None, :]  # x by column, y by row (pointing up)
    r = (_SPRITE_RADIUS * SCALES[idx[:, 1]])[:, None]
    theta = ORIENTATIONS[idx[:, 2]][:, None]
    px = POSITIONS[idx[:, 3]][:, None]
    py = POSITIONS[idx[:, 4]][:, None]
    c, s = np.cos(theta) / r, np.sin(theta) / r
    # u = c (x - px) + s (y - py), v = -s (x - px) + c (y - py), split into column and row parts
    parts = (c * gx - c * px - s * py, s * gy, -s * gx + s * px - c * py, c * gy)
    u_col, u_row, v_col, v_row = (torch.from_numpy(p.astype(np.float32)) for p in parts)
    out = torch.zeros(idx.shape[0], SIZE, SIZE, dtype=torch.float32)
    for k in range(len(SHAPES)):
        sel_all = torch.from_numpy(np.flatnonzero(idx[:, 0] == k))
        for sel in sel_all.split(chunk):
            u = u_col[sel, None, :] + u_row[sel, :, None]
            v = v_col[sel, None, :] + v_row[sel, :, None]
            out[sel] = _inside(k, u, v).to(torch.float32)
    return out


def position_law(s: float | None, n: int = len(POSITIONS)) -> np.ndarray:
    """The joint law of (pos_x, pos_y) indices, coupled with width ``s`` (protocol 11.2c).

    p(i, j) proportional to exp(-(c_i - c_j)^2 / (2 s^2)), c = the position scaled to [0, 1]
    (c_i = i / (n - 1)): mass near the diagonal, so pos_x and pos_y correlate positively, the more
    the smaller s. ``None`` (s = inf) is the uniform law.

    Returns:
        (n, n) float64 probabilities summing to 1, p[i, j] for pos_x = i, pos_y = j.
    """
    if s is None:
        return np.full((n, n), 1.0 / (n * n))
    c = np.linspace(0.0, 1.0, n)
    w = np.exp(-np.square(c[:, None] - c[None, :]) / (2.0 * s * s))
    return w / w.sum()
