"""Robustness of a frozen code (protocol §11.2(a)): how much of its probe accuracy survives a perturbation.

One linear probe is fitted once on the clean, train-standardised features, with its L2 strength
chosen on val exactly as the standard probe does (:func:`bench.evaluate.probe.linear_probe`), and is
then *frozen*: every perturbed accuracy is that same probe's accuracy on perturbed features,
standardised with the clean train statistics. The measure is the retained accuracy

    r = (acc_pert - chance) / (acc - chance),   chance = 1 / classes,

(:func:`bench.evaluate.metrics.retained_accuracy`): 1 when nothing is lost, 0 at chance.

Perturbations (the defaults are the protocol's levels):

* ``zero`` - random unit zeroing: a fraction p in [.1, .3, .5] of the K units, [5] seeded random draws,
  accuracy averaged over the draws. A zeroed unit is set to its train mean, i.e. 0 after
  standardisation, which is the same as zeroing its rows of the frozen probe's weight. This is P1's
  ``("random", "frozen")`` curve convention exactly (``predictions/pruning/curves.py``): the draws
  are ``randperm(K)`` orders from ``torch.Generator().manual_seed(seed)`` and fraction p removes each
  order's first ``round(p K)`` units, so with the same seed and probe the accuracies are P1's
  (``tests/test_robustness.py`` checks it against ``structured_pruning``).
* ``noise`` - Gaussian input noise: ``x + sigma * sd_d * eps``, ``eps ~ N(0, 1)``, with ``sd_d`` the
  train standard deviation of input dimension d (pixel d), sigma in [.1, .3], pushed through the
  encoder. A constant input dimension (a border pixel that is always 0) gets no noise. One draw per
  input, shared by the levels (common random numbers: the levels differ only in sigma).
* ``occlude`` - one contiguous occluder covering [25%] of each input, set to 0: for images a square
  patch of side ``round(sqrt(.25 H W))`` over all channels (exactly 25% on 8x8, 28x28, 32x32 and
  64x64 images) at a seeded uniformly random position per input; for 1-D inputs a segment of
  ``round(.25 D)`` consecutive dimensions at a random start. 0 is the background of every image
  dataset of the suite (``digits``, ``mnist5k``, ``dsprites`` are ink on black, scaled to [0, 1]) and
  the train mean of a train-standardised input (``ica``, ``mnist1d``), so the occluder removes
  signal rather than painting a new pattern; for natural images (cifar10) it is a black square.

All random draws come from CPU generators seeded with ``seed`` (one per perturbation), then move to
the inputs' device, so a seed gives the same perturbations on every device. At level 0 (p = 0,
sigma = 0, 0% occlusion) each perturbation returns the clean accuracy exactly (§11.5.12).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from bench.evaluate.metrics import retained_accuracy
from bench.evaluate.probe import L2_GRID, accuracy, linear_probe

ZERO_FRACTIONS = (0.1, 0.3, 0.5)
ZERO_DRAWS = 5
NOISE_SIGMAS = (0.1, 0.3)
OCCLUSIONS = (0.25,)
MIN_GAP = 0.01  # r is nan when the clean accuracy is within this of chance (P1's ``summarize`` tol)

Encode = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class FrozenProbe:
    """A linear probe fitted once on clean features, with the train statistics it standardises with.

    ``mean``, ``std`` (K,) are :func:`bench.evaluate.probe.standardize`'s train statistics (constant
    features: std 1); ``weight`` (K, C) and ``bias`` (C,) act on standardised features; ``l2`` is the
    val-chosen L2 strength."""

    mean: torch.Tensor
    std: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor
    l2: float
    n_classes: int

    @property
    def chance(self) -> float:
        return 1.0 / self.n_classes

    def standardize(self, f: torch.Tensor) -> torch.Tensor:
        """(N, K) raw features -> standardised with the clean train statistics (float32)."""
        return (f.float() - self.mean) / self.std

    def accuracy(self, z: torch.Tensor, y: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """(G,) float64 accuracies on standardised features ``z`` (N, K): with ``keep`` (G, K) 0/1
        masks, the frozen probe with the dropped units set to 0 (their rows of the weight zeroed)."""
        w = self.weight[None] if keep is None else self.weight[None] * keep.to(self.weight)[:, :, None]
        return accuracy(z, y, w, self.bias[None].expand(w.shape[0], -1))


def train_stats(f_train: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(K,) mean and std of (N, K) train features, as :func:`bench.evaluate.probe.standardize` takes them."""
    f = f_train.detach().float()
    mean, std = f.mean(0), f.std(0)
    return mean, torch.where(std > 1e-8, std, torch.ones_like(std))


