"""Parameter counts checked against arithmetic written out by hand, not against the code's output.

Conventions (docs/space.md): every conv inside a block is bias-free and preceded by BatchNorm
(2 parameters per channel: weight and bias); heads and remaps are 1x1 convs with bias.
"""

from __future__ import annotations

from fractions import Fraction

import torch

from space.layers import Bottleneck, MultiBranch
from space.model import build_model
from space.profile import count_params
from space.spec import ArchSpec

torch.set_num_threads(1)
HALF_QUARTERS = (Fraction(1, 2), Fraction(1, 4), Fraction(1, 4))


def test_bottleneck_block_by_hand() -> None:
    # 8 -> 8: BN(8) 16 + 1x1 8->4 32 + BN(4) 8 + 3x3 4->4 144 + BN(4) 8 + 1x1 4->8 32
    assert count_params(Bottleneck(8, 8, gate="identity")) == 16 + 32 + 8 + 144 + 8 + 32  # 240
    # 4 -> 8 with a channel gate: BN(4) 8 + 1x1 4->4 16 + BN(4) 8 + 3x3 144 + BN(4) 8 + 1x1 4->8 32
    #   + skip projection 1x1 4->8 32 + alpha 8
    assert (
        count_params(Bottleneck(4, 8, gate="channel")) == 8 + 16 + 8 + 144 + 8 + 32 + 32 + 8
    )  # 256


def test_multibranch_block_by_hand() -> None:
    # 16 -> 16, widths 8, 4, 4: BN(16) 32 + 3x3 16->8 1152 + BN(8) 16 + 3x3 8->4 288 + BN(4) 8
    #   + 3x3 4->4 144 + alpha 16
    assert (
        count_params(MultiBranch(16, 16, gate="channel", split=HALF_QUARTERS))
        == 32 + 1152 + 16 + 288 + 8 + 144 + 16
    )  # 1656
    # 8 -> 16, split 1/4, 1/4, 1/2 (widths 4, 4, 8), identity gate: BN(8) 16 + 3x3 8->4 288 + BN(4) 8
    #   + 3x3 4->4 144 + BN(4) 8 + 3x3 4->8 288 + projection 1x1 8->16 128
    split = (Fraction(1, 4), Fraction(1, 4), Fraction(1, 2))
    assert (
        count_params(MultiBranch(8, 16, gate="identity", split=split))
        == 16 + 288 + 8 + 144 + 8 + 288 + 128
    )
    # scalar gate: one alpha per block
    assert count_params(MultiBranch(16, 16, gate="scalar", split=HALF_QUARTERS)) == 1656 - 16 + 1


def bn(c: int) -> int:
    return 2 * c


def conv(i: int, o: int, k: int) -> int:
    return i * o * k * k


def bottleneck(i: int, o: int) -> int:
    m = o // 2
    return (
        bn(i)
        + conv(i, m, 1)
        + bn(m)
        + conv(m, m, 3)
        + bn(m)
        + conv(m, o, 1)
        + (conv(i, o, 1) if i != o else 0)
    )


def test_newell_style_model_by_hand() -> None:
    spec = ArchSpec(
        stacks=2,
        width=16,
        depth=2,
        joints=3,
        input_size=32,
        block="bottleneck",
        branch_split=None,
        gate="identity",
        gate_init=None,
        down="maxpool",
        up="nearest",
        fusion="add",
        skip="block",
    )
    # stem: 7x7 3->4, BN(4), blocks 4->8, 8->8, 8->16 (Newell's 64, 128, 128, 256 scaled by 16/256)
    stem = conv(3, 4, 7) + bn(4) + bottleneck(4, 8) + bottleneck(8, 8) + bottleneck(8, 16)
    # hourglass of depth 2: each level has skip, pre and post blocks; the innermost level one more block
    hourglass = 7 * bottleneck(16, 16)
    features = bottleneck(16, 16) + bn(16) + conv(16, 16, 1) + bn(16)
    head = conv(16, 3, 1) + 3
    remap = conv(16, 16, 1) + 16 + conv(3, 16, 1) + 16
    expected = stem + 2 * (hourglass + features + head) + remap
    assert count_params(build_model(spec)) == expected


def test_bulat_style_model_by_hand() -> None:
    spec = ArchSpec(
        stacks=1,
        width=16,
        depth=2,
        joints=3,
        input_size=32,
        block="multibranch",
        branch_split=["1/2", "1/4", "1/4"],
        gate="channel",
        gate_init=1.0,
        down="maxpool",
        up="nearest",
        fusion="concat_conv3x3",
        skip="identity",
    )

    def mb(i: int, o: int) -> int:
        w = [o // 2, o // 4, o // 4]
        return (
            bn(i)
            + conv(i, w[0], 3)
            + bn(w[0])
            + conv(w[0], w[1], 3)
            + bn(w[1])
            + conv(w[1], w[2], 3)
            + o
            + (conv(i, o, 1) if i != o else 0)
        )

    stem = conv(3, 4, 7) + bn(4) + mb(4, 8) + mb(8, 8) + mb(8, 16)
    # identity skip (U-Net): per level pre and post blocks and a concat-then-3x3 fusion; innermost block
    fusion = bn(32) + conv(32, 16, 3)
    hourglass = 5 * mb(16, 16) + 2 * fusion
    features = mb(16, 16) + bn(16) + conv(16, 16, 1) + bn(16)
    head = conv(16, 3, 1) + 3
    assert count_params(build_model(spec)) == stem + hourglass + features + head
