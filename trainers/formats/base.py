"""The dataset format registry, the `DatasetFormat` base class and the helpers readers share.

Every dataset format is a `DatasetFormat` class registered in `FORMATS` (`space.registry` style):

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

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from space.errors import ConfigError
from space.registry import Registry
from trainers.crop import BOX_MARGIN


class DataError(ConfigError):
    """Bad data on disk: missing or corrupt image, wrong .mat key or shape, JSON missing fields."""


# A dataset without a val split (LSP) gets the last VAL_FRACTION of its train records as val, and
# train keeps the rest, so model selection never looks at the test split.
VAL_FRACTION = 0.1
# Splits carved from train on request, for datasets whose val split IS their test split (LSPET):
# selecting a checkpoint on them never looks at the test images (launch.py finalize, docs/data.md).
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


def read_entries(entries: list, make: Callable[[Any], Record | None], what: str, src: str,
                 field: str, skip_bad: bool) -> tuple[list[Record], int]:
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


def joint_distance(j: np.ndarray, a: int, b: int) -> float | None:
    """Distance of joints `a` and `b` in (J, 3) `j`; None unless both are annotated and apart."""
    if j[a, 2] > 0 and j[b, 2] > 0:
        d = float(np.hypot(*(j[a, :2] - j[b, :2])))
        return d if d > 0 else None
    return None


def load_json(path: Path) -> Any:
    """A JSON annotation file; a missing or unparsable one is a one-line DataError."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError as err:
        raise DataError("annotation file not found", source=str(path)) from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"not valid JSON ({err})", source=str(path)) from err


def first_char(path: Path) -> str:
    """'[' for an MPII list, '{' for a COCO dict, without parsing a possibly huge file twice."""
    with open(path, "rb") as fh:
        head = fh.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head[:1].decode("ascii", "replace")


# ---------------------------------------------------------------- the registry

class FormatRegistry(Registry):
    """`Registry` of `DatasetFormat` classes; registering names the class (if it has no name
    yet)."""

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

    name: str = ""              # meta["format"] and the cache key; default: the registered name
    joint_names: list[str] = []
    flip_pairs: list[tuple[int, int]] = []
    limbs: list[tuple[int, int]] = []       # skeleton for drawing (trainers.draw)
    metric: str = "pck"                     # pck, pckh or oks (trainers.metrics)
    norm_kind: str = "torso"
    splits: tuple[str, ...] = ("train", "val", "test")   # native; no "val": carved from train
    suffixes: tuple[str, ...] = ()  # annotation file types (for the "unknown file type" message)
    folder_hint: str = ""           # what a folder of this format holds (for "cannot tell")
    version: int = 0                # bump when prepared sets change; part of the cache key
    files: bool = True              # False: generated, no path (synthetic)

    def detect(self, path: Path) -> bool:
        """Whether the existing folder or file `path` is in this format (cheap: names, a few
        bytes)."""
        return False

    def annotation_file(self, path: Path, split: str) -> Path:
        """The annotation file for `split` of a detected `path`: by default the file itself."""
        if path.is_dir():
            raise ConfigError(f"give the {self.name} annotation file, not a folder",
                              source=str(path), field="data")
        return path

    def native_splits(self, annot: Path) -> tuple[str, ...]:
        """The splits this annotation file has (LSP and LSPET share a reader, not their splits)."""
        return self.splits

    def read(self, annot: Path, split: str, *, skip_bad: bool = False) -> Annotations:
        """`split` of the annotation file `annot` as records (no image decoded)."""
        raise NotImplementedError

    def annotations(self, records: list[Record], note: str = "", skipped: int = 0, *,
                    dataset: str | None = None, **extra: Any) -> Annotations:
        """Wrap a reader's records with this format's joint names, flip pairs and metric."""
        return Annotations(records, dataset or self.name, list(self.joint_names),
                           list(self.flip_pairs), self.metric, self.norm_kind, note, skipped, extra)


# ---------------------------------------------------------------- detection and splits

def detection_order() -> list[DatasetFormat]:
    """The formats `resolve` asks, in registration order; an alias (a class registered twice)
    once."""
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
    """Detect the format of `path` (or check the named one) and find its annotation file for
    `split`."""
    src = str(path)
    if not path.exists():
        raise ConfigError("data path does not exist", source=src, field="data")
    if name is None:
        fmt = detect_format(path)
    else:
        fmt = FORMATS.create(name)
        if not fmt.detect(path):
            other = detect_format(path)
            raise ConfigError(f"format {name!r} given but the file looks like {other.name}",
                              source=src, field="data")
    return fmt, fmt.annotation_file(path, split)


def carves_val(fmt: DatasetFormat, annot: Path, split: str) -> bool:
    """Whether `split` of this file is carved: train or val of a dataset without a val split."""
    if split not in ("train", "val"):
        return False
    native = fmt.native_splits(annot)
    return "train" in native and "val" not in native


def carve_val(ann: Annotations, split: str) -> Annotations:
    """The train split's records cut in two: val = the last VAL_FRACTION (at least one), train =
    the rest.

    Deterministic (file order, no randomness), so train and val never overlap whatever the seed.
    """
    n = len(ann.records)
    k = max(1, int(n * VAL_FRACTION)) if n > 1 else 0
    records = ann.records[n - k:] if split == "val" else ann.records[:n - k]
    note = (f"{ann.split_note}; no val split, so val = the last {k} of the {n} train records "
            f"({VAL_FRACTION:.0%}) and train = the first {n - k}")
    carved = {"val_carved": {"fraction": VAL_FRACTION, "train": n - k, "val": k}}
    return Annotations(records, ann.dataset, ann.joint_names, ann.flip_pairs, ann.metric,
                       ann.norm_kind, note, ann.skipped, ann.extra | carved)


def read_annotations(fmt: DatasetFormat | str, annot: Path, split: str, *,
                     skip_bad: bool = False) -> Annotations:
    """`split` of `annot` in `fmt` (an instance or a registered name), carving val where needed."""
    if isinstance(fmt, str):
        fmt = FORMATS.create(fmt)
    if split in CARVED_SPLITS:
        return carve_val(fmt.read(annot, "train", skip_bad=skip_bad), CARVED_SPLITS[split])
    if carves_val(fmt, annot, split):
        return carve_val(fmt.read(annot, "train", skip_bad=skip_bad), split)
    return fmt.read(annot, split, skip_bad=skip_bad)
