"""`PoseSet`: prepared samples at one resolution, and the seeded subset every format picks from.

Its own module so that the dataset formats (trainers.formats), which build PoseSets, and
trainers.data, which caches them, can both import it; trainers.data re-exports both names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from space.errors import ConfigError
from trainers.crop import original_to_crop

if TYPE_CHECKING:
    from trainers.formats.base import Record

# meta entries with one value per sample, kept in step by PoseSet.select (COCO: for COCOeval)
_PER_SAMPLE_META = ("image_ids", "annotation_ids")


@dataclass
class PoseSet:
    """Prepared samples at one resolution (docs/design.md); `images` may be a read-only
    memmap."""

    images: np.ndarray  # (N, S, S, 3) uint8
    joints: np.ndarray  # (N, J, 3) float32 crop pixels, v = 1 annotated
    joints_orig: np.ndarray  # (N, J, 3) float32 original pixels
    affine: np.ndarray  # (N, 2, 3) float32 original -> crop
    norm: np.ndarray  # (N,) float32 metric normaliser, original pixels
    names: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.names)

    def select(self, idx: Sequence[int] | np.ndarray) -> PoseSet:
        """A new PoseSet of the samples at `idx` (arrays copied)."""
        idx = np.asarray(idx, dtype=np.int64)
        meta = dict(self.meta)
        est = set(meta.get("norm_estimated", []))
        meta["norm_estimated"] = [k for k, i in enumerate(idx.tolist()) if i in est]
        for key in _PER_SAMPLE_META:
            if key in meta:
                meta[key] = [meta[key][i] for i in idx.tolist()]
        return PoseSet(
            np.asarray(self.images[idx]),
            self.joints[idx],
            self.joints_orig[idx],
            self.affine[idx],
            self.norm[idx],
            [self.names[i] for i in idx],
            meta,
        )


def subset_indices(n: int, subset: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a seeded `subset` of range(n) (all of it when subset is None or >= n)."""
    if subset is None or subset >= n:
        return np.arange(n)
    if subset <= 0:
        raise ConfigError(f"subset must be positive, got {subset}", source="<arg>", field="subset")
    return np.sort(np.random.default_rng(seed).choice(n, size=subset, replace=False))


def from_records(recs: list[Record], aff: np.ndarray, images: np.ndarray, meta: dict) -> PoseSet:
    """Decoded records as a PoseSet: `aff` (N, 2, 3) original -> crop, `images` their crops;
    `meta` gets the per-sample entries."""
    j_orig = np.stack([r.joints for r in recs])
    j_crop = original_to_crop(j_orig, aff)
    j_crop[j_orig[..., 2] <= 0] = 0.0  # unannotated joints carry no position anywhere
    meta["norm_estimated"] = [k for k, r in enumerate(recs) if r.norm_estimated]
    if any(r.annotation_id is not None for r in recs):
        meta["image_ids"] = [r.image_id for r in recs]
        meta["annotation_ids"] = [r.annotation_id for r in recs]
    return PoseSet(
        images,
        j_crop.astype(np.float32),
        j_orig.astype(np.float32),
        aff.astype(np.float32),
        np.array([r.norm for r in recs], np.float32),
        [r.name for r in recs],
        meta,
    )
