"""`StorageSearcher`: the Ray Tune searcher that asks and tells the Optuna study in its storage.

How the requested number of trials is reached, however many processes share the study: before each
ask the searcher counts the trials in the storage that count (`search.storage.counts_toward_target`);
after the ask it checks its new trial's rank among them, so that of two processes racing for the
last slot, the later one withdraws (FAIL, fail_reason "surplus"). A process whose trial count is
reached waits while other processes' trials still run: if one of those processes dies, its trials
stop sending heartbeats, are marked FAIL "interrupted" after `GRACE_S`, and are re-run (same
parameters) by whoever is still there.

A module-level class on purpose: Ray cloudpickles a class defined inside a function by value into
its experiment files, and a closure over the config would write the storage URL (with its password)
there. This one is pickled by reference, and its `__getstate__` returns {}.
"""
from __future__ import annotations

import contextlib
import json
import logging
import signal
import threading
import time
import warnings
from typing import Any, Callable, Iterator

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

from search import storage
from search.artifacts import PREVIEW_KEY, TrialExtras, decode_preview
from search.config import StudyConfig
from search.faults import fault_point
from search.progress import dur, fmt
from search.samplers import SEED_PARAM
from search.storage import SURPLUS, counts_toward_target, fail_stale_trials, finished, interrupt, one_line

log = logging.getLogger("softgate.study")


@contextlib.contextmanager
def sigint_deferred() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) that arrives inside the block until its end, then raise it."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is None:
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


NOT_REUSED = ("rerun_of", "reused_from")  # user attrs about a trial's history, not its arch's result


