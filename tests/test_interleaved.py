"""Interleaved latency (space/interleaved.py): rotation, ratios that cancel drift, intervals."""

from __future__ import annotations

import numpy as np
import pytest

from space.errors import ConfigError
from space.interleaved import measure_interleaved, run_rounds, summarise
from space.model import build_model
from space.spec import ArchSpec, load_arch


class FakeClock:
    """A clock that each call to an infer advances by that network's cost times the drift."""

    def __init__(self) -> None:
        self.now = 0.0
        self.drift = 1.0

    def __call__(self) -> float:
        return self.now

    def infer(self, cost_s: float):
        def run() -> None:
            self.now += cost_s * self.drift

        return run


def test_rounds_rotate_the_order_so_no_network_always_follows_the_same_one() -> None:
    order: list[str] = []
    infer = {k: (lambda k=k: order.append(k)) for k in "abc"}
    run_rounds(infer, lambda: 0.0, 3)
    assert order == list("abcbcacab")


def test_the_ratio_to_the_reference_cancels_drift_that_the_milliseconds_keep() -> None:
    clock = FakeClock()
    infer = {"ref": clock.infer(0.010), "big": clock.infer(0.025)}
    times: dict[str, list[float]] = {"ref": [], "big": []}
    for r in range(40):  # the machine slows down by up to 40 % over the pass
        clock.drift = 1.0 + 0.4 * (r % 7) / 6
        for k, v in run_rounds(infer, clock, 1, start=r).items():
            times[k].extend(v)
    stats = summarise(times, "ref")
    assert stats["big"].ratio == pytest.approx(2.5)
    assert stats["big"].ratio_low == pytest.approx(2.5) and stats[
        "big"
    ].ratio_high == pytest.approx(2.5)
    assert stats["big"].high_ms - stats["big"].low_ms > 1.0  # the absolute times spread
    assert stats["ref"].ratio == 1.0 and stats["ref"].reference == "ref"


def test_the_bootstrap_interval_holds_the_median_and_narrows_with_rounds() -> None:
    rng = np.random.default_rng(0)
    few = {"a": list(10 + rng.normal(0, 1, 20)), "b": list(20 + rng.normal(0, 1, 20))}
    many = {"a": list(10 + rng.normal(0, 1, 400)), "b": list(20 + rng.normal(0, 1, 400))}
    s_few, s_many = summarise(few, "a")["b"], summarise(many, "a")["b"]
    assert s_few.low_ms <= s_few.median_ms <= s_few.high_ms
    assert s_many.ratio_halfwidth < s_few.ratio_halfwidth


def test_real_networks_are_timed_with_the_reference_first_and_larger_networks_slower() -> None:
    tiny = ArchSpec.from_dict(load_arch("bulat-sgsc-tiny").to_dict())
    wider = ArchSpec.from_dict(tiny.to_dict() | {"width": 64})
    models = {"tiny": build_model(tiny), "wider": build_model(wider)}
    stats = measure_interleaved(
        models, 64, threads=1, thread_clock=True, target=0.5, max_seconds=5, min_rounds=20, warmup=2
    )
    assert set(stats) == {"tiny", "wider"} and stats["tiny"].ratio == 1.0
    assert stats["wider"].ratio > 1.0 and stats["wider"].rounds >= 20


def test_no_network_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        measure_interleaved({}, 64)
