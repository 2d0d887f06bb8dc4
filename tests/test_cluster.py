"""Beyond one machine, for real: a two-node Ray cluster on loopback and a PostgreSQL storage.

- a head and a second `ray start` node with its own resources; the second node runs in its own
  mount namespace where the dataset and the data cache are hidden behind empty tmpfs mounts, so any
  trial scheduled there can only have received its data through Ray's object store;
- two `launch.py` processes working on one PostgreSQL study at once;
- the second node killed mid-study.

PostgreSQL tests need SOFTGATE_TEST_POSTGRES (`.ci/run` starts a server with `.ci/postgres.sh`).
All tests here are slow (the separate CI job).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from helpers import REPO, free_port, study_file
from optuna.trial import TrialState

LSPET = REPO.parent / "shared" / "datasets" / "lspet"
PG_URL = os.environ.get("SOFTGATE_TEST_POSTGRES")
RAY = str(Path(sys.executable).with_name("ray"))

pytestmark = pytest.mark.slow


def env(**extra: str) -> dict:
    # `ray start` clusters use token auth (Ray >= 2.5x); every process here shares ~/.ray/auth_token
    e = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        PYTHONPATH=str(REPO),
        RAY_USAGE_STATS_ENABLED="0",
        RAY_AUTH_MODE="token",
    )
    e.update(extra)
    return e


def launch(args: list[str], **extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(REPO / "launch.py"), *args],
        cwd=REPO,
        env=env(**extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(proc: subprocess.Popen, timeout: float) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"launch.py did not finish in {timeout}s:\n{out[-4000:]}")
    assert proc.returncode == 0, out[-4000:]
    return out


def counted(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Trials that count toward the requested number (not the re-queued or surplus bookkeeping ones)."""
    return [
        t
        for t in study.get_trials(deepcopy=False)
        if not (
            t.state == TrialState.FAIL
            and t.user_attrs.get("fail_reason") in ("interrupted", "surplus")
        )
    ]


def can_hide_paths() -> bool:
    probe = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            "mount -t tmpfs none /mnt && echo ok",
        ],
        capture_output=True,
        text=True,
    )
    return probe.stdout.strip() == "ok"


