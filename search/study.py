"""Run a study: Ray Tune executes the trials, Optuna (multi-objective) samples them.

The Optuna storage is the source of truth, not Ray's experiment state: `StorageSearcher` (a small
`ray.tune.search.Searcher`) asks the stored study for each trial and tells it the result, so that
`--resume` after kill -9, several launch.py processes sharing a PostgreSQL study, and the dashboard
all see the same trials. What is written where is the storage contract in docs/design.md.

How the requested number of trials is reached, however many processes share the study: before each
ask the searcher counts the trials in the storage that count (COMPLETE, PRUNED, FAIL except
"interrupted", RUNNING, WAITING); after the ask it checks its new trial's rank among them, so that
of two processes racing for the last slot, the later one withdraws (FAIL, fail_reason "surplus").
A process whose trial count is reached waits while other processes' trials still run: if one of
those processes dies, its trials stop sending heartbeats, are marked FAIL "interrupted" after
`GRACE_S`, and are re-run (same parameters) by whoever is still there.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import optuna
from optuna.trial import TrialState

from search.config import StudyConfig, engine_url, mask_url
from space.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
# how often the driver marks its running trials alive in the storage, and after how long without a
# heartbeat a RUNNING trial is taken to belong to a dead process (env overrides: tests, slow networks)
HEARTBEAT_S = int(os.environ.get("SOFTGATE_HEARTBEAT_S", 5))
GRACE_S = int(os.environ.get("SOFTGATE_GRACE_S", 20))
SEED_PARAM = "proxy_seed"  # grid studies with `seeds:`: the grid sampler's second axis
INTERRUPTED = "interrupted"
SURPLUS = "surplus"
log = logging.getLogger("softgate.study")


def version() -> str:
    try:
        from importlib.metadata import version as _v
        return _v("softgate-nas")
    except Exception:  # not installed: running from a checkout
        import tomllib
        return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or "no message"
    return f"{type(err).__name__}: {text}"[:300]


# -- samplers ----------------------------------------------------------------------------------------
class _RunnerGridSampler(optuna.samplers.GridSampler):
    """GridSampler without its `study.stop()` once the grid is used up: that only works inside
    `study.optimize`, and raised from `tell` here (Ray Tune runs the trials; the runner stops at
    `trials`, which run_study cuts to the grid size)."""

    def after_trial(self, study, trial, state, values) -> None:
        pass


def build_sampler(cfg: StudyConfig) -> optuna.samplers.BaseSampler:
    """The configured Optuna sampler. Constraints need no sampler argument: the runner sets them on
    each trial (`Trial.set_constraint`, Optuna 5), which NSGA-II, TPE, GP and `best_trials` read."""
    s = cfg.sampler
    name, seed, options = s["name"], s["seed"], dict(s["options"])
    classes = {"nsga2": optuna.samplers.NSGAIISampler, "tpe": optuna.samplers.TPESampler,
               "gp": optuna.samplers.GPSampler, "random": optuna.samplers.RandomSampler}
    try:
        if name in classes:
            return classes[name](seed=seed, **options)
        from space.search_space import SearchSpace  # grid: one categorical index into SearchSpace.grid()
        grid = SearchSpace.from_dict(cfg.space, source=cfg.source).grid_sampler_space()
        if cfg.seeds:
            grid[SEED_PARAM] = list(cfg.seeds)
        return _RunnerGridSampler(grid, seed=seed, **options)
    except TypeError as err:
        raise ConfigError(f"not an option of the {name} sampler ({err})", source=cfg.source,
                          field="sampler.options") from None


def counts_toward_target(t: optuna.trial.FrozenTrial) -> bool:
    if t.state == TrialState.FAIL:
        return t.user_attrs.get("fail_reason") not in (INTERRUPTED, SURPLUS)
    return True


def _finished(t: optuna.trial.FrozenTrial) -> bool:
    return t.state.is_finished() and counts_toward_target(t)


# -- storage ------------------------------------------------------------------------------------------
def open_storage(url: str) -> optuna.storages.RDBStorage:
    """RDBStorage with heartbeats (how a dead process's RUNNING trials are found)."""
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # heartbeat is "experimental"
            return optuna.storages.RDBStorage(engine_url(url), heartbeat_interval=HEARTBEAT_S,
                                              grace_period=GRACE_S)
    except Exception as err:  # bad URL, unreachable server, missing driver: the user's to fix
        raise ConfigError(f"cannot open storage ({one_line(err)})", source=mask_url(url), field="storage") from None


def fail_stale_trials(study: optuna.Study) -> int:
    """Mark trials of dead processes FAIL "interrupted" and enqueue the same parameters again.

    Optuna's own `fail_stale_trials` cannot tag the trial with a reason (a finished trial's attrs
    are read-only), so the reason is set while the trial is still RUNNING, then it is failed; of
    several processes doing this at once only the one whose state change succeeds re-enqueues.
    """
    return sum(interrupt(study, trial_id) for trial_id in study._storage._get_stale_trial_ids(study._study_id))


def interrupt(study: optuna.Study, trial_id: int) -> bool:
    """RUNNING -> FAIL "interrupted", and the same parameters enqueued for a re-run."""
    storage = study._storage
    try:
        storage.set_trial_user_attr(trial_id, "fail_reason", INTERRUPTED)
        if storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
            old = storage.get_trial(trial_id)
            study.enqueue_trial(old.params, user_attrs={"rerun_of": old.number}, skip_if_exists=False)
            return True
    except optuna.exceptions.UpdateFinishedTrialError:
        pass  # another process got there first
    return False


# -- the searcher -------------------------------------------------------------------------------------
def make_searcher(study: optuna.Study, cfg: StudyConfig, space: Any, printer: Callable[[str], None]):
    from ray.tune.search import Searcher

    class _StorageSearcher(Searcher):
        """Optuna ask/tell against the real storage, one Optuna trial per Ray Tune trial."""

        # everything comes in as arguments, not closure variables: Ray cloudpickles this class by value
        # into its experiment files, and a closure over the config would write the storage URL
        # (with its password) there
        def __init__(self, study: optuna.Study, cfg: StudyConfig, space: Any, printer: Callable[[str], None]) -> None:
            super().__init__(metric=None, mode=None)
            self.study, self.cfg, self.space, self.printer = study, cfg, space, printer
            self.live: dict[str, optuna.Trial] = {}
            self.last: dict[str, dict] = {}
            self.curves: dict[str, list[float]] = {}  # per-epoch pck as reported, for pruned trials
            self.start = time.time()
            self.done_here = 0
            self._full_until = 0.0
            self._stop = threading.Event()
            self._beat = threading.Thread(target=self._heartbeat, daemon=True)
            self._beat.start()

        # heartbeats: the driver vouches for its trials while they run on the workers
        def _heartbeat(self) -> None:
            while not self._stop.wait(HEARTBEAT_S):
                for trial in list(self.live.values()):
                    try:
                        self.study._storage.record_heartbeat(trial._trial_id)
                    except Exception as err:  # a storage hiccup must not kill the study
                        log.warning("heartbeat failed: %s", one_line(err))

        def close(self) -> None:
            """Stop the heartbeats; trials still live (Ctrl-C, a crash) are handed back for re-running."""
            self._stop.set()
            for trial in list(self.live.values()):
                interrupt(self.study, trial._trial_id)
            self.live.clear()

        # Tune pickles its searcher for its own restore; the storage (not Ray) is what we resume from
        def __getstate__(self) -> dict:
            return {}

        def save(self, checkpoint_path: str) -> None:
            pass

        def restore(self, checkpoint_path: str) -> None:
            pass

        def _counted(self) -> list[optuna.trial.FrozenTrial]:
            return [t for t in self.study.get_trials(deepcopy=False) if counts_toward_target(t)]

        def suggest(self, trial_id: str) -> dict | str | None:
            if self.live and time.time() < self._full_until:
                return None  # the count was reached a moment ago: spare the storage Tune's polling
            fail_stale_trials(self.study)
            counted = self._counted()
            if len(counted) >= self.cfg.trials:
                mine = {t._trial_id for t in self.live.values()}
                others_running = [t for t in counted if t.state == TrialState.RUNNING and t._trial_id not in mine]
                if others_running and not self.live:
                    time.sleep(1.0)  # wait: they finish, or go stale and come back as WAITING
                    return None
                self._full_until = time.time() + 1.0
                return Searcher.FINISHED if not self.live else None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "heartbeat is supposed to be used with optimize"
                trial = self.study.ask()
            self.study._storage.record_heartbeat(trial._trial_id)
            rank = sum(1 for t in self._counted() if t.number < trial.number)
            if rank >= self.cfg.trials:  # another process took the last slot meanwhile
                trial.set_user_attr("fail_reason", SURPLUS)
                self.study.tell(trial, state=TrialState.FAIL)
                return None
            try:
                spec = (self.space.sample_grid(trial) if self.cfg.sampler["name"] == "grid"
                        else self.space.sample(trial))
            except Exception as err:  # a space that cannot make a valid arch: this trial fails
                trial.set_user_attr("fail_reason", one_line(err))
                self.study.tell(trial, state=TrialState.FAIL)
                self._progress(trial.number, None, one_line(err))
                return None
            self.live[trial_id] = trial
            # known before training: failed and pruned trials carry them too
            trial.set_user_attr("arch", spec.to_dict())
            trial.set_user_attr("arch_id", spec.arch_id)
            config = {"arch": spec.to_dict(), "number": trial.number}
            if self.cfg.seeds:
                config["seed"] = trial.suggest_categorical(SEED_PARAM, list(self.cfg.seeds))
            cached = self._cached_latency(spec.arch_id) if self.cfg.latency["cache"] else None
            if cached:
                config["latency"] = cached
            return config

        def _cached_latency(self, arch_id: str) -> dict | None:
            from search.latency import LATENCY_KEYS

            for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
                if t.user_attrs.get("arch_id") == arch_id and all(k in t.user_attrs for k in LATENCY_KEYS):
                    return {k: t.user_attrs[k] for k in LATENCY_KEYS}
            return None

        def on_trial_result(self, trial_id: str, result: dict) -> None:
            self.last[trial_id] = result
            if "epoch" in result:
                self.curves.setdefault(trial_id, []).append(float(result["pck"]))

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            trial = self.live.pop(trial_id, None)
            if trial is None:
                return
            result = result or self.last.get(trial_id) or {}
            self.last.pop(trial_id, None)
            curve = self.curves.pop(trial_id, [])
            attrs = json.loads(result.get("attrs_json") or "{}")
            reason = result.get("fail_reason")
            if error and not reason:
                reason = "the trial's worker died (out of memory or killed); see the Ray logs"
            for key, value in attrs.items():
                trial.set_user_attr(key, value)
            for key, value in (attrs.get("constraints") or {}).items():
                trial.set_constraint(key, value)
            if reason:
                trial.set_user_attr("fail_reason", reason)
                self.study.tell(trial, state=TrialState.FAIL)
                self._progress(trial.number, None, reason)
                return
            if not result.get("final"):  # stopped early by ASHA
                if "epoch" in result and int(result["epoch"]) > len(curve):  # Tune skips on_trial_result on STOP
                    curve.append(float(result["pck"]))
                trial.set_user_attr("pruned_at_epoch", int(result.get("epoch", 0)))
                trial.set_user_attr("pck_curve", curve)
                if "pck" in result:
                    trial.set_user_attr("pck", float(result["pck"]))
                self.study.tell(trial, state=TrialState.PRUNED)
                self._progress(trial.number, None, None, pruned=True)
                return
            values = [float(attrs[name]) for name in self.cfg.objective_names]
            self.study.tell(trial, values)
            self._progress(trial.number, values, None)

        def _progress(self, number: int, values: list[float] | None, reason: str | None,
                      pruned: bool = False) -> None:
            self.done_here += 1
            trials = self.study.get_trials(deepcopy=False)
            n = sum(1 for t in trials if _finished(t))
            complete = [t for t in trials if t.state == TrialState.COMPLETE]
            pareto = len(self.study.best_trials) if complete else 0
            elapsed = time.time() - self.start
            eta = elapsed / self.done_here * max(self.cfg.trials - n, 0)
            if values is not None:
                what = " ".join(f"{k}={_fmt(v)}" for k, v in zip(self.cfg.objective_names, values))
            elif pruned:
                what = "PRUNED (ASHA)"
            else:
                what = f"FAIL {reason}"
            self.printer(f"[{n}/{self.cfg.trials}] trial {number} {what} | pareto {pareto} | "
                         f"elapsed {_dur(elapsed)} eta {_dur(eta)}")

    return _StorageSearcher(study, cfg, space, printer)


def _fmt(v: float) -> str:
    return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.3e}"


