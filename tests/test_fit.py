import json

import pytest
import torch
import yaml
from helpers import TINY

import launch

DATA = "synthetic:16"


@pytest.fixture()
def arch(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return str(path)


def train(arch, out, *extra):
    torch.set_num_threads(1)
    return launch.main(
        [
            "train",
            "--arch",
            arch,
            "--data",
            DATA,
            "--out",
            str(out),
            "--batch-size",
            "8",
            "--lr",
            "2e-3",
            "--device",
            "cpu",
            *extra,
        ]
    )


def history(out):
    return json.loads((out / "metrics.json").read_text())["history"]


def test_train_writes_checkpoints_that_load_weights_only(arch, tmp_path):
    out = tmp_path / "run"
    assert train(arch, out, "--epochs", "2") == 0
    last = torch.load(out / "last.pt", weights_only=True)
    best = torch.load(out / "best.pt", weights_only=True)
    assert last["epoch"] == 2 and last["arch"]["width"] == 16
    assert {"model", "optimizer", "scheduler", "rng", "best_score"} <= set(last)
    h = history(out)
    assert [e["epoch"] for e in h] == [1, 2] and all(0 <= e["val"] <= 1 for e in h)
    assert best["score"] == max(e["val"] for e in h)


def test_resume_continues_exactly_and_refuses_overwrite(arch, tmp_path, capsys):
    straight, interrupted = tmp_path / "a", tmp_path / "b"
    assert train(arch, straight, "--epochs", "2") == 0
    assert train(arch, interrupted, "--epochs", "1") == 0
    before = (interrupted / "last.pt").read_bytes()
    # without --resume an existing run folder is refused and left untouched
    assert train(arch, interrupted, "--epochs", "2") == 2
    assert "--resume" in capsys.readouterr().err
    assert (interrupted / "last.pt").read_bytes() == before
    assert train(arch, interrupted, "--epochs", "2", "--resume") == 0
    a, b = history(straight), history(interrupted)
    for key in ("epoch", "loss", "val", "lr"):
        assert [e[key] for e in a] == [e[key] for e in b], key


def test_resume_with_another_arch_is_refused(arch, tmp_path, capsys):
    out = tmp_path / "run"
    assert train(arch, out, "--epochs", "1") == 0
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(TINY | {"width": 8}))
    before = (out / "last.pt").read_bytes()
    assert train(str(other), out, "--epochs", "2", "--resume") == 2
    err = capsys.readouterr().err
    assert "arch" in err and "Traceback" not in err
    assert (out / "last.pt").read_bytes() == before


