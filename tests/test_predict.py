"""trainers.draw (the skeleton drawing) and `launch.py predict` (joints on the original image)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers import TINY
from PIL import Image

import launch
from space.errors import ConfigError
from space.model import build_model
from space.spec import ArchSpec
from trainers.crop import crop_to_original
from trainers.draw import (
    BOX_COLOUR,
    DEFAULT_THRESHOLD,
    SIDE_COLOURS,
    draw_pose,
    draw_prediction,
    draw_scale,
    font_px,
    format_for_joints,
    legend_entries,
    limb_side,
    no_joint_text,
    skeleton,
    skeleton_for_joints,
)
from trainers.formats import FORMATS
from trainers.formats.synthetic import render_sample

GREY = (128, 128, 128)


def _blank(h: int = 120, w: int = 160) -> np.ndarray:
    return np.full((h, w, 3), GREY, np.uint8)


def _pixel(img, x: float, y: float) -> tuple[int, ...]:
    return tuple(int(v) for v in np.asarray(img)[int(round(y)), int(round(x))])


def test_dots_take_their_side_colour_and_a_faded_joint_shows_the_image_through():
    joints = np.array([[30.0, 40.0], [120.0, 40.0], [75.0, 90.0]])
    img = draw_pose(
        _blank(),
        joints,
        [0.9, 0.9, 0.05],
        limbs=[],
        sides=[],
        joint_sides=["left", "right", "centre"],
    )
    assert img.size == (160, 120) and img.mode == "RGB"
    assert _pixel(img, 30, 40) == SIDE_COLOURS["left"]
    assert _pixel(img, 120, 40) == SIDE_COLOURS["right"]
    faded = np.array(_pixel(img, 75, 90))
    confident = np.array(
        draw_pose(
            _blank(), joints, [0.9, 0.9, 0.9], [], [], joint_sides=["left", "right", "centre"]
        )
    )[90, 75]
    assert tuple(confident) == SIDE_COLOURS["centre"]
    # translucent: between the image and the colour, closer to the image
    assert np.abs(faded - GREY).sum() < np.abs(faded - confident).sum()
    assert SIDE_COLOURS["left"] != SIDE_COLOURS["right"]
    assert _pixel(img, 5, 5) == GREY  # nothing drawn away from the pose


def test_limbs_are_coloured_by_side_and_fade_with_an_unsure_joint():
    joints = np.array([[20.0, 20.0], [20.0, 100.0], [140.0, 20.0], [140.0, 100.0]])
    img = draw_pose(
        _blank(),
        joints,
        [1, 1, 1, DEFAULT_THRESHOLD / 2],
        limbs=[(0, 1), (2, 3)],
        sides=["left", "right"],
    )
    assert _pixel(img, 20, 60) == SIDE_COLOURS["left"]  # the middle of each limb
    right = np.array(_pixel(img, 140, 60))
    assert tuple(right) != SIDE_COLOURS["right"] and tuple(right) != GREY  # faded, yet drawn


def test_a_joint_without_coordinates_is_left_out_with_its_limbs():
    joints = np.array([[20.0, 20.0], [np.nan, np.nan], [140.0, 100.0]])
    img = draw_pose(
        _blank(), joints, [1, 1, 1], limbs=[(0, 1), (1, 2), (0, 2)], sides=["left", "left", "right"]
    )
    assert _pixel(img, 80, 60) == SIDE_COLOURS["right"]  # the limb between the two drawn joints
    drawn = (np.asarray(img) != GREY).any(axis=-1)
    assert not drawn[:, :8].any() and not drawn[:8, :].any()  # nothing towards (0, 0) or elsewhere


def test_skeletons_of_the_formats_and_their_sides():
    lsp = skeleton("lsp")
    names = FORMATS.get("lsp").joint_names
    assert len(lsp.joint_sides) == 14 and all(0 <= j < 14 for limb in lsp.limbs for j in limb)
    side = dict(zip(lsp.limbs, lsp.sides))
    assert side[(10, 11)] == "left" and side[(6, 7)] == "right" and side[(12, 13)] == "centre"
    assert side[(2, 3)] == "centre"  # hip to hip
    assert (
        lsp.joint_sides[names.index("l_wrist")] == "left"
        and lsp.joint_sides[names.index("neck")] == "centre"
    )
    for fmt, joints in (("mpii", 16), ("coco", 17)):
        skel = skeleton(fmt)
        assert format_for_joints(joints) == fmt and skeleton_for_joints(joints) == skel
        assert all(0 <= j < joints for limb in skel.limbs for j in limb) and {
            "left",
            "right",
        } <= set(skel.sides)
    assert limb_side("right", "centre") == "right" and limb_side("left", "right") == "centre"
    with pytest.raises(ConfigError, match="15 joints"):
        format_for_joints(15)


# ---------------------------------------------------------------- pictures that explain themselves


def _corner_pose(h: int = 240, w: int = 320) -> np.ndarray:
    """LSP joints in the bottom-right quarter of an h x w image: the legend goes top-left."""
    rng = np.random.default_rng(0)
    return np.stack([rng.uniform(w * 0.6, w - 10, 14), rng.uniform(h * 0.6, h - 10, 14)], axis=1)


def test_legend_entries_name_the_sides_the_fading_and_the_crop():
    rows = legend_entries(0.3, box=True)
    texts = [e.text for row in rows for e in row]
    assert {"left", "right", "centre"} <= set(texts) and "person's" in texts
    assert "faded: confidence < 0.3" in texts and "crop" in texts
    assert {e.colour for row in rows for e in row if e.kind == "dot"} == set(SIDE_COLOURS.values())
    assert "crop" not in [e.text for row in legend_entries(0.3, box=False) for e in row]
    assert no_joint_text(0.2) == "no joint above threshold 0.2"


def test_the_legend_sits_in_a_free_corner_and_the_rest_is_the_pose():
    skel, joints = skeleton("lsp"), _corner_pose()
    conf = np.full(14, 0.9)
    plain = np.asarray(
        draw_pose(
            _blank(240, 320), joints, conf, skel.limbs, skel.sides, joint_sides=skel.joint_sides
        )
    )
    shown = np.asarray(draw_prediction(_blank(240, 320), joints, conf, skel))
    bare = np.asarray(draw_prediction(_blank(240, 320), joints, conf, skel, legend=False))
    assert (shown[:40, :120] != plain[:40, :120]).any()  # the legend, top left
    np.testing.assert_array_equal(bare, plain)  # no legend, nothing else added
    np.testing.assert_array_equal(shown[120:, 160:], plain[120:, 160:])  # the pose untouched


def test_no_joint_above_the_threshold_is_said_in_the_image():
    skel, joints = skeleton("lsp"), _corner_pose()
    sure = np.asarray(
        draw_prediction(_blank(240, 320), joints, np.full(14, 0.9), skel, legend=False)
    )
    unsure = np.asarray(
        draw_prediction(_blank(240, 320), joints, np.full(14, 0.1), skel, legend=False)
    )
    assert (unsure[:30, :150] != GREY).any(axis=-1).sum() > 100  # a line of text, top left
    assert (sure[:30, :150] == GREY).all()


def test_crop_box_and_confidence_labels_are_drawn_on_request():
    skel, joints = skeleton("lsp"), _corner_pose()
    conf = np.full(14, 0.9)
    boxed = draw_prediction(
        _blank(240, 320), joints, conf, skel, crop_box=(20, 30, 300, 230), legend=False
    )
    assert _pixel(boxed, 20, 130) == BOX_COLOUR and _pixel(boxed, 160, 30) == BOX_COLOUR
    plain = np.asarray(draw_prediction(_blank(240, 320), joints, conf, skel, legend=False))
    labelled = np.asarray(
        draw_prediction(_blank(240, 320), joints, conf, skel, labels=True, legend=False)
    )
    assert (labelled != plain).any(axis=-1).sum() > 200  # 14 numbers beside the dots


def test_small_images_are_drawn_enlarged_and_text_grows_with_the_image():
    assert draw_scale(32, 32) == 8 and draw_scale(64, 40) == 4 and draw_scale(216, 142) == 2
    assert draw_scale(256, 100) == 1 and draw_scale(4000, 3000) == 1
    assert font_px(256, 256) == 11 and font_px(2000, 1500) == 50
    img = draw_prediction(_blank(32, 32), np.full((14, 2), 16.0), np.full(14, 0.9), skeleton("lsp"))
    assert img.size == (256, 256)


# ---------------------------------------------------------------- launch.py predict

LSPET = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "lspet"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    """(arch YAML, untrained checkpoint) of the 32 px TINY net."""
    folder = tmp_path_factory.mktemp("tiny")
    arch = folder / "tiny.yaml"
    arch.write_text(yaml.safe_dump(TINY))
    spec = ArchSpec.from_dict(TINY)
    torch.manual_seed(0)
    model = build_model(spec, input_size=32)
    with torch.no_grad():  # untrained heads are near zero everywhere: give the peaks some contrast
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    weights = folder / "w.pt"
    torch.save(
        {"model": model.state_dict(), "arch": spec.to_dict(), "arch_id": spec.arch_id}, weights
    )
    return arch, weights


def _person(size: int = 32) -> np.ndarray:
    return render_sample(0, "val", 3, size)[0]


def _save(img: np.ndarray, path: Path) -> str:
    Image.fromarray(img).save(path)
    return str(path)


def _predict(tiny, out: Path, *extra: str) -> int:
    arch, weights = tiny
    return launch.main(
        ["predict", "--arch", str(arch), "--weights", str(weights), "--out", str(out), *extra]
    )


def _joints(path: Path) -> tuple[np.ndarray, np.ndarray]:
    d = json.loads(path.read_text())
    return np.array(d["joints"]), np.array(d["confidences"])


def test_predict_writes_a_png_of_the_original_and_the_joints_in_its_pixels(tiny, tmp_path):
    patch = _person()
    canvas = np.zeros((270, 300, 3), np.uint8)  # >= 256 px: drawn at its own size
    canvas[50:82, 100:132] = patch  # the same person 100 px right and 50 px down
    small, big = _save(patch, tmp_path / "small.png"), _save(canvas, tmp_path / "big.png")
    assert _predict(tiny, tmp_path / "a", "--image", small, "--box", "4,4,24,24") == 0
    assert _predict(tiny, tmp_path / "b", "--image", big, "--box", "104,54,24,24") == 0
    a, conf_a = _joints(tmp_path / "a" / "small.json")
    b, conf_b = _joints(tmp_path / "b" / "big.json")
    assert a.shape == (14, 2) and np.isfinite(conf_a).all()
    # the same crop, so the same heatmaps: the joints differ by exactly the offset in original pixels
    np.testing.assert_allclose(b - a, np.tile([100.0, 50.0], (14, 1)), atol=0.011)
    np.testing.assert_allclose(conf_a, conf_b, atol=1e-4)
    # the crop (1.25 x the box) holds every prediction
    assert (
        (b >= [104 + 11.5 - 15 - 0.5, 54 + 11.5 - 15 - 0.5])
        & (b <= [104 + 11.5 + 15.5, 54 + 11.5 + 15.5])
    ).all()
    with Image.open(tmp_path / "b" / "big.png") as png:
        assert png.size == (300, 270)
        drawn = np.asarray(png.convert("RGB"))
    assert (drawn != canvas).any(axis=-1).sum() > 50  # a skeleton was drawn on the original
    meta = json.loads((tmp_path / "b" / "big.json").read_text())
    assert (
        meta["image"] == str(Path(big).resolve())
        and meta["arch_id"] == ArchSpec.from_dict(TINY).arch_id
    )
    assert meta["box"] == [104, 54, 24, 24] and len(meta["joint_names"]) == 14
    assert meta["png_scale"] == 1
    # the cropped square (1.25 x 24 px around the box centre) is outlined
    x0 = 104 + 11.5 - 15
    assert tuple(drawn[70, int(round(x0))]) == BOX_COLOUR


def test_predict_flip_test_mirrors_with_the_image(tiny, tmp_path):
    """The flip test averages an image with its mirror, so a mirrored image gets exactly the mirrored
    pose with left and right swapped (32 px image = 32 px input: the crop is the image, no resampling)."""
    img = _person()
    a_png, m_png = _save(img, tmp_path / "a.png"), _save(img[:, ::-1].copy(), tmp_path / "m.png")
    assert _predict(tiny, tmp_path / "out", "--image", a_png, m_png, "--flip") == 0
    a, conf_a = _joints(tmp_path / "out" / "a.json")
    m, conf_m = _joints(tmp_path / "out" / "m.json")
    perm = list(range(14))
    for i, j in FORMATS.get("lsp").flip_pairs:
        perm[i], perm[j] = j, i
    np.testing.assert_allclose(m[perm], np.stack([31 - a[:, 0], a[:, 1]], axis=1), atol=0.011)
    np.testing.assert_allclose(conf_m[perm], conf_a, atol=1e-4)
    assert json.loads((tmp_path / "out" / "a.json").read_text())["flip"] is True
    # without --flip the (random, asymmetric) net does not see a mirror image as mirrored
    assert _predict(tiny, tmp_path / "plain", "--image", a_png, m_png) == 0
    a, _ = _joints(tmp_path / "plain" / "a.json")
    m, _ = _joints(tmp_path / "plain" / "m.json")
    assert not np.allclose(m[perm], np.stack([31 - a[:, 0], a[:, 1]], axis=1), atol=0.011)


def test_predict_on_a_split_of_synthetic_data(tiny, tmp_path):
    assert (
        _predict(
            tiny,
            tmp_path,
            "--data",
            "synthetic",
            "--split",
            "val",
            "--n",
            "3",
            "--input-size",
            "32",
        )
        == 0
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"synthetic-val-{i:06d}.{ext}" for i in range(3) for ext in ("json", "png")
    ]
    with Image.open(tmp_path / "synthetic-val-000000.png") as png:  # 32 px drawn at 256 px
        assert png.size == (256, 256)
    assert json.loads((tmp_path / "synthetic-val-000000.json").read_text())["png_scale"] == 8


def test_predict_labels_and_a_threshold_nothing_reaches(tiny, tmp_path, capsys):
    # weights whose heads are zeroed: no joint reaches the threshold
    arch, weights = tiny
    state = torch.load(weights, weights_only=True)
    model = state["model"] if "model" in state else state
    for key in [k for k in model if k.startswith("heads.")]:
        model[key] = model[key] * 0  # flat heatmaps: every confidence 0
    faint = tmp_path / "faint.pt"
    torch.save(state, faint)
    img = _save(_person(), tmp_path / "p.png")
    capsys.readouterr()
    assert _predict((arch, faint), tmp_path / "a", "--image", img, "--threshold", "0.9") == 0
    assert (
        _predict((arch, faint), tmp_path / "b", "--image", img, "--threshold", "0.9", "--labels")
        == 0
    )
    assert "0/14 joints at confidence >= 0.9" in capsys.readouterr().out
    with Image.open(tmp_path / "a" / "p.png") as a, Image.open(tmp_path / "b" / "p.png") as b:
        assert a.size == b.size == (256, 256)
        assert (np.asarray(a) != np.asarray(b)).any()


def test_predict_on_records_without_joints_predicts_them_on_the_whole_image(tiny, tmp_path, capsys):
    """Predictions need no ground truth: LSPET records with no annotated joints (no person box, so
    training skips them) are predicted on the whole image, in the split's order, and counted."""
    import scipy.io
    from test_data import write_lspet

    joints = write_lspet(tmp_path / "lspet", n=1008, images=range(8, 14))  # test = 8..1007
    joints[9, :, :2] = np.nan  # coordinates lost
    joints[11, :, 2] = 0  # nothing annotated
    scipy.io.savemat(tmp_path / "lspet" / "joints.mat", {"joints": joints.transpose(1, 2, 0)})
    out = tmp_path / "out"
    data = str(tmp_path / "lspet")
    assert _predict(tiny, out, "--data", data, "--split", "test", "--n", "5") == 0
    names = [f"im{i:05d}" for i in range(9, 14)]
    assert sorted(p.stem for p in out.glob("*.json")) == names
    err = capsys.readouterr().err
    assert "2 of the 5 records have no person box" in err and "whole image" in err
    whole = json.loads((out / "im00010.json").read_text())
    with Image.open(whole["image"]) as img:  # the crop is the square around the whole image
        corners = crop_to_original(
            np.array([[-0.5, -0.5], [31.5, 31.5]]), np.array(whole["crop_affine"])
        )
        assert np.allclose(corners[1] - corners[0], max(img.size), atol=0.1)


@pytest.mark.skipif(
    not (LSPET / "joints.mat").is_file(), reason="LSPET not at ../shared/datasets/lspet"
)
def test_predict_on_real_lspet_draws_on_the_original_photos(tiny, tmp_path):
    assert _predict(tiny, tmp_path, "--data", str(LSPET), "--split", "test", "--n", "2") == 0
    for name in ("im09001", "im09002"):
        meta = json.loads((tmp_path / f"{name}.json").read_text())
        with Image.open(meta["image"]) as original, Image.open(tmp_path / f"{name}.png") as png:
            assert png.size == original.size
        joints = np.array(meta["joints"])
        # the crop around the annotated person holds every prediction, in original pixels
        corners = crop_to_original(
            np.array([[-0.5, -0.5], [31.5, 31.5]]), np.array(meta["crop_affine"])
        )
        assert joints.shape == (14, 2) and meta["format"] == "lsp"
        assert ((joints >= corners[0] - 0.01) & (joints <= corners[1] + 0.01)).all()
        assert corners[1, 0] - corners[0, 0] > 64  # a photo's person, not the 32 px crop itself