def _dur(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


# -- the trial (runs in a Ray worker) -------------------------------------------------------------------
def run_trial(config: dict, *, train: Any, val: Any, job: dict) -> None:
    """One proxy trial. Never raises for the trial's own faults: it reports fail_reason instead."""
    import ray
    import torch
    from ray import tune

    torch.set_num_threads(job["cpus"])
    start = time.perf_counter()
    budget = {**job["budget"], **({"seed": config["seed"]} if "seed" in config else {})}
    attrs: dict[str, Any] = {"data": job["data"], "budget": budget,
                             "node_id": ray.get_runtime_context().get_node_id()}
    try:
        from space.model import build_model
        from space.profile import count_flops, count_params
        from space.spec import ArchSpec
        from trainers.proxy import ProxyBudget, train_proxy

        spec = ArchSpec.from_dict(config["arch"])
        attrs.update(arch=spec.to_dict(), arch_id=spec.arch_id)
        model = build_model(spec)
        attrs["params"] = int(count_params(model))
        attrs["flops"] = int(count_flops(model, spec.input_size))
        del model
        latency = config.get("latency") or ray.get(job["meter"].measure.remote(spec.to_dict()))
        attrs.update(latency)
        # Optuna constraints: value - limit, <= 0 is feasible (only the limits the config sets)
        limits = {k: v for k, v in job["constraints"].items() if v is not None}
        measured = {"max_params": attrs["params"], "max_latency_ms": attrs["latency_ms"]}
        if limits:
            attrs["constraints"] = {k: float(measured[k] - limit) for k, limit in limits.items()}
        violated = [f"{k[4:]} {measured[k]:.4g} > {k} {limit:.4g}" for k, limit in limits.items()
                    if measured[k] > limit]
        if violated:  # skip the training: the sampler sees pck=0 and an infeasible trial
            attrs.update(pck=0.0, per_joint_pck=[], images_per_s=0.0, epochs=0, pck_curve=[],
                         skipped="; ".join(violated))
        else:
            curve: list[float] = []

            def on_epoch(epoch: int, metrics: dict) -> None:
                curve.append(float(metrics["pck"]))
                tune.report({"pck": float(metrics["pck"]), "epoch": int(epoch)})

            device = "cuda" if job["gpus"] > 0 and torch.cuda.is_available() else "cpu"
            quiet = job["quiet"]
            res = train_proxy(spec, train, val, ProxyBudget(**budget), callback=on_epoch,
                              device=device, threads=job["cpus"], step_guard=quiet.step if quiet else None)
            if res.pck != res.pck:  # NaN
                raise FloatingPointError("proxy PCK is NaN")
            attrs.update(pck=float(res.pck), per_joint_pck=[float(x) for x in res.per_joint],
                         images_per_s=float(res.images_per_s), epochs=int(res.epochs), pck_curve=curve)
        attrs["wall_s"] = time.perf_counter() - start
        tune.report({"pck": attrs["pck"], "final": True, "attrs_json": json.dumps(attrs)})
    except Exception as err:  # bad arch, NaN loss, CUDA OOM, ...: this trial fails, the study goes on
        attrs["wall_s"] = time.perf_counter() - start
        tune.report({"final": True, "fail_reason": one_line(err), "attrs_json": json.dumps(attrs, default=str)})


# -- the driver ----------------------------------------------------------------------------------------
def header(cfg: StudyConfig) -> str:
    r = cfg.resources
    gpu = f", {r['gpus_per_trial']:g} GPU" if r["gpus_per_trial"] else ""
    lat = cfg.latency
    return "\n".join([
        f"study     {cfg.name}  ({cfg.source})",
        f"storage   {mask_url(cfg.storage_url)}",
        f"data      {cfg.data['source']}  (train {cfg.data['train']}, val {cfg.data['val']})",
        f"sampler   {cfg.sampler['name']} seed {cfg.sampler['seed']}"
        + (f", proxy seeds {cfg.seeds}" if cfg.seeds else "") + "; objectives "
        + ", ".join(f"{o['name']} ({o['direction'][:3]})" for o in cfg.objectives),
        f"trials    {cfg.trials}, {cfg.concurrency} at a time",
        f"resources {r['cpus_per_trial']} CPU{gpu} per trial; latency on {lat['device']}, "
        f"{lat['threads']} thread(s), median of {lat['runs']}",
    ])


def prepare_study(cfg: StudyConfig, *, resume: bool) -> optuna.Study:
    """Create the study (or load it with --resume); refuse to reuse one silently."""
    storage = open_storage(cfg.storage_url)
    exists = cfg.name in optuna.get_all_study_names(storage)
    if exists and not resume:
        raise ConfigError(f"study {cfg.name!r} already exists in {mask_url(cfg.storage_url)}; "
                          "pass --resume to continue it, or --out/--storage for a new one",
                          source=cfg.source, field="name")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(study_name=cfg.name, storage=storage, sampler=build_sampler(cfg),
                                    directions=cfg.directions, load_if_exists=True)
        if not exists or not study.metric_names:
            study.set_metric_names(cfg.objective_names)
    if list(study.directions) != [optuna.study.StudyDirection[d.upper()] for d in cfg.directions]:
        raise ConfigError("the stored study has other objectives than this file", source=cfg.source,
                          field="objectives")
    if not exists or not study.user_attrs.get("config"):
        study.set_user_attr("config", json.loads(json.dumps(cfg.to_dict(), default=str)))
        study.set_user_attr("created", dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
        study.set_user_attr("softgate_version", version())
    return study


def _ray_init(address: str | None, verbose: bool) -> None:
    import ray

    if ray.is_initialized():
        return
    common = dict(log_to_driver=verbose, logging_level=logging.INFO if verbose else logging.ERROR,
                  configure_logging=True)
    if address:
        # workers on other nodes get the code through the runtime env, the data through the object store
        env = {"working_dir": str(REPO), "excludes": ["runs/", ".git/", ".venv/", "*.db", "benchmarks/"]}
        try:
            ray.init(address=address, runtime_env=env, **common)
        except ConnectionError as err:
            raise ConfigError(f"cannot join the Ray cluster ({one_line(err)})", source="<arg>",
                              field="--address") from None
    else:
        env = {"env_vars": {"PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}}
        # address="local": always a private Ray, never a cluster that happens to run on this machine
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, runtime_env=env, **common)


def run_study(cfg: StudyConfig, *, resume: bool = False, address: str | None = None, verbose: bool = False,
              printer: Callable[[str], None] = print) -> optuna.Study:
    """Run (or continue) the study until `cfg.trials` trials count in the storage; returns the study."""
    from space.search_space import SearchSpace
    from trainers.data import load_poses
    from trainers.proxy import ProxyBudget

    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)
    space = SearchSpace.from_dict(cfg.space, source=cfg.source)
    budget = ProxyBudget(**cfg.proxy)
    points = len(space.grid()) * len(cfg.seeds or [None])
    if cfg.sampler["name"] == "grid" and cfg.trials > points:
        seeds = f" x {len(cfg.seeds)} seeds" if cfg.seeds else ""
        printer(f"note: the grid has {points} points{seeds}; running that many trials, not {cfg.trials}")
        cfg.trials = points
    printer(header(cfg))
    # the data is prepared once, here, and shipped to the workers through Ray's object store
    size = cfg.proxy["input_size"]
    d = cfg.data
    train = load_poses(d["source"], d["train_split"], size, subset=d["train"], seed=d["seed"])
    val = load_poses(d["source"], d["val_split"], size, subset=d["val"], seed=d["seed"])
    cfg.out_dir.mkdir(parents=True, exist_ok=True)  # only now: bad data must leave nothing behind
    study = prepare_study(cfg, resume=resume)

    # environment for Ray, read when ray is first imported
    if address and "RAY_AUTH_MODE" not in os.environ and (Path.home() / ".ray" / "auth_token").is_file():
        # `ray start` clusters use token auth by default; ray.init(address=...) does not pick up
        # the token by itself (Ray 2.60) unless told to
        os.environ["RAY_AUTH_MODE"] = "token"
    if not verbose:
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
        os.environ.setdefault("RAY_DEDUP_LOGS", "0")
        for name in ("ray", "ray.tune", "ray.train"):
            logging.getLogger(name).setLevel(logging.ERROR)
    from ray import tune

    from search.latency import quiet_window, start_meter

    _ray_init(address, verbose)
    quiet = quiet_window(cfg.name, cfg.latency)  # the meter holds it, the trials step through it
    meter = start_meter(cfg.name, cfg.latency, quiet)
    r = cfg.resources
    job = {"cpus": r["cpus_per_trial"], "gpus": r["gpus_per_trial"], "data": d["source"],
           "budget": dataclasses.asdict(budget), "constraints": cfg.constraints, "meter": meter, "quiet": quiet}
    trainable = tune.with_resources(tune.with_parameters(run_trial, train=train, val=val, job=job),
                                    {"cpu": r["cpus_per_trial"], "gpu": r["gpus_per_trial"]})
    searcher = make_searcher(study, cfg, space, printer)
    scheduler = None
    if cfg.scheduler:
        from ray.tune.schedulers import ASHAScheduler
        scheduler = ASHAScheduler(metric="pck", mode="max", time_attr="training_iteration",
                                  max_t=max(int(cfg.proxy.get("epochs") or 1), 1) + 1,
                                  grace_period=cfg.scheduler["grace_period"],
                                  reduction_factor=cfg.scheduler["reduction_factor"])
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=cfg.trials,
                                    max_concurrent_trials=cfg.concurrency, reuse_actors=True),
        run_config=tune.RunConfig(name=f"ray-{int(time.time())}", storage_path=str((cfg.out_dir / "ray").resolve()),
                                  verbose=2 if verbose else 0,
                                  # a worker or node that dies is Ray's to retry, once; the trial's own
                                  # errors never reach Ray (run_trial reports them as fail_reason)
                                  failure_config=tune.FailureConfig(max_failures=1)),
    )
    try:
        tuner.fit()
    finally:
        searcher.close()
    _summary(study, cfg, searcher.start, printer)
    return study


def _summary(study: optuna.Study, cfg: StudyConfig, start: float, printer: Callable[[str], None]) -> None:
    trials = study.get_trials(deepcopy=False)
    by_state = {s.name: sum(1 for t in trials if t.state == s and counts_toward_target(t)) for s in TrialState}
    states = ", ".join(f"{n} {k}" for k, n in by_state.items() if n)
    best = study.best_trials if by_state.get("COMPLETE") else []
    printer(f"done in {_dur(time.time() - start)}: {states}; Pareto front {len(best)} trial(s)")
    for t in sorted(best, key=lambda t: t.number):
        printer(f"  trial {t.number} " + " ".join(f"{k}={_fmt(v)}" for k, v in zip(cfg.objective_names, t.values))
                + f"  {t.user_attrs.get('arch_id', '')}")
