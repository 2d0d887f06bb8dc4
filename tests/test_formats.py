"""The dataset format registry: a format added from a test, carved val splits, MPII and COCO edge cases,
and COCO OKS AP by COCOeval on the original annotation file."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from PIL import Image

from space.errors import ConfigError
from space.spec import load_arch
from trainers.data import (
    DataError,
    PoseSet,
    clear_memo,
    load_poses,
    parse_data,
    selection_splits,
    split_names,
)
from trainers.formats import (
    FORMATS,
    VAL_FRACTION,
    Annotations,
    DatasetFormat,
    LspFormat,
    Record,
    SyntheticFormat,
    box_from_joints,
    clean_joints,
    detection_order,
    read_annotations,
)
from trainers.metrics import oks_ap, score_poses
from trainers.proxy import ProxyBudget, train_proxy


@pytest.fixture(autouse=True)
def _fresh_memo():
    clear_memo()
    yield
    clear_memo()


def write_image(path: Path, w: int, h: int, dots=(), seed: int = 0) -> None:
    """A noisy JPEG with bright discs at `dots` (a learnable signal)."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 90, (h, w, 3)).astype(np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    for k, (x, y) in enumerate(dots):
        arr[(xx - x) ** 2 + (yy - y) ** 2 <= 6.0] = [
            (255, 60, 60),
            (60, 255, 60),
            (60, 60, 255),
            (255, 255, 60),
        ][k % 4]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, quality=95)


# ---------------------------------------------------------------- a format registered from a test


class ToyCsvFormat(DatasetFormat):
    """labels.csv rows: image, split (train/test), 4 joints as "x y x y ..."; no val split."""

    joint_names = ["a", "b", "c", "d"]
    flip_pairs = [(0, 1), (2, 3)]
    metric, norm_kind = "pck", "extent"
    splits = ("train", "test")
    suffixes, folder_hint = (".csv",), "labels.csv"

    def detect(self, path: Path) -> bool:
        return (path / "labels.csv").is_file() if path.is_dir() else path.suffix == ".csv"

    def annotation_file(self, path: Path, split: str) -> Path:
        return path / "labels.csv" if path.is_dir() else path

    def read(self, annot: Path, split: str, *, skip_bad: bool = False) -> Annotations:
        if split not in self.splits:
            raise ConfigError(f"unknown split {split!r}", source=str(annot), field="split")
        records = []
        with open(annot, newline="") as fh:
            for row in csv.DictReader(fh):
                if row["split"] != split:
                    continue
                xy = np.array(row["joints"].split(), dtype=float).reshape(4, 2)
                j = clean_joints(np.concatenate([xy, np.ones((4, 1))], axis=1))
                center, side, extent = box_from_joints(j)
                records.append(
                    Record(row["image"], annot.parent / row["image"], j, center, side, extent)
                )
        return self.annotations(records, "toy: the split column")


@pytest.fixture
def toy_format():
    FORMATS.register("toy")(ToyCsvFormat)
    yield "toy"
    FORMATS.unregister("toy")


