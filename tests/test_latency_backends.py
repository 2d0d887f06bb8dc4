"""Latency backends (space.latency_backends): a toy backend registered inside the test, measured
through the study's LatencyMeter; its fake clock makes every number exact."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import torch
from torch import nn

from search.latency import LatencyMeter, quiet_window
from search.quiet import QuietWindow
from space.errors import ConfigError
from space.latency_backends import LATENCY_BACKENDS, LatencyBackend, Session
from space.model import build_model
from space.profile import measure_latency
from space.spec import load_arch

PATTERN_MS = (1.0, 2.0, 3.0, 4.0)  # the fake inference times, in turn
COLD_MS = 500.0  # the first inferences of a session are slow: warm-up must drop them


class FakeClockBackend(LatencyBackend):
    """Runs the real model once per session (it must build and run) and then advances a fake clock."""

    def __init__(self) -> None:
        self.now = 0.0
        self.calls = 0
        self.sessions = 0

    @contextmanager
    def session(
        self, model: nn.Module, input_size: int, device: torch.device, threads: int | None
    ) -> Iterator[Session]:
        with torch.inference_mode():
            outs = model.eval()(torch.zeros(1, 3, input_size, input_size))
        assert outs[-1].shape[-1] == input_size // 4
        self.sessions += 1
        in_session = 0

        def infer() -> None:
            nonlocal in_session
            ms = COLD_MS if in_session < 3 and self.sessions == 1 else PATTERN_MS[self.calls % 4]
            self.now += ms / 1e3
            self.calls += 1
            in_session += 1

        yield Session(infer=infer, threads=7, device=f"fake-{device}")

    def clock(self, thread_clock: bool) -> Callable[[], float]:
        return lambda: self.now


@pytest.fixture
def fake() -> Iterator[FakeClockBackend]:
    backend = FakeClockBackend()
    LATENCY_BACKENDS.register("test-fake-clock")(lambda: backend)
    try:
        yield backend
    finally:
        LATENCY_BACKENDS.unregister("test-fake-clock")


def test_the_meter_measures_through_a_registered_backend(fake: FakeClockBackend) -> None:
    arch = load_arch("bulat-sgsc-tiny").replace(input_size=32).to_dict()
    quiet = QuietWindow("s")
    meter = LatencyMeter(
        warmup=10, runs=50, min_seconds=0.999, backend="test-fake-clock", quiet=quiet
    )
    assert meter.quiet is quiet  # the fake clock is not a thread clock: the trials pause
    result = meter.measure(arch)
    # a probe of 10 warm-up + 20 runs, median 2.5 ms -> 0.999 s needs 400 runs (more than runs=50)
    assert fake.sessions == 2 and fake.calls == 10 + 20 + 400
    assert result["latency_ms"] == pytest.approx(2.5)
    assert (result["latency_p25_ms"], result["latency_p75_ms"]) == (
        pytest.approx(1.75),
        pytest.approx(3.25),
    )
    assert result["latency_cv"] == pytest.approx(math.sqrt(100 * 5 / 399) / 2.5)
    assert meter.measure(arch) == result and fake.calls == 430  # cached


def test_measure_latency_reports_the_backends_threads_and_device(fake: FakeClockBackend) -> None:
    stats = measure_latency(
        build_model(load_arch("bulat-sgsc-tiny")), 64, warmup=3, runs=20, backend="test-fake-clock"
    )
    assert (stats.runs, stats.threads, stats.device) == (20, 7, "fake-cpu")
    assert stats.mean_ms == pytest.approx(2.5) and stats.median_ms == pytest.approx(2.5)


def test_the_backend_decides_whether_the_thread_clock_applies(fake: FakeClockBackend) -> None:
    lat = {"device": "cpu", "threads": 1, "clock": "auto", "pause_trials": True}
    assert quiet_window("s", lat) is None  # torch on one CPU thread: the thread clock
    assert isinstance(quiet_window("s", {**lat, "backend": "test-fake-clock"}), QuietWindow)
    assert (
        LatencyMeter(backend="torch").thread_clock
        and not LatencyMeter(backend="test-fake-clock").thread_clock
    )
    with pytest.raises(ConfigError, match="thread clock does not cover"):
        measure_latency(
            nn.Conv2d(3, 3, 1), 16, runs=20, backend="test-fake-clock", thread_clock=True
        )


def test_an_unknown_backend_is_a_config_error() -> None:
    with pytest.raises(
        ConfigError, match="backend: unknown latency backend 'onnx' \\(choose from torch"
    ):
        LatencyMeter(backend="onnx")
    assert "torch" in LATENCY_BACKENDS.names()
