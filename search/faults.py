"""Fault injection for the reliability tests (tests/test_faults.py); inert unless SOFTGATE_FAULT is set.

`SOFTGATE_FAULT=POINT[:N]` makes the study's launcher die by SIGKILL the N-th time (default: the
first) a process of the study passes `fault_point(POINT)`: the launcher itself, or a Ray worker on
its behalf (`SOFTGATE_FAULT_PID`, set by the launcher, names it). `SOFTGATE_FAULT_GROUP=1` kills the
launcher's whole process group instead. The points are named where they are called.
"""

from __future__ import annotations

import os
import signal

_passes: dict[str, int] = {}


def arm() -> None:
    """Called by the launcher before Ray starts, so that its workers know whom to kill."""
    if os.environ.get("SOFTGATE_FAULT"):
        os.environ.setdefault("SOFTGATE_FAULT_PID", str(os.getpid()))


def fault_point(name: str) -> None:
    spec = os.environ.get("SOFTGATE_FAULT")
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    _passes[name] = _passes.get(name, 0) + 1
    if _passes[name] < int(nth or 1):
        return
    pid = int(os.environ.get("SOFTGATE_FAULT_PID") or os.getpid())
    if os.environ.get("SOFTGATE_FAULT_GROUP") == "1":
        os.killpg(os.getpgid(pid), signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
