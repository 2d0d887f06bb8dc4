"""Zero-cost proxies on tiny networks: hand-computed values and properties that a wrong proxy breaks."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from space.model import build_model
from space.spec import ArchSpec, load_arch
from trainers.data import load_poses
from trainers.zero_cost import image_batch, naswot, synflow, zero_cost_scores


def two_linear() -> nn.Sequential:
    net = nn.Sequential(nn.Linear(3, 2, bias=False), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [-1.0, 1.0, 3.0]]))
        net[1].weight.copy_(torch.tensor([[2.0, -0.5]]))
    return net


def test_synflow_by_hand() -> None:
    # |W1| row sums 3.5 and 5, |W2| = (2, 0.5): R = 2*3.5 + 0.5*5 = 9.5. For a linear chain every
    # layer's sum of |theta * dR/dtheta| equals R, so two layers give 19.
    assert synflow(two_linear(), torch.randn(4, 3)) == pytest.approx(19.0)


def test_synflow_ignores_data_and_weight_signs_and_leaves_the_model_alone() -> None:
    net = two_linear()
    before = [p.detach().clone() for p in net.parameters()]
    score = synflow(net, torch.randn(8, 3))
    assert synflow(net, torch.full((2, 3), -7.0)) == pytest.approx(score)
    flipped = two_linear()
    with torch.no_grad():
        for p in flipped.parameters():
            p.neg_()
    assert synflow(flipped, torch.randn(8, 3)) == pytest.approx(score)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_naswot_by_hand() -> None:
    # codes (x > 0): 101, 110, 000 over 3 units; pairwise Hamming 2 -> K = [[3,1,1],[1,3,1],[1,1,3]], det 20
    x = torch.tensor([[1.0, -1.0, 1.0], [1.0, 1.0, -1.0], [-1.0, -1.0, -1.0]])
    assert naswot(nn.Sequential(nn.ReLU()), x) == pytest.approx(math.log(20.0))


@pytest.fixture(scope="module")
def tiny() -> ArchSpec:
    spec = load_arch("bulat-sgsc-tiny")
    return ArchSpec.from_dict({**spec.to_dict(), "input_size": 32, "width": 16, "depth": 2})


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    return image_batch(load_poses("synthetic:32", "train", 32), 8, seed=0)


def test_naswot_grows_as_inputs_become_distinct(tiny: ArchSpec) -> None:
    torch.manual_seed(0)
    model = build_model(tiny)
    base = torch.rand(1, 3, 32, 32).expand(8, -1, -1, -1)
    noise = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    same = naswot(model, base.clone())
    close = naswot(model, base + 0.01 * noise)
    apart = naswot(model, base + 0.5 * noise)
    assert same == -math.inf  # identical inputs: one code, K has rank 1
    assert math.isfinite(close) and apart > close


def test_scores_on_real_batch_are_deterministic_per_seed(
    tiny: ArchSpec, batch: torch.Tensor
) -> None:
    a = zero_cost_scores(tiny, batch, seed=0)
    assert a == zero_cost_scores(tiny, batch, seed=0)
    b = zero_cost_scores(tiny, batch, seed=1)
    assert a["params"] == b["params"] > 0
    assert a["synflow"] != b["synflow"] and a["naswot"] != b["naswot"]
    assert all(math.isfinite(v) for v in a.values())


def test_wider_network_has_larger_synflow(tiny: ArchSpec, batch: torch.Tensor) -> None:
    # more paths from input to output: synflow grows with width (by far, not within init noise)
    wide = ArchSpec.from_dict({**tiny.to_dict(), "width": 32})
    assert zero_cost_scores(wide, batch)["synflow"] > 10 * zero_cost_scores(tiny, batch)["synflow"]
