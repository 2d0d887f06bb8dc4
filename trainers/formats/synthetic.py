"""The `synthetic` format: articulated 14-joint figures in LSP order on cluttered backgrounds.

No files, deterministic by (seed, split, index), a few thousand samples per second at 64-128 px.
The figure faces the camera (its right side on the image's left, as in LSP) so left and right are
learnable from the pose; limbs have varying width and colour, and random clutter and occluders
make it more than a colour-blob detector.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from space.errors import ConfigError
from trainers.formats.base import FORMATS, DatasetFormat, Source
from trainers.formats.lsp import LSP_FLIP, LSP_JOINTS, LSP_LIMBS
from trainers.poseset import PoseSet, subset_indices

_SPLIT_STREAM = {"train": 0, "val": 1, "valid": 1, "test": 2}
DEFAULT_SIZE = {"train": 2000, "val": 500, "valid": 500, "test": 500}
# each side's (shoulder, elbow, wrist) and (hip, knee, ankle): the person's right, then left
_SIDES = [((8, 7, 6), (2, 1, 0)), ((9, 10, 11), (3, 4, 5))]
Colour = tuple[int, int, int]


def _rot(v: np.ndarray, deg: float) -> np.ndarray:
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def _skeleton(rng: np.random.Generator) -> np.ndarray:
    """(14, 2) joints of a random pose in body units (torso length 1), y down."""
    j = np.zeros((14, 2))
    up = _rot(np.array([0.0, -1.0]), rng.uniform(-25, 25))
    right = np.array([up[1], -up[0]])  # the person's right = image left when facing the camera
    pelvis = np.zeros(2)
    neck = pelvis + up
    sw, hw = rng.uniform(0.32, 0.5), rng.uniform(0.22, 0.34)
    j[8], j[9] = neck + right * sw, neck - right * sw  # shoulders
    j[2], j[3] = pelvis + right * hw, pelvis - right * hw  # hips
    j[12] = neck
    j[13] = neck + _rot(up, rng.uniform(-25, 25)) * rng.uniform(0.32, 0.42)
    for side, (sh, el, wr, hip, kn, an) in ((1, (8, 7, 6, 2, 1, 0)), (-1, (9, 10, 11, 3, 4, 5))):
        # angles are measured from "down the body", positive = outwards for this side
        a1 = rng.uniform(-40, 170)
        j[el] = j[sh] + _rot(-up, -side * a1) * rng.uniform(0.5, 0.65)
        j[wr] = j[el] + _rot(
            -up, -side * (a1 + rng.uniform(-10, 150) * rng.choice([-1, 1]))
        ) * rng.uniform(0.45, 0.58)
        a2 = rng.uniform(-15, 60)
        j[kn] = j[hip] + _rot(-up, -side * a2) * rng.uniform(0.7, 0.9)
        j[an] = j[kn] + _rot(-up, -side * (a2 + rng.uniform(-60, 25))) * rng.uniform(0.7, 0.9)
    return j


def _colour(rng: np.random.Generator) -> Colour:
    return tuple(int(c) for c in rng.integers(0, 256, 3))


@functools.lru_cache(maxsize=8)
def _grid(size: int) -> np.ndarray:
    return np.mgrid[0:size, 0:size].astype(np.float32) / size


def _background(rng: np.random.Generator, size: int) -> Image.Image:
    kind = rng.integers(3)
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    if kind == 0:  # smooth noise
        low = rng.uniform(0, 255, (rng.integers(3, 9), rng.integers(3, 9), 3)).astype(np.uint8)
        img = Image.fromarray(low).resize((size, size), Image.Resampling.BILINEAR)
        arr = np.asarray(img, dtype=np.float32)
    else:
        yy, xx = _grid(size)
        a = rng.uniform(0, math.pi)
        t = xx * math.cos(a) + yy * math.sin(a)
        if kind == 1:  # stripes
            t = 0.5 + 0.5 * np.sin(2 * math.pi * rng.uniform(2, 10) * t + rng.uniform(0, 6.3))
        else:  # gradient
            t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        arr = (c0 + (c1 - c0) * t[..., None]).astype(np.float32)
    arr = arr + rng.standard_normal((size, size, 1), dtype=np.float32) * rng.uniform(2, 15)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _shapes(
    draw: ImageDraw.ImageDraw, rng: np.random.Generator, size: int, n: int, big: float
) -> None:
    for _ in range(n):
        x, y = rng.uniform(-0.1, 1.1, 2) * size
        w, h = rng.uniform(0.05, big, 2) * size
        box = [x - w / 2, y - h / 2, x + w / 2, y + h / 2]
        kind = rng.integers(3)
        if kind == 0:
            draw.ellipse(box, fill=_colour(rng))
        elif kind == 1:
            draw.rectangle(box, fill=_colour(rng))
        else:
            draw.line(box, fill=_colour(rng), width=max(1, int(rng.uniform(0.01, 0.05) * size)))


def _limb(
    draw: ImageDraw.ImageDraw, pts: np.ndarray, a: int, b: int, colour: Colour, width: float
) -> None:
    """A round-capped line from joint `a` to joint `b`."""
    w = max(1, int(round(width)))
    draw.line([tuple(pts[a]), tuple(pts[b])], fill=colour, width=w)
    for p in (pts[a], pts[b]):
        r = w / 2
        draw.ellipse([p[0] - r, p[1] - r, p[0] + r, p[1] + r], fill=colour)


def _jitter(rng: np.random.Generator, c: Colour) -> Colour:
    d = rng.integers(-25, 26, 3).tolist()
    return tuple(min(255, max(0, v + dv)) for v, dv in zip(c, d))


def _side(
    draw: ImageDraw.ImageDraw,
    rng: np.random.Generator,
    pts: np.ndarray,
    side: tuple[tuple[int, int, int], tuple[int, int, int]],
    colours: tuple[Colour, Colour, Colour],
    limb_w: float,
) -> None:
    """One side's leg and arm; each limb's colour jittered from the outfit's."""
    (sh, el, wr), (hp, kn, an) = side
    top, skin, legs = colours
    _limb(draw, pts, hp, kn, _jitter(rng, legs), limb_w * 1.3)
    _limb(draw, pts, kn, an, _jitter(rng, legs), limb_w * 1.1)
    _limb(draw, pts, sh, el, _jitter(rng, top), limb_w)
    _limb(draw, pts, el, wr, _jitter(rng, skin), limb_w * 0.8)


