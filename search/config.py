"""Study files (`studies/*.yaml`): load, validate, apply command-line overrides.

Every key is checked here, before anything runs or is written: an unknown key or a bad value is a
`ConfigError` naming the file and the dotted key (`studies/x.yaml: sampler.name: ...`). The keys
are documented in docs/search.md ("Study file reference"). Each section is a frozen dataclass with
`from_dict(d, source)` (search/sections.py); the proxy section is `trainers.budget.ProxyBudget`
itself, the sampler section `search.samplers.SamplerConfig`.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from search.locate import STUDIES_DIR, RunFolder, resolve_study_file  # noqa: F401  (re-exported)
from search.samplers import SamplerConfig, create_sampler, grid_points
from search.sections import (
    Constraints,
    DashboardConfig,
    DataConfig,
    ExportConfig,
    LatencyConfig,
    Objective,
    ResourcesConfig,
    SchedulerConfig,
    read_objectives,
)
from search.storage import engine_url, mask_url  # noqa: F401  (URL helpers: search.storage; re-exported)
from search.urls import check_storage_url
from space import checks
from space.errors import ConfigError
from space.search_space import SearchSpace
from trainers.budget import ProxyBudget

_TOP_KEYS = {
    "name",
    "description",
    "space",
    "data",
    "proxy",
    "objectives",
    "constraints",
    "sampler",
    "trials",
    "timeout",
    "resources",
    "concurrency",
    "storage",
    "scheduler",
    "latency",
    "export",
    "seeds",
    "dashboard",
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


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
    timeout: float | None = (
        None  # seconds after which a launch starts no new trial (optuna's optimize(timeout=))
    )
    space_given: dict | None = field(
        default=None, repr=False
    )  # None: to_dict writes space.to_dict()

    # -- loading -----------------------------------------------------------------------------------
    @classmethod
    def load(cls, name_or_path: str) -> StudyConfig:
        """`studies/NAME.yaml` for a bare name, else a path to a study YAML."""
        from space.files import read_yaml_file

        path = resolve_study_file(name_or_path)
        raw = read_yaml_file(path, what="a study file")
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
            description=checks.text(
                d.get("description") or "", source, "description", "a string", optional=True
            ),
            space=_space(d["space"], source),
            space_given=d["space"],
            data=DataConfig.from_dict(d.get("data"), source),
            proxy=_proxy(d["proxy"], source),
            objectives=read_objectives(d.get("objectives"), source),
            constraints=Constraints.from_dict(d.get("constraints"), source),
            sampler=SamplerConfig.from_dict(d.get("sampler"), source),
            trials=checks.whole(d["trials"], source, "trials", lo=1),
            resources=ResourcesConfig.from_dict(d.get("resources"), source),
            concurrency=checks.whole(d.get("concurrency", 1), source, "concurrency", lo=1),
            storage=_storage(d.get("storage"), source),
            scheduler=SchedulerConfig.from_dict(d.get("scheduler"), source),
            latency=LatencyConfig.from_dict(d.get("latency"), source),
            export=ExportConfig.from_dict(d.get("export"), source),
            seeds=_seeds(d.get("seeds"), source),
            source=source,
            proxy_keys=tuple(d["proxy"]),
            dashboard=DashboardConfig.from_dict(d.get("dashboard"), source),
            timeout=None
            if d.get("timeout") is None
            else checks.number(
                d["timeout"], source, "timeout", "a number of seconds > 0", ok=lambda v: v > 0
            ),
        )
        cfg._cross_check()
        _check_output_dirs(cfg)
        return cfg

    def with_overrides(
        self,
        *,
        trials: int | None = None,
        data: str | None = None,
        storage: str | None = None,
        out: str | Path | None = None,
    ) -> StudyConfig:
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
            "name": self.name,
            "description": self.description,
            "space": self._space_dict(),
            "data": self.data.to_dict(),
            "proxy": {k: budget[k] for k in self.proxy_keys or budget},
            "objectives": [o.to_dict() for o in self.objectives],
            "constraints": self.constraints.to_dict(),
            "sampler": self.sampler.to_dict(),
            "trials": self.trials,
            "timeout": self.timeout,
            "resources": self.resources.to_dict(),
            "concurrency": self.concurrency,
            "storage": mask_url(self.storage_url) if mask_credentials else self.storage_url,
            "scheduler": self.scheduler.to_dict() if self.scheduler else None,
            "latency": self.latency.to_dict(),
            "export": self.export.to_dict(),
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
                raise ConfigError(
                    "repeats each grid point once per proxy seed: needs sampler: {name: grid}",
                    source=src,
                    field="seeds",
                )
            if "seed" in self.proxy_keys:
                raise ConfigError("give proxy.seed or seeds, not both", source=src, field="seeds")
        if self.scheduler is not None and "pck" not in self.objective_names:
            raise ConfigError(
                "the ASHA scheduler stops trials on pck, which is not an objective",
                source=src,
                field="scheduler",
            )
        build_sampler(self)  # a bad sampler or option fails here, before anything is written


def _check_output_dirs(cfg: StudyConfig) -> None:
    """Folders the study will write to that cannot be (a file, the project's source): refused
    when the file loads, not after every trial has run."""
    from trainers.outputs import check_output_dir

    if cfg.export.auto and cfg.export.dir:
        check_output_dir(cfg.export.dir, cfg.source, "export.dir")
    if cfg.dashboard.artifacts and cfg.dashboard.artifact_dir:
        check_output_dir(cfg.dashboard.artifact_dir, cfg.source, "dashboard.artifact_dir")


def build_sampler(cfg: StudyConfig) -> optuna.samplers.BaseSampler:
    """The study's Optuna sampler (search.samplers) for its space, objectives and limits."""
    return create_sampler(
        cfg.sampler,
        space=cfg.space,
        objectives=[(o.name, o.direction) for o in cfg.objectives],
        limits=cfg.constraints.limits,
        seeds=cfg.seeds,
        source=cfg.source,
    )


def effective_trials(cfg: StudyConfig) -> int:
    """The trials the study runs: `cfg.trials`, cut to the grid size (x proxy seeds) for a grid
    study."""
    if cfg.sampler.name != "grid":
        return cfg.trials
    return min(cfg.trials, grid_points(cfg.space, cfg.seeds))


# -- top-level keys ----------------------------------------------------------------------------------
def _name(name: Any, source: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"must be a word of letters, digits, '-', '_' or '.' (got {name!r})",
            source=source,
            field="name",
        )
    return name


def _space(space: Any, source: str) -> SearchSpace:
    if not isinstance(space, dict) or not space:
        raise ConfigError(
            "must be a mapping of axis -> value or list of choices", source=source, field="space"
        )
    return SearchSpace.from_dict(space, source=source)  # raises ConfigError naming the axis


def _proxy(proxy: Any, source: str) -> ProxyBudget:
    budget = ProxyBudget.from_dict(proxy, source)
    if budget.input_size is None:
        raise ConfigError(
            "missing required key (the training resolution)",
            source=source,
            field="proxy.input_size",
        )
    return budget


def _seeds(seeds: Any, source: str) -> tuple[int, ...] | None:
    if seeds is None:
        return None
    if not isinstance(seeds, list) or not seeds:
        raise ConfigError(
            "must be a list of proxy seeds, e.g. [0, 1, 2]", source=source, field="seeds"
        )
    for i, seed in enumerate(seeds):
        checks.whole(seed, source, f"seeds[{i}]", lo=0)
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds repeat ({seeds})", source=source, field="seeds")
    return tuple(seeds)


def _storage(url: Any, source: str, field_name: str = "storage") -> str | None:
    """The study file's `storage` or `--storage`: an SQLAlchemy URL that reads one way only
    (search/urls.py: a password with an unencoded '@', '/', '?' or '#' is refused here, before
    anything connects)."""
    if url is None:
        return None
    return check_storage_url(url, source, field_name)
