"""Annotation readers: files on disk -> raw `Record`s (image path, joints in original pixels, box, norm).

Every dataset format is a `DatasetFormat` class registered in `FORMATS` (the `space.registry` style):

    @FORMATS.register("toy")
    class ToyFormat(DatasetFormat):
        joint_names, flip_pairs, metric, norm_kind = [...], [...], "pck", "torso"
        def detect(self, path): ...            # is this folder or file mine?
        def annotation_file(self, path, split): ...
        def read(self, annot, split, *, skip_bad=False): ...   # -> Annotations

A format knows how to detect itself, where its annotation file for a split is, its native splits,
joint names, flip pairs and metric, and how to read records. None decodes images (that is
`trainers.data.load_poses`' job, so a subset is chosen before any JPEG is opened). Joints are
(J, 3): x, y, v with v = 1 annotated and 0 not; unannotated joints get x = y = 0 whatever the
file held. A dataset without a val split gets one carved from its train split (`carve_val`).
"""
from __future__ import annotations

import functools
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from space.errors import ConfigError
from space.registry import Registry
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
# Skeletons (joint index pairs) for drawing (trainers.draw); a limb's side follows from its joints' names.
LSP_LIMBS = [(0, 1), (1, 2), (3, 4), (4, 5), (2, 3), (8, 2), (9, 3), (6, 7), (7, 8), (8, 12), (9, 12),
             (9, 10), (10, 11), (12, 13)]
MPII_LIMBS = [(0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9), (10, 11), (11, 12),
              (12, 7), (7, 13), (13, 14), (14, 15)]
COCO_LIMBS = [(15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
              (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6)]

# LSP torso size for PCK: right shoulder to left hip. When one is missing: the other diagonal
# (left shoulder to right hip); when both are, TORSO_PER_EXTENT * the annotated joints' extent
# (the median torso / extent ratio over LSPET samples with both torso joints annotated is 0.405).
TORSO_PER_EXTENT = 0.4
# MPII PCKh head size without `normalize` or a head box: HEAD_PER_SEGMENT * dist(head top, upper
# neck). Measured on the MPII validation annotations, `normalize` (0.6 * head-box diagonal, MPII's
# SC_BIAS) / that distance has median 0.75 (5th-95th percentile 0.74-0.76). The earlier
# 0.6 * sqrt(2) (a square head box of side that distance) read heads about 13 % too large.
HEAD_PER_SEGMENT = 0.75
# A dataset without a val split (LSP) gets the last VAL_FRACTION of its train records as val, and
# train keeps the rest, so model selection never looks at the test split.
VAL_FRACTION = 0.1
# Splits carved from train on request, for datasets whose val split IS their test split (LSPET):
# selecting a checkpoint on them never looks at the test images (`launch.py finalize`, docs/data.md).
CARVED_SPLITS = {"train_carved": "train", "val_carved": "val"}


@dataclass
class Record:
    name: str                 # image file name (shown in errors, stored in PoseSet.names)
    image: Path               # image file
    joints: np.ndarray        # (J, 3) float64 original pixels, v = 1 annotated
    center: np.ndarray        # (2,) crop centre in original pixels
    box: float                # side of the square crop in original pixels
    norm: float               # metric normaliser in original pixels
    norm_estimated: bool = False
    image_id: Any = None      # COCO: the image and annotation ids, for the official evaluation
    annotation_id: Any = None


@dataclass
class Annotations:
    records: list[Record]
    dataset: str              # lsp, lspet, mpii, coco, ...
    joint_names: list[str]
    flip_pairs: list[tuple[int, int]]
    metric: str               # pck, pckh, oks
    norm_kind: str            # torso, head, sqrt_area
    split_note: str = ""
    skipped: int = 0          # annotation entries skipped as bad (skip_bad=True)
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- helpers for readers

def bad_record(what: str, err: Exception, src: str, field: str) -> DataError:
    """One record of a JSON annotation file is malformed: name the missing key or the bad value."""
    detail = err.args[0] if isinstance(err, KeyError) else err
    return DataError(f"{what} ({type(err).__name__}: {detail})", source=src, field=field)


def read_entries(entries: list, make: Callable[[Any], Record | None], what: str, src: str, field: str,
                 skip_bad: bool) -> tuple[list[Record], int]:
    """`make(entry)` for each entry of a JSON list (None: not a record of this split); a bad entry
    raises `bad_record` naming `field.format(i)`, or with `skip_bad` is skipped and counted."""
    records, skipped = [], 0
    for i, entry in enumerate(entries):
        try:
            rec = make(entry)
        except (KeyError, TypeError, ValueError) as err:
            if not skip_bad:
                raise bad_record(what, err, src, field.format(i)) from err
            skipped += 1
            continue
        if rec is not None:
            records.append(rec)
    return records, skipped


def clean_joints(j: np.ndarray) -> np.ndarray:
    """(J, 3) joints with v in {0, 1}; non-finite or unannotated joints become (0, 0, 0)."""
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


def load_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError as err:
        raise DataError("annotation file not found", source=str(path)) from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"not valid JSON ({err})", source=str(path)) from err


