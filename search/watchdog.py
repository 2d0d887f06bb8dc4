"""`python -m search.watchdog PID`: when process PID is gone, end the processes it had started.

Why: a local Ray's raylet dies with its driver, but its DashboardAgent and RuntimeEnvAgent notice
only after a minute or more, and a kill -9 of the launcher gives Ray no chance to shut down. While
PID lives, the watchdog remembers PID's descendants (the local Ray's GCS, raylet, agents, workers);
once PID is gone, it kills those still running (matched by creation time, so a reused pid is safe),
and the workers the raylet was starting at that moment: they are orphans by then, found by the
RAY_RAYLET_PID Ray puts in every worker's environment.
"""

from __future__ import annotations

import os
import sys
import time

try:
    import psutil
except ImportError:  # Ray ships its own copy, on sys.path once ray is imported
    import ray  # noqa: F401

    # isort: split
    import psutil

POLL_S = 0.5


def descendants(parent: psutil.Process) -> dict[int, float]:
    found = {}
    try:
        for child in parent.children(recursive=True):
            try:
                found[child.pid] = child.create_time()
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    return found


def kill(known: dict[int, float], raylets: dict[int, float]) -> None:
    procs = []
    for pid, created in known.items():
        try:
            proc = psutil.Process(pid)
            if proc.create_time() == created and pid != os.getpid():
                procs.append(proc)
                procs.extend(proc.children(recursive=True))  # started after the last look
        except psutil.Error:
            pass
    procs += raylet_workers(raylets)
    for proc in procs:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=5)


def raylet_workers(raylets: dict[int, float]) -> list[psutil.Process]:
    """The workers of these raylets (pid: creation time), also those whose raylet is gone."""
    found = []
    for proc in psutil.process_iter():
        try:
            raylet = int(proc.environ().get("RAY_RAYLET_PID", 0))
            if (
                raylet in raylets
                and proc.create_time() >= raylets[raylet]
                and proc.pid != os.getpid()
            ):
                found.append(proc)
        except (psutil.Error, ValueError):
            pass
    return found


def raylets_among(known: dict[int, float]) -> dict[int, float]:
    found = {}
    for pid, created in known.items():
        try:
            if psutil.Process(pid).name() == "raylet":
                found[pid] = created
        except psutil.Error:
            pass
    return found


def watch(pid: int) -> None:
    try:
        parent = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    known: dict[int, float] = {}
    raylets: dict[int, float] = {}
    while alive(parent):
        new = descendants(parent)
        raylets.update(raylets_among({p: c for p, c in new.items() if p not in known}))
        known.update(new)
        known.pop(os.getpid(), None)
        time.sleep(POLL_S)
    kill(known, raylets)


def alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


if __name__ == "__main__":
    watch(int(sys.argv[1]))
