"""`LiveTrials`: the trials this process asked and runs, vouched for while they run.

A trial may also be parked: asked and sampled, but waiting for another trial that trains the same
arch (search/reuse.py). It stays RUNNING in the storage, is vouched for like a running one, and is
handed back like one.

The driver records each running trial's heartbeat in the storage (the trial itself runs on a Ray
worker), so that other processes can tell its trials from a dead process's (search/storage.py).
When this process stops with trials unfinished (Ctrl-C, a crash caught by `close`), they are handed
back: FAIL "interrupted", and their parameters enqueued for whoever re-runs them.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import warnings
from collections.abc import Iterator

import optuna

from search import storage
from search.faults import fault_point
from search.storage import StoredStudy, interrupt, one_line

log = logging.getLogger("softgate.study")


@contextlib.contextmanager
def sigint_deferred() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) that arrives inside the block until its end, then raise it."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is None
    ):
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


class LiveTrials:
    """This process's running trials by Tune trial id, its parked trials by number, plus the one
    asked and not yet handed to Tune; a daemon thread records the heartbeats of the running and
    parked ones every `storage.HEARTBEAT_S`."""

    def __init__(self, study: StoredStudy) -> None:
        self.study = study
        self._running: dict[str, optuna.Trial] = {}
        self._asking: optuna.Trial | None = None  # asked, not yet running nor told
        self._parked: dict[int, optuna.Trial] = {}  # waiting for another trial of their arch
        self._ids: dict[int, int] = {}  # trial number -> storage trial id, looked up once
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, daemon=True)
        self._beat.start()

    def __len__(self) -> int:
        """The running and parked trials: this process still has work while there are any."""
        return len(self._running) + len(self._parked)

    def numbers(self) -> set[int]:
        """The numbers of the running and parked trials (all count toward the target)."""
        return {t.number for t in self._running.values()} | set(self._parked)

    def parked(self) -> list[optuna.Trial]:
        """The parked trials, oldest first."""
        return [self._parked[n] for n in sorted(self._parked)]

    def ask(self) -> optuna.Trial:
        """A new trial of the study, its first heartbeat recorded at once."""
        # until it runs, close() must still find it: a Ctrl-C inside ask (the trial row exists, the
        # sampler still runs) or before it runs would otherwise leave it RUNNING without params or
        # heartbeats; so Ctrl-C waits for the end of the ask
        with warnings.catch_warnings(), sigint_deferred():
            warnings.simplefilter("ignore")  # "heartbeat is supposed to be used with optimize"
            trial = self.study.ask()
            self._asking = trial
        fault_point("ask")  # between ask and the first heartbeat
        self.study.rdb.record_heartbeat(self._trial_id(trial))
        return trial

    def told(self) -> None:
        """The asked trial was told here (surplus, an unbuildable arch, a reused result)."""
        self._asking = None

    def run(self, tune_id: str, trial: optuna.Trial) -> None:
        """The asked (or a parked) trial goes to Tune as `tune_id`."""
        self._running[tune_id] = trial
        self._parked.pop(trial.number, None)
        if self._asking is trial:
            self._asking = None

    def park(self) -> None:
        """The asked trial waits (no Tune trial) for another trial of its arch."""
        if self._asking is not None:
            self._parked[self._asking.number] = self._asking
        self._asking = None

    def unpark(self, trial: optuna.Trial) -> None:
        """The parked `trial` was told here (it took the result it waited for)."""
        self._parked.pop(trial.number, None)

    def hand_back(self, trial: optuna.Trial) -> None:
        """The parked `trial` will not run here: FAIL "interrupted" and its re-run enqueued."""
        interrupt(self.study, self._trial_id(trial))
        self._parked.pop(trial.number, None)

    def pop(self, tune_id: str) -> optuna.Trial | None:
        """The trial Tune ended, no longer vouched for; None when it is not this process's."""
        return self._running.pop(tune_id, None)

    def close(self) -> None:
        """Stop the heartbeats; trials still live (Ctrl-C, a crash) are handed back for re-runs."""
        self._stop.set()
        asking = [self._asking] if self._asking is not None else []
        # interrupt leaves a finished one alone
        for trial in list(self._running.values()) + list(self._parked.values()) + asking:
            interrupt(self.study, self._trial_id(trial))
        self._running.clear()
        self._parked.clear()
        self._asking = None

    def _trial_id(self, trial: optuna.Trial) -> int:
        if trial.number not in self._ids:
            self._ids[trial.number] = self.study.trial_id(trial.number)
        return self._ids[trial.number]

    def _heartbeat(self) -> None:
        # the driver vouches for its trials while they run on the workers
        while not self._stop.wait(storage.HEARTBEAT_S):
            for trial in list(self._running.values()) + list(self._parked.values()):
                try:
                    self.study.rdb.record_heartbeat(self._trial_id(trial))
                except Exception as err:  # a storage hiccup must not kill the study
                    log.warning("heartbeat failed: %s", one_line(err))