def _first_char(path: Path) -> str:
    """'[' for an MPII list, '{' for a COCO dict, without parsing a possibly huge file twice."""
    with open(path, "rb") as fh:
        head = fh.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head[:1].decode("ascii", "replace")


# ---------------------------------------------------------------- the registry

class FormatRegistry(Registry):
    """`Registry` of `DatasetFormat` classes; registering names the class (if it has no name yet)."""

    def register(self, name: str) -> Callable[[type], type]:
        add = super().register(name)

        def named(cls: type) -> type:
            if not getattr(cls, "name", ""):
                cls.name = name
            return add(cls)
        return named

    def unregister(self, name: str) -> None:
        """Drop a format again (tests and plugins that register one for a while)."""
        self._entries.pop(name, None)


FORMATS = FormatRegistry("data format")


class DatasetFormat:
    """One dataset format. Subclass, set the class attributes, implement `detect`, `read` (and
    `annotation_file` for folders), then `@FORMATS.register("name")`. See docs/design.md."""

    name: str = ""                             # meta["format"] and the cache key; default: the registered name
    joint_names: list[str] = []
    flip_pairs: list[tuple[int, int]] = []
    limbs: list[tuple[int, int]] = []         # skeleton for drawing (trainers.draw)
    metric: str = "pck"                        # pck, pckh or oks (trainers.metrics)
    norm_kind: str = "torso"
    splits: tuple[str, ...] = ("train", "val", "test")   # native splits; no "val": carved from train
    suffixes: tuple[str, ...] = ()             # annotation file types (for the "unknown file type" message)
    folder_hint: str = ""                      # what a folder of this format holds (for "cannot tell")
    version: int = 0                           # bump when prepared sets change; part of the cache key
    files: bool = True                         # False: generated, no path (synthetic)

    def detect(self, path: Path) -> bool:
        """Whether the existing folder or file `path` is in this format (cheap: names, a few bytes)."""
        return False

    def annotation_file(self, path: Path, split: str) -> Path:
        """The annotation file for `split` of a detected `path`: by default the file itself."""
        if path.is_dir():
            raise ConfigError(f"give the {self.name} annotation file, not a folder", source=str(path), field="data")
        return path

    def native_splits(self, annot: Path) -> tuple[str, ...]:
        """The splits this annotation file has (LSP and LSPET share a reader but not their splits)."""
        return self.splits

    def read(self, annot: Path, split: str, *, skip_bad: bool = False) -> Annotations:
        raise NotImplementedError

    def annotations(self, records: list[Record], note: str = "", skipped: int = 0, *,
                    dataset: str | None = None, **extra: Any) -> Annotations:
        """Wrap a reader's records with this format's joint names, flip pairs and metric."""
        return Annotations(records, dataset or self.name, list(self.joint_names), list(self.flip_pairs),
                           self.metric, self.norm_kind, note, skipped, extra)


def detection_order() -> list[DatasetFormat]:
    """The formats `resolve` asks, in registration order; an alias (a class registered twice) once."""
    seen: list[type] = []
    for name in FORMATS:
        cls = FORMATS.get(name)
        if cls not in seen and getattr(cls, "files", True):
            seen.append(cls)
    return [cls() for cls in seen]


def _undetected(path: Path) -> ConfigError:
    formats = detection_order()
    if path.is_dir():
        hints = [f.folder_hint for f in formats if f.folder_hint]
        expected = ", ".join(hints[:-1]) + " or " + hints[-1] if len(hints) > 1 else "".join(hints)
        return ConfigError(f"cannot tell the dataset format of this folder (expected {expected})",
                           source=str(path), field="data")
    suffixes = list(dict.fromkeys(s for f in formats for s in f.suffixes))
    return ConfigError(f"unknown data file type {path.suffix.lower()!r} ({', '.join(suffixes)})",
                       source=str(path), field="data")


def detect_format(path: Path) -> DatasetFormat:
    """The first format in `detection_order` that claims the existing `path`."""
    for fmt in detection_order():
        if fmt.detect(path):
            return fmt
    raise _undetected(path)


