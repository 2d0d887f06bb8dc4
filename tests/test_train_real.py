"""A short proxy run on real LSPET people must learn: lower loss, PCK@0.2 well above the mean pose."""

import time
from pathlib import Path

import numpy as np
import pytest

from space.spec import load_arch
from trainers.data import load_poses
from trainers.metrics import pck, uncrop
from trainers.proxy import ProxyBudget, train_proxy

LSPET = Path(__file__).resolve().parents[1].parent / "shared/datasets/lspet"

pytestmark = pytest.mark.skipif(
    not (LSPET / "joints.mat").is_file(), reason=f"LSPET not found at {LSPET}"
)


@pytest.mark.slow  # 15-40 s: an end-to-end run, kept out of the fast job's 10 minutes
def test_proxy_on_lspet_beats_mean_pose(tmp_path):
    start = time.perf_counter()
    train = load_poses(str(LSPET), "train", 64, subset=1000, seed=0, cache_dir=tmp_path, workers=1)
    val = load_poses(str(LSPET), "val", 64, subset=200, seed=0, cache_dir=tmp_path, workers=1)

    # Baseline: the mean training pose (in crop pixels), put in every val crop, mapped back.
    vis = train.joints[..., 2] > 0
    mean_pose = np.stack([train.joints[vis[:, j], j, :2].mean(axis=0) for j in range(14)])
    baseline_pred = uncrop(np.broadcast_to(mean_pose, (len(val.images), 14, 2)), val.affine)
    baseline = pck(
        baseline_pred, val.joints_orig[..., :2], val.joints_orig[..., 2], val.norm, 0.2
    ).mean

    result = train_proxy(
        load_arch("bulat-sgsc-tiny"),
        train,
        val,
        ProxyBudget(epochs=4, batch_size=16, seed=0),
        threads=1,
    )
    print(
        f"mean-pose PCK@0.2 {baseline:.3f}  proxy {result.pck:.3f}  loss {result.loss_curve}  "
        f"{result.images_per_s:.0f} img/s  {time.perf_counter() - start:.0f} s"
    )
    assert result.loss_curve[-1] < 0.97 * result.loss_curve[0]
    assert result.pck > max(2 * baseline, baseline + 0.05)
