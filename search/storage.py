"""The Optuna storage side of a study: open it, and find and hand back the trials of dead processes.

The storage is the source of truth (storage contract in docs/design.md). Which trials count toward
the requested number: COMPLETE, PRUNED, FAIL except "interrupted" and "surplus", RUNNING, WAITING.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import optuna
from optuna.trial import TrialState

from search.config import engine_url, mask_url
from space.errors import ConfigError

# how often the driver marks its running trials alive in the storage, and after how long without a
# heartbeat a RUNNING trial is taken to belong to a dead process (env overrides: tests, slow networks)
HEARTBEAT_S = int(os.environ.get("SOFTGATE_HEARTBEAT_S", 5))
GRACE_S = int(os.environ.get("SOFTGATE_GRACE_S", 20))
INTERRUPTED = "interrupted"
SURPLUS = "surplus"


def one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or "no message"
    return f"{type(err).__name__}: {text}"[:300]


def counts_toward_target(t: optuna.trial.FrozenTrial) -> bool:
    if t.state == TrialState.FAIL:
        return t.user_attrs.get("fail_reason") not in (INTERRUPTED, SURPLUS)
    return True


def finished(t: optuna.trial.FrozenTrial) -> bool:
    return t.state.is_finished() and counts_toward_target(t)


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
