"""What a result was made with: the one code hash and the one list of library versions.

Both caches key on them (:mod:`bench.engine.jobs` for encoders, :mod:`bench.engine.measure` for
measurements) and every run manifest records them (:mod:`bench.results`). No torch here: the
versions come from the installed distributions' metadata, so a report can read them cheaply.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import platform
import sys
from collections.abc import Iterable
from importlib import metadata
from types import ModuleType

PROJECT = ("bench", "predictions", "questions", "baselines")  # the packages whose source can enter a hash
# every direct dependency whose version a manifest records (distribution names)
LIBRARIES = (
    "torch",
    "torchvision",
    "timm",
    "numpy",
    "scipy",
    "pandas",
    "scikit-learn",
    "mlxtend",
    "matplotlib",
    "pyarrow",
)


def module_source(module: ModuleType) -> str:
    """A module's source text (its name when it has none, e.g. exec'd in a test)."""
    try:
        return inspect.getsource(module)
    except (OSError, TypeError):
        return module.__name__


def code_hash(roots: Iterable[ModuleType | str], exclude: Iterable[str] = (), length: int = 16) -> str:
    """Hash of the source of ``roots`` and of every project module they reach through their
    module-level names, transitively (a class or function counts for the module that defines it).

    Modules named in ``exclude`` are neither hashed nor walked. Packages are walked past, never
    hashed: a package's names are whatever submodules this process happened to import, so two
    processes running the same code would disagree. Reads the source through
    :func:`module_source` at call time (tests plant edits there)."""
    skip = frozenset(exclude)
    todo = [sys.modules[r] if isinstance(r, str) else r for r in roots]
    seen: dict[str, ModuleType] = {}
    while todo:
        mod = todo.pop()
        if mod.__name__ in seen:
            continue
        seen[mod.__name__] = mod
        for obj in vars(mod).values():
            used = obj if inspect.ismodule(obj) else inspect.getmodule(obj)
            if (
                used is not None
                and used.__name__.split(".")[0] in PROJECT
                and used.__name__ not in seen
                and not hasattr(used, "__path__")
                and used.__name__ not in skip
            ):
                todo.append(used)
    srcs = [module_source(seen[n]) for n in sorted(seen)]
    return hashlib.sha256("\n".join(srcs).encode()).hexdigest()[:length]


def library_versions(libraries: Iterable[str] = LIBRARIES) -> dict[str, str]:
    """``{"python": ..., distribution: version}`` (``"absent"`` when not installed)."""
    out = {"python": platform.python_version()}
    for lib in libraries:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = "absent"
    return out


def usable_cores() -> int:
    """The cores this process may run on (affinity-aware): what ``workers=auto`` counts."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
