"""How much training a proxy gets: the one definition of the budget and its validation.

A study file's `proxy:` section is `ProxyBudget.from_dict(section, source)` (errors read
`studies/x.yaml: proxy.KEY: message`); code builds `ProxyBudget(...)` directly (errors name the
field alone). Both go through `_checked`, so a value is accepted or refused the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from space import checks


@dataclass(frozen=True)
class ProxyBudget:
    """How much training a proxy gets; training stops at whichever of epochs/steps/seconds comes first."""

    epochs: int = 10
    max_steps: int | None = None
    max_seconds: float | None = None
    input_size: int | None = None  # None: the resolution the data was prepared at
    subset: int | None = None  # train on this many samples (seeded choice); None: all
    batch_size: int = 16
    lr: float = 2.5e-3  # best of 1e-3 / 2.5e-3 on LSPET proxies (docs/training.md)
    sigma: float | None = None  # heatmap sigma in output pixels; None: default_sigma(out_size)
    seed: int = 0
    augment: bool = True

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(
                self, f.name, _checked(f.name, getattr(self, f.name), "<budget>", "")
            )

    @classmethod
    def from_dict(cls, d: Any, source: str = "<budget>", prefix: str = "proxy.") -> ProxyBudget:
        """The budget a mapping of its fields gives; unknown keys and bad values are ConfigErrors."""
        checks.mapping(d, source, prefix.rstrip("."), "a mapping of ProxyBudget fields")
        checks.no_unknown(d, _KINDS, source, prefix)
        return cls(**{key: _checked(key, value, source, prefix) for key, value in d.items()})

    def to_dict(self) -> dict:
        return asdict(self)


# field -> (kind, may be zero); None is allowed for every field but epochs, batch_size, lr, seed, augment
_KINDS = {
    "epochs": (int, False),
    "max_steps": (int, False),
    "max_seconds": (float, False),
    "input_size": (int, False),
    "subset": (int, False),
    "batch_size": (int, False),
    "lr": (float, False),
    "sigma": (float, False),
    "seed": (int, True),
    "augment": (bool, False),
}
_REQUIRED = ("epochs", "batch_size", "lr", "seed", "augment")


def _checked(key: str, value: Any, source: str, prefix: str) -> Any:
    kind, zero_ok = _KINDS[key]
    field = f"{prefix}{key}"
    if value is None and key not in _REQUIRED:
        return None
    if kind is bool:
        return checks.boolean(value, source, field, show=True)
    if kind is int:
        return checks.whole(
            value,
            source,
            field,
            lo=0 if zero_ok else 1,
            what="a whole number >= 0" if zero_ok else "a positive whole number",
        )
    return checks.number(value, source, field, what="a positive number", ok=lambda x: x > 0)
