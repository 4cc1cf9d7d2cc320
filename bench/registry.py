"""A small name -> object registry with one decorator and wildcard listing.

Modelled on timm's ``register_model`` / ``list_models``: registering a name twice is an
error, names are listed sorted, and ``list(pattern)`` accepts shell wildcards.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised for a name that is not registered; the message lists the valid choices."""

    def __init__(self, kind: str, name: str, choices: list[str]):
        self.kind, self.name, self.choices = kind, name, choices
        shown = "".join(c if len(f"a{c}b".splitlines()) == 1 else repr(c)[1:-1] for c in str(name))  # one line
        super().__init__(f"unknown {kind} '{shown}' (choices: {', '.join(choices)})")

    def __str__(self) -> str:
        return self.args[0]


class Registry(Generic[T]):
    """Maps names to registered objects (classes or loader functions)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator: ``@REG.register()`` uses the object's ``name`` attribute or ``__name__``."""

        def deco(obj: T) -> T:
            key = name or getattr(obj, "name", None) or obj.__name__  # type: ignore[attr-defined]
            if key in self._items:
                raise ValueError(f"{self.kind} '{key}' is registered twice")
            self._items[key] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self.names()) from None

    def names(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._items if fnmatch.fnmatchcase(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
