"""Cost of a network: parameters, FLOPs (torch.utils.flop_counter) and latency.

FLOPs count one multiply-add as 2 FLOPs (torch.utils.flop_counter's convention).
`measure_latency` is the one latency measurement the profile command and the search share.
"""
from __future__ import annotations

import statistics
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Iterator

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from space.errors import ConfigError

MIN_RUNS = 20
WARMUP = 5


@dataclass(frozen=True)
class LatencyStats:
    median_ms: float
    p25_ms: float
    p75_ms: float
    mean_ms: float
    std_ms: float
    cv: float          # std / mean
    runs: int          # timed runs (warm-up runs excluded)
    threads: int       # torch intra-op threads during the measurement
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
        raise ConfigError(f"unknown device {device!r} (use cpu, cuda or cuda:N)", field="device") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{device} requested but CUDA is not available", field="device")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"{device}: only {torch.cuda.device_count()} CUDA device(s)", field="device")
    return dev


@contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Fix torch's intra-op threads for the block and restore them after."""
    before = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"threads must be at least 1, got {threads}", field="threads")
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def measure_latency(model: nn.Module, input_size: int, device: str | torch.device = "cpu",
                    threads: int | None = None, warmup: int = WARMUP, runs: int = 30) -> LatencyStats:
    """Batch-1 inference latency: `warmup` runs discarded, then `runs` (>= 20) timed runs.

    The model is moved to `device` and put in eval mode (callers pass a model they own or a copy).
    On CUDA each run is synchronised so the time covers the kernels, not just their launch.
    """
    if runs < MIN_RUNS:
        raise ConfigError(f"at least {MIN_RUNS} timed runs are needed for a median and spread, got {runs}",
                          field="runs")
    if warmup < 0:
        raise ConfigError(f"warm-up runs cannot be negative, got {warmup}", field="warmup")
    dev = resolve_device(device)
    model = model.to(dev).eval()
    x = torch.randn(1, 3, input_size, input_size, device=dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    times = []
    with torch_threads(threads) as n_threads, torch.inference_mode():
        for i in range(warmup + runs):
            sync()
            t0 = time.perf_counter()
            model(x)
            sync()
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1e3)
    q1, median, q3 = statistics.quantiles(times, n=4, method="inclusive")
    mean, std = statistics.fmean(times), statistics.stdev(times)
    return LatencyStats(median_ms=median, p25_ms=q1, p75_ms=q3, mean_ms=mean, std_ms=std,
                        cv=std / mean if mean > 0 else 0.0, runs=runs, threads=n_threads, device=str(dev))
