"""The command line's value syntax, in one place: ``key=value`` tokens (:func:`key_values`), lists
(:func:`split_list`) and text to a field's type (:func:`coerce`). Every error is one
:class:`ConfigError` line naming the bad part, which the command line prints with exit code 2."""

from __future__ import annotations

import math
import types
import typing
from typing import Any

_LINE_BREAKS = {c: repr(chr(c))[1:-1] for c in (0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029)}


class ConfigError(ValueError):
    """Bad command-line input; the message is one line naming the bad part and the choices.

    Line breaks inside the message (a token may hold any character) are escaped."""

    def __init__(self, msg: object = "") -> None:
        super().__init__(str(msg).translate(_LINE_BREAKS))


def split_list(text: str) -> list[str]:
    """``[a,b]`` -> ['a', 'b']; ``a,b`` -> ['a', 'b']; a malformed bracket is an error."""
    t = text.strip()
    if t.startswith("[") != t.endswith("]"):
        raise ConfigError(f"malformed list '{text}' (write [a,b,c])")
    if t.startswith("["):
        t = t[1:-1]
    if "[" in t or "]" in t:
        raise ConfigError(f"malformed list '{text}' (write [a,b,c])")
    items = [s.strip() for s in t.split(",")] if t.strip() else []
    if any(not s for s in items):
        raise ConfigError(f"malformed list '{text}' (empty item)")
    return items


def _is_list_type(tp: Any) -> bool:
    return typing.get_origin(tp) in (list, tuple)


def coerce(key: str, text: str, tp: Any) -> Any:
    """Parse ``text`` as type ``tp`` (int, float, bool, str, list[...], tuple[...], X | None)."""
    if isinstance(tp, str):
        tp = eval(tp, vars(typing), {})  # noqa: S307 - dataclass annotations under PEP 563
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if text.lower() in ("none", "null"):
            return None
        if len(args) == 1:
            return coerce(key, text, args[0])
        for a in args:  # e.g. int | list[int]
            try:
                return coerce(key, text, a)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: cannot read '{text}' as {tp}")
    if _is_list_type(tp):
        (inner, *_) = typing.get_args(tp) or (str,)
        try:
            items = split_list(text)
        except ConfigError as e:  # name the key: "seeds: malformed list '[0,,1]' (empty item)"
            raise ConfigError(f"{key}: {e}") from None
        vals = [coerce(key, s, inner) for s in items]
        return tuple(vals) if origin is tuple else vals
    if tp is bool:
        low = text.lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        raise ConfigError(f"{key}: expected true or false, got '{text}'")
    if tp is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{key}: expected an integer, got '{text}'") from None
    if tp is float:
        try:
            v = float(text)
        except ValueError:
            raise ConfigError(f"{key}: expected a number, got '{text}'") from None
        if not math.isfinite(v):  # nan / inf pass every range check (nan < lo is False)
            raise ConfigError(f"{key}: expected a finite number, got '{text}'")
        return v
    if tp is str:
        if text.startswith("["):  # a name may end in a bracket: mnist5k[0-4]
            raise ConfigError(f"{key}: expected one value, got the list '{text}'")
        return text
    raise ConfigError(f"{key}: unsupported type {tp}")


def key_values(
    args: list[str], keys: tuple[str, ...] | None = None, cmd: str = "", positional: bool = False
) -> tuple[dict[str, str], list[str]]:
    """The one ``key=value`` splitter of the command line: tokens -> ({key: text}, positional tokens).
    An empty key, a key given twice, a key not in ``keys`` (when given) or, unless ``positional``, a
    token without ``=`` is one :class:`ConfigError` naming the bad part (``cmd`` prefixes it)."""
    kv: dict[str, str] = {}
    rest: list[str] = []
    pre = f"{cmd}: " if cmd else ""
    for tok in args:
        key, eq, text = tok.partition("=")
        if not eq and positional:
            rest.append(tok)
            continue
        key = key.strip()
        if not eq or not key:
            raise ConfigError(f"{pre}expected key=value, got '{tok}'" + (f" (keys: {', '.join(keys)})" if keys else ""))
        if keys is not None and key not in keys:
            raise ConfigError(f"{pre}unknown key '{key}' (keys: {', '.join(keys)})")
        if key in kv:
            raise ConfigError(f"{pre}'{key}' given twice")
        kv[key] = text
    return kv, rest
