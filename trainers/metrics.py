"""Pose accuracy: PCK (LSP), PCKh (MPII) and OKS AP (COCO), per joint and mean.

All metrics work in ORIGINAL image pixels: predictions made in the crop are mapped back with
`uncrop` (the inverse of PoseSet.affine) before scoring, so crop scale never biases a score.
Only annotated joints count; the mean is over all annotated joint instances (the convention of the
LSP and MPII evaluation scripts), and a joint never annotated in the set has per-joint NaN.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field

import numpy as np

from trainers.crop import crop_to_original

# COCO keypoint sigmas (person_keypoints, 17 joints), from the COCO evaluation code.
COCO_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62,
                        1.07, 1.07, .87, .87, .89, .89]) / 10.0

# Default threshold per PoseSet.meta["metric"]; "oks" sets get a PCK@0.2 by sqrt(box area) as
# their fast proxy score, and OKS AP from `oks_ap` when evaluated in full.
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
        return {"name": self.name, "mean": self.mean, "per_joint": self.per_joint,
                "counts": self.counts, **self.extra}


def uncrop(coords: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Map (N, J, 2) crop coordinates to original image pixels with the inverse of (N, 2, 3) affines."""
    return crop_to_original(np.asarray(coords, dtype=np.float64), affine)


def pck(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, norm: np.ndarray,
        alpha: float = 0.2, name: str | None = None) -> Score:
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
    return Score(name or f"pck@{alpha:g}", mean, [float(p) for p in per_joint], [int(c) for c in counts])


def pckh(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, head_size: np.ndarray,
         alpha: float = 0.5) -> Score:
    """PCKh@alpha (MPII): PCK normalised by head size."""
    return pck(pred, gt, visible, head_size, alpha, name=f"pckh@{alpha:g}")


def oks_ap(pred: np.ndarray, scores: np.ndarray, gt: np.ndarray, visible: np.ndarray,
           area: np.ndarray) -> Score | None:
    """COCO OKS-based AP with pycocotools, one person per sample; None when pycocotools is absent.

    pred (N, 17, 2) and gt (N, 17, 2) in original pixels, scores (N, 17) heatmap maxima (the person
    score is their mean over joints), area (N,) the person's area (box area for our crops).
    """
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        return None
    n, j = np.asarray(gt).shape[:2]
    if j != len(COCO_SIGMAS):
        raise ValueError(f"OKS AP needs the 17 COCO joints, got {j}")
    vis = (np.asarray(visible) > 0).astype(int) * 2
    images, anns, dets = [], [], []
    for i in range(n):
        kp = np.concatenate([np.asarray(gt[i], float), vis[i][:, None]], axis=1).ravel().tolist()
        images.append({"id": i + 1})
        anns.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0,
                     "area": float(area[i]), "num_keypoints": int((vis[i] > 0).sum()),
                     "keypoints": kp, "bbox": _bbox(np.asarray(gt[i]), vis[i] > 0)})
        pk = np.concatenate([np.asarray(pred[i], float), np.ones((j, 1))], axis=1).ravel().tolist()
        dets.append({"image_id": i + 1, "category_id": 1, "keypoints": pk,
                     "score": float(np.mean(scores[i]))})
    coco = COCO()
    coco.dataset = {"images": images, "annotations": anns,
                    "categories": [{"id": 1, "name": "person"}]}
    # pycocotools prints progress and summaries to stdout; keep our CLI output clean.
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
        res = coco.loadRes(dets)
        ev = COCOeval(coco, res, "keypoints")
        ev.params.useSegm = None
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    s = ev.stats
    return Score("oks_ap", float(s[0]), [], [], {"ap50": float(s[1]), "ap75": float(s[2]),
                                                 "ar": float(s[5])})


def _bbox(xy: np.ndarray, vis: np.ndarray) -> list[float]:
    pts = xy[vis] if vis.any() else xy
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def score_poses(pred_orig: np.ndarray, joints_orig: np.ndarray, norm: np.ndarray, metric: str,
                maxvals: np.ndarray | None = None, full: bool = False) -> dict[str, Score]:
    """The dataset's metric on original-coordinate predictions: {"main": Score, ...}.

    "main" is PCK@0.2 (metric "pck"), PCKh@0.5 ("pckh") or PCK@0.2 by sqrt(box area) ("oks").
    With full=True a COCO set also gets "oks_ap" (when pycocotools is installed).
    """
    if metric not in DEFAULT_ALPHA:
        raise ValueError(f"unknown metric {metric!r}")
    gt, vis = joints_orig[..., :2], joints_orig[..., 2]
    fn = pckh if metric == "pckh" else pck
    out = {"main": fn(pred_orig, gt, vis, norm, DEFAULT_ALPHA[metric])}
    if metric == "oks" and full:
        mv = maxvals if maxvals is not None else np.ones(vis.shape)
        ap = oks_ap(pred_orig, mv, gt, vis, np.asarray(norm, float) ** 2)
        if ap is not None:
            out["oks_ap"] = ap
    return out
