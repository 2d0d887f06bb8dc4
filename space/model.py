"""build_model(spec): the stacked (soft-gated) hourglass described by an ArchSpec."""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn

from space.errors import ConfigError
from space.layers import BlockFactory, bn_relu_conv
from space.registry import BLOCKS, DOWNSAMPLE, FUSIONS, SKIPS, UPSAMPLE
from space.spec import ArchSpec, size_multiple


class Hourglass(nn.Module):
    """One level: fuse(skip(x), up(block(inner(block(down(x)))))); inner is the next level or a block."""

    def __init__(self, spec: ArchSpec, depth: int, make_block: BlockFactory):
        super().__init__()
        c = spec.width
        self.skip = SKIPS.create(spec.skip, c, make_block)
        self.down = DOWNSAMPLE.create(spec.down, c)
        self.pre = make_block(c, c)
        self.inner = Hourglass(spec, depth - 1, make_block) if depth > 1 else make_block(c, c)
        self.post = make_block(c, c)
        self.up = UPSAMPLE.create(spec.up, c)
        self.fuse = FUSIONS.create(spec.fusion, c, make_block)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.up(self.post(self.inner(self.pre(self.down(x)))))
        return self.fuse(self.skip(x), low)


def stem_widths(spec: ArchSpec) -> tuple[int, int]:
    """Newell's stem widths for width 256 (64, 128), scaled with the width.

    The middle width is rounded up to a multiple of the split's denominators so multibranch
    blocks split it exactly (width 144: 36, 72; width 100 with 1/4 parts: 25, 52).
    """
    step = math.lcm(*(f.denominator for f in spec.branch_split)) if spec.branch_split else 1
    half = spec.width // 2
    return max(spec.width // 4, 4), max(step, math.ceil(half / step) * step)


class StackedHourglass(nn.Module):
    """Newell's stem (7x7/2 conv C/4, block to C/2, down, block, block to C: 1/4 resolution),
    then `stacks` hourglasses.

    Between stacks the usual remap: x + conv1x1(features) + conv1x1(heatmaps). With
    intermediate_supervision false only the last stack has a head and forward returns a
    one-element list; otherwise one heatmap tensor per stack.
    """

    def __init__(self, spec: ArchSpec):
        super().__init__()
        self.spec = spec
        c, j = spec.width, spec.joints
        make_block: BlockFactory = partial(_block, spec)
        c0, c1 = stem_widths(spec)
        self.stem = nn.Sequential(
            nn.Conv2d(3, c0, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(c0),
            nn.ReLU(inplace=True),
            make_block(c0, c1),
            DOWNSAMPLE.create(spec.down, c1),
            make_block(c1, c1),
            make_block(c1, c),
        )
        self.hourglasses = nn.ModuleList(
            Hourglass(spec, spec.depth, make_block) for _ in range(spec.stacks)
        )
        self.features = nn.ModuleList(
            nn.Sequential(
                make_block(c, c), bn_relu_conv(c, c, 1), nn.BatchNorm2d(c), nn.ReLU(inplace=True)
            )
            for _ in range(spec.stacks)
        )
        with_head = [
            spec.intermediate_supervision or s == spec.stacks - 1 for s in range(spec.stacks)
        ]
        self.heads = nn.ModuleList(nn.Conv2d(c, j, 1) if h else nn.Identity() for h in with_head)
        self.remap_features = nn.ModuleList(nn.Conv2d(c, c, 1) for _ in range(spec.stacks - 1))
        self.remap_heatmaps = nn.ModuleList(
            nn.Conv2d(j, c, 1) if with_head[s] else None for s in range(spec.stacks - 1)
        )
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Conv1d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for head in self.heads:
            if isinstance(head, nn.Conv2d):  # small heatmap outputs at the start of training
                nn.init.normal_(head.weight, std=0.001)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outputs = []
        last = self.spec.stacks - 1
        for s in range(self.spec.stacks):
            feat = self.features[s](self.hourglasses[s](x))
            heat = (
                self.heads[s](feat) if (self.spec.intermediate_supervision or s == last) else None
            )
            if heat is not None:
                outputs.append(heat)
            if s < last:
                x = x + self.remap_features[s](feat)
                if heat is not None:
                    x = x + self.remap_heatmaps[s](heat)
        return outputs


def _block(spec: ArchSpec, in_ch: int, out_ch: int) -> nn.Module:
    return BLOCKS.create(
        spec.block, in_ch, out_ch, gate=spec.gate, gate_init=spec.gate_init, split=spec.branch_split
    )


def validate_input_size(spec: ArchSpec, input_size: int) -> None:
    """ConfigError unless the network for `spec` can take `input_size` px inputs."""
    step = size_multiple(spec.depth)
    if input_size <= 0 or input_size % step:
        raise ConfigError(
            f"{input_size} is not a positive multiple of 4 * 2**depth = {step}", field="input_size"
        )


def build_model(spec: ArchSpec, input_size: int | None = None) -> StackedHourglass:
    """The network for `spec`; `input_size` (default spec.input_size) is only checked, the net is fully conv."""
    if input_size is not None:
        validate_input_size(spec, input_size)
    return StackedHourglass(spec)
