"""Cost of a network: parameters, FLOPs (torch.utils.flop_counter) and latency.

FLOPs count one multiply-add as 2 FLOPs (torch.utils.flop_counter's convention).
`measure_latency` is the one latency measurement the profile command and the search share; how the
network is run and which clock times it is a latency backend (space.latency_backends).
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from space.errors import ConfigError
from space.latency_backends import latency_backend, torch_threads  # noqa: F401  (torch_threads: re-exported)

MIN_RUNS = 20
WARMUP = 5


@dataclass(frozen=True)
class LatencyStats:
    median_ms: float
    p25_ms: float
    p75_ms: float
    mean_ms: float
    std_ms: float
    cv: float  # std / mean
    runs: int  # timed runs (warm-up runs excluded)
    threads: int  # torch intra-op threads during the measurement
    device: str

    def as_dict(self) -> dict:
        return asdict(self)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _device_of(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def count_flops(model: nn.Module, input_size: int, batch: int = 1) -> int:
    """Forward FLOPs at (batch, 3, input_size, input_size); 1 multiply-add = 2 FLOPs.

    Works on a model built under `torch.device("meta")`, which costs no compute.
    """
    x = torch.zeros(batch, 3, input_size, input_size, device=_device_of(model))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """Parse a device string ('cpu', 'cuda', 'cuda:N'); None picks CUDA when there is one, else the CPU.

    A CUDA device that is not there is the user's error (ConfigError naming `device`)."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(
            f"unknown device {device!r} (use cpu, cuda or cuda:N)", field="device"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{device} requested but CUDA is not available", field="device")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(
                f"{device}: only {torch.cuda.device_count()} CUDA device(s)", field="device"
            )
    return dev


def measure_latency(
    model: nn.Module,
    input_size: int,
    device: str | torch.device = "cpu",
    threads: int | None = None,
    warmup: int = WARMUP,
    runs: int = 30,
    *,
    backend: str = "torch",
    thread_clock: bool = False,
) -> LatencyStats:
    """Batch-1 inference latency: `warmup` runs discarded, then `runs` (>= 20) timed runs.

    `backend` (space.latency_backends) prepares the model on `device` (torch: moved there and put in
    eval mode, so callers pass a model they own or a copy) and runs one inference. The clock is the
    wall clock, or with `thread_clock` the calling thread's CPU time (only where the backend's
    `thread_clock_covers` the device and threads).
    """
    if runs < MIN_RUNS:
        raise ConfigError(
            f"at least {MIN_RUNS} timed runs are needed for a median and spread, got {runs}",
            field="runs",
        )
    if warmup < 0:
        raise ConfigError(f"warm-up runs cannot be negative, got {warmup}", field="warmup")
    dev = resolve_device(device)
    impl = latency_backend(backend)
    if thread_clock and not impl.thread_clock_covers(str(dev), threads or torch.get_num_threads()):
        raise ConfigError(
            f"the thread clock does not cover {backend} inference on {dev} with {threads} threads",
            field="clock",
        )
    clock = impl.clock(thread_clock)
    with impl.session(model, input_size, dev, threads) as session:
        times = []
        for i in range(warmup + runs):
            t0 = clock()
            session.infer()
            if i >= warmup:
                times.append((clock() - t0) * 1e3)
    return latency_stats(times, threads=session.threads, device=session.device)


def latency_stats(times_ms: list[float], threads: int, device: str) -> LatencyStats:
    """Median, quartiles (inclusive method), mean, std and CV of timed runs."""
    q1, median, q3 = statistics.quantiles(times_ms, n=4, method="inclusive")
    mean, std = statistics.fmean(times_ms), statistics.stdev(times_ms)
    return LatencyStats(
        median_ms=median,
        p25_ms=q1,
        p75_ms=q3,
        mean_ms=mean,
        std_ms=std,
        cv=std / mean if mean > 0 else 0.0,
        runs=len(times_ms),
        threads=threads,
        device=device,
    )
