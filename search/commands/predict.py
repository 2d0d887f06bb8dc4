"""`launch.py predict`: run saved weights on images and draw the predicted skeleton on each original image.

    python launch.py predict --arch A --weights W --image a.jpg b.jpg --out DIR [--box x,y,w,h] [--flip]
    python launch.py predict --arch A --weights W --data D --split S --n 4 --out DIR [--flip]

Each image is cropped as training crops a person (trainers.crop), predicted by `trainers.engine.predict`
(heatmap decoding, flip test with the format's flip pairs, joints mapped back to original pixels), and
written as DIR/NAME.png (trainers.draw) and DIR/NAME.json. Every input is checked before anything is
written. docs/training.md#launchpy-predict.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from search.commands.flags import check_int
from space.errors import ConfigError
from space.profile import resolve_device
from space.spec import RANGES, ArchSpec, load_arch
from trainers.crop import crop_affine, load_crop, warp_image
from trainers.data import PoseSet, load_poses, parse_data
from trainers.draw import DEFAULT_THRESHOLD, draw_pose, format_for_joints, skeleton
from trainers.engine import predict
from trainers.fit import load_model
from trainers.io import atomic_write, save_json
from trainers.proxy import check_input_size
from trainers.readers import CARVED_SPLITS, FORMATS, DataError, read_annotations, resolve

# --box is a tight person box; the crop is this much larger, as the COCO and MPII readers crop around one.
PERSON_BOX_MARGIN = 1.25
MAX_IMAGES = 10_000


@dataclass
class Inputs:
    """The crops to predict (a PoseSet: images, affines, flip pairs) and what to draw them on."""

    poses: PoseSet
    originals: list[Path | None]   # the image files; None where the crop is the image (synthetic)
    fmt: str                       # registered data format: skeleton and flip pairs
    box: tuple[float, float, float, float] | None = None   # --box, for the JSON


def parse_box(text: str) -> tuple[float, float, float, float]:
    """'x,y,w,h' (left column, top row, width, height in original pixels) -> floats; w, h > 0."""
    try:
        box = tuple(float(v) for v in text.split(","))
    except ValueError:
        box = ()
    if len(box) != 4 or not all(math.isfinite(v) for v in box) or box[2] <= 0 or box[3] <= 0:
        raise ConfigError(f"expected x,y,w,h with w and h above 0, got {text!r}", source="<arg>", field="--box")
    return box  # type: ignore[return-value]


def image_affine(width: int, height: int, size: int,
                 box: tuple[float, float, float, float] | None = None) -> np.ndarray:
    """Original -> crop affine for a whole image (the square around its centre that holds all of it)
    or for a person box (PERSON_BOX_MARGIN x its longer side around its centre); pixel i's centre is at i."""
    x, y, w, h = box if box is not None else (0.0, 0.0, float(width), float(height))
    side = max(w, h) * (PERSON_BOX_MARGIN if box is not None else 1.0)
    return crop_affine(np.array([x + (w - 1) / 2.0, y + (h - 1) / 2.0]), side, size)


