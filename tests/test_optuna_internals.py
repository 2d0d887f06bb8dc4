"""The Optuna internals search/storage.py relies on (`storage.OPTUNA_INTERNALS`) are where it looks.

Optuna has no public API for them, so pyproject.toml bounds optuna's version; a new optuna that
moves one fails here, naming it, rather than in the middle of a study's hand-back of dead trials.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import optuna
import pytest

from search import storage

ADVICE = (
    "search/storage.py relies on it (storage.OPTUNA_INTERNALS): adapt storage.py to this "
    "optuna, then move the optuna bound in pyproject.toml"
)


def moved(what: str) -> str:
    return f"optuna {optuna.__version__} moved {what}; {ADVICE}"


@pytest.fixture
def study(tmp_path: Path) -> storage.StoredStudy:
    rdb = storage.open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    optuna.create_study(study_name="canary", storage=rdb)
    return storage.StoredStudy("canary", rdb)


def test_the_stale_trial_lookups_are_there(study: storage.StoredStudy) -> None:
    if not callable(getattr(study.rdb, "_get_stale_trial_ids", None)):
        pytest.fail(moved("RDBStorage._get_stale_trial_ids"))
    if not callable(getattr(study.rdb, "scoped_session", None)):
        pytest.fail(moved("RDBStorage.scoped_session"))
    try:
        from optuna.storages._rdb import models
    except ImportError:
        pytest.fail(moved("optuna.storages._rdb.models"))
    columns = ("trial_id", "study_id", "state", "datetime_start", "heartbeats")
    missing = [c for c in columns if not hasattr(models.TrialModel, c)]
    if missing:
        pytest.fail(moved(f"TrialModel.{', '.join(missing)}"))


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_the_stale_trial_lookups_answer_as_storage_reads_them(study: storage.StoredStudy) -> None:
    beating, silent = study.ask(), study.ask()
    study.rdb.record_heartbeat(study.trial_id(beating.number))
    later = dt.datetime.now() + dt.timedelta(seconds=1)  # both started before it
    assert storage._never_beat_ids(study, later) == {study.trial_id(silent.number)}, moved(
        "the heartbeat rows of TrialModel"
    )
    assert study.rdb._get_stale_trial_ids(study.rdb_study_id) == [], moved(
        "RDBStorage._get_stale_trial_ids (a fresh heartbeat counted as stale)"
    )


def test_an_enqueued_trial_keeps_its_parameters_where_storage_reads_them(
    study: storage.StoredStudy,
) -> None:
    study.enqueue_trial({"width": 32})
    (waiting,) = study.get_trials()
    if waiting.system_attrs.get(storage.FIXED_PARAMS) != {"width": 32}:
        where = f"system_attrs[{storage.FIXED_PARAMS!r}]"
        pytest.fail(moved(f"an enqueued trial's parameters ({where})"))


def test_the_installed_optuna_is_one_pyproject_allows() -> None:
    tomllib = pytest.importorskip("tomllib")
    from packaging.requirements import Requirement

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    deps = map(Requirement, project["project"]["dependencies"])
    (spec,) = [r for r in deps if r.name == "optuna"]
    assert any(s.operator in ("<", "<=") for s in spec.specifier), (
        f"pyproject.toml must bound optuna from above ({spec}); {ADVICE}"
    )
    assert spec.specifier.contains(optuna.__version__), (
        f"optuna {optuna.__version__} is outside pyproject.toml's {spec}; {ADVICE}"
    )


def test_the_hypervolume_is_where_report_reads_it() -> None:
    import numpy as np

    try:
        from optuna._hypervolume import compute_hypervolume
    except ImportError:
        pytest.fail(moved("optuna._hypervolume.compute_hypervolume"))
    square = compute_hypervolume(np.array([[0.0, 0.0]]), np.array([1.0, 1.0]))
    assert square == pytest.approx(1.0), moved("compute_hypervolume's meaning")
