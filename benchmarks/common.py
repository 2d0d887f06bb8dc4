"""What the benchmarks share: a process pool whose workers do not outlive the benchmark."""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context


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
    return ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_exit_with_parent,
                               initargs=(os.getpid(),))
