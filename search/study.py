"""Run a study: Ray Tune executes the trials, Optuna (multi-objective) samples them.

The Optuna storage is the source of truth, not Ray's experiment state: `search.searcher.StorageSearcher`
asks the stored study for each trial and tells it the result, so that `--resume` after kill -9,
several launch.py processes sharing a PostgreSQL study, and the dashboard all see the same trials.
What is written where is the storage contract in docs/design.md. The pieces: search/storage.py
(open the storage, hand back dead processes' trials), search/searcher.py (ask/tell, built of
search/quota.py, live.py, reuse.py and progress.py), search/trial.py (one trial in a worker),
search/cluster.py (Ray).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import optuna
from optuna.trial import TrialState

from search import faults
from search.config import StudyConfig, build_sampler, effective_trials  # noqa: F401  (re-exported)
from search.progress import dur, fmt
from search.samplers import grid_points

# the names marked noqa are re-exported: callers and tests use them as search.study.NAME
from search.storage import (
    GRACE_S,  # noqa: F401
    HEARTBEAT_S,  # noqa: F401
    INTERRUPTED,  # noqa: F401
    SURPLUS,  # noqa: F401
    StoredStudy,  # noqa: F401
    counts_toward_target,
    fail_stale_trials,  # noqa: F401
    interrupt,  # noqa: F401
    mask_url,
    one_line,  # noqa: F401
    open_storage,
    sqlite_file,
)
from space.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def version() -> str:
    try:
        from importlib.metadata import version as _v

        return _v("softgate-nas")
    except Exception:  # not installed: running from a checkout
        import tomllib

        return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


# -- the driver ----------------------------------------------------------------------------------------
def header(cfg: StudyConfig) -> str:
    r, lat = cfg.resources, cfg.latency
    gpu = f", {r.gpus_per_trial:g} GPU" if r.gpus_per_trial else ""
    return "\n".join(
        [
            f"study     {cfg.name}  ({cfg.source})",
            f"storage   {mask_url(cfg.storage_url)}",
            f"data      {cfg.data.source}  (train {cfg.data.train}, val {cfg.data.val})",
            f"sampler   {cfg.sampler.name} seed {cfg.sampler.seed}"
            + (f", proxy seeds {list(cfg.seeds)}" if cfg.seeds else "")
            + "; objectives "
            + ", ".join(f"{o.name} ({o.direction[:3]})" for o in cfg.objectives),
            f"trials    {cfg.trials}, {cfg.concurrency} at a time"
            + (f"; none started after {cfg.timeout:g} s (timeout)" if cfg.timeout else ""),
            f"resources {r.cpus_per_trial} CPU{gpu} per trial; latency on {lat.device}, "
            f"{lat.threads} thread(s), median of {lat.runs}",
        ]
    )


def _exists(cfg: StudyConfig, storage: optuna.storages.BaseStorage, resume: bool) -> bool:
    """Whether the study exists in `storage`; ConfigError when it does and this is not a --resume."""
    exists = cfg.name in optuna.get_all_study_names(storage)
    if exists and not resume:
        raise ConfigError(
            f"study {cfg.name!r} already exists in {mask_url(cfg.storage_url)}; "
            "pass --resume to continue it, or --out/--storage for a new one",
            source=cfg.source,
            field="name",
        )
    return exists


def prepare_study(cfg: StudyConfig, *, resume: bool) -> StoredStudy:
    """Create the study (or load it with --resume); refuse to reuse one silently."""
    storage = open_storage(cfg.storage_url)
    exists = _exists(cfg, storage, resume)
    sampler = build_sampler(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.create_study(
            study_name=cfg.name, storage=storage, directions=cfg.directions, load_if_exists=True
        )
        # the study as the runner uses it: with the storage it was opened with (search.storage)
        study = StoredStudy(cfg.name, storage, sampler=sampler)
        faults.fault_point("created")  # the study exists, its attributes not yet
        if not exists or not study.metric_names:
            study.set_metric_names(cfg.objective_names)
    if list(study.directions) != [optuna.study.StudyDirection[d.upper()] for d in cfg.directions]:
        raise ConfigError(
            "the stored study has other objectives than this file",
            source=cfg.source,
            field="objectives",
        )
    if not exists or not study.user_attrs.get("config"):
        study.set_user_attr("config", json.loads(json.dumps(cfg.to_dict(), default=str)))
        study.set_user_attr(
            "created", dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        )
        study.set_user_attr("softgate_version", version())
    return study


def _refuse_early(cfg: StudyConfig, resume: bool) -> None:
    """The "already exists" refusal before Ray starts, where that creates nothing: an SQLite file
    that is already there (other storages are checked by prepare_study, once Ray is up)."""
    path = sqlite_file(cfg.storage_url)
    if not resume and path is not None and path.is_file():
        _exists(cfg, open_storage(cfg.storage_url), resume)


def make_searcher(
    study: StoredStudy, cfg: StudyConfig, space: Any, printer: Callable[[str], None]
) -> Any:
    """The study's `StorageSearcher` (imported here, not at the top: ray reads its environment on import)."""
    from search.searcher import StorageSearcher

    return StorageSearcher(study, cfg, space, printer)


