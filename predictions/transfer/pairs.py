"""P2 transfer: the source -> target pairs, the label budgets and the labelled draws (docs/protocol.md, P2).

A pair names where the encoder is pretrained (``source``) and where it is probed (``target``);
the in-domain reference of a pair is the same method pretrained on the target's train inputs,
and its step-matched source (the co-primary's) the same method pretrained on a stratified random
subset of the source's train split of the target's train size, for the in-domain steps
(:func:`matched_source`). Pair ids carry no brackets or commas, so
``pairs=[mnist_digits,mnist_lo_hi]`` reads on the command line. A budget is ``n`` labelled target train examples per class, or ``all`` of them; draws are
stratified at random (never a prefix: ``mnist5k``'s train split comes back class-sorted) and
seeded by (seed, pair, budget, draw) only, never by the method, so every method (and the
transfer and in-domain probes of one pair) gets the same labelled subsets.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Pair:
    """Source -> target. ``group``: ``primary`` (the primary's and co-primary's pairs), ``stretch``
    (v1's geometric-shift pair) or ``full`` (torchvision data under ``data.root``); ``width``:
    the pair's own K (None: the prediction's width)."""

    source: str
    target: str
    group: str = "primary"
    width: int | None = None


PAIRS: dict[str, Pair] = {
    "mnist_digits": Pair("mnist5k", "digits28c"),  # new data: MNIST -> UCI digits framed like MNIST
    "mnist_lo_hi": Pair("mnist5k[0-4]", "mnist5k[5-9]"),  # unseen classes
    # unseen classes at K = 32: at K = D = 64 a probe of PCA reads like raw's and FastICA is an invertible map
    "digits_lo_hi": Pair("digits[0-4]", "digits[5-9]", width=32),
    "mnist_digits_stretch": Pair("mnist5k", "digits28", group="stretch"),  # v1's stretch: a geometric shift
    "mnist_fashion": Pair("mnist", "fashion_mnist", group="full"),
    "mnist_kmnist": Pair("mnist", "kmnist", group="full"),
    "cifar10_svhn": Pair("cifar10", "svhn", group="full"),
}
GROUPS = ("primary", "stretch", "full")
PRIMARY = tuple(p for p, v in PAIRS.items() if v.group == "primary")
PRIMARY_BUDGETS = ("1", "5", "10")  # the primary and co-primary average over these
ALL = "all"
MATCH_TOLERANCE = 0.1  # the primary's own source serves as step-matched when train sizes differ by less


def matched_source(source_train: int, target_train: int, pair: Pair) -> str:
    """The co-primary's source for ``pair``: the primary's own (``pair.source``) when the source's
    and target's train sizes differ by less than 10% of the target's, else the step-matched view
    ``source~target`` (:mod:`bench.data.views`: a stratified random subset of the source's train
    split of the target's train size, trained for the target's epochs, hence its steps)."""
    if abs(source_train - target_train) < MATCH_TOLERANCE * target_train:
        return pair.source
    return f"{pair.source}~{pair.target}"


def kappa(acc: float | np.ndarray | torch.Tensor, n_classes: int):
    """Chance-corrected accuracy ``kappa = (acc - 1/C) / (1 - 1/C)``: 0 at chance, 1 when perfect."""
    chance = 1.0 / n_classes
    return (acc - chance) / (1.0 - chance)


def budget_size(budget: str) -> int | None:
    """``"5"`` -> 5; ``"all"`` -> None. Raises ValueError for anything else."""
    if budget == ALL:
        return None
    n = int(budget)
    if n < 1:
        raise ValueError(f"budget must be >= 1 or 'all', got {budget!r}")
    return n


def draw_seed(seed: int, pair: str, budget: str, draw: int) -> np.random.SeedSequence:
    """The seed of one labelled draw: (method seed, pair, budget, draw), never the method."""
    return np.random.SeedSequence([int(seed), zlib.crc32(pair.encode()), zlib.crc32(budget.encode()), int(draw)])


def infeasible(y: torch.Tensor, n_classes: int, budget: str) -> str:
    """Why ``budget`` cannot be drawn from train labels ``y`` ('' when it can)."""
    n = budget_size(budget)
    if n is None:
        return ""
    counts = torch.bincount(y.cpu(), minlength=n_classes)
    short = [(c, int(k)) for c, k in enumerate(counts.tolist()) if k < n]
    if not short:
        return ""
    c, k = short[0]
    return f"{n} per class infeasible: class {c} has {k} train examples ({len(short)} classes short)"


def stratified_draw(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n`` examples of every class of ``y``, uniformly at random, sorted.

    A random permutation, stably sorted by label, keeps its first ``n`` of each class: the rank
    of an item within its class is its position minus the class's start (no per-sample loop)."""
    perm = rng.permutation(len(y))
    order = perm[np.argsort(y[perm], kind="stable")]
    labels = y[order]
    counts = np.bincount(labels)
    starts = np.cumsum(counts) - counts
    rank = np.arange(len(y)) - starts[labels]
    return np.sort(order[rank < n])


def draw_subsets(y: torch.Tensor, budget: str, draws: int, seed: int, pair: str) -> list[np.ndarray]:
    """The ``draws`` labelled subsets of one (seed, pair, budget): arrays of train indices.

    ``all`` is one subset, every train example; otherwise ``n`` per class (check
    :func:`infeasible` first), stratified at random."""
    y_np = y.cpu().numpy()
    n = budget_size(budget)
    if n is None:
        return [np.arange(len(y_np))]
    return [stratified_draw(y_np, n, np.random.default_rng(draw_seed(seed, pair, budget, d))) for d in range(draws)]


def checksum(subsets: list[np.ndarray]) -> float:
    """A fingerprint of a budget's labelled subsets (equal across methods by construction)."""
    return float(zlib.crc32(b"".join(np.asarray(s, dtype=np.int64).tobytes() for s in subsets)))
