"""Size guard: refuse an architecture too large for the machine before anything is allocated.

`check_memory(spec, ...)` builds the network on `torch.device("meta")` (shapes only, no memory),
counts its parameter bytes, and runs one meta forward at the real batch size under a dispatch mode
that tracks the bytes of live activations (each op's fresh output, freed when Python drops it; in
training autograd keeps what it saves). Estimate:
  inference: parameters + peak live activations;
  training:  4 x parameters (weights, gradients, Adam's two moments) + activations kept for backward.
Above the limit it raises a one-line ConfigError. The limit is SOFTGATE_MAX_MEMORY_GB when set,
otherwise the device's memory (the GPU's on CUDA, the machine's RAM on CPU).
"""

from __future__ import annotations

import math
import os
import weakref
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from space.errors import ConfigError
from space.model import build_model
from space.spec import ArchSpec

LIMIT_ENV = "SOFTGATE_MAX_MEMORY_GB"
TRAINING_PARAM_COPIES = 4  # weights, gradients, Adam exp_avg and exp_avg_sq
GB = 1e9


@dataclass(frozen=True)
class MemoryEstimate:
    params: int  # parameter count
    param_bytes: int  # parameters and buffers, once
    activation_bytes: int  # peak live activations (inference) or those kept for backward (training)
    total_bytes: int  # what the check compares with the limit
    limit_bytes: int


class _LiveBytes(TorchDispatchMode):
    """Peak bytes of the tensors that ops allocate and that are still referenced (meta tensors welcome)."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        out = func(*args, **(kwargs or {}))
        if any(r.alias_info is not None for r in func._schema.returns):
            return out  # a view or an in-place op allocates nothing
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                nbytes = t.numel() * t.element_size()
                self.live += nbytes
                self.peak = max(self.peak, self.live)
                weakref.finalize(t, self._free, nbytes)
        return out

    def _free(self, nbytes: int) -> None:
        self.live -= nbytes


def _activation_bytes(
    model: torch.nn.Module, input_size: int, batch_size: int, training: bool
) -> int:
    model.train(training)
    x = torch.zeros(batch_size, 3, input_size, input_size, device="meta")
    with torch.set_grad_enabled(training), _LiveBytes() as live:
        outputs = model(x)
        del x, outputs
    return live.peak


def memory_limit(device: str | torch.device = "cpu") -> tuple[int, str]:
    """(limit in bytes, where it comes from): SOFTGATE_MAX_MEMORY_GB, else the device's total memory."""
    text = os.environ.get(LIMIT_ENV)
    if text:
        try:
            gb = float(text)
        except ValueError:
            gb = 0.0
        if not 0 < gb < math.inf:
            raise ConfigError(f"expected a positive number of GB, got {text!r}", source=LIMIT_ENV)
        return int(gb * GB), LIMIT_ENV
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_properties(dev).total_memory, f"the memory of {dev}"
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "the machine's RAM"


def _size(nbytes: int) -> str:
    return f"{nbytes / GB:.1f} GB" if nbytes >= GB / 10 else f"{nbytes / 1e6:.1f} MB"


def check_memory(
    spec: ArchSpec,
    input_size: int | None = None,
    batch_size: int = 1,
    training: bool = False,
    limit_bytes: int | None = None,
    device: str | torch.device = "cpu",
) -> MemoryEstimate:
    """Estimate the memory of `spec` at (batch_size, 3, input_size, input_size); ConfigError above the limit.

    `limit_bytes` None: memory_limit(device). Takes about a second even for the largest specs.
    """
    size = input_size or spec.input_size
    limit, why = (
        (limit_bytes, "the limit given") if limit_bytes is not None else memory_limit(device)
    )
    with torch.device("meta"):
        model = build_model(spec, input_size=size)
    params = sum(p.numel() for p in model.parameters())
    param_bytes = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    copies = TRAINING_PARAM_COPIES if training else 1
    # parameters alone over the limit: no need for the forward
    activations = (
        0 if copies * param_bytes > limit else _activation_bytes(model, size, batch_size, training)
    )
    total = copies * param_bytes + activations
    if total > limit:
        what = "training" if training else "inference"
        raise ConfigError(
            f"{what} at batch {batch_size}, {size} px needs about {_size(total)} "
            f"({params / 1e6:,.1f} M parameters), over the {_size(limit)} limit ({why}; "
            f"set {LIMIT_ENV} to change it)",
            field="arch",
        )
    return MemoryEstimate(
        params=params,
        param_bytes=param_bytes,
        activation_bytes=activations,
        total_bytes=total,
        limit_bytes=limit,
    )