def write_toy(root: Path, n_train: int = 30, n_test: int = 6) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n_train + n_test):
        xy = rng.uniform(8, 40, (4, 2))
        name = f"img{i:03d}.jpg"
        write_image(root / name, 48, 48, [tuple(p) for p in xy], seed=i)
        rows.append(
            {
                "image": name,
                "split": "train" if i < n_train else "test",
                "joints": " ".join(f"{v:.2f}" for v in xy.ravel()),
            }
        )
    with open(root / "labels.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, ["image", "split", "joints"])
        w.writeheader()
        w.writerows(rows)


def test_registered_format_loads_and_trains(tmp_path, toy_format):
    write_toy(tmp_path)
    assert parse_data(f"toy:{tmp_path}")[0] == "toy"
    train = load_poses(f"toy:{tmp_path}", "train", 32, cache_dir=tmp_path / "c")
    val = load_poses(
        f"toy:{tmp_path}", "val", 32, cache_dir=tmp_path / "c"
    )  # carved: toy has no val
    test = load_poses(
        str(tmp_path), "test", 32, cache_dir=tmp_path / "c"
    )  # detected by the registry
    assert train.meta["format"] == "toy" and train.meta["joint_names"] == ["a", "b", "c", "d"]
    assert train.joints.shape == (27, 4, 3) and len(val) == 3 and len(test) == 6
    assert val.names == ["img027.jpg", "img028.jpg", "img029.jpg"] and not set(val.names) & set(
        train.names
    )
    spec = load_arch("bulat-sgsc-tiny").replace(input_size=32, depth=2, joints=4)
    r = train_proxy(
        spec, train, val, ProxyBudget(epochs=1, batch_size=9, input_size=32, seed=0), threads=1
    )
    assert r.steps == 3 and len(r.per_joint) == 4 and all(math.isfinite(v) for v in r.loss_curve)
    assert 0.0 <= r.pck <= 1.0


def test_unregistered_format_is_unknown_again(tmp_path):
    FORMATS.register("toy2")(ToyCsvFormat)
    try:
        assert "toy2" in FORMATS and any(isinstance(f, ToyCsvFormat) for f in detection_order())
    finally:
        FORMATS.unregister("toy2")
    with pytest.raises(ConfigError, match="unknown data format 'toy2'"):
        parse_data(f"toy2:{tmp_path}/nothere")
    assert not any(isinstance(f, ToyCsvFormat) for f in detection_order())


def test_detection_order_and_names():
    assert [f.name for f in detection_order()][:3] == [
        "lsp",
        "mpii",
        "coco",
    ]  # lspet is lsp; synthetic has no files
    assert {"lsp", "lspet", "mpii", "coco", "synthetic"} <= set(FORMATS.names())


class DotsFormat(DatasetFormat):
    """A generated format (no files, like synthetic): `dots` or `dots:N` two-joint samples."""

    joint_names, flip_pairs = ["a", "b"], [(0, 1)]
    files, disk_cache = False, False

    def identity(self, src, split):
        return {"format": self.name, "count": src.count}

    def record_names(self, src, split):
        return [f"dots-{split}-{i}" for i in range(src.count or 3)]

    def prepare(self, src, split, size, *, subset=None, seed=0, skip_bad=False, workers=None):
        n = src.count or 3
        joints = np.tile(np.array([[4.0, 4.0, 1.0], [9.0, 4.0, 1.0]], np.float32), (n, 1, 1))
        affine = np.tile(np.array([[1, 0, 0], [0, 1, 0]], np.float32), (n, 1, 1))
        return PoseSet(
            np.zeros((n, size, size, 3), np.uint8),
            joints,
            joints.copy(),
            affine,
            np.ones(n, np.float32),
            self.record_names(src, split),
            {"format": self.name},
        )


def test_a_generated_format_takes_the_path_synthetic_takes(tmp_path):
    """Nothing in trainers.data names synthetic: a format without files registered here is parsed,
    keyed, memoised and kept off the disk cache the same way."""
    FORMATS.register("dots")(DotsFormat)
    try:
        assert parse_data("dots:5") == ("dots", None, 5) and parse_data("dots") == (
            "dots",
            None,
            None,
        )
        with pytest.raises(ConfigError, match="'dots:N' needs a positive sample count, got 'x'"):
            parse_data("dots:x")
        ps = load_poses("dots:5", "val", 16, cache_dir=tmp_path / "c")
        assert (
            len(ps) == 5
            and ps.names == split_names("dots:5", "val")
            and ps.meta["format"] == "dots"
        )
        assert load_poses("dots:5", "val", 16) is ps and len(load_poses("dots", "val", 16)) == 3
        assert selection_splits("dots") == ("train", "val")  # val and test records differ
        assert not (tmp_path / "c").exists() and "dots" not in [f.name for f in detection_order()]
    finally:
        FORMATS.unregister("dots")


def test_synthetic_is_a_registered_format_off_the_disk_cache(tmp_path):
    assert isinstance(FORMATS.create("synthetic"), SyntheticFormat)
    ps = load_poses("synthetic:5", "val", 32, cache_dir=tmp_path / "c")
    assert not (tmp_path / "c").exists()  # rendering is as fast as reading a cache entry back
    assert (
        ps.names
        == split_names("synthetic:5", "val")
        == [f"synthetic-val-{i:06d}" for i in range(5)]
    )
    with pytest.raises(ConfigError, match="unknown split 'val_carved' for synthetic"):
        load_poses("synthetic:5", "val_carved", 32)


# ---------------------------------------------------------------- a val split carved from train (LSP)


def write_lsp(root: Path, n: int = 1020, images=range(0)) -> np.ndarray:
    rng = np.random.default_rng(3)
    xy = np.stack([rng.uniform(6, 42, (n, 14)), rng.uniform(6, 34, (n, 14))], -1)
    j = np.concatenate([xy, np.zeros((n, 14, 1))], -1)
    scipy.io.savemat(root / "joints.mat", {"joints": j.transpose(2, 1, 0)})  # (3, 14, N): LSP
    for i in images:
        write_image(root / "images" / f"im{i + 1:04d}.jpg", 48, 40, seed=i)
    return j


def test_lsp_val_is_carved_from_train_and_never_test(tmp_path):
    write_lsp(tmp_path, images=range(1000))
    names = {
        s: [r.name for r in read_annotations(LspFormat(), tmp_path / "joints.mat", s).records]
        for s in ("train", "val", "test")
    }
    assert len(names["val"]) == int(1000 * VAL_FRACTION) == 100 and len(names["train"]) == 900
    assert names["train"] + names["val"] == [
        f"im{i:04d}.jpg" for i in range(1, 1001)
    ]  # the last 10 %
    assert not set(names["val"]) & set(names["train"]) and not set(names["val"]) & set(
        names["test"]
    )
    val = load_poses(str(tmp_path), "val", 32, cache_dir=tmp_path / "c")
    train = load_poses(f"lsp:{tmp_path}", "train", 32, cache_dir=tmp_path / "c")
    assert (
        val.names == names["val"]
        and train.names == names["train"]
        and not set(val.names) & set(train.names)
    )
    assert "no val split" in val.meta["split_note"] and "no val split" in train.meta["split_note"]
    assert val.meta["val_carved"] == {"fraction": 0.1, "train": 900, "val": 100}
    sub = load_poses(f"lspet:{tmp_path}", "val", 32, subset=5, seed=1, cache_dir=tmp_path / "c")
    assert set(sub.names) <= set(names["val"])


def test_real_val_splits_are_kept(tmp_path):
    """LSPET has a val split: nothing is carved from its train split."""
    n = 1010
    rng = np.random.default_rng(0)
    j = np.concatenate([rng.uniform(6, 34, (n, 14, 2)), np.ones((n, 14, 1))], -1)
    scipy.io.savemat(tmp_path / "joints.mat", {"joints": j.transpose(1, 2, 0)})  # (14, 3, N): LSPET
    fmt, annot = LspFormat(), tmp_path / "joints.mat"
    assert len(read_annotations(fmt, annot, "train").records) == 10
    assert [r.name for r in read_annotations(fmt, annot, "val").records][0] == "im00011.jpg"
    assert "val_carved" not in read_annotations(fmt, annot, "train").extra
    assert len(load_poses("synthetic:8", "val", 32)) == 8


# ---------------------------------------------------------------- MPII


def write_mpii_h5(path: Path, names: list[str], normalize: bool = True) -> np.ndarray:
    rng = np.random.default_rng(6)
    n = len(names)
    part = np.stack([rng.uniform(20, 100, (n, 16)), rng.uniform(20, 100, (n, 16))], -1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f["center"] = np.full((n, 2), 60.0)
        f["scale"] = np.full(n, 0.45)
        f["part"] = part
        f["visible"] = np.ones((n, 16))
        f["imgname"] = np.array([s.encode() for s in names], dtype="S")
        if normalize:
            f["normalize"] = np.full(n, 11.0)
    return part


def test_mpii_folder_with_only_valid_h5_says_train_h5_is_missing(tmp_path):
    write_mpii_h5(tmp_path / "annot" / "valid.h5", ["a.jpg"])
    write_image(tmp_path / "images" / "a.jpg", 120, 110)
    with pytest.raises(DataError, match=r"train\.h5 is missing for the 'train' split") as e:
        load_poses(str(tmp_path), "train", 32, cache_dir=tmp_path / "c")
    assert "cannot tell" not in str(e.value) and e.value.source == str(tmp_path)
    assert load_poses(str(tmp_path), "val", 32, cache_dir=tmp_path / "c").names == ["a.jpg"]


def test_mpii_h5_head_size_without_normalize_is_0_75_head_segment(tmp_path):
    part = write_mpii_h5(tmp_path / "train.h5", ["a.jpg", "b.jpg"], normalize=False)
    for nm in ("a.jpg", "b.jpg"):
        write_image(tmp_path / "images" / nm, 120, 110)
    ps = load_poses(str(tmp_path / "train.h5"), "train", 32, cache_dir=tmp_path / "c")
    seg = np.hypot(*(part[:, 9] - part[:, 8]).T)
    np.testing.assert_allclose(ps.norm, 0.75 * seg, rtol=1e-5)
    assert ps.meta["norm_estimated"] == [0, 1]


# ---------------------------------------------------------------- COCO


@pytest.mark.parametrize(
    "data, match",
    [
        ({"images": 5, "annotations": []}, r"bad\.json: images: must be a list, got int"),
        ({"images": [], "annotations": [1, 2]}, r"bad\.json: annotations\[0\]: .*not an object"),
        (
            {"images": [7], "annotations": []},
            r"bad\.json: images\[0\]: image entry is not an object",
        ),
        ({"images": [], "annotations": {}}, r"bad\.json: annotations: must be a list, got dict"),
    ],
)
def test_coco_wrong_types_are_one_line_errors(tmp_path, data, match):
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=match) as e:
        load_poses(f"coco:{tmp_path / 'bad.json'}", "val", 32, cache_dir=tmp_path / "c")
    assert "\n" not in str(e.value)


def coco_person(rng: np.random.Generator, ann_id: int, image_id: int, x0: float, y0: float) -> dict:
    kp = np.zeros((17, 3))
    kp[:, 0], kp[:, 1], kp[:, 2] = x0 + rng.uniform(0, 40, 17), y0 + rng.uniform(0, 70, 17), 2
    kp[rng.choice(17, 3, replace=False)] = 0  # a few unlabelled joints
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": 1,
        "iscrowd": 0,
        "num_keypoints": 14,
        "keypoints": kp.ravel().tolist(),
        "bbox": [x0, y0, 40.0, 70.0],
        "area": 40.0 * 70.0 * 0.6,
    }


