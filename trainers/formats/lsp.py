"""LSP and LSPET: one joints.mat reader, told apart by the array's shape (`lsp` and `lspet`)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from space.errors import ConfigError
from trainers.formats.base import (
    FORMATS,
    Annotations,
    DataError,
    DatasetFormat,
    Record,
)
from trainers.formats.helpers import box_from_joints, clean_joints, joint_distance

LSP_JOINTS = [
    "r_ankle",
    "r_knee",
    "r_hip",
    "l_hip",
    "l_knee",
    "l_ankle",
    "r_wrist",
    "r_elbow",
    "r_shoulder",
    "l_shoulder",
    "l_elbow",
    "l_wrist",
    "neck",
    "head_top",
]
LSP_FLIP = [(0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9)]
# Skeleton (joint index pairs) for drawing (trainers.draw); a limb's side follows from its joints'
# names.
LSP_LIMBS = [
    (0, 1),
    (1, 2),
    (3, 4),
    (4, 5),
    (2, 3),
    (8, 2),
    (9, 3),
    (6, 7),
    (7, 8),
    (8, 12),
    (9, 12),
    (9, 10),
    (10, 11),
    (12, 13),
]

# LSP torso size for PCK: right shoulder to left hip. When one is missing: the other diagonal
# (left shoulder to right hip); when both are, TORSO_PER_EXTENT * the annotated joints' extent
# (the median torso / extent ratio over LSPET samples with both torso joints annotated is 0.405).
TORSO_PER_EXTENT = 0.4


@functools.lru_cache(maxsize=4)
def _lsp_mat(mat: str, mtime_ns: int, size: int) -> tuple[str, np.ndarray]:
    """('lsp' | 'lspet', (N, 14, 3) joints, read-only); memoised: detection and reading both
    need it."""
    import scipy.io

    try:
        m = scipy.io.loadmat(mat)
    except FileNotFoundError as err:
        raise DataError("annotation file not found", source=mat) from err
    except Exception as err:  # scipy raises several types for a non-.mat file
        raise DataError(f"cannot read .mat file ({type(err).__name__}: {err})", source=mat) from err
    if "joints" not in m:
        keys = sorted(k for k in m if not k.startswith("__"))
        raise DataError(f"no 'joints' array (keys: {keys})", source=mat, field="joints")
    arr = np.asarray(m["joints"], dtype=np.float64)
    if arr.ndim == 3 and arr.shape[:2] == (14, 3):
        # (N, 14, 3), flag 1 = annotated
        dataset, joints = "lspet", arr.transpose(2, 0, 1).copy()
    elif arr.ndim == 3 and arr.shape[:2] == (3, 14):
        # LSP's flag means occluded, not unannotated: every joint is annotated
        dataset, joints = "lsp", arr.transpose(2, 1, 0).copy()
        joints[:, :, 2] = 1.0
    else:
        raise DataError(
            f"'joints' has shape {arr.shape}; expected (14, 3, N) (LSPET) or (3, 14, N) (LSP)",
            source=mat,
            field="joints",
        )
    joints.flags.writeable = False
    return dataset, joints


def _read_lsp_mat(mat: Path) -> tuple[str, np.ndarray]:
    try:
        st = mat.stat()
    except FileNotFoundError as err:
        raise DataError("annotation file not found", source=str(mat)) from err
    return _lsp_mat(str(mat), st.st_mtime_ns, st.st_size)  # a changed file is read again


def _lsp_ranges(dataset: str, n: int) -> tuple[dict[str, range], int, str]:
    if dataset == "lsp":
        return (
            {"train": range(0, min(1000, n)), "test": range(1000, n)},
            4,
            "LSP: train = im0001-im1000, test = im1001-im2000",
        )
    val = range(max(0, n - 1000), n)
    return (
        {"train": range(0, max(0, n - 1000)), "val": val, "test": val},
        5,
        "LSPET: train = all but the last 1000 images, val = test = the last 1000",
    )


def _torso(j: np.ndarray, extent: float) -> tuple[float, bool]:
    """(torso size, whether it is an estimate): see TORSO_PER_EXTENT."""
    norm = joint_distance(j, 8, 3)
    if norm is not None:
        return norm, False
    norm = joint_distance(j, 9, 2)
    return (norm if norm is not None else TORSO_PER_EXTENT * extent), True


@FORMATS.register("lsp")
class LspFormat(DatasetFormat):
    """LSP (3, 14, N; all annotated) or LSPET (14, 3, N; flag 1 = annotated) joints.mat, told apart
    by shape, so `lsp` and `lspet` name the same format. Images: images/ beside the .mat.

    Splits: LSP train = im0001-im1000, test = im1001-im2000 (val carved from train); LSPET
    train = all but the last 1000, val = test = the last 1000.
    """

    name, metric, norm_kind = "lsp", "pck", "torso"
    joint_names, flip_pairs, limbs = LSP_JOINTS, LSP_FLIP, LSP_LIMBS
    suffixes, folder_hint = (".mat",), "joints.mat"

    def detect(self, path: Path) -> bool:
        if path.is_dir():
            return (path / "joints.mat").is_file()
        return path.suffix.lower() == ".mat"

    def annotation_file(self, path: Path, split: str) -> Path:
        return path / "joints.mat" if path.is_dir() else path

    def native_splits(self, annot: Path) -> tuple[str, ...]:
        dataset, joints = _read_lsp_mat(annot)
        return tuple(_lsp_ranges(dataset, len(joints))[0])

    def read(self, annot: Path, split: str, *, skip_bad: bool = False) -> Annotations:
        dataset, joints = _read_lsp_mat(annot)
        ranges, digits, note = _lsp_ranges(dataset, len(joints))
        if split not in ranges:
            choices = sorted(set(ranges) | {"val"})  # LSP's val is carved from train
            raise ConfigError(
                f"unknown split {split!r} for {dataset} (choose from {choices})",
                source=str(annot),
                field="split",
            )
        images = annot.parent / "images"
        records, unboxed = [], []
        for pos, i in enumerate(ranges[split]):
            name = f"im{i + 1:0{digits}d}.jpg"
            j = clean_joints(joints[i])
            box = box_from_joints(j)
            if box is None:  # nothing to crop around or score: not an error, just no record
                unboxed.append((pos, name, images / name))
                continue
            center, side, extent = box
            norm, est = _torso(j, extent)
            records.append(Record(name, images / name, j, center, side, norm, est))
        ann = self.annotations(records, note, dataset=dataset, dropped_no_joints=len(unboxed))
        ann.unboxed = unboxed
        return ann


FORMATS.register("lspet")(LspFormat)
