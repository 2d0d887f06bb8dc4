"""Study files (`studies/*.yaml`): load, validate, apply command-line overrides.

Every key is checked here, before anything runs or is written: an unknown key or a bad value is a
`ConfigError` naming the file and the dotted key (`studies/x.yaml: sampler.name: ...`). The keys
are documented in docs/search.md ("Study file reference").
"""
from __future__ import annotations

import copy
import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from space.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
STUDIES_DIR = REPO / "studies"

OBJECTIVES = {"pck": "maximize", "latency_ms": "minimize", "params": "minimize", "flops": "minimize"}
SAMPLERS = ("nsga2", "tpe", "gp", "random", "grid")
# the ProxyBudget fields of trainers.proxy (docs/design.md); checked again against the real class
PROXY_KEYS = {"epochs": int, "max_steps": int, "max_seconds": float, "input_size": int, "subset": int,
              "batch_size": int, "lr": float, "sigma": float, "seed": int, "augment": bool}

# section -> {key: default}; a key absent from its section is an error
_DEFAULTS: dict[str, dict[str, Any]] = {
    "data": {"source": "synthetic", "train": 256, "val": 64, "train_split": "train", "val_split": "val",
             "seed": 0},
    "constraints": {"max_params": None, "max_latency_ms": None},
    "sampler": {"name": "nsga2", "seed": 0, "options": {}},
    "resources": {"cpus_per_trial": 1, "gpus_per_trial": 0.0},
    "latency": {"device": "cpu", "threads": 1, "warmup": 10, "runs": 50, "min_seconds": 1.0, "cache": True,
                "clock": "auto", "pause_trials": True},
    "export": {"auto": True, "dir": None},
}
_SCHEDULER_DEFAULTS = {"name": "asha", "grace_period": 1, "reduction_factor": 2}
_TOP_KEYS = {"name", "description", "space", "data", "proxy", "objectives", "constraints", "sampler", "trials",
             "resources", "concurrency", "storage", "scheduler", "latency", "export", "seeds"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class StudyConfig:
    """A validated study. Sections are plain dicts with every key filled in (defaults applied)."""

    name: str
    description: str
    space: dict
    data: dict
    proxy: dict
    objectives: list[dict]
    constraints: dict
    sampler: dict
    trials: int
    resources: dict
    concurrency: int
    storage: str | None  # None: sqlite:///<run_dir>/study.db
    scheduler: dict | None
    latency: dict
    export: dict
    seeds: list[int] | None = None  # grid only: every grid point trained once per proxy seed
    source: str = "<dict>"
    run_dir: Path | None = field(default=None)  # None: runs/<name>

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
        _no_unknown(d, _TOP_KEYS, source, "")
        for key in ("name", "space", "proxy", "trials"):
            if key not in d:
                raise ConfigError("missing required key", source=source, field=key)
        name = d["name"]
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(f"must be a word of letters, digits, '-', '_' or '.' (got {name!r})",
                              source=source, field="name")
        description = d.get("description") or ""
        if not isinstance(description, str):
            raise ConfigError("must be a string", source=source, field="description")
        sections = {k: _section(d, k, source) for k in _DEFAULTS}
        if isinstance(raw.get("data"), str):  # `data: synthetic` is shorthand for data.source
            sections["data"] = {**_DEFAULTS["data"], "source": raw["data"]}
        cfg = cls(
            name=name, description=description,
            space=_space(d["space"], source),
            data=sections["data"], proxy=_proxy(d["proxy"], source),
            objectives=_objectives(d.get("objectives"), source),
            constraints=sections["constraints"], sampler=sections["sampler"],
            trials=_int(d["trials"], source, "trials", lo=1),
            resources=sections["resources"],
            concurrency=_int(d.get("concurrency", 1), source, "concurrency", lo=1),
            storage=_storage(d.get("storage"), source),
            scheduler=_scheduler(d.get("scheduler"), source),
            latency=sections["latency"], export=sections["export"], seeds=_seeds(d.get("seeds"), source),
            source=source,
        )
        cfg._check_sections()
        return cfg

    def with_overrides(self, *, trials: int | None = None, data: str | None = None, storage: str | None = None,
                       out: str | Path | None = None) -> StudyConfig:
        """A copy with command-line values applied, validated like the file's own."""
        cfg = copy.deepcopy(self)
        if trials is not None:
            cfg.trials = _int(trials, "<arg>", "--trials", lo=1)
        if data is not None:
            if not isinstance(data, str) or not data.strip():
                raise ConfigError("must be synthetic, a dataset path or FORMAT:PATH", source="<arg>", field="--data")
            cfg.data["source"] = data
        if storage is not None:
            cfg.storage = _storage(storage, "<arg>", field_name="--storage")
        if out is not None:
            cfg.run_dir = Path(out)
        return cfg

    # -- derived values ----------------------------------------------------------------------------
    @property
    def out_dir(self) -> Path:
        return self.run_dir if self.run_dir is not None else Path("runs") / self.name

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{self.out_dir / 'study.db'}"

    @property
    def export_dir(self) -> Path:
        return Path(self.export["dir"]) if self.export["dir"] else self.out_dir / "export"

    @property
    def objective_names(self) -> list[str]:
        return [o["name"] for o in self.objectives]

    @property
    def directions(self) -> list[str]:
        return [o["direction"] for o in self.objectives]

    def to_dict(self, *, mask_credentials: bool = True) -> dict:
        """The config as plain data (stored in study.user_attrs["config"]); the password is masked."""
        d = {f.name: copy.deepcopy(getattr(self, f.name)) for f in dataclasses.fields(self)
             if f.name not in ("source", "run_dir")}
        d["storage"] = mask_url(self.storage_url) if mask_credentials else self.storage_url
        return d

    # -- cross-checks ------------------------------------------------------------------------------
    def _check_sections(self) -> None:
        src = self.source
        data = self.data
        if not isinstance(data["source"], str) or not data["source"].strip():
            raise ConfigError("must be synthetic, a dataset path or FORMAT:PATH", source=src, field="data.source")
        for k in ("train", "val"):
            if data[k] is not None:
                _int(data[k], src, f"data.{k}", lo=1)
        for k in ("train_split", "val_split"):
            if not isinstance(data[k], str):
                raise ConfigError("must be a split name", source=src, field=f"data.{k}")
        _int(data["seed"], src, "data.seed", lo=0)

        for k in self.constraints:
            v = self.constraints[k]
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0):
                raise ConfigError(f"must be a positive number or null (got {v!r})", source=src,
                                  field=f"constraints.{k}")

        s = self.sampler
        if s["name"] not in SAMPLERS:
            raise ConfigError(f"unknown sampler {s['name']!r}; choose one of {', '.join(SAMPLERS)}",
                              source=src, field="sampler.name")
        if s["seed"] is not None:
            _int(s["seed"], src, "sampler.seed", lo=0)
        if not isinstance(s["options"], dict):
            raise ConfigError("must be a mapping of sampler arguments", source=src, field="sampler.options")

        r = self.resources
        _int(r["cpus_per_trial"], src, "resources.cpus_per_trial", lo=1)
        g = r["gpus_per_trial"]
        if isinstance(g, bool) or not isinstance(g, (int, float)) or g < 0 or (g > 1 and g != int(g)):
            raise ConfigError(f"must be a fraction in [0, 1] or a whole number of GPUs (got {g!r})",
                              source=src, field="resources.gpus_per_trial")

        lat = self.latency
        if not isinstance(lat["device"], str) or not re.match(r"^(cpu|cuda(:\d+)?)$", lat["device"]):
            raise ConfigError(f"must be cpu, cuda or cuda:N (got {lat['device']!r})", source=src,
                              field="latency.device")
        _int(lat["threads"], src, "latency.threads", lo=1)
        _int(lat["warmup"], src, "latency.warmup", lo=0)
        _int(lat["runs"], src, "latency.runs", lo=20)
        m = lat["min_seconds"]
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 <= m <= 600:
            raise ConfigError(f"must be a number of seconds in [0, 600] (got {m!r})", source=src,
                              field="latency.min_seconds")
        if lat["clock"] not in ("auto", "wall"):
            raise ConfigError(f"must be auto or wall (got {lat['clock']!r})", source=src, field="latency.clock")
        for key in ("cache", "pause_trials"):
            if not isinstance(lat[key], bool):
                raise ConfigError("must be true or false", source=src, field=f"latency.{key}")

        if not isinstance(self.export["auto"], bool):
            raise ConfigError("must be true or false", source=src, field="export.auto")
        if self.export["dir"] is not None and not isinstance(self.export["dir"], str):
            raise ConfigError("must be a folder path or null", source=src, field="export.dir")
        if self.seeds is not None:
            if s["name"] != "grid":
                raise ConfigError("repeats each grid point once per proxy seed: needs sampler: {name: grid}",
                                  source=src, field="seeds")
            if self.proxy.get("seed") is not None:
                raise ConfigError("give proxy.seed or seeds, not both", source=src, field="seeds")
        if self.scheduler is not None and "pck" not in self.objective_names:
            raise ConfigError("the ASHA scheduler stops trials on pck, which is not an objective",
                              source=src, field="scheduler")


