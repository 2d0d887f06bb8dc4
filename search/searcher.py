"""`StorageSearcher`: the Ray Tune searcher that asks and tells the Optuna study in its storage.

A thin adapter between Tune's Searcher interface and the parts that each do one job:
`search.quota.TrialQuota` (may this process ask another trial: the count across processes, the
timeout), `search.live.LiveTrials` (the trials this process runs: heartbeats, hand-back on close),
`search.reuse.ReuseCache` (an arch the study already trained takes its earlier result and latency;
one that a trial is training right now parks the new trial until that one ends),
`search.outcome.OutcomeTeller` (how a trial ended, told to Optuna) and
`search.progress.ProgressReporter` (the line printed as each trial ends).

A module-level class on purpose: Ray cloudpickles a class defined inside a function by value into
its experiment files, and a closure over the config would write the storage URL (with its password)
there. This one is pickled by reference, and its `__getstate__` returns {}.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

from search.artifacts import TrialExtras
from search.config import StudyConfig
from search.faults import fault_point
from search.live import LiveTrials
from search.outcome import OutcomeTeller
from search.progress import ProgressReporter
from search.quota import ASK, DONE, TrialQuota
from search.reuse import REUSE, TRAIN, WAIT, ReuseCache
from search.samplers import SEED_PARAM
from search.storage import StoredStudy, fail_stale_trials, one_line

# how often parked trials look again whether the trial they wait for has ended (this process's own
# trials ending make them look at once)
PARKED_CHECK_S = 0.5


class StorageSearcher(Searcher):
    """Optuna ask/tell against the real storage, one Optuna trial per Ray Tune trial."""

    def __init__(
        self, study: StoredStudy, cfg: StudyConfig, space: Any, printer: Callable[[str], None]
    ) -> None:
        super().__init__(metric=None, mode=None)
        self.study, self.cfg, self.space = study, cfg, space
        self.quota = TrialQuota(study, cfg.trials, cfg.timeout, printer)
        self.reuse = ReuseCache.from_config(study, cfg)
        self.progress = ProgressReporter(study, cfg, printer)
        # notes and artifacts for optuna-dashboard go with each outcome
        self.outcomes = OutcomeTeller(
            study, cfg.objective_names, TrialExtras.from_config(cfg), self.progress
        )
        self.live = LiveTrials(study)
        self.printer = printer
        self.parked: dict[int, tuple[Any, int]] = {}  # number -> (its ArchSpec, the trial awaited)
        self._next_check = 0.0  # when the parked trials look again
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
        config = self._settle_parked(trial_id)
        if config is not None:  # a parked trial whose arch nobody trains now: it trains
            return config
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
        self._label(trial, spec)  # before settle: a trial asked elsewhere now sees this one
        verdict, other = self.reuse.settle(spec.arch_id, trial.number)
        if verdict == REUSE:  # already trained in this study: no training, its result
            self._reuse(trial, other)
            return None
        if verdict == WAIT:  # being trained right now: wait for its result (no Tune trial)
            trial.set_user_attr("waits_for", other.number)
            self.live.park()
            self.parked[trial.number] = (spec, other.number)
            return None
        return self._start(trial_id, trial, spec)

    def _start(self, trial_id: str, trial: optuna.Trial, spec: Any) -> dict:
        """The trial goes to Tune as `trial_id`: its config."""
        self.live.run(trial_id, trial)
        config = self._trial_config(trial, spec)
        fault_point("suggested")
        return config

    def _reuse(self, trial: optuna.Trial, earlier: optuna.trial.FrozenTrial) -> None:
        """`trial` (asked or parked) takes the result of `earlier`, the arch's first COMPLETE."""
        values = self.reuse.take_over(trial, earlier, self._note_reuse)
        if self.parked.pop(trial.number, None) is None:
            self.live.told()
        else:
            self.live.unpark(trial)
        self.progress.trial_done(trial.number, values)

    def _settle_parked(self, trial_id: str) -> dict | None:
        """Parked trials whose awaited trial ended: each takes the arch's result if there is one;
        else the first goes to Tune (its config returned) and the others look again later. Past
        the timeout such a trial is handed back instead (no trial starts after it)."""
        if not self.parked or time.time() < self._next_check:
            return None
        self._next_check = time.time() + PARKED_CHECK_S
        for trial in self.live.parked():
            spec, awaited = self.parked[trial.number]
            verdict, other = self.reuse.settle(spec.arch_id, trial.number)
            if verdict == REUSE:
                self._reuse(trial, other)
            elif verdict == WAIT and other.number != awaited:  # that one ended; another trains
                trial.set_user_attr("waits_for", other.number)
                self.parked[trial.number] = (spec, other.number)
            elif verdict == TRAIN:
                del self.parked[trial.number]
                if not self.quota.timed_out():
                    return self._start(trial_id, trial, spec)
                self.live.hand_back(trial)
                self.printer(
                    f"trial {trial.number} handed back: trial {awaited} of its arch "
                    "ended without a result after the timeout; --resume trains it"
                )
        return None

    def _note_reuse(self, trial: optuna.Trial, values: list[float]) -> None:
        """The dashboard note of a reuse: which trial trained the arch, and its artifacts."""
        self.outcomes.extras.record(trial, "COMPLETE", dict(zip(self.cfg.objective_names, values)))

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

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        trial = self.live.pop(trial_id)
        if trial is None:
            return
        self._next_check = 0.0  # a trial of this process ended: parked ones look at once
        result = result or self.last.get(trial_id) or {}
        self.last.pop(trial_id, None)
        self.outcomes.tell(trial, result, self.curves.pop(trial_id, []), error)
