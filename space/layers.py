"""The registered building blocks: gates, residual blocks, down/up-sampling, fusions, skip paths.

All blocks are pre-activation (BN-ReLU-conv), as in Newell's hourglass and Bulat's block.
A gate is a module mapping x -> alpha * x; the block output is branch(x) + gate(x)
(or branch(x) alone for the `none` gate).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import torch
from torch import nn

from space.registry import BLOCKS, DOWNSAMPLE, FUSIONS, GATES, SKIPS, UPSAMPLE

BlockFactory = Callable[[int, int], nn.Module]


def bn_relu_conv(in_ch: int, out_ch: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(
        nn.BatchNorm2d(in_ch),
        nn.ReLU(inplace=True),
        nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, bias=False),
    )


# ---------------------------------------------------------------- gates


class Gate(nn.Module):
    has_skip = True  # False: the block drops its skip path entirely
    takes_init = False  # True: gate_init sets the initial alpha


@GATES.register("identity")
class IdentityGate(Gate):
    """alpha = 1: the plain residual connection."""

    def __init__(self, channels: int, init: float | None = None):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


@GATES.register("none")
class NoGate(IdentityGate):
    """No skip path: the block is a plain conv stack."""

    has_skip = False


@GATES.register("scalar")
class ScalarGate(Gate):
    """One learnable alpha shared by all channels."""

    takes_init = True

    def __init__(self, channels: int, init: float | None = 1.0):
        super().__init__()
        self.alpha = nn.Parameter(torch.full((1,), 1.0 if init is None else float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.alpha * x


@GATES.register("channel")
class ChannelGate(Gate):
    """Bulat et al.: one learnable alpha per channel, shape (1, C, 1, 1)."""

    takes_init = True

    def __init__(self, channels: int, init: float | None = 1.0):
        super().__init__()
        self.alpha = nn.Parameter(
            torch.full((1, channels, 1, 1), 1.0 if init is None else float(init))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.alpha * x


@GATES.register("se")
class SEGate(Gate):
    """alpha = sigmoid(MLP(avgpool(x))), squeeze-excitation with reduction 16 (at least 4 hidden)."""

    def __init__(self, channels: int, init: float | None = None, reduction: int = 16):
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.fc = nn.Sequential(
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean((2, 3), keepdim=True)) * x


@GATES.register("eca")
class ECAGate(Gate):
    """ECA-Net: alpha = sigmoid(conv1d_k(avgpool(x))), k adaptive to C (gamma=2, b=1)."""

    def __init__(self, channels: int, init: float | None = None):
        super().__init__()
        t = int(abs(math.log2(channels) + 1) / 2)
        k = max(t if t % 2 else t + 1, 3)
        self.conv = nn.Conv1d(1, 1, k, padding=k // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean((2, 3)).unsqueeze(1)  # (N, 1, C): channels as a sequence
        alpha = torch.sigmoid(self.conv(y)).transpose(1, 2).unsqueeze(-1)  # (N, C, 1, 1)
        return alpha * x


def create_gate(name: str, channels: int, init: float | None = None, **kwargs: Any) -> Gate:
    """The gate `name` for `channels` channels; `kwargs` go to its class (e.g. SE's `reduction`), as in
    timm's `create_attn`."""
    return GATES.create(name, channels, init, **kwargs)


# ---------------------------------------------------------------- residual blocks


class GatedResidual(nn.Module):
    """y = branch(x) + gate(proj(x)); proj is a 1x1 conv only when channels change.

    A block class is built as cls(in_ch, out_ch, gate=..., gate_init=..., split=...); `takes_split`
    says whether it reads the spec's branch_split (the spec then requires one) or not (it must be null).
    """

    takes_split = False

    def __init__(
        self, branch: nn.Module, in_ch: int, out_ch: int, gate: str, gate_init: float | None
    ):
        super().__init__()
        self.branch = branch
        self.gate = create_gate(gate, out_ch, gate_init)
        self.has_skip = self.gate.has_skip
        self.proj = (
            nn.Conv2d(in_ch, out_ch, 1, bias=False)
            if in_ch != out_ch and self.has_skip
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.branch(x)
        return y + self.gate(self.proj(x)) if self.has_skip else y


@BLOCKS.register("bottleneck")
class Bottleneck(GatedResidual):
    """Newell's residual: BN-ReLU-1x1 (C/2), BN-ReLU-3x3 (C/2), BN-ReLU-1x1 (C)."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        *,
        gate: str = "identity",
        gate_init: float | None = None,
        split: Sequence[Fraction] | None = None,
    ):
        mid = out_ch // 2
        branch = nn.Sequential(
            bn_relu_conv(in_ch, mid, 1), bn_relu_conv(mid, mid, 3), bn_relu_conv(mid, out_ch, 1)
        )
        super().__init__(branch, in_ch, out_ch, gate, gate_init)


class _Chain(nn.Module):
    """Chain of 3x3 convs; conv k reads conv k-1's output; outputs concatenated."""

    def __init__(self, in_ch: int, widths: Sequence[int]):
        super().__init__()
        ins = [in_ch, *widths[:-1]]
        self.convs = nn.ModuleList(bn_relu_conv(i, o, 3) for i, o in zip(ins, widths))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for conv in self.convs:  # 2-4 branches, not a loop over channels
            x = conv(x)
            outs.append(x)
        return torch.cat(outs, 1)


def split_widths(channels: int, split: Sequence[Fraction]) -> list[int]:
    widths = [Fraction(channels) * f for f in split]
    if any(w.denominator != 1 for w in widths) or sum(widths) != channels:
        raise ValueError(f"width {channels} does not split into {[str(f) for f in split]}")
    return [int(w) for w in widths]


@BLOCKS.register("multibranch")
class MultiBranch(GatedResidual):
    """Bulat et al.'s hierarchical block: chain of 3x3 convs of widths C*split[k], concatenated to C."""

    takes_split = True

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        *,
        gate: str = "channel",
        gate_init: float | None = None,
        split: Sequence[Fraction] | None = None,
    ):
        split = split or (Fraction(1, 2), Fraction(1, 4), Fraction(1, 4))
        super().__init__(_Chain(in_ch, split_widths(out_ch, split)), in_ch, out_ch, gate, gate_init)


# ---------------------------------------------------------------- down / up-sampling (x2)


@DOWNSAMPLE.register("maxpool")
def maxpool(channels: int) -> nn.Module:
    return nn.MaxPool2d(2, 2)


@DOWNSAMPLE.register("avgpool")
def avgpool(channels: int) -> nn.Module:
    return nn.AvgPool2d(2, 2)


@DOWNSAMPLE.register("conv_stride2")
def conv_stride2(channels: int) -> nn.Module:
    return nn.Conv2d(channels, channels, 3, stride=2, padding=1, bias=False)


@UPSAMPLE.register("nearest")
def nearest(channels: int) -> nn.Module:
    return nn.Upsample(scale_factor=2, mode="nearest")


@UPSAMPLE.register("bilinear")
def bilinear(channels: int) -> nn.Module:
    return nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)


