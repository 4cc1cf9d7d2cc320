"""Nested pretraining subsets (docs/protocol.md §11.0): the encoder trains on a stratified prefix of
train while the probe keeps every train label.

``data.pretrain_n=N`` on a dataset other than ``mnist1d`` (whose loader draws its own pool) cuts the
train split the encoder reads to the first N rows of one stratified order of train, drawn from
``split_seed`` alone, so the subsets are nested across N (``mnist5k`` at N in 437, 875, 1,750,
3,500: each set holds the smaller ones) and every one is stratified. The full train split becomes
:attr:`bench.data.Dataset.probe_train`, so only the encoder's data varies with N; val and test are
unchanged. The kept rows stay in train's order, so N = all of train is the dataset unchanged.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from bench.data.core import Dataset, Split

_TAG = 0x9E7  # this module's entry in the (split_seed, tag) seed of the order


def stratified_order(y: np.ndarray, seed: int | np.random.SeedSequence) -> np.ndarray:
    """An order of ``range(len(y))`` whose every prefix is stratified by class.

    Each class's rows are shuffled and the r-th of a class of n_c rows gets the quantile
    (r + 1/2) / n_c; rows are ordered by quantile, ties (equal-sized classes) broken at random. A
    prefix of length N then holds within one row of N n_c / n of every class (the rule of
    :func:`bench.data.stratified_split`, whose cuts are prefixes of such an order). Vectorised.

    Args:
        y: (n,) class labels (any integers; a constant for unlabelled data gives a random order).
        seed: fixes the shuffles and the tie-breaks.
    Returns:
        (n,) int64, a permutation of ``range(n)``.
    """
    y = np.asarray(y)
    n = len(y)
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(n)
    grouped = shuffled[np.argsort(y[shuffled], kind="stable")]  # by class, each class in a random order
    _, start, inverse, count = np.unique(y[grouped], return_index=True, return_inverse=True, return_counts=True)
    quantile = (np.arange(n) - start[inverse] + 0.5) / count[inverse]
    return grouped[np.lexsort((rng.random(n), quantile))].astype(np.int64)


def pretrain_subset(ds: Dataset, n: int, split_seed: int) -> Dataset:
    """``ds`` with the encoder's train cut to the first ``n`` rows of
    ``stratified_order(train labels, (split_seed, tag))`` (kept in train's order) and the full train
    split as ``probe`` (:attr:`Dataset.probe_train`); val and test unchanged. ``n`` = all of train
    returns ``ds`` itself. The order depends on ``split_seed`` only, never on ``n``: the subsets of
    one split seed are nested.

    Raises:
        ValueError: ``n`` is not in 1..len(train) (a subset cannot grow).
    """
    t = ds.train
    total = len(t.x)
    if not 1 <= n <= total:
        raise ValueError(f"dataset: pretrain_n={n} needs 1..{total}, the train rows of '{ds.name}'")
    if n == total:
        return ds
    y = t.y.cpu().numpy() if t.y is not None else np.zeros(total, dtype=np.int64)
    keep = np.sort(stratified_order(y, np.random.SeedSequence([int(split_seed), _TAG]))[:n])
    idx = torch.from_numpy(keep).to(t.x.device)
    train = Split(
        x=t.x[idx].contiguous(),
        y=None if t.y is None else t.y[idx].contiguous(),
        factors=None if t.factors is None else t.factors[idx].contiguous(),
    )
    return dataclasses.replace(
        ds,
        train=train,
        probe=ds.probe_train,
        description=f"{ds.description} (encoder's train: a stratified prefix of {n} of {total})",
    )
