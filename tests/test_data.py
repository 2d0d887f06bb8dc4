"""load_poses: crop/uncrop, the on-disk cache, subsets, the decoding pool, synthetic data, real LSPET."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

import trainers.crop as crop_mod
from trainers.data import (
    DataError,
    clear_memo,
    crop_to_original,
    load_poses,
    original_to_crop,
    to_tensor_batch,
)

LSPET = Path(__file__).resolve().parents[1].parent / "shared/datasets/lspet"


@pytest.fixture(autouse=True)
def _fresh_memo():
    clear_memo()
    yield
    clear_memo()


def write_lspet(
    root: Path, n: int = 1006, seed: int = 0, images: range | None = None
) -> np.ndarray:
    """LSPET-layout fixture: joints.mat (14, 3, N) and small noisy JPEGs."""
    rng = np.random.default_rng(seed)
    xy = np.stack([rng.uniform(5, 70, (n, 14)), rng.uniform(5, 50, (n, 14))], -1)
    j = np.concatenate([xy, (rng.random((n, 14, 1)) < 0.85).astype(float)], -1)
    root.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(root / "joints.mat", {"joints": j.transpose(1, 2, 0)})
    for i in images if images is not None else range(n):
        p = root / "images" / f"im{i + 1:05d}.jpg"
        p.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (56, 76, 3), dtype=np.uint8)).save(p)
    return j


def test_crop_then_uncrop_within_half_pixel(tmp_path):
    write_lspet(tmp_path, images=range(6))
    ps = load_poses(str(tmp_path), "train", 48, cache_dir=tmp_path / "c")
    vis = ps.joints_orig[..., 2] > 0
    back = crop_to_original(ps.joints, ps.affine)
    assert np.abs(back[..., :2] - ps.joints_orig[..., :2])[vis].max() < 0.5
    # and for predictions from anywhere in the crop, one sample at a time
    rng = np.random.default_rng(0)
    pts = np.concatenate([rng.uniform(0, 47, (14, 2)), np.ones((14, 1))], 1)
    for a in ps.affine:
        assert (
            np.abs(original_to_crop(crop_to_original(pts, a), a)[:, :2] - pts[:, :2]).max() < 1e-3
        )
    # the crop holds every annotated joint
    assert ((ps.joints[..., :2] >= 0) & (ps.joints[..., :2] <= 47))[vis].all()


def test_cache_reused_and_keyed(tmp_path, monkeypatch):
    root = tmp_path / "lspet"
    j = write_lspet(root, images=range(6))
    cache = tmp_path / "cache"
    first = load_poses(str(root), "train", 32, cache_dir=cache)
    assert len(list(cache.iterdir())) == 1

    def no_decoding(*a, **k):
        raise AssertionError("decoded an image although the set is cached")

    monkeypatch.setattr(crop_mod, "load_crop", no_decoding)
    clear_memo()
    again = load_poses(str(root), "train", 32, cache_dir=cache)
    for k in ("images", "joints", "joints_orig", "affine", "norm"):
        np.testing.assert_array_equal(getattr(again, k), getattr(first, k))
    assert again.names == first.names and again.meta["split"] == "train"
    assert load_poses(str(root), "train", 32, cache_dir=cache) is again  # in-process memo
    # a different size, split, subset or seed is a different entry: it must decode
    for kw in (
        {"size": 40, "split": "train"},
        {"size": 32, "split": "val"},
        {"size": 32, "split": "train", "subset": 3},
        {"size": 32, "split": "train", "seed": 1},
    ):
        with pytest.raises(AssertionError, match="decoded"):
            load_poses(str(root), kw.pop("split"), kw.pop("size"), cache_dir=cache, workers=1, **kw)
    # a changed annotation file invalidates the entry
    clear_memo()
    j[:, :, :2] += 1.0
    scipy.io.savemat(root / "joints.mat", {"joints": j.transpose(1, 2, 0)})
    st = (root / "joints.mat").stat()
    os.utime(root / "joints.mat", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="decoded"):
        load_poses(str(root), "train", 32, cache_dir=cache)
    assert len(list(cache.iterdir())) == 1  # no half-written entries left behind


def test_subset_is_seeded_and_chosen_before_decoding(tmp_path):
    # only 3 of the 1006 images exist: a subset must not touch the others
    j = write_lspet(tmp_path, images=range(0))
    sel = np.sort(np.random.default_rng(7).choice(1000, 3, replace=False))
    write_lspet(tmp_path, images=6 + sel)  # val = records 6..1005
    ps = load_poses(str(tmp_path), "val", 32, subset=3, seed=7, cache_dir=tmp_path / "c")
    assert len(ps) == 3
    with pytest.raises(DataError):
        load_poses(str(tmp_path), "val", 32, subset=3, seed=8, cache_dir=tmp_path / "c", workers=1)
    assert j.shape == (1006, 14, 3)


def test_pool_matches_serial(tmp_path, monkeypatch):
    write_lspet(tmp_path, images=range(6))
    serial = load_poses(str(tmp_path), "train", 32, cache_dir=tmp_path / "a", workers=1)
    monkeypatch.setattr(crop_mod, "_POOL_MIN", 1)
    clear_memo()
    pooled = load_poses(str(tmp_path), "train", 32, cache_dir=tmp_path / "b", workers=2)
    np.testing.assert_array_equal(pooled.images, serial.images)


def test_synthetic_deterministic_and_sane():
    a = load_poses("synthetic:40", "train", 64, seed=3)
    clear_memo()
    b = load_poses("synthetic:40", "train", 64, seed=3)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.joints, b.joints)
    c = load_poses("synthetic:40", "train", 64, seed=4)
    v = load_poses("synthetic:40", "val", 64, seed=3)
    assert not np.array_equal(a.images, c.images) and not np.array_equal(a.images, v.images)
    sub = load_poses("synthetic:40", "train", 64, seed=3, subset=5)
    idx = [a.names.index(n) for n in sub.names]
    np.testing.assert_array_equal(sub.images, a.images[idx])
    assert a.images.shape == (40, 64, 64, 3) and a.joints.shape == (40, 14, 3)
    assert (
        (a.joints[..., 2] == 1).all()
        and (a.joints[..., :2] >= 0).all()
        and (a.joints[..., :2] <= 63).all()
    )
    assert (a.norm > 2).all() and a.meta["metric"] == "pck" and len(a.meta["flip_pairs"]) == 6
    # the person is drawn where the joints are: pixels near joints differ from the image border
    # more than random pixels do (a weak but real image/label consistency check)
    img = a.images.astype(float)
    ji = np.clip(np.round(a.joints[..., :2]).astype(int), 0, 63)
    at_joints = img[np.arange(40)[:, None], ji[..., 1], ji[..., 0]]
    assert at_joints.std(axis=1).mean() > 0
    # the right shoulder is on the image left of the left shoulder more often than not (facing camera)
    assert (a.joints[:, 8, 0] < a.joints[:, 9, 0]).mean() > 0.6


def test_to_tensor_batch(tmp_path):
    ps = load_poses("synthetic:8", "train", 32)
    x, j = to_tensor_batch(ps, np.array([3, 1]), "cpu")
    assert x.shape == (2, 3, 32, 32) and x.dtype == torch.float32 and float(x.max()) <= 1.0
    np.testing.assert_allclose(x[0].permute(1, 2, 0).numpy() * 255, ps.images[3], atol=1e-3)
    np.testing.assert_array_equal(j.numpy(), ps.joints[[3, 1]])


@pytest.mark.skipif(
    not (LSPET / "joints.mat").is_file(), reason="LSPET not present at ../shared/datasets/lspet"
)
def test_real_lspet_subset(tmp_path):
    train = load_poses(str(LSPET), "train", 64, subset=64, seed=0, cache_dir=tmp_path)
    val = load_poses(f"lspet:{LSPET}", "val", 64, subset=64, seed=0, cache_dir=tmp_path)
    for ps in (train, val):
        assert ps.images.shape == (64, 64, 64, 3) and ps.joints.shape == (64, 14, 3)
        assert ps.meta["dataset"] == "lspet" and ps.meta["skipped"] == 0
        assert (ps.norm > 0).all() and np.isfinite(ps.norm).all()
        frac = ps.joints[..., 2].mean()
        assert 0.6 < frac < 1.0  # LSPET leaves about 12 % of joints unannotated
        assert ps.images.mean() > 20  # real pictures, not black padding
    assert all(int(n[2:7]) <= 9000 for n in train.names)
    assert all(int(n[2:7]) > 9000 for n in val.names)
    vis = val.joints[..., 2] > 0
    back = crop_to_original(val.joints, val.affine)
    assert np.abs(back - val.joints_orig)[..., :2][vis].max() < 0.5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_to_tensor_batch_cuda():
    ps = load_poses("synthetic:8", "train", 32)
    x, j = to_tensor_batch(ps, np.arange(4), "cuda")
    assert x.is_cuda and j.is_cuda
    np.testing.assert_allclose(x.cpu()[0].permute(1, 2, 0).numpy() * 255, ps.images[0], atol=1e-3)
