"""The small sections of a study file, each a frozen dataclass with `from_dict(d, source)` that
fills in the defaults and refuses unknown keys and bad values (a one-line ConfigError naming the
dotted key). search.config.StudyConfig holds one of each; the proxy section is
trainers.budget.ProxyBudget and the sampler section search.samplers.SamplerConfig.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from search.measures import COST, MEASURES
from space import checks
from space.errors import ConfigError


def _section(cls: type, d: Any, source: str, name: str) -> dict:
    """The section's keys with the dataclass defaults filled in; unknown keys are errors."""
    if d is None:
        d = {}
    checks.mapping(d, source, name)
    checks.no_unknown(d, [f.name for f in dataclasses.fields(cls)], source, f"{name}.")
    return {**{f.name: getattr(cls(), f.name) for f in dataclasses.fields(cls)}, **copy.deepcopy(d)}


class _Section:
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class DataConfig(_Section):
    source: str = "synthetic"
    train: int | None = 256
    val: int | None = 64
    train_split: str = "train"
    val_split: str = "val"
    seed: int = 0

    @classmethod
    def from_dict(cls, d: Any, source: str) -> DataConfig:
        if isinstance(d, str):  # `data: synthetic` is shorthand for data.source
            d = {"source": d}
        v = _section(cls, d, source, "data")
        checks.text(v["source"], source, "data.source", "synthetic, a dataset path or FORMAT:PATH")
        for k in ("train", "val"):
            if v[k] is not None:
                checks.whole(v[k], source, f"data.{k}", lo=1)
        for k in ("train_split", "val_split"):
            checks.text(v[k], source, f"data.{k}", "a split name")
        checks.whole(v["seed"], source, "data.seed", lo=0)
        return cls(**v)


@dataclass(frozen=True)
class Objective(_Section):
    name: str
    direction: str

    @classmethod
    def from_dict(cls, d: Any, source: str, where: str) -> Objective:
        if isinstance(d, str):
            d = {"name": d}
        checks.mapping(d, source, where, "{name, direction}")
        checks.no_unknown(d, {"name", "direction"}, source, f"{where}.")
        name = d.get("name")
        if name not in MEASURES:
            raise ConfigError(
                f"unknown objective {name!r}; choose from {', '.join(MEASURES)}",
                source=source,
                field=f"{where}.name",
            )
        direction = d.get("direction", MEASURES[name].direction)
        checks.one_of(direction, ("maximize", "minimize"), source, f"{where}.direction")
        return cls(name=name, direction=direction)


def read_objectives(objs: Any, source: str) -> tuple[Objective, ...]:
    """The `objectives:` list (default: pck maximised, latency_ms minimised)."""
    if objs is None:
        return (Objective("pck", "maximize"), Objective("latency_ms", "minimize"))
    if not isinstance(objs, list) or not objs:
        raise ConfigError("must be a list of {name, direction}", source=source, field="objectives")
    out: list[Objective] = []
    for i, o in enumerate(objs):
        objective = Objective.from_dict(o, source, f"objectives[{i}]")
        if objective.name in {x.name for x in out}:
            raise ConfigError(
                f"objective {objective.name!r} given twice",
                source=source,
                field=f"objectives[{i}].name",
            )
        out.append(objective)
    return tuple(out)


@dataclass(frozen=True)
class Constraints(_Section):
    """`max_<measure>: limit` for any registered measure (search.measures); `limits` keeps the set ones."""

    limits: dict[str, float] = field(default_factory=dict)  # measure name -> limit

    @classmethod
    def from_dict(cls, d: Any, source: str) -> Constraints:
        d = {} if d is None else checks.mapping(d, source, "constraints")
        checks.no_unknown(d, [f"max_{m}" for m in MEASURES], source, "constraints.")
        limits = {}
        for key, v in d.items():
            if v is not None:
                limits[key[len("max_") :]] = checks.number(
                    v, source, f"constraints.{key}", "a positive number or null", ok=lambda x: x > 0
                )
        return cls(limits=limits)

    def to_dict(self) -> dict:
        """As in the file: `max_<name>` keys, the cost measures' unset limits as null."""
        unset = {f"max_{m.name}": None for m in MEASURES.values() if m.stage == COST}
        return {**unset, **{f"max_{name}": limit for name, limit in self.limits.items()}}


