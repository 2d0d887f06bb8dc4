"""String registries for every design axis (timm `create_attn` style).

Adding a value to an axis = one class (or factory) + one `@REGISTRY.register("name")` line + one test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any


class Registry:
    """Maps a name to a module class or factory; `create(name, ...)` builds it."""

    def __init__(self, axis: str):
        self.axis = axis
        self._entries: dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def add(factory: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._entries:
                raise KeyError(f"{self.axis}: {name!r} registered twice")
            self._entries[name] = factory
            return factory

        return add

    def unregister(self, name: str) -> None:
        """Remove an entry (for tests that register a throw-away value)."""
        self.get(name)
        del self._entries[name]

    def get(self, name: str) -> Callable[..., Any]:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(
                f"unknown {self.axis} {name!r} (choose from {', '.join(self.names())})"
            ) from None

    def create(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self.get(name)(*args, **kwargs)

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.axis!r}, {self.names()})"


GATES = Registry("gate")
BLOCKS = Registry("block")
DOWNSAMPLE = Registry("down")
UPSAMPLE = Registry("up")
FUSIONS = Registry("fusion")
SKIPS = Registry("skip")
