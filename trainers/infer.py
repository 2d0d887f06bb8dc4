"""Inference on images: crop around a person, predict the joints, map them back, draw the skeleton.

Each image is cropped as training crops a person (trainers.crop), predicted by
`trainers.engine.predict` (heatmap decoding, flip test with the format's flip pairs, joints mapped
back to original pixels), and written as DIR/NAME.png (trainers.draw) and DIR/NAME.json. Every input
is read and checked before anything is written. Used by `launch.py predict` (cli/predict.py);
docs/training.md#launchpy-predict.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from space.errors import ConfigError, one_line
from space.spec import ArchSpec
from trainers.crop import (
    ImageTooLarge,
    crop_affine,
    crop_to_original,
    load_crop,
    open_image,
    warp_image,
)
from trainers.data import PoseSet, load_poses, parse_data
from trainers.draw import draw_prediction, draw_scale, skeleton
from trainers.engine import predict
from trainers.formats import CARVED_SPLITS, FORMATS, DataError, read_annotations, resolve
from trainers.io import atomic_write, save_json
from trainers.proxy import check_input_size
from trainers.weights import load_model

# A given box is a tight person box; the crop is this much larger, as the COCO and MPII readers
# crop around one.
PERSON_BOX_MARGIN = 1.25

Box = tuple[float, float, float, float]  # x, y, w, h in original pixels


@dataclass
class Inputs:
    """The crops to predict (a PoseSet: images, affines, flip pairs) and what to draw them on."""

    poses: PoseSet
    originals: list[
        Path | None
    ]  # the image files; None where the crop is the image (a generated format)
    fmt: str  # registered data format: skeleton and flip pairs
    box: Box | None = None  # the person box the images were cropped around, for the JSON
    show_crop: bool = False  # outline the cropped square (around a box, not a whole image)
    whole: int = 0  # --data records without a person box, cropped as whole images


@dataclass(frozen=True)
class Written:
    """One input's outputs: STEM.png and STEM.json, and how many joints reached the threshold."""

    stem: Path
    sure: int
    joints: int


def image_affine(width: int, height: int, size: int, box: Box | None = None) -> np.ndarray:
    """Original -> crop affine for a whole image (the square around its centre that holds all of
    it) or for a person box (PERSON_BOX_MARGIN x its longer side around its centre); pixel i's
    centre is at i."""
    x, y, w, h = box if box is not None else (0.0, 0.0, float(width), float(height))
    side = max(w, h) * (PERSON_BOX_MARGIN if box is not None else 1.0)
    return crop_affine(np.array([x + (w - 1) / 2.0, y + (h - 1) / 2.0]), side, size)


def check_box(box: Box | None, width: int, height: int, path: Path) -> None:
    """ConfigError when `box` lies wholly outside the `width` x `height` image (its crop would
    show nothing of it)."""
    if box is None:
        return
    x, y, w, h = box
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise ConfigError(
            f"box {x:g},{y:g},{w:g},{h:g} lies wholly outside the image ({width}x{height} pixels)",
            source=str(path),
            field="--box",
        )


def _crop_image(
    path: Path, box: Box | None, size: int, field: str = "--image"
) -> tuple[np.ndarray, np.ndarray]:
    """(crop, affine) of one image file; a missing, undecodable or too large file, or a box
    outside it, is a one-line ConfigError."""
    try:
        with open_image(path) as img:
            check_box(box, *img.size, path)
            affine = image_affine(*img.size, size, box)
            return warp_image(img, affine, size), affine
    except ConfigError:
        raise
    except FileNotFoundError:
        raise ConfigError("image file not found", source=str(path), field=field) from None
    except IsADirectoryError:
        raise ConfigError("is a folder, not an image", source=str(path), field=field) from None
    except ImageTooLarge as err:
        raise ConfigError(str(err), source=str(path), field=field) from None
    except (OSError, ValueError, SyntaxError) as err:  # PIL's ways of saying "not an image"
        raise ConfigError(
            f"cannot decode image ({one_line(err)})", source=str(path), field=field
        ) from None