def resolve_study_file(name_or_path: str) -> Path:
    """A study name (looked up in ./studies then the repo's studies/) or a path to a YAML file."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or "/" in name_or_path:
        if not path.is_file():
            raise ConfigError("no such study file", source=str(path), field="--study")
        return path
    for folder in (Path("studies"), STUDIES_DIR):
        candidate = folder / f"{name_or_path}.yaml"
        if candidate.is_file():
            return candidate
    known = sorted(p.stem for p in STUDIES_DIR.glob("*.yaml"))
    raise ConfigError(f"no study named {name_or_path!r}; known: {', '.join(known) or 'none'}",
                      source="<arg>", field="--study")


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


# -- helpers -----------------------------------------------------------------------------------------
def _no_unknown(d: dict, allowed: set[str] | dict, source: str, prefix: str) -> None:
    for key in d:
        if key not in allowed:
            where = f"{prefix}{key}"
            raise ConfigError(f"unknown key; allowed: {', '.join(sorted(allowed))}", source=source, field=where)


def _section(d: dict, key: str, source: str) -> dict:
    value = d.get(key)
    if value is None or (key == "data" and isinstance(value, str)):
        return copy.deepcopy(_DEFAULTS[key])
    if not isinstance(value, dict):
        raise ConfigError("must be a mapping", source=source, field=key)
    _no_unknown(value, _DEFAULTS[key], source, f"{key}.")
    return {**copy.deepcopy(_DEFAULTS[key]), **value}


def _int(v: Any, source: str, name: str, lo: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(f"must be a whole number (got {v!r})", source=source, field=name)
    if lo is not None and v < lo:
        raise ConfigError(f"must be at least {lo} (got {v})", source=source, field=name)
    return v


def _space(space: Any, source: str) -> dict:
    if not isinstance(space, dict) or not space:
        raise ConfigError("must be a mapping of axis -> value or list of choices", source=source, field="space")
    try:
        from space.search_space import SearchSpace
    except ImportError:  # space/ not written yet: the shape check above is all we can do
        return space
    SearchSpace.from_dict(space, source=source)  # raises ConfigError naming the axis
    return space


def _proxy(proxy: Any, source: str) -> dict:
    if not isinstance(proxy, dict):
        raise ConfigError("must be a mapping of ProxyBudget fields", source=source, field="proxy")
    _no_unknown(proxy, PROXY_KEYS, source, "proxy.")
    for key, value in proxy.items():
        want = PROXY_KEYS[key]
        if value is None:
            continue
        if want is bool:
            if not isinstance(value, bool):
                raise ConfigError(f"must be true or false (got {value!r})", source=source, field=f"proxy.{key}")
            continue
        ok = isinstance(value, (int, float)) if want is float else isinstance(value, int)
        if isinstance(value, bool) or not ok or not math.isfinite(value) or value < 0 or (value == 0 and key != "seed"):
            raise ConfigError(f"must be a positive {'number' if want is float else 'whole number'} (got {value!r})",
                              source=source, field=f"proxy.{key}")
    if "input_size" not in proxy:
        raise ConfigError("missing required key (the training resolution)", source=source, field="proxy.input_size")
    try:
        from trainers.proxy import ProxyBudget
    except ImportError:
        return proxy
    try:
        ProxyBudget(**proxy)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(str(err).splitlines()[0], source=source, field="proxy") from None
    return proxy


def _objectives(objs: Any, source: str) -> list[dict]:
    if objs is None:
        return [{"name": "pck", "direction": "maximize"}, {"name": "latency_ms", "direction": "minimize"}]
    if not isinstance(objs, list) or not objs:
        raise ConfigError("must be a list of {name, direction}", source=source, field="objectives")
    out, seen = [], set()
    for i, o in enumerate(objs):
        where = f"objectives[{i}]"
        if isinstance(o, str):
            o = {"name": o}
        if not isinstance(o, dict):
            raise ConfigError("must be {name, direction}", source=source, field=where)
        _no_unknown(o, {"name", "direction"}, source, f"{where}.")
        name = o.get("name")
        if name not in OBJECTIVES:
            raise ConfigError(f"unknown objective {name!r}; choose from {', '.join(OBJECTIVES)}",
                              source=source, field=f"{where}.name")
        if name in seen:
            raise ConfigError(f"objective {name!r} given twice", source=source, field=f"{where}.name")
        seen.add(name)
        direction = o.get("direction", OBJECTIVES[name])
        if direction not in ("maximize", "minimize"):
            raise ConfigError(f"must be maximize or minimize (got {direction!r})", source=source,
                              field=f"{where}.direction")
        out.append({"name": name, "direction": direction})
    return out


def _seeds(seeds: Any, source: str) -> list[int] | None:
    if seeds is None:
        return None
    if not isinstance(seeds, list) or not seeds:
        raise ConfigError("must be a list of proxy seeds, e.g. [0, 1, 2]", source=source, field="seeds")
    for i, seed in enumerate(seeds):
        _int(seed, source, f"seeds[{i}]", lo=0)
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds repeat ({seeds})", source=source, field="seeds")
    return seeds


def _storage(url: Any, source: str, field_name: str = "storage") -> str | None:
    if url is None:
        return None
    if not isinstance(url, str) or not re.match(r"^[a-zA-Z0-9+]+://", url):
        shown = mask_url(url) if isinstance(url, str) else repr(url)  # never echo a password
        raise ConfigError(f"must be an SQLAlchemy URL such as sqlite:///runs/x.db (got {shown})",
                          source=source, field=field_name)
    return url


def _scheduler(sched: Any, source: str) -> dict | None:
    if sched is None or sched is False:
        return None
    if not isinstance(sched, dict):
        raise ConfigError("must be a mapping {name: asha, grace_period, reduction_factor} or null",
                          source=source, field="scheduler")
    _no_unknown(sched, _SCHEDULER_DEFAULTS, source, "scheduler.")
    s = {**_SCHEDULER_DEFAULTS, **sched}
    if s["name"] != "asha":
        raise ConfigError(f"only asha is supported (got {s['name']!r})", source=source, field="scheduler.name")
    _int(s["grace_period"], source, "scheduler.grace_period", lo=1)
    _int(s["reduction_factor"], source, "scheduler.reduction_factor", lo=2)
    return s
