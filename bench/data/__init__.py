"""Datasets of the bench: embedded (no network) and torchvision-backed, as in-memory tensors.

Every loader is registered in :data:`DATASETS` and returns a :class:`Dataset` of CPU tensors
with fixed train / val / test splits. Inputs are flattened ``float32`` (N, D), labels ``int64``.
Splits and generated data depend only on ``DataConfig.split_seed`` (never on a method seed);
every preprocessing statistic is fit on the train split only. :func:`load_dataset` memoises
each (name, config) in-process, so treat the returned tensors as read-only.
"""

from __future__ import annotations

import dataclasses

import torch

from bench.data import embedded, fullsize, mnist1d  # noqa: F401  (they register their loaders)
from bench.data.core import (
    _CACHE,
    DATASETS,
    OWN_PRETRAIN,
    PROVIDES,
    DataConfig,
    DataNotFoundError,
    Dataset,
    Split,
    content_hash,
    stratified_split,
)
from bench.data.subsets import pretrain_subset
from bench.data.views import budget_base, class_subset, matched_subset, parse_matched, parse_view

__all__ = [
    "DATASETS",
    "DataConfig",
    "DataNotFoundError",
    "Dataset",
    "PROVIDES",
    "Split",
    "base_name",
    "canonical_config",
    "content_hash",
    "load_dataset",
    "provides",
    "stratified_split",
]


def base_name(name: str) -> str:
    """The registered dataset a name takes its budget (epochs) and provisions from: the base of a
    class-subset view, the budget's base of a step-matched view (:mod:`bench.data.views`)."""
    return budget_base(name)


def provides(name: str) -> set[str]:
    """What ``name`` provides beyond inputs (a view provides what its base does)."""
    return PROVIDES.get(base_name(name), set())


def load_dataset(
    name: str,
    cfg: DataConfig = DataConfig(),  # noqa: B008 (frozen: a shared default is safe)
    device: torch.device | str = "cpu",
) -> Dataset:
    """Load a registered dataset, memoised per ``(name, cfg)``, and move it to ``device``.

    ``name`` may be a class-subset view ``base[classes]`` (:func:`parse_view`): the base's own
    train / val / test splits restricted to those classes, labels renumbered 0..C-1 in
    increasing order (``mnist5k[5-9]`` maps 5 -> 0, ..., 9 -> 4), or a step-matched view
    ``source~budget`` (``source``'s train split cut to ``budget``'s size): :mod:`bench.data.views`.
    ``cfg.pretrain_n`` sets the encoder's train apart from the probe's (:attr:`Dataset.probe_train`):
    ``mnist1d`` reads it itself (its pool's first N draws); any other dataset's train is cut to a
    stratified prefix of N rows, the probe keeping all of train (:mod:`bench.data.subsets`).

    Raises:
        UnknownNameError: ``name`` is not registered (the message lists the choices).
        ValueError: a malformed view, a view naming classes its base does not have, or a
            ``pretrain_n`` larger than the train split (or mnist1d's pool).
        DataNotFoundError: a torchvision dataset is absent under ``cfg.root``.
    """
    matched = parse_matched(name)
    base, classes = parse_view(matched[0] if matched else name)
    loader = DATASETS.get(base)
    key = (name, cfg)
    if key not in _CACHE:
        if matched:
            n_train = len(load_dataset(matched[1], cfg).train.x)
            _CACHE[key] = matched_subset(load_dataset(matched[0], cfg), n_train, cfg.split_seed, name)
        elif classes is None and cfg.pretrain_n is not None and base not in OWN_PRETRAIN:
            whole = load_dataset(name, dataclasses.replace(cfg, pretrain_n=None))
            _CACHE[key] = pretrain_subset(whole, cfg.pretrain_n, cfg.split_seed)
        elif classes is None:
            _CACHE[key] = loader(cfg)
        else:
            _CACHE[key] = class_subset(load_dataset(base, cfg), classes, name)
    return _CACHE[key].to(device)


def canonical_config(name: str, cfg: DataConfig) -> DataConfig:
    """``cfg`` with a ``pretrain_n`` that names the whole default training set of ``name`` set to none.

    ``mnist1d`` at ``pretrain_n=16384`` holds the same data as at its default, and a nested prefix of all of
    ``mnist5k``'s train rows is that train set: one set of data gets one cache key (the default's). A class or
    step-matched view keeps its ``pretrain_n`` (:func:`load_dataset` reads it only on a plain dataset)."""
    if cfg.pretrain_n is None or parse_matched(name) or parse_view(name)[1] is not None:
        return cfg
    default = dataclasses.replace(cfg, pretrain_n=None)
    return default if len(load_dataset(name, default).train.x) == cfg.pretrain_n else cfg
