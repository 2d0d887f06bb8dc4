"""Each reader on small fixtures written in its own format; bad data; format detection."""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from PIL import Image

from space.errors import ConfigError
from trainers.data import DataError, clear_memo, load_poses


@pytest.fixture(autouse=True)
def _fresh_memo():
    clear_memo()
    yield
    clear_memo()


def write_jpeg(path: Path, w: int = 48, h: int = 40, dots: list[tuple[float, float]] = ()) -> None:
    """A grey JPEG, with white discs at `dots` (to find joints again in the crops)."""
    yy, xx = np.mgrid[0:h, 0:w]
    arr = np.full((h, w), 60.0)
    for x, y in dots:
        arr[(xx - x) ** 2 + (yy - y) ** 2 <= 4.0] = 255.0
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.repeat(arr.astype(np.uint8)[..., None], 3, 2)).save(path, quality=95)


def lsp_joints(rng: np.random.Generator, n: int, w: int = 48, h: int = 40) -> np.ndarray:
    """(N, 14, 2) joints spread over a w x h image."""
    return np.stack([rng.uniform(6, w - 6, (n, 14)), rng.uniform(6, h - 6, (n, 14))], -1)


def write_lspet(root: Path, n: int = 1004, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    xy = lsp_joints(rng, n)
    flag = (rng.random((n, 14)) < 0.8).astype(float)
    flag[:, [8, 3]] = 1.0
    flag[1, [8, 3]] = 0.0  # a sample whose torso is unannotated: norm is estimated
    j = np.concatenate([xy, flag[..., None]], -1)
    j[flag == 0, :2] = -77.0  # LSPET puts garbage where the flag is 0
    scipy.io.savemat(root / "joints.mat", {"joints": j.transpose(1, 2, 0)})  # (14, 3, N)
    for i in range(n):
        write_jpeg(root / "images" / f"im{i + 1:05d}.jpg")
    return j


def test_lspet_mat_layout_splits_and_flags(tmp_path):
    j = write_lspet(tmp_path)
    train = load_poses(str(tmp_path), "train", 32, cache_dir=tmp_path / "c")
    assert train.meta["dataset"] == "lspet" and len(train) == 4
    assert train.names == [f"im{i:05d}.jpg" for i in range(1, 5)]
    np.testing.assert_array_equal(train.joints_orig[..., 2], j[:4, :, 2])
    # unannotated joints lose their garbage coordinates
    assert (train.joints_orig[j[:4, :, 2] == 0][:, :2] == 0).all()
    np.testing.assert_allclose(
        train.joints_orig[0, :, :2][j[0, :, 2] > 0], j[0, :, :2][j[0, :, 2] > 0], atol=1e-4
    )
    # PCK torso = right shoulder (8) to left hip (3); sample 1 falls back and is recorded
    np.testing.assert_allclose(train.norm[0], np.hypot(*(j[0, 8, :2] - j[0, 3, :2])), rtol=1e-5)
    assert train.meta["norm_estimated"] == [1] and train.norm[1] > 0
    val = load_poses(f"lspet:{tmp_path}", "val", 32, subset=5, seed=3, cache_dir=tmp_path / "c")
    test = load_poses(
        str(tmp_path / "joints.mat"), "test", 32, subset=5, seed=3, cache_dir=tmp_path / "c"
    )
    assert len(val) == 5 and all(int(n[2:7]) > 4 for n in val.names)
    assert val.names == test.names  # LSPET test is its val split
    assert val.meta["flip_pairs"] == [[0, 5], [1, 4], [2, 3], [6, 11], [7, 10], [8, 9]]


def test_lsp_mat_layout_flag_has_opposite_sense(tmp_path):
    rng = np.random.default_rng(1)
    n = 1002
    xy = lsp_joints(rng, n)
    occluded = (rng.random((n, 14)) < 0.5).astype(float)  # LSP: 1 = occluded, still annotated
    j = np.concatenate([xy, occluded[..., None]], -1)
    scipy.io.savemat(tmp_path / "joints.mat", {"joints": j.transpose(2, 1, 0)})  # (3, 14, N)
    for i in (1000, 1001):
        write_jpeg(tmp_path / "images" / f"im{i + 1:04d}.jpg")
    test = load_poses(f"lsp:{tmp_path}", "test", 32, cache_dir=tmp_path / "c")
    assert test.meta["dataset"] == "lsp" and test.names == ["im1001.jpg", "im1002.jpg"]
    assert (test.joints[..., 2] == 1).all()
    np.testing.assert_allclose(test.joints_orig[..., :2], j[1000:, :, :2], atol=1e-4)
    with pytest.raises(ConfigError, match="split"):
        load_poses(
            str(tmp_path), "bogus", 32, cache_dir=tmp_path / "c"
        )  # LSP: train/test (and a carved val)


def test_crop_lands_joints_on_their_pixels(tmp_path):
    """A white disc drawn at a joint in the original image is at that joint's crop position."""
    rng = np.random.default_rng(2)
    n = 1003
    xy = np.stack([rng.uniform(10, 150, (n, 14)), rng.uniform(10, 110, (n, 14))], -1)
    j = np.concatenate([xy, np.ones((n, 14, 1))], -1)
    scipy.io.savemat(tmp_path / "joints.mat", {"joints": j.transpose(1, 2, 0)})
    for i in range(3):
        write_jpeg(tmp_path / "images" / f"im{i + 1:05d}.jpg", 160, 120, dots=[tuple(xy[i, 13])])
    ps = load_poses(str(tmp_path), "train", 160, cache_dir=tmp_path / "c")
    for k in range(3):
        g = ps.images[k, ..., 0].astype(float)
        w = np.clip(g - 150, 0, None)
        yy, xx = np.mgrid[0:160, 0:160]
        c = np.array([(w * xx).sum(), (w * yy).sum()]) / w.sum()
        assert np.hypot(*(c - ps.joints[k, 13, :2])) < 1.0


def test_bad_mat_key_and_shape(tmp_path):
    scipy.io.savemat(tmp_path / "a.mat", {"points": np.zeros((14, 3, 5))})
    with pytest.raises(DataError, match="joints") as e:
        load_poses(str(tmp_path / "a.mat"), "train", 32, cache_dir=tmp_path / "c")
    assert e.value.source == str(tmp_path / "a.mat")
    scipy.io.savemat(tmp_path / "b.mat", {"joints": np.zeros((14, 2, 5))})
    with pytest.raises(DataError, match=r"\(14, 2, 5\)"):
        load_poses(str(tmp_path / "b.mat"), "train", 32, cache_dir=tmp_path / "c")
    (tmp_path / "c.mat").write_bytes(b"not a mat file at all")
    with pytest.raises(DataError, match="c.mat"):
        load_poses(str(tmp_path / "c.mat"), "train", 32, cache_dir=tmp_path / "c")


def test_missing_and_corrupt_images_name_file_and_record(tmp_path):
    write_lspet(tmp_path)
    (tmp_path / "images" / "im00002.jpg").unlink()
    (tmp_path / "images" / "im00004.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(DataError) as e:
        load_poses(str(tmp_path), "train", 32, cache_dir=tmp_path / "c")
    assert (
        "im00002.jpg" in str(e.value) and "record 1" in str(e.value) and "not found" in str(e.value)
    )
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").iterdir())  # nothing cached
    ps = load_poses(str(tmp_path), "train", 32, cache_dir=tmp_path / "c", skip_bad=True)
    assert ps.names == ["im00001.jpg", "im00003.jpg"] and ps.meta["skipped"] == 2
    # a truncated JPEG is corrupt too
    write_jpeg(tmp_path / "images" / "im00002.jpg")
    write_jpeg(tmp_path / "images" / "im00004.jpg")
    data = (tmp_path / "images" / "im00003.jpg").read_bytes()
    (tmp_path / "images" / "im00003.jpg").write_bytes(data[: len(data) // 2])
    clear_memo()
    with pytest.raises(DataError, match="im00003.jpg.*record 2.*decode"):
        load_poses(str(tmp_path), "train", 32, cache_dir=tmp_path / "c2")


def mpii_entry(rng, name, val, head_box=False):
    part = np.stack([rng.uniform(20, 100, 16), rng.uniform(20, 100, 16), np.ones(16)], -1)
    part[5] = [0, 0, 0]  # unannotated
    e = {
        "img_paths": name,
        "joint_self": part.tolist(),
        "objpos": [60.0, 55.0],
        "scale_provided": 0.5,
        "isValidation": float(val),
        "dataset": "MPI",
        "img_width": 120,
        "img_height": 110,
    }
    if head_box:
        e["headboxes"] = [[40, 10], [70, 40]]
    return e


def test_mpii_json_list(tmp_path):
    rng = np.random.default_rng(4)
    entries = [mpii_entry(rng, f"{i:09d}.jpg", val=i >= 3, head_box=i == 0) for i in range(5)]
    for e in entries:
        write_jpeg(tmp_path / "images" / e["img_paths"], 120, 110)
    (tmp_path / "mpii_annotations.json").write_text(json.dumps(entries))
    train = load_poses(
        str(tmp_path / "mpii_annotations.json"), "train", 32, cache_dir=tmp_path / "c"
    )
    val = load_poses(
        f"mpii:{tmp_path / 'mpii_annotations.json'}", "val", 32, cache_dir=tmp_path / "c"
    )
    assert len(train) == 3 and len(val) == 2 and train.meta["metric"] == "pckh"
    assert (
        train.joints.shape == (3, 16, 3)
        and (train.joints[:, 5, 2] == 0).all()
        and (train.joints[:, 0, 2] == 1).all()
    )
    np.testing.assert_allclose(
        train.norm[0], 0.6 * math.hypot(30, 30), rtol=1e-5
    )  # from the head box
    j = np.asarray(entries[1]["joint_self"])
    # no head box: 0.75 x head top to upper neck (the measured normalize / segment ratio on MPII val)
    np.testing.assert_allclose(train.norm[1], 0.75 * np.hypot(*(j[9, :2] - j[8, :2])), rtol=1e-5)
    assert train.meta["norm_estimated"] == [1, 2]
    # 200 * scale * 1.25 pixels become the crop
    np.testing.assert_allclose(train.affine[0, 0, 0], 32 / (200 * 0.5 * 1.25), rtol=1e-5)


def test_mpii_json_missing_field(tmp_path):
    rng = np.random.default_rng(5)
    entries = [mpii_entry(rng, f"{i:09d}.jpg", val=False) for i in range(3)]
    del entries[1]["objpos"]
    for e in entries:
        write_jpeg(tmp_path / "images" / e["img_paths"], 120, 110)
    (tmp_path / "m.json").write_text(json.dumps(entries))
    with pytest.raises(DataError, match=r"m\.json: record 1: .*objpos"):
        load_poses(str(tmp_path / "m.json"), "train", 32, cache_dir=tmp_path / "c")
    ps = load_poses(str(tmp_path / "m.json"), "train", 32, cache_dir=tmp_path / "c", skip_bad=True)
    assert len(ps) == 2 and ps.meta["skipped"] == 1


def test_mpii_h5_layout(tmp_path):
    rng = np.random.default_rng(6)
    n = 3
    part = np.stack([rng.uniform(20, 100, (n, 16)), rng.uniform(20, 100, (n, 16))], -1)
    part[0, 7] = 0  # unannotated
    names = [f"{i:09d}.jpg".encode() for i in range(n)]
    (tmp_path / "annot").mkdir()
    with h5py.File(tmp_path / "annot" / "valid.h5", "w") as f:
        f["center"] = np.full((n, 2), 60.0)
        f["scale"] = np.full(n, 0.45)
        f["part"] = part
        f["visible"] = (part[..., 0] > 0).astype(float)
        f["imgname"] = np.array(names, dtype="S")
        f["normalize"] = np.array([10.0, 12.0, 14.0])
    for nm in names:
        write_jpeg(tmp_path / "images" / nm.decode(), 120, 110)
    ps = load_poses(
        str(tmp_path), "val", 32, cache_dir=tmp_path / "c"
    )  # folder: annot/valid.h5 for val
    assert ps.names == [nm.decode() for nm in names]
    np.testing.assert_allclose(ps.norm, [10, 12, 14])
    assert ps.joints[0, 7, 2] == 0 and ps.joints[1, 7, 2] == 1 and ps.meta["norm_estimated"] == []
    np.testing.assert_allclose(ps.joints_orig[1, :, :2], part[1], atol=1e-4)
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["center"] = np.zeros((1, 2))
    with pytest.raises(DataError, match="bad.h5.*scale"):
        load_poses(str(tmp_path / "bad.h5"), "train", 32, cache_dir=tmp_path / "c")


def test_coco_keypoints(tmp_path):
    kp = np.zeros((17, 3))
    kp[:, 0], kp[:, 1], kp[:, 2] = np.linspace(30, 60, 17), np.linspace(20, 90, 17), 2
    kp[3] = [0, 0, 0]
    kp[4, 2] = 1  # labelled but not visible: annotated
    ann = lambda i, **kw: (
        {
            "id": i,
            "image_id": 1,
            "category_id": 1,
            "iscrowd": 0,
            "num_keypoints": 16,
            "keypoints": kp.ravel().tolist(),
            "bbox": [25, 15, 40, 80],
            "area": 1600.0,
        }
        | kw
    )
    data = {
        "images": [{"id": 1, "file_name": "000000000001.jpg", "width": 120, "height": 110}],
        "annotations": [ann(1), ann(2, iscrowd=1), ann(3, num_keypoints=0), ann(4, area=900.0)],
        "categories": [{"id": 1, "name": "person"}],
    }
    write_jpeg(tmp_path / "images" / "000000000001.jpg", 120, 110)
    (tmp_path / "person_keypoints_val2017.json").write_text(json.dumps(data))
    ps = load_poses(
        str(tmp_path / "person_keypoints_val2017.json"), "val", 32, cache_dir=tmp_path / "c"
    )
    assert len(ps) == 2 and ps.meta["metric"] == "oks" and ps.joints.shape == (2, 17, 3)
    np.testing.assert_allclose(ps.norm, [40.0, 30.0])
    assert ps.joints[0, 3, 2] == 0 and ps.joints[0, 4, 2] == 1 and ps.joints[0, 0, 2] == 1
    # the box centre (45, 55) is the crop centre
    centre = np.array([[[45.0, 55.0, 1.0]]])
    from trainers.data import original_to_crop

    np.testing.assert_allclose(
        original_to_crop(centre, ps.affine[0])[0, 0, :2], [15.5, 15.5], atol=1e-4
    )
    del data["annotations"][0]["bbox"]
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"bad\.json: annotations\[0\]: .*bbox"):
        load_poses(str(tmp_path / "bad.json"), "val", 32, cache_dir=tmp_path / "c")


@pytest.mark.parametrize(
    "data, match",
    [
        ("nosuchformat:/x", "unknown data format"),
        ("/definitely/not/here", "does not exist"),
        ("", "empty"),
        ("synthetic:zero", "positive"),
    ],
)
def test_bad_data_strings(data, match, tmp_path):
    with pytest.raises(ConfigError, match=match):
        load_poses(data, "train", 32, cache_dir=tmp_path)


def test_format_mismatch_and_unknown_folder(tmp_path):
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(ConfigError, match="file type"):
        load_poses(str(tmp_path / "x.txt"), "train", 32, cache_dir=tmp_path / "c")
    with pytest.raises(ConfigError, match="cannot tell"):
        load_poses(str(tmp_path), "train", 32, cache_dir=tmp_path / "c")
    scipy.io.savemat(tmp_path / "joints.mat", {"joints": np.zeros((14, 3, 2))})
    with pytest.raises(ConfigError, match="looks like lsp"):
        load_poses(f"coco:{tmp_path}", "train", 32, cache_dir=tmp_path / "c")


def test_mpii_json_hrnet_style(tmp_path):
    rng = np.random.default_rng(7)
    joints = np.stack([rng.uniform(20, 100, 16), rng.uniform(20, 100, 16)], -1)
    joints[6] = [-1, -1]  # HRNet marks unannotated joints with -1
    entries = [
        {
            "image": "a.jpg",
            "joints": joints.tolist(),
            "joints_vis": [1] * 16,
            "center": [60.0, 50.0],
            "scale": 0.4,
        }
    ]
    write_jpeg(tmp_path / "images" / "a.jpg", 120, 110)
    (tmp_path / "valid.json").write_text(json.dumps(entries))
    ps = load_poses(f"mpii:{tmp_path / 'valid.json'}", "val", 32, cache_dir=tmp_path / "c")
    assert ps.names == ["a.jpg"] and ps.joints[0, 6, 2] == 0 and ps.joints[0, 5, 2] == 1
    np.testing.assert_allclose(ps.joints_orig[0, 5, :2], joints[5], atol=1e-4)