def run_study(
    cfg: StudyConfig,
    *,
    resume: bool = False,
    address: str | None = None,
    verbose: bool = False,
    printer: Callable[[str], None] = print,
) -> optuna.Study:
    """Run (or continue) the study until `effective_trials(cfg)` trials count in the storage; returns
    the study. `cfg` itself is not changed.

    Nothing is created (run folder, storage, study) before the space, the data and Ray are known
    to be good. Ctrl-C raises KeyboardInterrupt once the running trials are handed back."""
    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)
    faults.arm()
    cfg, note = _with_effective_trials(cfg)
    space, train_set, val_set = _prepare_inputs(cfg)
    from search.cluster import ray_up

    _refuse_early(cfg, resume)
    ray_up(address, verbose)
    faults.fault_point("ray_up")
    study = prepare_study(cfg, resume=resume)
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    # printed once everything is known to be good: a bad input is one line on stderr, nothing on stdout
    printer("\n".join(filter(None, [note, header(cfg)])))
    searcher = make_searcher(study, cfg, space, printer)
    database = sqlite_file(cfg.storage_url)
    # a full disk: raised once the run stops, one line (cli/study.py)
    with DiskErrors(database.parent if database is not None else None):
        try:
            _tuner(cfg, searcher, train_set, val_set, verbose).fit()
        finally:
            searcher.close()
    _summary(study, cfg, searcher.start, printer)
    return study


class DiskErrors(logging.Filter):
    """A full disk (or read-only file system) met during the run, kept instead of printed and
    raised when the block ends, so that it is one line (cli/study.py): Tune logs a searcher's
    failed storage write (`on_trial_complete`) with its traceback and goes on, and the searcher
    warns of each failed heartbeat. Those warnings are dropped only while the storage's own disk
    (`folder`, an SQLite file's) has less than FULL_BYTES free (the error that stops the run says
    it); every other record is logged as before."""

    LOGGERS = ("ray.tune.execution.tune_controller", "softgate.study")
    FULL_BYTES = 2**20

    def __init__(self, folder: Path | None = None) -> None:
        super().__init__()
        self.folder = folder
        self.error: BaseException | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        import shutil

        from trainers.outputs import disk_error

        # the exception: logged with exc_info (Tune), or passed as extra={"error": err}
        err = record.exc_info[1] if record.exc_info else getattr(record, "error", None)
        if isinstance(err, BaseException) and disk_error(err) is not None:
            self.error = self.error or err
            return False
        if record.name != "softgate.study" or self.folder is None:
            return True
        try:
            return shutil.disk_usage(self.folder).free >= self.FULL_BYTES
        except OSError:
            return True

    def __enter__(self) -> Self:
        for name in self.LOGGERS:
            logging.getLogger(name).addFilter(self)
        return self

    def __exit__(self, *exc: object) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).removeFilter(self)
        if self.error is not None and exc[0] is None:
            raise self.error


def _with_effective_trials(cfg: StudyConfig) -> tuple[StudyConfig, str | None]:
    """The runner's copy of `cfg`, its trials cut to the grid (the searcher and the stored config use
    it), and the note saying so."""
    trials = effective_trials(cfg)
    note = None
    if trials < cfg.trials:
        seeds = f" x {len(cfg.seeds)} seeds" if cfg.seeds else ""
        points = grid_points(cfg.space, cfg.seeds)
        note = (
            f"note: the grid has {points} points{seeds}; running that many trials, not {cfg.trials}"
        )
    return dataclasses.replace(cfg, trials=trials), note