def _poseset(
    crops: list[np.ndarray], affines: list[np.ndarray], names: list[str], fmt: str
) -> PoseSet:
    """Crops to predict as a PoseSet (no ground truth: joints are zeros)."""
    n, joints = len(crops), len(FORMATS.get(fmt).joint_names)
    empty = np.zeros((n, joints, 3), np.float32)
    meta = {"format": fmt, "flip_pairs": [list(p) for p in FORMATS.get(fmt).flip_pairs]}
    return PoseSet(
        np.stack(crops),
        empty,
        empty.copy(),
        np.stack(affines).astype(np.float32),
        np.ones(n, np.float32),
        names,
        meta,
    )


def image_inputs(paths: list[str], box: Box | None, size: int, fmt: str) -> Inputs:
    """Image files, each cropped whole (or around `box`), for a model of format `fmt`'s joints."""
    crops, affines = zip(*(_crop_image(Path(p), box, size) for p in paths))
    names = [Path(p).name for p in paths]
    return Inputs(
        _poseset(list(crops), list(affines), names, fmt),
        [Path(p) for p in paths],
        fmt,
        box,
        show_crop=box is not None,
    )


def _first_entries(records: list, unboxed: list[tuple[int, str, Path]], n: int) -> list:
    """The split's first `n` entries in file order: its records, and (name, image) for those
    without a person box (`Annotations.unboxed`, at their positions)."""
    extra = {pos: (name, image) for pos, name, image in unboxed}
    rest, entries = iter(records), []
    for pos in range(min(n, len(records) + len(extra))):
        entries.append(extra[pos] if pos in extra else next(rest))
    return entries


def data_inputs(data: str, split: str, n: int, size: int) -> Inputs:
    """The first `n` records of `split` of `data`, cropped around the dataset's own person boxes;
    a record without one (too few annotated joints: training skips it) is predicted on the whole
    image (counted in `Inputs.whole`)."""
    fmt, path, _ = parse_data(data)
    if path is None:  # a generated format (no files): made at crop size, the crop is the original
        poses = load_poses(data, split, size)
        count = min(n, len(poses))
        return Inputs(poses.select(np.arange(count)), [None] * count, fmt)
    fmt_obj, annot = resolve(fmt or None, path, "train" if split in CARVED_SPLITS else split)
    ann = read_annotations(fmt_obj, annot, split)
    entries = _first_entries(ann.records, ann.unboxed, n)
    if not entries:
        raise DataError(f"no usable records in split {split!r}", source=str(annot), field="split")
    crops, affines, names, images = [], [], [], []
    for i, entry in enumerate(entries):
        field = f"record {i} ({entry[0] if isinstance(entry, tuple) else entry.name})"
        if isinstance(entry, tuple):  # no person box: the whole image
            crop, affine = _crop_image(entry[1], None, size, field=field)
            names.append(entry[0])
            images.append(entry[1])
        else:
            affine = crop_affine(entry.center, entry.box, size)
            _, crop, err = load_crop((i, str(entry.image), affine, size))
            if err:
                raise DataError(err, source=str(entry.image), field=field)
            names.append(entry.name)
            images.append(entry.image)
        crops.append(crop)
        affines.append(affine)
    poses = _poseset(crops, affines, names, fmt_obj.name)
    whole = sum(isinstance(e, tuple) for e in entries)
    return Inputs(poses, images, fmt_obj.name, show_crop=True, whole=whole)


@lru_cache(maxsize=4)
def _image_files(fmt: str, source: str, split: str) -> dict[str, Path]:
    """Record name -> image file of `split` of an annotation file (read once per process)."""
    return {r.name: r.image for r in read_annotations(fmt, Path(source), split).records}


def original_images(poses: PoseSet) -> list[Path | None]:
    """The image file each prepared sample was cropped from (its `meta`: format, annotation file
    and split name the records); None for a generated format (the crop is the image) or where
    the file is not on this machine."""
    meta = poses.meta
    fmt = meta.get("format")
    if (
        fmt not in FORMATS
        or not FORMATS.get(fmt).files
        or not meta.get("source")
        or (not meta.get("split"))
    ):
        return [None] * len(poses)
    try:
        files = _image_files(fmt, str(meta["source"]), str(meta["split"]))
    except (ConfigError, OSError, ValueError):
        return [None] * len(poses)
    paths = [files.get(name) for name in poses.names]
    return [p if p is not None and p.is_file() else None for p in paths]


