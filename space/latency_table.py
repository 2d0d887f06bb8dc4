"""A latency model for screening: a lookup table of operator latencies, summed over a network.

In the spirit of nn-Meter (Zhang et al., MobiSys 2021): a network's batch-1 latency on one device is
close to the sum of its kernels' latencies, and the same kernels (a 3x3 conv of 32 channels at 64 x 64,
a concatenation of two such maps, ...) recur across a search space. The table is measured once per
device and thread count and then predicts any architecture in milliseconds without timing it, which
is what lets a search screen thousands of candidates.

A kernel here is one top-level torch operator call with its argument shapes, as a forward pass makes
it (seen through a `TorchFunctionMode`: conv2d, batch_norm, relu, cat, add, interpolate, ...). Eager
PyTorch also spends time between operators (module calls, Python); `overhead_ms` per operator call is
fitted on a few whole networks timed interleaved (`calibrate`). The table covers the "torch" latency
backend; ONNX Runtime fuses operators (conv + batch norm + ReLU become one node), so its latency is
predicted from the torch table by the same linear calibration, fitted on networks timed in ONNX Runtime.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from space.latency_backends import torch_threads

SKIP = {"dim", "size", "__get__", "numel"}  # shape queries: no kernel runs


@dataclass
class OpCall:
    key: str
    run: Callable[[], Any]


class _Recorder(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[OpCall] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        if name not in SKIP:
            key = json.dumps([name, _signature(args), _signature(kwargs)])
            self.calls.append(OpCall(key, lambda: func(*args, **kwargs)))
        return func(*args, **kwargs)


def _signature(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return ["T", list(value.shape), str(value.dtype)]
    if isinstance(value, dict):
        return {k: _signature(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_signature(v) for v in value]
    return repr(value)


def trace_ops(model: torch.nn.Module, input_size: int) -> list[OpCall]:
    """The operator calls of one batch-1 forward pass of `model` (eval mode, inference mode)."""
    model.eval()
    recorder = _Recorder()
    with torch.inference_mode(), recorder:
        model(torch.randn(1, 3, input_size, input_size))
    return recorder.calls


def _time_op(run: Callable[[], Any], clock: Callable[[], float], repeats: int) -> float:
    """Median of 5 timings of `repeats` back-to-back calls, per call, in ms."""
    run()
    timings = []
    for _ in range(5):
        t0 = clock()
        for _ in range(repeats):
            run()
        timings.append((clock() - t0) * 1e3 / repeats)
    return statistics.median(timings)


@dataclass
class LatencyTable:
    """Operator key -> ms on one device with a fixed thread count; `overhead_ms` per call and `scale`
    (fitted by `calibrate`) turn the sum into a network's latency."""

    device: str = "cpu"
    threads: int = 1
    ops: dict[str, float] = field(default_factory=dict)
    overhead_ms: float = 0.0
    scale: float = 1.0

    def add(self, calls: Sequence[OpCall], thread_clock: bool = True, repeats: int = 10) -> int:
        """Time the calls whose key the table lacks; returns how many were new."""
        clock = time.thread_time if thread_clock and self.threads == 1 else time.perf_counter
        new = {c.key: c for c in calls if c.key not in self.ops}
        with torch_threads(self.threads), torch.inference_mode():
            for key, call in new.items():
                self.ops[key] = _time_op(call.run, clock, repeats)
        return len(new)

    def kernel_sum(self, calls: Sequence[OpCall]) -> tuple[float, int]:
        """(sum of the table's ms over the calls, number of calls); every key must be in the table."""
        return sum(self.ops[c.key] for c in calls), len(calls)

    def predict(self, calls: Sequence[OpCall]) -> float:
        total, n = self.kernel_sum(calls)
        return self.scale * total + self.overhead_ms * n

    def calibrate(self, sums: Sequence[tuple[float, int]], measured_ms: Sequence[float]) -> None:
        """Least squares of measured ~ scale * kernel sum + overhead * calls (both kept >= 0)."""
        import numpy as np

        x = np.array([[s, n] for s, n in sums], dtype=float)
        coef, *_ = np.linalg.lstsq(x, np.asarray(measured_ms, dtype=float), rcond=None)
        self.scale, self.overhead_ms = max(float(coef[0]), 0.0), max(float(coef[1]), 0.0)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.__dict__, indent=0))

    @classmethod
    def load(cls, path: str | Path) -> LatencyTable:
        return cls(**json.loads(Path(path).read_text()))
