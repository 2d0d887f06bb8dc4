import math

import numpy as np
import pytest

from trainers.metrics import oks_ap, pck, pckh, score_poses, uncrop


def test_pck_hand_computed():
    # Two people, three joints; torso 10 px and 20 px -> thresholds 2 px and 4 px at alpha 0.2.
    gt = np.zeros((2, 3, 2))
    pred = np.zeros((2, 3, 2))
    pred[0, 0] = [1.0, 1.0]  # 1.41 <= 2    hit
    pred[0, 1] = [3.0, 0.0]  # 3    >  2    miss
    pred[0, 2] = [0.0, 2.0]  # 2    <= 2    hit (boundary counts)
    pred[1, 0] = [3.0, 3.0]  # 4.24 >  4    miss
    pred[1, 1] = [0.0, 3.9]  # hit
    pred[1, 2] = [100.0, 0.0]  # far, but unannotated: ignored
    vis = np.array([[1, 1, 1], [1, 1, 0]])
    s = pck(pred, gt, vis, np.array([10.0, 20.0]), alpha=0.2)
    assert s.per_joint[0] == 0.5 and s.per_joint[1] == 0.5 and s.per_joint[2] == 1.0
    assert s.counts == [2, 2, 1]
    assert s.mean == pytest.approx(3 / 5)  # over annotated instances, not the mean of per-joint


def test_pck_never_annotated_joint_is_nan_and_excluded():
    gt = np.zeros((1, 2, 2))
    s = pck(gt, gt, np.array([[1, 0]]), np.array([10.0]))
    assert s.per_joint[0] == 1.0 and math.isnan(s.per_joint[1]) and s.mean == 1.0


def test_pckh_uses_half_head_size():
    gt = np.zeros((1, 2, 2))
    pred = np.array([[[0.0, 4.9], [5.1, 0.0]]])
    s = pckh(pred, gt, np.ones((1, 2)), np.array([10.0]))
    assert s.per_joint == [1.0, 0.0] and s.mean == 0.5 and s.name == "pckh@0.5"


def test_uncrop_inverts_a_rotation_scale_shift():
    orig = np.array([[[10.0, 20.0], [30.0, -5.0]]])
    th = np.deg2rad(30)
    a = 1.7 * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    affine = np.concatenate([a, [[4.0], [-7.0]]], axis=1)[None]
    crop = orig @ a.T + affine[0, :, 2]
    assert np.allclose(uncrop(crop, affine), orig)


def test_score_poses_dispatches_on_metric():
    gt = np.zeros((1, 2, 3))
    gt[..., 2] = 1
    pred = np.array([[[0.0, 3.0], [0.0, 6.0]]])
    assert score_poses(pred, gt, np.array([20.0]), "pck")["main"].mean == 0.5  # 4 px
    assert score_poses(pred, gt, np.array([20.0]), "pckh")["main"].mean == 1.0  # 10 px
    with pytest.raises(ValueError):
        score_poses(pred, gt, np.array([20.0]), "nope")


def test_oks_ap_perfect_and_far_predictions():
    pytest.importorskip("pycocotools", reason="pycocotools not installed: OKS AP is skipped")
    rng = np.random.default_rng(0)
    gt = rng.uniform(0, 100, (6, 17, 2))
    vis = np.ones((6, 17))
    area = np.full(6, 100.0**2)
    scores = np.ones((6, 17))
    assert oks_ap(gt, scores, gt, vis, area).mean == pytest.approx(1.0)
    assert oks_ap(gt + 60.0, scores, gt, vis, area).mean == pytest.approx(0.0)
    # Half the people perfect, half far off, the perfect ones scored higher: precision 1 up to
    # recall 0.5, so AP = 0.5 (within COCO's 101-point interpolation).
    pred = gt.copy()
    pred[3:] += 60.0
    scores[3:] = 0.1
    assert oks_ap(pred, scores, gt, vis, area).mean == pytest.approx(0.5, abs=0.011)