def resolve(name: str | None, path: Path, split: str) -> tuple[DatasetFormat, Path]:
    """Detect the format of `path` (or check the named one) and find its annotation file for `split`."""
    src = str(path)
    if not path.exists():
        raise ConfigError("data path does not exist", source=src, field="data")
    if name is None:
        fmt = detect_format(path)
    else:
        fmt = FORMATS.create(name)
        if not fmt.detect(path):
            other = detect_format(path)
            raise ConfigError(f"format {name!r} given but the file looks like {other.name}", source=src, field="data")
    return fmt, fmt.annotation_file(path, split)


def carves_val(fmt: DatasetFormat, annot: Path, split: str) -> bool:
    """Whether `split` of this file is carved: train or val of a dataset without a val split."""
    if split not in ("train", "val"):
        return False
    native = fmt.native_splits(annot)
    return "train" in native and "val" not in native


def carve_val(ann: Annotations, split: str) -> Annotations:
    """The train split's records cut in two: val = the last VAL_FRACTION (at least one), train = the rest.

    Deterministic (file order, no randomness), so train and val never overlap whatever the seed.
    """
    n = len(ann.records)
    k = max(1, int(n * VAL_FRACTION)) if n > 1 else 0
    records = ann.records[n - k:] if split == "val" else ann.records[:n - k]
    note = (f"{ann.split_note}; no val split, so val = the last {k} of the {n} train records "
            f"({VAL_FRACTION:.0%}) and train = the first {n - k}")
    return Annotations(records, ann.dataset, ann.joint_names, ann.flip_pairs, ann.metric, ann.norm_kind, note,
                       ann.skipped, ann.extra | {"val_carved": {"fraction": VAL_FRACTION, "train": n - k, "val": k}})


def read_annotations(fmt: DatasetFormat | str, annot: Path, split: str, *, skip_bad: bool = False) -> Annotations:
    """`split` of `annot` in `fmt` (an instance or a registered name), carving val where needed."""
    if isinstance(fmt, str):
        fmt = FORMATS.create(fmt)
    if split in CARVED_SPLITS:
        return carve_val(fmt.read(annot, "train", skip_bad=skip_bad), CARVED_SPLITS[split])
    if carves_val(fmt, annot, split):
        return carve_val(fmt.read(annot, "train", skip_bad=skip_bad), split)
    return fmt.read(annot, split, skip_bad=skip_bad)


# ---------------------------------------------------------------- LSP / LSPET joints.mat

@functools.lru_cache(maxsize=4)
def _lsp_mat(mat: str, mtime_ns: int, size: int) -> tuple[str, np.ndarray]:
    """('lsp' | 'lspet', (N, 14, 3) joints, read-only); memoised: detection and reading both need it."""
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
        dataset, joints = "lspet", arr.transpose(2, 0, 1).copy()  # (N, 14, 3), flag 1 = annotated
    elif arr.ndim == 3 and arr.shape[:2] == (3, 14):
        dataset, joints = "lsp", arr.transpose(2, 1, 0).copy()  # flag = occluded in LSP; every joint is annotated
        joints[:, :, 2] = 1.0
    else:
        raise DataError(f"'joints' has shape {arr.shape}; expected (14, 3, N) (LSPET) or (3, 14, N) (LSP)",
                        source=mat, field="joints")
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
        return ({"train": range(0, min(1000, n)), "test": range(1000, n)}, 4,
                "LSP: train = im0001-im1000, test = im1001-im2000")
    val = range(max(0, n - 1000), n)
    return ({"train": range(0, max(0, n - 1000)), "val": val, "test": val}, 5,
            "LSPET: train = all but the last 1000 images, val = test = the last 1000")


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
        return (path / "joints.mat").is_file() if path.is_dir() else path.suffix.lower() == ".mat"

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
            raise ConfigError(f"unknown split {split!r} for {dataset} (choose from {choices})",
                              source=str(annot), field="split")
        images = annot.parent / "images"
        records, dropped = [], 0
        for i in ranges[split]:
            name = f"im{i + 1:0{digits}d}.jpg"
            j = clean_joints(joints[i])
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
        return self.annotations(records, note, dataset=dataset, dropped_no_joints=dropped)


