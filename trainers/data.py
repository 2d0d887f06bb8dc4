"""Pose datasets as prepared, in-memory `PoseSet`s: parse the data string, memoise, cache on disk.

    train = load_poses("synthetic", "train", 64, subset=512)
    val = load_poses("../shared/datasets/lspet", "val", 128)
    x, j = to_tensor_batch(train, np.arange(16), "cuda")

`data` is "synthetic" (or "synthetic:N"), a path whose format is detected (a folder with
joints.mat, a .mat, an MPII or COCO .json, an MPII .h5) or "FORMAT:PATH" with FORMAT any name
registered in `trainers.formats.FORMATS` (lsp, lspet, mpii, coco, synthetic, and any added).
Every format takes the same path: its `Source` gives the cache identity and prepares the set
(`DatasetFormat.identity`, `prepare`); this module only keys, memoises and caches the result.
See docs/data.md for splits, normalisers and the cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from space.errors import ConfigError

# Re-exported: callers import the crop maps, the format names and PoseSet from here, as before
# the formats and PoseSet moved out.
from trainers.crop import (
    crop_affine,  # noqa: F401
    crop_to_original,  # noqa: F401
    invert_affine,  # noqa: F401
    load_crop,  # noqa: F401
    original_to_crop,  # noqa: F401
)
from trainers.formats import (
    CARVED_SPLITS,
    FORMATS,
    VAL_FRACTION,
    DataError,  # noqa: F401
    DatasetFormat,  # noqa: F401
    Record,  # noqa: F401
    Source,
    carves_val,
    open_source,
    read_annotations,  # noqa: F401
    resolve,  # noqa: F401
)
from trainers.poseset import PoseSet, subset_indices  # noqa: F401

log = logging.getLogger(__name__)

CACHE_VERSION = 1
_ARRAYS = ("images", "joints", "joints_orig", "affine", "norm")

_MEMO: dict[str, PoseSet] = {}


def clear_memo() -> None:
    """Forget the in-process PoseSets (the on-disk cache stays)."""
    _MEMO.clear()


def default_cache_dir() -> Path:
    return Path(os.environ.get("SOFTGATE_CACHE") or Path.home() / ".cache" / "softgate-nas")


def absolute_data(data: str) -> str:
    """The same data string with its path made absolute: workers that run in another folder (Ray
    Tune trials run in their trial folder) must find the dataset a relative path named here."""
    fmt, path, _ = parse_data(data)
    if path is None:
        return data
    return f"{fmt}:{path.resolve()}" if fmt else str(path.resolve())


def parse_data(data: str) -> tuple[str, Path | None, int | None]:
    """'NAME[:N]' of a generated format (synthetic) | PATH | FORMAT:PATH -> (format, or '' to
    detect it from the path; the path; a generated format's sample count)."""
    if not data or not str(data).strip():
        raise ConfigError(
            "empty data string (synthetic, a path, or FORMAT:PATH)", source="<arg>", field="data"
        )
    data = str(data).strip()
    head, sep, rest = data.partition(":")
    if head in FORMATS and not FORMATS.get(head).files:  # no path: NAME, or NAME:N samples
        return head, None, FORMATS.create(head).parse_count(rest) if sep else None
    if sep and head in FORMATS:  # any registered format, also one added after import
        return head, Path(rest).expanduser(), None
    path = Path(data).expanduser()
    if sep and not path.exists() and head.isidentifier():
        raise ConfigError(
            f"unknown data format {head!r} (choose from {', '.join(FORMATS)})",
            source="<arg>",
            field="data",
        )
    return "", path, None


def data_source(data: str) -> Source:
    """The format a data string names (detected from its path where not named) and what it
    reads: a path, or a generated format's sample count."""
    return open_source(*parse_data(data))


def split_names(data: str, split: str) -> list[str]:
    """The record names of `split` of `data` (PoseSet.names) without decoding an image."""
    src = data_source(data)
    return src.fmt.record_names(src, split)


def selection_splits(data: str) -> tuple[str, str]:
    """(train split, val split) for choosing a checkpoint that will be scored on the test split:
    ("train", "val"), or the carved ("train_carved", "val_carved") where val and test hold the same
    records (LSPET), so that selection never sees a test image. Synthetic val and test differ."""
    if set(split_names(data, "val")) & set(split_names(data, "test")):
        return "train_carved", "val_carved"
    return "train", "val"


def selection_note(data: str, val_split: str) -> str:
    """One line: the split best.pt is selected on, how many images it holds and, where it is
    carved from train or is the test split, that it is."""
    n = len(split_names(data, val_split))
    images = f"{n} image{'' if n == 1 else 's'}"
    carved = f"{images} carved from train (the last {VAL_FRACTION:.0%})"
    if val_split in CARVED_SPLITS:
        if set(split_names(data, "val")) & set(split_names(data, "test")):
            return (
                f"selecting best.pt on {val_split}: {carved}, not on val, which is this "
                "dataset's test split (--select-on val to select on it)"
            )
        return f"selecting best.pt on {val_split}: {carved}"
    src = data_source(data)
    if src.path is not None and carves_val(src.fmt, src.annotation_file(val_split), val_split):
        return f"selecting best.pt on {val_split}: {carved}, as the dataset has no val split"
    if set(split_names(data, val_split)) & set(split_names(data, "test")):
        return (
            f"selecting best.pt on {val_split} ({images}), which is this dataset's test "
            "split: a test score of best.pt will be optimistic"
        )
    return f"selecting best.pt on {val_split} ({images})"


def load_poses(
    data: str,
    split: str,
    size: int,
    *,
    subset: int | None = None,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    skip_bad: bool = False,
    workers: int | None = None,
) -> PoseSet:
    """Load `split` of `data` as person-centred `size` x `size` crops.

    `subset` picks that many records at random (seeded) before any image is decoded. Prepared
    sets are memoised in-process and, unless the format opts out (synthetic), cached on disk
    under `cache_dir` (default $SOFTGATE_CACHE or ~/.cache/softgate-nas), keyed by the format's
    identity of the source (an annotation file's path, mtime and size), split, size, subset and
    seed. Bad records raise `DataError` naming the file and record, or with `skip_bad` are
    skipped and counted in meta["skipped"]. `workers`: decoding processes (default up to 4).
    """
    if not isinstance(size, int) or size < 8:
        raise ConfigError(
            f"size must be an integer >= 8, got {size!r}", source="<arg>", field="size"
        )
    src = data_source(data)
    ident = {
        "v": CACHE_VERSION,
        **src.fmt.identity(src, split),
        "split": split,
        "size": size,
        "subset": subset,
        "seed": seed,
        "skip_bad": bool(skip_bad),
    }
    key = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
    if key in _MEMO:
        return _MEMO[key]
    entry = None
    if src.fmt.disk_cache:
        root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        entry = root / f"{src.fmt.name}-{split}-{size}-{key}"
    ps = _read_cache(entry) if entry is not None else None
    if ps is None:
        ps = src.fmt.prepare(
            src, split, size, subset=subset, seed=seed, skip_bad=skip_bad, workers=workers
        )
        if entry is not None:
            _write_cache(entry, ps, ident)
    _MEMO[key] = ps
    return ps


# ---------------------------------------------------------------- on-disk cache


def _read_cache(entry: Path) -> PoseSet | None:
    if not (entry / "meta.json").is_file():
        return None
    try:
        meta = json.loads((entry / "meta.json").read_text())
        arrays = {
            k: np.load(
                entry / f"{k}.npy", mmap_mode="r" if k == "images" else None, allow_pickle=False
            )
            for k in _ARRAYS
        }
        names = meta.pop("names")
        meta.pop("identity", None)
    except (OSError, ValueError, KeyError) as err:
        log.warning("ignoring unreadable cache entry %s (%s)", entry, err)
        return None
    log.info("loaded %s from cache %s", meta.get("source"), entry)
    return PoseSet(names=names, meta=meta, **arrays)


def _write_cache(entry: Path, ps: PoseSet, ident: dict) -> None:
    """Write all files into a temporary folder, then rename it into place: readers never see half an entry."""
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=entry.name + ".", suffix=".tmp", dir=entry.parent))
    except OSError as err:
        log.warning("not caching %s: %s", entry, err)
        return
    try:
        for k in _ARRAYS:
            np.save(tmp / f"{k}.npy", np.ascontiguousarray(getattr(ps, k)))
        (tmp / "meta.json").write_text(json.dumps(ps.meta | {"names": ps.names, "identity": ident}))
        os.replace(tmp, entry)
    except OSError as err:  # e.g. another process wrote the same entry first, or the disk is full
        if not (entry / "meta.json").is_file():
            log.warning("not caching %s: %s", entry, err)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------- tensors


def to_tensor_batch(poseset: PoseSet, idx: Sequence[int] | np.ndarray | slice, device: Any = "cpu"):
    """(images (B, 3, S, S) float in [0, 1], joints (B, J, 3)) on `device`.

    uint8 crosses the bus (4x less than float) from pinned memory when the device is CUDA; the
    float conversion happens on the device.
    """
    import torch

    if not isinstance(idx, slice):
        idx = np.asarray(idx, dtype=np.int64)
    dev = torch.device(device)
    imgs = torch.from_numpy(_owned(poseset.images[idx]))
    joints = torch.from_numpy(_owned(poseset.joints[idx]))
    if dev.type == "cuda":
        imgs, joints = imgs.pin_memory(), joints.pin_memory()
    imgs = imgs.to(dev, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
    return imgs.contiguous(), joints.to(dev, non_blocking=True)


def _owned(a: np.ndarray) -> np.ndarray:
    # torch.from_numpy wants a writable, contiguous array; a slice of the cache memmap is neither
    return a if a.flags.writeable and a.flags.c_contiguous else np.array(a)
