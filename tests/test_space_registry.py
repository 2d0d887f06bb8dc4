"""Every registered value of every axis builds a tiny network that runs forward and backward."""

from __future__ import annotations

import pytest
import torch

from space.model import build_model
from space.registry import BLOCKS, DOWNSAMPLE, FUSIONS, GATES, SKIPS, UPSAMPLE
from space.spec import ArchSpec

torch.set_num_threads(1)

TINY = dict(stacks=1, width=16, depth=2, joints=3, input_size=32)
AXES = {
    "gate": GATES,
    "block": BLOCKS,
    "down": DOWNSAMPLE,
    "up": UPSAMPLE,
    "fusion": FUSIONS,
    "skip": SKIPS,
}
REQUIRED = {
    "gate": {"identity", "none", "scalar", "channel", "se", "eca"},
    "block": {"bottleneck", "multibranch"},
    "down": {"maxpool", "avgpool", "conv_stride2"},
    "up": {"nearest", "bilinear", "deconv", "pixel_shuffle"},
    "fusion": {"add", "concat_conv1x1", "concat_conv3x3", "concat_block", "gated_add"},
    "skip": {"block", "identity"},
}


def test_registries_hold_every_required_value() -> None:
    for axis, names in REQUIRED.items():
        assert names <= set(AXES[axis].names()), axis


def _forward_backward(spec: ArchSpec) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(spec)
    x = torch.randn(2, 3, spec.input_size, spec.input_size)
    outs = model(x)
    assert len(outs) == spec.stacks
    for out in outs:
        assert out.shape == (2, spec.joints, spec.input_size // 4, spec.input_size // 4)
        assert torch.isfinite(out).all()
    sum(o.square().mean() for o in outs).backward()
    return model


CASES = [(axis, name) for axis, reg in AXES.items() for name in reg.names()]


@pytest.mark.parametrize("axis,name", CASES, ids=[f"{a}={n}" for a, n in CASES])
def test_every_registered_value_builds_and_trains(axis: str, name: str) -> None:
    base = ArchSpec(**TINY)
    spec = base.replace(**{axis: name})
    model = _forward_backward(spec)
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads), "some parameters get no gradient"
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("gate", ["scalar", "channel", "se", "eca"])
@pytest.mark.parametrize("block", ["bottleneck", "multibranch"])
def test_gradients_reach_gate_parameters(gate: str, block: str) -> None:
    spec = ArchSpec(**TINY).replace(gate=gate, block=block)
    model = _forward_backward(spec)
    gate_params = [(n, p) for n, p in model.named_parameters() if ".gate." in n]
    assert gate_params, "the gate has no parameters"
    for n, p in gate_params:
        assert p.grad is not None and p.grad.abs().sum() > 0, n


@pytest.mark.parametrize("gate", ["scalar", "channel"])
def test_gate_init_sets_alpha(gate: str) -> None:
    model = build_model(ArchSpec(**TINY).replace(gate=gate, gate_init=0.25))
    alphas = [p for n, p in model.named_parameters() if n.endswith("gate.alpha")]
    assert alphas and all(torch.all(a == 0.25) for a in alphas)


def test_none_gate_drops_the_skip() -> None:
    from space.layers import Bottleneck

    block = Bottleneck(8, 8, gate="none")
    for p in block.parameters():
        torch.nn.init.zeros_(p)  # branch outputs zero; a skip path would pass x through
    x = torch.randn(1, 8, 4, 4)
    assert torch.equal(block.eval()(x), torch.zeros_like(x))
    ident = Bottleneck(8, 8, gate="identity")
    for p in ident.parameters():
        torch.nn.init.zeros_(p)
    assert torch.equal(ident.eval()(x), x)


def test_without_intermediate_supervision_only_last_stack_is_returned() -> None:
    spec = ArchSpec(**{**TINY, "stacks": 2, "intermediate_supervision": False})
    outs = build_model(spec)(torch.randn(1, 3, 32, 32))
    assert len(outs) == 1 and outs[0].shape == (1, 3, 8, 8)
