"""Scoring saved weights on a split (`launch.py evaluate`, finalize's test scores): the result as
JSON-ready dict, a per-joint table, and the predictions for official scoring tools
(`prediction_records`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from space.errors import ConfigError
from space.profile import resolve_device
from space.spec import ArchSpec
from trainers.data import PoseSet, load_poses
from trainers.engine import predict
from trainers.metrics import score_poses
from trainers.proxy import check_input_size
from trainers.weights import load_model

UNITS = "fractions (0-1; 0.5 = 50 %)"  # every score evaluate prints and writes


def evaluate_weights(
    spec: ArchSpec,
    weights: str | Path,
    data: str,
    split: str = "test",
    *,
    input_size: int | None = None,
    flip: bool = False,
    device: str | None = None,
    skip_bad: bool = False,
    keep_predictions: bool = False,
) -> dict:
    """Score saved weights on a split; returns the JSON-ready result (metrics, per joint, names).
    All scores are fractions (0-1). With `keep_predictions`, "predictions" holds
    `prediction_records` (for `evaluate --save-predictions`)."""
    size = input_size or spec.input_size
    model, spec = load_model(spec, weights, size)
    dev = resolve_device(device)
    model.to(dev)
    poses = load_poses(data, split, size, skip_bad=skip_bad)
    if poses.joints.shape[1] != spec.joints:
        raise ConfigError(
            f"the weights predict {spec.joints} joints but {data} ({split}) has "
            f"{poses.joints.shape[1]}",
            source=str(weights),
            field="joints",
        )
    check_input_size(spec, poses, size)
    pred, maxvals = predict(model, poses, device=dev, flip=flip)
    metric = poses.meta.get("metric", "pck")
    scores = score_poses(
        pred, poses.joints_orig, poses.norm, metric, maxvals, True, meta=poses.meta
    )
    names = list(poses.meta.get("joint_names") or [f"joint{i}" for i in range(spec.joints)])
    result = {
        "arch_id": spec.arch_id,
        "weights": str(weights),
        "data": data,
        "split": split,
        "input_size": size,
        "flip": flip,
        "metric": metric,
        "units": UNITS,
        "samples": int(len(poses.images)),
        "skipped": int(poses.meta.get("skipped", 0)),
        "joint_names": names,
        "metrics": {key: s.to_dict() for key, s in scores.items()},
    }
    if keep_predictions:
        result["predictions"] = prediction_records(poses, pred, maxvals)
    return result


def prediction_records(poses: PoseSet, pred: np.ndarray, maxvals: np.ndarray) -> list | dict:
    """Predictions in original image pixels (pixel i's centre at i), for official scoring tools.

    A COCO set (image ids in its meta): COCO's results format, a list of {image_id, category_id
    (1, person), keypoints [x, y, 1] * 17, score (mean heatmap peak)}. Any other set: {format,
    split, joint_names, predictions: [{name, joints [[x, y, confidence], ...]}]}."""
    if "image_ids" in poses.meta:
        from trainers.metrics import _detections

        dets = _detections(pred, maxvals, poses.meta["image_ids"], [1] * len(pred))
        return [d | {"keypoints": [round(v, 2) for v in d["keypoints"]]} for d in dets]
    joints = np.concatenate(
        [np.round(pred.astype(np.float64), 2), np.round(maxvals.astype(np.float64), 4)[..., None]],
        axis=-1,
    )
    return {
        "format": poses.meta.get("format"),
        "split": poses.meta.get("split"),
        "joint_names": list(poses.meta.get("joint_names") or []),
        "coordinates": "original image pixels, pixel i's centre at i; confidence = heatmap peak",
        "predictions": [
            {"name": name, "joints": j.tolist()} for name, j in zip(poses.names, joints)
        ],
    }


def format_table(result: dict) -> str:
    """Per-joint table of the main metric, then the mean (and OKS AP where computed); every score
    a fraction (0-1, 4 decimals), said in the last line."""
    main = result["metrics"]["main"]
    width = max(len(n) for n in result["joint_names"] + ["mean"])
    lines = [f"{'joint':<{width}}  {main['name']:>8}  {'count':>6}"]
    for name, value, count in zip(result["joint_names"], main["per_joint"], main["counts"]):
        lines.append(f"{name:<{width}}  {value:8.4f}  {count:6d}")
    lines.append(f"{'mean':<{width}}  {main['mean']:8.4f}  {sum(main['counts']):6d}")
    if "oks_ap" in result["metrics"]:
        ap = result["metrics"]["oks_ap"]
        lines.append(f"OKS AP {ap['mean']:.4f}  AP50 {ap['ap50']:.4f}  AP75 {ap['ap75']:.4f}")
    lines.append(f"scores are {UNITS}")
    return "\n".join(lines)
