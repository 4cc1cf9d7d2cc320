"""Imports every registered component once: the subject, the baselines, the predictions.

A prediction is a package ``predictions/<name>/`` whose ``__init__`` imports nothing; its protocol
(``protocol.py``, which may import torch) and its view (``view.py``, torch-free: what a report reads)
are imported here by name. :func:`load_all` registers both (``bench run``, ``bench plan``, ``bench list``);
:func:`load_views` and :func:`load_view` register views alone (``bench report``: no torch)."""

from __future__ import annotations

import importlib
import pkgutil

_loaded = False


def _import_package(name: str) -> None:
    pkg = importlib.import_module(name)
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{name}.{info.name}")


def _prediction_names() -> list[tuple[str, bool]]:
    """``(name, is_package)`` of every prediction under ``predictions/``, sorted by name."""
    pkg = importlib.import_module("predictions")
    return [
        (i.name, i.ispkg)
        for i in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name)
        if not i.name.startswith("_")
    ]


def _import_part(name: str, part: str) -> bool:
    """Import ``predictions.<name>.<part>``; False when the prediction has no such module."""
    try:
        importlib.import_module(f"predictions.{name}.{part}")
    except ModuleNotFoundError as e:
        if e.name != f"predictions.{name}.{part}":
            raise
        return False
    return True


def load_all() -> None:
    """Import ``bench.train.subject``, every module of ``baselines/``, and every prediction's
    ``protocol`` and ``view`` (a one-module prediction ``predictions/<name>.py``: that module)."""
    global _loaded
    if _loaded:
        return
    importlib.import_module("bench.train.subject")
    _import_package("baselines")
    for name, is_package in _prediction_names():
        if not is_package:
            importlib.import_module(f"predictions.{name}")
            continue
        _import_part(name, "protocol")
        _import_part(name, "view")
    _loaded = True


def load_view(name: str) -> None:
    """Import prediction ``name``'s view (``predictions/<name>/view.py``, else the one module
    ``predictions/<name>.py``); a name that is no prediction imports every view, so that the registry's
    error lists them all."""
    try:
        if _import_part(name, "view"):
            return
        importlib.import_module(f"predictions.{name}")  # a one-module prediction
    except ModuleNotFoundError as e:
        if e.name != f"predictions.{name}":
            raise
        load_views()


def load_views() -> None:
    """Import every prediction's view (``predictions/<name>/view.py``): what a report needs, no
    training code and no torch."""
    for name, is_package in _prediction_names():
        if not is_package or not _import_part(name, "view"):
            importlib.import_module(f"predictions.{name}")  # a one-module prediction
