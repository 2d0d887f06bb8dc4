"""Latency that can be trusted while other trials train on the same machine.

Four things keep the number stable (docs/search.md, "Latency"):
  0. On CPU with one thread (the default target) the clock is the inference thread's CPU time
     (time.thread_time), not the wall clock (wherever the latency backend, space.latency_backends,
     says that clock covers a whole inference; torch and onnxruntime: CPU, one thread): while
     other trials' processes take turns on the same cores, the time this thread waits for a core
     is not counted, so the number is the latency on an idle core. Wall-clock time under load
     measured 3x too high here; CPU time moved by a fraction of that. Multi-threaded and CUDA
     measurements use the wall clock (both clocks go through space.profile.measure_latency);
     while they measure, the trials
     training on the meter's node pause between steps (search.quiet, `latency.pause_trials`),
     and points 1-3 hold too.
  1. One named Ray actor per study, the *latency meter*, does every measurement, one at a time
     (a sync actor runs one call at a time), so two measurements never compete with each other.
  2. A fixed thread count (latency.threads), warm-up runs, and enough timed runs to fill at least
     `latency.min_seconds` (a median over a second of runs spans many scheduler time slices, so
     a burst of load from a training trial moves it little), and the median.
  3. A cache by (arch_id, input size) and the meter's settings (backend, device, threads): in
     the meter for this run, and in the storage (the runner looks up earlier COMPLETE trials of
     the same arch) across runs and `--resume`, so a repeated architecture reuses its measurement
     instead of being measured again under different load.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Any

import ray

from search.quiet import QuietWindow

LATENCY_KEYS = ("latency_ms", "latency_p25_ms", "latency_p75_ms", "latency_cv")


def latency_attrs(stats: Any) -> dict[str, float]:
    """space.profile.LatencyStats -> the trial user attrs of the storage contract."""
    return {
        "latency_ms": float(stats.median_ms),
        "latency_p25_ms": float(stats.p25_ms),
        "latency_p75_ms": float(stats.p75_ms),
        "latency_cv": float(stats.cv),
    }


def backend_name(latency: dict) -> str:
    """The study's latency backend (space.latency_backends); the one place that reads the key."""
    return latency.get("backend", "torch")


def uses_thread_clock(device: str, threads: int, clock: str, backend: str = "torch") -> bool:
    """Point 0: with clock auto, the thread clock wherever the backend says it covers an inference."""
    from space.latency_backends import latency_backend

    return clock == "auto" and latency_backend(backend).thread_clock_covers(device, threads)


class LatencyMeter:
    """Measures batch-1 latency of an architecture; wrapped as a Ray actor by `start_meter`."""

    def __init__(
        self,
        device: str = "cpu",
        threads: int = 1,
        warmup: int = 10,
        runs: int = 50,
        min_seconds: float = 1.0,
        cache: bool = True,
        clock: str = "auto",
        quiet: QuietWindow | None = None,
        backend: str = "torch",
    ):
        self.device, self.threads, self.warmup, self.runs = device, threads, warmup, runs
        self.backend = backend
        self.thread_clock = uses_thread_clock(device, threads, clock, backend)
        # the thread clock already ignores other processes; only wall-clock measurements pause them
        self.quiet = None if self.thread_clock else quiet
        self.min_seconds, self.use_cache = min_seconds, cache
        self.cache: dict[tuple, dict[str, float]] = {}

    def measure(self, arch: dict, input_size: int | None = None) -> dict[str, float]:
        from space.model import build_model
        from space.profile import measure_latency
        from space.spec import ArchSpec

        spec = ArchSpec.from_dict(arch)
        size = int(input_size or spec.input_size)
        key = (spec.arch_id, size, self.backend, self.device, self.threads)
        if self.use_cache and key in self.cache:
            return self.cache[key]
        model = build_model(spec, input_size=size).eval()

        def measure(warmup: int, runs: int) -> Any:
            return measure_latency(
                model,
                size,
                device=self.device,
                threads=self.threads,
                warmup=warmup,
                runs=runs,
                backend=self.backend,
                thread_clock=self.thread_clock,
            )

        with self.quiet.exclusive() if self.quiet else nullcontext():
            probe = measure(self.warmup, 20)
            runs = max(self.runs, math.ceil(self.min_seconds * 1e3 / max(probe.median_ms, 1e-3)))
            stats = measure(0, min(runs, 100_000))
        self.cache[key] = result = latency_attrs(stats)
        return result


def quiet_window(study_name: str, latency: dict) -> QuietWindow | None:
    """The study's quiet window, or None when its latency needs none (thread clock) or is not asked to."""
    if not latency["pause_trials"] or uses_thread_clock(
        latency["device"], latency["threads"], latency["clock"], backend_name(latency)
    ):
        return None
    return QuietWindow(study_name)


def start_meter(study_name: str, latency: dict, quiet: QuietWindow | None = None) -> Any:
    """The study's meter actor (created, or found when another process of the study started it).

    It reserves no CPU so that it never takes a trial's slot; on CUDA it asks for a sliver of a GPU
    so that Ray makes the device visible to it. It lives on the driver's node when it can, so that
    one machine measures every trial of the study and losing a worker node never loses the meter;
    if its node dies all the same, Ray restarts it and retries the call (only its cache is lost).
    """
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    gpus = 0.01 if str(latency["device"]).startswith("cuda") else 0
    here = NodeAffinitySchedulingStrategy(
        node_id=ray.get_runtime_context().get_node_id(), soft=True
    )
    actor = ray.remote(LatencyMeter).options(
        name=f"softgate-latency-{study_name}",
        get_if_exists=True,
        num_cpus=0,
        num_gpus=gpus,
        max_concurrency=1,
        scheduling_strategy=here,
        max_restarts=-1,
        max_task_retries=-1,
    )
    return actor.remote(**meter_settings(latency), quiet=quiet)


def meter_settings(latency: dict) -> dict:
    """`LatencyMeter`'s arguments from a study's latency section (`pause_trials` is the study's own)."""
    keys = ("device", "threads", "warmup", "runs", "min_seconds", "cache", "clock")
    return {k: latency[k] for k in keys} | {"backend": backend_name(latency)}