@UPSAMPLE.register("deconv")
def deconv(channels: int) -> nn.Module:
    # kernel 2 stride 2: no checkerboard overlap and 4*C^2 weights instead of 16*C^2 for kernel 4
    return nn.ConvTranspose2d(channels, channels, 2, stride=2, bias=False)


@UPSAMPLE.register("pixel_shuffle")
def pixel_shuffle(channels: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(channels, 4 * channels, 1, bias=False), nn.PixelShuffle(2))


# ---------------------------------------------------------------- fusion of skip and up-sampled paths


class Fusion(nn.Module):
    def forward(self, skip: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


@FUSIONS.register("add")
class AddFusion(Fusion):
    """Newell: skip + up."""

    def __init__(self, channels: int, make_block: BlockFactory):
        super().__init__()

    def forward(self, skip: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        return skip + up


class _ConcatThen(Fusion):
    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, skip: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        return self.layer(torch.cat([skip, up], 1))


@FUSIONS.register("concat_conv1x1")
class ConcatConv1x1(_ConcatThen):
    def __init__(self, channels: int, make_block: BlockFactory):
        super().__init__(bn_relu_conv(2 * channels, channels, 1))


@FUSIONS.register("concat_conv3x3")
class ConcatConv3x3(_ConcatThen):
    """Bulat et al.: concatenate, then one 3x3 conv back to C channels."""

    def __init__(self, channels: int, make_block: BlockFactory):
        super().__init__(bn_relu_conv(2 * channels, channels, 3))


@FUSIONS.register("concat_block")
class ConcatBlock(_ConcatThen):
    """Concatenate, then one residual block of the spec's type (2C -> C)."""

    def __init__(self, channels: int, make_block: BlockFactory):
        super().__init__(make_block(2 * channels, channels))


@FUSIONS.register("gated_add")
class GatedAdd(Fusion):
    """a * skip + b * up with learnable per-channel a, b (initialised to 1 = Newell's add)."""

    def __init__(self, channels: int, make_block: BlockFactory):
        super().__init__()
        self.a = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.b = nn.Parameter(torch.ones(1, channels, 1, 1))

    def forward(self, skip: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        return self.a * skip + self.b * up


# ---------------------------------------------------------------- the hourglass skip (high-resolution) path


@SKIPS.register("block")
def block_skip(channels: int, make_block: BlockFactory) -> nn.Module:
    """HourGlass: a residual block on the high-resolution path."""
    return make_block(channels, channels)


@SKIPS.register("identity")
def identity_skip(channels: int, make_block: BlockFactory) -> nn.Module:
    """U-Net: the features pass unchanged to the fusion."""
    return nn.Identity()