def _crop_image(path: Path, box: tuple[float, float, float, float] | None, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(crop, affine) of one image file; a missing or undecodable file is a one-line ConfigError."""
    try:
        with Image.open(path) as img:
            affine = image_affine(*img.size, size, box)
            return warp_image(img, affine, size), affine
    except FileNotFoundError:
        raise ConfigError("image file not found", source=str(path), field="--image") from None
    except (OSError, ValueError, SyntaxError) as err:  # PIL's ways of saying "not an image"
        raise ConfigError(f"cannot decode image ({type(err).__name__}: {err})", source=str(path),
                          field="--image") from None


def _poseset(crops: list[np.ndarray], affines: list[np.ndarray], names: list[str], fmt: str) -> PoseSet:
    """Crops to predict as a PoseSet (no ground truth: joints are zeros)."""
    n, joints = len(crops), len(FORMATS.get(fmt).joint_names)
    empty = np.zeros((n, joints, 3), np.float32)
    meta = {"format": fmt, "flip_pairs": [list(p) for p in FORMATS.get(fmt).flip_pairs]}
    return PoseSet(np.stack(crops), empty, empty.copy(), np.stack(affines).astype(np.float32),
                   np.ones(n, np.float32), names, meta)


def image_inputs(paths: list[str], box: tuple[float, float, float, float] | None, size: int, fmt: str) -> Inputs:
    """`--image` files, each cropped whole (or around `box`), for a model of format `fmt`'s joints."""
    crops, affines = zip(*(_crop_image(Path(p), box, size) for p in paths))
    names = [Path(p).name for p in paths]
    return Inputs(_poseset(list(crops), list(affines), names, fmt), [Path(p) for p in paths], fmt, box)


def data_inputs(data: str, split: str, n: int, size: int) -> Inputs:
    """The first `n` records of `split` of `data`, cropped around the dataset's own person boxes."""
    fmt, path, _ = parse_data(data)
    if fmt == "synthetic":  # generated at crop size: the crop is the original image
        poses = load_poses(data, split, size)
        return Inputs(poses.select(np.arange(min(n, len(poses)))), [None] * min(n, len(poses)), "synthetic")
    assert path is not None
    fmt_obj, annot = resolve(fmt or None, path, "train" if split in CARVED_SPLITS else split)
    records = read_annotations(fmt_obj, annot, split).records[:n]
    if not records:
        raise DataError(f"no usable records in split {split!r}", source=str(annot), field="split")
    affines = [crop_affine(r.center, r.box, size) for r in records]
    crops = []
    for i, (rec, affine) in enumerate(zip(records, affines)):
        _, crop, err = load_crop((i, str(rec.image), affine, size))
        if err:
            raise DataError(err, source=str(rec.image), field=f"record {i} ({rec.name})")
        crops.append(crop)
    return Inputs(_poseset(crops, affines, [r.name for r in records], fmt_obj.name), [r.image for r in records],
                  fmt_obj.name)


def check_args(args: argparse.Namespace) -> None:
    """Flag combinations and ranges, before anything is read; fills in the default --threshold."""
    check_int(args, "input_size", *RANGES["input_size"])
    check_int(args, "n", 1, MAX_IMAGES)
    if (args.image is None) == (args.data is None):
        raise ConfigError("give either --image FILE [FILE ...] or --data D (not both)", source="<arg>",
                          field="--image/--data")
    if args.image is not None and (args.split is not None or args.n is not None):
        raise ConfigError("--split and --n go with --data, not --image", source="<arg>", field="--split/--n")
    if args.data is not None and args.box is not None:
        raise ConfigError("--box goes with --image; --data crops around the dataset's own boxes", source="<arg>",
                          field="--box")
    if args.threshold is None:
        args.threshold = DEFAULT_THRESHOLD
    if not (math.isfinite(args.threshold) and args.threshold >= 0):
        raise ConfigError(f"must be a number >= 0, got {args.threshold}", source="<arg>", field="--threshold")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise ConfigError("exists and is not a folder", source=str(args.out), field="--out")


def _inputs(args: argparse.Namespace, spec: ArchSpec, size: int) -> Inputs:
    if args.image is not None:
        box = parse_box(args.box) if args.box is not None else None
        return image_inputs(args.image, box, size, format_for_joints(spec.joints))
    inputs = data_inputs(args.data, args.split or "test", args.n or 4, size)
    joints = int(inputs.poses.joints.shape[1])
    if joints != spec.joints:
        raise ConfigError(f"the weights predict {spec.joints} joints but {args.data} has {joints}",
                          source=str(args.weights), field="joints")
    return inputs


def _out_names(names: list[str]) -> list[str]:
    """File stems for the outputs: the image's stem, numbered where two images share one."""
    stems, seen = [], set()
    for k, name in enumerate(names):
        stem = Path(name).stem or f"image{k}"
        stems.append(stem if stem not in seen else f"{stem}-{k}")
        seen.add(stems[-1])
    return stems


def _record(args: argparse.Namespace, spec: ArchSpec, inputs: Inputs, k: int, size: int,
            joints: np.ndarray, conf: np.ndarray) -> dict:
    """One image's JSON: joints [x, y] in original pixels (pixel i's centre at i) and their confidences."""
    original = inputs.originals[k]
    return {"image": str(original.resolve()) if original is not None else None, "name": inputs.poses.names[k],
            "arch_id": spec.arch_id, "weights": str(args.weights), "format": inputs.fmt,
            "input_size": size, "flip": bool(args.flip), "box": list(inputs.box) if inputs.box else None,
            "threshold": args.threshold,
            "crop_affine": inputs.poses.affine[k].tolist(),
            "joint_names": list(FORMATS.get(inputs.fmt).joint_names),
            "joints": np.round(joints[:, :2].astype(np.float64), 2).tolist(),
            "confidences": np.round(conf.astype(np.float64), 4).tolist()}


def _original(inputs: Inputs, k: int) -> Image.Image | np.ndarray:
    """The image the k-th prediction is drawn on (decoded fully here; the crop used a reduced draft)."""
    path = inputs.originals[k]
    if path is None:
        return np.asarray(inputs.poses.images[k])
    with Image.open(path) as img:
        return img.convert("RGB")


def write_outputs(args: argparse.Namespace, spec: ArchSpec, inputs: Inputs, size: int,
                  joints: np.ndarray, conf: np.ndarray) -> None:
    """DIR/NAME.png (the skeleton on the original image) and DIR/NAME.json for every input."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    skel = skeleton(inputs.fmt)
    for k, stem in enumerate(_out_names(inputs.poses.names)):
        png = draw_pose(_original(inputs, k), joints[k], conf[k], skel.limbs, skel.sides, args.threshold,
                        skel.joint_sides)
        atomic_write(out / f"{stem}.png", partial(png.save, format="PNG"))
        save_json(_record(args, spec, inputs, k, size, joints[k], conf[k]), out / f"{stem}.json")
        sure = int((conf[k] >= args.threshold).sum())
        print(f"wrote {out / stem}.png and .json: {sure}/{len(conf[k])} joints at confidence >= {args.threshold}")


def main(args: argparse.Namespace) -> int:
    check_args(args)
    device = resolve_device(args.device)
    spec = load_arch(args.arch)
    size = args.input_size or spec.input_size
    model, spec = load_model(spec, args.weights, size)
    model.to(device)
    inputs = _inputs(args, spec, size)
    check_input_size(spec, inputs.poses, size)
    joints, conf = predict(model, inputs.poses, device=device, flip=args.flip)
    write_outputs(args, spec, inputs, size, joints, conf)
    return 0
