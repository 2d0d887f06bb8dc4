"""Latency backends: how a network is prepared, run once at batch 1, and timed (`LATENCY_BACKENDS`).

The measurement itself (warm-up, timed runs, statistics) is `space.profile.measure_latency`, the
same for every backend. A backend says three things:
  - `session(model, input_size, device, threads)`: a context in which the model is ready on the
    device and `Session.infer()` runs one batch-1 inference and returns when its output is ready;
  - `thread_clock_covers(device, threads)`: whether the calling thread's CPU time covers a whole
    inference (then a study may time it with the thread clock, immune to other processes' load);
  - `clock(thread_clock)`: the clock to read, in seconds.
Registered: "torch" (eager) and "onnxruntime" (the net exported to ONNX, run by ONNX Runtime).
Adding one is one class + one `@LATENCY_BACKENDS.register("name")` line + one test.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from space.errors import ConfigError
from space.registry import Registry

LATENCY_BACKENDS = Registry("latency backend")


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


@dataclass(frozen=True)
class Session:
    infer: Callable[[], None]  # one batch-1 inference; returns once its output is ready
    threads: int  # intra-op threads the inference runs with
    device: str


class LatencyBackend:
    def session(
        self, model: nn.Module, input_size: int, device: torch.device, threads: int | None
    ) -> AbstractContextManager[Session]:
        raise NotImplementedError

    def thread_clock_covers(self, device: str, threads: int) -> bool:
        return False

    def clock(self, thread_clock: bool) -> Callable[[], float]:
        return time.thread_time if thread_clock else time.perf_counter


@LATENCY_BACKENDS.register("torch")
class TorchEager(LatencyBackend):
    """PyTorch eager mode under torch.inference_mode, with a fixed number of intra-op threads.

    On CUDA each inference is synchronised so the time covers the kernels, not just their launch.
    """

    @contextmanager
    def session(
        self, model: nn.Module, input_size: int, device: torch.device, threads: int | None
    ) -> Iterator[Session]:
        model = model.to(device).eval()
        x = torch.randn(1, 3, input_size, input_size, device=device)
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

        def infer() -> None:
            model(x)
            sync()

        with torch_threads(threads) as n_threads, torch.inference_mode():
            sync()  # the copy to the device and the input are not part of the first run
            yield Session(infer=infer, threads=n_threads, device=str(device))

    def thread_clock_covers(self, device: str, threads: int) -> bool:
        # one torch thread on the CPU runs every kernel on the calling thread
        return device == "cpu" and threads == 1


@LATENCY_BACKENDS.register("onnxruntime")
class OnnxRuntime(LatencyBackend):
    """The net exported to ONNX (every head, the same work as torch eager; space.onnx_export) and run
        by an ONNX Runtime session with every graph optimisation on (ORT_ENABLE_ALL), `threads` intra-op
        threads (default: torch's count), one inter-op thread and sequential execution. CPU, or CUDA
        through CUDAExecutionProvider where onnxruntime-gpu provides it (else a ConfigError).
        Needs the `onnx` extra.

        The thread clock covers one intra-op thread on the CPU: ORT then runs every kernel on the calling
        thread and starts no other (measured: over 100 inferences the calling thread's CPU time is 1.000
    of the whole process's; tests/test_onnx.py checks it).
    """

    @contextmanager
    def session(
        self, model: nn.Module, input_size: int, device: torch.device, threads: int | None
    ) -> Iterator[Session]:
        from space.onnx_export import INPUT_NAME, export_onnx, ort_session

        if threads is not None and threads < 1:
            raise ConfigError(f"threads must be at least 1, got {threads}", field="threads")
        n_threads = threads or torch.get_num_threads()
        sess = ort_session(
            export_onnx(model.cpu(), input_size, heads="all"), n_threads, device.type
        )
        feed = {INPUT_NAME: torch.randn(1, 3, input_size, input_size).numpy()}

        def infer() -> None:
            sess.run(None, feed)  # returns the outputs as host arrays: the inference is done

        yield Session(infer=infer, threads=n_threads, device=str(device))

    def thread_clock_covers(self, device: str, threads: int) -> bool:
        return device == "cpu" and threads == 1


def latency_backend(name: str) -> LatencyBackend:
    """The registered backend `name`; an unknown name is the user's error."""
    if not isinstance(name, str) or name not in LATENCY_BACKENDS:
        raise ConfigError(
            f"unknown latency backend {name!r} (choose from {', '.join(LATENCY_BACKENDS.names())})",
            field="backend",
        )
    return LATENCY_BACKENDS.create(name)
