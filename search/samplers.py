"""Optuna samplers by name: the built-in ones (`SAMPLERS`) or any `BaseSampler` subclass by path.

    sampler: {name: nsga2, seed: 0, options: {population_size: 8}}
    sampler: {name: "mypackage.samplers:MySampler", options: {...}}

The study file's `sampler:` section is `SamplerConfig`. A sampler factory takes that section and the
study's problem as keyword arguments (`space`: the parsed SearchSpace, `objectives`: (name,
direction) pairs, `limits`: measure -> limit, `seeds`: the grid's proxy seeds or None) and returns
the sampler; `options` are the sampler's keyword arguments, and `seed` is passed too when the class
takes one. Constraints need no sampler argument: the runner sets them on each trial
(`Trial.set_constraint`), which NSGA-II, TPE, GP and `best_trials` read. The study config builds
the sampler once when the study file is loaded (`search.config.build_sampler`), so a bad name or
option is a one-line ConfigError before anything is written.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna

from space import checks
from space.errors import ConfigError
from space.registry import Registry
from space.search_space import SearchSpace

SEED_PARAM = "proxy_seed"  # grid studies with `seeds:`: the grid sampler's second axis
SAMPLERS = Registry("sampler")
SamplerFactory = Callable[..., optuna.samplers.BaseSampler]

# Optuna's own samplers by name, each built as `Class(seed=seed, **options)`
OPTUNA_SAMPLERS: dict[str, type[optuna.samplers.BaseSampler]] = {
    "nsga2": optuna.samplers.NSGAIISampler,
    "tpe": optuna.samplers.TPESampler,
    "gp": optuna.samplers.GPSampler,
    "random": optuna.samplers.RandomSampler,
}


@dataclass(frozen=True)
class SamplerConfig:
    """The study file's `sampler:` section."""

    name: str = "nsga2"  # a name in SAMPLERS, or package.module:ClassName
    seed: int | None = 0
    options: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Any, source: str) -> SamplerConfig:
        d = {} if d is None else checks.mapping(d, source, "sampler")
        checks.no_unknown(d, [f.name for f in dataclasses.fields(cls)], source, "sampler.")
        v = {**dataclasses.asdict(cls()), **copy.deepcopy(d)}
        name = v["name"]
        if not isinstance(name, str) or (name not in SAMPLERS and not is_import_path(name)):
            raise ConfigError(
                f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}",
                source=source,
                field="sampler.name",
            )
        if v["seed"] is not None:
            checks.whole(v["seed"], source, "sampler.seed", lo=0)
        checks.mapping(v["options"], source, "sampler.options", "a mapping of sampler arguments")
        return cls(**v)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class RunnerGridSampler(optuna.samplers.GridSampler):
    """GridSampler without its `study.stop()` once the grid is used up: that only works inside
    `study.optimize`, and raised from `tell` here (Ray Tune runs the trials; the runner stops at
    `effective_trials`, the grid size)."""

    def after_trial(self, study, trial, state, values) -> None:
        pass


def class_factory(cls: type[optuna.samplers.BaseSampler]) -> SamplerFactory:
    """The factory of a sampler class that needs nothing of the problem: `options` are its keyword
    arguments, and `seed` is passed when its `__init__` takes one."""

    def build(section: SamplerConfig, **problem: Any) -> optuna.samplers.BaseSampler:
        takes_seed = "seed" in inspect.signature(cls).parameters
        return cls(**({"seed": section.seed} if takes_seed else {}), **section.options)

    return build


for _name, _cls in OPTUNA_SAMPLERS.items():
    SAMPLERS.register(_name)(class_factory(_cls))


@SAMPLERS.register("costaware")
def costaware_sampler(
    section: SamplerConfig,
    *,
    space: SearchSpace,
    objectives: Sequence[tuple[str, str]],
    limits: Mapping[str, float],
    **problem: Any,
) -> optuna.samplers.BaseSampler:
    """Reference designs first, then expected hypervolume improvement at known cost
    (search.strategy)."""
    from search.strategy import CostAwareSampler

    return CostAwareSampler(space, objectives, limits, seed=section.seed, **section.options)


@SAMPLERS.register("grid")
def grid_sampler(
    section: SamplerConfig, *, space: SearchSpace, seeds: Sequence[int] | None, **problem: Any
) -> optuna.samplers.BaseSampler:
    """Every valid point of the space once (one categorical index into SearchSpace.grid()), per
    proxy seed."""
    grid = space.grid_sampler_space()
    if seeds:
        grid[SEED_PARAM] = list(seeds)
    return RunnerGridSampler(grid, seed=section.seed, **section.options)


def is_import_path(name: str) -> bool:
    return ":" in name


def import_sampler_class(path: str, source: str | None) -> type[optuna.samplers.BaseSampler]:
    """ "package.module:ClassName" -> the class; ConfigError (field sampler.name) if it is not a
    BaseSampler."""
    module_name, _, class_name = path.partition(":")
    where = {"source": source, "field": "sampler.name"}
    if not module_name or not class_name:
        raise ConfigError(
            f"must be a sampler name or package.module:ClassName (got {path!r})", **where
        )
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise ConfigError(
            f"no module named {err.name!r} (importing {module_name})", **where
        ) from None
    except Exception as err:  # the module's own error: a syntax error, a failing import inside it
        raise ConfigError(
            f"cannot import {module_name} ({type(err).__name__}: {err})", **where
        ) from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ConfigError(f"module {module_name} has no {class_name!r}", **where)
    if not (inspect.isclass(cls) and issubclass(cls, optuna.samplers.BaseSampler)):
        raise ConfigError(f"{path} is not a subclass of optuna.samplers.BaseSampler", **where)
    return cls


def _factory(name: str, source: str | None) -> SamplerFactory:
    if not is_import_path(name):
        return SAMPLERS.get(name)
    return class_factory(import_sampler_class(name, source))


def create_sampler(
    section: SamplerConfig,
    *,
    space: SearchSpace,
    objectives: Sequence[tuple[str, str]],
    limits: Mapping[str, float] | None = None,
    seeds: Sequence[int] | None = None,
    source: str | None = None,
) -> optuna.samplers.BaseSampler:
    """The sampler `section` names for this problem; a bad name or option is a ConfigError naming
    sampler.name or sampler.options of `source` (the study file; default: the space's)."""
    source = space.source if source is None else source
    factory = _factory(section.name, source)
    try:
        return factory(
            section,
            space=space,
            objectives=list(objectives),
            limits=dict(limits or {}),
            seeds=None if seeds is None else tuple(seeds),
        )
    except ConfigError:
        raise
    except TypeError as err:
        raise ConfigError(
            f"not an option of the {section.name} sampler ({_first_line(err)})",
            source=source,
            field="sampler.options",
        ) from None
    except ValueError as err:  # the sampler's own check, e.g. NSGA-II population_size < 2
        raise ConfigError(_first_line(err), source=source, field="sampler.options") from None


def grid_points(space: SearchSpace, seeds: Sequence[int] | None = None) -> int:
    """The trials a grid study has: every point of the space once per proxy seed."""
    return len(space.grid()) * len(seeds or [None])


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]
