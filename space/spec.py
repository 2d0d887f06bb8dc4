"""ArchSpec: a frozen, validated description of one pose network, with exact YAML round-trip."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml

from space import layers  # noqa: F401  (fills the registries)
from space.errors import ConfigError
from space.files import read_yaml_file
from space.registry import BLOCKS, DOWNSAMPLE, FUSIONS, GATES, SKIPS, UPSAMPLE, Registry

VERSION = 1
PRESET_DIR = Path(__file__).resolve().parent / "presets"
DEFAULT_SPLIT = (Fraction(1, 2), Fraction(1, 4), Fraction(1, 4))
DEFAULT_GATE_INIT = 1.0  # scalar/channel gates start as a plain residual (alpha = 1)

RANGES = {
    "stacks": (1, 8),
    "depth": (2, 5),
    "width": (4, 2048),
    "joints": (1, 256),
    "input_size": (16, 4096),
}
CHOICES: dict[str, Registry] = {
    "block": BLOCKS,
    "gate": GATES,
    "down": DOWNSAMPLE,
    "up": UPSAMPLE,
    "fusion": FUSIONS,
    "skip": SKIPS,
}


def size_multiple(depth: int) -> int:
    """Input sizes must be multiples of this: the stem halves twice (/4), then each of `depth` levels pools 2x."""
    return 4 * 2**depth


def _int(key: str, value: Any) -> int:
    # numbers.Integral admits numpy integers (values read back from pandas/storage); bool is not a count
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"expected an integer, got {value!r}", field=key)
    value = int(value)
    lo, hi = RANGES[key]
    if not lo <= value <= hi:
        raise ConfigError(f"{value} is out of range {lo}..{hi}", field=key)
    return value


def _choice(key: str, value: Any) -> str:
    registry = CHOICES[key]
    if not isinstance(value, str) or value not in registry:
        raise ConfigError(
            f"unknown value {value!r} (choose from {', '.join(registry.names())})", field=key
        )
    return value


def parse_fraction(value: Any, key: str = "branch_split") -> Fraction:
    """1/2, "1/2", 0.5 -> Fraction(1, 2); floats are snapped to denominators <= 64 (1/3 ~ 0.3333)."""
    if isinstance(value, bool):
        raise ConfigError(f"expected a fraction, got {value!r}", field=key)
    try:
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError
            frac = Fraction(value).limit_denominator(64)
        elif isinstance(value, (int, str, Fraction)):
            frac = Fraction(value.strip() if isinstance(value, str) else value)
        else:
            raise ValueError
    except (ValueError, ZeroDivisionError):
        raise ConfigError(
            f"expected a fraction like 1/2 or 0.5, got {value!r}", field=key
        ) from None
    if not 0 < frac < 1:
        raise ConfigError(f"each part must lie strictly between 0 and 1, got {frac}", field=key)
    return frac


def parse_split(value: Any, key: str = "branch_split") -> tuple[Fraction, ...]:
    """A list of fractions, or one "1/2,1/4,1/4" string; 2..4 parts summing to exactly 1."""
    if isinstance(value, str):
        value = [v for v in value.split(",")]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"expected a list of fractions, got {value!r}", field=key)
    split = tuple(parse_fraction(v, key) for v in value)
    if not 2 <= len(split) <= 4:
        raise ConfigError(f"needs 2 to 4 parts, got {len(split)}", field=key)
    if sum(split) != 1:
        raise ConfigError(
            f"parts {', '.join(map(str, split))} sum to {sum(split)}, not 1", field=key
        )
    return split


def split_key(split: tuple[Fraction, ...]) -> str:
    return ",".join(str(f) for f in split)


def _gate_init(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ConfigError(f"expected a finite number, got {value!r}", field="gate_init")
    return float(value)


def takes_split(block: str) -> bool:
    """Whether the registered block reads branch_split (its class's `takes_split`)."""
    return BLOCKS.get(block).takes_split


def takes_init(gate: str) -> bool:
    """Whether the registered gate has a learnable initial alpha (its class's `takes_init`)."""
    return GATES.get(gate).takes_init


def _is_registered(registry: Registry, name: Any) -> bool:
    return isinstance(name, str) and name in registry


# one validator per field: the search space reuses them to check each choice on its own
FIELD_VALIDATORS = {
    "stacks": lambda v: _int("stacks", v),
    "width": lambda v: _int("width", v),
    "depth": lambda v: _int("depth", v),
    "joints": lambda v: _int("joints", v),
    "input_size": lambda v: _int("input_size", v),
    "intermediate_supervision": None,  # bool, checked below
    "block": lambda v: _choice("block", v),
    "branch_split": lambda v: None if v is None else parse_split(v),
    "gate": lambda v: _choice("gate", v),
    "gate_init": lambda v: None if v is None else _gate_init(v),
    "down": lambda v: _choice("down", v),
    "up": lambda v: _choice("up", v),
    "fusion": lambda v: _choice("fusion", v),
    "skip": lambda v: _choice("skip", v),
}


def validate_field(key: str, value: Any) -> Any:
    """Check and normalise one field's value on its own; raises ConfigError naming `key`."""
    if key == "intermediate_supervision":
        if not isinstance(value, bool):
            raise ConfigError(f"expected true or false, got {value!r}", field=key)
        return value
    if key not in FIELD_VALIDATORS:
        raise ConfigError(f"unknown key (allowed: {', '.join(FIELD_VALIDATORS)})", field=key)
    return FIELD_VALIDATORS[key](value)


@dataclass(frozen=True)
class ArchSpec:
    """One network. Defaults are the paper's model (bulat-sgsc) at 14 LSP joints.

    `branch_split` is None for blocks that take no split (`bottleneck`: its class's `takes_split`);
    `gate_init` is None for gates without a learnable initial alpha (`takes_init`: only `scalar` and
    `channel` take one, default 1.0).
    """

    version: int = VERSION
    stacks: int = 4
    width: int = 144
    depth: int = 4
    joints: int = 14
    input_size: int = 256
    intermediate_supervision: bool = True
    block: str = "multibranch"
    branch_split: tuple[Fraction, ...] | None = DEFAULT_SPLIT
    gate: str = "channel"
    gate_init: float | None = DEFAULT_GATE_INIT
    down: str = "maxpool"
    up: str = "nearest"
    fusion: str = "concat_conv3x3"
    skip: str = "identity"
    _id: str = field(default="", init=False, repr=False, compare=False)

    def _check_split(self) -> None:
        if not takes_split(self.block):
            if self.branch_split is not None:
                raise ConfigError(
                    f"must be null for {self.block} blocks (the split is for "
                    f"{', '.join(b for b in BLOCKS if takes_split(b))})",
                    field="branch_split",
                )
        elif self.branch_split is None:
            raise ConfigError(f"required for {self.block} blocks", field="branch_split")
        else:
            # every split block outputs `width` channels, so only width must split cleanly
            bad = [f for f in self.branch_split if (self.width * f).denominator != 1]
            if bad:
                raise ConfigError(
                    f"width {self.width} * {bad[0]} = {float(self.width * bad[0]):g} is not a "
                    f"whole number of channels; use a width divisible by {bad[0].denominator}",
                    field="branch_split",
                )

    def _check_gate_init(self) -> None:
        if takes_init(self.gate) and self.gate_init is None:
            object.__setattr__(self, "gate_init", DEFAULT_GATE_INIT)
        elif not takes_init(self.gate) and self.gate_init is not None:
            raise ConfigError(
                f"the {self.gate!r} gate has no initial alpha; leave gate_init out or null",
                field="gate_init",
            )

    def __post_init__(self) -> None:
        if self.version != VERSION:
            raise ConfigError(
                f"unsupported version {self.version!r} (this code reads version {VERSION})",
                field="version",
            )
        for key in FIELD_VALIDATORS:
            object.__setattr__(self, key, validate_field(key, getattr(self, key)))

        self._check_split()
        self._check_gate_init()

        step = size_multiple(self.depth)
        if self.input_size % step:
            raise ConfigError(
                f"{self.input_size} is not divisible by 4 * 2**depth = {step}", field="input_size"
            )
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        object.__setattr__(self, "_id", hashlib.sha1(canonical.encode()).hexdigest()[:12])

    @property
    def arch_id(self) -> str:
        """sha1 of the canonical (sorted-key JSON) form, first 12 hex digits."""
        return self._id

    @property
    def out_size(self) -> int:
        return self.input_size // 4

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        if self.branch_split is not None:
            d["branch_split"] = [str(f) for f in self.branch_split]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str | None = None) -> ArchSpec:
        if not isinstance(d, Mapping):
            raise ConfigError(
                f"expected a mapping of arch fields, got {type(d).__name__}", source=source
            )
        allowed = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = [k for k in d if k not in allowed]
        if unknown:
            raise ConfigError(
                f"unknown key (allowed: {', '.join(sorted(allowed))})",
                source=source,
                field=str(unknown[0]),
            )
        d = dict(d)
        # a missing split/init means "the default for this block/gate", not the dataclass default
        if _is_registered(BLOCKS, d.get("block", cls.block)) and not takes_split(
            d.get("block", cls.block)
        ):
            d.setdefault("branch_split", None)
        if _is_registered(GATES, d.get("gate", cls.gate)) and not takes_init(
            d.get("gate", cls.gate)
        ):
            d.setdefault("gate_init", None)
        try:
            return cls(**d)
        except ConfigError as err:
            raise ConfigError(err.message, source=source, field=err.field) from None

    def replace(self, **changes: Any) -> ArchSpec:
        """A validated copy with some fields changed (to_dict + from_dict, so defaults adapt)."""
        d = self.to_dict()
        if changes.get("block", self.block) != self.block and "branch_split" not in changes:
            d.pop("branch_split")
        if changes.get("gate", self.gate) != self.gate and "gate_init" not in changes:
            d.pop("gate_init")
        d.update(changes)
        return ArchSpec.from_dict(d)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_arch(name_or_path: str | Path) -> ArchSpec:
    """A preset name (`bulat-sgsc`), a spec YAML, or an exported YAML with a top-level `arch:` mapping."""
    text = str(name_or_path)
    path = Path(text)
    if not path.is_file() and text in preset_names():
        path = PRESET_DIR / f"{text}.yaml"
    elif not os.path.lexists(path):
        raise ConfigError(
            f"no such file or preset (presets: {', '.join(preset_names())})",
            source=text,
            field="arch",
        )
    data = read_yaml_file(path, what="an arch YAML file")  # a folder, binary, huge: one line
    if isinstance(data, Mapping) and "arch" in data:
        data = data["arch"]
    return ArchSpec.from_dict(data, source=str(path))


def dump_arch(spec: ArchSpec, path: str | Path) -> None:
    Path(path).write_text(spec.to_yaml())
