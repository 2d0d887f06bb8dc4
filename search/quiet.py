"""A quiet window for wall-clock latency: training trials on the meter's node pause while it measures.

Wall-clock latency (CUDA, multi-threaded CPU, `latency.clock: wall`) counts the time other
processes take from the device: on 2 shared cores one network measured 7.2 ms idle and 24.4 ms
beside 3 busy processes (docs/search.md). So while the study's latency meter measures, it holds
the node's quiet window: trials enter `step()` around each training step and each evaluation, and
`exclusive()` waits for the steps in flight, then holds new ones back until the measurement ends
(a second or two per new arch). Other work on the machine is not paused.

Two `flock`s on files in the node's temp folder, named after the study, make the window: a
*gate* that steps pass through (shared, released at once) and the meter holds (exclusive), so a
stream of overlapping steps cannot starve the meter, and a *work* lock that steps hold (shared)
and the meter waits for (exclusive). The kernel drops a lock when its process dies, so a killed
trial never wedges the study. Locks are per node: trials on other nodes train on other devices
and never wait. GPU work a step queued is not waited for; it drains within the meter's warm-up.
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class QuietWindow:
    """Node-local readers/writer lock named `name`: many `step()`s at once, or one `exclusive()`."""

    def __init__(self, name: str, folder: str | Path | None = None):
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        base = Path(folder or tempfile.gettempdir())
        self.gate_path = base / f"softgate-quiet-{safe}.gate"
        self.work_path = base / f"softgate-quiet-{safe}.work"
        self._fds: tuple[int, int] | None = None

    def _open(self) -> tuple[int, int]:
        if self._fds is None:  # one open file description per object: its flocks are its own
            self._fds = tuple(
                os.open(p, os.O_RDWR | os.O_CREAT, 0o666)  # type: ignore[assignment]
                for p in (self.gate_path, self.work_path)
            )
        return self._fds  # type: ignore[return-value]

    @contextmanager
    def step(self) -> Iterator[None]:
        """Held around one unit of a trial's device work; waits while the meter measures."""
        gate, work = self._open()
        fcntl.flock(gate, fcntl.LOCK_SH)
        fcntl.flock(gate, fcntl.LOCK_UN)
        fcntl.flock(work, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(work, fcntl.LOCK_UN)

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Held by the meter while it measures: no step of this node's trials runs meanwhile."""
        gate, work = self._open()
        fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(work, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(work, fcntl.LOCK_UN)
        finally:
            fcntl.flock(gate, fcntl.LOCK_UN)

    def __getstate__(self) -> dict:  # sent to Ray workers: each process opens its own files
        return {**self.__dict__, "_fds": None}
