"""Study files (`studies/*.yaml`): load, validate, apply command-line overrides.

Every key is checked here, before anything runs or is written: an unknown key or a bad value is a
`ConfigError` naming the file and the dotted key (`studies/x.yaml: sampler.name: ...`). The keys
are documented in docs/search.md ("Study file reference"). Each section is a frozen dataclass with
`from_dict(d, source)`; the proxy section is `trainers.budget.ProxyBudget` itself.
"""
from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import yaml

from search.locate import STUDIES_DIR, RunFolder, resolve_study_file  # noqa: F401  (re-exported)
from search.measures import COST, MEASURES
from search.samplers import SamplerConfig, create_sampler, grid_points
from space import checks
from space.errors import ConfigError
from space.search_space import SearchSpace
from trainers.budget import ProxyBudget

_TOP_KEYS = {"name", "description", "space", "data", "proxy", "objectives", "constraints", "sampler", "trials", "timeout",
             "resources", "concurrency", "storage", "scheduler", "latency", "export", "seeds", "dashboard"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


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
            raise ConfigError(f"unknown objective {name!r}; choose from {', '.join(MEASURES)}",
                              source=source, field=f"{where}.name")
        direction = d.get("direction", MEASURES[name].direction)
        checks.one_of(direction, ("maximize", "minimize"), source, f"{where}.direction")
        return cls(name=name, direction=direction)


def _objectives(objs: Any, source: str) -> tuple[Objective, ...]:
    if objs is None:
        return (Objective("pck", "maximize"), Objective("latency_ms", "minimize"))
    if not isinstance(objs, list) or not objs:
        raise ConfigError("must be a list of {name, direction}", source=source, field="objectives")
    out: list[Objective] = []
    for i, o in enumerate(objs):
        objective = Objective.from_dict(o, source, f"objectives[{i}]")
        if objective.name in {x.name for x in out}:
            raise ConfigError(f"objective {objective.name!r} given twice", source=source, field=f"objectives[{i}].name")
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
                limits[key[len("max_"):]] = checks.number(v, source, f"constraints.{key}",
                                                          "a positive number or null", ok=lambda x: x > 0)
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
        v["gpus_per_trial"] = checks.number(v["gpus_per_trial"], source, "resources.gpus_per_trial",
                                            "a fraction in [0, 1] or a whole number of GPUs",
                                            ok=lambda g: g >= 0 and (g <= 1 or g == int(g)))
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

    @classmethod
    def from_dict(cls, d: Any, source: str) -> LatencyConfig:
        from space.latency_backends import LATENCY_BACKENDS

        v = _section(cls, d, source, "latency")
        if not isinstance(v["device"], str) or not re.match(r"^(cpu|cuda(:\d+)?)$", v["device"]):
            raise ConfigError(f"must be cpu, cuda or cuda:N (got {v['device']!r})", source=source,
                              field="latency.device")
        checks.whole(v["threads"], source, "latency.threads", lo=1)
        checks.whole(v["warmup"], source, "latency.warmup", lo=0)
        checks.whole(v["runs"], source, "latency.runs", lo=20)
        v["min_seconds"] = checks.number(v["min_seconds"], source, "latency.min_seconds",
                                         "a number of seconds in [0, 600]", ok=lambda m: 0 <= m <= 600)
        checks.one_of(v["clock"], ("auto", "wall"), source, "latency.clock")
        for key in ("cache", "pause_trials"):
            checks.boolean(v[key], source, f"latency.{key}")
        if not isinstance(v["backend"], str) or v["backend"] not in LATENCY_BACKENDS:
            raise ConfigError(f"unknown latency backend {v['backend']!r} (choose from "
                              f"{', '.join(LATENCY_BACKENDS.names())})", source=source, field="latency.backend")
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
    artifact_dir: str | None = None  # None: <run folder>/artifacts; a shared path for several machines

    @classmethod
    def from_dict(cls, d: Any, source: str) -> DashboardConfig:
        v = _section(cls, d, source, "dashboard")
        for key in ("notes", "artifacts"):
            checks.boolean(v[key], source, f"dashboard.{key}", show=True)
        checks.text(v["artifact_dir"], source, "dashboard.artifact_dir", "a folder path or null", optional=True)
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
        checks.mapping(d, source, "scheduler", "a mapping {name: asha, grace_period, reduction_factor} or null")
        v = _section(cls, d, source, "scheduler")
        if v["name"] != "asha":
            raise ConfigError(f"only asha is supported (got {v['name']!r})", source=source, field="scheduler.name")
        checks.whole(v["grace_period"], source, "scheduler.grace_period", lo=1)
        checks.whole(v["reduction_factor"], source, "scheduler.reduction_factor", lo=2)
        return cls(**v)


@dataclass(frozen=True)
class StudyConfig:
    """A validated study: typed sections with every key filled in (defaults applied)."""

    name: str
    description: str
    space: SearchSpace  # parsed once, here; `space_given` keeps the file's own form for to_dict
    data: DataConfig
    proxy: ProxyBudget
    objectives: tuple[Objective, ...]
    constraints: Constraints
    sampler: SamplerConfig
    trials: int
    resources: ResourcesConfig
    concurrency: int
    storage: str | None  # None: sqlite:///<run_dir>/study.db
    scheduler: SchedulerConfig | None
    latency: LatencyConfig
    export: ExportConfig
    seeds: tuple[int, ...] | None = None  # grid only: every grid point trained once per proxy seed
    source: str = "<dict>"
    out: Path | None = None  # the --out folder given; None: runs/<name> (use `run_dir`)
    proxy_keys: tuple[str, ...] = ()  # the proxy keys the file gave (the stored config lists those)
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)
    timeout: float | None = None  # seconds after which a launch starts no new trial (optuna's optimize(timeout=))
    space_given: dict | None = field(default=None, repr=False)  # None: to_dict writes space.to_dict()

    # -- loading -----------------------------------------------------------------------------------
    @classmethod
    def load(cls, name_or_path: str) -> StudyConfig:
        """`studies/NAME.yaml` for a bare name, else a path to a study YAML."""
        path = resolve_study_file(name_or_path)
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            line = getattr(getattr(err, "problem_mark", None), "line", None)
            where = f"line {line + 1}" if line is not None else None
            raise ConfigError(f"not valid YAML ({getattr(err, 'problem', None) or err})",
                              source=str(path), field=where) from None
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: Any, source: str = "<dict>") -> StudyConfig:
        if not isinstance(raw, dict):
            raise ConfigError("a study file must be a mapping of keys", source=source)
        d = copy.deepcopy(raw)
        checks.no_unknown(d, _TOP_KEYS, source, "")
        for key in ("name", "space", "proxy", "trials"):
            if key not in d:
                raise ConfigError("missing required key", source=source, field=key)
        cfg = cls(
            name=_name(d["name"], source),
            description=checks.text(d.get("description") or "", source, "description", "a string", optional=True),
            space=_space(d["space"], source), space_given=d["space"],
            data=DataConfig.from_dict(d.get("data"), source),
            proxy=_proxy(d["proxy"], source), objectives=_objectives(d.get("objectives"), source),
            constraints=Constraints.from_dict(d.get("constraints"), source),
            sampler=SamplerConfig.from_dict(d.get("sampler"), source),
            trials=checks.whole(d["trials"], source, "trials", lo=1),
            resources=ResourcesConfig.from_dict(d.get("resources"), source),
            concurrency=checks.whole(d.get("concurrency", 1), source, "concurrency", lo=1),
            storage=_storage(d.get("storage"), source),
            scheduler=SchedulerConfig.from_dict(d.get("scheduler"), source),
            latency=LatencyConfig.from_dict(d.get("latency"), source),
            export=ExportConfig.from_dict(d.get("export"), source), seeds=_seeds(d.get("seeds"), source),
            source=source, proxy_keys=tuple(d["proxy"]),
            dashboard=DashboardConfig.from_dict(d.get("dashboard"), source),
            timeout=None if d.get("timeout") is None else
            checks.number(d["timeout"], source, "timeout", "a number of seconds > 0", ok=lambda v: v > 0),
        )
        cfg._cross_check()
        return cfg

    def with_overrides(self, *, trials: int | None = None, data: str | None = None, storage: str | None = None,
                       out: str | Path | None = None) -> StudyConfig:
        """A copy with command-line values applied, validated like the file's own."""
        changes: dict[str, Any] = {}
        if trials is not None:
            changes["trials"] = checks.whole(trials, "<arg>", "--trials", lo=1)
        if data is not None:
            checks.text(data, "<arg>", "--data", "synthetic, a dataset path or FORMAT:PATH")
            changes["data"] = dataclasses.replace(self.data, source=data)
        if storage is not None:
            changes["storage"] = _storage(storage, "<arg>", field_name="--storage")
        if out is not None:
            changes["out"] = Path(out)
        return dataclasses.replace(self, **changes)

    # -- derived values ----------------------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        return RunFolder.of(self.name, self.out).path

    @property
    def storage_url(self) -> str:
        return self.storage or RunFolder(self.run_dir).storage_url

    @property
    def export_dir(self) -> Path:
        return Path(self.export.dir) if self.export.dir else RunFolder(self.run_dir).export_dir

    @property
    def artifact_dir(self) -> Path:
        """The study's optuna artifact store (FileSystemArtifactStore) folder."""
        if self.dashboard.artifact_dir:
            return Path(self.dashboard.artifact_dir)
        return RunFolder(self.run_dir).artifact_dir

    @property
    def objective_names(self) -> list[str]:
        return [o.name for o in self.objectives]

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.objectives]

    def to_dict(self, *, mask_credentials: bool = True) -> dict:
        """The config as plain data (stored in study.user_attrs["config"]); the password is masked."""
        budget = self.proxy.to_dict()
        return {
            "name": self.name, "description": self.description, "space": self._space_dict(),
            "data": self.data.to_dict(), "proxy": {k: budget[k] for k in self.proxy_keys or budget},
            "objectives": [o.to_dict() for o in self.objectives], "constraints": self.constraints.to_dict(),
            "sampler": self.sampler.to_dict(), "trials": self.trials, "timeout": self.timeout,
            "resources": self.resources.to_dict(),
            "concurrency": self.concurrency,
            "storage": mask_url(self.storage_url) if mask_credentials else self.storage_url,
            "scheduler": self.scheduler.to_dict() if self.scheduler else None,
            "latency": self.latency.to_dict(), "export": self.export.to_dict(),
            "seeds": list(self.seeds) if self.seeds is not None else None,
            "dashboard": self.dashboard.to_dict(),
        }

    def _space_dict(self) -> dict:
        # as the file gave it (one value stays one value, not a list of one): what users wrote is
        # what the dashboard shows them
        if self.space_given is not None:
            return copy.deepcopy(self.space_given)
        return self.space.to_dict()

    # -- cross-checks ------------------------------------------------------------------------------
    def _cross_check(self) -> None:
        src = self.source
        if self.seeds is not None:
            if self.sampler.name != "grid":
                raise ConfigError("repeats each grid point once per proxy seed: needs sampler: {name: grid}",
                                  source=src, field="seeds")
            if "seed" in self.proxy_keys:
                raise ConfigError("give proxy.seed or seeds, not both", source=src, field="seeds")
        if self.scheduler is not None and "pck" not in self.objective_names:
            raise ConfigError("the ASHA scheduler stops trials on pck, which is not an objective",
                              source=src, field="scheduler")
        build_sampler(self)  # a bad sampler or option fails here, before anything is written