class Cluster:
    """A Ray head and one worker node, each a `ray start --block` in its own process group.

    Each node has its own loopback address (127.0.0.2, 127.0.0.3): Ray replaces 127.0.0.1 by the
    machine's network address, and the nodes are told apart by address too.
    """

    def __init__(self, tmp: Path, hide: list[Path]):
        self.port = free_port()
        self.address = f"127.0.0.2:{self.port}"
        self.tmp = tmp
        self.head = self.worker = None
        common = ["--num-cpus=1", "--disable-usage-stats", "--block"]
        try:
            self.head = self._start(
                [
                    RAY,
                    "start",
                    "--head",
                    f"--port={self.port}",
                    "--node-ip-address=127.0.0.2",
                    "--include-dashboard=false",
                    '--resources={"head_node": 1}',
                    *common,
                ],
                "head",
            )
            self._wait_nodes(1)
            # the worker node cannot see the dataset or the data cache: empty tmpfs over each, in its own
            # mount namespace
            mounts = " && ".join(f"mount -t tmpfs none '{p}'" for p in hide)
            worker = " ".join(
                [
                    RAY,
                    "start",
                    f"--address={self.address}",
                    "--node-ip-address=127.0.0.3",
                    "--resources='{\"worker_node\": 1}'",
                    *common,
                ]
            )
            self.worker = self._start(
                [
                    "unshare",
                    "--mount",
                    "--propagation",
                    "private",
                    "sh",
                    "-c",
                    f"{mounts} && exec {worker}",
                ],
                "worker",
            )
            self._wait_nodes(2)
        except BaseException:
            self.stop()
            raise

    def _start(self, cmd: list[str], name: str) -> subprocess.Popen:
        log = open(self.tmp / f"ray-{name}.log", "w")
        return subprocess.Popen(
            cmd, env=env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def nodes(self) -> list[dict]:
        code = (
            f"import ray, json; ray.init(address={self.address!r}, logging_level='ERROR'); "
            "print(json.dumps([{'id': n['NodeID'], 'alive': n['Alive'], 'res': n['Resources']} "
            "for n in ray.nodes()]))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], env=env(), capture_output=True, text=True, timeout=120
        )
        return json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else []

    def _wait_nodes(self, n: int, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if sum(1 for node in self.nodes() if node["alive"]) >= n:
                return
            time.sleep(2)
        logs = "\n".join(p.read_text()[-2000:] for p in self.tmp.glob("ray-*.log"))
        raise RuntimeError(f"the Ray cluster did not reach {n} node(s):\n{logs}")

    def node_ids(self) -> dict[str, str]:
        """resource marker ('head_node' / 'worker_node') -> node id."""
        ids = {}
        for node in self.nodes():
            for marker in ("head_node", "worker_node"):
                if marker in node["res"]:
                    ids[marker] = node["id"]
        return ids

    def kill_worker(self) -> None:
        os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.wait()

    def stop(self) -> None:
        procs = [p for p in (self.worker, self.head) if p is not None]
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        # --block'ed nodes take their daemons with them; what is left of a SIGKILLed node goes here
        subprocess.run(["pkill", "-9", "-f", f"127.0.0.2:{self.port}"], capture_output=True)


@pytest.fixture
def lspet_cluster(tmp_path):
    if not LSPET.exists():
        pytest.skip(f"LSPET not found at {LSPET}")
    if shutil.which("unshare") is None or not can_hide_paths():
        pytest.skip("needs root and unshare to hide the dataset from the second node")
    cache = tmp_path / "cache"
    cache.mkdir()
    cluster = Cluster(tmp_path, hide=[LSPET, cache])
    try:
        yield cluster, cache
    finally:
        cluster.stop()


def launch_on_cluster(
    lspet_cluster, tmp_path: Path, name: str, **proxy
) -> tuple[subprocess.Popen, Path]:
    """4 trials, 2 at a time (one per node), on a small LSPET subset the driver alone can read."""
    cluster, cache = lspet_cluster
    path = study_file(
        tmp_path,
        name,
        trials=4,
        concurrency=2,
        data={"source": f"lspet:{LSPET}", "train": 48, "val": 24},
        proxy={"input_size": 32, "batch_size": 16, "lr": 0.002, **proxy},
    )
    out = tmp_path / "run"
    proc = launch(
        ["--study", str(path), "--address", cluster.address, "--out", str(out)],
        SOFTGATE_CACHE=str(cache),
    )
    return proc, out


def test_two_node_cluster_runs_trials_on_both_nodes_without_shared_data(lspet_cluster, tmp_path):
    cluster, _ = lspet_cluster
    proc, out = launch_on_cluster(lspet_cluster, tmp_path, "cluster", epochs=2, max_seconds=20)
    log = finish(proc, timeout=600)
    study = optuna.load_study(study_name="cluster", storage=f"sqlite:///{out / 'study.db'}")
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 4, log[-3000:]
    ids = cluster.node_ids()
    used = {t.user_attrs["node_id"] for t in complete}
    assert used == {ids["head_node"], ids["worker_node"]}, (used, ids)
    # the worker node could not have read the data from disk: both paths are empty tmpfs there
    assert all(t.user_attrs["pck"] > 0 for t in complete)


def test_killing_a_node_mid_study_still_finishes(lspet_cluster, tmp_path):
    cluster, _ = lspet_cluster
    proc, out = launch_on_cluster(lspet_cluster, tmp_path, "nodeloss", epochs=30, max_seconds=25)
    storage = f"sqlite:///{out / 'study.db'}"
    deadline = time.time() + 300
    running = 0
    while time.time() < deadline and proc.poll() is None:
        try:
            study = optuna.load_study(study_name="nodeloss", storage=storage)
            running = sum(
                1 for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING
            )
        except Exception:  # not created yet
            running = 0
        if running >= 2:  # one on each node (1 CPU each)
            break
        time.sleep(1)
    assert running >= 2, "the study never ran two trials at once"
    time.sleep(5)  # well inside the trials' 25 s of training
    cluster.kill_worker()
    log = finish(proc, timeout=600)
    study = optuna.load_study(study_name="nodeloss", storage=storage)
    trials = counted(study)
    assert len(trials) == 4, log[-3000:]
    assert all(t.state.is_finished() for t in trials)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    # the lost node cost at most the trial it was running: the others completed
    assert len(complete) >= 3, [
        (t.number, t.state.name, t.user_attrs.get("fail_reason")) for t in trials
    ]
    alive = cluster.node_ids()["head_node"]
    assert all(t.user_attrs["node_id"] == alive for t in complete[-2:])


# -- PostgreSQL ---------------------------------------------------------------------------------------
needs_pg = pytest.mark.skipif(
    not PG_URL, reason="SOFTGATE_TEST_POSTGRES not set (.ci/postgres.sh start)"
)


def _password(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).password or ""


@needs_pg
def test_two_launch_processes_share_one_postgres_study(tmp_path):
    name = f"shared-{uuid.uuid4().hex[:8]}"
    path = study_file(
        tmp_path,
        name,
        trials=6,
        concurrency=1,
        proxy={"epochs": 2, "max_seconds": 6, "input_size": 32, "batch_size": 16, "lr": 0.002},
    )
    first = launch(["--study", str(path), "--storage", PG_URL, "--out", str(tmp_path / "a")])
    deadline = time.time() + 180
    while name not in optuna.get_all_study_names(PG_URL):
        assert first.poll() is None and time.time() < deadline, first.communicate()[0][-3000:]
        time.sleep(0.5)
    second = launch(
        ["--study", str(path), "--storage", PG_URL, "--out", str(tmp_path / "b"), "--resume"]
    )
    logs = [finish(first, timeout=600), finish(second, timeout=600)]
    study = optuna.load_study(study_name=name, storage=PG_URL)
    trials = counted(study)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 6 and len(trials) == 6, [(t.number, t.state.name) for t in study.trials]
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))
    # both processes did part of the work
    done_by = [sum(1 for line in log.splitlines() if line.startswith("[")) for log in logs]
    assert all(n >= 1 for n in done_by), done_by
    # credentials never printed, nor written into the run folders (exports, logs, Ray's files)
    secret = _password(PG_URL)
    assert secret and all(secret not in log for log in logs)
    for run in (tmp_path / "a", tmp_path / "b"):
        for f in run.rglob("*"):
            if f.is_file() and f.stat().st_size < 5_000_000:
                assert secret.encode() not in f.read_bytes(), f
    assert secret not in str(study.user_attrs)


