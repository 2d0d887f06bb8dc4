"""The latency meter's quiet window (search.quiet): steps share it, the meter holds it alone."""

from __future__ import annotations

import multiprocessing as mp
import pickle
import threading
import time
from contextlib import contextmanager

import pytest
from helpers import TINY

from search.latency import LatencyMeter, quiet_window
from search.quiet import QuietWindow
from space.spec import ArchSpec
from trainers.data import load_poses
from trainers.proxy import ProxyBudget, train_proxy


def in_thread(fn) -> threading.Thread:
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    return t


def test_the_meter_waits_for_a_step_in_flight(tmp_path):
    trial, meter = QuietWindow("s", tmp_path), QuietWindow("s", tmp_path)
    inside, release, measured = threading.Event(), threading.Event(), threading.Event()

    def step():
        with trial.step():
            inside.set()
            release.wait(5)

    def measure():
        with meter.exclusive():
            measured.set()

    in_thread(step)
    assert inside.wait(5)
    in_thread(measure)
    assert not measured.wait(0.3)  # the step is still running
    release.set()
    assert measured.wait(5)


def test_steps_wait_while_the_meter_measures_and_run_together_otherwise(tmp_path):
    meter = QuietWindow("s", tmp_path)
    trials = [QuietWindow("s", tmp_path) for _ in range(2)]
    started = [threading.Event() for _ in trials]
    with meter.exclusive():
        for w, ev in zip(trials, started):
            in_thread(lambda w=w, ev=ev: (w.step().__enter__(), ev.set()))
        assert not any(ev.wait(0.3) for ev in started)
    assert all(ev.wait(5) for ev in started)  # both hold a step at once once the meter is done


def test_overlapping_steps_do_not_starve_the_meter(tmp_path):
    stop = threading.Event()

    def busy():
        w = QuietWindow("s", tmp_path)
        while not stop.is_set():
            with w.step():
                time.sleep(0.005)

    for _ in range(4):
        in_thread(busy)
    time.sleep(0.1)
    meter = QuietWindow("s", tmp_path)
    waits = []
    for _ in range(5):
        t0 = time.perf_counter()
        with meter.exclusive():
            waits.append(time.perf_counter() - t0)
    stop.set()
    assert max(waits) < 1.0, waits


def _hold_step(folder: str, held: mp.Event, seconds: float) -> None:
    with QuietWindow("s", folder).step():
        held.set()
        time.sleep(seconds)


def test_the_window_spans_processes_and_a_dead_process_frees_it(tmp_path):
    ctx = mp.get_context("fork")
    held = ctx.Event()
    child = ctx.Process(target=_hold_step, args=(str(tmp_path), held, 0.6))
    child.start()
    assert held.wait(10)
    t0 = time.perf_counter()
    with QuietWindow("s", tmp_path).exclusive():
        waited = time.perf_counter() - t0
    assert waited > 0.3
    child.join(5)

    held = ctx.Event()
    child = ctx.Process(target=_hold_step, args=(str(tmp_path), held, 60))
    child.start()
    assert held.wait(10)
    child.kill()  # killed inside its step: the kernel drops its lock
    child.join(5)
    t0 = time.perf_counter()
    with QuietWindow("s", tmp_path).exclusive():
        assert time.perf_counter() - t0 < 5


def test_a_pickled_window_opens_its_own_files(tmp_path):
    w = QuietWindow("a/b c", tmp_path)
    with w.step():
        copy = pickle.loads(pickle.dumps(w))
    assert copy._fds is None and copy.work_path == w.work_path
    assert w.work_path.parent == tmp_path and "/" not in w.work_path.name[len("softgate-quiet-") :]


def test_train_proxy_enters_the_guard_for_each_step_and_evaluation():
    spec = ArchSpec.from_dict(TINY)
    train, val = load_poses("synthetic:24", "train", 32), load_poses("synthetic:8", "val", 32)
    entered = []

    @contextmanager
    def guard():
        entered.append(1)
        yield

    r = train_proxy(
        spec, train, val, ProxyBudget(epochs=2, batch_size=8), threads=1, step_guard=guard
    )
    # per epoch: 3 steps, the look for a 4th batch that ends the epoch, and the evaluation
    assert len(entered) == r.steps + 2 * r.epochs == 3 * 2 + 2 * 2


LAT = {"device": "cpu", "threads": 1, "clock": "auto", "pause_trials": True}


def test_only_wall_clock_latency_pauses_trials():
    assert quiet_window("s", LAT) is None  # the thread clock does not see other processes
    assert quiet_window("s", {**LAT, "clock": "wall", "pause_trials": False}) is None
    assert isinstance(quiet_window("s", {**LAT, "clock": "wall"}), QuietWindow)
    assert isinstance(quiet_window("s", {**LAT, "device": "cuda"}), QuietWindow)
    assert LatencyMeter(clock="auto", quiet=QuietWindow("s")).quiet is None


@pytest.mark.parametrize("clock, waits", [("wall", True), ("auto", False)])
def test_a_wall_clock_measurement_waits_for_training_steps(tmp_path, clock, waits):
    arch = ArchSpec.from_dict(TINY).to_dict()
    meter = LatencyMeter(
        warmup=1, runs=20, min_seconds=0, clock=clock, quiet=QuietWindow("s", tmp_path)
    )
    inside, release = threading.Event(), threading.Event()

    def step():
        with QuietWindow("s", tmp_path).step():
            inside.set()
            release.wait(5)

    in_thread(step)
    assert inside.wait(5)
    done = threading.Event()
    in_thread(lambda: (meter.measure(arch), done.set()))
    if waits:
        assert not done.wait(0.5)
        release.set()
        assert done.wait(10)
    else:
        assert done.wait(10)
        release.set()
