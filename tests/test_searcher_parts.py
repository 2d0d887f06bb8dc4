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


# -- an arch being trained right now: the new trial waits for it (search/searcher.py, reuse.py) ---
FINAL = {"final": True, "attrs_json": json.dumps({"pck": 0.5, **LATENCY, "constraints": {}})}
ENDINGS = {"fails": {"fail_reason": "boom"}, "is pruned": {"epoch": 1, "pck": 0.1}}


def _searcher(study: optuna.Study, cfg: StudyConfig, said: list[str] | None = None):
    from search.study import make_searcher

    return make_searcher(study, cfg, cfg.space, (said if said is not None else []).append)


def _states(study: optuna.Study) -> list[str]:
    return [t.state.name for t in study.get_trials()]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_a_trial_of_an_arch_in_training_waits_then_takes_its_result(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, 3, width=16, gate="channel")  # one arch: every ask gives it
    study = _study(cfg)
    said: list[str] = []
    searcher = _searcher(study, cfg, said)
    try:
        assert isinstance(searcher.suggest("t0"), dict)
        assert searcher.suggest("t1") is None and searcher.suggest("t2") is None  # both wait
        assert _states(study) == ["RUNNING"] * 3
        assert [t.user_attrs.get("waits_for") for t in study.get_trials()] == [None, 0, 0]
        assert len(searcher.quota.counted()) == 3  # a waiting trial counts, once
        assert searcher.suggest("t3") is None and len(study.get_trials()) == 3  # no 4th, not done
        searcher.on_trial_complete("t0", FINAL)
        # the two waiting ones take trial 0's result; then the count is reached and none is live
        assert searcher.suggest("t4") == "FINISHED"
    finally:
        searcher.close()
    trials = study.get_trials()
    assert _states(study) == ["COMPLETE"] * 3 and len(trials) == 3
    assert [t.user_attrs.get("reused_from") for t in trials] == [None, 0, 0]
    assert all(t.values == trials[0].values for t in trials)
    assert [line.split(" ")[0] for line in said] == ["[1/3]", "[2/3]", "[3/3]"]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
@pytest.mark.parametrize("ending", list(ENDINGS))
def test_a_waiting_trial_trains_when_the_running_one_ends_without_result(
    tmp_path: Path, ending: str
) -> None:
    cfg = _cfg(tmp_path, 2, width=16, gate="channel")
    study = _study(cfg)
    searcher = _searcher(study, cfg)
    try:
        assert searcher.suggest("t0")["number"] == 0
        assert searcher.suggest("t1") is None  # trial 1 waits for trial 0
        searcher.on_trial_complete("t0", ENDINGS[ending])
        config = searcher.suggest("t2")  # trial 0 left no result: trial 1 trains, now
        assert isinstance(config, dict) and config["number"] == 1
        assert searcher.suggest("t3") is None  # the count (2) is reached: nothing more is asked
        searcher.on_trial_complete("t2", FINAL)
        assert searcher.suggest("t4") == "FINISHED"
    finally:
        searcher.close()
    trials = study.get_trials()
    assert len(trials) == 2 and trials[1].state == TrialState.COMPLETE
    assert trials[0].state == (TrialState.FAIL if ending == "fails" else TrialState.PRUNED)
    assert "reused_from" not in trials[1].user_attrs and trials[1].user_attrs["waits_for"] == 0


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_a_trial_waits_for_another_process_and_is_handed_back_on_close(tmp_path: Path) -> None:
    from search.study import prepare_study

    cfg = _cfg(tmp_path, 2, width=16, gate="channel")
    first = _searcher(_study(cfg), cfg)
    other_study = prepare_study(cfg, resume=True)  # a second process: its own storage connection
    other = _searcher(other_study, cfg)
    try:
        assert first.suggest("a0")["number"] == 0
        assert other.suggest("b0") is None  # trial 1 waits for the other process's trial 0
        assert first.suggest("a1") is None  # the count (2) is reached: first waits for trial 1
        first.on_trial_complete("a0", FINAL)
        assert other.suggest("b1") == "FINISHED"  # trial 1 took trial 0's result: all done
        assert first.suggest("a2") == "FINISHED"
    finally:
        first.close()
        other.close()
    trials = other_study.get_trials()
    assert len(trials) == 2 and trials[1].state == TrialState.COMPLETE
    assert trials[1].user_attrs["reused_from"] == 0 and trials[1].values == trials[0].values
    cfg = _cfg(tmp_path / "b", 2)  # two choices (so trials have parameters to re-run) ...
    study = _study(cfg)
    for _ in range(2):  # ... and the same arch for both
        study.enqueue_trial({"width": 16, "gate": "channel"})
    trainer, waiter = _searcher(study, cfg), _searcher(prepare_study(cfg, resume=True), cfg)
    try:
        assert trainer.suggest("a0")["number"] == 0 and waiter.suggest("b0") is None
    finally:
        waiter.close()  # Ctrl-C: the waiting trial goes back like a running one
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["RUNNING", "FAIL", "WAITING"]
    assert trials[1].user_attrs["waits_for"] == 0
    assert trials[1].user_attrs["fail_reason"] == "interrupted"
    assert trials[2].user_attrs["rerun_of"] == 1
    assert trials[2].system_attrs["fixed_params"] == trials[1].params
    trainer.close()


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_past_the_timeout_a_waiting_trial_is_handed_back_not_trained(tmp_path: Path) -> None:
    cfg = dataclasses.replace(_cfg(tmp_path, 2), timeout=60.0)
    study = _study(cfg)
    for _ in range(2):  # the same arch twice, from a space with choices (parameters to re-run)
        study.enqueue_trial({"width": 16, "gate": "channel"})
    said: list[str] = []
    searcher = _searcher(study, cfg, said)
    try:
        assert searcher.suggest("t0")["number"] == 0 and searcher.suggest("t1") is None
        searcher.start -= 61
        searcher.on_trial_complete("t0", ENDINGS["fails"])
        assert searcher.suggest("t2") == "FINISHED"  # trial 1 does not start after the timeout
    finally:
        searcher.close()
    assert _states(study) == ["FAIL", "FAIL", "WAITING"]  # trial 1's re-run waits for --resume
    assert study.get_trials()[1].user_attrs["fail_reason"] == "interrupted"
    assert any(line.startswith("trial 1 handed back: trial 0 of its arch") for line in said)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_without_result_reuse_a_running_arch_is_trained_again(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, 2, width=16, gate="channel")
    cfg = dataclasses.replace(cfg, latency=dataclasses.replace(cfg.latency, cache=False))
    study = _study(cfg)
    searcher = _searcher(study, cfg)
    try:  # latency.cache: false measures every trial afresh, on purpose: nothing waits
        assert searcher.suggest("t0")["number"] == 0 and searcher.suggest("t1")["number"] == 1
    finally:
        searcher.close()
