"""Draw a predicted pose on an image: limbs coloured by body side, joint dots, unsure joints faded.

    skel = skeleton("lsp")                    # or skeleton_for_joints(14)
    png = draw_pose(image, joints, confidences, skel.limbs, skel.sides, joint_sides=skel.joint_sides)

The skeletons live with the dataset formats (`DatasetFormat.limbs` in trainers.formats); a limb's
side follows from its joints' names (`l_...` left, `r_...` right, anything else centre).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from space.errors import ConfigError
from trainers.formats import FORMATS, detection_order

# Joints whose confidence (heatmap peak; a perfect target peaks at 1.0) is below this are drawn faded.
DEFAULT_THRESHOLD = 0.2
SIDE_COLOURS = {"left": (40, 120, 255), "right": (235, 50, 40), "centre": (60, 200, 80)}
FADED_ALPHA = 90  # of 255: a faded joint or limb lets most of the image show through
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
        raise ConfigError(
            f"unknown data format {fmt!r} (choose from {', '.join(FORMATS)})", field="format"
        )
    cls = FORMATS.get(fmt)
    joint_sides = [joint_side(n) for n in cls.joint_names]
    limbs = [(int(a), int(b)) for a, b in cls.limbs]
    return Skeleton(
        limbs, [limb_side(joint_sides[a], joint_sides[b]) for a, b in limbs], joint_sides
    )


def format_for_joints(joints: int) -> str:
    """The first registered format (detection order) with `joints` joints: 14 lsp, 16 mpii, 17 coco."""
    for fmt in detection_order():
        if len(fmt.joint_names) == joints:
            return fmt.name
    raise ConfigError(
        f"no registered data format has {joints} joints, so there is no skeleton to draw",
        field="joints",
    )


def skeleton_for_joints(joints: int) -> Skeleton:
    """The skeleton of `format_for_joints(joints)`, for a model whose data set is not at hand."""
    return skeleton(format_for_joints(joints))


def _sizes(shape: tuple[int, ...]) -> tuple[int, int]:
    """Dot radius and line width in pixels, growing with the image so a big photo stays readable."""
    radius = max(3, round(max(shape[:2]) / 100))
    return radius, max(2, round(radius * 0.7))


def draw_pose(
    image: np.ndarray | Image.Image,
    joints: np.ndarray,
    confidences: Sequence[float],
    limbs: Sequence[tuple[int, int]],
    sides: Sequence[str],
    threshold: float = DEFAULT_THRESHOLD,
    joint_sides: Sequence[str] | None = None,
) -> Image.Image:
    """The pose drawn on a copy of `image` (H x W x 3 uint8 or a PIL image); returns an RGB PIL image.

    joints (J, 2+) in the image's pixels (pixel i's centre at i); confidences (J,); limbs: joint pairs,
    sides: each limb's "left" / "right" / "centre" (SIDE_COLOURS); joint_sides: each dot's (default centre).
    A joint below `threshold`, and any limb touching one, is drawn translucent (FADED_ALPHA); a joint with
    a NaN coordinate (e.g. not annotated) is left out with its limbs.
    """
    base = (
        Image.fromarray(np.asarray(image, dtype=np.uint8))
        if isinstance(image, np.ndarray)
        else image
    )
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
                pen.line(
                    [tuple(xy[a]), tuple(xy[b])], fill=SIDE_COLOURS[side] + (alpha,), width=width
                )
        for j in np.flatnonzero((sure == confident) & shown):
            x, y = xy[j]
            pen.ellipse(
                [x - radius, y - radius, x + radius, y + radius],
                fill=SIDE_COLOURS[dot_sides[j]] + (alpha,),
                outline=OUTLINE + (alpha,),
                width=max(1, radius // 3),
            )
    return Image.alpha_composite(base, overlay).convert("RGB")


# ---------------------------------------------------------------- a picture that explains itself
# The crop's square (what the network saw), the legend panel and its text, and the warning.
BOX_COLOUR = (255, 200, 0)
TEXT_COLOUR = (255, 255, 255)
WARNING_COLOUR = (255, 220, 60)
PANEL = (0, 0, 0, 175)
# An image whose longer side is under ENLARGED_SIDE px (a 32 px synthetic crop, a 216 x 142 photo)
# is drawn enlarged by an integer factor (nearest neighbour: its own pixels) to ENLARGED_SIDE px or
# more, so that the legend and the labels do not hide the person.
ENLARGED_SIDE = 256


@dataclass(frozen=True)
class LegendEntry:
    """One item of a legend row: a swatch (`kind`: dot, faded, box; none: text only), its text."""

    text: str
    kind: str
    colour: tuple[int, int, int] = TEXT_COLOUR


def draw_scale(width: int, height: int) -> int:
    """The integer factor an image is drawn enlarged by: 1 from ENLARGED_SIDE px on (the longer
    side), else enough to reach it (a 32 px crop is drawn at 256 px, a 216 px photo at 432)."""
    return -(-ENLARGED_SIDE // max(1, width, height))


def font_px(width: int, height: int) -> int:
    """Text size for a drawing of this size: 11 px up to ~460 px, then 1/40 of the longer side."""
    return int(min(64, max(11, round(max(width, height) / 40))))


def legend_entries(threshold: float, box: bool) -> list[list[LegendEntry]]:
    """The legend's rows: the side colours (the person's left and right, not the image's), what a
    faded joint or limb means, and, with `box`, the cropped square."""
    sides = [LegendEntry("person's", "none")]
    sides += [LegendEntry(side, "dot", SIDE_COLOURS[side]) for side in ("left", "right", "centre")]
    second = [LegendEntry(f"faded: confidence < {threshold:g}", "faded", (220, 220, 220))]
    if box:
        second.append(LegendEntry("crop", "box", BOX_COLOUR))
    return [sides, second]


def no_joint_text(threshold: float) -> str:
    """The line drawn in a picture where no joint reaches `threshold`."""
    return f"no joint above threshold {threshold:g}"


def _row_width(pen: ImageDraw.ImageDraw, row: list[LegendEntry], font, em: float) -> float:
    swatch = sum(em * 1.1 for e in row if e.kind != "none")
    return swatch + sum(pen.textlength(e.text, font=font) for e in row) + em * 0.8 * (len(row) - 1)


def _corner(
    size: tuple[int, int], wh: tuple[float, float], points: np.ndarray, margin: float
) -> tuple[float, float]:
    """The panel's top-left: the first corner (top-left, top-right, bottom-left, bottom-right)
    that covers the fewest of `points` (joints and box corners)."""
    (width, height), (w, h) = size, wh
    corners = [
        (margin, margin),
        (width - w - margin, margin),
        (margin, height - h - margin),
        (width - w - margin, height - h - margin),
    ]

    def covered(c: tuple[float, float]) -> int:
        inside = (
            (points[:, 0] >= c[0] - margin)
            & (points[:, 0] <= c[0] + w + margin)
            & (points[:, 1] >= c[1] - margin)
            & (points[:, 1] <= c[1] + h + margin)
        )
        return int(inside.sum())

    return min(corners, key=covered)


def _swatch(pen: ImageDraw.ImageDraw, entry: LegendEntry, x: float, mid: float, em: float) -> None:
    r = em * 0.32
    if entry.kind == "box":
        pen.rectangle(
            [x, mid - r, x + 2 * r, mid + r],
            outline=entry.colour + (255,),
            width=max(1, round(em / 8)),
        )
        return
    alpha = FADED_ALPHA if entry.kind == "faded" else 255
    pen.ellipse(
        [x, mid - r, x + 2 * r, mid + r],
        fill=entry.colour + (alpha,),
        outline=OUTLINE + (alpha,),
        width=max(1, round(em / 10)),
    )


def draw_panel(
    pen: ImageDraw.ImageDraw,
    rows: list[list[LegendEntry]],
    font: ImageFont.FreeTypeFont,
    size: tuple[int, int],
    points: np.ndarray,
) -> tuple[float, float, float, float]:
    """Rows of swatches and text on a translucent dark panel in the corner with the fewest
    `points`; returns the panel's box (x0, y0, x1, y1)."""
    em = float(font.size)
    line, pad = em * 1.3, em * 0.4
    w = max(_row_width(pen, row, font, em) for row in rows) + 2 * pad
    h = line * len(rows) + 2 * pad
    x0, y0 = _corner(size, (w, h), points, em * 0.3)
    pen.rounded_rectangle([x0, y0, x0 + w, y0 + h], radius=pad, fill=PANEL)
    for i, row in enumerate(rows):
        x, mid = x0 + pad, y0 + pad + line * (i + 0.5)
        for entry in row:
            if entry.kind != "none":
                _swatch(pen, entry, x, mid, em)
                x += em * 1.1
            colour = entry.colour if entry.kind == "none" else TEXT_COLOUR
            pen.text((x, mid), entry.text, font=font, fill=colour + (255,), anchor="lm")
            x += pen.textlength(entry.text, font=font) + em * 0.8
    return x0, y0, x0 + w, y0 + h


