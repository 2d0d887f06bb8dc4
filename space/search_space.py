"""SearchSpace: which values each ArchSpec axis may take, sampled define-by-run with Optuna.

A study file's `space:` mapping gives, per ArchSpec field, either one fixed value or a list of
choices. `branch_split` is itself a list, so its choices are a list of splits
(`[[1/2, 1/4, 1/4], [1/3, 1/3, 1/3]]` or `["1/2,1/4,1/4", "1/3,1/3,1/3"]`); a flat list of
fractions is one fixed split. Fields left out keep the ArchSpec default.

Conditional axes: `branch_split` is only sampled for blocks that take a split (`takes_split`:
`multibranch`), `gate_init` only for gates with a learnable initial alpha (`takes_init`: `scalar`,
`channel`).

Infeasible combinations (a width that the sampled split does not divide, an input size that
the sampled depth does not divide) make `sample` raise ConfigError from ArchSpec; the search
records the trial as failed with that one-line reason. `is_valid(values)` checks a combination
without raising, and `grid()` lists only the valid ones.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from space.errors import ConfigError
from space.spec import ArchSpec, parse_split, split_key, takes_init, takes_split, validate_field

# sampling order: conditions (block, gate) before the axes they control
AXES = (
    "stacks",
    "width",
    "depth",
    "joints",
    "input_size",
    "intermediate_supervision",
    "block",
    "branch_split",
    "gate",
    "gate_init",
    "down",
    "up",
    "fusion",
    "skip",
)
GRID_PARAM = "grid_index"


def _split_choices(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [value]
    if (
        isinstance(value, (list, tuple))
        and value
        and all(isinstance(v, (list, tuple)) or (isinstance(v, str) and "," in v) for v in value)
    ):
        return list(value)
    return [value]


def _to_plain(key: str, value: Any) -> Any:
    return split_key(value) if key == "branch_split" and value is not None else value


@dataclass(frozen=True)
class SearchSpace:
    axes: Mapping[str, tuple[Any, ...]]  # field -> normalised choices, only the fields given
    source: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str | None = None) -> SearchSpace:
        if not isinstance(d, Mapping):
            raise ConfigError(
                f"expected a mapping of arch fields to choices, got {type(d).__name__}",
                source=source,
                field="space",
            )
        axes: dict[str, tuple[Any, ...]] = {}
        for key, value in d.items():
            if key not in AXES:
                raise ConfigError(
                    f"unknown axis (allowed: {', '.join(AXES)})", source=source, field=str(key)
                )
            raw = (
                _split_choices(value)
                if key == "branch_split"
                else (list(value) if isinstance(value, (list, tuple)) else [value])
            )
            if not raw:
                raise ConfigError("needs at least one value", source=source, field=key)
            choices: list[Any] = []
            for v in raw:
                try:
                    norm = validate_field(key, v)
                except ConfigError as err:
                    raise ConfigError(err.message, source=source, field=key) from None
                if norm not in choices:
                    choices.append(norm)
            axes[key] = tuple(choices)
        return cls(axes=axes, source=source)

    def to_dict(self) -> dict[str, Any]:
        """YAML/JSON-friendly form: each axis as a list of choices (splits as "1/2,1/4,1/4")."""
        return {k: [_to_plain(k, v) for v in vs] for k, vs in self.axes.items()}

    def active(self, key: str, values: Mapping[str, Any]) -> bool:
        """Whether axis `key` applies to an arch with these `values`: a conditional axis only where its
        condition's value takes it (a split for a block with branches, an init for a learnable gate)."""
        if key == "branch_split":
            return takes_split(values.get("block", ArchSpec.block))
        if key == "gate_init":
            return takes_init(values.get("gate", ArchSpec.gate))
        return True

    def sample(self, trial: Any) -> ArchSpec:
        """Suggest every axis with more than one choice (optuna.Trial, define-by-run) and build the spec."""
        values: dict[str, Any] = {}
        for key in AXES:
            if key not in self.axes or not self.active(key, values):
                continue
            choices = self.axes[key]
            if len(choices) == 1:
                values[key] = choices[0]
            elif key == "branch_split":  # Optuna choices must be scalars: suggest "1/2,1/4,1/4"
                values[key] = parse_split(
                    trial.suggest_categorical(key, [split_key(c) for c in choices])
                )
            else:
                values[key] = trial.suggest_categorical(key, list(choices))
        return ArchSpec.from_dict(values, source=self.source)

    def is_valid(self, values: Mapping[str, Any]) -> bool:
        try:
            ArchSpec.from_dict(values)
        except ConfigError:
            return False
        return True

    def grid(self) -> list[dict[str, Any]]:
        """Every valid combination, as ArchSpec.to_dict() dicts, without duplicates.

        Conditional axes are only expanded where active, so a bottleneck block is not repeated
        once per split. Use with `grid_sampler_space()` and `sample_grid(trial)`.
        """
        specs: dict[str, dict[str, Any]] = {}
        plain = [k for k in AXES if k in self.axes and k not in ("branch_split", "gate_init")]
        for combo in itertools.product(*(self.axes[k] for k in plain)):
            values = dict(zip(plain, combo))
            conditional = [
                [(k, v) for v in self.axes[k]]
                if k in self.axes and self.active(k, values)
                else [None]
                for k in ("branch_split", "gate_init")
            ]
            for extra in itertools.product(*conditional):
                full = dict(values, **dict(e for e in extra if e is not None))
                if self.is_valid(full):
                    spec = ArchSpec.from_dict(full)
                    specs.setdefault(spec.arch_id, spec.to_dict())
        return list(specs.values())

    def grid_sampler_space(self) -> dict[str, list[int]]:
        """The search space for optuna.samplers.GridSampler: one categorical index into grid()."""
        return {GRID_PARAM: list(range(len(self.grid())))}

    def sample_grid(self, trial: Any) -> ArchSpec:
        """The grid() entry GridSampler chose for this trial."""
        grid = self.grid()
        return ArchSpec.from_dict(
            grid[trial.suggest_categorical(GRID_PARAM, list(range(len(grid))))], source=self.source
        )
