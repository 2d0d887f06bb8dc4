"""The small value checkers every config reader uses (study file sections, the proxy budget).

Each returns the value it accepts, or raises a one-line `ConfigError` naming the source and field.
Messages read "must be WHAT (got VALUE)", so `what` is the only thing a caller words itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from typing import Any

from space.errors import ConfigError


def whole(v: Any, source: str, field: str, lo: int | None = None, what: str | None = None) -> int:
    """An int (not a bool) >= lo. Without `what`: "must be a whole number" / "must be at least LO"."""
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(
            f"must be {what or 'a whole number'} (got {v!r})", source=source, field=field
        )
    if lo is not None and v < lo:
        raise ConfigError(
            f"must be {what} (got {v})" if what else f"must be at least {lo} (got {v})",
            source=source,
            field=field,
        )
    return v


def number(
    v: Any,
    source: str,
    field: str,
    what: str = "a number",
    ok: Callable[[float], bool] | None = None,
) -> int | float:
    """A finite int or float for which `ok` holds; a numeric string is read as the number it spells.

    YAML 1.1 (PyYAML) reads `1e-3` as the string '1e-3' (its floats need a dot: 1.0e-3), so such a
    string is taken as the number the user meant. Ints and floats are returned as given.
    """
    value = v
    if isinstance(v, str):
        try:
            value = float(v)
        except ValueError:
            raise ConfigError(f"must be {what} (got {v!r})", source=source, field=field) from None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or (ok is not None and not ok(value))
    ):
        raise ConfigError(f"must be {what} (got {v!r})", source=source, field=field)
    return value


def boolean(v: Any, source: str, field: str, show: bool = False) -> bool:
    """true or false; `show` adds the value given to the message."""
    if not isinstance(v, bool):
        raise ConfigError(
            "must be true or false" + (f" (got {v!r})" if show else ""), source=source, field=field
        )
    return v


def text(v: Any, source: str, field: str, what: str, optional: bool = False) -> str | None:
    """A string (non-blank unless `optional`, which also admits None)."""
    if optional and v is None:
        return None
    if not isinstance(v, str) or (not optional and not v.strip()):
        raise ConfigError(f"must be {what}", source=source, field=field)
    return v


def one_of(v: Any, choices: Collection[str], source: str, field: str) -> str:
    if v not in choices:
        raise ConfigError(
            f"must be {' or '.join(map(str, choices))} (got {v!r})", source=source, field=field
        )
    return v


def mapping(v: Any, source: str, field: str, what: str = "a mapping") -> dict:
    if not isinstance(v, dict):
        raise ConfigError(f"must be {what}", source=source, field=field)
    return v


def no_unknown(d: dict, allowed: Collection[str], source: str, prefix: str) -> None:
    """ConfigError naming the first key of `d` not in `allowed`; a key that is not a plain word
    (empty, null, a number) is shown quoted, so the message always names it."""
    for key in d:
        if key not in allowed:
            shown = key if isinstance(key, str) and key.strip() == key and key else repr(key)
            raise ConfigError(
                f"unknown key; allowed: {', '.join(sorted(allowed))}",
                source=source,
                field=f"{prefix}{shown}",
            )
