"""Adding a gate, a block and a fusion is one class + one registry entry each (docs/design.md).

The toy values are registered inside the test and removed afterwards, so the registry-wide tests
(tests/test_space_registry.py) never see them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import yaml

from space.errors import ConfigError
from space.layers import Fusion, Gate, GatedResidual, bn_relu_conv
from space.model import build_model
from space.registry import BLOCKS, FUSIONS, GATES
from space.spec import ArchSpec
from trainers.data import load_poses
from trainers.proxy import ProxyBudget, train_proxy

torch.set_num_threads(1)


class HalfGate(Gate):
    """alpha = 1/2, fixed."""

    def __init__(self, channels: int, init: float | None = None):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x


class PlainBlock(GatedResidual):
    """One BN-ReLU-3x3 conv and the gated skip."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        *,
        gate: str = "identity",
        gate_init: float | None = None,
        split: object = None,
    ):
        super().__init__(bn_relu_conv(in_ch, out_ch, 3), in_ch, out_ch, gate, gate_init)


class MaxFusion(Fusion):
    """Element-wise max of the skip and up-sampled paths."""

    def __init__(self, channels: int, make_block: object):
        super().__init__()

    def forward(self, skip: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        return torch.maximum(skip, up)


TOYS = [
    (GATES, "test-toy-half", HalfGate),
    (BLOCKS, "test-toy-plain", PlainBlock),
    (FUSIONS, "test-toy-max", MaxFusion),
]


@pytest.fixture
def toy_values() -> Iterator[None]:
    for registry, name, cls in TOYS:
        registry.register(name)(cls)
    try:
        yield
    finally:
        for registry, name, _ in TOYS:
            registry.unregister(name)


def test_registered_toy_values_build_round_trip_and_train(toy_values: None) -> None:
    spec = ArchSpec.from_dict(
        {
            "stacks": 1,
            "width": 16,
            "depth": 2,
            "joints": 14,
            "input_size": 32,
            "block": "test-toy-plain",
            "gate": "test-toy-half",
            "fusion": "test-toy-max",
        }
    )
    assert spec.branch_split is None and spec.gate_init is None  # the toy block takes no split
    assert ArchSpec.from_dict(yaml.safe_load(spec.to_yaml())) == spec
    model = build_model(spec)
    assert any(isinstance(m, PlainBlock) for m in model.modules())
    assert any(isinstance(m, HalfGate) for m in model.modules())
    assert any(isinstance(m, MaxFusion) for m in model.modules())
    with pytest.raises(ConfigError, match="must be null for test-toy-plain blocks"):
        spec.replace(branch_split=["1/2", "1/2"])

    train, val = load_poses("synthetic:16", "train", 32), load_poses("synthetic:8", "val", 32)
    result = train_proxy(spec, train, val, ProxyBudget(epochs=1, batch_size=8), threads=1)
    assert result.epochs == 1 and result.steps == 2 and 0.0 <= result.pck <= 1.0
    assert result.params == sum(p.numel() for p in model.parameters())


def test_an_unregistered_value_is_rejected_again() -> None:
    GATES.register("test-toy-gone")(HalfGate)
    try:
        assert ArchSpec.from_dict({"gate": "test-toy-gone"}).gate == "test-toy-gone"
    finally:
        GATES.unregister("test-toy-gone")
    with pytest.raises(ConfigError, match="gate: unknown value 'test-toy-gone'"):
        ArchSpec.from_dict({"gate": "test-toy-gone"})
    with pytest.raises(KeyError, match="unknown gate 'test-toy-gone'"):
        GATES.unregister("test-toy-gone")


def test_create_gate_passes_options_to_the_gate() -> None:
    from space.layers import create_gate

    assert create_gate("se", 64).fc[0].out_channels == 4  # reduction 16
    assert create_gate("se", 64, reduction=4).fc[0].out_channels == 16
    assert torch.all(create_gate("channel", 8, 0.25).alpha == 0.25)
