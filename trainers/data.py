"""Pose datasets as prepared, in-memory `PoseSet`s: read annotations, pick a subset, crop, cache.

    train = load_poses("synthetic", "train", 64, subset=512)
    val = load_poses("../shared/datasets/lspet", "val", 128)
    x, j = to_tensor_batch(train, np.arange(16), "cuda")

`data` is "synthetic" (or "synthetic:N"), a path whose format is detected (a folder with
joints.mat, a .mat, an MPII or COCO .json, an MPII .h5) or "FORMAT:PATH" with FORMAT any name
registered in `trainers.formats.FORMATS` (lsp, lspet, mpii, coco, synthetic, and any added).
See docs/data.md for splits, normalisers and the cache.
"""
from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from space.errors import ConfigError
from trainers.crop import (crop_affine, crop_to_original, invert_affine, load_crop,  # noqa: F401 (re-exported)
                           original_to_crop)
from trainers.formats import (CARVED_SPLITS, FORMATS, VAL_FRACTION, DataError, DatasetFormat, Record,  # noqa: F401
                             carves_val, read_annotations, resolve)
from trainers.formats.synthetic import DEFAULT_SIZE, render_sample, synthetic_meta

log = logging.getLogger(__name__)

CACHE_VERSION = 1
_ARRAYS = ("images", "joints", "joints_orig", "affine", "norm")
# meta entries with one value per sample, kept in step by PoseSet.select (COCO: for COCOeval)
_PER_SAMPLE_META = ("image_ids", "annotation_ids")
# below this many records a process pool costs more to start than it saves
_POOL_MIN = 256


@dataclass
class PoseSet:
    """Prepared samples at one resolution; see docs/design.md. `images` may be a read-only memmap."""

    images: np.ndarray        # (N, S, S, 3) uint8
    joints: np.ndarray        # (N, J, 3) float32 crop pixels, v = 1 annotated
    joints_orig: np.ndarray   # (N, J, 3) float32 original pixels
    affine: np.ndarray        # (N, 2, 3) float32 original -> crop
    norm: np.ndarray          # (N,) float32 metric normaliser, original pixels
    names: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.names)

    def select(self, idx: Sequence[int] | np.ndarray) -> "PoseSet":
        """A new PoseSet of the samples at `idx` (arrays copied)."""
        idx = np.asarray(idx, dtype=np.int64)
        meta = dict(self.meta)
        est = set(meta.get("norm_estimated", []))
        meta["norm_estimated"] = [k for k, i in enumerate(idx.tolist()) if i in est]
        for key in _PER_SAMPLE_META:
            if key in meta:
                meta[key] = [meta[key][i] for i in idx.tolist()]
        return PoseSet(np.asarray(self.images[idx]), self.joints[idx], self.joints_orig[idx],
                       self.affine[idx], self.norm[idx], [self.names[i] for i in idx], meta)


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
    """'synthetic[:N]' | PATH | FORMAT:PATH -> (format or '' to detect, path, synthetic N)."""
    if not data or not str(data).strip():
        raise ConfigError("empty data string (synthetic, a path, or FORMAT:PATH)", source="<arg>", field="data")
    data = str(data).strip()
    head, sep, rest = data.partition(":")
    if head == "synthetic":
        if not sep:
            return "synthetic", None, None
        try:
            n = int(rest)
        except ValueError:
            n = -1
        if n <= 0:
            raise ConfigError(f"'synthetic:N' needs a positive sample count, got {rest!r}", source="<arg>", field="data")
        return "synthetic", None, n
    if sep and head in FORMATS:  # any registered format, also one added after import
        return head, Path(rest).expanduser(), None
    path = Path(data).expanduser()
    if sep and not path.exists() and head.isidentifier():
        raise ConfigError(f"unknown data format {head!r} (choose from {', '.join(FORMATS)})",
                          source="<arg>", field="data")
    return "", path, None


def split_names(data: str, split: str) -> list[str] | None:
    """The record names of `split` of `data` without decoding an image; None for synthetic data."""
    fmt, path, _ = parse_data(data)
    if fmt == "synthetic":
        return None
    assert path is not None
    fmt_obj, annot = resolve(fmt or None, path, "train" if split in CARVED_SPLITS else split)
    return [r.name for r in read_annotations(fmt_obj, annot, split).records]


def selection_splits(data: str) -> tuple[str, str]:
    """(train split, val split) for choosing a checkpoint that will be scored on the test split:
    ("train", "val"), or the carved ("train_carved", "val_carved") where val and test hold the same
    records (LSPET), so that selection never sees a test image. Synthetic val and test differ."""
    val = split_names(data, "val")
    if val is not None and set(val) & set(split_names(data, "test") or ()):
        return "train_carved", "val_carved"
    return "train", "val"


