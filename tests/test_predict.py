"""trainers.draw (the skeleton drawing) and `launch.py predict` (joints on the original image)."""
from __future__ import annotations

import numpy as np
import pytest

from space.errors import ConfigError
from trainers.draw import (DEFAULT_THRESHOLD, SIDE_COLOURS, draw_pose, format_for_joints, limb_side, skeleton,
                           skeleton_for_joints)
from trainers.readers import FORMATS

GREY = (128, 128, 128)


def _blank(h: int = 120, w: int = 160) -> np.ndarray:
    return np.full((h, w, 3), GREY, np.uint8)


def _pixel(img, x: float, y: float) -> tuple[int, ...]:
    return tuple(int(v) for v in np.asarray(img)[int(round(y)), int(round(x))])


def test_dots_take_their_side_colour_and_a_faded_joint_shows_the_image_through():
    joints = np.array([[30.0, 40.0], [120.0, 40.0], [75.0, 90.0]])
    img = draw_pose(_blank(), joints, [0.9, 0.9, 0.05], limbs=[], sides=[],
                    joint_sides=["left", "right", "centre"])
    assert img.size == (160, 120) and img.mode == "RGB"
    assert _pixel(img, 30, 40) == SIDE_COLOURS["left"]
    assert _pixel(img, 120, 40) == SIDE_COLOURS["right"]
    faded = np.array(_pixel(img, 75, 90))
    confident = np.array(draw_pose(_blank(), joints, [0.9, 0.9, 0.9], [], [],
                                   joint_sides=["left", "right", "centre"]))[90, 75]
    assert tuple(confident) == SIDE_COLOURS["centre"]
    # translucent: between the image and the colour, closer to the image
    assert np.abs(faded - GREY).sum() < np.abs(faded - confident).sum()
    assert SIDE_COLOURS["left"] != SIDE_COLOURS["right"]
    assert _pixel(img, 5, 5) == GREY   # nothing drawn away from the pose


def test_limbs_are_coloured_by_side_and_fade_with_an_unsure_joint():
    joints = np.array([[20.0, 20.0], [20.0, 100.0], [140.0, 20.0], [140.0, 100.0]])
    img = draw_pose(_blank(), joints, [1, 1, 1, DEFAULT_THRESHOLD / 2], limbs=[(0, 1), (2, 3)],
                    sides=["left", "right"])
    assert _pixel(img, 20, 60) == SIDE_COLOURS["left"]     # the middle of each limb
    right = np.array(_pixel(img, 140, 60))
    assert tuple(right) != SIDE_COLOURS["right"] and tuple(right) != GREY   # faded, yet drawn


def test_skeletons_of_the_formats_and_their_sides():
    lsp = skeleton("lsp")
    names = FORMATS.get("lsp").joint_names
    assert len(lsp.joint_sides) == 14 and all(0 <= j < 14 for limb in lsp.limbs for j in limb)
    side = dict(zip(lsp.limbs, lsp.sides))
    assert side[(10, 11)] == "left" and side[(6, 7)] == "right" and side[(12, 13)] == "centre"
    assert side[(2, 3)] == "centre"   # hip to hip
    assert lsp.joint_sides[names.index("l_wrist")] == "left" and lsp.joint_sides[names.index("neck")] == "centre"
    for fmt, joints in (("mpii", 16), ("coco", 17)):
        skel = skeleton(fmt)
        assert format_for_joints(joints) == fmt and skeleton_for_joints(joints) == skel
        assert all(0 <= j < joints for limb in skel.limbs for j in limb) and {"left", "right"} <= set(skel.sides)
    assert limb_side("right", "centre") == "right" and limb_side("left", "right") == "centre"
    with pytest.raises(ConfigError, match="15 joints"):
        format_for_joints(15)