def _draw_labels(
    pen: ImageDraw.ImageDraw,
    xy: np.ndarray,
    confidences: np.ndarray,
    font,
    offset: float,
    size: tuple[int, int],
) -> None:
    """Each drawn joint's confidence (0.43) beside its dot, white with a dark outline: above right,
    or on the other side where that would leave the image."""
    for (x, y), conf in zip(xy, confidences):
        if not np.isfinite([x, y]).all():
            continue
        text = f"{conf:.2f}"
        w, h = pen.textlength(text, font=font), font.size
        tx = x + offset if x + offset + w <= size[0] else x - offset - w
        ty = y - offset if y - offset - h >= 0 else y + offset + h
        pen.text(
            (tx, ty),
            text,
            font=font,
            fill=TEXT_COLOUR + (255,),
            anchor="lb",
            stroke_width=max(1, round(font.size / 10)),
            stroke_fill=(0, 0, 0, 255),
        )


def draw_prediction(
    image: np.ndarray | Image.Image,
    joints: np.ndarray,
    confidences: Sequence[float],
    skel: Skeleton,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    crop_box: Sequence[float] | None = None,
    labels: bool = False,
    legend: bool = True,
) -> Image.Image:
    """`draw_pose` with what makes the picture explain itself: the cropped square `crop_box`
    (x0, y0, x1, y1 in the image's pixels, outlined in BOX_COLOUR), each joint's confidence with
    `labels`, a legend panel (`legend_entries`) and, where no joint reaches `threshold`, a line
    saying so (`no_joint_text`, also without `legend`). Text and lines scale with the image; an
    image under ENLARGED_SIDE px is drawn enlarged (`draw_scale`). joints (J, 2+) in the image's
    pixels, pixel i's centre at i."""
    base = Image.fromarray(np.asarray(image, np.uint8)) if isinstance(image, np.ndarray) else image
    base = base.convert("RGB")
    k = draw_scale(*base.size)
    if k > 1:
        base = base.resize((base.width * k, base.height * k), Image.Resampling.NEAREST)
    xy = (np.asarray(joints, dtype=np.float64)[:, :2] + 0.5) * k - 0.5
    conf = np.asarray(confidences, dtype=np.float64)
    font = ImageFont.load_default(size=font_px(*base.size))
    radius, width = _sizes((base.height, base.width))
    points = xy[np.isfinite(xy).all(axis=1)]
    if crop_box is not None:
        box = [(v + 0.5) * k - 0.5 for v in crop_box]
        ImageDraw.Draw(base).rectangle(box, outline=BOX_COLOUR, width=max(1, width // 2))
        points = np.vstack(
            [points, [[box[0], box[1]], [box[2], box[1]], [box[0], box[3]], [box[2], box[3]]]]
        )
    drawn = draw_pose(base, xy, conf, skel.limbs, skel.sides, threshold, skel.joint_sides)
    overlay = Image.new("RGBA", drawn.size, (0, 0, 0, 0))
    pen = ImageDraw.Draw(overlay)
    if labels:
        small = ImageFont.load_default(size=max(10, round(font.size * 0.85)))
        _draw_labels(pen, xy, conf, small, radius, drawn.size)
    rows = (
        [[LegendEntry(no_joint_text(threshold), "none", WARNING_COLOUR)]]
        if not (conf >= threshold).any()
        else []
    )
    rows += legend_entries(threshold, crop_box is not None) if legend else []
    if rows:
        draw_panel(pen, rows, font, drawn.size, points)
    return Image.alpha_composite(drawn.convert("RGBA"), overlay).convert("RGB")