@dataclass(frozen=True)
class ResourcesConfig(_Section):
    cpus_per_trial: int = 1
    gpus_per_trial: float = 0.0

    @classmethod
    def from_dict(cls, d: Any, source: str) -> ResourcesConfig:
        v = _section(cls, d, source, "resources")
        checks.whole(v["cpus_per_trial"], source, "resources.cpus_per_trial", lo=1)
        v["gpus_per_trial"] = checks.number(
            v["gpus_per_trial"],
            source,
            "resources.gpus_per_trial",
            "a fraction in [0, 1] or a whole number of GPUs",
            ok=lambda g: g >= 0 and (g <= 1 or g == int(g)),
        )
        return cls(**v)


@dataclass(frozen=True)
class LatencyConfig(_Section):
    device: str = "cpu"
    threads: int = 1
    warmup: int = 10
    runs: int = 50
    min_seconds: float = 1.0
    cache: bool = True
    clock: str = "auto"
    pause_trials: bool = True
    backend: str = "torch"  # a name in space.latency_backends.LATENCY_BACKENDS
    # the quiet interleaved re-measurement of the front before export (search/remeasure.py):
    # at most this many seconds; 0 turns it off (the front is then decided by in-study values)
    remeasure_seconds: float = 60.0

    @classmethod
    def from_dict(cls, d: Any, source: str) -> LatencyConfig:
        from space.latency_backends import LATENCY_BACKENDS

        v = _section(cls, d, source, "latency")
        if not isinstance(v["device"], str) or not re.match(r"^(cpu|cuda(:\d+)?)$", v["device"]):
            raise ConfigError(
                f"must be cpu, cuda or cuda:N (got {v['device']!r})",
                source=source,
                field="latency.device",
            )
        checks.whole(v["threads"], source, "latency.threads", lo=1)
        checks.whole(v["warmup"], source, "latency.warmup", lo=0)
        checks.whole(v["runs"], source, "latency.runs", lo=20)
        v["min_seconds"] = checks.number(
            v["min_seconds"],
            source,
            "latency.min_seconds",
            "a number of seconds in [0, 600]",
            ok=lambda m: 0 <= m <= 600,
        )
        v["remeasure_seconds"] = checks.number(
            v["remeasure_seconds"],
            source,
            "latency.remeasure_seconds",
            "a number of seconds in [0, 3600]",
            ok=lambda m: 0 <= m <= 3600,
        )
        checks.one_of(v["clock"], ("auto", "wall"), source, "latency.clock")
        for key in ("cache", "pause_trials"):
            checks.boolean(v[key], source, f"latency.{key}")
        if not isinstance(v["backend"], str) or v["backend"] not in LATENCY_BACKENDS:
            raise ConfigError(
                f"unknown latency backend {v['backend']!r} (choose from "
                f"{', '.join(LATENCY_BACKENDS.names())})",
                source=source,
                field="latency.backend",
            )
        return cls(**v)


@dataclass(frozen=True)
class ExportConfig(_Section):
    auto: bool = True
    dir: str | None = None

    @classmethod
    def from_dict(cls, d: Any, source: str) -> ExportConfig:
        v = _section(cls, d, source, "export")
        checks.boolean(v["auto"], source, "export.auto")
        checks.text(v["dir"], source, "export.dir", "a folder path or null", optional=True)
        return cls(**v)


@dataclass(frozen=True)
class DashboardConfig(_Section):
    """What each trial leaves for optuna-dashboard (search/artifacts.py): a markdown note, and
    artifacts (the arch YAML, a PNG of its predictions) in a store at `artifact_dir`."""

    notes: bool = True
    artifacts: bool = True
    artifact_dir: str | None = (
        None  # None: <run folder>/artifacts; a shared path for several machines
    )

    @classmethod
    def from_dict(cls, d: Any, source: str) -> DashboardConfig:
        v = _section(cls, d, source, "dashboard")
        for key in ("notes", "artifacts"):
            checks.boolean(v[key], source, f"dashboard.{key}", show=True)
        checks.text(
            v["artifact_dir"],
            source,
            "dashboard.artifact_dir",
            "a folder path or null",
            optional=True,
        )
        return cls(**v)


@dataclass(frozen=True)
class SchedulerConfig(_Section):
    name: str = "asha"
    grace_period: int = 1
    reduction_factor: int = 2

    @classmethod
    def from_dict(cls, d: Any, source: str) -> SchedulerConfig | None:
        if d is None or d is False:
            return None
        checks.mapping(
            d, source, "scheduler", "a mapping {name: asha, grace_period, reduction_factor} or null"
        )
        v = _section(cls, d, source, "scheduler")
        if v["name"] != "asha":
            raise ConfigError(
                f"only asha is supported (got {v['name']!r})", source=source, field="scheduler.name"
            )
        checks.whole(v["grace_period"], source, "scheduler.grace_period", lo=1)
        checks.whole(v["reduction_factor"], source, "scheduler.reduction_factor", lo=2)
        return cls(**v)