def test_evaluate_checkpoint_and_bare_state_dict(arch, tmp_path, capsys):
    out = tmp_path / "run"
    assert train(arch, out, "--epochs", "1") == 0
    capsys.readouterr()
    assert (
        launch.main(
            [
                "evaluate",
                "--arch",
                arch,
                "--weights",
                str(out / "best.pt"),
                "--data",
                DATA,
                "--device",
                "cpu",
                "--flip",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.strip()}
    from trainers.formats.lsp import LSP_JOINTS

    for name in LSP_JOINTS:
        assert 0.0 <= float(rows[name][0]) <= 100.0 and int(rows[name][1]) == 16
    assert int(rows["mean"][1]) == 16 * 14
    result = json.loads((out / "best.eval-test.json").read_text())
    assert result["flip"] and len(result["metrics"]["main"]["per_joint"]) == 14
    # a bare state_dict scores exactly the same (same weights, same data, no flip this time)
    bare = tmp_path / "bare.pt"
    torch.save(torch.load(out / "best.pt", weights_only=True)["model"], bare)
    dest = tmp_path / "eval.json"
    assert (
        launch.main(
            [
                "evaluate",
                "--arch",
                arch,
                "--weights",
                str(bare),
                "--data",
                DATA,
                "--device",
                "cpu",
                "--out",
                str(dest),
            ]
        )
        == 0
    )
    assert (
        launch.main(
            [
                "evaluate",
                "--arch",
                arch,
                "--weights",
                str(out / "best.pt"),
                "--data",
                DATA,
                "--device",
                "cpu",
                "--out",
                str(tmp_path / "eval2.json"),
            ]
        )
        == 0
    )
    a = json.loads(dest.read_text())["metrics"]["main"]
    b = json.loads((tmp_path / "eval2.json").read_text())["metrics"]["main"]
    assert a == b


def test_evaluate_bad_weights_is_a_clean_error(arch, tmp_path, capsys):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    assert launch.main(["evaluate", "--arch", arch, "--weights", str(junk), "--data", DATA]) == 2
    assert (
        launch.main(
            ["evaluate", "--arch", arch, "--weights", str(tmp_path / "missing.pt"), "--data", DATA]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "junk.pt" in err and "missing.pt" in err and "Traceback" not in err


def test_diverging_training_exits_1_without_a_checkpoint(arch, tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        launch.main(
            [
                "train",
                "--arch",
                arch,
                "--data",
                DATA,
                "--out",
                str(out),
                "--batch-size",
                "8",
                "--lr",
                "1e30",
                "--epochs",
                "2",
                "--device",
                "cpu",
            ]
        )
        == 1
    )
    assert "diverged" in capsys.readouterr().err
    assert not (out / "last.pt").exists() and not (out / "best.pt").exists()


# ---------------------------------------------------------------- the split best.pt is selected on


def _lsp_mat(root, n: int, lspet: bool, images: int = 0) -> None:
    """A joints.mat of n people (LSPET: val = test = the last 1000) and the first `images`."""
    import numpy as np
    import scipy.io
    from PIL import Image

    rng = np.random.default_rng(0)
    j = np.concatenate([rng.uniform(6, 34, (n, 14, 2)), np.ones((n, 14, 1))], -1)
    layout = (1, 2, 0) if lspet else (2, 1, 0)  # (14, 3, N) LSPET, (3, 14, N) LSP
    scipy.io.savemat(root / "joints.mat", {"joints": j.transpose(*layout)})
    for i in range(images):
        (root / "images").mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(
            root / "images" / (f"im{i + 1:05d}.jpg" if lspet else f"im{i + 1:04d}.jpg")
        )


def test_selection_note_says_which_split_and_why(tmp_path):
    from trainers.data import selection_note, selection_splits

    (tmp_path / "lspet").mkdir()
    (tmp_path / "lsp").mkdir()
    _lsp_mat(tmp_path / "lspet", 1020, lspet=True)
    _lsp_mat(tmp_path / "lsp", 2000, lspet=False)
    lspet, lsp = str(tmp_path / "lspet"), str(tmp_path / "lsp")
    assert selection_splits(lspet) == ("train_carved", "val_carved")
    assert selection_note(lspet, "val_carved") == (
        "selecting best.pt on val_carved: 2 images carved from train (the last 10%), not on val, "
        "which is this dataset's test split (--select-on val to select on it)"
    )
    assert "which is this dataset's test split: a test score of best.pt will be optimistic" in (
        selection_note(lspet, "val")
    )
    assert selection_splits(lsp) == ("train", "val")
    assert selection_note(lsp, "val") == (
        "selecting best.pt on val: 100 images carved from train "
        "(the last 10%), as the dataset has no val split"
    )
    assert selection_note("synthetic:16", "val") == "selecting best.pt on val (16 images)"


def test_train_selects_on_the_carved_split_where_val_is_test(arch, tmp_path, capsys):
    (tmp_path / "lspet").mkdir()
    _lsp_mat(tmp_path / "lspet", 1004, lspet=True, images=4)  # 3 train_carved, 1 val_carved
    out, data = tmp_path / "run", str(tmp_path / "lspet")
    assert (
        launch.main(
            [
                "train",
                "--arch",
                arch,
                "--data",
                data,
                "--out",
                str(out),
                "--epochs",
                "1",
                "--batch-size",
                "2",
                "--device",
                "cpu",
                "--workers",
                "0",
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    said = (
        "selecting best.pt on val_carved: 1 image carved from train (the last 10%), not on "
        "val, which is this dataset's test split (--select-on val to select on it)"
    )
    assert [line for line in lines if line.startswith("selecting")] == [said]
    assert lines[-1].startswith("best val_carved ")
    assert json.loads((out / "metrics.json").read_text())["best"]["split"] == "val_carved"
    # resuming with another selection split is refused (its best score is another split's)
    assert (
        launch.main(
            [
                "train",
                "--arch",
                arch,
                "--data",
                data,
                "--out",
                str(out),
                "--epochs",
                "2",
                "--resume",
                "--select-on",
                "val",
                "--workers",
                "0",
            ]
        )
        == 2
    )
    assert "--select-on carved" in capsys.readouterr().err


# ------------------------------------------------------------ evaluate: units, --save-predictions


def test_evaluate_prints_fractions_and_saves_per_image_joints(arch, tmp_path, capsys):
    weights = tmp_path / "w.pt"
    torch.manual_seed(0)
    from space.model import build_model
    from space.spec import ArchSpec

    torch.save(build_model(ArchSpec.from_dict(TINY)).state_dict(), weights)
    preds = tmp_path / "preds.json"
    assert (
        launch.main(
            [
                "evaluate",
                "--arch",
                arch,
                "--weights",
                str(weights),
                "--data",
                DATA,
                "--device",
                "cpu",
                "--out",
                str(tmp_path / "e.json"),
                "--save-predictions",
                str(preds),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    result = json.loads((tmp_path / "e.json").read_text())
    mean = next(line for line in text.splitlines() if line.startswith("mean")).split()[1]
    assert mean == f"{result['metrics']['main']['mean']:.4f}"  # the JSON's number, not x100
    assert "scores are fractions (0-1; 0.5 = 50 %)" in text
    assert result["units"].startswith("fractions")
    saved = json.loads(preds.read_text())
    assert saved["format"] == "synthetic" and saved["split"] == "test"
    assert len(saved["joint_names"]) == 14
    names = [f"synthetic-test-{i:06d}" for i in range(16)]
    assert [p["name"] for p in saved["predictions"]] == names
    joints = [p["joints"] for p in saved["predictions"]]
    assert all(len(j) == 14 and all(len(xyc) == 3 for xyc in j) for j in joints)


def test_evaluate_coco_prints_oks_ap_as_in_the_json_and_saves_coco_results(tmp_path, capsys):
    pytest.importorskip("pycocotools", reason="pycocotools not installed: OKS AP needs it")
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    from test_formats import write_coco

    from space.model import build_model
    from space.spec import ArchSpec

    annotations = write_coco(tmp_path / "coco")
    arch = tmp_path / "tiny17.yaml"
    arch.write_text(yaml.safe_dump(TINY | {"joints": 17}))
    torch.manual_seed(0)
    weights = tmp_path / "w.pt"
    torch.save(build_model(ArchSpec.from_dict(TINY | {"joints": 17})).state_dict(), weights)
    preds, out = tmp_path / "results.json", tmp_path / "e.json"
    assert (
        launch.main(
            [
                "evaluate",
                "--arch",
                str(arch),
                "--weights",
                str(weights),
                "--data",
                str(tmp_path / "coco"),
                "--split",
                "val",
                "--device",
                "cpu",
                "--out",
                str(out),
                "--save-predictions",
                str(preds),
            ]
        )
        == 0
    )
    ap = json.loads(out.read_text())["metrics"]["oks_ap"]
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("OKS AP"))
    assert line.split()[2] == f"{ap['mean']:.4f}"
    results = json.loads(preds.read_text())
    assert len(results) == 5
    assert set(results[0]) == {"image_id", "category_id", "keypoints", "score"}
    assert [r["image_id"] for r in results] == [1, 1, 2, 3, 3]
    assert len(results[0]["keypoints"]) == 51
    with contextlib.redirect_stdout(io.StringIO()):  # the official tool scores the file as we did
        gt = COCO(str(annotations))
        ev = COCOeval(gt, gt.loadRes(str(preds)), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ev.stats[0] == pytest.approx(ap["mean"], abs=1e-3)
