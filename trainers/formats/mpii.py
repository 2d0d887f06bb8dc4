"""MPII: a JSON list (stacked-hourglass-port or HRNet style) or the PyTorch port's h5 files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from space.errors import ConfigError
from trainers.formats.base import (
    FORMATS,
    Annotations,
    DataError,
    DatasetFormat,
    Record,
)
from trainers.formats.helpers import (
    clean_joints,
    first_char,
    joint_distance,
    load_json,
    read_entries,
)

MPII_JOINTS = [
    "r_ankle",
    "r_knee",
    "r_hip",
    "l_hip",
    "l_knee",
    "l_ankle",
    "pelvis",
    "thorax",
    "upper_neck",
    "head_top",
    "r_wrist",
    "r_elbow",
    "r_shoulder",
    "l_shoulder",
    "l_elbow",
    "l_wrist",
]
MPII_FLIP = [(0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)]
# Skeleton (joint index pairs) for drawing (trainers.draw).
MPII_LIMBS = [
    (0, 1),
    (1, 2),
    (2, 6),
    (6, 3),
    (3, 4),
    (4, 5),
    (6, 7),
    (7, 8),
    (8, 9),
    (10, 11),
    (11, 12),
    (12, 7),
    (7, 13),
    (13, 14),
    (14, 15),
]

# MPII PCKh head size without `normalize` or a head box: HEAD_PER_SEGMENT * dist(head top, upper
# neck). Measured on the MPII validation annotations, `normalize` (0.6 * head-box diagonal, MPII's
# SC_BIAS) / that distance has median 0.75 (5th-95th percentile 0.74-0.76). The earlier
# 0.6 * sqrt(2) (a square head box of side that distance) read heads about 13 % too large.
HEAD_PER_SEGMENT = 0.75


def _mpii_images_dir(annot: Path) -> Path:
    for cand in (annot.parent / "images", annot.parent.parent / "images"):
        if cand.is_dir():
            return cand
    return annot.parent / "images"


def _mpii_record(
    name: str, images: Path, part: np.ndarray, center: Any, scale: float, head: float | None
) -> Record:
    part = np.asarray(part, dtype=np.float64).reshape(16, -1)[:, :2]
    # Ports store unannotated MPII joints as (0, 0) or (-1, -1); occluded ones keep coordinates.
    annotated = (part[:, 0] > 0) | (part[:, 1] > 0)
    j = clean_joints(np.concatenate([part, annotated[:, None].astype(np.float64)], axis=1))
    c = np.asarray(center, dtype=np.float64).reshape(2).copy()
    scale = float(scale)
    if not (scale > 0 and np.isfinite(c).all()):
        raise ValueError(f"bad center/scale ({c.tolist()}, {scale})")
    # The usual MPII recipe (Newell et al.): person height = 200 * scale, centre a little lower.
    c[1] += 15 * scale
    est = head is None or not head > 0
    if est:
        d = joint_distance(j, 9, 8)
        head = HEAD_PER_SEGMENT * d if d is not None else 0.1 * 200 * scale
    return Record(name, images / name, j, c, 200 * scale * 1.25, float(head), est)


def _mpii_json_entry(e: Any, want_val: bool, images: Path) -> Record | None:
    """One entry of either MPII JSON style; None for an entry of the other split."""
    if not isinstance(e, dict):
        raise KeyError("entry is not an object")
    if "joint_self" not in e:  # HRNet style: the file is the split
        return _mpii_record(str(e["image"]), images, e["joints"], e["center"], e["scale"], None)
    if bool(e["isValidation"]) != want_val:
        return None
    head = None
    if "headboxes" in e:
        hb = np.asarray(e["headboxes"], dtype=np.float64).reshape(2, 2)
        head = 0.6 * float(np.hypot(*(hb[1] - hb[0])))
    return _mpii_record(
        str(e["img_paths"]), images, e["joint_self"], e["objpos"], e["scale_provided"], head
    )


def _read_mpii_h5_arrays(path: Path) -> tuple[np.ndarray, ...]:
    import h5py

    src = str(path)
    try:
        f = h5py.File(src, "r")
    except FileNotFoundError as err:
        raise DataError("annotation file not found", source=src) from err
    except OSError as err:
        raise DataError(f"cannot read .h5 file ({err})", source=src) from err
    with f:
        for key in ("center", "scale", "part", "imgname"):
            if key not in f:
                raise DataError(
                    f"missing dataset '{key}' (have {sorted(f.keys())})", source=src, field=key
                )
        center, scale, part = f["center"][()], f["scale"][()], f["part"][()]
        names = f["imgname"][()]
        normalize = f["normalize"][()] if "normalize" in f else None
    n = len(names)
    if part.shape[1:] != (16, 2) or center.shape != (n, 2) or scale.shape[0] != n:
        raise DataError(
            f"shapes part {part.shape}, center {center.shape}, scale {scale.shape} "
            f"for {n} images; expected (N,16,2), (N,2), (N,)",
            source=src,
            field="part",
        )
    return center, scale, part, names, normalize


@FORMATS.register("mpii")
class MpiiFormat(DatasetFormat):
    """MPII as a JSON list (stacked-hourglass-port or HRNet style) or the PyTorch port's h5 files.

    A folder holds annot/train.h5 and annot/valid.h5 (or both beside it): train.h5 is the train
    split, valid.h5 val and test. Images from images/ beside the file or beside its folder.
    """

    name, metric, norm_kind = "mpii", "pckh", "head"
    joint_names, flip_pairs, limbs = MPII_JOINTS, MPII_FLIP, MPII_LIMBS
    suffixes, folder_hint = (".json", ".h5", ".hdf5"), "annot/train.h5"
    version = 1  # 1: head size without a head box = HEAD_PER_SEGMENT (0.75) x the head segment

    def detect(self, path: Path) -> bool:
        if path.is_dir():
            return any(
                (path / d / n).is_file() for d in ("annot", ".") for n in ("train.h5", "valid.h5")
            )
        suffix = path.suffix.lower()
        return suffix in (".h5", ".hdf5") or (suffix == ".json" and first_char(path) != "{")

    def annotation_file(self, path: Path, split: str) -> Path:
        if not path.is_dir():
            return path
        name = "train.h5" if split == "train" else "valid.h5"
        for cand in (path / "annot" / name, path / name):
            if cand.is_file():
                return cand
        raise DataError(
            f"{name} is missing for the {split!r} split (looked for annot/{name} and {name})",
            source=str(path),
            field="data",
        )

    def read(self, annot: Path, split: str, *, skip_bad: bool = False) -> Annotations:
        if annot.suffix.lower() in (".h5", ".hdf5"):
            return self.read_h5(annot, skip_bad)
        return self.read_json(annot, split, skip_bad)

    def read_json(self, path: Path, split: str, skip_bad: bool) -> Annotations:
        """Stacked-hourglass-port list (img_paths, joint_self (16x3), objpos, scale_provided,
        isValidation: train = 0, val = test = 1) or HRNet list (image, joints (16x2), center, scale;
        the file is the split). Head size: `headboxes` when present, else HEAD_PER_SEGMENT."""
        src = str(path)
        data = load_json(path)
        if not isinstance(data, list):
            raise DataError("expected a JSON list of MPII annotations", source=src)
        if split not in ("train", "val", "valid", "test"):
            raise ConfigError(
                f"unknown split {split!r} for mpii (train, val, test)", source=src, field="split"
            )
        images, want_val = _mpii_images_dir(path), split != "train"
        records, skipped = read_entries(
            data,
            lambda e: _mpii_json_entry(e, want_val, images),
            "bad MPII entry",
            src,
            "record {}",
            skip_bad,
        )
        return self.annotations(
            records, "MPII JSON: isValidation 0 = train, 1 = val = test", skipped
        )

    def read_h5(self, path: Path, skip_bad: bool) -> Annotations:
        """h5 of the PyTorch stacked-hourglass port: center, scale, part, visible, imgname and
        optionally normalize.

        The file is the split. A joint is annotated when its coordinates are positive (`visible`
        only says whether it is occluded)."""
        center, scale, part, names, normalize = _read_mpii_h5_arrays(path)
        images = _mpii_images_dir(path)
        records, skipped = [], 0
        for i in range(len(names)):
            name = names[i].decode() if isinstance(names[i], bytes) else str(names[i])
            head = float(normalize[i]) if normalize is not None else None
            try:
                records.append(
                    _mpii_record(name, images, part[i], center[i], float(scale[i]), head)
                )
            except ValueError as err:
                if not skip_bad:
                    raise DataError(
                        str(err), source=str(path), field=f"record {i} ({name})"
                    ) from err
                skipped += 1
        return self.annotations(records, "MPII h5: the file is the split", skipped)
