"""ONNX export of a network, its check, and an ONNX Runtime session to run it (the `onnx` extra).

The exporter is torch's TorchScript-based one (`torch.onnx.export(..., dynamo=False)`): it needs only
the `onnx` package, exports every registered gate, block, sampling, fusion and skip value with a
dynamic batch axis through `dynamic_axes`, and matches PyTorch to ~1e-6 of the outputs' scale
(`OutputDiff.scaled`). The newer torch.export-based exporter (`dynamo=True`, the default since
torch 2.9) also needs `onnxscript`, and its dynamic shapes go through torch.export's constraint
solver; the legacy one is the reliable choice for these fully convolutional nets (its deprecation
warning is silenced here).

Heads: `heads="last"` (the default, what a deployed net uses) exports the last stack's heatmaps as
one output `heatmaps`; `heads="all"` exports every stack's, `heatmaps_0` ... `heatmaps_{S-1}` (one
when the spec has no intermediate supervision).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

from space.errors import ConfigError

MIN_OPSET, MAX_OPSET, DEFAULT_OPSET = 13, 20, 17  # 20: the TorchScript exporter's last opset
HEADS = ("last", "all")
INPUT_NAME = "image"
EXTRA_HINT = "pip install 'softgate-nas[onnx]' (onnx, onnxruntime)"


def require(module: str) -> ModuleType:
    """`onnx` or `onnxruntime`, or a one-line ConfigError naming the extra to install."""
    try:
        return __import__(module)
    except ImportError:
        raise ConfigError(f"{module} is not installed: {EXTRA_HINT}", field=module) from None


class _Heads(nn.Module):
    """The network with the chosen heads as a tuple of outputs (what the exporter traces)."""

    def __init__(self, model: nn.Module, heads: str):
        super().__init__()
        self.model, self.heads = model, heads

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outs = self.model(x)
        return tuple(outs) if self.heads == "all" else (outs[-1],)


def output_names(n_outputs: int, heads: str) -> list[str]:
    return ["heatmaps"] if heads == "last" else [f"heatmaps_{i}" for i in range(n_outputs)]


def export_onnx(
    model: nn.Module, input_size: int, opset: int = DEFAULT_OPSET, heads: str = "last"
) -> bytes:
    """The serialized ONNX model of `model` (in eval mode) at `input_size` px, with a dynamic batch axis."""
    require("onnx")
    if heads not in HEADS:
        raise ConfigError(f"heads must be one of {', '.join(HEADS)}, got {heads!r}", field="heads")
    if not isinstance(opset, int) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise ConfigError(
            f"opset must be an integer in [{MIN_OPSET}, {MAX_OPSET}], got {opset!r}", field="opset"
        )
    wrapped = _Heads(model.eval(), heads).eval()
    x = torch.zeros(1, 3, input_size, input_size)
    with torch.no_grad():
        names = output_names(len(wrapped(x)), heads)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # the TorchScript exporter's deprecation notice; see the module doc
        torch.onnx.export(
            wrapped,
            (x,),
            buf,
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=names,
            dynamic_axes={n: {0: "batch"} for n in [INPUT_NAME, *names]},
        )
    return buf.getvalue()


def check_onnx(model_bytes: bytes) -> None:
    """onnx.checker's full check (with shape inference); raises onnx's ValidationError on a bad graph."""
    onnx = require("onnx")
    onnx.checker.check_model(onnx.load_from_string(model_bytes), full_check=True)


def ort_providers(device: str) -> list[str]:
    """ONNX Runtime's execution providers for 'cpu' or 'cuda' (ConfigError when CUDA's is missing)."""
    ort = require("onnxruntime")
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ConfigError(
                "onnxruntime has no CUDAExecutionProvider here (install onnxruntime-gpu)",
                field="device",
            )
        return ["CUDAExecutionProvider"]
    raise ConfigError(f"onnxruntime runs on cpu or cuda, not {device!r}", field="device")


def ort_session(model_bytes: bytes, threads: int, device: str = "cpu") -> Any:
    """An InferenceSession with every graph optimisation on, `threads` intra-op threads, one inter-op
    thread and sequential execution (the settings the latency backend measures with)."""
    ort = require("onnxruntime")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.log_severity_level = 3  # errors only
    return ort.InferenceSession(model_bytes, sess_options=opts, providers=ort_providers(device))


@dataclass(frozen=True)
class OutputDiff:
    """One output at one batch size: the largest |ONNX Runtime - PyTorch| and the largest
    |PyTorch| (the output's scale)."""

    batch: int
    output: str
    max_abs_diff: float
    scale: float

    @property
    def scaled(self) -> float:
        """max_abs_diff / max(1, scale): the absolute difference for outputs within [-1, 1] (trained
        heatmaps), relative to the output's size above that. float32 rounding grows with the
        values summed, so an absolute limit would fail a correct export of a net whose outputs are
        large (untrained weights in eval mode: BatchNorm's initial running statistics normalise
        nothing, and bulat-sgsc-proxy's heatmaps reach thousands)."""
        return self.max_abs_diff / max(1.0, self.scale)


def compare_outputs(
    model: nn.Module,
    session: Any,
    input_size: int,
    heads: str = "last",
    batches: tuple[int, ...] = (1, 3),
    seed: int = 0,
) -> list[OutputDiff]:
    """ONNX Runtime's outputs against PyTorch's on the same seeded random inputs, per batch size
    and output (`OutputDiff`)."""
    wrapped = _Heads(model.eval(), heads).eval()
    gen = torch.Generator().manual_seed(seed)
    diffs = []
    for batch in batches:
        x = torch.randn(batch, 3, input_size, input_size, generator=gen)
        with torch.no_grad():
            expected = [t.numpy() for t in wrapped(x)]
        got = session.run(None, {INPUT_NAME: x.numpy()})
        if [g.shape for g in got] != [e.shape for e in expected]:
            raise RuntimeError(
                f"ONNX output shapes {[g.shape for g in got]} differ from PyTorch's "
                f"{[e.shape for e in expected]} at batch {batch}"
            )
        names = output_names(len(expected), heads)
        diffs += [
            OutputDiff(batch, name, float(np.abs(g - e).max()), float(np.abs(e).max()))
            for name, g, e in zip(names, got, expected)
        ]
    return diffs


def compare_with_torch(
    model: nn.Module,
    session: Any,
    input_size: int,
    heads: str = "last",
    batches: tuple[int, ...] = (1, 3),
    seed: int = 0,
) -> dict[int, float]:
    """Max abs difference between ONNX Runtime's and PyTorch's outputs, per batch size, on the same
    seeded random inputs (`compare_outputs` has each output's and its scale)."""
    diffs = compare_outputs(model, session, input_size, heads, batches, seed)
    return {b: max(d.max_abs_diff for d in diffs if d.batch == b) for b in batches}