def build_sampler(cfg: StudyConfig) -> optuna.samplers.BaseSampler:
    """The study's Optuna sampler (search.samplers) for its space, objectives and limits."""
    return create_sampler(cfg.sampler, space=cfg.space,
                          objectives=[(o.name, o.direction) for o in cfg.objectives],
                          limits=cfg.constraints.limits, seeds=cfg.seeds, source=cfg.source)


def effective_trials(cfg: StudyConfig) -> int:
    """The trials the study runs: `cfg.trials`, cut to the grid size (x proxy seeds) for a grid
    study."""
    if cfg.sampler.name != "grid":
        return cfg.trials
    return min(cfg.trials, grid_points(cfg.space, cfg.seeds))


def engine_url(url: str) -> str:
    """The URL for SQLAlchemy: plain postgresql:// means psycopg 3 when psycopg2 is not installed
    (SQLAlchemy's default PostgreSQL driver is psycopg2; this project depends on psycopg 3)."""
    if url.startswith("postgresql://"):
        import importlib.util

        if importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg") is not None:
            return "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def mask_url(url: str) -> str:
    """The URL safe to print and store, parsed by SQLAlchemy: the password and every query value
    that may be a secret become *** (postgresql://user:***@host/db?sslpassword=***); a URL
    SQLAlchemy cannot parse keeps only its scheme."""
    from sqlalchemy.engine import make_url

    # query keys whose values are never secrets; every other query value is masked
    plain_keys = {"host", "port", "sslmode", "connect_timeout", "application_name", "charset", "driver",
                  "check_same_thread", "timeout", "target_session_attrs"}
    try:
        scheme, sep, rest = url.partition("://")
        if sep and "@" in rest:  # unquoted "@", "/" or "?" in a password: the last "@" ends it
            userinfo, _, hostpart = rest.rpartition("@")
            user, colon, _ = userinfo.partition(":")
            url = f"{scheme}://{user}{':password' if colon else ''}@{hostpart}"
        parsed = make_url(url)
        query = {k: v if k in plain_keys else "***" for k, v in parsed.query.items()}
        return parsed.set(query=query).render_as_string(hide_password=True).replace("%2A%2A%2A", "***")
    except Exception:  # not a URL SQLAlchemy can read: nothing after the scheme is safe to show
        scheme = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", url or "")
        return (scheme.group(0) if scheme else "") + "***"