def _prepare_inputs(cfg: StudyConfig) -> tuple[Any, Any, Any]:
    """The space and the data, checked before anything is written."""
    from trainers.data import load_poses

    space = cfg.space
    check_buildable(cfg, space.grid())
    # the data is prepared once, here, and shipped to the workers through Ray's object store
    size, d = cfg.proxy.input_size, cfg.data
    train_set = load_poses(d.source, d.train_split, size, subset=d.train, seed=d.seed)
    val_set = load_poses(d.source, d.val_split, size, subset=d.val, seed=d.seed)
    return space, train_set, val_set


def check_buildable(cfg: StudyConfig, grid: list[dict]) -> None:
    """ConfigError unless some point of the space is an architecture that can be trained at the
    proxy's input size (else every trial would fail, and the study "succeed" with nothing)."""
    from space.spec import ArchSpec

    size = cfg.proxy.input_size
    if not grid:
        raise ConfigError(
            "no combination of the space is a valid architecture (e.g. input_size must be "
            "divisible by 4 * 2**depth)",
            source=cfg.source,
            field="space",
        )
    reasons = []
    for point in grid:
        try:
            ArchSpec.from_dict({**point, "input_size": size} if size else point)
            return
        except ConfigError as err:
            reasons.append(err.message)
    raise ConfigError(
        f"no architecture of the space can be trained at proxy.input_size {size} ({reasons[0]})",
        source=cfg.source,
        field="proxy.input_size",
    )


def _tuner(cfg: StudyConfig, searcher: Any, train_set: Any, val_set: Any, verbose: bool) -> Any:
    from ray import tune

    from search.latency import quiet_window, start_meter
    from search.trial import TrialJob, run_trial

    latency = cfg.latency.to_dict()
    quiet = quiet_window(cfg.name, latency)  # the meter holds it, the trials step through it
    job = TrialJob.from_config(cfg, start_meter(cfg.name, latency, quiet), quiet)
    r = cfg.resources
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, train_set=train_set, val_set=val_set, job=job),
        {"cpu": r.cpus_per_trial, "gpu": r.gpus_per_trial},
    )
    scheduler = None
    if cfg.scheduler:
        from ray.tune.schedulers import ASHAScheduler

        scheduler = ASHAScheduler(
            metric="pck",
            mode="max",
            time_attr="training_iteration",
            max_t=max(int(cfg.proxy.epochs or 1), 1) + 1,
            grace_period=cfg.scheduler.grace_period,
            reduction_factor=cfg.scheduler.reduction_factor,
        )
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=cfg.trials,
            max_concurrent_trials=cfg.concurrency,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=f"ray-{int(time.time())}",
            storage_path=str((cfg.run_dir / "ray").resolve()),
            verbose=2 if verbose else 0,
            # a worker or node that dies is Ray's to retry, once; the trial's own
            # errors never reach Ray (run_trial reports them as fail_reason)
            failure_config=tune.FailureConfig(max_failures=1),
        ),
    )


def _summary(
    study: optuna.Study, cfg: StudyConfig, start: float, printer: Callable[[str], None]
) -> None:
    trials = study.get_trials(deepcopy=False)
    by_state = {
        s.name: sum(1 for t in trials if t.state == s and counts_toward_target(t))
        for s in TrialState
    }
    states = ", ".join(f"{n} {k}" for k, n in by_state.items() if n)
    best = study.best_trials if by_state.get("COMPLETE") else []
    front = f"Pareto front {len(best)} trial(s)"
    if by_state.get("COMPLETE") and not best:  # best_trials leaves out infeasible trials
        front = f"{by_state['COMPLETE']} trials complete, none feasible"
    printer(f"done in {dur(time.time() - start)}: {states}; {front}")
    for t in sorted(best, key=lambda t: t.number):
        printer(
            f"  trial {t.number} "
            + " ".join(f"{k}={fmt(v)}" for k, v in zip(cfg.objective_names, t.values))
            + f"  {t.user_attrs.get('arch_id', '')}"
        )