FORMATS.register("lspet")(LspFormat)


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
    j = clean_joints(np.concatenate([part, annotated[:, None].astype(np.float64)], axis=1))
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
    return _mpii_record(str(e["img_paths"]), images, e["joint_self"], e["objpos"], e["scale_provided"], head)


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
            return any((path / d / n).is_file() for d in ("annot", ".") for n in ("train.h5", "valid.h5"))
        suffix = path.suffix.lower()
        return suffix in (".h5", ".hdf5") or (suffix == ".json" and _first_char(path) != "{")

    def annotation_file(self, path: Path, split: str) -> Path:
        if not path.is_dir():
            return path
        name = "train.h5" if split == "train" else "valid.h5"
        for cand in (path / "annot" / name, path / name):
            if cand.is_file():
                return cand
        raise DataError(f"{name} is missing for the {split!r} split (looked for annot/{name} and {name})",
                        source=str(path), field="data")

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
            raise ConfigError(f"unknown split {split!r} for mpii (train, val, test)", source=src, field="split")
        images, want_val = _mpii_images_dir(path), split != "train"
        records, skipped = read_entries(data, lambda e: _mpii_json_entry(e, want_val, images), "bad MPII entry",
                                        src, "record {}", skip_bad)
        return self.annotations(records, "MPII JSON: isValidation 0 = train, 1 = val = test", skipped)

    def read_h5(self, path: Path, skip_bad: bool) -> Annotations:
        """h5 of the PyTorch stacked-hourglass port: center, scale, part, visible, imgname[, normalize].

        The file is the split. A joint is annotated when its coordinates are positive (`visible`
        only says whether it is occluded)."""
        center, scale, part, names, normalize = _read_mpii_h5_arrays(path)
        images = _mpii_images_dir(path)
        records, skipped = [], 0
        for i in range(len(names)):
            name = names[i].decode() if isinstance(names[i], bytes) else str(names[i])
            head = float(normalize[i]) if normalize is not None else None
            try:
                records.append(_mpii_record(name, images, part[i], center[i], float(scale[i]), head))
            except ValueError as err:
                if not skip_bad:
                    raise DataError(str(err), source=str(path), field=f"record {i} ({name})") from err
                skipped += 1
        return self.annotations(records, "MPII h5: the file is the split", skipped)


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
                raise DataError(f"missing dataset '{key}' (have {sorted(f.keys())})", source=src, field=key)
        center, scale, part = f["center"][()], f["scale"][()], f["part"][()]
        names = f["imgname"][()]
        normalize = f["normalize"][()] if "normalize" in f else None
    n = len(names)
    if part.shape[1:] != (16, 2) or center.shape != (n, 2) or scale.shape[0] != n:
        raise DataError(f"shapes part {part.shape}, center {center.shape}, scale {scale.shape} "
                        f"for {n} images; expected (N,16,2), (N,2), (N,)", source=src, field="part")
    return center, scale, part, names, normalize


# ---------------------------------------------------------------- COCO

def _coco_images_dir(path: Path) -> Path:
    stem = path.stem.split("_")[-1]  # person_keypoints_val2017 -> val2017
    for cand in (path.parent / "images", path.parent.parent / stem, path.parent.parent / "images" / stem,
                 path.parent.parent / "images", path.parent / stem):
        if cand.is_dir():
            return cand
    return path.parent / "images"


def _coco_lists(data: Any, src: str) -> tuple[list, list]:
    """The file's "images" and "annotations" lists, checked for type (one-line errors, no traceback)."""
    if not isinstance(data, dict):
        raise DataError(f"expected a JSON object with images and annotations, got a {type(data).__name__}", source=src)
    lists = []
    for key in ("images", "annotations"):
        if key not in data:
            raise DataError(f"missing '{key}'", source=src, field=key)
        if not isinstance(data[key], list):
            raise DataError(f"must be a list, got {type(data[key]).__name__}", source=src, field=key)
        lists.append(data[key])
    return lists[0], lists[1]


def _coco_files(images: list, src: str) -> dict[Any, str]:
    files = {}
    for k, im in enumerate(images):
        if not (isinstance(im, dict) and "id" in im and "file_name" in im):
            raise DataError("image entry is not an object with 'id' and 'file_name'", source=src, field=f"images[{k}]")
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
    return Record(name, images / name, clean_joints(kp), center, max(w, h) * 1.25, math.sqrt(max(area, 1.0)),
                  image_id=a["image_id"], annotation_id=a.get("id"))


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
        return path.suffix.lower() == ".json" and _first_char(path) == "{"

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
        records, skipped = read_entries(ann_list, lambda a: _coco_record(a, files, images), "bad annotation",
                                        src, "annotations[{}]", skip_bad)
        # resolved: the cache may hand this meta to a process started in another folder
        return self.annotations(records, "COCO: the file is the split", skipped,
                                coco_annotation_file=str(annot.resolve()))


# ---------------------------------------------------------------- synthetic (no files)

@FORMATS.register("synthetic")
class SyntheticFormat(DatasetFormat):
    """Generated people (trainers.synthetic): `synthetic` or `synthetic:N`, never detected from a path."""

    name, metric, norm_kind, files = "synthetic", "pck", "torso", False
    joint_names, flip_pairs, limbs = LSP_JOINTS, LSP_FLIP, LSP_LIMBS
