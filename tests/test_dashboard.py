"""launch.py dashboard: optuna-dashboard on a real SQLite study, reached over HTTP on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
from helpers import REPO, free_port

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture
def storage(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(
        study_name="dash-study", storage=url, directions=["maximize", "minimize"]
    )
    trial = study.ask()
    trial.set_user_attr("arch_id", "abc123")
    study.tell(trial, [0.5, 3.0])
    return url


def launch(*args: str) -> list[str]:
    return [sys.executable, str(REPO / "launch.py"), "dashboard", *args]


def test_dashboard_serves_study(storage: str, tmp_path: Path) -> None:
    port = free_port()
    cmd = launch("--study", "dash-study", "--storage", storage, "--port", str(port))
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline, body = time.monotonic() + 60, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/api/studies", timeout=5
                ) as resp:
                    body = json.loads(resp.read())
                break
            except OSError:
                time.sleep(0.5)
        assert body is not None, f"dashboard did not answer: {proc.poll()=}"
        assert [s["study_name"] for s in body["study_summaries"]] == ["dash-study"]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_dashboard_unknown_study(storage: str, tmp_path: Path) -> None:
    cmd = launch("--study", "nope", "--storage", storage, "--port", str(free_port()))
    done = subprocess.run(cmd, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "known studies: dash-study" in done.stderr and "Traceback" not in done.stderr


def test_dashboard_port_in_use(storage: str, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cmd = launch("--study", "dash-study", "--storage", storage, "--port", str(port))
        done = subprocess.run(
            cmd, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 2
    assert (
        f"127.0.0.1:{port}" in done.stderr
        and "--port" in done.stderr
        and "Traceback" not in done.stderr
    )