def render_sample(seed: int, split: str, index: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic person: (size, size, 3) uint8 image and (14, 3) joints (x, y, v=1) in
    pixels."""
    rng = np.random.default_rng([seed, _SPLIT_STREAM.get(split, 3), index])
    body = _skeleton(rng)
    # place the figure: its extent fills 45-80 % of the crop, somewhere near the centre
    lo, hi = body.min(axis=0), body.max(axis=0)
    scale = rng.uniform(0.45, 0.8) * size / max(float(max(hi - lo)), 1e-6)
    pts = (body - (lo + hi) / 2) * scale + size / 2 + rng.uniform(-0.08, 0.08, 2) * size
    pts = np.clip(pts, 1, size - 2)
    torso = scale  # body units -> pixels
    img = _background(rng, size)
    draw = ImageDraw.Draw(img)
    _shapes(draw, rng, size, int(rng.integers(1, 6)), 0.35)

    colours = top, skin, legs = _colour(rng), _colour(rng), _colour(rng)
    limb_w = rng.uniform(0.1, 0.2) * torso
    # far-side limbs first so the torso can cover them; which side is "far" is random
    order = rng.permutation(2)
    _side(draw, rng, pts, _SIDES[order[0]], colours, limb_w)
    draw.polygon([tuple(pts[i]) for i in (8, 9, 3, 2)], fill=top)
    head_c = (pts[12] + pts[13]) / 2
    r = max(1.5, float(np.hypot(*(pts[13] - pts[12]))) / 2)
    draw.ellipse(
        [head_c[0] - r * 0.8, head_c[1] - r, head_c[0] + r * 0.8, head_c[1] + r], fill=skin
    )
    _limb(draw, pts, 12, 13, skin, limb_w * 0.6)
    _side(draw, rng, pts, _SIDES[order[1]], colours, limb_w)
    # an occluder over part of the person; its joints stay annotated, as in LSP
    if rng.random() < 0.3:
        _shapes(draw, rng, size, 1, 0.3)
    joints = np.concatenate([pts, np.ones((14, 1))], axis=1).astype(np.float32)
    return np.asarray(img, dtype=np.uint8), joints


def _sample_name(split: str, index: int) -> str:
    return f"synthetic-{split}-{index:06d}"


@FORMATS.register("synthetic")
class SyntheticFormat(DatasetFormat):
    """Generated people: `synthetic` (DEFAULT_SIZE samples per split) or `synthetic:N`, never
    detected from a path. Each sample is rendered at the crop size, so the crop is the original
    image (identity affine); norm = the torso diagonal (right shoulder to left hip)."""

    name, metric, norm_kind = "synthetic", "pck", "torso"
    joint_names, flip_pairs, limbs = LSP_JOINTS, LSP_FLIP, LSP_LIMBS
    # No path: the data string names a sample count. Not cached on disk: rendering a set is
    # about as fast as reading a cache entry back (docs/data.md), and nothing on disk goes stale.
    files, disk_cache = False, False

    def sample_count(self, src: Source, split: str) -> int:
        """How many samples `split` has; an unknown split (a carved one too: val and test
        differ here) is a ConfigError."""
        if split not in DEFAULT_SIZE:
            raise ConfigError(
                f"unknown split {split!r} for {self.name} (train, val, test)",
                source=self.name,
                field="split",
            )
        return src.count or DEFAULT_SIZE[split]

    def identity(self, src: Source, split: str) -> dict[str, Any]:
        return {"format": self.name, "count": src.count}

    def record_names(self, src: Source, split: str) -> list[str]:
        return [_sample_name(split, i) for i in range(self.sample_count(src, split))]

    def prepare(
        self,
        src: Source,
        split: str,
        size: int,
        *,
        subset: int | None = None,
        seed: int = 0,
        skip_bad: bool = False,
        workers: int | None = None,
    ) -> PoseSet:
        """Render the seeded `subset` of `split` at `size` px, in this process: no sample can be
        bad (`skip_bad` changes nothing) and rendering needs no pool (`workers` is unused)."""
        n = self.sample_count(src, split)
        idx = subset_indices(n, subset, seed)
        images = np.empty((len(idx), size, size, 3), np.uint8)
        joints = np.empty((len(idx), len(self.joint_names), 3), np.float32)
        for k, i in enumerate(idx.tolist()):
            images[k], joints[k] = render_sample(seed, split, i, size)
        norm = np.hypot(*(joints[:, 8, :2] - joints[:, 3, :2]).T).astype(np.float32)
        identity = np.array([[1, 0, 0], [0, 1, 0]], np.float32)
        affine = np.broadcast_to(identity, (len(idx), 2, 3)).copy()
        meta = {
            "dataset": self.name,
            "joint_names": list(self.joint_names),
            "flip_pairs": [list(p) for p in self.flip_pairs],
            "metric": self.metric,
            "norm_kind": self.norm_kind,
            "format": self.name,
            "source": f"{self.name}:{n}",
            "split": split,
            "size": size,
            "n_records": n,
            "subset": subset,
            "seed": seed,
            "skipped": 0,
            "norm_estimated": [],
        }
        # floored at a pixel: a degenerate torso must not make PCK divide by almost nothing
        return PoseSet(
            images,
            joints,
            joints.copy(),
            affine,
            np.maximum(norm, 1.0),
            [_sample_name(split, i) for i in idx.tolist()],
            meta,
        )