def write_coco(root: Path) -> Path:
    """3 images with people (2, 1, 2; image 1 also has a crowd region and a keypoint-less person)
    and an image with only a crowd region."""
    rng = np.random.default_rng(11)
    anns = [
        coco_person(rng, 1, 1, 10, 10),
        coco_person(rng, 2, 1, 70, 20),
        coco_person(rng, 3, 2, 30, 15),
        coco_person(rng, 4, 3, 5, 5),
        coco_person(rng, 5, 3, 60, 30),
    ]
    anns.append(
        {
            "id": 6,
            "image_id": 1,
            "category_id": 1,
            "iscrowd": 1,
            "num_keypoints": 0,
            "keypoints": [0] * 51,
            "bbox": [80.0, 40.0, 40.0, 60.0],
            "area": 2400.0,
            "segmentation": {"counts": [0], "size": [110, 120]},
        }
    )
    anns.append(
        {
            "id": 7,
            "image_id": 1,
            "category_id": 1,
            "iscrowd": 0,
            "num_keypoints": 0,
            "keypoints": [0] * 51,
            "bbox": [40.0, 40.0, 20.0, 30.0],
            "area": 500.0,
        }
    )
    anns.append(
        {
            "id": 8,
            "image_id": 4,
            "category_id": 1,
            "iscrowd": 1,
            "num_keypoints": 0,
            "keypoints": [0] * 51,
            "bbox": [0.0, 0.0, 50.0, 50.0],
            "area": 2500.0,
        }
    )
    images = [
        {"id": i, "file_name": f"{i:012d}.jpg", "width": 120, "height": 110} for i in (1, 2, 3, 4)
    ]
    for im in images:
        write_image(root / "val2017" / im["file_name"], 120, 110, seed=im["id"])
    (root / "annotations").mkdir(parents=True)
    path = root / "annotations" / "person_keypoints_val2017.json"
    path.write_text(
        json.dumps(
            {
                "images": images,
                "annotations": anns,
                "categories": [{"id": 1, "name": "person", "keypoints": [], "skeleton": []}],
            }
        )
    )
    return path