@needs_pg
def test_dashboard_reads_a_postgres_study_live(tmp_path):
    import urllib.request

    name = f"live-{uuid.uuid4().hex[:8]}"
    study = optuna.create_study(
        study_name=name, storage=PG_URL, directions=["maximize", "minimize"]
    )
    port = free_port()
    path = study_file(tmp_path, name)
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "launch.py"),
            "dashboard",
            "--study",
            str(path),
            "--storage",
            PG_URL,
            "--port",
            str(port),
        ],
        cwd=REPO,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:

        def n_trials() -> int | None:
            """The study's trial count as the dashboard serves it (None: not answering yet)."""
            base = f"http://127.0.0.1:{port}/api/studies"
            try:
                with urllib.request.urlopen(base, timeout=5) as r:
                    ids = [
                        s["study_id"]
                        for s in json.load(r)["study_summaries"]
                        if s["study_name"] == name
                    ]
                with urllib.request.urlopen(f"{base}/{ids[0]}", timeout=5) as r:
                    return len(json.load(r)["trials"])
            except (OSError, IndexError):
                return None

        deadline = time.time() + 60
        while n_trials() is None and time.time() < deadline:
            time.sleep(0.5)
        before = n_trials()
        assert before is not None, (
            proc.stdout.read() if proc.poll() is not None else "dashboard not answering"
        )
        study.add_trial(
            optuna.trial.create_trial(values=[0.5, 3.0])
        )  # written while the dashboard runs
        deadline = time.time() + 30
        while n_trials() == before and time.time() < deadline:
            time.sleep(0.5)
        assert n_trials() == before + 1
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out = proc.communicate(timeout=30)[0]
    assert _password(PG_URL) not in out
