"""The parts StorageSearcher is built of, each on its own against a real SQLite study (no Ray):
ReuseCache (search/reuse.py), TrialQuota (search/quota.py), ProgressReporter (search/progress.py),
and the reuse path through the searcher itself."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search.config import StudyConfig
from search.progress import ProgressReporter
from search.quota import ASK, DONE, WAIT, TrialQuota
from search.reuse import ReuseCache
from space.search_space import SearchSpace

LATENCY = {"latency_ms": 2.0, "latency_p25_ms": 1.9, "latency_p75_ms": 2.1, "latency_cv": 0.01}


def _cfg(tmp_path: Path, trials: int, **space: object) -> StudyConfig:
    cfg = StudyConfig.load("smoke").with_overrides(trials=trials, out=str(tmp_path))
    given = {**cfg.space_given, **space}
    return dataclasses.replace(cfg, space=SearchSpace.from_dict(given), space_given=given)


def _study(cfg: StudyConfig) -> optuna.Study:
    from search.study import prepare_study

    return prepare_study(cfg, resume=False)


def _done(study: optuna.Study, arch_id: str, values: list[float], **attrs: object) -> None:
    study.add_trial(
        optuna.trial.create_trial(values=values, user_attrs={"arch_id": arch_id, **attrs})
    )


def test_reuse_cache_finds_the_first_complete_trial_of_an_arch(tmp_path: Path) -> None:
    study = _study(_cfg(tmp_path, 4))
    _done(study, "a", [0.5, 2.0], pck=0.5)
    _done(study, "a", [0.6, 2.0], **LATENCY)
    _done(study, "b", [0.7, 3.0])
    cache = ReuseCache(study, results=True, latency=True)
    assert cache.earlier("a").number == 0 and cache.earlier("c") is None
    assert cache.latency("a") == LATENCY and cache.latency("b") is None
    off = ReuseCache(study, results=False, latency=False)
    assert off.earlier("a") is None and off.latency("a") is None


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_an_arch_trained_before_takes_its_result_without_training(tmp_path: Path) -> None:
    from optuna_dashboard import get_note

    from search.study import make_searcher

    cfg = _cfg(tmp_path, 3, width=16, gate="channel")  # one arch: every ask gives it
    study = _study(cfg)
    said: list[str] = []
    searcher = make_searcher(study, cfg, cfg.space, said.append)
    try:
        first = searcher.suggest("t0")
        assert isinstance(first, dict) and "latency" not in first
        attrs = {"pck": 0.5, **LATENCY, "constraints": {}}
        searcher.on_trial_complete("t0", {"final": True, "attrs_json": json.dumps(attrs)})
        assert searcher.suggest("t1") is None and searcher.suggest("t2") is None  # both reused
        assert searcher.suggest("t3") == "FINISHED"
    finally:
        searcher.close()
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert [t.user_attrs.get("reused_from") for t in trials] == [None, 0, 0]
    assert all(t.values == trials[0].values and t.user_attrs["latency_ms"] == 2.0 for t in trials)
    for t in trials[1:]:  # the dashboard note of a reuse says so (search/artifacts.py)
        note = get_note(optuna.Trial(study, t._trial_id))
        assert note.startswith(f"## Trial {t.number}: COMPLETE (reuse of trial 0)")
    assert [line.split(" | ")[0] for line in said] == [
        "[1/3] trial 0 pck=0.5 latency_ms=2",
        "[2/3] trial 1 pck=0.5 latency_ms=2",
        "[3/3] trial 2 pck=0.5 latency_ms=2",
    ]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_quota_waits_for_other_processes_then_finishes(tmp_path: Path) -> None:
    study = _study(_cfg(tmp_path, 1))
    said: list[str] = []
    quota = TrialQuota(study, trials=1, timeout=None, printer=said.append)
    assert quota.gate(set()) == ASK
    elsewhere = study.ask()  # another process's running trial fills the count
    assert quota.gate(set()) == WAIT and quota.gate(set()) == WAIT
    assert len(said) == 1 and said[0].startswith("waiting for 1 trial(s) running elsewhere")
    assert quota.gate({elsewhere.number}) == DONE  # as the process that runs it: finish
    mine = study.ask()
    assert quota.withdraw_surplus(mine)  # asked past the count: withdrawn
    assert study.get_trials()[mine.number].user_attrs["fail_reason"] == "surplus"
    study.tell(elsewhere, [0.5, 2.0])
    assert quota.gate(set()) == DONE


def test_quota_timeout_is_said_once(tmp_path: Path) -> None:
    said: list[str] = []
    quota = TrialQuota(_study(_cfg(tmp_path, 5)), trials=5, timeout=60, printer=said.append)
    assert quota.gate(set()) == ASK
    quota.start -= 61
    assert quota.gate(set()) == DONE and quota.gate(set()) == DONE
    assert said == [
        (
            "timeout: 60 s since the start: no new trials, the running ones finish; "
            "--resume goes on towards 5"
        )
    ]


def test_progress_eta_is_capped_by_the_timeout(tmp_path: Path) -> None:
    cfg = dataclasses.replace(_cfg(tmp_path, 10), timeout=100.0)
    study = _study(cfg)
    _done(study, "a", [0.5, 2.0])
    said: list[str] = []
    progress = ProgressReporter(study, cfg, said.append)
    progress.start -= 60  # a trial in 60 s: 9 more take 9 min; the timeout (40 s on) ends it sooner
    progress.trial_done(0, [0.5, 2.0])
    progress.trial_done(1, None, "boom")
    assert said[0] == "[1/10] trial 0 pck=0.5 latency_ms=2 | pareto 1 | elapsed 1m00s eta 2m40s"
    assert said[1].startswith("[1/10] trial 1 FAIL boom | pareto 1 | elapsed 1m00s eta ")
