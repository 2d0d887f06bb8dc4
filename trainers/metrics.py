"""Pose accuracy: PCK (LSP), PCKh (MPII) and OKS AP (COCO), per joint and mean.

All metrics work in ORIGINAL image pixels: predictions made in the crop are mapped back with
`uncrop` (the inverse of PoseSet.affine) before scoring, so crop scale never biases a score.
Only annotated joints count; the mean is over all annotated joint instances (the convention of the
LSP and MPII evaluation scripts), and a joint never annotated in the set has per-joint NaN.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from space.errors import ConfigError
from trainers.crop import crop_to_original

# COCO keypoint sigmas (person_keypoints, 17 joints), from the COCO evaluation code.
COCO_SIGMAS = (
    np.array(
        [
            0.26,
            0.25,
            0.25,
            0.35,
            0.35,
            0.79,
            0.79,
            0.72,
            0.72,
            0.62,
            0.62,
            1.07,
            1.07,
            0.87,
            0.87,
            0.89,
            0.89,
        ]
    )
    / 10.0
)

# Default threshold per PoseSet.meta["metric"]; "oks" sets get a PCK@0.2 by sqrt(box area) as
# their fast proxy score, and OKS AP (COCOeval) when evaluated in full.
DEFAULT_ALPHA = {"pck": 0.2, "pckh": 0.5, "oks": 0.2}


@dataclass
class Score:
    """One metric over a set: `mean` over annotated joint instances, `per_joint` (NaN if never annotated)."""

    name: str
    mean: float
    per_joint: list[float]
    counts: list[int] = field(default_factory=list)
    extra: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "mean": self.mean,
            "per_joint": self.per_joint,
            "counts": self.counts,
            **self.extra,
        }


def uncrop(coords: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Map (N, J, 2) crop coordinates to original image pixels with the inverse of (N, 2, 3) affines."""
    return crop_to_original(np.asarray(coords, dtype=np.float64), affine)


def pck(
    pred: np.ndarray,
    gt: np.ndarray,
    visible: np.ndarray,
    norm: np.ndarray,
    alpha: float = 0.2,
    name: str | None = None,
) -> Score:
    """Fraction of annotated joints within alpha * norm of the ground truth.

    pred, gt: (N, J, 2) in the same pixels as norm (N,); visible: (N, J), > 0 = annotated.
    LSP: norm = torso size, alpha 0.2. MPII: norm = head size, alpha 0.5 (PCKh).
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    vis = np.asarray(visible) > 0
    norm = np.asarray(norm, dtype=np.float64)
    dist = np.linalg.norm(pred - gt, axis=-1)
    hit = (dist <= alpha * norm[:, None]) & vis
    counts = vis.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_joint = np.where(counts > 0, hit.sum(axis=0) / np.maximum(counts, 1), np.nan)
    mean = float(hit.sum() / counts.sum()) if counts.sum() > 0 else float("nan")
    return Score(
        name or f"pck@{alpha:g}", mean, [float(p) for p in per_joint], [int(c) for c in counts]
    )


def pckh(
    pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, head_size: np.ndarray, alpha: float = 0.5
) -> Score:
    """PCKh@alpha (MPII): PCK normalised by head size."""
    return pck(pred, gt, visible, head_size, alpha, name=f"pckh@{alpha:g}")


def _pycocotools(source: str) -> tuple[Any, Any]:
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise ConfigError(
            "OKS AP needs pycocotools (pip install pycocotools, or the 'coco' extra)",
            source=source,
            field="oks_ap",
        ) from None
    return COCO, COCOeval


def _cocoeval(gt: Any, dets: list[dict], img_ids: list | None, cocoeval: Any) -> Score:
    """COCOeval keypoints AP of `dets` against the COCO object `gt` (on `img_ids`, default all)."""
    # pycocotools prints progress and summaries to stdout; keep our CLI output clean.
    with contextlib.redirect_stdout(io.StringIO()):
        ev = cocoeval(gt, gt.loadRes(dets), "keypoints")
        if img_ids is not None:
            ev.params.imgIds = img_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    s = ev.stats
    return Score(
        "oks_ap", float(s[0]), [], [], {"ap50": float(s[1]), "ap75": float(s[2]), "ar": float(s[5])}
    )


def _detections(
    pred: np.ndarray, scores: np.ndarray, image_ids: Sequence, category_ids: Sequence
) -> list[dict]:
    """COCO results: one person per sample, scored by the mean of its joints' heatmap maxima."""
    pred = np.asarray(pred, dtype=np.float64)
    dets = []
    for i in range(len(pred)):
        kp = np.concatenate([pred[i], np.ones((len(pred[i]), 1))], axis=1).ravel().tolist()
        dets.append(
            {
                "image_id": image_ids[i],
                "category_id": category_ids[i],
                "keypoints": kp,
                "score": float(np.mean(scores[i])),
            }
        )
    return dets