def load_predictor(
    spec: ArchSpec, weights: str | Path, size: int, device: torch.device
) -> tuple[torch.nn.Module, ArchSpec]:
    """The network with `weights` loaded, on `device`, and the spec of the weights' joint count."""
    model, spec = load_model(spec, weights, size)
    return model.to(device), spec


def predict_joints(
    model: torch.nn.Module,
    spec: ArchSpec,
    inputs: Inputs,
    size: int,
    device: torch.device,
    flip: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """(joints [N, J, 3] in original pixels, confidences [N, J]) of every input crop."""
    check_input_size(spec, inputs.poses, size)
    return predict(model, inputs.poses, device=device, flip=flip)


def _out_names(names: list[str]) -> list[str]:
    """File stems for the outputs: the image's stem, numbered where two images share one."""
    stems, seen = [], set()
    for k, name in enumerate(names):
        stem = Path(name).stem or f"image{k}"
        stems.append(stem if stem not in seen else f"{stem}-{k}")
        seen.add(stems[-1])
    return stems


def _record(
    spec: ArchSpec,
    inputs: Inputs,
    k: int,
    size: int,
    joints: np.ndarray,
    conf: np.ndarray,
    *,
    weights: str | Path,
    flip: bool,
    threshold: float,
) -> dict:
    """One image's JSON: joints [x, y] in original pixels (pixel i's centre at i) and their
    confidences."""
    original = inputs.originals[k]
    return {
        "image": str(original.resolve()) if original is not None else None,
        "name": inputs.poses.names[k],
        "arch_id": spec.arch_id,
        "weights": str(weights),
        "format": inputs.fmt,
        "input_size": size,
        "flip": bool(flip),
        "box": list(inputs.box) if inputs.box else None,
        "threshold": threshold,
        "crop_affine": inputs.poses.affine[k].tolist(),
        "joint_names": list(FORMATS.get(inputs.fmt).joint_names),
        "joints": np.round(joints[:, :2].astype(np.float64), 2).tolist(),
        "confidences": np.round(conf.astype(np.float64), 4).tolist(),
    }


def crop_square(affine: np.ndarray, size: int) -> tuple[float, float, float, float]:
    """The cropped square (x0, y0, x1, y1: the crop's outer pixel edges) in original pixels."""
    corners = crop_to_original(np.array([[-0.5, -0.5], [size - 0.5, size - 0.5]]), affine)
    return (float(corners[0, 0]), float(corners[0, 1]), float(corners[1, 0]), float(corners[1, 1]))


def _original(inputs: Inputs, k: int) -> Image.Image | np.ndarray:
    """The image the k-th prediction is drawn on (decoded fully here; the crop used a reduced
    draft)."""
    path = inputs.originals[k]
    if path is None:
        return np.asarray(inputs.poses.images[k])
    with Image.open(path) as img:
        return img.convert("RGB")


def write_outputs(
    out: Path,
    spec: ArchSpec,
    inputs: Inputs,
    size: int,
    joints: np.ndarray,
    conf: np.ndarray,
    *,
    weights: str | Path,
    flip: bool,
    threshold: float,
    labels: bool = False,
) -> Iterator[Written]:
    """OUT/NAME.png (the skeleton on the original image, `trainers.draw.draw_prediction`: legend,
    cropped square, confidences with `labels`) and OUT/NAME.json for every input.

    A generator, yielding after each image is written, so that the caller can report each one as
    it lands (a failure half-way leaves the earlier ones reported)."""
    out.mkdir(parents=True, exist_ok=True)
    skel = skeleton(inputs.fmt)
    for k, stem in enumerate(_out_names(inputs.poses.names)):
        original = _original(inputs, k)
        box = crop_square(inputs.poses.affine[k], size) if inputs.show_crop else None
        png = draw_prediction(
            original, joints[k], conf[k], skel, threshold=threshold, crop_box=box, labels=labels
        )
        atomic_write(out / f"{stem}.png", partial(png.save, format="PNG"))
        record = _record(
            spec,
            inputs,
            k,
            size,
            joints[k],
            conf[k],
            weights=weights,
            flip=flip,
            threshold=threshold,
        )
        w, h = original.size if isinstance(original, Image.Image) else original.shape[1::-1]
        record["png_scale"] = draw_scale(w, h)
        save_json(record, out / f"{stem}.json")
        yield Written(out / stem, int((conf[k] >= threshold).sum()), len(conf[k]))
