"""Annotation readers: files on disk -> raw `Record`s (image path, joints in original pixels, box, norm).

Each reader knows one format; none decodes images (that is `trainers.data.load_poses`' job, so a
subset is chosen before any JPEG is opened). Joints are (J, 3): x, y, v with v = 1 annotated and
0 not; unannotated joints get x = y = 0 whatever the file held.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from space.errors import ConfigError
from trainers.crop import BOX_MARGIN

log = logging.getLogger(__name__)


class DataError(ConfigError):
    """Bad data on disk: missing or corrupt image, wrong .mat key or shape, JSON missing fields."""


LSP_JOINTS = ["r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "r_wrist", "r_elbow",
              "r_shoulder", "l_shoulder", "l_elbow", "l_wrist", "neck", "head_top"]
LSP_FLIP = [(0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9)]
MPII_JOINTS = ["r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax",
               "upper_neck", "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist"]
MPII_FLIP = [(0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)]
COCO_JOINTS = ["nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow",
               "r_elbow", "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle"]
COCO_FLIP = [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)]

# LSP torso size for PCK: right shoulder to left hip. When one is missing: the other diagonal
# (left shoulder to right hip); when both are, TORSO_PER_EXTENT * the annotated joints' extent
# (the median torso / extent ratio over LSPET samples with both torso joints annotated is 0.405).
TORSO_PER_EXTENT = 0.4
# MPII PCKh head size = 0.6 * head-box diagonal (MPII's SC_BIAS). Without a head box, the box is
# taken as a square of side dist(head top, upper neck), so 0.6 * sqrt(2) * that distance.
HEAD_PER_SEGMENT = 0.6 * math.sqrt(2.0)


@dataclass
class Record:
    name: str                 # image file name (shown in errors, stored in PoseSet.names)
    image: Path               # image file
    joints: np.ndarray        # (J, 3) float64 original pixels, v = 1 annotated
    center: np.ndarray        # (2,) crop centre in original pixels
    box: float                # side of the square crop in original pixels
    norm: float               # metric normaliser in original pixels
    norm_estimated: bool = False


@dataclass
class Annotations:
    records: list[Record]
    dataset: str              # lsp, lspet, mpii, coco
    joint_names: list[str]
    flip_pairs: list[tuple[int, int]]
    metric: str               # pck, pckh, oks
    norm_kind: str            # torso, head, sqrt_area
    split_note: str = ""
    skipped: int = 0          # annotation entries skipped as bad (skip_bad=True)
    extra: dict[str, Any] = field(default_factory=dict)


def bad_record(what: str, err: Exception, src: str, field: str) -> DataError:
    """One record of a JSON annotation file is malformed: name the missing key or the bad value."""
    detail = err.args[0] if isinstance(err, KeyError) else err
    return DataError(f"{what} ({type(err).__name__}: {detail})", source=src, field=field)


def _clean_joints(j: np.ndarray) -> np.ndarray:
    j = np.asarray(j, dtype=np.float64).copy()
    bad = ~np.isfinite(j[:, :2]).all(axis=1)
    j[bad, 2] = 0.0
    j[j[:, 2] <= 0, :3] = 0.0
    j[:, 2] = (j[:, 2] > 0).astype(np.float64)
    return j


def box_from_joints(joints: np.ndarray) -> tuple[np.ndarray, float, float] | None:
    """Centre, crop side and raw extent of the annotated joints; None with fewer than two."""
    vis = joints[:, 2] > 0
    if vis.sum() < 2:
        return None
    xy = joints[vis, :2]
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    extent = float(max(hi - lo))
    if extent <= 0:
        return None
    return (lo + hi) / 2.0, extent * BOX_MARGIN, extent


def _dist(j: np.ndarray, a: int, b: int) -> float | None:
    if j[a, 2] > 0 and j[b, 2] > 0:
        d = float(np.hypot(*(j[a, :2] - j[b, :2])))
        return d if d > 0 else None
    return None


# ---------------------------------------------------------------- LSP / LSPET joints.mat

def _lsp_images_dir(mat: Path) -> Path:
    return mat.parent / "images"


def read_lsp(mat: Path, split: str, *, skip_bad: bool = False) -> Annotations:
    """LSP (3, 14, N; all annotated) or LSPET (14, 3, N; flag 1 = annotated), told apart by shape.

    Splits: LSP train = im0001-im1000, test = im1001-im2000; LSPET train = all but the last 1000,
    val = test = the last 1000.
    """
    import scipy.io

    src = str(mat)
    try:
        m = scipy.io.loadmat(str(mat))
    except FileNotFoundError as err:
        raise DataError("annotation file not found", source=src) from err
    except Exception as err:  # scipy raises several types for a non-.mat file
        raise DataError(f"cannot read .mat file ({type(err).__name__}: {err})", source=src) from err
    if "joints" not in m:
        keys = sorted(k for k in m if not k.startswith("__"))
        raise DataError(f"no 'joints' array (keys: {keys})", source=src, field="joints")
    arr = np.asarray(m["joints"], dtype=np.float64)
    if arr.ndim == 3 and arr.shape[:2] == (14, 3):
        dataset = "lspet"
        joints = arr.transpose(2, 0, 1).copy()  # (N, 14, 3), flag 1 = annotated
    elif arr.ndim == 3 and arr.shape[:2] == (3, 14):
        dataset = "lsp"
        joints = arr.transpose(2, 1, 0).copy()  # flag = occluded in LSP; every joint is annotated
        joints[:, :, 2] = 1.0
    else:
        raise DataError(f"'joints' has shape {arr.shape}; expected (14, 3, N) (LSPET) or (3, 14, N) (LSP)",
                        source=src, field="joints")
    n = joints.shape[0]
    if dataset == "lsp":
        digits, note = 4, "LSP: train = im0001-im1000, test = im1001-im2000"
        ranges = {"train": range(0, min(1000, n)), "test": range(1000, n)}
    else:
        digits, note = 5, "LSPET: train = all but the last 1000 images, val = test = the last 1000"
        ranges = {"train": range(0, max(0, n - 1000)), "val": range(max(0, n - 1000), n)}
        ranges["test"] = ranges["val"]
    if split not in ranges:
        raise ConfigError(f"unknown split {split!r} for {dataset} (choose from {sorted(ranges)})",
                          source=src, field="split")
    images = _lsp_images_dir(mat)
    records, skipped, dropped = [], 0, 0
    for i in ranges[split]:
        name = f"im{i + 1:0{digits}d}.jpg"
        j = _clean_joints(joints[i])
        box = box_from_joints(j)
        if box is None:
            dropped += 1  # nothing to crop around or score: not an error, just unusable
            continue
        center, side, extent = box
        norm, est = _dist(j, 8, 3), False
        if norm is None:
            norm, est = _dist(j, 9, 2), True
        if norm is None:
            norm = TORSO_PER_EXTENT * extent
        records.append(Record(name, images / name, j, center, side, norm, est))
    return Annotations(records, dataset, list(LSP_JOINTS), list(LSP_FLIP), "pck", "torso", note, skipped,
                       {"dropped_no_joints": dropped})


# ---------------------------------------------------------------- MPII

def _mpii_images_dir(annot: Path) -> Path:
    for cand in (annot.parent / "images", annot.parent.parent / "images"):
        if cand.is_dir():
            return cand
    return annot.parent / "images"


def _mpii_record(name: str, images: Path, part: np.ndarray, center: Any, scale: float,
                 head: float | None) -> Record:
    part = np.asarray(part, dtype=np.float64).reshape(16, -1)[:, :2]
    # Ports store unannotated MPII joints as (0, 0) or (-1, -1); occluded ones keep coordinates.
    annotated = (part[:, 0] > 0) | (part[:, 1] > 0)
    j = _clean_joints(np.concatenate([part, annotated[:, None].astype(np.float64)], axis=1))
    c = np.asarray(center, dtype=np.float64).reshape(2).copy()
    scale = float(scale)
    if not (scale > 0 and np.isfinite(c).all()):
        raise ValueError(f"bad center/scale ({c.tolist()}, {scale})")
    # The usual MPII recipe (Newell et al.): person height = 200 * scale, centre moved down a little.
    c[1] += 15 * scale
    est = head is None or not head > 0
    if est:
        d = _dist(j, 9, 8)
        head = HEAD_PER_SEGMENT * d if d is not None else 0.1 * 200 * scale
    return Record(name, images / name, j, c, 200 * scale * 1.25, float(head), est)


def read_mpii_json(path: Path, split: str, *, skip_bad: bool = False) -> Annotations:
    """MPII JSON list as most ports use it.

    Either the stacked-hourglass-port list (img_paths, joint_self (16x3), objpos, scale_provided,
    isValidation: train = 0, val = test = 1) or the HRNet list (image, joints (16x2), center, scale;
    the file is the split). Head size: `headboxes` when present, else estimated (see HEAD_PER_SEGMENT).
    """
    src = str(path)
    data = _load_json(path)
    if not isinstance(data, list):
        raise DataError("expected a JSON list of MPII annotations", source=src)
    images = _mpii_images_dir(path)
    want_val = split in ("val", "valid", "test")
    if split not in ("train", "val", "valid", "test"):
        raise ConfigError(f"unknown split {split!r} for mpii (train, val, test)", source=src, field="split")
    records, skipped = [], 0
    for i, e in enumerate(data):
        try:
            if not isinstance(e, dict):
                raise KeyError("entry is not an object")
            if "joint_self" in e:
                if bool(e["isValidation"]) != want_val:
                    continue
                name = str(e["img_paths"])
                head = None
                if "headboxes" in e:
                    hb = np.asarray(e["headboxes"], dtype=np.float64).reshape(2, 2)
                    head = 0.6 * float(np.hypot(*(hb[1] - hb[0])))
                rec = _mpii_record(name, images, e["joint_self"], e["objpos"], e["scale_provided"], head)
            else:
                name = str(e["image"])
                rec = _mpii_record(name, images, e["joints"], e["center"], e["scale"], None)
        except (KeyError, TypeError, ValueError) as err:
            if not skip_bad:
                raise bad_record("bad MPII entry", err, src, f"record {i}") from err
            skipped += 1
            continue
        records.append(rec)
    return Annotations(records, "mpii", list(MPII_JOINTS), list(MPII_FLIP), "pckh", "head",
                       "MPII JSON: isValidation 0 = train, 1 = val = test", skipped)


def read_mpii_h5(path: Path, split: str, *, skip_bad: bool = False) -> Annotations:
    """h5 of the PyTorch stacked-hourglass port: center, scale, part, visible, imgname[, normalize].

    The file is the split (train.h5 / valid.h5). A joint is annotated when its coordinates are
    positive (`visible` only says whether it is occluded). Images from images/ beside the file
    (or beside its folder, for the port's annot/ layout).
    """
    import h5py

    src = str(path)
    try:
        f = h5py.File(str(path), "r")
    except FileNotFoundError as err:
        raise DataError("annotation file not found", source=src) from err
    except OSError as err:
        raise DataError(f"cannot read .h5 file ({err})", source=src) from err
    with f:
        for key in ("center", "scale", "part", "imgname"):
            if key not in f:
                raise DataError(f"missing dataset '{key}' (have {sorted(f.keys())})", source=src, field=key)
        center, scale, part = f["center"][()], f["scale"][()], f["part"][()]
        names = f["imgname"][()]
        normalize = f["normalize"][()] if "normalize" in f else None
    n = len(names)
    if part.shape[1:] != (16, 2) or center.shape != (n, 2) or scale.shape[0] != n:
        raise DataError(f"shapes part {part.shape}, center {center.shape}, scale {scale.shape} "
                        f"for {n} images; expected (N,16,2), (N,2), (N,)", source=src, field="part")
    images = _mpii_images_dir(path)
    records, skipped = [], 0
    for i in range(n):
        name = names[i].decode() if isinstance(names[i], bytes) else str(names[i])
        head = float(normalize[i]) if normalize is not None else None
        try:
            records.append(_mpii_record(name, images, part[i], center[i], float(scale[i]), head))
        except ValueError as err:
            if not skip_bad:
                raise DataError(str(err), source=src, field=f"record {i} ({name})") from err
            skipped += 1
    return Annotations(records, "mpii", list(MPII_JOINTS), list(MPII_FLIP), "pckh", "head",
                       "MPII h5: the file is the split", skipped)


# ---------------------------------------------------------------- COCO

def _coco_images_dir(path: Path, data: dict) -> Path:
    stem = path.stem.split("_")[-1]  # person_keypoints_val2017 -> val2017
    for cand in (path.parent / "images", path.parent.parent / stem, path.parent.parent / "images" / stem,
                 path.parent.parent / "images", path.parent / stem):
        if cand.is_dir():
            return cand
    return path.parent / "images"


def read_coco(path: Path, split: str, *, skip_bad: bool = False, data: dict | None = None) -> Annotations:
    """COCO person keypoints: one record per non-crowd annotation with num_keypoints > 0, cropped
    around its bbox; v in {1, 2} is annotated; norm = sqrt(area) (OKS scale). The file is the split."""
    src = str(path)
    data = _load_json(path) if data is None else data
    for key in ("images", "annotations"):
        if key not in data:
            raise DataError(f"missing '{key}'", source=src, field=key)
    files = {}
    for k, im in enumerate(data["images"]):
        try:
            files[im["id"]] = str(im["file_name"])
        except (KeyError, TypeError) as err:
            raise DataError(f"image entry missing {err}", source=src, field=f"images[{k}]") from err
    images = _coco_images_dir(path, data)
    records, skipped = [], 0
    for i, a in enumerate(data["annotations"]):
        try:
            if a.get("iscrowd", 0) or int(a.get("num_keypoints", 0)) <= 0:
                continue
            kp = np.asarray(a["keypoints"], dtype=np.float64).reshape(17, 3)
            x, y, w, h = (float(v) for v in a["bbox"])
            name = files[a["image_id"]]
            area = float(a.get("area", w * h))
            if not (w > 0 and h > 0):
                raise ValueError(f"empty bbox {a['bbox']}")
        except (KeyError, TypeError, ValueError) as err:
            if not skip_bad:
                raise bad_record("bad annotation", err, src, f"annotations[{i}]") from err
            skipped += 1
            continue
        j = _clean_joints(kp)
        center = np.array([x + w / 2.0, y + h / 2.0])
        records.append(Record(name, images / name, j, center, max(w, h) * 1.25, math.sqrt(max(area, 1.0))))
    return Annotations(records, "coco", list(COCO_JOINTS), list(COCO_FLIP), "oks", "sqrt_area",
                       "COCO: the file is the split", skipped)


def _load_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError as err:
        raise DataError("annotation file not found", source=str(path)) from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"not valid JSON ({err})", source=str(path)) from err


# ---------------------------------------------------------------- dispatch

FORMATS = ("lsp", "lspet", "mpii", "coco", "synthetic")


def resolve(fmt: str | None, path: Path, split: str) -> tuple[str, Path]:
    """Detect the format of `path` (or check the given one) and find its annotation file."""
    src = str(path)
    if not path.exists():
        raise ConfigError("data path does not exist", source=src, field="data")
    if path.is_dir():
        if (path / "joints.mat").is_file():
            found = "lsp", path / "joints.mat"
        elif any((path / d / f"{'train' if split == 'train' else 'valid'}.h5").is_file() for d in ("annot", ".")):
            name = "train.h5" if split == "train" else "valid.h5"
            found = "mpii", next(p for p in (path / "annot" / name, path / name) if p.is_file())
        elif (path / "annotations").is_dir():
            part = "train2017" if split == "train" else "val2017"
            found = "coco", path / "annotations" / f"person_keypoints_{part}.json"
        else:
            raise ConfigError("cannot tell the dataset format of this folder (expected joints.mat, "
                              "annot/train.h5 or annotations/person_keypoints_*.json)", source=src, field="data")
    else:
        suffix = path.suffix.lower()
        if suffix == ".mat":
            found = "lsp", path
        elif suffix in (".h5", ".hdf5"):
            found = "mpii", path
        elif suffix == ".json":
            found = ("coco" if _first_char(path) == "{" else "mpii"), path
        else:
            raise ConfigError(f"unknown data file type {suffix!r} (.mat, .json, .h5)", source=src, field="data")
    if fmt is not None and fmt != found[0] and not (fmt == "lspet" and found[0] == "lsp"):
        raise ConfigError(f"format {fmt!r} given but the file looks like {found[0]}", source=src, field="data")
    return found


def _first_char(path: Path) -> str:
    """'[' for an MPII list, '{' for a COCO dict, without parsing a possibly huge file twice."""
    with open(path, "rb") as fh:
        head = fh.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head[:1].decode("ascii", "replace")


def read_annotations(fmt: str, annot: Path, split: str, *, skip_bad: bool = False) -> Annotations:
    if fmt == "lsp":
        return read_lsp(annot, split, skip_bad=skip_bad)
    if fmt == "coco":
        return read_coco(annot, split, skip_bad=skip_bad)
    if annot.suffix.lower() in (".h5", ".hdf5"):
        return read_mpii_h5(annot, split, skip_bad=skip_bad)
    return read_mpii_json(annot, split, skip_bad=skip_bad)
