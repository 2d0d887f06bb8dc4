"""What an architecture costs before it is trained: params and FLOPs counted on its model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from space.spec import ArchSpec

# computed from the model itself; other cost measures are predicted
EXACT_COSTS = ("params", "flops")
FLOPS_INPUT = 64  # FLOPs are counted at this size and scaled to the arch's input

# by arch id: a worker's later studies ask for the same archs
_COSTS: dict[str, dict[str, float]] = {}


def model_costs(arch: Mapping[str, Any]) -> dict[str, float]:
    """Params and FLOPs (at the arch's input size) of an architecture, without training it."""
    arch_id = ArchSpec.from_dict(arch).arch_id
    if arch_id not in _COSTS:
        _COSTS[arch_id] = _count_costs(arch)
    return _COSTS[arch_id]


def within_limits(arch: Mapping[str, Any], limits: Mapping[str, float]) -> bool:
    """Whether the arch keeps every limit (of exact costs: nothing else is known untrained)."""
    return not limits or all(model_costs(arch)[k] <= v for k, v in limits.items())


def _count_costs(arch: Mapping[str, Any]) -> dict[str, float]:
    import torch

    from space.model import build_model
    from space.profile import count_flops, count_params
    from space.spec import size_multiple

    spec = ArchSpec.from_dict(arch)
    size = max(FLOPS_INPUT, size_multiple(spec.depth))
    with torch.device("cpu"):
        model = build_model(spec, input_size=size)
    return {
        "params": count_params(model),
        "flops": count_flops(model, size) * (spec.input_size / size) ** 2,
    }