def cocoeval_directly(
    path: Path, pred: np.ndarray, scores: np.ndarray, image_ids, ann_ids
) -> float:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(path))
        dets = [
            {
                "image_id": int(i),
                "category_id": 1,
                "score": float(np.mean(s)),
                "keypoints": np.concatenate([p, np.ones((17, 1))], 1).ravel().tolist(),
            }
            for i, p, s in zip(image_ids, pred.astype(float), scores)
        ]
        ev = COCOeval(gt, gt.loadRes(dets), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0])


def test_coco_oks_ap_is_cocoeval_on_the_annotation_file(tmp_path):
    pytest.importorskip("pycocotools", reason="pycocotools not installed: OKS AP needs it")
    path = write_coco(tmp_path)
    ps = load_poses(str(tmp_path), "val", 32, cache_dir=tmp_path / "c")  # COCO folder, val2017
    assert ps.meta["annotation_ids"] == [1, 2, 3, 4, 5] and ps.meta["image_ids"] == [1, 1, 2, 3, 3]
    assert ps.meta["coco_annotation_file"] == str(path.resolve())
    gt = ps.joints_orig[..., :2]
    ones = np.ones(gt.shape[:2])
    perfect = score_poses(gt, ps.joints_orig, ps.norm, "oks", ones, full=True, meta=ps.meta)
    assert perfect["oks_ap"].mean == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    noisy = gt + rng.normal(0, 4.0, gt.shape)
    noisy[1] += (
        25.0  # one person far off, onto image 1's crowd region: ignored, not a false positive
    )
    scores = rng.uniform(0.2, 1.0, gt.shape[:2])
    scores[1] = 1.0
    ours = score_poses(noisy, ps.joints_orig, ps.norm, "oks", scores, full=True, meta=ps.meta)[
        "oks_ap"
    ]
    direct = cocoeval_directly(path, noisy, scores, ps.meta["image_ids"], ps.meta["annotation_ids"])
    assert ours.mean == direct and 0.0 < direct < 1.0
    # each crop as its own image loses the crowd region and reads lower
    assert (
        ours.mean
        > oks_ap(noisy, scores, gt, ps.joints_orig[..., 2], ps.norm.astype(float) ** 2).mean
    )
    # the ids follow a selection, and a subset is scored on its own people only
    sub = ps.select([4, 0])
    assert sub.meta["annotation_ids"] == [5, 1] and sub.meta["image_ids"] == [3, 1]
    assert score_poses(
        gt[[4, 0]], sub.joints_orig, sub.norm, "oks", ones[:2], full=True, meta=sub.meta
    )["oks_ap"].mean == pytest.approx(1.0)
    # the ids survive the on-disk cache
    clear_memo()
    again = load_poses(str(tmp_path), "val", 32, cache_dir=tmp_path / "c")
    assert again.meta["annotation_ids"] == ps.meta["annotation_ids"]


def test_oks_ap_without_pycocotools_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pycocotools", None)
    monkeypatch.setitem(sys.modules, "pycocotools.coco", None)
    gt = np.zeros((1, 17, 3))
    gt[..., 2] = 1
    with pytest.raises(ConfigError, match="pycocotools") as e:
        score_poses(gt[..., :2], gt, np.array([10.0]), "oks", full=True)
    assert "\n" not in str(e.value)
    assert (
        score_poses(gt[..., :2], gt, np.array([10.0]), "oks")["main"].mean == 1.0
    )  # the fast score needs none
