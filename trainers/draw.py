"""Draw a predicted pose on an image: limbs coloured by body side, joint dots, unsure joints faded.

    skel = skeleton("lsp")                    # or skeleton_for_joints(14)
    png = draw_pose(image, joints, confidences, skel.limbs, skel.sides, joint_sides=skel.joint_sides)

The skeletons live with the dataset formats (`DatasetFormat.limbs` in trainers.formats); a limb's
side follows from its joints' names (`l_...` left, `r_...` right, anything else centre).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from space.errors import ConfigError
from trainers.formats import FORMATS, detection_order

# Joints whose confidence (heatmap peak; a perfect target peaks at 1.0) is below this are drawn faded.
DEFAULT_THRESHOLD = 0.2
SIDE_COLOURS = {"left": (40, 120, 255), "right": (235, 50, 40), "centre": (60, 200, 80)}
FADED_ALPHA = 90      # of 255: a faded joint or limb lets most of the image show through
OUTLINE = (255, 255, 255)


@dataclass(frozen=True)
class Skeleton:
    """What draw_pose needs besides the pose: limbs (joint pairs), each limb's side and each joint's."""

    limbs: list[tuple[int, int]]
    sides: list[str]
    joint_sides: list[str]


def joint_side(name: str) -> str:
    """left, right or centre from a joint name (l_elbow, r_knee, neck)."""
    return {"l_": "left", "r_": "right"}.get(name[:2], "centre")


def limb_side(a: str, b: str) -> str:
    """A limb's side from its two joints' sides: a side joint to the centre is that side, left to right is centre."""
    sides = {a, b} - {"centre"}
    return sides.pop() if len(sides) == 1 else "centre"


def skeleton(fmt: str) -> Skeleton:
    """The skeleton of the registered dataset format `fmt` (lsp, lspet, mpii, coco, synthetic, ...)."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown data format {fmt!r} (choose from {', '.join(FORMATS)})", field="format")
    cls = FORMATS.get(fmt)
    joint_sides = [joint_side(n) for n in cls.joint_names]
    limbs = [(int(a), int(b)) for a, b in cls.limbs]
    return Skeleton(limbs, [limb_side(joint_sides[a], joint_sides[b]) for a, b in limbs], joint_sides)


def format_for_joints(joints: int) -> str:
    """The first registered format (detection order) with `joints` joints: 14 lsp, 16 mpii, 17 coco."""
    for fmt in detection_order():
        if len(fmt.joint_names) == joints:
            return fmt.name
    raise ConfigError(f"no registered data format has {joints} joints, so there is no skeleton to draw",
                      field="joints")


def skeleton_for_joints(joints: int) -> Skeleton:
    """The skeleton of `format_for_joints(joints)`, for a model whose data set is not at hand."""
    return skeleton(format_for_joints(joints))


def _sizes(shape: tuple[int, ...]) -> tuple[int, int]:
    """Dot radius and line width in pixels, growing with the image so a big photo stays readable."""
    radius = max(3, round(max(shape[:2]) / 100))
    return radius, max(2, round(radius * 0.7))


def draw_pose(image: np.ndarray | Image.Image, joints: np.ndarray, confidences: Sequence[float],
              limbs: Sequence[tuple[int, int]], sides: Sequence[str], threshold: float = DEFAULT_THRESHOLD,
              joint_sides: Sequence[str] | None = None) -> Image.Image:
    """The pose drawn on a copy of `image` (H x W x 3 uint8 or a PIL image); returns an RGB PIL image.

    joints (J, 2+) in the image's pixels (pixel i's centre at i); confidences (J,); limbs: joint pairs,
    sides: each limb's "left" / "right" / "centre" (SIDE_COLOURS); joint_sides: each dot's (default centre).
    A joint below `threshold`, and any limb touching one, is drawn translucent (FADED_ALPHA); a joint with
    a NaN coordinate (e.g. not annotated) is left out with its limbs.
    """
    base = Image.fromarray(np.asarray(image, dtype=np.uint8)) if isinstance(image, np.ndarray) else image
    base = base.convert("RGBA")
    xy = np.asarray(joints, dtype=np.float64)[:, :2]
    sure = np.asarray(confidences, dtype=np.float64) >= threshold
    shown = np.isfinite(xy).all(axis=1)
    dot_sides = list(joint_sides) if joint_sides is not None else ["centre"] * len(xy)
    radius, width = _sizes(np.asarray(base).shape)
    overlay = Image.new("RGBA", base.size, (0, 0, 0, 0))
    pen = ImageDraw.Draw(overlay)
    # faded first, so a confident limb or dot on top is not washed out where they cross
    for confident in (False, True):
        alpha = 255 if confident else FADED_ALPHA
        for (a, b), side in zip(limbs, sides):
            if shown[a] and shown[b] and bool(sure[a] and sure[b]) == confident:
                pen.line([tuple(xy[a]), tuple(xy[b])], fill=SIDE_COLOURS[side] + (alpha,), width=width)
        for j in np.flatnonzero((sure == confident) & shown):
            x, y = xy[j]
            pen.ellipse([x - radius, y - radius, x + radius, y + radius], fill=SIDE_COLOURS[dot_sides[j]] + (alpha,),
                        outline=OUTLINE + (alpha,), width=max(1, radius // 3))
    return Image.alpha_composite(base, overlay).convert("RGB")
