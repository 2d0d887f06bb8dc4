"""`ReuseCache`: what the study already knows of an architecture, taken instead of measuring again.

Proxies are seeded, so training an arch again gives its first result again: a trial whose arch the
study already trained (a COMPLETE trial) takes that trial's result without training. Its latency is
reused the same way (the trial's config carries it, and the worker does not measure it again).
`latency.cache: false` asks for a fresh measurement per trial, so it turns both off; a study with
`seeds:` trains one arch per seed on purpose, so it reuses no result (its latency still may be).

An arch that another trial is training right now (RUNNING, this process's or another's sharing the
storage) is not trained again either: `settle` says WAIT, and the searcher parks the new trial until
that one ends (search/searcher.py). A trial only waits for a lower-numbered one, so waits never form
a cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import optuna
from optuna.trial import TrialState

from search.latency import LATENCY_KEYS

# user attrs about a trial's own history, not its arch's result
NOT_REUSED = ("rerun_of", "reused_from", "waits_for")

Verdict = Literal["reuse", "wait", "train"]
REUSE: Verdict = "reuse"  # a COMPLETE trial of the arch: take its result
WAIT: Verdict = "wait"  # a lower-numbered trial of the arch is RUNNING: wait for it to end
TRAIN: Verdict = "train"  # neither: train it


class ReuseCache:
    """Earlier results and latencies of the study's COMPLETE trials, looked up by arch_id."""

    def __init__(self, study: optuna.Study, *, results: bool, latency: bool) -> None:
        self.study, self.results, self.latencies = study, results, latency

    @classmethod
    def from_config(cls, study: optuna.Study, cfg: Any) -> ReuseCache:
        """As the study config asks (`latency.cache`, `seeds`); `cfg` is a StudyConfig."""
        return cls(
            study,
            results=bool(cfg.latency.cache and not cfg.seeds),
            latency=bool(cfg.latency.cache),
        )

    def _complete(self) -> list[optuna.trial.FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))

    def earlier(self, arch_id: str) -> optuna.trial.FrozenTrial | None:
        """The first COMPLETE trial of `arch_id`, when results are reused."""
        if not self.results:
            return None
        return next((t for t in self._complete() if t.user_attrs.get("arch_id") == arch_id), None)

    def settle(self, arch_id: str, number: int) -> tuple[Verdict, optuna.trial.FrozenTrial | None]:
        """What trial `number` of `arch_id` does: (REUSE, the first COMPLETE trial of the arch),
        (WAIT, the first RUNNING trial of the arch numbered below it: training it, or waiting
        itself) or (TRAIN, None). Always TRAIN when results are not reused."""
        if not self.results:
            return TRAIN, None
        same = [
            t
            for t in self.study.get_trials(
                deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)
            )
            if t.user_attrs.get("arch_id") == arch_id
        ]
        done = next((t for t in same if t.state == TrialState.COMPLETE), None)
        if done is not None:
            return REUSE, done
        running = next((t for t in same if t.number < number), None)
        return (WAIT, running) if running is not None else (TRAIN, None)

    def latency(self, arch_id: str) -> dict | None:
        """The latency attrs of the first COMPLETE trial of `arch_id` that has them all."""
        if not self.latencies:
            return None
        for t in self._complete():
            if t.user_attrs.get("arch_id") == arch_id and all(
                k in t.user_attrs for k in LATENCY_KEYS
            ):
                return {k: t.user_attrs[k] for k in LATENCY_KEYS}
        return None

    def take_over(
        self,
        trial: optuna.Trial,
        earlier: optuna.trial.FrozenTrial,
        before_tell: Callable[[optuna.Trial, list[float]], None] | None = None,
    ) -> list[float]:
        """Tell `trial` the result of `earlier` (its attrs and constraints too); its values.
        `before_tell` runs once the attrs are set and before the tell (a finished trial's note
        can no longer be written)."""
        for key, value in earlier.user_attrs.items():
            if key not in NOT_REUSED:  # the earlier trial's own history is not this trial's
                trial.set_user_attr(key, value)
        for key, value in (earlier.user_attrs.get("constraints") or {}).items():
            trial.set_constraint(key, value)
        trial.set_user_attr("reused_from", earlier.number)
        values = list(earlier.values)
        if before_tell is not None:
            before_tell(trial, values)
        self.study.tell(trial, values)
        return values
