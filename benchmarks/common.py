"""What the benchmarks share: a process pool whose workers do not outlive the benchmark, and
JSON-lines logs of finished work that a rerun (or another worker) reads back."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any


def _exit_with_parent(parent: int) -> None:
    # a killed benchmark (Ctrl-C, kill, a session's end) must not leave workers training for an hour
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def worker_pool(jobs: int) -> ProcessPoolExecutor:
    """`jobs` spawned worker processes (fresh interpreters: torch threads are set per job) that exit
    when this process dies."""
    return ProcessPoolExecutor(
        jobs,
        mp_context=get_context("spawn"),
        initializer=_exit_with_parent,
        initargs=(os.getpid(),),
    )


def digest(what: Any) -> str:
    """A short stable key for a JSON-able value (dict key order does not matter)."""
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSON-lines log; the torn last line of a killed run is skipped."""
    records = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def append_jsonl(path: Path, record: dict) -> None:
    """Append one record in one write (several processes may share the log). A torn last line
    left by a killed run is ended first, so the record never glues onto it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+b") as f:
        torn = f.seek(0, 2) > 0 and (f.seek(-1, 2), f.read(1))[1] != b"\n"
        f.write((("\n" if torn else "") + json.dumps(record, default=str) + "\n").encode())
