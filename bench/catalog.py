"""Imports every registered component once: the subject, the baselines, the predictions.

A prediction is a package ``predictions/<name>/`` (an open question: ``questions/<name>/``, the same
contract) whose ``__init__`` imports nothing; its protocol
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


ROOTS = ("predictions", "questions")  # the packages whose sub-packages are predictions (and questions)


def _prediction_names() -> list[tuple[str, str, bool]]:
    """``(root, name, is_package)`` of every prediction under ``predictions/`` and question under
    ``questions/``, sorted by root, then name."""
    found = []
    for root in ROOTS:
        pkg = importlib.import_module(root)
        found += [
            (root, i.name, i.ispkg)
            for i in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name)
            if not i.name.startswith("_")
        ]
    return found


def _import_part(root: str, name: str, part: str) -> bool:
    """Import ``<root>.<name>.<part>``; False when the prediction has no such module."""
    try:
        importlib.import_module(f"{root}.{name}.{part}")
    except ModuleNotFoundError as e:
        if e.name != f"{root}.{name}.{part}":
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
    for root, name, is_package in _prediction_names():
        if not is_package:
            importlib.import_module(f"{root}.{name}")
            continue
        _import_part(root, name, "protocol")
        _import_part(root, name, "view")
    _loaded = True


def load_view(name: str) -> None:
    """Import prediction (or question) ``name``'s view (``<root>/<name>/view.py``, else the one module
    ``<root>/<name>.py``); a name that is neither imports every view, so that the registry's error lists
    them all."""
    for root in ROOTS:
        try:
            if _import_part(root, name, "view"):
                return
            importlib.import_module(f"{root}.{name}")  # a one-module prediction
            return
        except ModuleNotFoundError as e:
            if e.name != f"{root}.{name}":
                raise
    load_views()


def load_views() -> None:
    """Import every prediction's and question's view (``<root>/<name>/view.py``): what a report needs, no
    training code and no torch."""
    for root, name, is_package in _prediction_names():
        if not is_package or not _import_part(root, name, "view"):
            importlib.import_module(f"{root}.{name}")  # a one-module prediction
