"""The study runner end to end: real Ray on loopback, real SQLite, `launch.py` in a subprocess.

Fast: the smoke study, a study with failing trials, exit code 2 on a bad study, and the searcher's
storage bookkeeping (no Ray). Slow (separate CI job): kill -9 then --resume, and latency CV.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from helpers import REPO, SMOKE, study_file
from optuna.trial import TrialState

from search.config import StudyConfig

CONTRACT_ATTRS = {
    "arch",
    "arch_id",
    "params",
    "flops",
    "latency_ms",
    "latency_p25_ms",
    "latency_p75_ms",
    "latency_cv",
    "images_per_s",
    "wall_s",
    "train_s",
    "epochs",
    "data",
    "budget",
    "node_id",
    "per_joint_pck",
}


def env(**extra: str) -> dict:
    e = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    e.update(extra)
    return e


def launch(*args: str, timeout: int = 240, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "launch.py"), *args],
        cwd=REPO,
        env=env(**extra),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def load(out: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'study.db'}")


@pytest.mark.slow  # 15-40 s: an end-to-end run, kept out of the fast job's 10 minutes
def test_smoke_study_end_to_end(tmp_path):
    out = tmp_path / "run"
    # not timed here: a wall-time assertion fails whenever the machine is busy (see README for its time)
    proc = launch("--study", "smoke", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = load(out, "smoke")
    assert study.metric_names == ["pck", "latency_ms"]
    assert set(study.user_attrs) >= {"config", "created", "softgate_version"}
    assert study.user_attrs["config"]["name"] == "smoke"
    trials = study.get_trials()
    assert len(trials) == 4 and all(t.state == TrialState.COMPLETE for t in trials)
    for t in trials:
        assert CONTRACT_ATTRS <= set(t.user_attrs), CONTRACT_ATTRS - set(t.user_attrs)
        pck, latency = t.values
        assert 0.0 <= pck <= 1.0 and latency > 0
        assert t.user_attrs["latency_ms"] == pytest.approx(latency)
        assert t.user_attrs["latency_p25_ms"] <= latency <= t.user_attrs["latency_p75_ms"]
        assert t.user_attrs["epochs"] >= 1 and len(t.user_attrs["per_joint_pck"]) == 14
        assert t.user_attrs["data"] == "synthetic"
        assert t.user_attrs["arch"]["width"] in (16, 32)
    # one header, one progress line per trial, Ray's own tables off
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("study ") and any(line.startswith("storage ") for line in lines)
    progress = [line for line in lines if line.startswith("[")]
    assert [p.split("]")[0] for p in progress] == ["[1/4", "[2/4", "[3/4", "[4/4"]
    assert all(" | pareto " in p and " eta " in p for p in progress)
    assert "Trial status" not in proc.stdout + proc.stderr
    # the export ran at the end
    assert (out / "export" / "index.csv").is_file()

    # the same study again without --resume: refused, nothing changes
    again = launch("--study", "smoke", "--out", str(out), timeout=60)
    assert again.returncode == 2
    assert "--resume" in again.stderr and "Traceback" not in again.stderr
    assert len(load(out, "smoke").get_trials()) == 4


@pytest.mark.slow  # 15-40 s: an end-to-end run, kept out of the fast job's 10 minutes
def test_failing_and_oversized_trials_do_not_stop_the_study(tmp_path):
    # grid over width {16, 32} x depth {2, 4}. depth 4 needs inputs divisible by 64: the spec (64 px)
    # is valid, the 32 px proxy raises in the worker. max_params 50k (width 16: 22k/38k params,
    # width 32: 86k/149k): width 32 is not trained at all, and is infeasible for the sampler.
    path = study_file(
        tmp_path,
        "failing",
        space={
            **SMOKE["space"],
            "width": [16, 32],
            "depth": [2, 4],
            "input_size": 64,
            "gate": "channel",
        },
        sampler={"name": "grid", "seed": 0, "options": {}},
        constraints={"max_params": 50000},
    )
    out = tmp_path / "run"
    proc = launch("--study", str(path), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = load(out, "failing")
    trials = study.get_trials()
    arch = {(t.user_attrs["arch"]["width"], t.user_attrs["arch"]["depth"]): t for t in trials}
    assert sorted(arch) == [(16, 2), (16, 4), (32, 2), (32, 4)]
    ok, fails = arch[16, 2], arch[16, 4]
    assert ok.state == TrialState.COMPLETE and ok.values[0] > 0 and "skipped" not in ok.user_attrs
    assert ok.constraints == {"max_params": ok.user_attrs["params"] - 50000}
    assert fails.state == TrialState.FAIL
    assert (
        "divisible" in fails.user_attrs["fail_reason"]
        and "\n" not in fails.user_attrs["fail_reason"]
    )
    for t in (arch[32, 2], arch[32, 4]):
        assert t.state == TrialState.COMPLETE and t.values[0] == 0.0 and t.user_attrs["epochs"] == 0
        assert "params" in t.user_attrs["skipped"] and t.constraints["max_params"] > 0
        assert t.user_attrs["params"] > 50000
    assert [t.number for t in study.best_trials] == [
        ok.number
    ]  # infeasible trials are not Pareto-optimal
    assert sum(" FAIL " in line for line in proc.stdout.splitlines()) == 1


def test_bad_study_file_exits_2_with_one_line(tmp_path):
    path = study_file(tmp_path, "bad", proxy={"epochs": "lots"})
    proc = launch("--study", str(path), "--out", str(tmp_path / "run"), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {path}: proxy.epochs: must be a positive whole number (got 'lots')"
    ]
    assert not (tmp_path / "run").exists()


def test_missing_data_exits_2_and_writes_nothing(tmp_path):
    missing = tmp_path / "no-such-dataset"
    proc = launch(
        "--study", "smoke", "--data", str(missing), "--out", str(tmp_path / "run"), timeout=60
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {missing}: data: data path does not exist"]
    assert not (tmp_path / "run").exists()


# -- the searcher's bookkeeping against a real SQLite storage (no Ray needed) -------------------------
def _cfg(tmp_path: Path, trials: int) -> StudyConfig:
    return StudyConfig.load("smoke").with_overrides(trials=trials, out=str(tmp_path))


def test_processes_sharing_a_study_reach_exactly_the_count(tmp_path):
    from search.study import make_searcher, prepare_study

    cfg = _cfg(tmp_path, 3)
    space = cfg.space
    study = prepare_study(cfg, resume=False)
    # three different archs: a second trial of an arch in training would wait for it instead
    for width, gate in ((16, "channel"), (32, "channel"), (16, "identity")):
        study.enqueue_trial({"width": width, "gate": gate})
    a = make_searcher(study, cfg, space, printer=lambda s: None)
    b = make_searcher(
        prepare_study(cfg, resume=True), cfg, space, printer=lambda s: None
    )  # another process
    try:
        assert isinstance(a.suggest("a1"), dict) and isinstance(b.suggest("b1"), dict)
        assert isinstance(a.suggest("a2"), dict)
        assert b.suggest("b2") is None  # 3 trials exist (RUNNING): b has one of its own to finish
        result = {"final": True, "attrs_json": '{"pck": 0.5, "latency_ms": 2.0}'}
        b.on_trial_complete("b1", result)
        assert b.suggest("b3") is None  # a's two trials are still running: wait for them
        for tid in ("a1", "a2"):
            a.on_trial_complete(tid, result)
        assert a.suggest("a3") == "FINISHED" and b.suggest("b4") == "FINISHED"
    finally:
        a.close(), b.close()
    trials = load(tmp_path, "smoke").get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3


def test_after_the_timeout_no_trial_starts_and_the_running_ones_finish(tmp_path):
    import dataclasses

    from search.study import make_searcher, prepare_study

    cfg = dataclasses.replace(_cfg(tmp_path, 10), timeout=60.0)
    said: list[str] = []
    searcher = make_searcher(prepare_study(cfg, resume=False), cfg, cfg.space, said.append)
    try:
        assert isinstance(searcher.suggest("t1"), dict)
        searcher.start -= 61  # a minute has passed
        assert searcher.suggest("t2") is None  # t1 still runs: wait for it, start nothing
        searcher.on_trial_complete(
            "t1", {"final": True, "attrs_json": '{"pck": 0.5, "latency_ms": 2.0}'}
        )
        assert searcher.suggest("t3") == "FINISHED"
    finally:
        searcher.close()
    assert [t.state for t in load(tmp_path, "smoke").get_trials()] == [TrialState.COMPLETE]
    assert [line for line in said if line.startswith("timeout")] == [
        "timeout: 60 s since the start: no new trials, the running ones finish; --resume goes on towards 10"
    ]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_stale_running_trials_are_failed_and_rerun(tmp_path, monkeypatch):
    import search.storage
    import search.study as st

    monkeypatch.setattr(search.storage, "HEARTBEAT_S", 1)
    monkeypatch.setattr(search.storage, "GRACE_S", 1)
    cfg = _cfg(tmp_path, 2)
    study = st.prepare_study(cfg, resume=False)
    dead = study.ask()  # a trial of a process that was killed: one heartbeat, then silence
    dead.suggest_categorical("width", [16, 32])
    study._storage.record_heartbeat(dead._trial_id)
    time.sleep(2.5)
    assert st.fail_stale_trials(study) == 1
    trials = study.get_trials()
    assert (
        trials[0].state == TrialState.FAIL and trials[0].user_attrs["fail_reason"] == "interrupted"
    )
    assert trials[1].state == TrialState.WAITING and trials[1].user_attrs["rerun_of"] == 0
    assert not st.counts_toward_target(trials[0]) and st.counts_toward_target(trials[1])
    rerun = study.ask()  # the next ask takes the re-run, with the dead trial's parameters
    assert (
        rerun.number == 1
        and rerun.suggest_categorical("width", [16, 32]) == trials[0].params["width"]
    )


# -- slow: kill -9 and --resume; latency stability under load -------------------------------------------
@pytest.mark.slow
def test_kill_9_then_resume_reaches_the_count_without_duplicates(tmp_path):
    path = study_file(
        tmp_path, "resume", concurrency=1, trials=4, proxy={**SMOKE["proxy"], "epochs": 3}
    )
    out = tmp_path / "run"
    fast_heartbeat = {"SOFTGATE_HEARTBEAT_S": "2", "SOFTGATE_GRACE_S": "6"}
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "launch.py"), "--study", str(path), "--out", str(out)],
        cwd=REPO,
        env=env(**fast_heartbeat),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            time.sleep(1)
            if (out / "study.db").exists():
                try:
                    trials = load(out, "resume").get_trials()
                except Exception:  # the study is being created
                    continue
                # one done and one running that is sampled: a trial killed before it has parameters
                # has nothing to re-run (search/storage.interrupt), and sampling may take seconds
                states = [t.state for t in trials]
                if TrialState.COMPLETE in states and states[-1] == TrialState.RUNNING:
                    if trials[-1].params:
                        break
        else:
            pytest.fail("the study never got one trial done and another sampled and running")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        try:  # the Ray processes of the killed run (our own session)
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    before = {t.number: t for t in load(out, "resume").get_trials()}
    done_before = {n: t.values for n, t in before.items() if t.state == TrialState.COMPLETE}
    running_before = [n for n, t in before.items() if t.state == TrialState.RUNNING]
    assert running_before

    refused = launch("--study", str(path), "--out", str(out), timeout=60, **fast_heartbeat)
    assert refused.returncode == 2 and "--resume" in refused.stderr

    resumed = launch(
        "--study", str(path), "--out", str(out), "--resume", timeout=300, **fast_heartbeat
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    trials = load(out, "resume").get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    interrupted = [
        t
        for t in trials
        if t.state == TrialState.FAIL and t.user_attrs.get("fail_reason") == "interrupted"
    ]
    assert len(complete) == 4  # the requested count, no more
    assert sorted(t.number for t in interrupted) == running_before
    assert {
        t.number: t.values for t in complete if t.number in done_before
    } == done_before  # nothing lost or redone
    reruns = [t for t in complete if "rerun_of" in t.user_attrs]
    assert sorted(t.user_attrs["rerun_of"] for t in reruns) == running_before
    for t in reruns:
        assert t.params == before[t.user_attrs["rerun_of"]].params
    assert all(t.state != TrialState.RUNNING for t in trials)


@pytest.mark.slow
@pytest.mark.parametrize(
    "clock", ["auto", "wall"]
)  # thread CPU time; wall clock with the trials paused
def test_latency_of_one_arch_is_stable_across_concurrent_trials(tmp_path, clock):
    # 4 trials of the same arch, 2 training at a time, the cache off: every trial measures under load
    space = {**SMOKE["space"], "width": 32, "gate": "channel"}
    path = study_file(
        tmp_path,
        "latcv",
        space=space,
        sampler={"name": "random", "seed": 0, "options": {}},
        proxy={**SMOKE["proxy"], "epochs": 4},
        latency={**SMOKE["latency"], "cache": False, "clock": clock},
    )
    out = tmp_path / "run"
    proc = launch("--study", str(path), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = load(out, "latcv").get_trials()
    assert len({t.user_attrs["arch_id"] for t in trials}) == 1 and len(trials) == 4
    latencies = [t.user_attrs["latency_ms"] for t in trials]
    # every trial measured on its own (the cache is off), under the load of the others' training
    assert all(0 < x < 1e3 for x in latencies) and len(set(latencies)) == 4
    assert all(t.user_attrs["latency_cv"] >= 0 for t in trials)
    # The CV across trials (target 5 %) is a speed target, printed here, not asserted: a timed test
    # fails with the machine's noise (on this 2-core VM on 2026-12-01 it measured 7.7-18 % for the code
    # before and after the refactor alike). A benchmark that reports it is still to be written.
    print(
        f"latency CV across trials {statistics.stdev(latencies) / statistics.mean(latencies):.3f}"
    )


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("SOFTGATE_TEST_POSTGRES"),
    reason="needs SOFTGATE_TEST_POSTGRES (.ci/postgres.sh)",
)
def test_two_processes_on_postgres_run_exactly_the_requested_trials(tmp_path):
    import uuid

    url = os.environ["SOFTGATE_TEST_POSTGRES"]
    name = f"shared-{uuid.uuid4().hex[:8]}"
    path = study_file(tmp_path, name, trials=6, storage=url)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(REPO / "launch.py"),
                "--study",
                str(path),
                "--resume",
                "--out",
                str(tmp_path / f"run{i}"),
            ],
            cwd=REPO,
            env=env(),
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=400) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
        assert "softgate-test-pw" not in out + err  # the password is never printed
    from search.config import engine_url

    study = optuna.load_study(study_name=name, storage=engine_url(url))
    try:
        trials = study.get_trials()
        assert sum(t.state == TrialState.COMPLETE for t in trials) == 6
        assert all(t.state in (TrialState.COMPLETE, TrialState.FAIL) for t in trials)
        assert all(
            t.user_attrs.get("fail_reason") == "surplus"
            for t in trials
            if t.state == TrialState.FAIL
        )
        per_process = [sum(line.startswith("[") for line in out.splitlines()) for out, _ in outs]
        assert sum(per_process) == 6 and min(per_process) >= 1, per_process  # both took part
    finally:
        optuna.delete_study(study_name=name, storage=engine_url(url))


@pytest.mark.slow
def test_asha_scheduler_prunes_on_pck_and_the_study_still_counts(tmp_path):
    path = study_file(
        tmp_path,
        "asha",
        trials=4,
        scheduler={"name": "asha", "grace_period": 1, "reduction_factor": 2},
        proxy={**SMOKE["proxy"], "epochs": 4},
        space={**SMOKE["space"], "gate": ["channel", "identity", "none", "se"]},
    )
    out = tmp_path / "run"
    proc = launch("--study", str(path), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = load(out, "asha").get_trials()
    assert len(trials) == 4 and all(
        t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials
    )
    for t in trials:
        assert "arch" in t.user_attrs and "arch_id" in t.user_attrs
        if t.state == TrialState.PRUNED:
            assert 1 <= t.user_attrs["pruned_at_epoch"] < 4
            assert len(t.user_attrs["pck_curve"]) == t.user_attrs["pruned_at_epoch"]
        else:
            assert len(t.user_attrs["pck_curve"]) == 4
    assert sum("PRUNED (ASHA)" in line for line in proc.stdout.splitlines()) == sum(
        t.state == TrialState.PRUNED for t in trials
    )


@pytest.mark.slow  # 30-50 s: two launches
def test_a_study_that_times_out_exports_its_front_and_resumes(tmp_path):
    path = study_file(
        tmp_path,
        "timed",
        trials=12,
        timeout=2,
        space={**SMOKE["space"], "gate": ["channel", "identity", "none", "se"]},
    )
    out = tmp_path / "run"
    proc = launch("--study", str(path), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    first = load(out, "timed").get_trials()
    assert 1 <= len(first) < 12 and all(t.state == TrialState.COMPLETE for t in first)
    assert f"{len(first)} of 12 trials done within the timeout of 2 s" in proc.stdout
    assert (out / "export" / "index.csv").is_file()
    again = launch("--study", str(path), "--out", str(out), "--resume")
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(first) < len(load(out, "timed").get_trials()) <= 12