def subset_indices(n: int, subset: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a seeded `subset` of range(n) (all of it when subset is None or >= n)."""
    if subset is None or subset >= n:
        return np.arange(n)
    if subset <= 0:
        raise ConfigError(f"subset must be positive, got {subset}", source="<arg>", field="subset")
    return np.sort(np.random.default_rng(seed).choice(n, size=subset, replace=False))


def load_poses(data: str, split: str, size: int, *, subset: int | None = None, seed: int = 0,
               cache_dir: str | Path | None = None, skip_bad: bool = False,
               workers: int | None = None) -> PoseSet:
    """Load `split` of `data` as person-centred `size` x `size` crops.

    `subset` picks that many records at random (seeded) before any image is decoded. Prepared
    sets are memoised in-process and cached on disk under `cache_dir` (default $SOFTGATE_CACHE
    or ~/.cache/softgate-nas), keyed by the annotation file's identity, split, size, subset and
    seed. Bad records raise `DataError` naming the file and record, or with `skip_bad` are
    skipped and counted in meta["skipped"]. `workers`: decoding processes (default up to 4).
    """
    if not isinstance(size, int) or size < 8:
        raise ConfigError(f"size must be an integer >= 8, got {size!r}", source="<arg>", field="size")
    fmt, path, n_syn = parse_data(data)
    if fmt == "synthetic":
        key = json.dumps(["synthetic", n_syn, split, size, subset, seed, CACHE_VERSION])
        if key not in _MEMO:
            _MEMO[key] = _synthetic(split, size, n_syn, subset, seed)
        return _MEMO[key]

    assert path is not None
    fmt_obj, annot = resolve(fmt or None, path, "train" if split in CARVED_SPLITS else split)
    ident = _identity(fmt_obj, annot, split, size, subset, seed, skip_bad)
    key = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
    if key in _MEMO:
        return _MEMO[key]
    cache_root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    entry = cache_root / f"{fmt_obj.name}-{split}-{size}-{key}"
    ps = _read_cache(entry)
    if ps is None:
        ps = _prepare(fmt_obj, annot, split, size, subset, seed, skip_bad, workers)
        _write_cache(entry, ps, ident)
    _MEMO[key] = ps
    return ps


def _identity(fmt: DatasetFormat, annot: Path, split: str, size: int, subset: int | None, seed: int,
              skip_bad: bool) -> dict:
    """What the prepared set depends on: the cache key. Keys that did not exist when a format's
    sets were first cached (format_version, val_carve) are only added where they apply, so the
    entries of unchanged formats (LSPET) stay valid."""
    try:
        st = annot.stat()
    except FileNotFoundError as err:
        raise DataError("annotation file not found", source=str(annot)) from err
    ident = {"v": CACHE_VERSION, "format": fmt.name, "annot": str(annot.resolve()), "mtime_ns": st.st_mtime_ns,
             "bytes": st.st_size, "split": split, "size": size, "subset": subset, "seed": seed,
             "skip_bad": bool(skip_bad)}
    if fmt.version:
        ident["format_version"] = fmt.version
    if carves_val(fmt, annot, split) or split in CARVED_SPLITS:
        ident["val_carve"] = VAL_FRACTION
    return ident


def _synthetic(split: str, size: int, n: int | None, subset: int | None, seed: int) -> PoseSet:
    if split not in DEFAULT_SIZE:
        raise ConfigError(f"unknown split {split!r} for synthetic (train, val, test)", source="synthetic", field="split")
    n = n or DEFAULT_SIZE[split]
    idx = subset_indices(n, subset, seed)
    images = np.empty((len(idx), size, size, 3), np.uint8)
    joints = np.empty((len(idx), 14, 3), np.float32)
    for k, i in enumerate(idx.tolist()):
        images[k], joints[k] = render_sample(seed, split, i, size)
    norm = np.hypot(*(joints[:, 8, :2] - joints[:, 3, :2]).T).astype(np.float32)
    affine = np.broadcast_to(np.array([[1, 0, 0], [0, 1, 0]], np.float32), (len(idx), 2, 3)).copy()
    meta = synthetic_meta() | {"format": "synthetic", "source": f"synthetic:{n}", "split": split, "size": size,
                               "n_records": n, "subset": subset, "seed": seed, "skipped": 0, "norm_estimated": []}
    return PoseSet(images, joints, joints.copy(), affine, np.maximum(norm, 1.0),
                   [f"synthetic-{split}-{i:06d}" for i in idx.tolist()], meta)


def _prepare(fmt: DatasetFormat, annot: Path, split: str, size: int, subset: int | None, seed: int,
             skip_bad: bool, workers: int | None) -> PoseSet:
    ann = read_annotations(fmt, annot, split, skip_bad=skip_bad)
    if not ann.records:
        raise DataError(f"no usable records in split {split!r}", source=str(annot), field=f"{split} split")
    records = [ann.records[i] for i in subset_indices(len(ann.records), subset, seed)]
    affines = [crop_affine(r.center, r.box, size) for r in records]
    crops, errors = _decode_all(records, affines, size, workers)
    if errors and not skip_bad:
        i, msg = errors[0]
        raise DataError(msg, source=str(records[i].image), field=f"record {i} ({records[i].name})")
    if errors:
        i, msg = errors[0]
        log.warning("skipped %d bad record(s) of %d in %s (first: %s: %s)", len(errors) + ann.skipped,
                    len(records) + ann.skipped, annot, records[i].image, msg)
    elif ann.skipped:
        log.warning("skipped %d bad annotation entr(ies) in %s", ann.skipped, annot)
    bad = {i for i, _ in errors}
    keep = [i for i in range(len(records)) if i not in bad]
    if not keep:
        raise DataError("every selected record is bad", source=str(annot), field=f"{split} split")
    meta = {"dataset": ann.dataset, "format": fmt.name, "source": str(annot), "split": split, "size": size,
            "joint_names": ann.joint_names, "flip_pairs": [list(p) for p in ann.flip_pairs],
            "metric": ann.metric, "norm_kind": ann.norm_kind, "split_note": ann.split_note,
            "n_records": len(ann.records), "subset": subset, "seed": seed,
            "skipped": ann.skipped + len(errors), **ann.extra}
    return _poseset([records[i] for i in keep], np.stack([affines[i] for i in keep]),
                    np.stack([crops[i] for i in keep]), meta)


def _poseset(recs: list[Record], aff: np.ndarray, images: np.ndarray, meta: dict) -> PoseSet:
    """The decoded records as a PoseSet; `meta` gets the per-sample entries."""
    j_orig = np.stack([r.joints for r in recs])
    j_crop = original_to_crop(j_orig, aff)
    j_crop[j_orig[..., 2] <= 0] = 0.0  # unannotated joints carry no position anywhere
    meta["norm_estimated"] = [k for k, r in enumerate(recs) if r.norm_estimated]
    if any(r.annotation_id is not None for r in recs):
        meta["image_ids"] = [r.image_id for r in recs]
        meta["annotation_ids"] = [r.annotation_id for r in recs]
    return PoseSet(images, j_crop.astype(np.float32), j_orig.astype(np.float32), aff.astype(np.float32),
                   np.array([r.norm for r in recs], np.float32), [r.name for r in recs], meta)


def _decode_all(records: list[Record], affines: list[np.ndarray], size: int,
                workers: int | None) -> tuple[dict[int, np.ndarray], list[tuple[int, str]]]:
    """Decode and crop every record's image; returns crops by index and (index, error) pairs."""
    tasks = [(i, str(r.image), a, size) for i, (r, a) in enumerate(zip(records, affines))]
    if workers is None:
        workers = min(4, os.cpu_count() or 1)
    crops: dict[int, np.ndarray] = {}
    errors: list[tuple[int, str]] = []
    def collect(results) -> None:
        for i, img, err in results:
            if err:
                errors.append((i, err))
            else:
                crops[i] = img

    if workers <= 1 or len(tasks) < _POOL_MIN:
        collect(map(load_crop, tasks))
    else:
        # fork, like torch's DataLoader: no re-import of __main__ (spawn breaks for stdin scripts),
        # and the children only run PIL and numpy, never the parent's torch threads or CUDA.
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else None)
        with ctx.Pool(workers) as pool:
            collect(pool.imap(load_crop, tasks, chunksize=32))
    errors.sort()
    return crops, errors


# ---------------------------------------------------------------- on-disk cache

def _read_cache(entry: Path) -> PoseSet | None:
    if not (entry / "meta.json").is_file():
        return None
    try:
        meta = json.loads((entry / "meta.json").read_text())
        arrays = {k: np.load(entry / f"{k}.npy", mmap_mode="r" if k == "images" else None, allow_pickle=False)
                  for k in _ARRAYS}
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
