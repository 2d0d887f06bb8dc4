"""Optuna samplers by name: the built-in ones (`SAMPLERS`) or any `BaseSampler` subclass by import path.

    sampler: {name: nsga2, seed: 0, options: {population_size: 8}}
    sampler: {name: "mypackage.samplers:MySampler", options: {...}}

A sampler factory takes the study config and returns the sampler; `options` are its keyword
arguments, and `seed` is passed too when the class takes one. Constraints need no sampler
argument: the runner sets them on each trial (`Trial.set_constraint`), which NSGA-II, TPE, GP and
`best_trials` read. `check_sampler` builds the sampler once when the study file is loaded, so a
bad name or option is a one-line ConfigError before anything is written.
"""
from __future__ import annotations

import importlib
import inspect
from typing import TYPE_CHECKING, Callable

import optuna

from space.errors import ConfigError
from space.registry import Registry

if TYPE_CHECKING:
    from search.config import StudyConfig

SEED_PARAM = "proxy_seed"  # grid studies with `seeds:`: the grid sampler's second axis
SAMPLERS = Registry("sampler")


class RunnerGridSampler(optuna.samplers.GridSampler):
    """GridSampler without its `study.stop()` once the grid is used up: that only works inside
    `study.optimize`, and raised from `tell` here (Ray Tune runs the trials; the runner stops at
    `effective_trials`, the grid size)."""

    def after_trial(self, study, trial, state, values) -> None:
        pass


@SAMPLERS.register("nsga2")
def nsga2_sampler(cfg: StudyConfig) -> optuna.samplers.BaseSampler:
    return optuna.samplers.NSGAIISampler(seed=cfg.sampler.seed, **cfg.sampler.options)


@SAMPLERS.register("tpe")
def tpe_sampler(cfg: StudyConfig) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(seed=cfg.sampler.seed, **cfg.sampler.options)


@SAMPLERS.register("gp")
def gp_sampler(cfg: StudyConfig) -> optuna.samplers.BaseSampler:
    return optuna.samplers.GPSampler(seed=cfg.sampler.seed, **cfg.sampler.options)


@SAMPLERS.register("random")
def random_sampler(cfg: StudyConfig) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=cfg.sampler.seed, **cfg.sampler.options)


@SAMPLERS.register("costaware")
def costaware_sampler(cfg: StudyConfig) -> optuna.samplers.BaseSampler:
    """Reference designs first, then expected hypervolume improvement at known cost (search.strategy)."""
    from search.strategy import CostAwareSampler

    return CostAwareSampler(cfg.space,
                            [(o.name, o.direction) for o in cfg.objectives], cfg.constraints.limits,
                            seed=cfg.sampler.seed, **cfg.sampler.options)


@SAMPLERS.register("grid")
def grid_sampler(cfg: StudyConfig) -> optuna.samplers.BaseSampler:
    """Every valid point of the space once (one categorical index into SearchSpace.grid()), per proxy seed."""
    space = cfg.space.grid_sampler_space()
    if cfg.seeds:
        space[SEED_PARAM] = list(cfg.seeds)
    return RunnerGridSampler(space, seed=cfg.sampler.seed, **cfg.sampler.options)


def is_import_path(name: str) -> bool:
    return ":" in name


def import_sampler_class(path: str, source: str) -> type[optuna.samplers.BaseSampler]:
    """"package.module:ClassName" -> the class; ConfigError (field sampler.name) if it is not a BaseSampler."""
    module_name, _, class_name = path.partition(":")
    where = {"source": source, "field": "sampler.name"}
    if not module_name or not class_name:
        raise ConfigError(f"must be a sampler name or package.module:ClassName (got {path!r})", **where)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise ConfigError(f"no module named {err.name!r} (importing {module_name})", **where) from None
    except Exception as err:  # the module's own error: a syntax error, a failing import inside it
        raise ConfigError(f"cannot import {module_name} ({type(err).__name__}: {err})", **where) from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ConfigError(f"module {module_name} has no {class_name!r}", **where)
    if not (inspect.isclass(cls) and issubclass(cls, optuna.samplers.BaseSampler)):
        raise ConfigError(f"{path} is not a subclass of optuna.samplers.BaseSampler", **where)
    return cls


def _factory(cfg: StudyConfig) -> Callable[[StudyConfig], optuna.samplers.BaseSampler]:
    name = cfg.sampler.name
    if not is_import_path(name):
        return SAMPLERS.get(name)
    cls = import_sampler_class(name, cfg.source)

    def build(cfg: StudyConfig) -> optuna.samplers.BaseSampler:
        takes_seed = "seed" in inspect.signature(cls).parameters
        return cls(**({"seed": cfg.sampler.seed} if takes_seed else {}), **cfg.sampler.options)
    return build


def build_sampler(cfg: StudyConfig) -> optuna.samplers.BaseSampler:
    """The configured Optuna sampler; a bad option is a ConfigError naming sampler.options."""
    factory = _factory(cfg)
    try:
        return factory(cfg)
    except ConfigError:
        raise
    except TypeError as err:
        raise ConfigError(f"not an option of the {cfg.sampler.name} sampler ({_first_line(err)})",
                          source=cfg.source, field="sampler.options") from None
    except ValueError as err:  # the sampler's own check, e.g. NSGA-II population_size < 2
        raise ConfigError(_first_line(err), source=cfg.source, field="sampler.options") from None


def check_sampler(cfg: StudyConfig) -> None:
    """Build the sampler once and drop it: bad names and options surface when the file is loaded."""
    build_sampler(cfg)


def effective_trials(cfg: StudyConfig) -> int:
    """The trials the study runs: `cfg.trials`, cut to the grid size (x proxy seeds) for a grid study."""
    return min(cfg.trials, grid_points(cfg)) if cfg.sampler.name == "grid" else cfg.trials


def grid_points(cfg: StudyConfig) -> int:
    return len(cfg.space.grid()) * len(cfg.seeds or [None])


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]

