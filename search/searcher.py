"""`StorageSearcher`: the Ray Tune searcher that asks and tells the Optuna study in its storage.

A thin adapter between Tune's Searcher interface and the parts that each do one job:
`search.quota.TrialQuota` (may this process ask another trial: the count across processes, the
timeout), `search.live.LiveTrials` (the trials this process runs: heartbeats, hand-back on close),
`search.reuse.ReuseCache` (an arch the study already trained takes its earlier result and latency)
and `search.progress.ProgressReporter` (the line printed as each trial ends).

A module-level class on purpose: Ray cloudpickles a class defined inside a function by value into
its experiment files, and a closure over the config would write the storage URL (with its password)
there. This one is pickled by reference, and its `__getstate__` returns {}.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

from search.artifacts import PREVIEW_KEY, TrialExtras, decode_preview
from search.config import StudyConfig
from search.faults import fault_point
from search.live import LiveTrials, sigint_deferred  # noqa: F401  (sigint_deferred re-exported)
from search.progress import ProgressReporter
from search.quota import ASK, DONE, TrialQuota
from search.reuse import NOT_REUSED, ReuseCache  # noqa: F401  (NOT_REUSED re-exported)
from search.samplers import SEED_PARAM
from search.storage import StoredStudy, fail_stale_trials, one_line


class StorageSearcher(Searcher):
    """Optuna ask/tell against the real storage, one Optuna trial per Ray Tune trial."""

    def __init__(self, study: StoredStudy, cfg: StudyConfig, space: Any,
                 printer: Callable[[str], None]) -> None:
        super().__init__(metric=None, mode=None)
        self.study, self.cfg, self.space = study, cfg, space
        self.extras = TrialExtras.from_config(cfg)  # notes and artifacts for optuna-dashboard
        self.quota = TrialQuota(study, cfg.trials, cfg.timeout, printer)
        self.reuse = ReuseCache.from_config(study, cfg)
        self.progress = ProgressReporter(study, cfg, printer)
        self.live = LiveTrials(study)
        self.last: dict[str, dict] = {}
        self.curves: dict[str, list[float]] = {}  # per-epoch pck as reported, for pruned trials
        # GridSampler picks whole grid points, by index: the space samples them its own way
        self._sample = space.sample_grid if cfg.sampler.name == "grid" else space.sample

    @property
    def start(self) -> float:
        """When this launch started: the timeout and the ETA count from it."""
        return self.quota.start

    @start.setter
    def start(self, value: float) -> None:
        self.quota.start = self.progress.start = value

    def close(self) -> None:
        """Stop the heartbeats; trials still live (Ctrl-C, a crash) are handed back for re-runs."""
        self.live.close()

    # Tune pickles its searcher for its own restore; the storage (not Ray) is what we resume from
    def __getstate__(self) -> dict:
        return {}

    def save(self, checkpoint_path: str) -> None:
        pass

    def restore(self, checkpoint_path: str) -> None:
        pass

    # -- asking ------------------------------------------------------------------------------------
    def suggest(self, trial_id: str) -> dict | str | None:
        if self.live and self.quota.resting():
            return None
        fail_stale_trials(self.study)
        gate = self.quota.gate(self.live.numbers())
        if gate != ASK:
            return Searcher.FINISHED if gate == DONE and not self.live else None
        trial = self.live.ask()
        if self.quota.withdraw_surplus(trial):
            self.live.told()
            return None
        spec = self._arch(trial)
        if spec is None:
            return None
        earlier = self.reuse.earlier(spec.arch_id)
        if earlier is not None:  # already trained in this study: no training, its result
            self._label(trial, spec)
            values = self.reuse.take_over(trial, earlier)
            self.live.told()
            self.progress.trial_done(trial.number, values)
            return None
        self.live.run(trial_id, trial)
        config = self._trial_config(trial, spec)
        fault_point("suggested")
        return config

    def _arch(self, trial: optuna.Trial) -> Any:
        """The trial's ArchSpec; None, with the trial told FAIL, when the space cannot make one."""
        try:
            return self._sample(trial)
        except Exception as err:  # a space that cannot make a valid arch: this trial fails
            trial.set_user_attr("fail_reason", one_line(err))
            self.study.tell(trial, state=TrialState.FAIL)
            self.live.told()
            self.progress.trial_done(trial.number, None, one_line(err))
            return None

    def _label(self, trial: optuna.Trial, spec: Any) -> None:
        # known before training: failed and pruned trials carry them too
        trial.set_user_attr("arch", spec.to_dict())
        trial.set_user_attr("arch_id", spec.arch_id)

    def _trial_config(self, trial: optuna.Trial, spec: Any) -> dict:
        self._label(trial, spec)
        config = {"arch": spec.to_dict(), "number": trial.number}
        if self.cfg.seeds:
            config["seed"] = trial.suggest_categorical(SEED_PARAM, list(self.cfg.seeds))
        cached = self.reuse.latency(spec.arch_id)
        if cached:
            config["latency"] = cached
        return config

    # -- telling -----------------------------------------------------------------------------------
    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.last[trial_id] = result
        if "epoch" in result:
            self.curves.setdefault(trial_id, []).append(float(result["pck"]))

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        trial = self.live.pop(trial_id)
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
            self._tell_failed(trial, reason)
        elif not result.get("final"):  # stopped early by ASHA
            self._tell_pruned(trial, result, curve)
        else:
            self._tell_complete(trial, result, attrs)

    def _tell_failed(self, trial: optuna.Trial, reason: str) -> None:
        trial.set_user_attr("fail_reason", reason)
        self.extras.record(trial, f"FAIL ({reason})")
        self.study.tell(trial, state=TrialState.FAIL)
        self.progress.trial_done(trial.number, None, reason)

    def _tell_pruned(self, trial: optuna.Trial, result: dict, curve: list[float]) -> None:
        # Tune skips on_trial_result for the result that stops a trial
        if "epoch" in result and int(result["epoch"]) > len(curve):
            curve.append(float(result["pck"]))
        trial.set_user_attr("pruned_at_epoch", int(result.get("epoch", 0)))
        trial.set_user_attr("pck_curve", curve)
        if "pck" in result:
            trial.set_user_attr("pck", float(result["pck"]))
        self.extras.record(trial, f"PRUNED (ASHA) at epoch {int(result.get('epoch', 0))}")
        self.study.tell(trial, state=TrialState.PRUNED)
        self.progress.trial_done(trial.number, None, None, pruned=True)

    def _tell_complete(self, trial: optuna.Trial, result: dict, attrs: dict) -> None:
        values = [float(attrs[name]) for name in self.cfg.objective_names]
        self.extras.record(trial, "COMPLETE", dict(zip(self.cfg.objective_names, values)),
                           decode_preview(result.get(PREVIEW_KEY)))
        self.study.tell(trial, values)
        fault_point("told")
        self.progress.trial_done(trial.number, values, None)
