"""Latency of several architectures timed together, interleaved round-robin, with intervals.

A machine like a shared VM drifts over seconds: two architectures timed a minute apart can differ by
15 % with nothing else running (docs/search.md, "Measured spread"). Timed interleaved (one inference
of A, one of B, one of C, ..., repeated), drift hits all of them alike within a round, so the ratio
of each to a reference architecture timed in the same round is what can be trusted: that ratio
decides Pareto membership, and the absolute milliseconds are reported beside it.

`measure_interleaved` opens every network's latency-backend session (space.latency_backends), warms
each up, then runs rounds (the order rotated each round, so no network always follows the same one)
until every ratio's bootstrap interval is within `target` of its median, or `max_seconds` pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from space.errors import ConfigError
from space.latency_backends import latency_backend
from space.profile import resolve_device

BOOTSTRAP = 1000
MIN_ROUNDS = 20


@dataclass(frozen=True)
class Interleaved:
    """One architecture's latency from one interleaved pass."""

    median_ms: float
    low_ms: float  # bootstrap 95 % interval of the median
    high_ms: float
    ratio: float  # median over rounds of (this arch's time / the reference's in the same round)
    ratio_low: float
    ratio_high: float
    rounds: int
    reference: str  # the reference's key

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def ratio_halfwidth(self) -> float:
        """Half the ratio's interval, relative to the ratio."""
        return (self.ratio_high - self.ratio_low) / 2 / self.ratio


def bootstrap_median(values: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of the median of `values`."""
    picks = rng.integers(0, len(values), size=(BOOTSTRAP, len(values)))
    medians = np.median(values[picks], axis=1)
    return float(np.percentile(medians, 2.5)), float(np.percentile(medians, 97.5))


def summarise(
    times: Mapping[str, Sequence[float]], reference: str, seed: int = 0
) -> dict[str, Interleaved]:
    """Per key: median and interval of its times (ms), and of its per-round ratio to `reference`."""
    rng = np.random.default_rng(seed)
    ref = np.asarray(times[reference], dtype=float)
    out = {}
    for key, values in times.items():
        t = np.asarray(values, dtype=float)
        ratio = t / ref
        low, high = bootstrap_median(t, rng)
        r_low, r_high = bootstrap_median(ratio, rng)
        out[key] = Interleaved(
            float(np.median(t)),
            low,
            high,
            float(np.median(ratio)),
            r_low,
            r_high,
            len(t),
            reference,
        )
    return out


def _converged(stats: Mapping[str, Interleaved], target: float) -> bool:
    return all(s.ratio_halfwidth <= target for s in stats.values())


def run_rounds(
    infer: Mapping[str, Callable[[], None]], clock: Callable[[], float], rounds: int, start: int = 0
) -> dict[str, list[float]]:
    """`rounds` rounds, each one timed call of every `infer`, the order rotated by one each round."""
    keys = list(infer)
    times: dict[str, list[float]] = {k: [] for k in keys}
    for r in range(start, start + rounds):
        shift = r % len(keys)
        for key in keys[shift:] + keys[:shift]:
            t0 = clock()
            infer[key]()
            times[key].append((clock() - t0) * 1e3)
    return times


def measure_interleaved(
    models: Mapping[str, torch.nn.Module],
    input_size: int,
    *,
    reference: str | None = None,
    backend: str = "torch",
    device: str = "cpu",
    threads: int = 1,
    thread_clock: bool = False,
    warmup: int = 5,
    target: float = 0.01,
    max_seconds: float = 120.0,
    min_rounds: int = MIN_ROUNDS,
) -> dict[str, Interleaved]:
    """Time `models` (key -> network) interleaved at batch 1 and `input_size` until every ratio to
    `reference` (default: the first key) has a 95 % interval within +-`target` of its median, or
    `max_seconds` pass (at least `min_rounds` rounds either way)."""
    if not models:
        raise ConfigError("no architecture to time", field="archs")
    reference = reference or next(iter(models))
    impl = latency_backend(backend)
    if thread_clock and not impl.thread_clock_covers(device, threads):
        raise ConfigError(
            f"the thread clock does not cover {backend} on {device} with {threads} threads",
            field="clock",
        )
    clock = impl.clock(thread_clock)
    dev = resolve_device(device)
    with ExitStack() as stack:
        infer = {
            k: stack.enter_context(impl.session(m, input_size, dev, threads)).infer
            for k, m in models.items()
        }
        run_rounds(infer, clock, warmup)
        return _rounds_until_tight(infer, clock, reference, target, max_seconds, min_rounds)


def _rounds_until_tight(
    infer: Mapping[str, Callable[[], None]],
    clock: Callable[[], float],
    reference: str,
    target: float,
    max_seconds: float,
    min_rounds: int,
) -> dict[str, Interleaved]:
    started = time.monotonic()
    times = run_rounds(infer, clock, min_rounds)
    while True:
        stats = summarise(times, reference)
        if _converged(stats, target) or time.monotonic() - started > max_seconds:
            return stats
        more = run_rounds(infer, clock, max(min_rounds // 2, 1), start=len(times[reference]))
        for key, values in more.items():
            times[key].extend(values)
