"""Wall-clock latency measured while training trials share the device, with and without the quiet window.

    python benchmarks/latency_under_load.py                     # CPU, 2 trainers, 2-thread latency
    python benchmarks/latency_under_load.py --device cuda --trainers 4
    python benchmarks/latency_under_load.py --arch bulat-sgsc-tiny --threads 1 --repeats 2   # a quick look
    python benchmarks/latency_under_load.py --threads 1 --clock auto --backend onnxruntime  # a study's CPU default

Wall-clock latency (CUDA, CPU with several threads, `latency.clock: wall`) sees every other process
on the device. The study's latency meter therefore pauses the node's training trials while it
measures (`search.quiet`, `latency.pause_trials`). With one CPU thread a study times the thread's
CPU time instead (`--clock auto`): it ignores the wait for a core, not the caches and memory
bandwidth the trainers share; "paused" then says what pausing the trials would add. This
benchmark measures one arch, in this run:

1. idle: nothing else running (the baseline);
2. loaded: `--trainers` processes train proxies (`train_proxy` with the window's step guard) while
   the meter measures without the window;
3. paused: the same load, the meter holding the window.

Loaded and paused measurements alternate, `--repeats` each, so drifting load hits both alike. Prints
the median of each setting, its ratio to idle and the CV across repeats (the study's target is
CV <= 5 %; a paused ratio near 1 means the number is the arch's, not the load's).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import worker_pool  # noqa: E402
from search.latency import LatencyMeter  # noqa: E402
from search.quiet import QuietWindow  # noqa: E402
from space.spec import load_arch  # noqa: E402


def train_until(stop_file: str, window: QuietWindow, device: str, threads: int) -> int:
    """A training trial: proxies on synthetic data, one after another, until `stop_file` exists."""
    import torch

    from trainers.data import load_poses
    from trainers.proxy import ProxyBudget, train_proxy

    torch.set_num_threads(threads)
    train, val = load_poses("synthetic:512", "train", 64), load_poses("synthetic:64", "val", 64)
    spec = load_arch("bulat-sgsc-proxy")
    runs = 0
    while not Path(stop_file).exists():
        train_proxy(
            spec,
            train,
            val,
            ProxyBudget(epochs=1, max_seconds=5, batch_size=16),
            device=device,
            threads=threads,
            step_guard=window.step,
        )
        runs += 1
    return runs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--arch", default="bulat-sgsc-proxy", help="preset or YAML of the measured arch")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2, help="torch threads of the measurement")
    p.add_argument("--trainers", type=int, default=2, help="training processes")
    p.add_argument("--trainer-threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--min-seconds", type=float, default=1.0)
    p.add_argument(
        "--runs", type=int, default=20, help="timed runs per measurement, at least (>= 20)"
    )
    p.add_argument("--backend", default="torch", help="latency backend (space.latency_backends)")
    p.add_argument(
        "--clock",
        default="wall",
        choices=("wall", "auto"),
        help="auto: the thread's CPU time where the backend allows it (one CPU thread)",
    )
    args = p.parse_args(argv)

    arch = load_arch(args.arch).to_dict()
    folder = tempfile.mkdtemp(prefix="latency-under-load-")
    window = QuietWindow("bench", folder)

    plain, pausing = (
        LatencyMeter(
            device=args.device,
            threads=args.threads,
            runs=args.runs,
            cache=False,
            min_seconds=args.min_seconds,
            clock=args.clock,
            quiet=quiet,
            backend=args.backend,
        )
        for quiet in (None, window)
    )

    def measure(meter: LatencyMeter) -> float:
        # a thread-clock meter never pauses the trials itself: hold the window around it here
        hold = meter is pausing and meter.quiet is None
        with window.exclusive() if hold else contextlib.nullcontext():
            return meter.measure(arch)["latency_ms"]

    idle = [measure(plain) for _ in range(args.repeats)]
    stop = Path(folder) / "stop"
    results: dict[str, list[float]] = {"loaded": [], "paused": []}
    with worker_pool(args.trainers) as pool:
        futures = [
            pool.submit(train_until, str(stop), window, args.device, args.trainer_threads)
            for _ in range(args.trainers)
        ]
        time.sleep(10)  # the trainers load data and start stepping
        for _ in range(args.repeats):
            results["loaded"].append(measure(plain))
            results["paused"].append(measure(pausing))
        stop.touch()
        proxies = sum(f.result() for f in futures)

    base = statistics.median(idle)
    clock = "thread CPU time" if plain.thread_clock else "wall clock"
    print(
        f"{args.arch} on {args.device} ({args.backend}), {args.threads} thread(s), {clock}; {args.trainers} trainer(s) "
        f"x {args.trainer_threads} thread(s) ({proxies} proxies trained meanwhile); {args.repeats} repeats"
    )
    print(f"{'setting':8s} {'median ms':>10s} {'x idle':>7s} {'CV':>7s}  measurements")
    for name, values in (("idle", idle), *results.items()):
        med = statistics.median(values)
        cv = statistics.stdev(values) / statistics.mean(values)
        print(
            f"{name:8s} {med:10.3f} {med / base:7.2f} {cv:7.1%}  {', '.join(f'{v:.2f}' for v in values)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
