"""P2 transfer: the source -> target pairs, the label budgets and the labelled draws (PROTOCOL.md §8 P2).

A pair names where the encoder is pretrained (``source``) and where it is probed (``target``);
the in-domain reference of a pair is the same method pretrained on the target's train inputs.
Pair ids carry no brackets or commas, so ``pairs=[mnist_digits,dsprites]`` reads on the command
line. A budget is ``n`` labelled target train examples per class, or ``all`` of them; draws are
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
    """Source -> target; ``embedded``: its data ship with the project (the primary's pairs)."""

    source: str
    target: str
    embedded: bool = True
    kind: str = "classes"  # "classes": kappa on the target's classes; "factors": dSprites ridge R^2


PAIRS: dict[str, Pair] = {
    "mnist_digits": Pair("mnist5k", "digits28"),  # new data: MNIST -> UCI digits resized to 28x28
    "mnist_lo_hi": Pair("mnist5k[0-4]", "mnist5k[5-9]"),  # unseen classes
    "digits_lo_hi": Pair("digits[0-4]", "digits[5-9]"),  # unseen classes
    "mnist_fashion": Pair("mnist", "fashion_mnist", embedded=False),
    "mnist_kmnist": Pair("mnist", "kmnist", embedded=False),
    "cifar10_svhn": Pair("cifar10", "svhn", embedded=False),
    "dsprites": Pair("dsprites", "dsprites", kind="factors"),  # source = target (supervised: on shape)
}
EMBEDDED = tuple(p for p, v in PAIRS.items() if v.embedded and v.kind == "classes")
FULL = tuple(p for p, v in PAIRS.items() if not v.embedded)
PRIMARY_BUDGETS = ("1", "5", "10")  # the primary and co-primary average over these
ALL = "all"


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


def random_subsets(n_train: int, budget: str, draws: int, seed: int, pair: str) -> list[np.ndarray]:
    """Regression budgets (dSprites): ``budget`` train indices in total, at random without replacement."""
    n = budget_size(budget)
    if n is None or n >= n_train:
        return [np.arange(n_train)]
    return [np.sort(np.random.default_rng(draw_seed(seed, pair, budget, d)).choice(n_train, n, replace=False))
            for d in range(draws)]


def checksum(subsets: list[np.ndarray]) -> float:
    """A fingerprint of a budget's labelled subsets (equal across methods by construction)."""
    return float(zlib.crc32(b"".join(np.asarray(s, dtype=np.int64).tobytes() for s in subsets)))
