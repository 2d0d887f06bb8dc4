"""Reliability (issue 12): each case as a user met it, against real SQLite storages and launch.py.

Fast: export never deletes what it did not write; resume with WAITING re-runs; a trial killed before
its first heartbeat; bad --address / --storage / space leave nothing behind; credential masking.
Slow: Ctrl-C, kill -9 of the launcher (its local Ray goes with it), the secrets of a real study.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import optuna
import pytest
from helpers import REPO, SMOKE, study_file
from optuna.trial import TrialState
from test_export import make_study

import search.storage as storage
from search.config import StudyConfig, mask_url
from search.export import export_study
from space.errors import ConfigError

RESULT = {"final": True, "attrs_json": '{"pck": 0.5, "latency_ms": 2.0}'}


def launch(*args: str, timeout: int = 240, **extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **extra}
    return subprocess.run(
        [sys.executable, str(REPO / "launch.py"), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"<dir>"
        for p in sorted(folder.rglob("*"))
    }


# -- 1. export removes only what an export wrote ---------------------------------------------------------
@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    make_study(url)
    return url


@pytest.mark.parametrize("force", [False, True])
def test_export_refuses_a_folder_that_is_not_an_export(
    url: str, tmp_path: Path, force: bool
) -> None:
    train = tmp_path / "train"  # a training folder, as `launch.py train` leaves it
    train.mkdir()
    for name in ("best.pt", "last.pt", "metrics.json"):
        (train / name).write_bytes(b"weights " + name.encode())
    before = snapshot(train)
    with pytest.raises(ConfigError) as err:
        export_study(url, "exp", train, force=force)
    assert "not an export" in err.value.message and "already exists" not in err.value.message
    assert err.value.field == "export.dir"
    assert snapshot(train) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.db", "train"]  # no temp folders


@pytest.mark.slow  # 15-40 s: an end-to-end run, kept out of the fast job's 10 minutes
def test_export_into_the_run_folder_keeps_the_study(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "ray" / "ray-1").mkdir(parents=True)
    (run / "ray" / "ray-1" / "experiment_state.json").write_text("{}")
    url = f"sqlite:///{run / 'study.db'}"
    make_study(url)
    before = snapshot(run)
    proc = launch(
        "export", "--study", "exp", "--storage", url, "--out", str(run), "--force", timeout=120
    )
    assert proc.returncode == 0, proc.stderr  # export.dir defaults to run/export: a new folder
    with pytest.raises(ConfigError, match="not an export"):
        export_study(url, "exp", run, force=True)  # export.dir = the run folder itself
    after = snapshot(run)
    assert {k: v for k, v in after.items() if not k.startswith("export")} == before


def test_force_replaces_only_the_exports_own_files(url: str, tmp_path: Path) -> None:
    out = tmp_path / "export"
    first = export_study(url, "exp", out)
    (out / "notes.md").write_text("mine")
    (out / "plots").mkdir()
    stale = out / "99-stale.yaml"  # a file of the old export that the new one does not write
    stale.write_text(first[0].read_text())
    with open(out / "index.csv", "a") as fh:
        fh.write("99,99-stale.yaml,9,stale,0.1,1.0,1,1,1.0,1.0,\n")
    with pytest.raises(ConfigError, match="an export already exists here; pass --force"):
        export_study(url, "exp", out)
    files = export_study(url, "exp", out, force=True)
    assert (out / "notes.md").read_text() == "mine" and (out / "plots").is_dir()
    assert not stale.exists() and all(f.is_file() for f in files)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export", "study.db"]


def test_cli_export_into_a_foreign_folder_is_one_line_exit_2(url: str, tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "export").mkdir(parents=True)
    (run / "export" / "best.pt").write_bytes(b"x")
    for extra in ([], ["--force"]):
        proc = launch(
            "export", "--study", "exp", "--storage", url, "--out", str(run), *extra, timeout=120
        )
        assert proc.returncode == 2
        assert (
            proc.stderr.strip().splitlines() == [proc.stderr.strip()]
            and "not an export" in proc.stderr
        )
        assert "already exists" not in proc.stderr
    assert [p.name for p in (run / "export").iterdir()] == ["best.pt"]


# -- 6. all trials infeasible ---------------------------------------------------------------------------------
def test_export_of_an_all_infeasible_study_says_none_feasible(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="inf", storage=url, directions=["maximize", "minimize"])
    for _ in range(3):
        study.add_trial(
            optuna.trial.create_trial(
                values=[0.0, 1.0], user_attrs={"arch": {}}, system_attrs={"constraints": [5.0]}
            )
        )
    with pytest.raises(ConfigError, match="3 trials complete, none feasible"):
        export_study(url, "inf", tmp_path / "out")
    assert not (tmp_path / "out").exists()


# -- 2, 3. resume: WAITING re-runs, trials killed before their first heartbeat ------------------------------
def _cfg(tmp_path: Path, trials: int) -> StudyConfig:
    return StudyConfig.load("smoke").with_overrides(trials=trials, out=str(tmp_path))


def _searcher(cfg: StudyConfig, study: optuna.Study):
    from search.study import make_searcher

    return make_searcher(study, cfg, cfg.space, printer=lambda s: None)


def test_resume_after_an_interrupted_resume_runs_the_waiting_trials(tmp_path: Path) -> None:
    from search.study import prepare_study

    # the smoke space has 4 archs, so a re-run may repeat a finished arch, which the study would
    # then reuse instead of handing to Tune; with the latency cache off every trial trains
    cfg = _cfg(tmp_path, 4)
    cfg = dataclasses.replace(cfg, latency=dataclasses.replace(cfg.latency, cache=False))
    first = _searcher(cfg, prepare_study(cfg, resume=False))
    try:
        configs = {tid: first.suggest(tid) for tid in ("t0", "t1", "t2", "t3")}
        for tid in ("t0", "t1"):
            first.on_trial_complete(tid, RESULT)
    finally:
        first.close()  # killed: t2 and t3 are handed back (FAIL interrupted + WAITING re-runs)
    study = prepare_study(cfg, resume=True)
    states = [t.state for t in study.get_trials()]
    assert states.count(TrialState.COMPLETE) == 2 and states.count(TrialState.WAITING) == 2
    # COMPLETE + WAITING already reach 4: the searcher must still ask the WAITING ones
    again = _searcher(cfg, study)
    try:
        reruns = [again.suggest("r0"), again.suggest("r1")]
        assert all(isinstance(c, dict) for c in reruns)
        assert sorted(c["arch"]["width"] for c in reruns) == sorted(
            configs[t]["arch"]["width"] for t in ("t2", "t3")
        )
        assert again.suggest("r2") is None  # the count is reached while they run
        for tid in ("r0", "r1"):
            again.on_trial_complete(tid, RESULT)
        assert again.suggest("r3") == "FINISHED"
    finally:
        again.close()
    trials = study.get_trials()
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 4
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_trial_killed_before_its_first_heartbeat_goes_stale(tmp_path: Path, monkeypatch) -> None:
    from search.study import prepare_study

    monkeypatch.setattr(storage, "GRACE_S", 1)
    cfg = _cfg(tmp_path, 2)
    study = prepare_study(cfg, resume=False)
    orphan = (
        study.ask()
    )  # killed between ask() and its first heartbeat: no heartbeat row, no params
    time.sleep(1.5)
    assert storage.stale_trial_ids(study) == [orphan._trial_id]
    assert storage.fail_stale_trials(study) == 1
    trials = study.get_trials()
    assert [t.state for t in trials] == [
        TrialState.FAIL
    ]  # nothing to re-run: no empty WAITING trial
    assert trials[0].user_attrs[
        "fail_reason"
    ] == "interrupted" and not storage.counts_toward_target(trials[0])
    searcher = _searcher(cfg, study)  # the next --resume: asks 2 fresh trials, does not hang
    try:
        assert isinstance(searcher.suggest("a"), dict) and isinstance(searcher.suggest("b"), dict)
        for tid in ("a", "b"):
            searcher.on_trial_complete(tid, RESULT)
        assert searcher.suggest("c") == "FINISHED"
    finally:
        searcher.close()
    assert [t.state for t in study.get_trials()].count(TrialState.COMPLETE) == 2


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_rerun_killed_before_its_first_heartbeat_is_enqueued_again(
    tmp_path: Path, monkeypatch
) -> None:
    from search.study import prepare_study

    monkeypatch.setattr(storage, "GRACE_S", 1)
    study = prepare_study(_cfg(tmp_path, 2), resume=False)
    study.enqueue_trial({"width": 32}, user_attrs={"rerun_of": 7})
    popped = study.ask()  # a re-run taken from the queue, then the process died: params still fixed
    assert popped.params == {}
    time.sleep(1.5)
    assert storage.fail_stale_trials(study) == 1
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 1 and waiting[0].user_attrs["rerun_of"] == 7
    assert study.ask().suggest_categorical("width", [16, 32]) == 32


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_fresh_running_trial_without_heartbeat_is_not_stale(tmp_path: Path) -> None:
    from search.study import prepare_study

    study = prepare_study(_cfg(tmp_path, 2), resume=False)
    study.ask()  # another process, between its ask() and its heartbeat: within the grace period
    assert storage.stale_trial_ids(study) == []


# -- 5, 7. bad input leaves nothing behind -----------------------------------------------------------------
def test_unreachable_address_is_one_line_and_creates_nothing(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = launch("--study", "smoke", "--out", str(out), "--address", "127.0.0.1:1", timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith(
        "error: <arg>: --address: nothing answers at 127.0.0.1:1 within 5 s"
    )
    assert not out.exists()


def test_bad_storage_is_one_line_and_creates_nothing(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = launch(
        "--study", "smoke", "--out", str(out), "--storage", "sqlite:////proc/nope/x.db", timeout=180
    )
    assert proc.returncode == 2, proc.stderr
    assert (
        proc.stderr.strip().splitlines() == [proc.stderr.strip()]
        and "storage: cannot open storage" in proc.stderr
    )
    assert not out.exists()


def test_space_without_a_buildable_point_is_refused(tmp_path: Path) -> None:
    path = study_file(
        tmp_path, "unbuildable", space={**SMOKE["space"], "input_size": 40}
    )  # 40 % 16 != 0
    out = tmp_path / "run"
    proc = launch("--study", str(path), "--out", str(out), timeout=120)
    assert proc.returncode == 2
    assert (
        proc.stderr.strip().splitlines() == [proc.stderr.strip()]
        and f"error: {path}: space:" in proc.stderr
    )
    assert not out.exists()
    path = study_file(
        tmp_path,
        "proxysize",
        space={**SMOKE["space"], "input_size": 64, "depth": 3},
        proxy={**SMOKE["proxy"], "input_size": 48},
    )  # the spec is fine, the proxy size is not
    proc = launch("--study", str(path), "--out", str(out), timeout=120)
    assert proc.returncode == 2 and f"error: {path}: proxy.input_size:" in proc.stderr
    assert not out.exists()


# -- 8. credentials ---------------------------------------------------------------------------------------
SECRET = "pw@with/slash?and"


@pytest.mark.parametrize(
    "url, shown",
    [
        ("postgresql://user:s3cret@host/db", "postgresql://user:***@host/db"),
        ("postgresql://user:s3cret@host:5432/db", "postgresql://user:***@host:5432/db"),
        ("postgresql+psycopg://user:s3cret@host/db", "postgresql+psycopg://user:***@host/db"),
        # unquoted @ / ? # : where the password ends is a guess (search/urls.py): only the scheme
        ("postgresql://user:p@ss@word@host/db", "postgresql:***"),
        ("postgresql://user:pa/ss@host/db", "postgresql:***"),
        ("postgresql://user:pa?ss@host/db", "postgresql:***"),
        ("postgresql://user:a@b/c?d@host/db", "postgresql:***"),
        ("postgresql://bob:S3cr@t/p@127.0.0.1/db", "postgresql:***"),
        ("postgresql://host:5432/db?password=a@b", "postgresql:***"),
        ("postgresql://user:p%40ss%2Fw%3F@host/db", "postgresql://user:***@host/db"),  # quoted
        (
            "postgresql://host/db?password=s3cret&sslmode=require",
            "postgresql://host/db?password=***&sslmode=require",
        ),
        (
            "postgresql://user@host/db?sslpassword=s3cret",
            "postgresql://user@host/db?sslpassword=***",
        ),
        (
            f"sqlite:///runs/x/study.db?password={quote(SECRET, safe='')}",
            "sqlite:///runs/x/study.db?password=***",
        ),
        ("sqlite:///runs/x/study.db", "sqlite:///runs/x/study.db"),
        ("mysql+pymysql://user:s3cret@host/db", "mysql+pymysql://user:***@host/db"),
        (
            "postgresql:/user:s3cret@host/db",
            "postgresql:***",
        ),  # one slash: not a URL SQLAlchemy reads
        ("postgresql//user:s3cret@host/db", "***"),
        ("user:s3cret@host", "user:***"),
        ("", "***"),
    ],
)
def test_mask_url_shapes(url: str, shown: str) -> None:
    assert mask_url(url) == shown
    for secret in (
        "s3cret",
        SECRET,
        quote(SECRET, safe=""),
        "p@ss@word",
        "pa/ss",
        "pa?ss",
        "a@b/c?d",
    ):
        assert secret not in mask_url(url)


def test_cli_storage_url_with_one_slash_is_not_echoed(tmp_path: Path) -> None:
    proc = launch(
        "--study",
        "smoke",
        "--out",
        str(tmp_path / "run"),
        "--storage",
        "postgresql:/user:s3cret@host/db",
        timeout=60,
    )
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "s3cret" not in proc.stdout + proc.stderr and "postgresql:***" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_storage_errors_never_echo_the_password() -> None:
    for url in (
        "postgresql:/user:s3cret@host/db",
        "postgresql://user:s3cret@127.0.0.1:1/db?connect_timeout=1",
        "nosuchdriver://user:s3cret@host/db",
    ):
        with pytest.raises(ConfigError) as err:
            storage.open_storage(url)
        assert "s3cret" not in str(err.value) and "storage" == err.value.field


@pytest.mark.slow  # 20-60 s: the fast suite stays under 10 min on 2 cores
def test_a_study_leaves_its_storage_password_nowhere(tmp_path: Path) -> None:
    out = tmp_path / "run"
    url = f"sqlite:///{out / 'study.db'}?password={quote(SECRET, safe='')}"
    proc = launch("--study", "smoke", "--out", str(out), "--storage", url, "--trials", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    forms = {SECRET, quote(SECRET, safe=""), quote(SECRET), "pw@with"}
    for form in forms:
        assert form not in proc.stdout + proc.stderr
    study = optuna.load_study(study_name="smoke", storage=f"sqlite:///{out / 'study.db'}")
    attrs = repr(study.user_attrs) + repr([t.user_attrs for t in study.get_trials()])
    assert study.user_attrs["config"]["storage"].endswith("study.db?password=***")
    files = [p for p in out.rglob("*") if p.is_file() and p.name != "study.db"]
    assert any(p.parent.name == "export" for p in files) and any("ray" in p.parts for p in files)
    for form in forms:
        assert form not in attrs
        for p in files:
            assert form.encode() not in p.read_bytes(), p


# -- 3, 4. Ctrl-C and kill -9 against a real study (slow) -------------------------------------------------
def _start(out: Path, **extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **extra}
    return subprocess.Popen(
        [sys.executable, str(REPO / "launch.py"), "--study", "smoke", "--out", str(out)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _wait_for_running(proc: subprocess.Popen, out: Path, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(0.5)
        if proc.poll() is not None:
            pytest.fail(f"the study ended early: {proc.communicate()[1][-2000:]}")
        # read-only and through sqlite3 itself: optuna.load_study would create the tables the
        # launcher is creating at that moment (and the two then race)
        try:
            with contextlib.closing(
                sqlite3.connect(f"file:{out / 'study.db'}?mode=ro", uri=True)
            ) as db:
                running = db.execute(
                    "SELECT COUNT(*) FROM trials WHERE state = 'RUNNING'"
                ).fetchone()[0]
        except sqlite3.Error:  # not created yet
            continue
        if running:
            return
    pytest.fail("no trial started")


def _descendants(pid: int) -> list[int]:
    """The processes under `pid` (the local Ray's GCS, raylet, agents and workers), from /proc."""
    parents = {}
    for entry in Path("/proc").iterdir():
        try:
            parents[int(entry.name)] = int(
                (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
            )
        except (ValueError, OSError, IndexError):
            continue
    found, frontier = [], [pid]
    while frontier:
        children = [c for c, p in parents.items() if p in frontier]
        found += children
        frontier = children
    return found


@pytest.mark.slow
def test_ctrl_c_stops_the_study_at_the_first_press(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _start(out)
    try:
        _wait_for_running(proc, out)
        os.killpg(
            proc.pid, signal.SIGINT
        )  # what a terminal's Ctrl-C sends: the whole foreground group
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode in (1, 130), err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("interrupted")
    trials = optuna.load_study(
        study_name="smoke", storage=f"sqlite:///{out / 'study.db'}"
    ).get_trials()
    assert not [t for t in trials if t.state == TrialState.RUNNING]  # handed back
    resumed = launch("--study", "smoke", "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]


@pytest.mark.slow
def test_kill_9_of_the_launcher_takes_its_local_ray_along(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _start(out)
    try:
        _wait_for_running(proc, out)
        ray_pids = _descendants(proc.pid)
        assert len(ray_pids) >= 3, "no local Ray under the launcher"
        assert {ip for ip in _listening(ray_pids)} == {
            "127.0.0.1"
        }  # the local Ray binds loopback only
        os.kill(proc.pid, signal.SIGKILL)  # the launcher alone, not its process group
        proc.wait()
        deadline = time.time() + 10
        while time.time() < deadline and _alive(ray_pids):
            time.sleep(0.5)
        left = {p: _cmdline(p) for p in _alive(ray_pids)}
        assert not left, left
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _cmdline(pid: int) -> str:
    try:
        return (
            (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
        )
    except OSError:
        return "?"


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            state = (Path("/proc") / str(pid) / "stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


def _listening(pids: list[int]) -> list[str]:
    import ray  # noqa: F401  (Ray's own psutil is on sys.path once ray is imported)

    # isort: split
    import psutil

    found = []
    for pid in pids:
        try:
            found += [
                c.laddr.ip.removeprefix("::ffff:")
                for c in psutil.Process(pid).net_connections(kind="inet")
                if c.status == psutil.CONN_LISTEN
            ]
        except psutil.Error:
            pass
    return found


def test_the_watchdog_finds_a_raylets_orphaned_workers() -> None:
    """A worker the raylet was starting when the launcher died has no known parent left: the
    watchdog finds it by the RAY_RAYLET_PID in its environment, and leaves other raylets' alone."""
    from search import watchdog

    raylet = watchdog.psutil.Process(os.getpid())  # the psutil the watchdog found
    ours = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        env={**os.environ, "RAY_RAYLET_PID": str(os.getpid())},
    )
    other = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        env={**os.environ, "RAY_RAYLET_PID": "1"},
    )
    try:
        time.sleep(0.5)
        found = {p.pid for p in watchdog.raylet_workers({os.getpid(): raylet.create_time()})}
        assert ours.pid in found and other.pid not in found
        assert not watchdog.raylet_workers({os.getpid(): time.time() + 60})  # a reused raylet pid
    finally:
        ours.kill(), other.kill()
