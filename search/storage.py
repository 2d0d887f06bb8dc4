"""The Optuna storage side of a study: its URL, opening it, and handing back dead processes' trials.

The storage is the source of truth (storage contract in docs/design.md). Which trials count toward
the requested number: COMPLETE, PRUNED, FAIL except "interrupted" and "surplus", RUNNING, WAITING.

Only Optuna's public API is used, except where Optuna has none (`OPTUNA_INTERNALS`): pyproject.toml
bounds optuna's version, and tests/test_optuna_internals.py names the internal that moved.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import warnings
from pathlib import Path
from urllib.parse import quote, unquote

import optuna
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from search.faults import fault_point
from search.urls import check_storage_url, scheme_only, url_problem
from space.errors import ConfigError

# how often the driver marks its running trials alive in the storage, and after how long without a
# heartbeat a RUNNING trial is taken to belong to a dead process (env overrides: tests, slow
# networks)
HEARTBEAT_S = int(os.environ.get("SOFTGATE_HEARTBEAT_S", 5))
GRACE_S = int(os.environ.get("SOFTGATE_GRACE_S", 20))
INTERRUPTED = "interrupted"
SURPLUS = "surplus"

# query keys whose values are never secrets; every other query value is masked
_PLAIN_QUERY_KEYS = {
    "host",
    "port",
    "sslmode",
    "connect_timeout",
    "application_name",
    "charset",
    "driver",
    "check_same_thread",
    "timeout",
    "target_session_attrs",
}


# -- URLs ------------------------------------------------------------------------------------------
def engine_url(url: str) -> str:
    """The URL for SQLAlchemy: plain postgresql:// means psycopg 3 when psycopg2 is not installed
    (SQLAlchemy's default PostgreSQL driver is psycopg2; this project depends on psycopg 3)."""
    if url.startswith("postgresql://"):
        import importlib.util

        if (
            importlib.util.find_spec("psycopg2") is None
            and importlib.util.find_spec("psycopg") is not None
        ):
            return "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def mask_url(url: str) -> str:
    """The URL safe to print and store, parsed by SQLAlchemy: the password and every query value
    that may be a secret become *** (postgresql://user:***@host/db?sslpassword=***); a URL
    SQLAlchemy cannot parse, or that reads more than one way (`search.urls.url_problem`: an
    unencoded '@', '/', '?' or '#' in a password), keeps only its scheme."""
    try:
        if url_problem(url) is not None:  # where its password ends is anyone's guess: hide it all
            return scheme_only(url)
        parsed = make_url(url)
        query = {k: v if k in _PLAIN_QUERY_KEYS else "***" for k, v in parsed.query.items()}
        shown = parsed.set(query=query).render_as_string(hide_password=True)
        return shown.replace("%2A%2A%2A", "***")
    except Exception:  # not a URL SQLAlchemy can read: nothing after the scheme is safe to show
        return scheme_only(url if isinstance(url, str) else "")


def scrub(text: str, url: str) -> str:
    """`text` (an error message) with `url` and its password replaced by their masked forms:
    SQLAlchemy and drivers quote the URL they could not use."""
    text = text.replace(url, mask_url(url))
    secrets = set()
    try:
        parsed = make_url(url)
        secrets.add(parsed.password or "")
        secrets.update(
            v for vs in parsed.query.values() for v in ([vs] if isinstance(vs, str) else vs)
        )
    except Exception:  # unparseable: mask_url already hid everything after the scheme
        pass
    if url_problem(url) is not None:  # no parse is to be trusted: hide every piece of it
        secrets.update(re.split(r"[@:/?#&=]", url.partition("://")[2]))
    for secret in sorted((s for s in secrets if len(s) >= 3), key=len, reverse=True):
        for form in {secret, quote(secret, safe=""), unquote(secret)}:
            text = text.replace(form, "***")
    return text


def sqlite_file(url: str) -> Path | None:
    """The database file of an SQLite URL; None for other storages, in-memory SQLite, a bad URL."""
    try:
        parsed = make_url(url)
    except Exception:
        return None
    if parsed.drivername.startswith("sqlite") and parsed.database not in (None, "", ":memory:"):
        return Path(parsed.database)
    return None


# -- which trials count ----------------------------------------------------------------------------
def one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or "no message"
    return f"{type(err).__name__}: {text}"[:300]


def counts_toward_target(t: optuna.trial.FrozenTrial) -> bool:
    if t.state == TrialState.FAIL:
        return t.user_attrs.get("fail_reason") not in (INTERRUPTED, SURPLUS)
    return True


def finished(t: optuna.trial.FrozenTrial) -> bool:
    return t.state.is_finished() and counts_toward_target(t)


# -- opening ---------------------------------------------------------------------------------------
class StoredStudy(optuna.Study):
    """An optuna.Study that keeps, in the open, the RDBStorage this process opened it with.

    Heartbeats and hand-backs are storage calls by trial id, and Optuna keeps a study's storage and
    a trial's id private: so the storage travels with the study here, and a trial's id is looked
    up by its number through the storage's public API."""

    def __init__(
        self,
        study_name: str,
        storage: optuna.storages.RDBStorage,
        sampler: optuna.samplers.BaseSampler | None = None,
    ) -> None:
        super().__init__(study_name=study_name, storage=storage, sampler=sampler)
        self.rdb = storage
        self.rdb_study_id = storage.get_study_id_from_name(study_name)

    def trial_id(self, number: int) -> int:
        """The storage's id of the study's trial `number`."""
        return self.rdb.get_trial_id_from_study_id_trial_number(self.rdb_study_id, number)


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """RDBStorage with heartbeats (how a dead process's RUNNING trials are found).

    A bad URL, an unreachable server, a missing driver or an SQLite file that cannot be made is a
    one-line ConfigError, and nothing is left behind: the SQLite file's folder is only created when
    the storage then opens. A URL that reads more than one way is refused before any connection
    (search/urls.py)."""
    check_storage_url(url, mask_url(url), "storage")
    made: list[Path] = []
    try:
        file = sqlite_file(url)
        if file is not None:
            folder = file.parent
            made = [p for p in (folder, *folder.parents) if not p.exists()]
            folder.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # heartbeat is "experimental"
            return optuna.storages.RDBStorage(
                engine_url(url), heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S
            )
    except Exception as err:  # bad URL, unreachable server, missing driver: the user's to fix
        for folder in made:  # innermost first; only what this call created, and only if still empty
            try:
                folder.rmdir()
            except OSError:
                break
        raise ConfigError(
            f"cannot open storage ({scrub(one_line(err), url)})",
            source=mask_url(url),
            field="storage",
        ) from None


# -- Optuna internals ------------------------------------------------------------------------------
# Optuna lists stale trials only inside its own fail_stale_trials (which fails them with no reason
# we could add: a finished trial's attrs are read-only), does not show whether a trial has any
# heartbeat, and keeps an enqueued trial's parameters in an undocumented system attr. These are
# the only internals used; tests/test_optuna_internals.py checks each on the installed optuna.
OPTUNA_INTERNALS = (
    "RDBStorage._get_stale_trial_ids(study_id)",
    "RDBStorage.scoped_session()",
    (
        "optuna.storages._rdb.models.TrialModel"
        " (trial_id, study_id, state, datetime_start, heartbeats)"
    ),
    'FrozenTrial.system_attrs["fixed_params"] (an enqueued trial\'s parameters)',
    "optuna._hypervolume.compute_hypervolume(points, reference_point) (report, benchmarks)",
)
FIXED_PARAMS = "fixed_params"


def _internal_moved(err: Exception) -> RuntimeError:
    return RuntimeError(
        f"optuna {optuna.__version__} no longer has an internal that "
        f"search/storage.py relies on ({one_line(err)}); it needs one of "
        f"{'; '.join(OPTUNA_INTERNALS)}: install the optuna pyproject.toml allows"
    )


def _never_beat_ids(study: StoredStudy, cutoff: dt.datetime) -> set[int]:
    """RUNNING trials with no heartbeat at all, started before `cutoff`."""
    from optuna.storages._rdb import models

    session = study.rdb.scoped_session()
    try:
        rows = (
            session.query(models.TrialModel)
            .filter(models.TrialModel.study_id == study.rdb_study_id)
            .filter(models.TrialModel.state == TrialState.RUNNING)
            .all()
        )
        return {
            t.trial_id
            for t in rows
            if not t.heartbeats and t.datetime_start is not None and t.datetime_start < cutoff
        }
    finally:
        session.close()


# -- dead processes' trials ------------------------------------------------------------------------
def stale_trial_ids(study: StoredStudy) -> list[int]:
    """RUNNING trials of dead processes: heartbeat older than GRACE_S, or, for a process killed
    between `ask()` and its first heartbeat, no heartbeat at all and started over GRACE_S ago."""
    # datetime_start is the asking client's local time (optuna's datetime.now()): compare with ours
    cutoff = dt.datetime.now() - dt.timedelta(seconds=GRACE_S)
    try:
        stale = set(study.rdb._get_stale_trial_ids(study.rdb_study_id))
        stale |= _never_beat_ids(study, cutoff)
    except (AttributeError, ImportError, NotImplementedError) as err:  # moved in a new optuna
        raise _internal_moved(err) from err
    return sorted(stale)


def fail_stale_trials(study: StoredStudy) -> int:
    """Mark trials of dead processes FAIL "interrupted" and enqueue the same parameters again.

    Optuna's own `fail_stale_trials` cannot tag the trial with a reason (a finished trial's attrs
    are read-only), so the reason is set while the trial is still RUNNING, then it is failed; of
    several processes doing this at once only the one whose state change succeeds re-enqueues.
    A process killed between the two (failed, not yet enqueued) is made good by `requeue_lost`.
    """
    handed_back = sum(interrupt(study, trial_id) for trial_id in stale_trial_ids(study))
    return handed_back + requeue_lost(study)


def _rerun_key(t: optuna.trial.FrozenTrial) -> tuple[int | None, dict]:
    """(the `rerun_of` its re-run carries, the parameters to re-run); (None, {}) for nothing to
    re-run. A re-run killed before it was sampled has its parameters only in fixed_params: its
    re-run names the same original trial."""
    if t.params:
        return t.number, t.params
    fixed = t.system_attrs.get(FIXED_PARAMS) or {}
    return (t.user_attrs.get("rerun_of"), fixed) if fixed else (None, {})


def interrupt(study: StoredStudy, trial_id: int) -> bool:
    """RUNNING -> FAIL "interrupted", and the same parameters enqueued for a re-run.

    A trial killed before it was sampled has no parameters: nothing to re-run, so nothing is
    enqueued; "interrupted" does not count toward the target, so the searcher asks a fresh trial."""
    rdb = study.rdb
    try:
        rdb.set_trial_user_attr(trial_id, "fail_reason", INTERRUPTED)
        if rdb.set_trial_state_values(trial_id, state=TrialState.FAIL):
            fault_point("interrupt")
            rerun_of, params = _rerun_key(rdb.get_trial(trial_id))
            if params:
                study.enqueue_trial(params, user_attrs={"rerun_of": rerun_of}, skip_if_exists=False)
            return True
    except optuna.exceptions.UpdateFinishedTrialError:
        pass  # another process got there first
    return False


def requeue_lost(study: optuna.Study) -> int:
    """Enqueue the re-run of trials failed "interrupted" over GRACE_S ago whose re-run was never
    enqueued (their process died between failing them and enqueueing)."""
    trials = study.get_trials(deepcopy=False)
    enqueued = {
        (t.user_attrs.get("rerun_of"), t.number) for t in trials if "rerun_of" in t.user_attrs
    }
    cutoff = dt.datetime.now() - dt.timedelta(seconds=GRACE_S)
    lost = 0
    for t in trials:
        if t.state != TrialState.FAIL or t.user_attrs.get("fail_reason") != INTERRUPTED:
            continue
        rerun_of, params = _rerun_key(t)
        if not params or (t.datetime_complete and t.datetime_complete > cutoff):
            continue
        if not any(key == rerun_of and number > t.number for key, number in enqueued):
            study.enqueue_trial(params, user_attrs={"rerun_of": rerun_of}, skip_if_exists=False)
            lost += 1
    return lost
