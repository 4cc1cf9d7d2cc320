"""Imports every registered component once: the subject, the baselines, the predictions."""

from __future__ import annotations

import importlib
import pkgutil

_loaded = False


def _import_package(name: str) -> None:
    pkg = importlib.import_module(name)
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{name}.{info.name}")


def load_all() -> None:
    """Import ``bench.train.subject`` and every module of ``baselines/`` and ``predictions/``."""
    global _loaded
    if _loaded:
        return
    importlib.import_module("bench.train.subject")
    _import_package("baselines")
    _import_package("predictions")
    _loaded = True


def load_views() -> None:
    """Import every prediction's view (``predictions/<name>/view.py``): what a report needs, no training code."""
    pkg = importlib.import_module("predictions")
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.ispkg and not info.name.startswith("_"):
            try:
                importlib.import_module(f"predictions.{info.name}.view")
            except ModuleNotFoundError as e:
                if e.name != f"predictions.{info.name}.view":
                    raise
                importlib.import_module(f"predictions.{info.name}")  # a one-module prediction