def coco_oks_ap(
    pred: np.ndarray,
    scores: np.ndarray,
    annotation_file: str | Path,
    image_ids: Sequence,
    annotation_ids: Sequence,
) -> Score:
    """The official COCO keypoint AP: `pycocotools.cocoeval.COCOeval` on the original annotation file.

    pred (N, 17, 2) in original pixels, scores (N, 17) heatmap maxima; sample i is annotation
    annotation_ids[i] of image image_ids[i]. Evaluated on those images, so crowd and zero-keypoint
    regions are ignored as COCO ignores them. People of those images that the set left out (a
    subset, skipped bad records) are dropped from the ground truth; on a whole split nothing is,
    and the number is exactly COCOeval's.
    """
    coco, cocoeval = _pycocotools(str(annotation_file))
    if any(a is None for a in annotation_ids):
        raise ConfigError(
            "COCOeval needs every annotation's 'id'",
            source=str(annotation_file),
            field="annotations",
        )
    with contextlib.redirect_stdout(io.StringIO()):
        gt = coco(str(annotation_file))
    images, kept = set(image_ids), set(annotation_ids)
    left_out = [
        a
        for a in gt.dataset["annotations"]
        if a["image_id"] in images
        and a["id"] not in kept
        and not (a.get("iscrowd", 0) or a.get("num_keypoints", 0) == 0)
    ]
    if left_out:
        drop = {a["id"] for a in left_out}
        gt.dataset["annotations"] = [a for a in gt.dataset["annotations"] if a["id"] not in drop]
        with contextlib.redirect_stdout(io.StringIO()):
            gt.createIndex()
    categories = [gt.anns[a]["category_id"] for a in annotation_ids]
    return _cocoeval(
        gt, _detections(pred, scores, list(image_ids), categories), sorted(images), cocoeval
    )


def oks_ap(
    pred: np.ndarray, scores: np.ndarray, gt: np.ndarray, visible: np.ndarray, area: np.ndarray
) -> Score:
    """OKS AP with each sample as its own image (no crowd or ignore regions): for sets that do not
    come from a COCO annotation file. A COCO set is scored by `coco_oks_ap` instead.

    pred (N, 17, 2) and gt (N, 17, 2) in original pixels, scores (N, 17) heatmap maxima (the person
    score is their mean over joints), area (N,) the person's area (box area for our crops).
    """
    coco, cocoeval = _pycocotools("<metric>")
    n, j = np.asarray(gt).shape[:2]
    if j != len(COCO_SIGMAS):
        raise ValueError(f"OKS AP needs the 17 COCO joints, got {j}")
    vis = (np.asarray(visible) > 0).astype(int) * 2
    images, anns = [], []
    for i in range(n):
        kp = np.concatenate([np.asarray(gt[i], float), vis[i][:, None]], axis=1).ravel().tolist()
        images.append({"id": i + 1})
        anns.append(
            {
                "id": i + 1,
                "image_id": i + 1,
                "category_id": 1,
                "iscrowd": 0,
                "area": float(area[i]),
                "num_keypoints": int((vis[i] > 0).sum()),
                "keypoints": kp,
                "bbox": _bbox(np.asarray(gt[i]), vis[i] > 0),
            }
        )
    ground = coco()
    ground.dataset = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": 1, "name": "person"}],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        ground.createIndex()
    return _cocoeval(
        ground, _detections(pred, scores, list(range(1, n + 1)), [1] * n), None, cocoeval
    )


def _bbox(xy: np.ndarray, vis: np.ndarray) -> list[float]:
    pts = xy[vis] if vis.any() else xy
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def score_poses(
    pred_orig: np.ndarray,
    joints_orig: np.ndarray,
    norm: np.ndarray,
    metric: str,
    maxvals: np.ndarray | None = None,
    full: bool = False,
    *,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Score]:
    """The dataset's metric on original-coordinate predictions: {"main": Score, ...}.

    "main" is PCK@0.2 (metric "pck"), PCKh@0.5 ("pckh") or PCK@0.2 by sqrt(box area) ("oks").
    With full=True an "oks" set also gets "oks_ap": COCOeval on the original annotation file when
    `meta` (PoseSet.meta) names it with the samples' image and annotation ids (a COCO set), else
    each sample as its own image. Needs pycocotools (a one-line ConfigError without it).
    """
    if metric not in DEFAULT_ALPHA:
        raise ValueError(f"unknown metric {metric!r}")
    gt, vis = joints_orig[..., :2], joints_orig[..., 2]
    fn = pckh if metric == "pckh" else pck
    out = {"main": fn(pred_orig, gt, vis, norm, DEFAULT_ALPHA[metric])}
    if metric == "oks" and full:
        mv = maxvals if maxvals is not None else np.ones(vis.shape)
        if meta and meta.get("coco_annotation_file") and "annotation_ids" in meta:
            out["oks_ap"] = coco_oks_ap(
                pred_orig,
                mv,
                meta["coco_annotation_file"],
                meta["image_ids"],
                meta["annotation_ids"],
            )
        else:
            out["oks_ap"] = oks_ap(pred_orig, mv, gt, vis, np.asarray(norm, float) ** 2)
    return out