class StorageSearcher(Searcher):
    """Optuna ask/tell against the real storage, one Optuna trial per Ray Tune trial."""

    def __init__(self, study: optuna.Study, cfg: StudyConfig, space: Any, printer: Callable[[str], None]) -> None:
        super().__init__(metric=None, mode=None)
        self.study, self.cfg, self.space, self.printer = study, cfg, space, printer
        self.extras = TrialExtras.from_config(cfg)  # notes and artifacts for optuna-dashboard
        self.live: dict[str, optuna.Trial] = {}
        self._asking: optuna.Trial | None = None  # asked, not yet in live
        self.last: dict[str, dict] = {}
        self.curves: dict[str, list[float]] = {}  # per-epoch pck as reported, for pruned trials
        self.start = time.time()
        self.done_here = 0
        self._full_until = 0.0
        self._said_waiting = False
        self._said_timeout = False
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, daemon=True)
        self._beat.start()

    # heartbeats: the driver vouches for its trials while they run on the workers
    def _heartbeat(self) -> None:
        while not self._stop.wait(storage.HEARTBEAT_S):
            for trial in list(self.live.values()):
                try:
                    self.study._storage.record_heartbeat(trial._trial_id)
                except Exception as err:  # a storage hiccup must not kill the study
                    log.warning("heartbeat failed: %s", one_line(err))

    def close(self) -> None:
        """Stop the heartbeats; trials still live (Ctrl-C, a crash) are handed back for re-running."""
        self._stop.set()
        asking = [self._asking] if self._asking is not None else []
        for trial in list(self.live.values()) + asking:  # a finished one is left alone by interrupt
            interrupt(self.study, trial._trial_id)
        self.live.clear()
        self._asking = None

    # Tune pickles its searcher for its own restore; the storage (not Ray) is what we resume from
    def __getstate__(self) -> dict:
        return {}

    def save(self, checkpoint_path: str) -> None:
        pass

    def restore(self, checkpoint_path: str) -> None:
        pass

    def _counted(self) -> list[optuna.trial.FrozenTrial]:
        return [t for t in self.study.get_trials(deepcopy=False) if counts_toward_target(t)]

    # -- asking -------------------------------------------------------------------------------------
    def suggest(self, trial_id: str) -> dict | str | None:
        if self.live and time.time() < self._full_until:
            return None  # the count was reached a moment ago: spare the storage Tune's polling
        fail_stale_trials(self.study)
        counted = self._counted()
        # WAITING trials (re-runs of interrupted ones) are asked whatever the count says: they are
        # part of it, and only an ask turns them into results (a resume killed after enqueueing them
        # would otherwise leave a study that every later --resume calls full)
        waiting = any(t.state == TrialState.WAITING for t in counted)
        if len(counted) >= self.cfg.trials and not waiting:
            return self._when_full(counted)
        if self._timed_out():
            return Searcher.FINISHED if not self.live else None  # the running trials finish
        trial = self._ask()
        if trial is None:
            return None
        try:
            spec = (self.space.sample_grid(trial) if self.cfg.sampler.name == "grid"
                    else self.space.sample(trial))
        except Exception as err:  # a space that cannot make a valid arch: this trial fails
            trial.set_user_attr("fail_reason", one_line(err))
            self.study.tell(trial, state=TrialState.FAIL)
            self._progress(trial.number, None, one_line(err))
            return None
        # `latency.cache: false` asks for a fresh measurement per trial, so it trains again too
        reuse = self.cfg.latency.cache and not self.cfg.seeds
        earlier = self._trained_before(spec.arch_id) if reuse else None
        if earlier is not None:
            self._reuse(trial, spec, earlier)
            return None
        self.live[trial_id] = trial
        self._asking = None
        config = self._trial_config(trial, spec)
        fault_point("suggested")
        return config

    def _timed_out(self) -> bool:
        """The study's `timeout` has passed since this launch started: no new trial (said once)."""
        if self.cfg.timeout is None or time.time() - self.start < self.cfg.timeout:
            return False
        if not self._said_timeout:
            self.printer(f"timeout: {self.cfg.timeout:g} s since the start: no new trials, the running ones "
                         f"finish; --resume goes on towards {self.cfg.trials}")
            self._said_timeout = True
        return True

    def _when_full(self, counted: list[optuna.trial.FrozenTrial]) -> str | None:
        """The count is reached: finish, or wait for this process's or others' running trials."""
        mine = {t._trial_id for t in self.live.values()}
        others_running = [t for t in counted if t.state == TrialState.RUNNING and t._trial_id not in mine]
        if others_running and not self.live:
            if not self._said_waiting:  # say why nothing happens (a dead process's trials take GRACE_S)
                self.printer(f"waiting for {len(others_running)} trial(s) running elsewhere; a dead "
                             f"process's trials are re-run after {storage.GRACE_S} s without heartbeat")
                self._said_waiting = True
            time.sleep(1.0)  # wait: they finish, or go stale and come back as WAITING
            return None
        self._full_until = time.time() + 1.0
        return Searcher.FINISHED if not self.live else None

    def _ask(self) -> optuna.Trial | None:
        """A new trial, heartbeat recorded at once; None when another process took the last slot."""
        # until suggest hands it to Tune (self.live), close() must still find it: a Ctrl-C inside ask
        # (the trial row exists, the sampler still runs) or before it reaches live would otherwise
        # leave it RUNNING without params or heartbeats; so Ctrl-C waits for the end of the ask
        with warnings.catch_warnings(), sigint_deferred():
            warnings.simplefilter("ignore")  # "heartbeat is supposed to be used with optimize"
            trial = self.study.ask()
            self._asking = trial
        fault_point("ask")  # between ask and the first heartbeat
        self.study._storage.record_heartbeat(trial._trial_id)
        rank = sum(1 for t in self._counted() if t.number < trial.number)
        if rank >= self.cfg.trials:  # another process took the last slot meanwhile
            trial.set_user_attr("fail_reason", SURPLUS)
            self.study.tell(trial, state=TrialState.FAIL)
            return None
        return trial

    def _trial_config(self, trial: optuna.Trial, spec: Any) -> dict:
        # known before training: failed and pruned trials carry them too
        trial.set_user_attr("arch", spec.to_dict())
        trial.set_user_attr("arch_id", spec.arch_id)
        config = {"arch": spec.to_dict(), "number": trial.number}
        if self.cfg.seeds:
            config["seed"] = trial.suggest_categorical(SEED_PARAM, list(self.cfg.seeds))
        cached = self._cached_latency(spec.arch_id) if self.cfg.latency.cache else None
        if cached:
            config["latency"] = cached
        return config

    def _trained_before(self, arch_id: str) -> optuna.trial.FrozenTrial | None:
        # proxies are seeded, so training an arch again gives its first result again (grid studies
        # with `seeds:` train one arch per seed on purpose, and are not asked here)
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if t.user_attrs.get("arch_id") == arch_id:
                return t
        return None

    def _reuse(self, trial: optuna.Trial, spec: Any, earlier: optuna.trial.FrozenTrial) -> None:
        """An arch this study already trained is not trained again: the trial takes the earlier result."""
        self._trial_config(trial, spec)
        for key, value in earlier.user_attrs.items():
            if key not in NOT_REUSED:  # the earlier trial's own history is not this trial's
                trial.set_user_attr(key, value)
        for key, value in (earlier.user_attrs.get("constraints") or {}).items():
            trial.set_constraint(key, value)
        trial.set_user_attr("reused_from", earlier.number)
        self.study.tell(trial, list(earlier.values))
        self._asking = None
        self._progress(trial.number, list(earlier.values), None)

    def _cached_latency(self, arch_id: str) -> dict | None:
        from search.latency import LATENCY_KEYS

        for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if t.user_attrs.get("arch_id") == arch_id and all(k in t.user_attrs for k in LATENCY_KEYS):
                return {k: t.user_attrs[k] for k in LATENCY_KEYS}
        return None

    # -- telling ------------------------------------------------------------------------------------
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
        fault_point("tell")  # the result's attrs stored, the trial still RUNNING
        if reason:
            trial.set_user_attr("fail_reason", reason)
            self.extras.record(trial, f"FAIL ({reason})")
            self.study.tell(trial, state=TrialState.FAIL)
            self._progress(trial.number, None, reason)
        elif not result.get("final"):  # stopped early by ASHA
            self._tell_pruned(trial, result, curve)
        else:
            values = [float(attrs[name]) for name in self.cfg.objective_names]
            self.extras.record(trial, "COMPLETE", dict(zip(self.cfg.objective_names, values)),
                               decode_preview(result.get(PREVIEW_KEY)))
            self.study.tell(trial, values)
            fault_point("told")
            self._progress(trial.number, values, None)

    def _tell_pruned(self, trial: optuna.Trial, result: dict, curve: list[float]) -> None:
        if "epoch" in result and int(result["epoch"]) > len(curve):  # Tune skips on_trial_result on STOP
            curve.append(float(result["pck"]))
        trial.set_user_attr("pruned_at_epoch", int(result.get("epoch", 0)))
        trial.set_user_attr("pck_curve", curve)
        if "pck" in result:
            trial.set_user_attr("pck", float(result["pck"]))
        self.extras.record(trial, f"PRUNED (ASHA) at epoch {int(result.get('epoch', 0))}")
        self.study.tell(trial, state=TrialState.PRUNED)
        self._progress(trial.number, None, None, pruned=True)

    def _progress(self, number: int, values: list[float] | None, reason: str | None,
                  pruned: bool = False) -> None:
        self.done_here += 1
        trials = self.study.get_trials(deepcopy=False)
        n = sum(1 for t in trials if finished(t))
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        pareto = len(self.study.best_trials) if complete else 0
        elapsed = time.time() - self.start
        eta = elapsed / self.done_here * max(self.cfg.trials - n, 0)
        if self.cfg.timeout is not None:  # no trial starts after it; the running ones take about a trial's time
            eta = min(eta, max(self.cfg.timeout - elapsed, 0) + elapsed / self.done_here * self.cfg.concurrency)
        if values is not None:
            what = " ".join(f"{k}={fmt(v)}" for k, v in zip(self.cfg.objective_names, values))
        elif pruned:
            what = "PRUNED (ASHA)"
        else:
            what = f"FAIL {reason}"
        self.printer(f"[{n}/{self.cfg.trials}] trial {number} {what} | pareto {pareto} | "
                     f"elapsed {dur(elapsed)} eta {dur(eta)}")
