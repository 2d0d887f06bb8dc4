"""`TrialQuota`: whether this process may ask the study one more trial.

How the requested number of trials is reached, however many processes share the study: before each
ask the quota counts the trials in the storage that count (`search.storage.counts_toward_target`);
after the ask it checks the new trial's rank among them, so that of two processes racing for the
last slot, the later one withdraws (FAIL, fail_reason "surplus"). A process whose trial count is
reached waits while other processes' trials still run: if one of those processes dies, its trials
stop sending heartbeats (search/live.py), are marked FAIL "interrupted" after `GRACE_S`, and are
re-run (same parameters) by whoever is still there. The study's `timeout` counts from this launch's
start: after it no trial starts, and the running ones finish.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

import optuna
from optuna.trial import TrialState

from search import storage
from search.storage import SURPLUS, counts_toward_target

Gate = Literal["ask", "wait", "done"]
ASK: Gate = "ask"  # ask a new trial
WAIT: Gate = "wait"  # nothing to ask now; ask again later
DONE: Gate = "done"  # no new trial: finish once this process's running trials have


class TrialQuota:
    """The study's trial count across processes and its timeout, said once each when they stop
    this process from asking."""

    def __init__(
        self,
        study: optuna.Study,
        trials: int,
        timeout: float | None,
        printer: Callable[[str], None],
    ) -> None:
        self.study, self.trials, self.timeout, self.printer = study, trials, timeout, printer
        self.start = time.time()  # this launch's start: the timeout counts from it
        self._full_until = 0.0
        self._said_waiting = False
        self._said_timeout = False

    def counted(self) -> list[optuna.trial.FrozenTrial]:
        """The study's trials that count toward `trials`, every process's."""
        return [t for t in self.study.get_trials(deepcopy=False) if counts_toward_target(t)]

    def resting(self) -> bool:
        """The count was reached a moment ago: spare the storage Tune's polling."""
        return time.time() < self._full_until

    def gate(self, mine: set[int]) -> Gate:
        """Whether to ask now; `mine` are the numbers of the trials this process runs."""
        counted = self.counted()
        # WAITING trials (re-runs of interrupted ones) are asked whatever the count says: they are
        # part of it, and only an ask turns them into results (a resume killed after enqueueing them
        # would otherwise leave a study that every later --resume calls full)
        waiting = any(t.state == TrialState.WAITING for t in counted)
        if len(counted) >= self.trials and not waiting:
            return self._when_full(counted, mine)
        return DONE if self.timed_out() else ASK

    def _when_full(self, counted: list[optuna.trial.FrozenTrial], mine: set[int]) -> Gate:
        """The count is reached: finish, or wait for this process's or others' running trials."""
        others = [t for t in counted if t.state == TrialState.RUNNING and t.number not in mine]
        if others and not mine:
            if not self._said_waiting:  # say why nothing happens (a dead process's take GRACE_S)
                self.printer(
                    f"waiting for {len(others)} trial(s) running elsewhere; a dead "
                    f"process's trials are re-run after {storage.GRACE_S} s without "
                    "heartbeat"
                )
                self._said_waiting = True
            time.sleep(1.0)  # wait: they finish, or go stale and come back as WAITING
            return WAIT
        self._full_until = time.time() + 1.0
        return DONE

    def timed_out(self) -> bool:
        """The study's `timeout` has passed since this launch started (said once)."""
        if self.timeout is None or time.time() - self.start < self.timeout:
            return False
        if not self._said_timeout:
            self.printer(
                f"timeout: {self.timeout:g} s since the start: no new trials, the running "
                f"ones finish; --resume goes on towards {self.trials}"
            )
            self._said_timeout = True
        return True

    def withdraw_surplus(self, trial: optuna.Trial) -> bool:
        """True, with `trial` told FAIL "surplus", when another process took the last slot between
        the count and this ask."""
        rank = sum(1 for t in self.counted() if t.number < trial.number)
        if rank < self.trials:
            return False
        trial.set_user_attr("fail_reason", SURPLUS)
        self.study.tell(trial, state=TrialState.FAIL)
        return True
