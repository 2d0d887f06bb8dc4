"""The dataset format registry, the `DatasetFormat` base class and carved val splits (the helpers
readers share are trainers/formats/helpers.py).

Every dataset format is a `DatasetFormat` class registered in `FORMATS` (`space.registry` style):

    @FORMATS.register("toy")
    class ToyFormat(DatasetFormat):
        joint_names, flip_pairs, metric, norm_kind = [...], [...], "pck", "torso"
        def detect(self, path): ...            # is this folder or file mine?
        def annotation_file(self, path, split): ...
        def read(self, annot, split, *, skip_bad=False): ...   # -> Annotations

A format knows how to detect itself, where its annotation file for a split is, its native splits,
joint names, flip pairs and metric, and how to read records. `read` never decodes an image: the
base class's `prepare`, shared by every format with files, picks the subset first and decodes
only those images. Joints are (J, 3): x, y, v with v = 1 annotated and 0 not; unannotated joints
get x = y = 0 whatever the file held. A dataset without a val split gets one carved from its
train split (`carve_val`). A generated format (synthetic.py) has no files: it overrides
`identity`, `record_names` and `prepare`, and `trainers.data.load_poses` treats it like the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from space.errors import ConfigError
from space.registry import Registry
from trainers.crop import crop_affine, decode_crops
from trainers.poseset import PoseSet, from_records, subset_indices

log = logging.getLogger(__name__)


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
    name: str  # image file name (shown in errors, stored in PoseSet.names)
    image: Path  # image file
    joints: np.ndarray  # (J, 3) float64 original pixels, v = 1 annotated
    center: np.ndarray  # (2,) crop centre in original pixels
    box: float  # side of the square crop in original pixels
    norm: float  # metric normaliser in original pixels
    norm_estimated: bool = False
    image_id: Any = None  # COCO: the image and annotation ids, for the official evaluation
    annotation_id: Any = None


@dataclass
class Annotations:
    records: list[Record]
    dataset: str  # lsp, lspet, mpii, coco, ...
    joint_names: list[str]
    flip_pairs: list[tuple[int, int]]
    metric: str  # pck, pckh, oks
    norm_kind: str  # torso, head, sqrt_area
    split_note: str = ""
    skipped: int = 0  # annotation entries skipped as bad (skip_bad=True)
    extra: dict[str, Any] = field(default_factory=dict)
    # entries of the split that are no record for want of a person box (LSP: fewer than two
    # annotated joints), as (position in the split, name, image file): training and scoring skip
    # them, `launch.py predict --data` predicts them on the whole image (trainers.infer)
    unboxed: list[tuple[int, str, Path]] = field(default_factory=list)


@dataclass(frozen=True)
class Source:
    """What a data string names: its format, and the folder or file that format reads or, for a
    generated format, how many samples each split has (`trainers.formats.open_source`)."""

    fmt: DatasetFormat
    path: Path | None = None  # a format with files: the folder or annotation file named
    count: int | None = None  # a generated format: `NAME:N`; None: the format's own default

    def annotation_file(self, split: str) -> Path:
        """The annotation file `split` is read from (a carved split is cut from train's)."""
        if self.path is None:
            raise TypeError(f"the {self.fmt.name} format reads no files")
        return self.fmt.annotation_file(self.path, "train" if split in CARVED_SPLITS else split)


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

    name: str = ""  # meta["format"] and the cache key; default: the registered name
    joint_names: list[str] = []
    flip_pairs: list[tuple[int, int]] = []
    limbs: list[tuple[int, int]] = []  # skeleton for drawing (trainers.draw)
    metric: str = "pck"  # pck, pckh or oks (trainers.metrics)
    norm_kind: str = "torso"
    splits: tuple[str, ...] = ("train", "val", "test")  # native; no "val": carved from train
    suffixes: tuple[str, ...] = ()  # annotation file types (for the "unknown file type" message)
    folder_hint: str = ""  # what a folder of this format holds (for "cannot tell")
    version: int = 0  # bump when prepared sets change; part of the cache key
    files: bool = True  # False: generated from `NAME[:N]`, no path (synthetic)
    disk_cache: bool = True  # False: prepared sets are only memoised in-process

    def detect(self, path: Path) -> bool:
        """Whether the existing folder or file `path` is in this format (cheap: names, a few
        bytes)."""
        return False

    def annotation_file(self, path: Path, split: str) -> Path:
        """The annotation file for `split` of a detected `path`: by default the file itself."""
        if path.is_dir():
            raise ConfigError(
                f"give the {self.name} annotation file, not a folder",
                source=str(path),
                field="data",
            )
        return path

    def native_splits(self, annot: Path) -> tuple[str, ...]:
        """The splits this annotation file has (LSP and LSPET share a reader, not their splits)."""
        return self.splits

    def read(self, annot: Path, split: str, *, skip_bad: bool = False) -> Annotations:
        """`split` of the annotation file `annot` as records (no image decoded)."""
        raise NotImplementedError

    def annotations(
        self,
        records: list[Record],
        note: str = "",
        skipped: int = 0,
        *,
        dataset: str | None = None,
        **extra: Any,
    ) -> Annotations:
        """Wrap a reader's records with this format's joint names, flip pairs and metric."""
        return Annotations(
            records,
            dataset or self.name,
            list(self.joint_names),
            list(self.flip_pairs),
            self.metric,
            self.norm_kind,
            note,
            skipped,
            extra,
        )

    # What trainers.data.load_poses asks every format, file or generated: a format with files
    # keeps these defaults; a generated one (synthetic.py) overrides identity, record_names and
    # prepare, and parse_count reads its `NAME:N`.

    def parse_count(self, text: str) -> int:
        """N of a generated format's `NAME:N`: a positive number of samples per split."""
        try:
            n = int(text)
        except ValueError:
            n = -1
        if n <= 0:
            raise ConfigError(
                f"'{self.name}:N' needs a positive sample count, got {text!r}",
                source="<arg>",
                field="data",
            )
        return n

    def identity(self, src: Source, split: str) -> dict[str, Any]:
        """What `split` of `src` depends on, for the cache key (load_poses adds the size, subset,
        seed and skip_bad): the annotation file's resolved path, mtime and size."""
        annot = src.annotation_file(split)
        try:
            st = annot.stat()
        except FileNotFoundError as err:
            raise DataError("annotation file not found", source=str(annot)) from err
        ident = {
            "format": self.name,
            "annot": str(annot.resolve()),
            "mtime_ns": st.st_mtime_ns,
            "bytes": st.st_size,
        }
        # Keys that did not exist when a format's sets were first cached go in only where they
        # apply, so the entries of unchanged formats (LSPET) keep their keys and stay valid.
        if self.version:
            ident["format_version"] = self.version
        if carves_val(self, annot, split) or split in CARVED_SPLITS:
            ident["val_carve"] = VAL_FRACTION
        return ident

    def record_names(self, src: Source, split: str) -> list[str]:
        """The names of `split`'s records (PoseSet.names), without decoding an image."""
        return [r.name for r in read_annotations(self, src.annotation_file(split), split).records]

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
        """`split` of `src` as `size` x `size` person crops: the records are read, a seeded
        `subset` picked, and only its images decoded (`workers` processes, default up to 4).
        A bad record raises DataError, or with `skip_bad` is skipped and counted."""
        annot = src.annotation_file(split)
        ann = read_annotations(self, annot, split, skip_bad=skip_bad)
        if not ann.records:
            raise DataError(
                f"no usable records in split {split!r}", source=str(annot), field=f"{split} split"
            )
        records = [ann.records[i] for i in subset_indices(len(ann.records), subset, seed)]
        affines = [crop_affine(r.center, r.box, size) for r in records]
        crops, errors = decode_crops([str(r.image) for r in records], affines, size, workers)
        keep = _decoded(records, errors, ann.skipped, annot, split, skip_bad)
        return from_records(
            [records[i] for i in keep],
            np.stack([affines[i] for i in keep]),
            np.stack([crops[i] for i in keep]),
            _prepared_meta(self.name, ann, annot, split, size, subset, seed, len(errors)),
        )


def _prepared_meta(
    name: str,
    ann: Annotations,
    annot: Path,
    split: str,
    size: int,
    subset: int | None,
    seed: int,
    failed: int,
) -> dict[str, Any]:
    """A prepared set's meta (PoseSet.meta); `failed`: the selected records whose image did not
    decode (counted in "skipped" with the annotation entries skipped)."""
    return {
        "dataset": ann.dataset,
        "format": name,
        "source": str(annot),
        "split": split,
        "size": size,
        "joint_names": ann.joint_names,
        "flip_pairs": [list(p) for p in ann.flip_pairs],
        "metric": ann.metric,
        "norm_kind": ann.norm_kind,
        "split_note": ann.split_note,
        "n_records": len(ann.records),
        "subset": subset,
        "seed": seed,
        "skipped": ann.skipped + failed,
        **ann.extra,
    }


def _decoded(
    records: list[Record],
    errors: list[tuple[int, str]],
    skipped: int,
    annot: Path,
    split: str,
    skip_bad: bool,
) -> list[int]:
    """Indices of the records whose image decoded. A failed one raises DataError naming it, or
    with `skip_bad` is left out and counted in one warning line (with the skipped entries)."""
    if errors and not skip_bad:
        i, msg = errors[0]
        raise DataError(msg, source=str(records[i].image), field=f"record {i} ({records[i].name})")
    if errors:
        i, msg = errors[0]
        log.warning(
            "skipped %d bad record(s) of %d in %s (first: %s: %s)",
            len(errors) + skipped,
            len(records) + skipped,
            annot,
            records[i].image,
            msg,
        )
    elif skipped:
        log.warning("skipped %d bad annotation entr(ies) in %s", skipped, annot)
    bad = {i for i, _ in errors}
    keep = [i for i in range(len(records)) if i not in bad]
    if not keep:
        raise DataError("every selected record is bad", source=str(annot), field=f"{split} split")
    return keep


# ---------------------------------------------------------------- carved val splits


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
    records = ann.records[n - k :] if split == "val" else ann.records[: n - k]
    note = (
        f"{ann.split_note}; no val split, so val = the last {k} of the {n} train records "
        f"({VAL_FRACTION:.0%}) and train = the first {n - k}"
    )
    carved = {"val_carved": {"fraction": VAL_FRACTION, "train": n - k, "val": k}}
    return Annotations(
        records,
        ann.dataset,
        ann.joint_names,
        ann.flip_pairs,
        ann.metric,
        ann.norm_kind,
        note,
        ann.skipped,
        ann.extra | carved,
    )


def read_annotations(
    fmt: DatasetFormat | str, annot: Path, split: str, *, skip_bad: bool = False
) -> Annotations:
    """`split` of `annot` in `fmt` (an instance or a registered name), carving val where needed."""
    if isinstance(fmt, str):
        fmt = FORMATS.create(fmt)
    if split in CARVED_SPLITS:
        return carve_val(fmt.read(annot, "train", skip_bad=skip_bad), CARVED_SPLITS[split])
    if carves_val(fmt, annot, split):
        return carve_val(fmt.read(annot, "train", skip_bad=skip_bad), split)
    return fmt.read(annot, split, skip_bad=skip_bad)
