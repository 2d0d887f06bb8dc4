"""COCO person keypoints: one record per non-crowd annotation with keypoints."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from trainers.formats.base import (
    FORMATS,
    Annotations,
    DataError,
    DatasetFormat,
    Record,
)
from trainers.formats.helpers import clean_joints, first_char, load_json, read_entries

COCO_JOINTS = [
    "nose",
    "l_eye",
    "r_eye",
    "l_ear",
    "r_ear",
    "l_shoulder",
    "r_shoulder",
    "l_elbow",
    "r_elbow",
    "l_wrist",
    "r_wrist",
    "l_hip",
    "r_hip",
    "l_knee",
    "r_knee",
    "l_ankle",
    "r_ankle",
]
COCO_FLIP = [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)]
# Skeleton (joint index pairs) for drawing (trainers.draw).
COCO_LIMBS = [
    (15, 13),
    (13, 11),
    (16, 14),
    (14, 12),
    (11, 12),
    (5, 11),
    (6, 12),
    (5, 6),
    (5, 7),
    (6, 8),
    (7, 9),
    (8, 10),
    (1, 2),
    (0, 1),
    (0, 2),
    (1, 3),
    (2, 4),
    (3, 5),
    (4, 6),
]


def _coco_images_dir(path: Path) -> Path:
    stem = path.stem.split("_")[-1]  # person_keypoints_val2017 -> val2017
    for cand in (
        path.parent / "images",
        path.parent.parent / stem,
        path.parent.parent / "images" / stem,
        path.parent.parent / "images",
        path.parent / stem,
    ):
        if cand.is_dir():
            return cand
    return path.parent / "images"


def _coco_lists(data: Any, src: str) -> tuple[list, list]:
    """The file's "images" and "annotations" lists, checked for type (one-line errors, no
    traceback)."""
    if not isinstance(data, dict):
        raise DataError(
            f"expected a JSON object with images and annotations, got a {type(data).__name__}",
            source=src,
        )
    lists = []
    for key in ("images", "annotations"):
        if key not in data:
            raise DataError(f"missing '{key}'", source=src, field=key)
        if not isinstance(data[key], list):
            raise DataError(
                f"must be a list, got {type(data[key]).__name__}", source=src, field=key
            )
        lists.append(data[key])
    return lists[0], lists[1]


def _coco_files(images: list, src: str) -> dict[Any, str]:
    files = {}
    for k, im in enumerate(images):
        if not (isinstance(im, dict) and "id" in im and "file_name" in im):
            raise DataError(
                "image entry is not an object with 'id' and 'file_name'",
                source=src,
                field=f"images[{k}]",
            )
        files[im["id"]] = str(im["file_name"])
    return files


def _coco_record(a: Any, files: dict[Any, str], images: Path) -> Record | None:
    """One person annotation; None for a crowd or keypoint-less one (COCOeval ignores those too)."""
    if not isinstance(a, dict):
        raise TypeError("annotation is not an object")
    if a.get("iscrowd", 0) or int(a.get("num_keypoints", 0)) <= 0:
        return None
    kp = np.asarray(a["keypoints"], dtype=np.float64).reshape(17, 3)
    x, y, w, h = (float(v) for v in a["bbox"])
    name = files[a["image_id"]]
    area = float(a.get("area", w * h))
    if not (w > 0 and h > 0):
        raise ValueError(f"empty bbox {a['bbox']}")
    center = np.array([x + w / 2.0, y + h / 2.0])
    return Record(
        name,
        images / name,
        clean_joints(kp),
        center,
        max(w, h) * 1.25,
        math.sqrt(max(area, 1.0)),
        image_id=a["image_id"],
        annotation_id=a.get("id"),
    )


@FORMATS.register("coco")
class CocoFormat(DatasetFormat):
    """COCO person keypoints: one record per non-crowd annotation with num_keypoints > 0, cropped
    around its bbox; v in {1, 2} is annotated; norm = sqrt(area) (OKS scale). The file is the
    split; a folder holds annotations/person_keypoints_{train,val}2017.json."""

    name, metric, norm_kind = "coco", "oks", "sqrt_area"
    joint_names, flip_pairs, limbs = COCO_JOINTS, COCO_FLIP, COCO_LIMBS
    suffixes, folder_hint = (".json",), "annotations/person_keypoints_*.json"
    version = 1  # 1: records carry their image and annotation ids (meta) for COCOeval

    def detect(self, path: Path) -> bool:
        if path.is_dir():
            return (path / "annotations").is_dir()
        return path.suffix.lower() == ".json" and first_char(path) == "{"

    def annotation_file(self, path: Path, split: str) -> Path:
        if not path.is_dir():
            return path
        part = "train2017" if split == "train" else "val2017"
        return path / "annotations" / f"person_keypoints_{part}.json"

    def read(self, annot: Path, split: str, *, skip_bad: bool = False) -> Annotations:
        src = str(annot)
        image_list, ann_list = _coco_lists(load_json(annot), src)
        files = _coco_files(image_list, src)
        images = _coco_images_dir(annot)
        records, skipped = read_entries(
            ann_list,
            lambda a: _coco_record(a, files, images),
            "bad annotation",
            src,
            "annotations[{}]",
            skip_bad,
        )
        # resolved: the cache may hand this meta to a process started in another folder
        return self.annotations(
            records,
            "COCO: the file is the split",
            skipped,
            coco_annotation_file=str(annot.resolve()),
        )