# -- top-level keys ----------------------------------------------------------------------------------
def _name(name: Any, source: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"must be a word of letters, digits, '-', '_' or '.' (got {name!r})",
                          source=source, field="name")
    return name


def _space(space: Any, source: str) -> SearchSpace:
    if not isinstance(space, dict) or not space:
        raise ConfigError("must be a mapping of axis -> value or list of choices", source=source, field="space")
    return SearchSpace.from_dict(space, source=source)  # raises ConfigError naming the axis


def _proxy(proxy: Any, source: str) -> ProxyBudget:
    budget = ProxyBudget.from_dict(proxy, source)
    if budget.input_size is None:
        raise ConfigError("missing required key (the training resolution)", source=source, field="proxy.input_size")
    return budget


def _seeds(seeds: Any, source: str) -> tuple[int, ...] | None:
    if seeds is None:
        return None
    if not isinstance(seeds, list) or not seeds:
        raise ConfigError("must be a list of proxy seeds, e.g. [0, 1, 2]", source=source, field="seeds")
    for i, seed in enumerate(seeds):
        checks.whole(seed, source, f"seeds[{i}]", lo=0)
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds repeat ({seeds})", source=source, field="seeds")
    return tuple(seeds)


def _storage(url: Any, source: str, field_name: str = "storage") -> str | None:
    if url is None:
        return None
    if not isinstance(url, str) or not re.match(r"^[a-zA-Z0-9+]+://", url):
        shown = mask_url(url) if isinstance(url, str) else repr(url)  # never echo a password
        raise ConfigError(f"must be an SQLAlchemy URL such as sqlite:///runs/x.db (got {shown})",
                          source=source, field=field_name)
    return url