def fit_frozen_probe(
    f_train: torch.Tensor,
    y_train: torch.Tensor,
    f_val: torch.Tensor,
    y_val: torch.Tensor,
    n_classes: int,
    l2_grid: Sequence[float] = L2_GRID,
) -> FrozenProbe:
    """The §6 probe on clean features (L2 chosen on val, fitted on train), kept for the perturbations.

    Args:
        f_train, f_val: (N, K) raw clean features; y_*: (N,) labels.
    """
    mean, std = train_stats(f_train)
    z_tr, z_va = ((f.detach().float() - mean) / std for f in (f_train, f_val))
    fit = linear_probe(z_tr, y_train, z_va, y_val, z_va, y_val, n_classes, l2_grid=l2_grid, standardized=True)
    return FrozenProbe(mean, std, fit.weight[0], fit.bias[0], float(fit.l2[0]), n_classes)


# ----------------------------------------------------------------------------- perturbations
def zeroing_masks(
    k: int, fractions: Sequence[float], draws: int, seed: int, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """(draws, F, K) 0/1 keep-masks: draw r at fraction p drops the first ``round(p K)`` units of a
    random order ``randperm(K)`` (P1's random orders and ``masks_from_orders``, same generator)."""
    g = torch.Generator().manual_seed(seed)
    orders = torch.stack([torch.randperm(k, generator=g) for _ in range(draws)]).to(device)
    rank = torch.empty_like(orders)
    rank.scatter_(1, orders, torch.arange(k, device=orders.device).expand(draws, k))
    n_drop = torch.tensor([round(p * k) for p in fractions], device=orders.device)
    return (rank[:, None, :] >= n_drop[None, :, None]).to(torch.float32)


def input_noise(x: torch.Tensor, sd: torch.Tensor, sigma: float, eps: torch.Tensor) -> torch.Tensor:
    """``x + sigma * sd * eps``: (N, D) inputs, (D,) per-dimension train sd, (N, D) standard normal draws."""
    return x + (sigma * sd) * eps


def occluder_masks(
    n: int,
    input_dim: int,
    fraction: float,
    generator: torch.Generator,
    image_shape: tuple[int, int, int] | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """(N, D) bool masks, True where an input is occluded: one contiguous occluder per input.

    Images (``image_shape`` (C, H, W), D = C H W, inputs flattened C-major): a square of side
    ``s = round(sqrt(fraction H W))`` over all channels, its top-left corner uniform over the
    ``(H - s + 1) (W - s + 1)`` positions that keep it inside. 1-D inputs: ``round(fraction D)``
    consecutive dimensions, the start uniform over the ``D - L + 1`` positions. Built by comparing
    index ranges (no per-input loop).

    Raises:
        ValueError: ``fraction`` outside [0, 1], or ``image_shape`` that does not multiply to D.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction: need 0 <= fraction <= 1, got {fraction}")
    if image_shape is None:
        length = round(fraction * input_dim)
        start = torch.randint(0, input_dim - length + 1, (n, 1), generator=generator)
        i = torch.arange(input_dim)[None, :]
        return ((i >= start) & (i < start + length)).to(device)
    c, h, w = image_shape
    if c * h * w != input_dim:
        raise ValueError(f"image_shape: {tuple(image_shape)} has {c * h * w} values, inputs have {input_dim}")
    side = min(round(math.sqrt(fraction * h * w)), h, w)
    top = torch.randint(0, h - side + 1, (n, 1), generator=generator)
    left = torch.randint(0, w - side + 1, (n, 1), generator=generator)
    rows, cols = torch.arange(h)[None, :], torch.arange(w)[None, :]
    in_rows = (rows >= top) & (rows < top + side)  # (N, H)
    in_cols = (cols >= left) & (cols < left + side)  # (N, W)
    patch = in_rows[:, :, None] & in_cols[:, None, :]  # (N, H, W)
    return patch[:, None].expand(n, c, h, w).reshape(n, input_dim).to(device)


def occlude(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x`` with the masked entries set to 0."""
    return x.masked_fill(mask, 0.0)


# ----------------------------------------------------------------------------- the measure
def perturbed_accuracies(
    probe: FrozenProbe,
    encode: Encode,
    x: torch.Tensor,
    y: torch.Tensor,
    x_sd: torch.Tensor,
    *,
    image_shape: tuple[int, int, int] | None = None,
    fractions: Sequence[float] = ZERO_FRACTIONS,
    draws: int = ZERO_DRAWS,
    sigmas: Sequence[float] = NOISE_SIGMAS,
    occlusions: Sequence[float] = OCCLUSIONS,
    seed: int = 0,
) -> list[tuple[str, float, float, np.ndarray]]:
    """The frozen probe's accuracy on one split under every perturbation.

    Args:
        encode: inputs (N, D) -> features (N, K), deterministic (e.g. ``Method.encode_all``).
        x, y: (N, D) clean inputs and (N,) labels of the split; x_sd: (D,) per-dimension train sd.
    Returns:
        ``(perturbation, level, accuracy, per_draw)`` tuples, the clean one first as
        ``("none", 0.0, acc, ...)``; ``accuracy`` of ``zero`` is the mean over its draws, ``per_draw``
        the (draws,) accuracies (one entry for the other perturbations).
    """
    with torch.no_grad():
        z = probe.standardize(encode(x))
        clean = float(probe.accuracy(z, y)[0])
        out = [("none", 0.0, clean, np.array([clean]))]
        if fractions:
            keep = zeroing_masks(z.shape[1], fractions, draws, seed, z.device)  # (R, F, K)
            acc = probe.accuracy(z, y, keep.reshape(-1, z.shape[1])).view(draws, len(fractions)).cpu().numpy()
            # the mean over draws from integer hit counts: the same rational as a single draw's accuracy, so
            # equal draws (p = 0) give the clean accuracy exactly (np.mean of equal floats can round a unit off)
            hits = np.rint(acc * len(y)).sum(axis=0)
            out += [("zero", float(p), float(hits[i] / (len(y) * draws)), acc[:, i]) for i, p in enumerate(fractions)]
        if sigmas:
            g = torch.Generator().manual_seed(seed)
            eps = torch.randn(x.shape, generator=g, dtype=x.dtype).to(x.device)
            for s in sigmas:
                a = float(probe.accuracy(probe.standardize(encode(input_noise(x, x_sd, s, eps))), y)[0])
                out.append(("noise", float(s), a, np.array([a])))
        g = torch.Generator().manual_seed(seed)
        for frac in occlusions:
            mask = occluder_masks(x.shape[0], x.shape[1], frac, g, image_shape, x.device)
            a = float(probe.accuracy(probe.standardize(encode(occlude(x, mask))), y)[0])
            out.append(("occlude", float(frac), a, np.array([a])))
    return out


def robustness(
    encode: Encode,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    n_classes: int,
    *,
    image_shape: tuple[int, int, int] | None = None,
    fractions: Sequence[float] = ZERO_FRACTIONS,
    draws: int = ZERO_DRAWS,
    sigmas: Sequence[float] = NOISE_SIGMAS,
    occlusions: Sequence[float] = OCCLUSIONS,
    seed: int = 0,
    l2_grid: Sequence[float] = L2_GRID,
    min_gap: float = MIN_GAP,
) -> list[dict]:
    """Retained accuracy under unit zeroing, input noise and occlusion, on val and test (§11.2(a)).

    Encodes the three clean splits, fits the frozen probe (:func:`fit_frozen_probe`), then scores
    :func:`perturbed_accuracies` on val (where a dose such as lambda* is chosen) and on test (where
    it is scored). The input noise scale is the per-dimension sd of ``x_train``.

    Returns:
        Tidy rows ``{"split", "perturbation", "level", "accuracy", "retained", "draws"}``, one per
        (split, perturbation, level), the clean row (``"none"``, 0.0, retained 1) first per split.
        ``retained`` is nan when the clean accuracy is within ``min_gap`` of chance.
    """
    with torch.no_grad():
        f_train, f_val = encode(x_train), encode(x_val)
    probe = fit_frozen_probe(f_train, y_train, f_val, y_val, n_classes, l2_grid)
    x_sd = x_train.std(0)
    rows = []
    for split, x, y in (("val", x_val, y_val), ("test", x_test, y_test)):
        acc = perturbed_accuracies(
            probe,
            encode,
            x,
            y,
            x_sd,
            image_shape=image_shape,
            fractions=fractions,
            draws=draws,
            sigmas=sigmas,
            occlusions=occlusions,
            seed=seed,
        )
        clean = acc[0][2]
        r = retained_accuracy(np.array([a for _, _, a, _ in acc]), clean, probe.chance, min_gap)
        rows += [
            {
                "split": split,
                "perturbation": kind,
                "level": level,
                "accuracy": a,
                "retained": float(ri),
                "draws": len(per),
            }
            for (kind, level, a, per), ri in zip(acc, r, strict=True)
        ]
    return rows


def summarize(rows: Sequence[dict], split: str = "test") -> dict[str, float]:
    """Mean retained accuracy over the levels of each perturbation on ``split``, and over all of
    them (``"all"``: every perturbed level weighted equally); the clean row is left out."""
    by: dict[str, list[float]] = {}
    for r in rows:
        if r["split"] == split and r["perturbation"] != "none":
            by.setdefault(r["perturbation"], []).append(r["retained"])
    out = {k: float(np.mean(v)) for k, v in by.items()}
    out["all"] = float(np.mean([v for vs in by.values() for v in vs])) if by else math.nan
    return out
